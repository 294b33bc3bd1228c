"""Instant start: the light commands never import the heavy libraries (issue 11, item 6).

Each check runs in a fresh interpreter (``sys.modules`` of this pytest process is full of everything) and
lists which heavy top-level packages the command left in ``sys.modules``. A test of imports, not of time:
``benchmarks/bench_startup.py`` measures the time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from quickdraw.cache.synthetic import write_synthetic_strokes

# numba, torch and matplotlib cost 0.3-2 s each to import; no listing command may pay for them (nor for the
# web stack, which only `quickdraw serve` needs).
NEVER = {"numba", "torch", "matplotlib", "starlette", "uvicorn"}
# --help and `classes` touch no data at all, so not even the data libraries.
DATA = {"numpy", "pyarrow", "polars", "fsspec", "gcsfs"}

# Runs the CLI in-process with the given argv, then prints the heavy packages that got imported. SystemExit
# is what Typer ends every command with; the exit code travels back in the JSON.
_PROBE = r"""
import json, sys
heavy = set(json.loads(sys.argv[1]))
sys.argv = ["quickdraw", *json.loads(sys.argv[2])]
from quickdraw.cli.app import main
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code or 0
loaded = sorted({m.split(".")[0] for m in sys.modules} & heavy)
sys.stdout.flush()
print("\nPROBE " + json.dumps({"code": code, "loaded": loaded}))
"""


def _probe(argv: list[str], heavy: set[str], env: dict[str, str] | None = None) -> dict[str, object]:
    full_env = {**os.environ, "COLUMNS": "80", **(env or {})}
    p = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(sorted(heavy)), json.dumps(argv)],
                       capture_output=True, text=True, env=full_env, timeout=120, check=False)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("PROBE ")]
    assert lines, f"probe failed ({p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
    return dict(json.loads(lines[-1][len("PROBE "):]))


def test_importing_the_app_is_light() -> None:
    code = ("import quickdraw.cli.app, sys, json; "
            f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({sorted(NEVER | DATA)!r}))))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(p.stdout) == []


@pytest.mark.parametrize("argv", [["--help"], ["classes"], ["classes", "animals10"], ["classes", "--json"],
                                  ["cache", "--help"], ["stats", "--help"], ["fetch", "--help"],
                                  ["sketch", "--help"], ["sketch", "train", "--help"], ["sketch", "sample", "--help"],
                                  ["serve", "--help"]])
def test_help_and_classes_import_no_heavy_library(argv: list[str]) -> None:
    r = _probe(argv, NEVER | DATA)
    assert r["code"] == 0 and r["loaded"] == [], r


@pytest.mark.parametrize("argv", [["--help"], ["fetch", "--help"], ["cache", "--help"], ["cache", "build", "--help"],
                                  ["export", "--help"], ["train", "--help"]])
def test_help_renders_without_rich(argv: list[str]) -> None:
    # Typer renders help through rich unless the app says rich_markup_mode=None; that import is ~0.12 CPU-s,
    # half of what `quickdraw --help` would cost. Errors and tables still use rich, made on first use.
    r = _probe(argv, {"rich"})
    assert r["code"] == 0 and r["loaded"] == [], r


def test_cache_ls_and_stats_import_no_numba_torch_matplotlib(tmp_path: Path) -> None:
    strokes = write_synthetic_strokes(tmp_path / "strokes", ("cat", "dog"), 6, seed=1)
    root = tmp_path / "cache"
    env = {"QUICKDRAW_CACHE": str(root)}
    built = _probe(["cache", "build", "--in", str(strokes), "--name", "tiny", "--json"], set(), env)
    assert built["code"] == 0, built
    for argv in (["cache", "ls"], ["cache", "ls", "--json"], ["cache", "info", "tiny"],
                 ["stats", "tiny"], ["stats", str(strokes)], ["stats", str(strokes), "--json"]):
        r = _probe(argv, NEVER, env)
        assert r["code"] == 0 and r["loaded"] == [], (argv, r)


def test_verbose_flag_sets_library_loggers() -> None:
    # Without -v the retry/traceback spam of the network stack is cut to errors; with it, it is shown.
    code = r"""
import logging, sys
from typer.testing import CliRunner
from quickdraw.cli.app import app
lv = lambda: [logging.getLogger(n).getEffectiveLevel() for n in ("gcsfs", "fsspec", "aiohttp", "asyncio", "urllib3")]
CliRunner().invoke(app, ["classes", "mini3"]); quiet = lv()
CliRunner().invoke(app, ["-v", "classes", "mini3"]); loud = lv()
print(quiet, loud)
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    quiet, loud = p.stdout.strip().split("] [")
    assert set(quiet.strip("[]").split(", ")) == {str(40)}  # ERROR
    assert set(loud.strip("[]").split(", ")) == {str(20)}  # INFO


def test_verbose_shows_the_traceback_behind_an_error() -> None:
    from typer.testing import CliRunner

    from quickdraw.cli.app import app

    quiet = CliRunner().invoke(app, ["classes", "no-such-class-qd"])
    assert quiet.exit_code == 2 and "Traceback" not in quiet.output and "unknown class" in quiet.output
    loud = CliRunner().invoke(app, ["-v", "classes", "no-such-class-qd"])
    assert loud.exit_code == 2 and "Traceback" in loud.output and "UnknownClassError" in loud.output
    CliRunner().invoke(app, ["classes", "mini3"])  # back to quiet for the tests after this one


def test_small_capped_fetch_imports_no_numba(tmp_path: Path) -> None:
    """A first try of the tool (`fetch -n 100`) must not pay ~0.5 CPU-s for numba: chunks that small take the
    exact parser (ndjson.SCANNER_MIN_LINES), and the binary/raw parsers are imported only for their formats."""
    from tests.integration.test_fetch import synthetic_ndjson

    src = tmp_path / "src"
    src.mkdir()
    (src / "cat.ndjson").write_bytes(synthetic_ndjson(3000))
    argv = ["fetch", "--classes", "cat", "--source", str(src), "--out", str(tmp_path / "out"), "-n", "100"]
    r = _probe(argv, NEVER)
    assert r["code"] == 0 and r["loaded"] == [], r
    assert (tmp_path / "out" / "cat" / "_manifest.json").exists()
