"""Training throughput of the biGRU classifier: bucketing's share and the model's share, on identical inputs.

One training step = forward, label-smoothed cross-entropy, backward, gradient clipping, AdamW step, for the
2-layer bidirectional GRU classifier (hidden 192, batch 256, 345 classes). Four setups, 2 x 2:

  (a) packed ``nn.GRU`` (``PackedGRUClassifier``, ``pack_padded_sequence``), random batches: the notebook
      baseline (DataLoader + shuffle + pad-to-longest collate);
  (b) exact unpacked biGRU (``GRUClassifier`` / ``ExactBiGRU``), the same random batches;
  (c) packed ``nn.GRU``, length-bucketed batches from ``quickdraw.datasets.BucketBatchSampler``;
  (d) exact unpacked biGRU, the same bucketed batches (what the trainer does).

(b)/(a) and (d)/(c) are the model's share (same tensors, only the recurrent implementation differs);
(c)/(a) and (d)/(b) are bucketing's share (same model, same sequences, only the batch composition differs).
All four models start from identical weights. The inputs are synthetic stroke-3 rows whose lengths are drawn
from the real Quick, Draw! point counts in ``$QUICKDRAW_SHARED_DATA/full/simplified/*.ndjson`` (default
``/work/shared/data/quickdraw_dataset``) after prepare's rules (fewer than 6 points dropped, more than 250
truncated); without that folder a gamma(3, 18) stand-in (median ~48) is used and the header says so.

Batches: a pool of ``--bucket-batches`` x 256 lengths, which is one ``BucketBatchSampler`` bucket. Bucketed:
every batch of the pool, all timed (a sample would misweight the one long-tail batch). Random: the chunks of
one shuffle of the same pool; ``--steps`` of them are timed, the same ones for (a) and (b), picked at evenly
spaced quantiles of their padded length T (random batches cost about the same except for T, which is 250
when a chunk holds a truncated drawing and ~130-200 otherwise; the header prints the timed chunks' mean T
beside the whole pool's). The default pool is 24 batches to keep a run at ~6-9 minutes on 2 shared cores: its bucketed
padding is ~12.5% (mean T ~54), against ~6% (mean T ~50) for the trainer's default bucket of 50 batches, so
the default understates bucketing by a few percent; ``--bucket-batches 50`` measures the trainer's bucket
(~10 minutes). The shared sample (~8.2k drawings) is 32 batches: one bucket in the trainer.

Each repeat is a fresh Python process (``_common.run_child``) that builds the same tensors, warms every setup
up with one untimed step and then runs the four setups' steps interleaved in proportion to their batch counts,
so load from other processes hits every setup alike. Per setup it records wall time (``perf_counter``) and the
process's CPU time (``time.process_time``: user + system over all its threads) around each step. The table
gives, over the ``--repeat`` runs, min-max of seconds per step, seq/s and the ratio to (a) computed within
each run, in wall and in CPU terms. On a loaded machine wall time moves with the neighbours; CPU time (one
torch thread by default) moves much less, which is why both are shown.

    python benchmarks/bench_train.py [--repeat 3] [--steps 4] [--bucket-batches 24] [--threads 1]
                                     [--hidden 192] [--batch-size 256] [--json FILE]

No target is checked (the exit status is 0 unless a run fails).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(HERE) not in sys.path:  # run as a script this is already so; imported from elsewhere it is not
    sys.path.insert(0, str(HERE))
from _common import parse_args_or_run_child, run_child, table, wall_and_cpu  # noqa: E402

DATA = Path(os.environ.get("QUICKDRAW_SHARED_DATA", "/work/shared/data/quickdraw_dataset"))
MIN_LEN, MAX_LEN = 6, 250  # prepare's defaults

SETUPS = [  # key, label, model, batches
    ("a", "(a) packed nn.GRU, random batches", "packed", "random"),
    ("b", "(b) exact unpacked, random batches", "exact", "random"),
    ("c", "(c) packed nn.GRU, bucketed batches", "packed", "bucketed"),
    ("d", "(d) exact unpacked, bucketed batches", "exact", "bucketed"),
]


# ------------------------------------------------------------------------------------------------ inputs


def real_lengths() -> tuple[Any, str]:
    """Points per drawing over every simplified ndjson file, after prepare's length rules (or a stand-in)."""
    import numpy as np

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
        pts = np.array(out, dtype=np.int64)
        kept = pts[pts >= MIN_LEN]
        return np.minimum(kept, MAX_LEN), (f"{len(out):,} real drawings in {len(files)} files, {len(kept):,} with "
                                           f">= {MIN_LEN} points, {(kept > MAX_LEN).sum()} truncated at {MAX_LEN}")
    rng = np.random.default_rng(0)
    return (np.clip(rng.gamma(3.0, 18.0, 20000).astype(np.int64), MIN_LEN, MAX_LEN),
            f"SYNTHETIC gamma(3, 18) stand-in ({DATA} has no simplified ndjson)")


def make_batch(lengths: Any, n_classes: int, rng: Any) -> tuple[Any, ...]:
    """A padded stroke-3 batch ``(x [B, T, 3] float, lengths [B], y [B])`` with random steps of ``lengths``."""
    import numpy as np
    import torch

    T = int(lengths.max())
    x = torch.zeros(len(lengths), T, 3)
    mask = torch.arange(T)[None, :] < torch.from_numpy(lengths)[:, None]
    x[mask] = torch.from_numpy(rng.integers(-20, 21, (int(mask.sum()), 3)).astype(np.float32))
    x[..., 2] = (x[..., 2] > 15).float() * mask
    y = torch.from_numpy(rng.integers(0, n_classes, len(lengths)))
    return x, torch.from_numpy(lengths.astype(np.int64)), y


def batch_lengths(pool: Any, batch_size: int, steps: int, seed: int) -> dict[str, list[Any]]:
    """The random and bucketed batches' lengths (``steps`` random chunks, every bucketed batch) of ``pool``."""
    import numpy as np

    from quickdraw.datasets import BucketBatchSampler

    perm = np.random.default_rng([seed, 1]).permutation(len(pool))
    chunks = [pool[perm[i : i + batch_size]] for i in range(0, len(pool), batch_size)]
    # Random batches differ mostly by their longest drawing (T = 250 when one is truncated, ~130-200 when
    # not): time the chunks at evenly spaced quantiles of T, so the timed ones have the pool's mix of T.
    by_t = sorted(range(len(chunks)), key=lambda i: (int(chunks[i].max()), i))
    random = [chunks[by_t[int((j + 0.5) * len(chunks) / steps)]] for j in range(steps)]
    sampler = BucketBatchSampler(pool, batch_size, shuffle=True, seed=seed, bucket_size=len(pool))
    return {"random": random, "bucketed": [pool[b] for b in sampler.batches()]}


def padding(batches: list[Any]) -> float:
    return 1 - sum(int(b.sum()) for b in batches) / sum(len(b) * int(b.max()) for b in batches)


# ------------------------------------------------------------------------------------------------- child


def child_train(spec: dict[str, Any]) -> dict[str, Any]:
    """One repeat: the four setups, interleaved, each step timed in wall and process-CPU seconds."""
    import numpy as np
    import torch
    from torch import nn

    from quickdraw.models import GRUClassifier, ModelConfig, PackedGRUClassifier

    load_before = os.getloadavg()
    torch.set_num_threads(spec["threads"])
    torch.manual_seed(spec["seed"])
    pool = np.load(spec["pool"])
    lens = batch_lengths(pool, spec["batch_size"], spec["steps"], spec["seed"])
    rng = np.random.default_rng([spec["seed"], 2])
    batches = {k: [make_batch(b, spec["classes"], rng) for b in v] for k, v in lens.items()}
    warm = make_batch(rng.choice(pool, spec["batch_size"]), spec["classes"], rng)

    cfg = ModelConfig(n_classes=spec["classes"], hidden=spec["hidden"], layers=2, dropout=0.3, xy_scale=10.0)
    exact = GRUClassifier(cfg)
    models = {  # identical starting weights in all four
        "a": PackedGRUClassifier.from_exact(exact), "b": copy.deepcopy(exact),
        "c": PackedGRUClassifier.from_exact(exact), "d": exact,
    }
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    opts = {k: torch.optim.AdamW(m.train().parameters(), lr=1e-3, weight_decay=1e-2) for k, m in models.items()}
    acc = {k: {"wall": 0.0, "cpu": 0.0, "seqs": 0, "steps": 0} for k in models}

    def step(k: str, batch: tuple[Any, ...], timed: bool) -> None:
        x, lengths, y = batch
        w0, c0 = wall_and_cpu()
        loss = loss_fn(models[k](x, lengths), y)
        opts[k].zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(models[k].parameters(), 1.0)
        opts[k].step()
        w1, c1 = wall_and_cpu()
        if timed:
            a = acc[k]
            a["wall"] += w1 - w0
            a["cpu"] += c1 - c0
            a["seqs"] += len(y)
            a["steps"] += 1

    for k in models:
        step(k, warm, timed=False)
    kind = {k: b for k, _, _, b in SETUPS}
    schedule = sorted(((j + 0.5) / len(batches[kind[k]]), i, k, j)
                      for i, (k, _, _, _) in enumerate(SETUPS) for j in range(len(batches[kind[k]])))
    t0 = time.perf_counter()
    for _, _, k, j in schedule:
        step(k, batches[kind[k]][j], timed=True)
    return {"setups": acc, "seconds": time.perf_counter() - t0, "load_before": load_before,
            "load_after": os.getloadavg(), "threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(), "torch": torch.__version__}


CHILDREN = {"train": child_train}


# ------------------------------------------------------------------------------------------------- parent


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def rng_str(vals: list[float], fmt: str) -> str:
    lo, hi = min(vals), max(vals)
    return format(lo, fmt) if format(lo, fmt) == format(hi, fmt) else f"{format(lo, fmt)}-{format(hi, fmt)}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3, help="fresh-process runs; the table shows min-max over them")
    ap.add_argument("--steps", type=int, default=4,
                    help="random batches timed per random-batch setup (picked at quantiles of their T)")
    ap.add_argument("--bucket-batches", type=int, default=24,
                    help="batches in the pool: one BucketBatchSampler bucket, all timed when bucketed (the "
                         "trainer's default bucket is 50 batches: more padding here, see the docstring)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1 default: on a shared 2-core box, 2 threads make timings erratic)")
    ap.add_argument("--hidden", type=int, default=192)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--classes", type=int, default=345)
    ap.add_argument("--seed", type=int, default=0)
    a = parse_args_or_run_child(ap, CHILDREN)
    if a is None:  # ran one repeat as a child process
        return 0
    import numpy as np
    import torch

    if a.steps > a.bucket_batches:
        ap.error("--steps must be <= --bucket-batches (random batches are chunks of the same pool)")
    lengths, source = real_lengths()
    bs = a.batch_size
    pool = np.random.default_rng(a.seed).choice(lengths, a.bucket_batches * bs).astype(np.int64)
    lens = batch_lengths(pool, bs, a.steps, a.seed)
    cells = {k: sum(len(b) * int(b.max()) for b in v) / len(v) for k, v in lens.items()}
    all_random = batch_lengths(pool, bs, a.bucket_batches, a.seed)["random"]

    print(f"bench_train  {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  torch {torch.__version__}, "
          f"python {platform.python_version()}, {cpu_model()}, {os.cpu_count()} CPUs, torch threads {a.threads}, "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"lengths: {source}; median {np.median(lengths):.0f}, p90 {np.percentile(lengths, 90):.0f}, "
          f"p99 {np.percentile(lengths, 99):.0f}, max {lengths.max()}")
    print(f"model: 2-layer biGRU, hidden {a.hidden}, {a.classes} classes, batch {bs}; step = forward + "
          f"label-smoothed CE + backward + clip + AdamW")
    print(f"pool: {a.bucket_batches} batches x {bs} = {len(pool):,} sequences; random: {a.steps} timed chunks of "
          f"one shuffle, at quantiles of T (padding {padding(lens['random']):.1%}, mean T {np.mean([b.max() for b in lens['random']]):.0f}; "
          f"all {a.bucket_batches} chunks: {padding(all_random):.1%}, mean T "
          f"{np.mean([b.max() for b in all_random]):.0f}); bucketed: all {len(lens['bucketed'])} BucketBatchSampler "
          f"batches (padding {padding(lens['bucketed']):.1%}, mean T {np.mean([b.max() for b in lens['bucketed']]):.0f})",
          flush=True)

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench_train-") as tmp:
        np.save(Path(tmp) / "pool.npy", pool)
        spec = {"pool": str(Path(tmp) / "pool.npy"), "threads": a.threads, "hidden": a.hidden, "batch_size": bs,
                "classes": a.classes, "steps": a.steps, "seed": a.seed}
        for i in range(a.repeat):
            r = run_child(__file__, "train", spec, env, wall_key="process_wall")
            runs.append(r)
            s = r["setups"]
            print(f"  run {i + 1}/{a.repeat}: {r['seconds']:.0f} s timed, load {r['load_before'][0]:.2f} -> "
                  f"{r['load_after'][0]:.2f}, torch threads {r['threads']} (interop {r['interop_threads']}); seq/s wall "
                  + " ".join(f"({k}) {s[k]['seqs'] / s[k]['wall']:.0f}" for k, _, _, _ in SETUPS)
                  + "; CPU " + " ".join(f"({k}) {s[k]['seqs'] / s[k]['cpu']:.0f}" for k, _, _, _ in SETUPS),
                  flush=True)

    def per(k: str, f: str) -> list[float]:
        return [r["setups"][k][f] / r["setups"][k]["steps"] for r in runs]

    def rate(k: str, f: str) -> list[float]:
        return [r["setups"][k]["seqs"] / r["setups"][k][f] for r in runs]

    def ratio(num: str, den: str, f: str) -> list[float]:  # paired within each run
        return [(r["setups"][num]["seqs"] / r["setups"][num][f]) / (r["setups"][den]["seqs"] / r["setups"][den][f])
                for r in runs]

    print(f"\nmin-max over {len(runs)} fresh-process runs; torch {torch.__version__}, {a.threads} torch thread(s), "
          f"{os.cpu_count()} CPUs; 'vs (a)' is taken within each run")
    header = ["setup", "steps", "padding", "mean T", "wall s/step", "CPU s/step", "seq/s (wall)", "seq/s (CPU)",
              "vs (a) wall", "vs (a) CPU"]
    rows = []
    for k, label, _, kind in SETUPS:
        rows.append([label, str(runs[0]["setups"][k]["steps"]), f"{padding(lens[kind]):.1%}",
                     f"{cells[kind] / bs:.0f}", rng_str(per(k, "wall"), ".2f"), rng_str(per(k, "cpu"), ".2f"),
                     rng_str(rate(k, "wall"), ".0f"), rng_str(rate(k, "cpu"), ".0f"),
                     rng_str(ratio(k, "a", "wall"), ".2f") + "x", rng_str(ratio(k, "a", "cpu"), ".2f") + "x"])
    print(table(header, rows))
    print("\nwhere the gain comes from (same sequences; wall / CPU, min-max over runs):")
    parts = [("model, random batches      (b)/(a)", "b", "a"), ("model, bucketed batches    (d)/(c)", "d", "c"),
             ("bucketing, packed nn.GRU   (c)/(a)", "c", "a"), ("bucketing, exact unpacked  (d)/(b)", "d", "b"),
             ("both: trainer vs notebook  (d)/(a)", "d", "a")]
    for label, n, d in parts:
        print(f"  {label}: {rng_str(ratio(n, d, 'wall'), '.2f')}x / {rng_str(ratio(n, d, 'cpu'), '.2f')}x")
    cpu_share = [r["setups"][k]["cpu"] / r["setups"][k]["wall"] for r in runs for k in r["setups"]]
    print(f"  CPU time / wall time per setup: {rng_str(cpu_share, '.2f')} (1.00 = the step had a core to itself)")

    if a.json:
        a.json.write_text(json.dumps({"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()},
                                      "lengths": source, "runs": runs}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
