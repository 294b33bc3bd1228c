"""Training throughput of every `train.arch` at the default size, on synthetic data (issue 16's speed column).

Each run is the real `python -m quickdraw train` on the same synthetic 10-class cache as bench_ddp.py
(lengths ~ gamma(3, 18) clipped to 6..250), default model size (hidden 192, 2 layers) and batch 256, a fixed
number of optimizer steps, one torch thread (``OMP_NUM_THREADS=1``). It records the trainer's own
``speed.train_seq_per_s`` (validation excluded), the command's wall time and CPU time (``RUSAGE_CHILDREN``).
Archs are interleaved within each repeat, so load from other jobs hits all of them alike; the table gives
min-max over the repeats and each arch's seq/s relative to bigru (the default) within the same repeat.

    python benchmarks/bench_arch.py [--repeat 3] [--steps 8] [--hidden 192] [--batch-size 256] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
from _common import table  # noqa: E402
from bench_ddp import build, run  # noqa: E402

ARCHS = ("bigru", "gru", "lstm", "bilstm", "conv-bigru")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=192)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--per-class", type=int, default=400)
    ap.add_argument("--arch", default=",".join(ARCHS))
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    archs = [x for x in a.arch.split(",") if x]
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-arch-") as tmp:
        base = Path(tmp)
        build(base, a.per_class)
        for i in range(a.repeat):
            for arch in archs:
                r = run(base, 1, a, i, (f"train.arch={arch}",), tag=f"-{arch}") | {"arch": arch, "repeat": i}
                live = json.loads((base / f"r1-{i}-{arch}" / "live" / "metrics.json").read_text())
                r["n_parameters"] = live["model"]["n_parameters"]
                runs.append(r)
                print(f"  repeat {i + 1}/{a.repeat} {arch}: {r['seq_per_s']:.1f} seq/s, wall {r['wall']:.1f} s, "
                      f"CPU {r['cpu']:.1f} s", flush=True)

    def rng(vals: list[float], fmt: str) -> str:
        return f"{min(vals):{fmt}}-{max(vals):{fmt}}"

    base_by_rep = {r["repeat"]: r["seq_per_s"] for r in runs if r["arch"] == "bigru"}
    rows = []
    for arch in archs:
        rs = [r for r in runs if r["arch"] == arch]
        rel = [r["seq_per_s"] / base_by_rep[r["repeat"]] for r in rs if r["repeat"] in base_by_rep]
        rows.append([arch, f"{rs[0]['n_parameters']:,}", rng([r["seq_per_s"] for r in rs], ".1f"),
                     rng([r["wall"] for r in rs], ".1f"), rng([r["cpu"] for r in rs], ".1f"),
                     rng(rel, ".2f") if rel else "-"])
    print(f"\ntraining on CPU, hidden {a.hidden}, batch {a.batch_size}, {a.steps} steps, 1 thread, "
          f"{os.cpu_count()} cores, {a.repeat} repeats")
    print(table(["arch", "parameters", "train seq/s", "command wall s", "command CPU s", "vs bigru (seq/s)"], rows))
    if a.json:
        a.json.write_text(json.dumps({"args": vars(a) | {"json": str(a.json)}, "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
