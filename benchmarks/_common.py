"""What the subprocess benchmarks share: peak-RSS reading, the table printer and the fresh-process runner.

A bench re-runs itself as ``python <bench> --child KIND SPEC_JSON`` for every scenario run, so one run's
peak RSS cannot hide another's; the child prints one ``RESULT {json}`` line that the parent reads back.
The benches run as scripts (``python benchmarks/bench_x.py``) and import this module from their own folder.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

MB = 1e6  # MB and MB/s are 10^6 bytes throughout

__all__ = ["MB", "best_of", "parse_args_or_run_child", "peak_rss_mb", "rss_mb", "print_checks", "run_child", "table",
           "work_dir"]


def rss_mb() -> float:
    """This process's current resident set (VmRSS), in MB (NaN where /proc is not there)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024 / MB
    except OSError:
        pass
    return float("nan")


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM), in MB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / MB
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB  # KiB on Linux


def _fmt_row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))


def table(header: list[str], rows: list[list[str]]) -> str:
    """A plain-text table: first column left-aligned, the others right-aligned, a dashed rule under the header."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    sep = "  ".join("-" * w for w in widths)
    return "\n".join([_fmt_row(header, widths), sep, *(_fmt_row(r, widths) for r in rows)])


def parse_args_or_run_child(ap: argparse.ArgumentParser,
                            children: dict[str, Callable[[dict[str, Any]], dict[str, Any]]]) -> argparse.Namespace | None:
    """Add ``--json FILE`` and the hidden ``--child KIND SPEC`` to ``ap`` and parse. Parent side: the arguments.
    Child side: run ``children[KIND]`` on the JSON spec, print its ``RESULT`` line and return None."""
    ap.add_argument("--json", type=Path, help="also write all results here")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if not a.child:
        return a
    kind, spec = a.child
    print("RESULT " + json.dumps(children[kind](json.loads(spec))), flush=True)
    return None


def run_child(script: str, kind: str, spec: dict[str, Any], env: dict[str, str],
              wall_key: str | None = None) -> dict[str, Any]:
    """Run scenario ``kind`` of ``script`` in a fresh Python process and return its ``RESULT``; with
    ``wall_key``, the child process's wall time as the parent saw it is stored under that key."""
    cmd = [sys.executable, str(Path(script).resolve()), "--child", kind, json.dumps(spec)]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - t0
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    if p.returncode != 0 or not lines:
        raise RuntimeError(f"{kind} child failed ({p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}")
    r = dict(json.loads(lines[-1][len("RESULT "):]))
    if wall_key:
        r[wall_key] = wall
    return r


def best_of(run: Callable[[], dict[str, Any]], repeat: int, label: str, describe: Callable[[dict[str, Any]], str],
            key: str = "seconds", all_key: str = "all_seconds", also_min: Iterable[str] = ()) -> dict[str, Any]:
    """Call ``run`` ``repeat`` times (each a fresh process), printing ``describe(result)`` after each; keep the
    run with the lowest ``key``, with the highest peak RSS seen over all runs, every run's ``key`` under
    ``all_key`` and, for each field in ``also_min`` the best run has, the lowest value over the runs."""
    runs = []
    for i in range(repeat):
        r = run()
        runs.append(r)
        print(f"  {label} run {i + 1}/{repeat}: {describe(r)}", flush=True)
    best = dict(min(runs, key=lambda r: r[key]))
    best["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    best[all_key] = [r[key] for r in runs]
    for k in also_min:
        if k in best:
            best[k] = min(r[k] for r in runs)
    return best


def work_dir(keep: Path | None, prefix: str) -> tuple[Path, tempfile.TemporaryDirectory[str] | None]:
    """``keep`` (created) when given, else a new temp dir; the second item is the temp dir to clean up, if any."""
    if keep:
        root = keep.resolve()
        root.mkdir(parents=True, exist_ok=True)
        return root, None
    tmp = tempfile.TemporaryDirectory(prefix=prefix)
    return Path(tmp.name), tmp


def print_checks(res: dict[str, Any], checks: list[tuple[str, str, bool]]) -> None:
    """Print ``PASS``/``MISS`` per (target, value, ok) and record them, and whether all passed, in ``res``."""
    for name, val, ok in checks:
        print(f"{'PASS' if ok else 'MISS'}  {name}  {val}")
    res["ok"] = all(ok for _, _, ok in checks)
    res["checks"] = [{"target": n, "value": v, "ok": ok} for n, v, ok in checks]


def wall_and_cpu() -> tuple[float, float]:
    """``(wall, cpu)`` clock readings in seconds: ``time.perf_counter()`` and ``time.process_time()`` (user +
    system CPU of this whole process, every thread included, e.g. torch's intra-op pool). Differences of two
    readings give a span's wall and CPU time; CPU < wall means the process waited (for a core, I/O, a lock)."""
    return time.perf_counter(), time.process_time()
