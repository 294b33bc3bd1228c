"""DataLoader throughput and padding on the real length distribution (issue 4).

The sequence lengths come from the real drawings in ``/work/shared/data/quickdraw_dataset/full/simplified/
*.ndjson`` (points per drawing = sum of ``len(x)`` over strokes, after prepare's default rules: fewer than 6
dropped, more than 250 truncated); nothing is copied from there. ``--n`` lengths are drawn from that empirical
distribution (with replacement), random int16 steps of those lengths are written as prepare shards (stroke-3
and stroke-5, one ``train`` split) and turned into a cache with ``quickdraw.cache.build_cache``. Then, each in a
fresh Python subprocess (imports and ``qd.load`` outside the timer), one epoch of batches of 256:

1. ``DataLoader(ds.torch(), batch_sampler=BucketBatchSampler(ds.lengths, 256), collate_fn=collate_padded)``
   with ``num_workers=0`` and ``num_workers=2`` (worker start-up included; time to the first batch shown);
2. the same single-process loader with plain random batches (``BatchSampler(RandomSampler)``: no bucketing);
3. ``ds.batch(indices)`` over the same ``BucketBatchSampler`` batches (the trainer's fast path).

Padding fraction = padded cells / total cells = ``1 - sum(lengths) / sum(B * T_max)`` over an epoch, for random
batches, ``BucketBatchSampler`` (shuffle, default bucket of 50 batches) and fully sorted batches
(``shuffle=False``, the lower bound); the loader rows also report it from the tensors they produced.

    python benchmarks/bench_loader.py [--n 200000] [--batch-size 256] [--repeat 3] [--keep DIR] [--json FILE]

Target: DataLoader (BucketBatchSampler + collate_padded, num_workers=0) >= 100k sequences/s.
Skipped (exit 0, with a message) when the shared data folder is absent.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(HERE) not in sys.path:  # run as a script this is already so; imported from elsewhere it is not
    sys.path.insert(0, str(HERE))
from _common import best_of as _best_of
from _common import parse_args_or_run_child, print_checks, table, work_dir
from _common import peak_rss_mb as _peak_rss_mb
from _common import run_child as _run_child

SHARED = Path(os.environ.get("QUICKDRAW_SHARED_DATA", "/work/shared/data/quickdraw_dataset")) / "full" / "simplified"
CLASSES = ["cat", "dog", "apple", "banana", "bicycle", "car", "fish", "house", "tree", "snake"]
MIN_LEN, MAX_LEN = 6, 250  # prepare's defaults

TARGET_SEQ_PER_S = 100_000.0


# ------------------------------------------------------------------------------------------------ inputs


def real_point_counts(folder: Path) -> tuple[Any, int, int]:
    """Points per drawing over every ``*.ndjson`` in ``folder``: (array, files, unparsable lines)."""
    import numpy as np

    counts: list[int] = []
    files = sorted(glob.glob(str(folder / "*.ndjson")))
    bad = 0
    for f in files:
        with open(f, encoding="utf-8") as fh:
            for line in fh:
                try:
                    counts.append(sum(len(s[0]) for s in json.loads(line)["drawing"]))
                except (ValueError, KeyError, TypeError, IndexError):
                    bad += 1
    return np.asarray(counts, dtype=np.int64), len(files), bad


def write_shards(out: Path, lengths3: Any, seed: int = 0) -> None:
    """Prepare-format shards (docs/FORMATS.md section 2), split ``train`` only, with these stroke-3 lengths."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from quickdraw.pipeline.prepare import output_schema

    rng = np.random.default_rng(seed)
    n = len(lengths3)
    labels = np.sort(rng.integers(0, len(CLASSES), n)).astype(np.int32)
    key_ids = (np.uint64(4_500_000_000_000_000) + np.arange(n, dtype=np.uint64) * np.uint64(7919))
    total = int(lengths3.sum())
    s3 = np.empty((total, 3), dtype=np.int16)
    s3[:, :2] = rng.integers(-24, 25, size=(total, 2), dtype=np.int16)
    s3[:, 2] = rng.random(total) < 0.12
    s3[np.cumsum(lengths3) - 1, 2] = 1
    # stroke-5: (dx, dy, p_down, p_up, p_end), one end step after each drawing
    dest = np.arange(total, dtype=np.int64) + np.repeat(np.arange(n, dtype=np.int64), lengths3)
    s5 = np.zeros((total + n, 5), dtype=np.int16)
    s5[dest, :2] = s3[:, :2]
    s5[dest, 2] = 1 - s3[:, 2]
    s5[dest, 3] = s3[:, 2]
    s5[np.cumsum(lengths3 + 1) - 1, 4] = 1
    n_strokes = np.add.reduceat(s3[:, 2].astype(np.int64), np.concatenate(([0], np.cumsum(lengths3)[:-1])))
    words = np.array(CLASSES, dtype=object)
    params = {"min_len": MIN_LEN, "max_len": MAX_LEN, "on_long": "truncate", "fractions": [1.0, 0.0, 0.0], "seed": seed,
              "normalize": False}
    for fmt, steps, lens in (("stroke3", s3, lengths3), ("stroke5", s5, lengths3 + 1)):
        k = steps.shape[1]
        offs = np.concatenate(([0], np.cumsum(lens))).astype(np.int32)
        seq = pa.ListArray.from_arrays(pa.array(offs), pa.FixedSizeListArray.from_arrays(pa.array(steps.reshape(-1)), k))
        meta = {"classes": CLASSES, "params": params, "input_fingerprint": f"bench-loader-{seed}-{n}", "format": fmt,
                "split": "train", "scale": None, "schema_version": 1}
        schema = output_schema(fmt).with_metadata({"quickdraw": json.dumps(meta)})
        t = pa.Table.from_arrays([
            pa.array(key_ids, pa.uint64()), pa.array(words[labels], pa.string()), pa.array(labels, pa.int32()),
            pa.array(np.full(n, "US", dtype=object), pa.string()), pa.array(np.ones(n, bool), pa.bool_()),
            pa.array(np.full(n, 1488326400_000000), pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            pa.array(n_strokes, pa.uint16()),
            pa.array(lengths3, pa.uint32()), pa.array(lens, pa.int32()), seq,
        ], schema=schema)
        d = out / fmt / "train"
        d.mkdir(parents=True, exist_ok=True)
        pq.write_table(t, d / "part-00000.parquet", compression="zstd", compression_level=1)
    (out / "_manifest.json").write_text(json.dumps({"classes": CLASSES, "params": params, "rows": n}) + "\n")


def padding_fraction(lengths: Any, batches: list[Any]) -> float:
    import numpy as np

    cells = sum(len(b) * int(lengths[b].max()) for b in batches)
    return 1.0 - float(np.sum(lengths)) / cells


def random_batches(n: int, bs: int, seed: int = 0) -> list[Any]:
    import numpy as np

    perm = np.random.default_rng(seed).permutation(n)
    return [perm[i:i + bs] for i in range(0, n, bs)]


# ----------------------------------------------------------------------------------------------- children


def child_loader(spec: dict[str, Any]) -> dict[str, Any]:
    import torch
    from torch.utils.data import BatchSampler, DataLoader, RandomSampler

    import quickdraw as qd
    from quickdraw.datasets import BucketBatchSampler, collate_padded

    torch.set_num_threads(1)
    ds = qd.load("bench", split="train", format=spec["format"], root=spec["root"])
    bs = spec["batch_size"]
    mode = spec["mode"]
    if mode == "random":
        sampler: Any = BatchSampler(RandomSampler(range(len(ds)), generator=torch.Generator().manual_seed(0)), bs, False)
    else:
        sampler = BucketBatchSampler(ds.lengths, batch_size=bs, shuffle=True, seed=0)
    seqs = cells = 0
    first = None
    if mode == "fast":
        batches = sampler.batches()
        t0 = time.perf_counter()
        for b in batches:
            out = ds.batch(b)
            x = out["x"]
            seqs += x.shape[0]
            cells += x.shape[0] * x.shape[1]
            if first is None:
                first = time.perf_counter() - t0
    else:
        loader = DataLoader(ds.torch(), batch_sampler=sampler, collate_fn=collate_padded, num_workers=spec["workers"])
        t0 = time.perf_counter()
        for out in loader:
            x = out["x"]
            seqs += x.shape[0]
            cells += x.shape[0] * x.shape[1]
            if first is None:
                first = time.perf_counter() - t0
    secs = time.perf_counter() - t0
    valid = int(ds.lengths.sum())
    return {"seconds": secs, "first_batch": first, "sequences": seqs, "padding": 1 - valid / cells,
            "peak_rss_mb": _peak_rss_mb()}


CHILDREN = {"loader": child_loader}


# ------------------------------------------------------------------------------------------------- parent


def best_of(kind: str, spec: dict[str, Any], env: dict[str, str], repeat: int, label: str) -> dict[str, Any]:
    return _best_of(lambda: _run_child(__file__, kind, spec, env), repeat, label,
                    lambda r: f"{r['seconds']:.2f} s, {r['sequences'] / r['seconds']:,.0f} seq/s")


def main() -> int:
    ap = argparse.ArgumentParser(description="DataLoader throughput and padding on the real length distribution")
    ap.add_argument("--n", type=int, default=200_000, help="sequences in the synthetic cache (default 200k)")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3, help="runs per scenario; best is shown")
    ap.add_argument("--formats", default="stroke3,stroke5")
    ap.add_argument("--keep", type=Path, help="work dir to keep")
    a = parse_args_or_run_child(ap, CHILDREN)
    if a is None:  # ran one scenario as a child process
        return 0

    if not SHARED.is_dir() or not any(SHARED.glob("*.ndjson")):
        print(f"SKIP: {SHARED} is absent (no real drawings to take the length distribution from)")
        return 0
    import numpy as np

    t0 = time.perf_counter()
    points, n_files, bad = real_point_counts(SHARED)
    kept = points[points >= MIN_LEN]
    real3 = np.minimum(kept, MAX_LEN)
    print(f"real lengths: {len(points):,} drawings in {n_files} files ({bad} unparsable lines), {len(real3):,} after "
          f"min_len {MIN_LEN} (truncated at {MAX_LEN}: {(kept > MAX_LEN).sum()}); stroke-3 length p5/p50/p95/max = "
          f"{'/'.join(str(int(v)) for v in np.percentile(real3, [5, 50, 95]))}/{real3.max()} "
          f"({time.perf_counter() - t0:.1f} s)", flush=True)
    lengths3 = np.random.default_rng(0).choice(real3, size=a.n, replace=True).astype(np.int64)

    root, tmp = work_dir(a.keep, "bench_loader-")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    res: dict[str, Any] = {"n": a.n, "real_drawings": len(points), "real_kept": len(real3)}
    try:
        t0 = time.perf_counter()
        strokes, cache = root / "strokes", root / "cache"
        shutil.rmtree(strokes, ignore_errors=True)
        shutil.rmtree(cache, ignore_errors=True)
        write_shards(strokes, lengths3)
        from quickdraw.cache import build_cache

        build_cache(strokes, cache, "bench")
        print(f"cache: {a.n:,} sequences, stroke-3 + stroke-5, built in {time.perf_counter() - t0:.1f} s", flush=True)

        fmts = [f for f in a.formats.split(",") if f]
        bs = a.batch_size
        from quickdraw.datasets import BucketBatchSampler

        pad: dict[str, dict[str, float]] = {}
        for fmt in fmts:
            lens = lengths3 + (1 if fmt == "stroke5" else 0)
            pad[fmt] = {
                "random": padding_fraction(lens, random_batches(len(lens), bs)),
                "bucket": padding_fraction(lens, BucketBatchSampler(lens, bs, shuffle=True, seed=0).batches()),
                "sorted": padding_fraction(lens, BucketBatchSampler(lens, bs, shuffle=False).batches()),
            }
        res["padding"] = pad

        scenarios = [("bucket", 0, "DataLoader + BucketBatchSampler + collate_padded, num_workers=0"),
                     ("bucket", 2, "DataLoader + BucketBatchSampler + collate_padded, num_workers=2"),
                     ("random", 0, "DataLoader + random batches + collate_padded, num_workers=0"),
                     ("fast", 0, "ds.batch(indices) over BucketBatchSampler batches")]
        runs: dict[str, dict[str, Any]] = {}
        for fmt in fmts:
            for mode, workers, label in scenarios:
                spec = {"root": str(cache), "format": fmt, "mode": mode, "workers": workers, "batch_size": bs}
                runs[f"{fmt}/{mode}/{workers}"] = best_of("loader", spec, env, a.repeat, f"{fmt} {mode} w={workers}")
        res["runs"] = runs
        report(res, a, fmts, scenarios)
        if a.json:
            a.json.write_text(json.dumps(res, indent=2))
        return 0 if res["ok"] else 1
    finally:
        if tmp is not None:
            tmp.cleanup()


def report(res: dict[str, Any], a: argparse.Namespace, fmts: list[str], scenarios: list[tuple[str, int, str]]) -> None:
    print()
    print(f"loader benchmark: {a.n:,} synthetic sequences with lengths drawn from {res['real_kept']:,} real drawings; "
          f"batches of {a.batch_size}; one epoch; time = best of {a.repeat} runs, each in a fresh process "
          f"(imports and qd.load outside the timer); torch intra-op threads = 1")
    rows = []
    for fmt in fmts:
        for mode, workers, label in scenarios:
            r = res["runs"][f"{fmt}/{mode}/{workers}"]
            rows.append([f"{fmt}: {label}", f"{r['seconds']:.2f}", f"{r['sequences'] / r['seconds']:,.0f}",
                         f"{r['first_batch'] * 1e3:.0f}", f"{100 * r['padding']:.1f}%", f"{r['peak_rss_mb']:.0f}"])
    print()
    print(table(["scenario", "seconds", "sequences/s", "first batch ms", "padding", "peak RSS MB"], rows))
    print()
    print("padding fraction (padded cells / total cells) over one epoch, on the real length distribution")
    prow = []
    for fmt in fmts:
        p = res["padding"][fmt]
        prow.append([fmt, f"{100 * p['random']:.1f}%", f"{100 * p['bucket']:.1f}%", f"{100 * p['sorted']:.1f}%"])
    print(table(["format", "random batches (no bucketing)", "BucketBatchSampler (shuffle)", "sorted (lower bound)"],
                prow))
    checks = []
    for fmt in fmts:
        r = res["runs"][f"{fmt}/bucket/0"]
        sps = r["sequences"] / r["seconds"]
        checks.append((f"{fmt}: DataLoader num_workers=0 >= {TARGET_SEQ_PER_S:,.0f} sequences/s", f"{sps:,.0f}",
                       sps >= TARGET_SEQ_PER_S))
    print()
    print_checks(res, checks)


if __name__ == "__main__":
    sys.exit(main())
