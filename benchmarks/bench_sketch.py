"""Sketch-RNN, measured: test-split NLL per step against two baselines, and sample grids at three temperatures.

    python benchmarks/bench_sketch.py --work /tmp/bench-sketch --fig-dir docs/img [--datasets monkey,synthetic]

For each dataset the data go through the real pipeline (``quickdraw fetch --source <folder>``, ``prepare``,
``cache build``, all into ``--work``; nothing is written into the repository except the figures):

* ``monkey``: the shared sample's 800 real monkey drawings (``../shared/data/quickdraw_dataset``), 80/10/10 split;
* ``synthetic``: 2,000 generated "square" drawings (a jittered, rotated square drawn from a random corner, half of
  them with a diagonal as a second stroke): a class whose structure is known, so what the model learns is visible.

Then :func:`quickdraw.pipeline.sketch.train` (wall and CPU time recorded), :func:`~quickdraw.pipeline.sketch.evaluate`
on the test split (trained model vs the same architecture untrained vs the marginal-offsets mixture fitted on the
train split; all per real step, in the train split's normalised units, lower is better), and a figure: one row of
real test drawings, then one row of samples for each temperature.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("QUICKDRAW_SHARED_DATA", REPO.parent / "shared" / "data" / "quickdraw_dataset"))
QUICKDRAW = str(REPO / ".venv" / "bin" / "quickdraw")
TEMPERATURES = (0.2, 0.5, 1.0)


def synthetic_squares(path: Path, n: int = 2000, seed: int = 0) -> None:
    """``n`` square drawings as a simplified ndjson file (0..255 integer coordinates)."""
    rng = np.random.default_rng(seed)
    with path.open("w") as f:
        for i in range(n):
            c = rng.uniform(90, 165, 2)
            s = rng.uniform(40, 85)
            th = rng.normal(0, 0.15)
            rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
            corners = (np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * s) @ rot.T + c
            k = int(rng.integers(4))
            order = np.roll(corners, -k, axis=0)
            ring = np.vstack([order, order[:1]])
            pts = [ring[0]]
            for a, b in zip(ring[:-1], ring[1:]):  # three points per edge, jittered like a hand
                for t in (1 / 3, 2 / 3, 1.0):
                    pts.append(a + (b - a) * t + rng.normal(0, 1.5, 2))
            strokes = [np.array(pts)]
            if rng.random() < 0.5:
                strokes.append(np.array([corners[0], corners[2]]) + rng.normal(0, 1.5, (2, 2)))
            drawing = [[np.clip(np.rint(st[:, 0]), 0, 255).astype(int).tolist(),
                        np.clip(np.rint(st[:, 1]), 0, 255).astype(int).tolist()] for st in strokes]
            f.write(json.dumps({"word": "square", "countrycode": "ZZ", "timestamp": "2017-01-01 00:00:00.00000 UTC",
                                "recognized": True, "key_id": str(10**15 + i), "drawing": drawing}) + "\n")


def _run(*args: str) -> None:
    p = subprocess.run([QUICKDRAW, *args], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"quickdraw {' '.join(args)} failed:\n{p.stderr}")


def build(name: str, work: Path) -> tuple[str, Path]:
    """Fetch (from a local folder), prepare and cache one dataset; returns (class, cache root)."""
    d = work / name
    root = d / "cache"
    if (root / name / "LATEST").exists():
        return ("monkey" if name == "monkey" else "square"), root
    if name == "monkey":
        source, word = SHARED / "full" / "simplified", "monkey"
    else:
        source, word = d / "src", "square"
        source.mkdir(parents=True, exist_ok=True)
        synthetic_squares(source / "square.ndjson")
    _run("fetch", "--classes", word, "--source", str(source), "--out", str(d / "raw"))
    _run("prepare", "--in", str(d / "raw"), "--out", str(d / "strokes"), "--formats", "stroke5")
    _run("cache", "build", "--in", str(d / "strokes"), "--name", name, "--root", str(root))
    return word, root


def figure(model: Any, ds: Any, word: str, out: Path, per_row: int = 8, seed: int = 0) -> None:
    """Rows: real test drawings, then samples at each temperature (labelled), 96 px tiles."""
    from PIL import Image, ImageDraw

    from quickdraw.models.sketch import SketchGrid, sample

    tile, label_w = 96, 70
    real = SketchGrid([np.asarray(ds[i][0], np.float32) for i in range(min(per_row, len(ds)))], cols=per_row)
    rows = [("real", real)] + [(f"t = {t:g}", sample(model, per_row, t, seed=seed)) for t in TEMPERATURES]
    canvas = Image.new("L", (label_w + per_row * tile, len(rows) * tile), 255)
    pen = ImageDraw.Draw(canvas)
    for r, (label, grid) in enumerate(rows):
        grid.cols = per_row
        canvas.paste(grid.to_image(tile), (label_w, r * tile))
        pen.text((6, r * tile + tile // 2 - 6), label, fill=0)
        pen.line([(label_w, r * tile), (canvas.width, r * tile)], fill=200)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    del word


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench-sketch"))
    ap.add_argument("--fig-dir", type=Path, default=None, help="Write sketch_<dataset>.png here (default: --work).")
    ap.add_argument("--datasets", default="synthetic,monkey")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch

    from quickdraw.datasets import load
    from quickdraw.models.sketch import load_sketch
    from quickdraw.pipeline.sketch import SketchParams, evaluate, train

    torch.set_num_threads(args.threads)
    results: list[dict[str, Any]] = []
    for name in args.datasets.split(","):
        word, root = build(name, args.work)
        for seed in [int(s) for s in args.seeds.split(",")]:
            p = SketchParams(classes=word, hidden=args.hidden, batch_size=args.batch_size, steps=args.steps,
                             eval_every=max(1, args.steps // 10), seed=seed, num_threads=args.threads)
            out = args.work / name / f"model-s{seed}"
            t0, c0 = time.perf_counter(), time.process_time()
            r = train(name, out, params=p, root=root)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            ev = evaluate(r.checkpoint, name, split="test", root=root, seed=seed)
            row = {"dataset": name, "seed": seed, "train_drawings": r.train_sequences,
                   "test_drawings": ev["sequences"], "test_steps": ev["model"]["steps"], "steps": r.steps,
                   "best_step": r.best_step, "hidden": args.hidden, "wall_s": wall, "cpu_s": cpu,
                   **{f"{k}_{m}": ev[k][m] for k in ("model", "untrained", "marginal")
                      for m in ("nll", "offset_nll", "pen_ce", "nll_dequantized")}}
            results.append(row)
            print(json.dumps(row), flush=True)
            if seed == int(args.seeds.split(",")[0]):
                model, _ = load_sketch(r.checkpoint)
                test = load(name, split="test", format="stroke5", root=root)
                figure(model, test, word, (args.fig_dir or args.work) / f"sketch_{name}.png")
    (args.work / "results.json").write_text(json.dumps(results, indent=2))
    print()
    head = f"{'dataset':10} {'seed':>4} {'train':>6} {'test':>5} {'steps':>6} {'wall s':>7} {'cpu s':>7} " \
           f"{'model':>8} {'untrained':>9} {'marginal':>8}"
    print(head)
    for r in results:
        print(f"{r['dataset']:10} {r['seed']:>4} {r['train_drawings']:>6} {r['test_drawings']:>5} {r['steps']:>6} "
              f"{r['wall_s']:>7.0f} {r['cpu_s']:>7.0f} {r['model_nll']:>8.3f} {r['untrained_nll']:>9.3f} "
              f"{r['marginal_nll']:>8.3f}")


if __name__ == "__main__":
    main()
