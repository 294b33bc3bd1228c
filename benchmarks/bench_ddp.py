"""Training throughput on 1 vs 2 CPU ranks: `python -m quickdraw train` against `torchrun --nproc_per_node=2`.

Both run the real CLI on the same synthetic cache (10 classes, lengths ~ gamma(3, 18) clipped to 6..250, the
stand-in for the real length distribution) with the same params: the same global batch, the same optimizer
steps (``max_steps_per_epoch`` x ``epochs``), one torch thread per process (``OMP_NUM_THREADS=1``, which
torchrun also sets). Under DDP each rank trains on half of every global batch and gradients are averaged
with gloo, so the two runs compute the same model (tests/integration/test_ddp.py); only the speed differs.

Per run it records the trainer's own ``speed.train_seq_per_s`` (training sequences over time spent in
training epochs, validation excluded, from dvclive/metrics.json), the whole command's wall time and the CPU
time of all its processes (``RUSAGE_CHILDREN``: user + system, torchrun and both ranks included). The table
gives min-max over ``--repeat`` runs, 1 and 2 ranks interleaved so that load from other jobs hits both alike;
speed-up = seq/s(2 ranks) / seq/s(1 rank) within each repeat. On a 2-core machine the ideal is 2x; gloo's
all-reduce of ~0.9M gradients per step, the smaller per-rank batches and Python overhead take some of it.

    python benchmarks/bench_ddp.py [--repeat 3] [--steps 12] [--hidden 192] [--batch-size 128] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
from _common import table  # noqa: E402

TORCHRUN = Path(sys.executable).with_name("torchrun")


def build(base: Path, per_class: int) -> None:
    """A 10-class synthetic stroke-3 cache named ``bench`` under ``base/cache``."""
    sys.path.insert(0, str(REPO / "src"))
    from quickdraw.cache.build import build_cache
    from quickdraw.cache.synthetic import write_synthetic_strokes

    classes = ["cat", "dog", "apple", "bee", "bird", "cow", "fish", "frog", "lion", "owl"]
    strokes = write_synthetic_strokes(base / "strokes", classes, per_class, seed=0, formats=("stroke3",))
    build_cache(strokes, base / "cache", "bench", formats=("stroke3",))


def run(base: Path, ranks: int, a: argparse.Namespace, i: int, extra: tuple[str, ...] = (), tag: str = "") -> dict[str, Any]:
    """One `quickdraw train` command (``ranks`` processes); its seq/s, wall time and CPU time of all processes."""
    name = f"r{ranks}-{i}{tag}"
    head = ([sys.executable, "-m", "quickdraw"] if ranks == 1
            else [str(TORCHRUN), "--standalone", f"--nproc_per_node={ranks}", "-m", "quickdraw"])
    sets = [f"train.hidden={a.hidden}", f"train.batch_size={a.batch_size}", "train.min_steps_per_epoch=1",
            "train.epochs=1", f"train.max_steps_per_epoch={a.steps}", "train.min_steps=0", "train.num_threads=1",
            "train.max_val_per_class=8", "train.warmup_steps=2", *extra]
    cmd = [*head, "train", "--cache", "bench", "--cache-root", str(base / "cache"), "--out", str(base / name / "m"),
           "--live-dir", str(base / name / "live"), "--quiet"]
    for s in sets:
        cmd += ["--set", s]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(REPO / "src"), DVC_NO_ANALYTICS="1")
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}")
    live = json.loads((base / name / "live" / "metrics.json").read_text())
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return {"ranks": ranks, "seq_per_s": live["speed"]["train_seq_per_s"], "wall": wall, "cpu": cpu}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--steps", type=int, default=12, help="optimizer steps per run")
    ap.add_argument("--hidden", type=int, default=192)
    ap.add_argument("--batch-size", type=int, default=128, help="global batch")
    ap.add_argument("--per-class", type=int, default=400)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    if not TORCHRUN.exists():
        sys.exit(f"no torchrun beside {sys.executable}")
    with tempfile.TemporaryDirectory(prefix="bench-ddp-") as tmp:
        base = Path(tmp)
        build(base, a.per_class)
        runs: list[dict[str, Any]] = []
        for i in range(a.repeat):
            for ranks in (1, 2):
                r = run(base, ranks, a, i)
                runs.append(r)
                print(f"  repeat {i + 1}/{a.repeat}, {ranks} rank(s): {r['seq_per_s']:.1f} seq/s, "
                      f"wall {r['wall']:.1f} s, CPU {r['cpu']:.1f} s", flush=True)
    one = [r for r in runs if r["ranks"] == 1]
    two = [r for r in runs if r["ranks"] == 2]
    speedups = [b["seq_per_s"] / x["seq_per_s"] for x, b in zip(one, two, strict=True)]

    def rng(vals: list[float], fmt: str) -> str:
        return f"{min(vals):{fmt}}-{max(vals):{fmt}}"

    rows = [[f"{k} rank{'s' if k > 1 else ''}", rng([r["seq_per_s"] for r in rs], ".1f"),
             rng([r["wall"] for r in rs], ".1f"), rng([r["cpu"] for r in rs], ".1f"),
             "1.00" if k == 1 else rng(speedups, ".2f")]
            for k, rs in ((1, one), (2, two))]
    print(f"\ntraining on CPU, hidden {a.hidden}, global batch {a.batch_size}, {a.steps} steps, 1 thread a rank, "
          f"{os.cpu_count()} cores, {a.repeat} repeats")
    print(table(["setup", "train seq/s", "command wall s", "command CPU s", "speed-up (seq/s)"], rows))
    if a.json:
        a.json.write_text(json.dumps({"args": vars(a) | {"json": str(a.json)}, "runs": runs, "speedups": speedups},
                                     indent=2))


if __name__ == "__main__":
    main()
