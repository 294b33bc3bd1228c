"""The ``prepare`` stage: fetched drawings -> stroke-3 / stroke-5 Parquet shards per split.

Input is the fetch output (docs/FORMATS.md section 1, complete classes only); output is section 2::

    OUT/stroke3/<split>/part-00000.parquet   OUT/stroke5/<split>/part-00000.parquet   OUT/_manifest.json

Guarantees:

* **Deterministic**: same inputs and params -> byte-identical shards and manifest (no timestamps, rows
  sorted by ``(label, key_id)``, fixed writer options).
* **Stable splits**: a drawing's split is a pure function of ``(key_id, seed, fractions)`` -- a 64-bit
  mix of the key id, never its position, class or the caps -- so adding a class or fetching more drawings
  never moves an existing drawing to another split.
* **Bounded memory**: a class is read and converted a batch of drawings at a time and only its int16
  stroke-3 steps (plus the small metadata columns) are held; shard rows (sorted, stroke-5) are built one
  row group at a time in the writer threads. Shards grow by whole row groups per class.
* **Atomic**: files are written as ``*.incomplete`` and renamed; ``_manifest.json`` is removed first and
  written last, so an interrupted run never looks complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from quickdraw import __version__
from quickdraw._io import sha256_file, write_json_atomic
from quickdraw._ownership import claim_output, output_lock
from quickdraw.errors import QuickDrawError
from quickdraw.parallel import run_tasks
from quickdraw.shard_schema import FORMATS, output_schema
from quickdraw.sources import remote as _remote
from quickdraw.sources.parquet import check_schema_version, class_parts, fetched_classes
from quickdraw.strokes import (
    OnLong,
    Stroke3Batch,
    apply_length_rules,
    scale_from_moments,
    stroke3_batch_to_stroke5,
    take_ranges,
    xy_moments,
)

__all__ = [
    "FORMATS",
    "MANIFEST",
    "PART_ROWS",
    "PREPARE_SCHEMA_VERSION",
    "SPLITS",
    "PrepareError",
    "PrepareResult",
    "ProgressCallback",
    "assign_splits",
    "input_fingerprint",
    "moments_task",
    "output_schema",
    "prepare",
    "prepare_with_executor",
    "scan_class_task",
    "split_uniform",
    "write_shard_task",
]

log = logging.getLogger(__name__)

SPLITS: tuple[str, str, str] = ("train", "val", "test")
MANIFEST = "_manifest.json"
PREPARE_SCHEMA_VERSION = 1
#: A new part file starts at the next class boundary once a part holds this many rows.
PART_ROWS = 2_000_000
#: Rows per Parquet row group: the writer holds a whole row group's nested levels in memory, so this bounds
#: its memory (about 200 MB peak instead of 400+ MB for a 100k-drawing class) at no measurable speed cost.
ROW_GROUP_ROWS = 16_384

#: ``progress(done_classes, total_classes, word)``, called after each class is written.
ProgressCallback = Callable[[int, int, str], None]

# Fixed writer options: part of the byte-identical contract, so never left to library defaults.
_WRITE_OPTS: dict[str, Any] = {"compression": "zstd", "compression_level": 1, "use_dictionary": ["word", "countrycode"], "write_statistics": True}


class PrepareError(QuickDrawError):
    """Prepare cannot run: no complete classes, a requested class is missing, bad parameters."""


@dataclass
class PrepareResult:
    """What one ``prepare`` run read, kept, dropped and wrote.

    ``read = duplicates + too_short + too_long_dropped + kept``; ``truncated`` drawings are among ``kept``;
    ``sum(split_counts.values()) == kept``. ``files`` lists ``{"file", "rows", "sha256"}`` per shard.
    """

    out_dir: Path
    classes: list[str]
    split_counts: dict[str, int]  # split -> rows written (per format)
    per_class: dict[str, dict[str, int]]  # word -> read, duplicates, too_short, too_long_dropped, truncated, kept, <split>
    read: int = 0
    duplicates: int = 0
    too_short: int = 0
    too_long_dropped: int = 0
    truncated: int = 0
    kept: int = 0
    scale: float | None = None
    input_fingerprint: str = ""
    files: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (paths as strings)."""
        d = asdict(self)
        d["out_dir"] = str(self.out_dir)
        return d


# ----------------------------------------------------------------------------------------------- splits

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def split_uniform(key_ids: npt.ArrayLike, seed: int = 0) -> npt.NDArray[np.float64]:
    """A uniform number in ``[0, 1)`` per key id, a pure function of ``(key_id, seed)``.

    SplitMix64's finaliser over ``key_id + (seed + 1) * golden``: a strong 64-bit mixer that numpy
    evaluates for millions of ids per second. (blake2b/xxhash of each id would need a Python call per
    drawing; this is the same idea, vectorised.)
    """
    k = np.asarray(key_ids, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = k + np.uint64((seed + 1) % 2**64) * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        z = z ^ (z >> np.uint64(31))
    # The top 53 bits map exactly onto the doubles in [0, 1).
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / 2**53)


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    fr = [float(f) for f in fractions]
    if len(fr) != 3 or any(f < 0 or not math.isfinite(f) for f in fr) or abs(sum(fr) - 1.0) > 1e-6:
        raise PrepareError(f"fractions must be three non-negative numbers (train, val, test) summing to 1, got {fractions!r}")
    return fr[0], fr[1], fr[2]


def assign_splits(key_ids: npt.ArrayLike, seed: int = 0, fractions: Sequence[float] = (0.8, 0.1, 0.1)) -> npt.NDArray[np.int8]:
    """Split index per key id (0 train, 1 val, 2 test): ``split_uniform`` against the cumulative fractions."""
    fr = _check_fractions(fractions)
    bounds = np.array([fr[0], fr[0] + fr[1]], dtype=np.float64)
    return np.searchsorted(bounds, split_uniform(key_ids, seed), side="right").astype(np.int8)


# ----------------------------------------------------------------------------------------------- schema


def input_fingerprint(in_dir: str | Path, classes: Sequence[str]) -> str:
    """Hash of the input class manifests (which list every part's sha256), in class-list order."""
    h = hashlib.blake2b(digest_size=16)
    for word in classes:
        manifest = check_schema_version(in_dir, word)  # a schema-1 class fails here, before any work
        h.update(word.encode("utf-8") + b"\0")
        h.update(json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode("utf-8") + b"\0")
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------- core


@dataclass
class _ClassData:
    """One class after dedup and length rules; its shard rows are built one row group at a time.

    Only the kept stroke-3 steps (int16, source order) and the small metadata table are held: the
    sorted copy of the steps and the stroke-5 form exist for one row group at a time (in the writer
    thread), never for the whole class.
    """

    word: str
    label: int
    table: pa.Table  # kept rows (after dedup and length rules), sorted by (split, key_id); no drawing column
    split: npt.NDArray[np.int8]  # per row of table
    batch: Stroke3Batch  # stroke-3 of the kept drawings, in source order (NOT the order of table)
    order: npt.NDArray[np.int64]  # row i of table is sequence order[i] of batch
    counts: dict[str, int]

    def rows(self, lo: int, hi: int) -> Stroke3Batch:
        """Stroke-3 of table rows ``lo:hi`` (a fresh, compact CSR)."""
        rows, offsets = take_ranges(self.batch.offsets, self.order[lo:hi])
        return Stroke3Batch(self.batch.steps[rows], offsets)


#: Drawings converted at a time while reading: bounds the decoded nested Arrow data and the int16/int64
#: temporaries of the conversion, whatever the class size.
_READ_BATCH_ROWS = 16_384


def _read_class(in_dir: Path, word: str, columns: list[str] | None) -> pa.Table:
    parts = class_parts(in_dir, word)  # every part contained (sources.parquet)
    # Single-threaded decode: the writer threads already keep both cores busy.
    tables = [pq.read_table(p, columns=columns, use_threads=False) for p in parts]
    if not tables:
        return _fetch_schema(columns).empty_table()
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def _fetch_schema(columns: list[str] | None) -> pa.Schema:
    from quickdraw.sources.schema import DRAWING_SCHEMA

    return DRAWING_SCHEMA if columns is None else pa.schema([DRAWING_SCHEMA.field(c) for c in columns])


def _iter_drawing_batches(in_dir: Path, word: str) -> Iterator[pa.Array]:
    """The class's ``drawing`` column in source order, ``_READ_BATCH_ROWS`` drawings at a time."""
    for p in class_parts(in_dir, word):
        pf = pq.ParquetFile(p)
        try:
            for rb in pf.iter_batches(batch_size=_READ_BATCH_ROWS, columns=["drawing"], use_threads=False):
                yield rb.column(0)
        finally:
            pf.close()


class _Deduper:
    """Keeps the first occurrence of each key id across all classes (in class-list, then source order).

    Holds every kept key id as one sorted uint64 array: 8 bytes a drawing, the only state that grows with
    the whole input rather than with one class (50M drawings: 400 MB).
    """

    def __init__(self) -> None:
        self._seen = np.empty(0, dtype=np.uint64)

    def first_mask(self, key_ids: npt.NDArray[np.uint64]) -> npt.NDArray[np.bool_]:
        mask = np.zeros(len(key_ids), dtype=np.bool_)
        _, first = np.unique(key_ids, return_index=True)
        mask[first] = True
        if len(self._seen):
            pos = np.searchsorted(self._seen, key_ids)
            found = self._seen[np.minimum(pos, len(self._seen) - 1)] == key_ids
            mask &= ~found
        new = np.sort(key_ids[mask])
        # Both runs are sorted, so the stable (merge-based) sort is linear here, not n log n.
        self._seen = np.sort(np.concatenate([self._seen, new]), kind="stable")
        return mask


def _class_stroke3(
    in_dir: Path, word: str, first: npt.NDArray[np.bool_], min_len: int, max_len: int, on_long: OnLong, capacity: int | None = None
) -> tuple[Stroke3Batch, npt.NDArray[np.bool_], dict[str, int]]:
    """Stroke-3 of the class's first occurrences after the length rules, read and converted in batches.

    The length rules and the stroke-3 encoding are per drawing, so converting batch by batch gives the
    same steps as converting the whole class at once. Kept steps go straight into one growing int16
    array (``capacity``: expected total steps, e.g. from ``n_points``; only a hint), so the class's steps
    exist once, not as batches plus their concatenation.
    Returns the kept sequences (source order), the kept mask over the first occurrences and the counts.
    """
    from quickdraw.sources.raw import drawings_to_steps

    steps = np.empty((capacity or 0, 3), dtype=np.int16)
    used = 0
    lengths: list[npt.NDArray[np.int64]] = []
    kept: list[npt.NDArray[np.bool_]] = []
    counts = {"too_short": 0, "too_long_dropped": 0, "truncated": 0}
    pos = 0
    n_first = int(first.sum())
    for drawings in _iter_drawing_batches(in_dir, word):
        sel = first[pos : pos + len(drawings)]
        pos += len(drawings)
        if not sel.all():
            drawings = drawings.filter(pa.array(sel))
        # stroke-3 of simplified drawings; stroke-3t (4 columns, pen last) of raw ones (sources.raw)
        rules = apply_length_rules(drawings_to_steps(drawings), min_len=min_len, max_len=max_len, on_long=on_long)
        del drawings
        new = rules.batch.steps
        if new.shape[1] != steps.shape[1] and used == 0:
            steps = np.empty((len(steps), new.shape[1]), dtype=np.int16)
        if used + len(new) > len(steps):
            # No (or a wrong) hint: grow geometrically, aiming at the whole class from the steps per drawing so far.
            done = sum(map(len, lengths)) + len(rules.kept)
            guess = int((used + len(new)) * max(n_first, 1) / max(done, 1) * 1.05) + 1
            grown = np.empty((max(guess, 2 * len(steps), used + len(new)), new.shape[1]), dtype=np.int16)
            grown[:used] = steps[:used]
            steps = grown
        steps[used : used + len(new)] = new
        used += len(new)
        lengths.append(np.diff(rules.batch.offsets))
        kept.append(rules.kept)
        counts["too_short"] += rules.too_short
        counts["too_long_dropped"] += rules.too_long_dropped
        counts["truncated"] += rules.n_truncated
        del rules, new
    if pos != len(first):
        raise PrepareError(f"class {word!r}: the drawing column has {pos} rows, the other columns {len(first)}")
    # A view keeps the whole buffer alive: fine for a small overshoot (the too-short drawings), else copy.
    steps = steps[:used] if len(steps) - used <= len(steps) // 16 else steps[:used].copy()
    offsets = np.zeros(sum(map(len, lengths)) + 1, dtype=np.int64)
    if lengths:
        np.cumsum(np.concatenate(lengths), out=offsets[1:])
    kept_mask = np.concatenate(kept) if kept else np.zeros(0, dtype=np.bool_)
    return Stroke3Batch(steps, offsets), kept_mask, counts


def _iter_classes(
    in_dir: Path,
    classes: Sequence[str],
    *,
    min_len: int,
    max_len: int,
    on_long: OnLong,
    fractions: tuple[float, float, float],
    seed: int,
    columns: list[str] | None,
) -> Iterator[_ClassData]:
    dedup = _Deduper()
    meta_columns = [c for c in (columns if columns is not None else _fetch_schema(None).names) if c != "drawing"]
    if "key_id" not in meta_columns:
        meta_columns.insert(0, "key_id")
    for label, word in enumerate(classes):
        table = _read_class(in_dir, word, meta_columns)  # everything but the drawings: a few dozen bytes a row
        n_read = table.num_rows
        key_ids = np.asarray(table.column("key_id").to_numpy(), dtype=np.uint64)
        first = dedup.first_mask(key_ids)
        if not first.all():
            table = table.filter(pa.array(first))
            key_ids = key_ids[first]
        capacity = None
        if "n_points" in table.column_names:  # kept steps <= points (capped at max_len) of the first occurrences
            capacity = int(np.minimum(np.asarray(table.column("n_points").to_numpy(), dtype=np.int64), max_len).sum())
        batch, kept, rule_counts = _class_stroke3(in_dir, word, first, min_len, max_len, on_long, capacity)
        key_ids = key_ids[kept]
        split = assign_splits(key_ids, seed, fractions)
        order = np.lexsort((key_ids, split))
        kept_idx = np.flatnonzero(kept)[order]
        out = table.take(pa.array(kept_idx))
        del table, kept_idx
        split = split[order]
        counts = {
            "read": n_read,
            "duplicates": int(n_read - first.sum()),
            "too_short": rule_counts["too_short"],
            "too_long_dropped": rule_counts["too_long_dropped"],
            "truncated": rule_counts["truncated"],
            "kept": len(key_ids),
        }
        for i, s in enumerate(SPLITS):
            counts[s] = int((split == i).sum())
        del key_ids, first, kept
        # Arrow's pool (mimalloc) keeps freed pages of the Parquet decode; hand them back before the next step.
        pa.default_memory_pool().release_unused()
        cd = _ClassData(word, label, out, split, batch, order, counts)
        del out, split, batch, order
        yield cd
        del cd


def _sequence_array(steps: npt.NDArray[np.int16], offsets: npt.NDArray[np.int64]) -> pa.ListArray:
    if offsets[-1] > np.iinfo(np.int32).max:
        raise PrepareError("one class holds more than 2^31 steps; lower --max-per-class at fetch")
    width = steps.shape[1]
    inner = pa.FixedSizeListArray.from_arrays(pa.array(steps.reshape(-1), type=pa.int16()), width)
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), inner)


class _ShardWriter:
    """Writes ``<out>/<fmt>/<split>/part-NNNNN.parquet`` via ``.incomplete`` files, rolling over at PART_ROWS."""

    def __init__(self, out_dir: Path, fmt: str, split: str, metadata: dict[str, Any], first_part: int = 0) -> None:
        self.dir = out_dir / fmt / split
        self.dir.mkdir(parents=True, exist_ok=True)
        self.fmt, self.split = fmt, split
        self.schema = output_schema(fmt).with_metadata({"quickdraw": json.dumps(metadata, sort_keys=True)})
        self.files: list[dict[str, Any]] = []
        self._writer: pq.ParquetWriter | None = None
        self._part = first_part  # a task writing one part of a split (write_shard_task) starts there
        self._rows = 0
        self._open()

    def _open(self) -> None:
        self._path = self.dir / f"part-{self._part:05d}.parquet"
        self._tmp = self._path.with_name(self._path.name + ".incomplete")
        self._writer = pq.ParquetWriter(self._tmp, self.schema, **_WRITE_OPTS)
        self._rows = 0

    def _close(self) -> None:
        assert self._writer is not None
        self._writer.close()
        self._writer = None
        os.replace(self._tmp, self._path)
        self.files.append({"file": f"{self.fmt}/{self.split}/{self._path.name}", "rows": self._rows, "sha256": sha256_file(self._path)})

    def start_class(self) -> None:
        """Call before a class's first row group: a new part starts here once the current one is full."""
        if self._rows >= PART_ROWS:
            self._close()
            self._part += 1
            self._open()

    def write(self, table: pa.Table) -> None:
        """Append rows of the current class (``ROW_GROUP_ROWS`` per row group)."""
        if table.num_rows:
            assert self._writer is not None
            self._writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
            self._rows += table.num_rows

    def close(self) -> None:
        """Finish the current part and move it into place."""
        if self._writer is not None:
            self._close()

    def abort(self) -> None:
        """Drop the part being written (after an error): no half-written file gets a final name."""
        if self._writer is not None:
            try:
                self._writer.close()
            finally:
                self._writer = None
                self._tmp.unlink(missing_ok=True)


def _resolve_classes(in_dir: Path, classes: str | Sequence[str] | None) -> list[str]:
    available = fetched_classes(in_dir)
    if classes is None:
        if not available:
            raise PrepareError(f"no complete class (a folder with _manifest.json) in {in_dir}; run `quickdraw fetch` first")
        return available
    if isinstance(classes, str):
        from quickdraw.classes import resolve_classes

        wanted = resolve_classes(classes)
    else:
        wanted = list(dict.fromkeys(classes))
    missing = [w for w in wanted if w not in available]
    if missing:
        raise PrepareError(f"class(es) {', '.join(map(repr, missing))} not complete in {in_dir} (no _manifest.json); complete: {', '.join(available) or 'none'}")
    return wanted


def _is_prepare_output(root: Path) -> bool:
    """A folder written by a prepare from before ownership markers: its manifest says so."""
    try:
        doc = json.loads((root / MANIFEST).read_bytes()[: 1 << 20])
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("schema_version") == PREPARE_SCHEMA_VERSION and "classes" in doc


def _clean_previous(out_dir: Path) -> None:
    # Stale parts of an earlier run (say with more classes) must not survive next to the new ones.
    (out_dir / MANIFEST).unlink(missing_ok=True)
    for p in out_dir.glob("*.incomplete"):  # the manifest's temp file of a run killed while writing it
        p.unlink()
    for fmt in FORMATS:
        for split in SPLITS:
            d = out_dir / fmt / split
            if d.is_dir():
                for p in list(d.glob("part-*.parquet")) + list(d.glob("part-*.parquet.incomplete")):
                    p.unlink()


def prepare(
    in_dir: str | Path,
    out_dir: str | Path,
    *,
    classes: str | Sequence[str] | None = None,
    min_len: int = 6,
    max_len: int = 250,
    on_long: OnLong = "truncate",
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    formats: Sequence[str] = ("stroke3", "stroke5"),
    normalize: bool = False,
    progress: ProgressCallback | None = None,
    overwrite: bool = False,
    executor: Executor | None = None,
) -> PrepareResult:
    """Turn fetched drawings into stroke-3/stroke-5 shards per split (docs/FORMATS.md section 2).

    ``out_dir`` gets an ownership marker; an existing folder prepare did not create is refused unless
    ``overwrite``, and a second prepare writing it at the same time is refused.

    Args:
        in_dir: fetch output (one folder per class; only classes with ``_manifest.json`` are read).
        out_dir: where ``stroke3/``, ``stroke5/`` and ``_manifest.json`` go.
        classes: class list (labels index it, in this order); a string is a class spec (preset, comma list,
            ``@file``); default: every complete class, sorted by name.
        min_len, max_len, on_long: length rules on stroke-3 steps (see :func:`quickdraw.strokes.apply_length_rules`).
        fractions: train, val, test shares (sum 1).
        seed: split seed; the split of a drawing depends only on its key id, the seed and ``fractions``.
        formats: which of ``stroke3``, ``stroke5`` to write.
        normalize: also compute Sketch-RNN's scale factor (std of dx, dy over the train split) and store it as
            ``scale`` in the metadata; the int16 data are never rescaled. Costs a second pass over the input.
        progress: ``progress(done, total, word)`` after each class.
        executor: any :class:`concurrent.futures.Executor` (a process pool, a Dask cluster's
            ``Client.get_executor()``): the per-class scan and the per-shard writes run as self-contained tasks
            on it (:func:`prepare_with_executor`); the files are byte-identical to a run without it.
            ``in_dir`` and ``out_dir`` may be fsspec URLs (``gs://...``); then the task path is used too.

    Duplicated key ids are dropped (first occurrence kept: class-list order, then source order).
    Raises :class:`PrepareError` for missing classes or bad parameters.
    """
    if executor is not None or _remote.is_remote(in_dir) or _remote.is_remote(out_dir):
        return prepare_with_executor(in_dir, out_dir, executor, classes=classes, min_len=min_len, max_len=max_len,
                                     on_long=on_long, fractions=fractions, seed=seed, formats=formats,
                                     normalize=normalize, progress=progress, overwrite=overwrite)
    in_path, out_path = Path(in_dir), Path(out_dir)
    fr = _check_fractions(fractions)
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise PrepareError(f"formats must be among {sorted(FORMATS)}, got {list(formats)!r}")
    fmts = [f for f in FORMATS if f in formats]  # canonical order: the manifest must not depend on the spelling
    if on_long not in ("truncate", "drop"):
        raise PrepareError(f"on_long must be 'truncate' or 'drop', not {on_long!r}")
    if min_len < 0 or max_len < 1 or min_len > max_len:
        raise PrepareError(f"need 0 <= min_len <= max_len and max_len >= 1 (got min_len={min_len}, max_len={max_len})")
    words = _resolve_classes(in_path, classes)
    fingerprint = input_fingerprint(in_path, words)
    params: dict[str, Any] = {
        "min_len": int(min_len),
        "max_len": int(max_len),
        "on_long": on_long,
        "fractions": list(fr),
        "seed": int(seed),
        "normalize": bool(normalize),
    }
    rules: dict[str, Any] = {"min_len": min_len, "max_len": max_len, "on_long": on_long, "fractions": fr, "seed": seed}

    scale: float | None = None
    if normalize:
        scale = _train_scale(in_path, words, rules)
        log.info("train scale factor %.6f", scale)

    # Only a folder prepare created (or an empty one) is written, and by one process at a time: it replaces
    # the shards and manifest it finds there (quickdraw._ownership).
    real_in, real_out = in_path.resolve(), out_path.resolve()
    if real_out == real_in or real_out.is_relative_to(real_in) or real_in.is_relative_to(real_out):
        # Writing into (or around) the fetch output being read would replace the files it is reading.
        raise PrepareError(f"--out {out_path} and --in {in_path} overlap: prepare writes into a folder of its own")
    claim_output(out_path, "prepare", overwrite=overwrite, adopt=_is_prepare_output)
    with output_lock(out_path, "prepare"):
        _clean_previous(out_path)
        writers: dict[tuple[str, str], _ShardWriter] = {}
        for fmt in fmts:
            for split in SPLITS:
                meta = {"classes": words, "params": params, "input_fingerprint": fingerprint, "format": fmt, "split": split, "scale": scale, "schema_version": PREPARE_SCHEMA_VERSION}
                writers[(fmt, split)] = _ShardWriter(out_path, fmt, split, meta)

        result = PrepareResult(out_dir=out_path, classes=words, split_counts=dict.fromkeys(SPLITS, 0), per_class={}, scale=scale, input_fingerprint=fingerprint)

        def finish(done: int, cd: _ClassData) -> None:
            result.per_class[cd.word] = cd.counts
            for s in SPLITS:
                result.split_counts[s] += cd.counts[s]
            for k in ("read", "duplicates", "too_short", "too_long_dropped", "truncated", "kept"):
                setattr(result, k, getattr(result, k) + cd.counts[k])
            log.info("prepared %s: %s", cd.word, cd.counts)
            if progress is not None:
                progress(done, len(words), cd.word)

        # Parquet encoding of the nested sequences is the slowest step and releases the GIL: each format is
        # written on its own thread while the main thread converts the next class. Every file still gets its
        # row groups in class order (class k+1 is submitted only after class k is written), so the output is
        # byte-identical to a serial run; at most two classes are in memory.
        pool = ThreadPoolExecutor(max_workers=len(fmts), thread_name_prefix="prepare-write")
        pending: list[Future[None]] = []
        previous: tuple[int, _ClassData] | None = None
        ok = False
        try:
            for done, cd in enumerate(_iter_classes(in_path, words, columns=None, **rules), start=1):
                for fut in pending:
                    fut.result()
                if previous is not None:
                    finish(*previous)
                pending = [pool.submit(_write_class, cd, fmt, writers) for fmt in fmts]
                previous = (done, cd)
                del cd
            for fut in pending:
                fut.result()
            if previous is not None:
                finish(*previous)
            ok = True
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            for w in writers.values():
                w.close() if ok else w.abort()
        result.files = [f for w in writers.values() for f in w.files]
        manifest = {
            "schema_version": PREPARE_SCHEMA_VERSION,
            "created_by": f"quickdraw-pipeline {__version__}",
            "classes": words,
            "formats": fmts,
            "params": params,
            "input_fingerprint": fingerprint,
            "scale": scale,
            "counts": {
                "splits": result.split_counts,
                "read": result.read,
                "duplicates": result.duplicates,
                "too_short": result.too_short,
                "too_long_dropped": result.too_long_dropped,
                "truncated": result.truncated,
                "kept": result.kept,
                "per_class": result.per_class,
            },
            "files": result.files,
        }
        write_json_atomic(out_path / MANIFEST, manifest, sort_keys=False)
        return result


def _write_class(cd: _ClassData, fmt: str, writers: dict[tuple[str, str], _ShardWriter],
                 splits: Sequence[str] = SPLITS) -> None:
    """Write one class's rows of format ``fmt`` to the split shards, building one row group at a time.

    Each table handed to the writer is exactly one row group (``ROW_GROUP_ROWS`` rows, counted from the
    class's first row in that split), the same row groups one ``write_table`` of the whole split would give,
    so the files are unchanged while only one row group's sequences are ever materialised.
    """
    n = cd.table.num_rows
    bounds = np.searchsorted(cd.split, np.arange(len(SPLITS) + 1), side="left")  # rows are sorted by split
    label = pa.array(np.full(min(n, ROW_GROUP_ROWS), cd.label, dtype=np.int32))
    extra = 1 if fmt == "stroke5" else 0
    for i, split in enumerate(SPLITS):
        if split not in splits:
            continue
        lo, hi = int(bounds[i]), int(bounds[i + 1])
        writer = writers[(fmt, split)]
        writer.start_class()
        for a in range(lo, hi, ROW_GROUP_ROWS):
            b = min(a + ROW_GROUP_ROWS, hi)
            batch = cd.rows(a, b)
            if fmt == "stroke3t":  # (dx, dy, dt, pen_lift): needs the raw variant's timing
                if batch.steps.shape[1] != 4:
                    raise PrepareError(f"class {cd.word!r}: stroke3t needs per-point times, which only raw drawings "
                                       f"have: fetch with --format raw (without --simplify) and prepare that")
                steps, offsets = batch.steps, batch.offsets
            else:
                if batch.steps.shape[1] == 4:  # raw input: stroke-3 is stroke-3t without dt
                    batch = Stroke3Batch(np.ascontiguousarray(batch.steps[:, [0, 1, 3]]), batch.offsets)
                steps, offsets = (batch.steps, batch.offsets) if fmt == "stroke3" else stroke3_batch_to_stroke5(batch)
            part = cd.table.slice(a, b - a)
            cols = {name: part.column(name) for name in part.column_names}
            cols["label"] = label.slice(0, b - a)
            cols["length"] = pa.array(np.diff(batch.offsets).astype(np.int32) + extra, type=pa.int32())
            cols["sequence"] = _sequence_array(steps, offsets)
            del batch, steps, offsets
            writer.write(pa.Table.from_arrays([cols[f.name] for f in writer.schema], schema=writer.schema))
            del cols
            # The encoder's per-row-group scratch is freed now; let mimalloc return it rather than hold it.
            pa.default_memory_pool().release_unused()


def _train_scale(in_dir: Path, words: list[str], rules: dict[str, Any]) -> float | None:
    """Std of all dx and dy of the train split after length rules (exact integer sums, then one sqrt).

    None with no train data: JSON has no NaN, and "unknown" is the honest value.
    """
    moments = (0, 0, 0)
    for cd in _iter_classes(in_dir, words, columns=["key_id", "drawing"], **rules):
        n_train = int(np.searchsorted(cd.split, 1, side="left"))
        # The moments are exact integer sums, so gathering the train rows a row group at a time gives the
        # same numbers as one pass over all of them.
        for a in range(0, n_train, ROW_GROUP_ROWS):
            steps = cd.rows(a, min(a + ROW_GROUP_ROWS, n_train)).steps
            moments = tuple(x + y for x, y in zip(moments, xy_moments(steps)))  # type: ignore[assignment]
        del cd
    return scale_from_moments(moments)


# -------------------------------------------------------------------------------- executors and remote folders
# prepare on any executor, and from/into fsspec URLs: scan tasks per class, write tasks per shard file.
#
# The local prepare streams classes through one writer per (format, split), so a shard file holds many
# classes and its bytes depend on all of them. To run on workers and still give byte-identical files, the
# work is cut where the output is cut:
#
# 1. **scan** (one task per class): the key ids and the stroke-3 length of every drawing (the ``drawing.x``
#    list lengths: one step per point). Cheap: no coordinates are decoded.
# 2. **plan** (the client): dedup in class-list order (:class:`~quickdraw.pipeline.prepare._Deduper`), the
#    length rules, the splits (a pure function of the key id), the per-class counts, and which classes go into
#    which part file (a new part starts at the first class boundary after ``PART_ROWS`` rows, as
#    :class:`~quickdraw.pipeline.prepare._ShardWriter` does). With ``normalize``, a moments task per class
#    gives the train split's exact integer sums, so the scale is known before any shard is written.
# 3. **write** (one task per output file: format, split, part): converts only that split's drawings of its
#    classes, with the same code and row groups as the local writer, and writes the whole file (locally a
#    ``.incomplete`` file renamed into place; on an object store a local file uploaded as one object). It
#    returns the rows per class, which the client checks against the plan.
# 4. The client writes ``_manifest.json`` last; until then the output does not look complete (the old
#    manifest was removed first).
#
# Parallelism of step 3 is the number of output files: 2 formats x (train parts + 2) -- 6 for up to 2M
# training drawings, ~50 for the full 50M (docs/SCALING.md).

@contextlib.contextmanager
def _class_input(in_url: str, word: str) -> Iterator[Path]:
    """The fetch output folder to read ``word`` from: ``in_url`` itself when local (or shared), else a
    private scratch folder the class (manifest and listed parts) is downloaded into, removed afterwards."""
    if not _remote.is_remote(in_url):
        yield _remote.local_path(in_url)
        return
    scratch = Path(tempfile.mkdtemp(prefix=f"quickdraw-prepare-{os.getpid()}-"))
    try:
        _remote.stage_class(in_url, word, scratch)
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def scan_class_task(in_url: str, word: str) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64]]:
    """Key ids and sequence lengths (before the length rules) of every drawing of one fetched class, in
    source order. Simplified drawings: one stroke-3 step per point, so the ``drawing.x`` list lengths, with
    no coordinate decoded. The raw variant (a ``t`` field) is simplified by prepare first, so its lengths
    come from the same conversion the write tasks run (``sources.raw.drawings_to_steps``)."""
    from quickdraw.sources.raw import drawings_to_steps

    with _class_input(in_url, word) as in_dir:
        key_ids, lengths = [], []
        for p in class_parts(in_dir, word):
            drawing = pq.read_schema(p).field("drawing").type
            raw = any(drawing.field(i).name == "t" for i in range(drawing.num_fields))
            t = pq.read_table(p, columns=["key_id", "drawing" if raw else "drawing.x"], use_threads=False)
            key_ids.append(np.asarray(t.column("key_id").to_numpy(), dtype=np.uint64))
            if raw:
                lengths.append(np.asarray(drawings_to_steps(t.column("drawing")).lengths, dtype=np.int64))
            else:
                lengths.append(np.asarray(pc.list_value_length(t.column("x")).to_numpy(zero_copy_only=False), dtype=np.int64))
    if not key_ids:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    return np.concatenate(key_ids), np.concatenate(lengths)


def _meta_columns() -> list[str]:
    cols = [c for c in _fetch_schema(None).names if c != "drawing"]
    if "key_id" not in cols:
        cols.insert(0, "key_id")
    return cols


def _split_class(in_dir: Path, word: str, label: int, mask: npt.NDArray[np.bool_], split: int,
                 rules: dict[str, Any]) -> _ClassData:
    """The rows of one split of one class (``mask``: its first occurrences in that split), as the local
    prepare's :func:`~quickdraw.pipeline.prepare._iter_classes` would order them: by key id."""
    table = _read_class(in_dir, word, _meta_columns())
    if len(mask) != table.num_rows:
        raise PrepareError(f"class {word!r} in {in_dir} changed since it was scanned ({table.num_rows} rows, "
                           f"{len(mask)} scanned): run prepare again")
    if not mask.all():
        table = table.filter(pa.array(mask))
    key_ids = np.asarray(table.column("key_id").to_numpy(), dtype=np.uint64)
    capacity = None
    if "n_points" in table.column_names:
        capacity = int(np.minimum(np.asarray(table.column("n_points").to_numpy(), dtype=np.int64), rules["max_len"]).sum())
    batch, kept, _ = _class_stroke3(in_dir, word, mask, rules["min_len"], rules["max_len"], rules["on_long"], capacity)
    key_ids = key_ids[kept]
    splits = np.full(len(key_ids), split, dtype=np.int8)
    order = np.lexsort((key_ids, splits))
    out = table.take(pa.array(np.flatnonzero(kept)[order]))
    return _ClassData(word, label, out, splits[order], batch, order, {})


def moments_task(in_url: str, word: str, train_mask: npt.NDArray[np.bool_], rules: dict[str, Any]) -> tuple[int, int, int]:
    """Exact integer moments of dx, dy over one class's training drawings after the length rules."""
    with _class_input(in_url, word) as in_dir:
        cd = _split_class(in_dir, word, 0, train_mask, 0, rules)
        return xy_moments(cd.batch.steps)


def write_shard_task(
    in_url: str,
    out_url: str,
    fmt: str,
    split: str,
    part: int,
    classes: list[tuple[int, str, npt.NDArray[np.bool_]]],
    metadata: dict[str, Any],
    rules: dict[str, Any],
) -> tuple[dict[str, Any], list[int]]:
    """Write ``<out>/<fmt>/<split>/part-<part>.parquet`` from ``classes`` (label, word, mask of the rows of
    this split to keep before the length rules), whole; returns its manifest entry and the rows per class."""
    s = SPLITS.index(split)
    stage = None
    if _remote.is_remote(out_url):
        stage = Path(tempfile.mkdtemp(prefix=f"quickdraw-shard-{os.getpid()}-"))
        out_dir = stage
    else:
        out_dir = _remote.local_path(out_url)
    try:
        writer = _ShardWriter(out_dir, fmt, split, metadata, first_part=part)
        rows: list[int] = []
        ok = False
        try:
            for label, word, mask in classes:
                with _class_input(in_url, word) as in_dir:
                    cd = _split_class(in_dir, word, label, mask, s, rules)
                rows.append(cd.table.num_rows)
                _write_class(cd, fmt, {(fmt, split): writer}, splits=(split,))
                del cd
                pa.default_memory_pool().release_unused()
            ok = True
        finally:
            writer.close() if ok else writer.abort()
        (entry,) = writer.files
        if stage is not None:
            fs, root = _remote.output_fs(out_url)
            _remote.upload(fs, stage / entry["file"], f"{root}/{entry['file']}")
        return entry, rows
    finally:
        if stage is not None:
            shutil.rmtree(stage, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ driver


@contextlib.contextmanager
def _claimed_out(in_url: str, out_url: str, overwrite: bool) -> Iterator[None]:
    """Claim the output (marker), refuse an overlap with the input, hold the writer lock, and clear what an
    earlier run left (the manifest first, so that nothing looks complete from here on)."""
    if _remote.is_remote(out_url):
        _remote.claim_remote(out_url, "prepare", overwrite=overwrite)
        if _remote.is_remote(in_url):
            a, b = in_url.rstrip("/") + "/", out_url.rstrip("/") + "/"
            if a.startswith(b) or b.startswith(a):
                raise PrepareError(f"--out {out_url} and --in {in_url} overlap: prepare writes into a folder of its own")
        with _remote.remote_lock(out_url, "prepare"):
            fs, root = _remote.output_fs(out_url)
            with contextlib.suppress(FileNotFoundError):
                fs.rm_file(f"{root}/{MANIFEST}")
            for fmt in FORMATS:
                for split in SPLITS:
                    _remote.remove_owned(fs, f"{root}/{fmt}/{split}", ("part-*.parquet", "part-*.parquet.incomplete"))
            yield
        return
    out_path = _remote.local_path(out_url)
    if not _remote.is_remote(in_url):
        real_in, real_out = _remote.local_path(in_url).resolve(), out_path.resolve()
        if real_out == real_in or real_out.is_relative_to(real_in) or real_in.is_relative_to(real_out):
            raise PrepareError(f"--out {out_url} and --in {in_url} overlap: prepare writes into a folder of its own")
    claim_output(out_path, "prepare", overwrite=overwrite, adopt=_is_prepare_output)
    with output_lock(out_path, "prepare"):
        _clean_previous(out_path)
        yield


def prepare_with_executor(
    in_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    executor: Executor | None,
    *,
    classes: str | Sequence[str] | None = None,
    min_len: int = 6,
    max_len: int = 250,
    on_long: OnLong = "truncate",
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    formats: Sequence[str] = ("stroke3", "stroke5"),
    normalize: bool = False,
    progress: ProgressCallback | None = None,
    overwrite: bool = False,
) -> PrepareResult:
    """:func:`quickdraw.pipeline.prepare.prepare` on ``executor`` (None: a local pool of two threads), for
    local, shared or fsspec-URL folders; same files, same manifest, same result."""
    in_url, out_url = os.fspath(in_dir).rstrip("/") or "/", os.fspath(out_dir).rstrip("/") or "/"
    # Workers resolve relative paths against their own working folders: use the client's (a shared mount).
    in_url, out_url = (u if _remote.is_remote(u) else os.path.abspath(_remote.local_path(u)) for u in (in_url, out_url))
    fr = _check_fractions(fractions)
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise PrepareError(f"formats must be among {sorted(FORMATS)}, got {list(formats)!r}")
    fmts = [f for f in FORMATS if f in formats]
    if on_long not in ("truncate", "drop"):
        raise PrepareError(f"on_long must be 'truncate' or 'drop', not {on_long!r}")
    if min_len < 0 or max_len < 1 or min_len > max_len:
        raise PrepareError(f"need 0 <= min_len <= max_len and max_len >= 1 (got min_len={min_len}, max_len={max_len})")
    words = _resolve_classes(in_url if _remote.is_remote(in_url) else _remote.local_path(in_url), classes)  # type: ignore[arg-type]
    fingerprint = input_fingerprint(in_url if _remote.is_remote(in_url) else _remote.local_path(in_url), words)
    params: dict[str, Any] = {"min_len": int(min_len), "max_len": int(max_len), "on_long": on_long,
                              "fractions": list(fr), "seed": int(seed), "normalize": bool(normalize)}
    rules: dict[str, Any] = {"min_len": min_len, "max_len": max_len, "on_long": on_long}

    own_pool = executor is None
    if executor is None:
        executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="prepare-task")
    try:
        with _claimed_out(in_url, out_url, overwrite):
            return _drive_tasks(in_url, out_url, executor, words, fmts, fr, seed, params, rules, fingerprint, normalize,
                          progress)
    finally:
        if own_pool:
            executor.shutdown(wait=False, cancel_futures=True)


def _drive_tasks(in_url: str, out_url: str, executor: Executor, words: list[str], fmts: list[str],
           fr: tuple[float, float, float], seed: int, params: dict[str, Any], rules: dict[str, Any],
           fingerprint: str, normalize: bool, progress: ProgressCallback | None) -> PrepareResult:
    scans = run_tasks(executor, scan_class_task, [(in_url, w) for w in words])

    # The plan: what the local prepare decides class by class, from the scans alone.
    dedup = _Deduper()
    split_masks: list[list[npt.NDArray[np.bool_]]] = []  # per class, per split: rows to convert
    per_class: dict[str, dict[str, int]] = {}
    for word, (key_ids, lengths) in zip(words, scans):
        first = dedup.first_mask(key_ids)
        lf = lengths[first]
        short, long_ = lf < rules["min_len"], lf > rules["max_len"]
        if rules["on_long"] == "drop":
            kept, truncated, dropped = ~short & ~long_, 0, int(long_.sum())
        else:
            kept, truncated, dropped = ~short, int((long_ & ~short).sum()), 0
        split_all = assign_splits(key_ids, seed, fr)  # a pure function of the key id: known for every row
        kept_rows = np.zeros(len(key_ids), dtype=np.bool_)
        kept_rows[np.flatnonzero(first)[kept]] = True
        counts = {"read": len(key_ids), "duplicates": int(len(key_ids) - first.sum()), "too_short": int(short.sum()),
                  "too_long_dropped": dropped, "truncated": truncated, "kept": int(kept.sum())}
        masks = []
        for i, s in enumerate(SPLITS):
            counts[s] = int((kept_rows & (split_all == i)).sum())
            masks.append(first & (split_all == i))
        per_class[word] = counts
        split_masks.append(masks)
    del scans

    scale: float | None = None
    if normalize:
        moments = run_tasks(executor, moments_task, [(in_url, w, split_masks[i][0], rules) for i, w in enumerate(words)])
        scale = scale_from_moments(tuple(sum(m[j] for m in moments) for j in range(3)))  # type: ignore[arg-type]
        log.info("train scale factor %s", scale)

    # Part files, as _ShardWriter rolls them: a new part at the first class boundary after PART_ROWS rows.
    tasks: list[tuple[Any, ...]] = []
    for fmt in fmts:
        for i, split in enumerate(SPLITS):
            meta = {"classes": words, "params": params, "input_fingerprint": fingerprint, "format": fmt,
                    "split": split, "scale": scale, "schema_version": PREPARE_SCHEMA_VERSION}
            part, rows, members = 0, 0, []
            for label, word in enumerate(words):
                if rows >= PART_ROWS:
                    tasks.append((in_url, out_url, fmt, split, part, members, meta, rules))
                    part, rows, members = part + 1, 0, []
                members.append((label, word, split_masks[label][i]))
                rows += per_class[word][split]
            tasks.append((in_url, out_url, fmt, split, part, members, meta, rules))

    remaining = {w: sum(1 for t in tasks for m in t[5] if m[1] == w) for w in words}
    done_classes = 0

    def on_done(i: int, res: tuple[dict[str, Any], list[int]]) -> None:
        nonlocal done_classes
        _, rows = res
        _, _, fmt, split, part, members, _, _ = tasks[i]
        for (_, word, _), n in zip(members, rows):
            if n != per_class[word][split]:
                raise PrepareError(f"class {word!r}: {fmt}/{split} part {part} got {n} rows, the scan planned "
                                   f"{per_class[word][split]} (the input changed during the run?): run prepare again")
            remaining[word] -= 1
            if remaining[word] == 0:
                done_classes += 1
                if progress is not None:
                    progress(done_classes, len(words), word)

    written = run_tasks(executor, write_shard_task, tasks, on_done)

    result = PrepareResult(out_dir=out_url if _remote.is_remote(out_url) else _remote.local_path(out_url),  # type: ignore[arg-type]
                           classes=words, split_counts=dict.fromkeys(SPLITS, 0), per_class={}, scale=scale,
                           input_fingerprint=fingerprint)
    for word in words:
        c = per_class[word]
        result.per_class[word] = c
        for s in SPLITS:
            result.split_counts[s] += c[s]
        for k in ("read", "duplicates", "too_short", "too_long_dropped", "truncated", "kept"):
            setattr(result, k, getattr(result, k) + c[k])
    result.files = [entry for entry, _ in written]
    manifest = {
        "schema_version": PREPARE_SCHEMA_VERSION,
        "created_by": f"quickdraw-pipeline {__version__}",
        "classes": words,
        "formats": fmts,
        "params": params,
        "input_fingerprint": fingerprint,
        "scale": scale,
        "counts": {
            "splits": result.split_counts,
            "read": result.read,
            "duplicates": result.duplicates,
            "too_short": result.too_short,
            "too_long_dropped": result.too_long_dropped,
            "truncated": result.truncated,
            "kept": result.kept,
            "per_class": result.per_class,
        },
        "files": result.files,
    }
    if _remote.is_remote(out_url):
        import json

        fs, root = _remote.output_fs(out_url)
        data = json.dumps(manifest, indent=2, sort_keys=False, ensure_ascii=False) + "\n"
        fs.pipe_file(f"{root}/{MANIFEST}", data.encode("utf-8"))  # last: one whole object
    else:
        write_json_atomic(_remote.local_path(out_url) / MANIFEST, manifest, sort_keys=False)
    return result
