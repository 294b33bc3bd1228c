"""Run every ``benchmarks/bench_*.py`` in turn (each with its default arguments) and report which failed.

    python benchmarks/run_all.py [--only SUBSTRING ...]

A benchmark exits non-zero when it errors or misses a target it checks; this runner keeps going and exits
non-zero if any did.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description="run every benchmarks/bench_*.py")
    ap.add_argument("--only", nargs="*", default=[], help="run only benches whose file name contains one of these")
    a = ap.parse_args()
    benches = sorted(Path(__file__).resolve().parent.glob("bench_*.py"))
    if a.only:
        benches = [b for b in benches if any(s in b.name for s in a.only)]
    results = []
    for b in benches:
        print(f"=== {b.name}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call([sys.executable, str(b)])
        results.append((b.name, rc, time.perf_counter() - t0))
    print("\n=== summary")
    for name, rc, secs in results:
        print(f"{'ok  ' if rc == 0 else 'FAIL'} {name} (exit {rc}, {secs:.0f} s)")
    return 0 if all(rc == 0 for _, rc, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
