"""Synthetic stroke shards in the exact prepare-output contract (docs/FORMATS.md section 2).

Tests, benchmarks and docs examples use it to build caches without a bucket or the prepare stage; it is
vectorised so that a million-sequence input takes seconds, not minutes.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from quickdraw.shard_schema import FORMATS as _CHANNELS
from quickdraw.shard_schema import output_schema

__all__ = ["STROKES_SCHEMAS", "strokes_schema", "write_synthetic_strokes"]


def strokes_schema(fmt: str) -> pa.Schema:
    """The Arrow schema of a prepare shard for ``fmt`` (``stroke3`` or ``stroke5``).

    The very schema ``quickdraw.pipeline.prepare`` writes (:func:`quickdraw.shard_schema.output_schema`),
    taken from the shared lower module so that this cache helper never imports a pipeline stage.
    """
    return output_schema(fmt)


STROKES_SCHEMAS = {fmt: strokes_schema(fmt) for fmt in _CHANNELS}


def _stroke3(rng: np.random.Generator, lengths: np.ndarray) -> np.ndarray:
    total = int(lengths.sum())
    steps = np.empty((total, 3), dtype=np.int16)
    steps[:, :2] = rng.integers(-24, 25, size=(total, 2), dtype=np.int16)
    steps[:, 2] = rng.random(total) < 0.12
    ends = np.cumsum(lengths) - 1
    steps[ends, 2] = 1  # a drawing's last point always ends its last stroke
    return steps


def _to_stroke5(s3: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    # Sketch-RNN stroke-5: (dx, dy, p_down, p_up, p_end) plus one end step per drawing.
    n = len(lengths)
    out = np.zeros((len(s3) + n, 5), dtype=np.int16)
    starts3 = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    shift = np.repeat(np.arange(n, dtype=np.int64), lengths)
    dest = np.arange(len(s3), dtype=np.int64) + shift
    out[dest, :2] = s3[:, :2]
    out[dest, 2] = 1 - s3[:, 2]
    out[dest, 3] = s3[:, 2]
    end_rows = starts3 + lengths + np.arange(n)
    out[end_rows, 4] = 1
    return out


def write_synthetic_strokes(
    out: str | os.PathLike[str],
    classes: Sequence[str] = ("cat", "dog", "apple"),
    n_per_class: int = 20,
    *,
    seed: int = 0,
    fractions: Mapping[str, float] | None = None,
    formats: Sequence[str] = ("stroke3", "stroke5"),
    min_len: int = 6,
    max_len: int = 250,
    rows_per_shard: int = 1 << 20,
) -> Path:
    """Write random but valid prepare shards (both formats share rows) and ``_manifest.json`` last.

    The same arguments always give byte-identical files.
    """
    out = Path(out)
    fractions = dict(fractions or {"train": 0.8, "val": 0.1, "test": 0.1})
    rng = np.random.default_rng(seed)
    n = len(classes) * n_per_class
    labels = np.repeat(np.arange(len(classes), dtype=np.int32), n_per_class)
    key_ids = rng.choice(np.uint64(2**62), size=n, replace=False).astype(np.uint64) + np.uint64(4_000_000_000)
    # Roughly the real length distribution: mostly 20-80 steps, a tail up to max_len.
    lengths3 = np.clip(rng.gamma(3.0, 18.0, size=n).astype(np.int64), min_len, max_len)
    split_names = list(fractions)
    p = np.array([fractions[s] for s in split_names], dtype=float)
    split_of = rng.choice(len(split_names), size=n, p=p / p.sum())
    countries = np.array(["US", "GB", "DE", "BR", "JP", "FR"], dtype=object)
    cc = countries[rng.integers(0, len(countries), size=n)]
    recognized = rng.random(n) < 0.9
    ts0 = int(dt.datetime(2017, 3, 1, tzinfo=dt.timezone.utc).timestamp() * 1e6)
    timestamps = ts0 + rng.integers(0, 10**13, size=n)
    s3_all = _stroke3(rng, lengths3)
    offsets3_all = np.concatenate([[0], np.cumsum(lengths3)]).astype(np.int64)
    n_strokes = np.add.reduceat(s3_all[:, 2].astype(np.int64), offsets3_all[:-1]) if n else np.zeros(0, np.int64)

    params = {"min_len": min_len, "max_len": max_len, "on_long": "truncate", "fractions": fractions, "seed": seed}
    words = np.array(list(classes), dtype=object)
    for si, split in enumerate(split_names):
        idx = np.flatnonzero(split_of == si)
        idx = idx[np.lexsort((key_ids[idx], labels[idx]))]  # (label, key_id) order, as prepare writes
        parts3 = [s3_all[offsets3_all[i] : offsets3_all[i + 1]] for i in idx]
        s3 = np.concatenate(parts3) if parts3 else np.zeros((0, 3), np.int16)
        l3 = lengths3[idx]
        for fmt in formats:
            k = _CHANNELS[fmt]
            steps = s3 if fmt == "stroke3" else _to_stroke5(s3, l3)
            lens = l3 if fmt == "stroke3" else l3 + 1
            offs = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
            meta = {
                "classes": list(classes),
                "params": params,
                "input_fingerprint": f"synthetic-{seed}",
                "format": fmt,
                "split": split,
                "scale": None,
            }
            schema = STROKES_SCHEMAS[fmt].with_metadata({"quickdraw": json.dumps(meta)})
            d = out / fmt / split
            d.mkdir(parents=True, exist_ok=True)
            n_parts = max(1, -(-len(idx) // rows_per_shard))
            for part in range(n_parts):
                lo, hi = part * rows_per_shard, min(len(idx), (part + 1) * rows_per_shard)
                sel = idx[lo:hi]
                o = offs[lo : hi + 1] - offs[lo]
                flat = pa.array(steps[offs[lo] : offs[hi]].reshape(-1), pa.int16())
                seq = pa.ListArray.from_arrays(pa.array(o, pa.int32()), pa.FixedSizeListArray.from_arrays(flat, k))
                table = pa.Table.from_arrays(
                    [
                        pa.array(key_ids[sel], pa.uint64()),
                        pa.array(words[labels[sel]], pa.string()),
                        pa.array(labels[sel], pa.int32()),
                        pa.array(cc[sel], pa.string()),
                        pa.array(recognized[sel], pa.bool_()),
                        pa.array(timestamps[sel], pa.int64()).cast(pa.timestamp("us", tz="UTC")),
                        pa.array(n_strokes[sel], pa.uint16()),
                        pa.array(lengths3[sel], pa.uint32()),
                        pa.array(lens[lo:hi], pa.int32()),
                        seq,
                    ],
                    schema=schema,
                )
                pq.write_table(table, d / f"part-{part:05d}.parquet")
    manifest = {"classes": list(classes), "params": params, "input_fingerprint": f"synthetic-{seed}", "rows": n}
    (out / "_manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out
