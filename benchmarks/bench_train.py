"""Training throughput: packed biGRU on random batches (baseline) vs the exact unpacked biGRU on bucketed batches.

One training step = forward, label-smoothed cross-entropy, backward, gradient clipping, AdamW step. Both
models are the same 2-layer bidirectional GRU (hidden 192, batch 256, 345 classes) with identical weights;
only the recurrent implementation and the batch composition differ:

  (a) ``PackedGRUClassifier``: ``pack_padded_sequence`` over batches drawn uniformly at random (the usual
      DataLoader + shuffle + collate setup);
  (b) ``GRUClassifier`` (``ExactBiGRU``): plain ``nn.GRU`` per direction over padded, length-bucketed
      batches from ``quickdraw.datasets.BucketBatchSampler``.
(c) and (d) swap the batches, to show how much of the gain comes from bucketing and how much from dropping
``pack_padded_sequence``.

Sequence lengths are the real point counts of the Quick, Draw! simplified drawings in
``$QUICKDRAW_SHARED_DATA/full/simplified`` (default ``/work/shared/data/quickdraw_dataset``), truncated at
250 as prepare does; without that directory a gamma(3, 18) stand-in (median ~48) is used.

    python benchmarks/bench_train.py [--steps 8] [--threads 1] [--hidden 192] [--batch-size 256]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from quickdraw.datasets import BucketBatchSampler
from quickdraw.models import GRUClassifier, ModelConfig, PackedGRUClassifier

DATA = Path(os.environ.get("QUICKDRAW_SHARED_DATA", "/work/shared/data/quickdraw_dataset"))


def real_lengths(max_len: int = 250) -> tuple[np.ndarray, str]:
    """Points per drawing across every simplified ndjson file (or a synthetic stand-in)."""
    files = sorted((DATA / "full" / "simplified").glob("*.ndjson"))
    out: list[int] = []
    for f in files:
        with open(f, encoding="utf-8") as fh:
            for line in fh:
                try:
                    drawing = json.loads(line)["drawing"]
                except (ValueError, KeyError):
                    continue
                out.append(sum(len(s[0]) for s in drawing))
    if out:
        return np.clip(np.array(out, dtype=np.int64), 1, max_len), f"{len(out)} real drawings, {len(files)} files"
    rng = np.random.default_rng(0)
    return np.clip(rng.gamma(3.0, 18.0, 20000).astype(np.int64), 6, max_len), "synthetic gamma(3, 18)"


def make_batch(lengths: np.ndarray, n_classes: int, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
    T = int(lengths.max())
    x = torch.zeros(len(lengths), T, 3)
    mask = torch.arange(T)[None, :] < torch.from_numpy(lengths)[:, None]
    x[mask] = torch.from_numpy(rng.integers(-20, 21, (int(mask.sum()), 3)).astype(np.float32))
    x[..., 2] = (x[..., 2] > 15).float() * mask
    y = torch.from_numpy(rng.integers(0, n_classes, len(lengths)))
    return x, torch.from_numpy(lengths.astype(np.int64)), y


class Runner:
    """One model + optimizer; ``step`` times a full training step."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model.train()
        self.opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
        self.seconds, self.seqs = 0.0, 0

    def step(self, batch: tuple[torch.Tensor, ...], timed: bool) -> None:
        x, lengths, y = batch
        t0 = time.perf_counter()
        loss = self.loss_fn(self.model(x, lengths), y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        if timed:
            self.seconds += time.perf_counter() - t0
            self.seqs += len(y)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=6, help="timed random batches per random-batch setup")
    ap.add_argument("--bucket-batches", type=int, default=50, help="batches in the pool (all timed when bucketed)")
    ap.add_argument("--skip-d", action="store_true", help="skip (d), packed on bucketed batches (slowest part)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1 default: on a shared 2-core box, 2 threads make timings erratic)")
    ap.add_argument("--hidden", type=int, default=192)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--classes", type=int, default=345)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    lengths, source = real_lengths()
    bs, n = args.batch_size, args.steps
    print(f"lengths: {source}; median {np.median(lengths):.0f}, p90 {np.percentile(lengths, 90):.0f}, "
          f"max {lengths.max()}; hidden {args.hidden}, batch {bs}, {args.threads} thread(s), {n} random / {args.bucket_batches} bucketed batches timed")

    # One pool of `--bucket-batches` batches drawn from the real lengths; 50 is one BucketBatchSampler
    # bucket, so the bucketed batches carry exactly the padding a real epoch has, and all of them are
    # timed (a sample would misweight the one long-tail batch). Random batches are consecutive chunks of
    # a shuffle of the same pool (what DataLoader(shuffle=True) gives); they all look alike (each holds
    # some long drawing), so `--steps` of them suffice.
    pool = rng.choice(lengths, args.bucket_batches * bs)
    perm = rng.permutation(len(pool))
    random_batches = [make_batch(pool[perm[i * bs : (i + 1) * bs]], args.classes, rng) for i in range(n)]
    sampler = BucketBatchSampler(pool, bs, shuffle=True, seed=0, bucket_size=len(pool))
    bucketed = [make_batch(pool[b], args.classes, rng) for b in sampler.batches()]
    warm = [make_batch(rng.choice(lengths, bs), args.classes, rng)]

    def pad(bl: list[tuple[torch.Tensor, ...]]) -> float:
        return 1 - sum(int(b[1].sum()) for b in bl) / sum(b[0].shape[0] * b[0].shape[1] for b in bl)

    cfg = ModelConfig(n_classes=args.classes, hidden=args.hidden, layers=2, dropout=0.3, xy_scale=10.0)
    exact = GRUClassifier(cfg)
    setups = [
        ("(a) packed, random batches", Runner(PackedGRUClassifier.from_exact(exact)), random_batches),
        ("(b) exact unpacked, bucketed", Runner(exact), bucketed),
        ("(c) exact unpacked, random batches", Runner(GRUClassifier(cfg)), random_batches),
    ]
    if not args.skip_d:
        setups.append(("(d) packed, bucketed batches", Runner(PackedGRUClassifier(cfg)), bucketed))
    for _, r, _ in setups:
        r.step(warm[0], timed=False)
    # Interleaved in proportion to each setup's batch count, so load from other processes on a shared
    # machine hits every setup alike.
    schedule = sorted(
        ((j + 0.5) / len(batches), k, j) for k, (_, _, batches) in enumerate(setups) for j in range(len(batches))
    )
    for _, k, j in schedule:
        setups[k][1].step(setups[k][2][j], timed=True)
    base = setups[0][1].seqs / setups[0][1].seconds
    print(f"\n{'setup':38s} {'seq/s':>8s} {'padding':>8s} {'vs (a)':>7s}")
    rates = []
    for name, r, batches in setups:
        rate = r.seqs / r.seconds
        rates.append(rate)
        print(f"{name:38s} {rate:8.0f} {pad(batches):8.1%} {rate / base:6.1f}x")
    ratio = rates[1] / base
    print(f"\nexact+bucketed / packed+random = {ratio:.1f}x (target >= 6x): {'OK' if ratio >= 6 else 'BELOW TARGET'}")


if __name__ == "__main__":
    main()
