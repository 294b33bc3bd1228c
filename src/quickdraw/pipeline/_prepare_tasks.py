"""prepare on any executor, and from/into fsspec URLs: scan tasks per class, write tasks per shard file.

The local prepare streams classes through one writer per (format, split), so a shard file holds many
classes and its bytes depend on all of them. To run on workers and still give byte-identical files, the
work is cut where the output is cut:

1. **scan** (one task per class): the key ids and the stroke-3 length of every drawing (the ``drawing.x``
   list lengths: one step per point). Cheap: no coordinates are decoded.
2. **plan** (the client): dedup in class-list order (:class:`~quickdraw.pipeline.prepare._Deduper`), the
   length rules, the splits (a pure function of the key id), the per-class counts, and which classes go into
   which part file (a new part starts at the first class boundary after ``PART_ROWS`` rows, as
   :class:`~quickdraw.pipeline.prepare._ShardWriter` does). With ``normalize``, a moments task per class
   gives the train split's exact integer sums, so the scale is known before any shard is written.
3. **write** (one task per output file: format, split, part): converts only that split's drawings of its
   classes, with the same code and row groups as the local writer, and writes the whole file (locally a
   ``.incomplete`` file renamed into place; on an object store a local file uploaded as one object). It
   returns the rows per class, which the client checks against the plan.
4. The client writes ``_manifest.json`` last; until then the output does not look complete (the old
   manifest was removed first).

Parallelism of step 3 is the number of output files: 2 formats x (train parts + 2) -- 6 for up to 2M
training drawings, ~50 for the full 50M (docs/SCALING.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from quickdraw import __version__
from quickdraw._io import write_json_atomic
from quickdraw._ownership import claim_output, output_lock
from quickdraw.parallel import run_tasks
from quickdraw.pipeline.prepare import (
    FORMATS,
    MANIFEST,
    PART_ROWS,
    PREPARE_SCHEMA_VERSION,
    SPLITS,
    PrepareError,
    PrepareResult,
    ProgressCallback,
    _check_fractions,
    _class_stroke3,
    _ClassData,
    _clean_previous,
    _Deduper,
    _fetch_schema,
    _is_prepare_output,
    _read_class,
    _resolve_classes,
    _ShardWriter,
    _write_class,
    assign_splits,
    input_fingerprint,
)
from quickdraw.sources import remote
from quickdraw.sources.parquet import class_parts
from quickdraw.strokes import OnLong, scale_from_moments, xy_moments

__all__ = ["moments_task", "prepare_with_executor", "scan_class_task", "write_shard_task"]

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _class_input(in_url: str, word: str) -> Iterator[Path]:
    """The fetch output folder to read ``word`` from: ``in_url`` itself when local (or shared), else a
    private scratch folder the class (manifest and listed parts) is downloaded into, removed afterwards."""
    if not remote.is_remote(in_url):
        yield remote.local_path(in_url)
        return
    scratch = Path(tempfile.mkdtemp(prefix=f"quickdraw-prepare-{os.getpid()}-"))
    try:
        remote.stage_class(in_url, word, scratch)
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def scan_class_task(in_url: str, word: str) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64]]:
    """Key ids and stroke-3 lengths (points) of every drawing of one fetched class, in source order."""
    with _class_input(in_url, word) as in_dir:
        key_ids, lengths = [], []
        for p in class_parts(in_dir, word):
            t = pq.read_table(p, columns=["key_id", "drawing.x"], use_threads=False)
            key_ids.append(np.asarray(t.column("key_id").to_numpy(), dtype=np.uint64))
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
    if remote.is_remote(out_url):
        stage = Path(tempfile.mkdtemp(prefix=f"quickdraw-shard-{os.getpid()}-"))
        out_dir = stage
    else:
        out_dir = remote.local_path(out_url)
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
            fs, root = remote.output_fs(out_url)
            remote.upload(fs, stage / entry["file"], f"{root}/{entry['file']}")
        return entry, rows
    finally:
        if stage is not None:
            shutil.rmtree(stage, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ driver


@contextlib.contextmanager
def _claimed(in_url: str, out_url: str, overwrite: bool) -> Iterator[None]:
    """Claim the output (marker), refuse an overlap with the input, hold the writer lock, and clear what an
    earlier run left (the manifest first, so that nothing looks complete from here on)."""
    if remote.is_remote(out_url):
        remote.claim_remote(out_url, "prepare", overwrite=overwrite)
        if remote.is_remote(in_url):
            a, b = in_url.rstrip("/") + "/", out_url.rstrip("/") + "/"
            if a.startswith(b) or b.startswith(a):
                raise PrepareError(f"--out {out_url} and --in {in_url} overlap: prepare writes into a folder of its own")
        with remote.remote_lock(out_url, "prepare"):
            fs, root = remote.output_fs(out_url)
            with contextlib.suppress(FileNotFoundError):
                fs.rm_file(f"{root}/{MANIFEST}")
            for fmt in FORMATS:
                for split in SPLITS:
                    remote.remove_owned(fs, f"{root}/{fmt}/{split}", ("part-*.parquet", "part-*.parquet.incomplete"))
            yield
        return
    out_path = remote.local_path(out_url)
    if not remote.is_remote(in_url):
        real_in, real_out = remote.local_path(in_url).resolve(), out_path.resolve()
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
    fr = _check_fractions(fractions)
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise PrepareError(f"formats must be among {sorted(FORMATS)}, got {list(formats)!r}")
    fmts = [f for f in FORMATS if f in formats]
    if on_long not in ("truncate", "drop"):
        raise PrepareError(f"on_long must be 'truncate' or 'drop', not {on_long!r}")
    if min_len < 0 or max_len < 1 or min_len > max_len:
        raise PrepareError(f"need 0 <= min_len <= max_len and max_len >= 1 (got min_len={min_len}, max_len={max_len})")
    words = _resolve_classes(in_url if remote.is_remote(in_url) else remote.local_path(in_url), classes)  # type: ignore[arg-type]
    fingerprint = input_fingerprint(in_url if remote.is_remote(in_url) else remote.local_path(in_url), words)
    params: dict[str, Any] = {"min_len": int(min_len), "max_len": int(max_len), "on_long": on_long,
                              "fractions": list(fr), "seed": int(seed), "normalize": bool(normalize)}
    rules: dict[str, Any] = {"min_len": min_len, "max_len": max_len, "on_long": on_long}

    own_pool = executor is None
    if executor is None:
        executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="prepare-task")
    try:
        with _claimed(in_url, out_url, overwrite):
            return _drive(in_url, out_url, executor, words, fmts, fr, seed, params, rules, fingerprint, normalize,
                          progress)
    finally:
        if own_pool:
            executor.shutdown(wait=False, cancel_futures=True)


def _drive(in_url: str, out_url: str, executor: Executor, words: list[str], fmts: list[str],
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

    result = PrepareResult(out_dir=out_url if remote.is_remote(out_url) else remote.local_path(out_url),  # type: ignore[arg-type]
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
    if remote.is_remote(out_url):
        import json

        fs, root = remote.output_fs(out_url)
        data = json.dumps(manifest, indent=2, sort_keys=False, ensure_ascii=False) + "\n"
        fs.pipe_file(f"{root}/{MANIFEST}", data.encode("utf-8"))  # last: one whole object
    else:
        write_json_atomic(remote.local_path(out_url) / MANIFEST, manifest, sort_keys=False)
    return result
