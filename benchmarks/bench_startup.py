"""Start-up cost of the CLI: ``quickdraw --help``, the listing commands and a one-class fetch (issue 11, item 6).

Every row is a whole fresh process (interpreter start, imports, the command, exit), run ``--repeat`` times;
the table shows the range (min-max) of wall time and of CPU time (user + system of that process, from
``os.wait4``) and a ratio of medians against the baseline measured in the same run:

* ``python -c "import typer, rich"``: what any Typer CLI pays before its first line;
* a bare Typer app with the same 15 commands (empty bodies), ``--help``: the reference for ``--help``;
* the fetch floor, ``python -c "import pyarrow, pyarrow.parquet, pyarrow.compute, numpy, fsspec, orjson,
  typer, typer._adapters, rich.console, rich.table"``: the libraries a small ``quickdraw fetch`` truly needs,
  Typer's run-time included (``typer._adapters``: the pydantic coercion every Typer command runs, ~0.08
  CPU-s) and rich's console and table (the summary it prints). No numba: a
  chunk of fewer than ``ndjson.SCANNER_MIN_LINES`` lines takes the exact orjson path while the scanner is not
  loaded, which is faster than loading numba for it;
* ``quickdraw fetch`` of one class capped at ``--cap`` drawings (default 100) from a local folder holding a
  synthetic ndjson file: the small fetch, held to the floor above;
* the scanner floor: the fetch floor plus numba and its run-time start (the first call of a trivial cached
  kernel: numba builds its typing and target contexts and compiles its runtime then, whatever the kernel),
  and ``quickdraw fetch -n 5000`` (the default pipeline's cap: chunks of ~7,000 lines, so the scanner runs)
  against it, numba cache warm;
* a user's first fetch after install: an *empty* ``NUMBA_CACHE_DIR``, the install step ``make venv`` runs
  (``python -c "import quickdraw.sources._kernel"``: compiles the scanner for the one signature fetch uses and
  caches it), then the first and the second ``fetch -n 5000``; and, for comparison, a first fetch into an
  empty cache without the install step (it compiles).

    python benchmarks/bench_startup.py [--repeat 7] [--cap 100] [--keep DIR] [--json FILE]

Targets (PASS/MISS; exit 1 on a miss): ``quickdraw --help`` <= 2.5x ``import typer, rich``; ``quickdraw fetch
-n 100`` <= 1.3x the fetch floor; after the install step, the first fetch into a fresh numba cache <= 1.3x the
second (no compile left for the user to pay). ``fetch -n 5000`` against the scanner floor is printed, not held
to a target: it includes the work of parsing and writing 5,000 drawings.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
from _common import print_checks, table, work_dir

TARGET_HELP = 2.5
TARGET_FETCH = 1.3
WORD = "cat"

FETCH_LIBS = ("pyarrow, pyarrow.parquet, pyarrow.compute, numpy, fsspec, orjson, typer, typer._adapters, rich.console, "
              "rich.table")
BIG_CAP = 5000  # the default pipeline's fetch.max_per_class: chunks large enough for the compiled scanner
INSTALL_STEP = "import quickdraw.sources._kernel"  # what `make venv` runs after pip install

# The reference app: 15 commands (8 top-level, 5 under `cache`, 2 under `export`; quickdraw has 14) with a few
# options each and empty bodies, so its --help renders the same amount of rich output.
_BARE_APP = '''
import typer
app = typer.Typer(help="bare", no_args_is_help=True, add_completion=False)
def _mk(name):
    def cmd(a: str = typer.Option(None, "--a", help="an option"), b: int = typer.Option(1, "--b", help="another"),
            c: bool = typer.Option(False, "--json", help="json")) -> None:
        """A command that does nothing."""
    cmd.__name__ = name
    return cmd
for n in ("classes", "fetch", "prepare", "stats", "show", "train", "evaluate", "predict"):
    app.command(n)(_mk(n))
cache = typer.Typer(help="cache", no_args_is_help=True)
for n in ("build", "ls", "info", "verify", "gc"):
    cache.command(n)(_mk(n))
app.add_typer(cache, name="cache")
export = typer.Typer(help="export", no_args_is_help=True)
for n in ("sketchrnn", "other"):
    export.command(n)(_mk(n))
app.add_typer(export, name="export")
app()
'''

_NUMBA_START = '''
import numba
@numba.njit(cache=True)
def f(x):
    return x + 1
f(1)
'''


def _run(cmd: list[str], env: dict[str, str], before: Any = None) -> tuple[float, float]:
    """Wall and CPU seconds of one process running ``cmd`` (``before()`` runs first, outside the timing)."""
    if before is not None:
        before()
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert p.stderr is not None
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise RuntimeError(f"{cmd} exited {p.returncode}:\n{err.decode(errors='replace')[-3000:]}")
    return wall, ru.ru_utime + ru.ru_stime


def _series(cmd: list[str], env: dict[str, str], repeat: int, label: str, before: Any = None) -> dict[str, Any]:
    runs = [_run(cmd, env, before) for _ in range(repeat)]
    walls, cpus = [w for w, _ in runs], [c for _, c in runs]
    print(f"  {label}: wall " + " ".join(f"{w:.2f}" for w in walls) + "  cpu " + " ".join(f"{c:.2f}" for c in cpus),
          flush=True)
    return {"label": label, "wall": walls, "cpu": cpus, "wall_median": statistics.median(walls),
            "cpu_median": statistics.median(cpus)}


def main() -> int:
    ap = argparse.ArgumentParser(description="start-up time of the quickdraw CLI against its library floor")
    ap.add_argument("--repeat", type=int, default=7, help="fresh processes per row (default 7)")
    ap.add_argument("--cap", type=int, default=100, help="--max-per-class of the fetch rows (default 100)")
    ap.add_argument("--keep", type=Path, help="work dir to keep")
    ap.add_argument("--json", type=Path, help="also write all results here")
    a = ap.parse_args()

    from _synth import write_class_file

    root, tmp = work_dir(a.keep, "bench_startup-")
    try:
        py = sys.executable
        script = Path(py).parent / "quickdraw"
        qd = [str(script)] if script.exists() else [py, "-c", "from quickdraw.cli.app import main; main()"]
        env = dict(os.environ, COLUMNS="80")
        env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        env.pop("QUICKDRAW_LOG", None)
        # Timed as a user runs it: with the project's bytecode cached. (Some shells here set
        # PYTHONDONTWRITEBYTECODE, which makes every process recompile quickdraw's ~60 modules: +0.1 s.)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        subprocess.run([py, "-m", "compileall", "-q", str(REPO / "src")], env=env, check=True,
                       stdout=subprocess.DEVNULL)

        src = root / "src"
        size, n, _ = write_class_file(src / f"{WORD}.ndjson", 5.0, WORD, seed=0)
        print(f"input: {src / (WORD + '.ndjson')} {size / 1e6:.1f} MB, {n:,} drawings; fetch capped at {a.cap} "
              f"and {BIG_CAP}")
        bare = root / "bare_app.py"
        bare.write_text(_BARE_APP)
        (root / "nbstart.py").write_text(_NUMBA_START)  # a module: numba caches only functions in files
        out = root / "out"

        def fresh_out() -> None:
            shutil.rmtree(out, ignore_errors=True)

        fetch_cmd = [*qd, "fetch", "--classes", WORD, "--source", str(src), "--out", str(out), "-n", str(a.cap),
                     "-j", "1"]
        big_cmd = [*fetch_cmd[:-3], str(BIG_CAP), "-j", "1"]
        warm_cache = root / "numba-warm"
        env_warm = dict(env, NUMBA_CACHE_DIR=str(warm_cache), QUICKDRAW_CACHE=str(root / "qdcache"))
        # A small cache and a fetch output for `cache ls` / `stats`, made with the CLI itself (this also fills
        # the warm numba cache before anything is timed).
        _run(big_cmd, env_warm, fresh_out)
        _run(fetch_cmd, env_warm, fresh_out)
        strokes = root / "strokes"
        shutil.rmtree(strokes, ignore_errors=True)
        _run([*qd, "prepare", "--in", str(out), "--out", str(strokes)], env_warm)
        _run([*qd, "cache", "build", "--in", str(strokes), "--name", "bench"], env_warm)

        r = a.repeat
        res: dict[str, Any] = {"repeat": r, "cap": a.cap, "rows": {}}
        rows = res["rows"]
        print("timing (each number one fresh process) ...", flush=True)
        rows["typer"] = _series([py, "-c", "import typer, rich"], env, r, 'python -c "import typer, rich"')
        rows["bare"] = _series([py, str(bare), "--help"], env, r, "bare Typer app, 15 commands: --help")
        # Typer >= 0.2x coerces every option through a pydantic TypeAdapter when a command runs (~0.1 s of
        # pydantic imports): any Typer command pays this, so it is shown as its own reference row.
        rows["bare_run"] = _series([py, str(bare), "fetch", "--a", "x"], env, r,
                                   "bare Typer app: run one (empty) command")
        rows["help"] = _series([*qd, "--help"], env_warm, r, "quickdraw --help")
        rows["classes"] = _series([*qd, "classes"], env_warm, r, "quickdraw classes")
        rows["cache_ls"] = _series([*qd, "cache", "ls"], env_warm, r, "quickdraw cache ls")
        rows["stats"] = _series([*qd, "stats", str(out)], env_warm, r, "quickdraw stats <fetch output>")
        rows["floor"] = _series([py, "-c", f"import {FETCH_LIBS}"], env, r, "fetch floor: import pyarrow, ..., rich.table")
        rows["fetch"] = _series(fetch_cmd, env_warm, r, f"quickdraw fetch -n {a.cap} (exact path, no numba)", fresh_out)
        nb_cmd = [py, "-c", f"import sys; sys.path.insert(0, {str(root)!r}); import {FETCH_LIBS}, nbstart"]
        nb_env = dict(env, NUMBA_CACHE_DIR=str(root / "numba-trivial"))
        _run(nb_cmd, nb_env)  # compiles the trivial kernel into its cache: the timed runs load it
        rows["floor_numba"] = _series(nb_cmd, nb_env, r, "scanner floor: fetch floor + numba + its run-time start")
        rows["fetch_big"] = _series(big_cmd, env_warm, r, f"quickdraw fetch -n {BIG_CAP} (scanner), numba cache warm",
                                    fresh_out)
        cold_dir = root / "numba-cold"
        shutil.rmtree(cold_dir, ignore_errors=True)
        env_cold = dict(env_warm, NUMBA_CACHE_DIR=str(cold_dir))
        rows["install"] = _series([py, "-c", INSTALL_STEP], env_cold, 1, "install step into an empty NUMBA_CACHE_DIR")
        rows["fetch_first"] = _series(big_cmd, env_cold, 1, f"then first fetch -n {BIG_CAP}", fresh_out)
        rows["fetch_second"] = _series(big_cmd, env_cold, 1, f"then second fetch -n {BIG_CAP}", fresh_out)
        shutil.rmtree(cold_dir, ignore_errors=True)
        rows["fetch_noinstall"] = _series(big_cmd, env_cold, 1, "empty cache, no install step: first fetch (compiles)",
                                          fresh_out)
        report(res)
        if a.json:
            a.json.write_text(json.dumps(res, indent=2))
        return 0 if res["ok"] else 1
    finally:
        if tmp is not None:
            tmp.cleanup()


def _rng(v: list[float]) -> str:
    return f"{min(v):.2f}" if len(v) == 1 else f"{min(v):.2f}-{max(v):.2f}"


def report(res: dict[str, Any]) -> None:
    rows = res["rows"]
    base_of = {"typer": None, "bare": "typer", "bare_run": "typer", "help": "typer", "classes": "typer", "cache_ls": "typer",
               "stats": "typer", "floor": None, "fetch": "floor", "floor_numba": None, "fetch_big": "floor_numba",
               "install": "floor_numba", "fetch_first": "fetch_second", "fetch_second": "floor_numba",
               "fetch_noinstall": "fetch_second"}
    lines = []
    for key, base in base_of.items():
        r = rows[key]
        if base is None:
            ratio = ratio_cpu = "1.0x"
        else:
            b = rows[base]
            ratio = f"{r['wall_median'] / b['wall_median']:.2f}x"
            ratio_cpu = f"{r['cpu_median'] / b['cpu_median']:.2f}x"
        lines.append([r["label"], _rng(r["wall"]), f"{r['wall_median']:.2f}", _rng(r["cpu"]), f"{r['cpu_median']:.2f}",
                      ratio, ratio_cpu, "-" if base is None else base])
    print()
    print(f"quickdraw start-up: each row {res['repeat']} fresh processes (first/second fetch: 1 each); seconds; "
          f"ratios are of medians, against the row named in 'vs'")
    print(table(["command", "wall min-max", "median", "CPU min-max", "median", "wall ratio", "CPU ratio", "vs"], lines))
    print()
    def ratio(key: str, base: str, what: str = "wall_median") -> float:
        return float(rows[key][what] / rows[base][what])

    help_ratio, fetch_ratio, big_ratio = ratio("help", "typer"), ratio("fetch", "floor"), ratio("fetch_big", "floor_numba")
    first_ratio = ratio("fetch_first", "fetch_second")
    print(f"info  fetch -n {BIG_CAP} / scanner floor (wall): {big_ratio:.2f}x (not a start-up figure: it parses "
          f"and writes {BIG_CAP:,} drawings, ~0.4 CPU-s of work)")
    print(f"info  CPU ratios: --help {ratio('help', 'typer', 'cpu_median'):.2f}x, fetch -n {res['cap']} "
          f"{ratio('fetch', 'floor', 'cpu_median'):.2f}x, fetch -n {BIG_CAP} {ratio('fetch_big', 'floor_numba', 'cpu_median'):.2f}x, "
          f"first/second after install {ratio('fetch_first', 'fetch_second', 'cpu_median'):.2f}x")
    print_checks(res, [
        (f"quickdraw --help <= {TARGET_HELP:g}x import typer, rich (wall, medians)", f"{help_ratio:.2f}x",
         help_ratio <= TARGET_HELP),
        (f"quickdraw fetch -n {res['cap']} <= {TARGET_FETCH:g}x the fetch floor (wall, medians)",
         f"{fetch_ratio:.2f}x", fetch_ratio <= TARGET_FETCH),
        (f"after the install step, first fetch <= {TARGET_FETCH:g}x the second (wall)", f"{first_ratio:.2f}x",
         first_ratio <= TARGET_FETCH),
    ])


if __name__ == "__main__":
    sys.exit(main())
