"""Build a cache version from prepare's stroke shards (docs/FORMATS.md sections 2 -> 3).

The build streams shard by shard (memory stays bounded by one record batch plus per-row arrays), writes
into ``ROOT/<name>/.tmp-<version>-<pid>/``, writes ``manifest.json`` last and renames the directory into
place, so a killed build never leaves a visible version. A file lock per version makes concurrent builds
of the same version end with one correct copy.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from filelock import FileLock

from quickdraw._io import write_atomic
from quickdraw.cache.fingerprint import (
    CACHE_FORMAT_VERSION,
    file_checksum,
    update_fingerprint,
    version_id,
)
from quickdraw._safety import contained
from quickdraw.cache.store import (
    BUILD_MARKER,
    LOCK_DIR,
    MANIFEST_FILE,
    TMP_PREFIX,
    CacheVersion,
    cache_root,
    check_name,
    manifest_json,
    open_version,
    write_latest,
    write_root_marker,
)
from quickdraw.errors import CacheError
from quickdraw.strokes import scale_from_moments, xy_moments

__all__ = ["CHANNELS", "META_COLUMNS", "build_cache", "prepared_formats"]

log = logging.getLogger(__name__)

CHANNELS = {"stroke3": 3, "stroke5": 5, "stroke3t": 4}
META_COLUMNS = ("key_id", "word", "countrycode", "recognized", "timestamp", "n_strokes", "n_points")
_SPLIT_ORDER = {"train": 0, "val": 1, "test": 2}
_BATCH_ROWS = 1 << 16
# Test-only hook: seconds to sleep after the first split is written, so a test can SIGKILL a build midway.
_PAUSE_ENV = "_QUICKDRAW_CACHE_BUILD_PAUSE"


@dataclass
class _Shard:
    path: Path
    rel: str
    meta: dict[str, Any]
    rows: int


@dataclass
class _Plan:
    strokes_dir: Path
    formats: list[str]
    shards: dict[str, dict[str, list[_Shard]]] = field(default_factory=dict)
    classes: list[str] = field(default_factory=list)
    upstream: dict[str, Any] = field(default_factory=dict)


def _split_key(s: str) -> tuple[int, str]:
    return (_SPLIT_ORDER.get(s, 99), s)


def prepared_formats(strokes_dir: Path) -> list[str]:
    """The formats a prepare output holds: its ``_manifest.json`` ``formats``, else its ``stroke3/``, ``stroke5/`` dirs.

    `prepare --formats stroke3` writes no stroke5 shards, so a fixed default of both formats would make the
    following `cache build` fail; caching what was prepared is what the user means when asking for nothing.
    """
    try:
        listed = json.loads((strokes_dir / "_manifest.json").read_text(encoding="utf-8")).get("formats")
    except (OSError, ValueError, AttributeError):
        listed = None  # _plan reports a missing or unreadable manifest with the shard-level detail
    if isinstance(listed, list) and listed:
        # Only the formats a cache can hold: a prepare format the cache does not know is not an error here.
        return [fmt for fmt in CHANNELS if fmt in listed]
    # Older or synthetic prepare outputs without a `formats` list: what is on disk is the answer.
    return [fmt for fmt in CHANNELS if (strokes_dir / fmt).is_dir()]


def _plan(strokes_dir: Path, formats: Sequence[str] | None) -> _Plan:
    if not strokes_dir.is_dir():
        raise CacheError(f"{strokes_dir}: no such directory (the prepare stage's --out)")
    if not (strokes_dir / "_manifest.json").is_file():
        raise CacheError(f"{strokes_dir / '_manifest.json'}: missing; the prepare output is incomplete (rerun prepare)")
    if formats is None:
        formats = prepared_formats(strokes_dir)
        if not formats:
            raise CacheError(f"{strokes_dir}: no stroke3/ or stroke5/ shards (the prepare output is empty)")
    bad = [f for f in formats if f not in CHANNELS]
    if bad or not formats:
        raise CacheError(f"unknown format(s) {bad or list(formats)!r}: choose from {sorted(CHANNELS)}")
    # Canonical order so that formats=("stroke5","stroke3") names the same version as the reverse.
    plan = _Plan(strokes_dir, sorted(set(formats), key=list(CHANNELS).index))
    for fmt in plan.formats:
        fdir = strokes_dir / fmt
        if not fdir.is_dir():
            raise CacheError(f"{fdir}: missing; prepare wrote no {fmt} shards")
        splits: dict[str, list[_Shard]] = {}
        for sdir in sorted((d for d in fdir.iterdir() if d.is_dir()), key=lambda d: _split_key(d.name)):
            # Globbed, not read from a manifest, but still contained: a shard that is a symlink out of the
            # prepare output, a FIFO or a device is refused before pyarrow opens it.
            parts = [
                contained(strokes_dir, p.relative_to(strokes_dir).as_posix(), f"{strokes_dir}: shard", error=CacheError)
                for p in sorted(sdir.glob("part-*.parquet"))
            ]
            if parts:
                splits[sdir.name] = [_read_shard_info(strokes_dir, p, fmt, sdir.name, plan) for p in parts]
        if not splits:
            raise CacheError(f"{fdir}: no part-*.parquet shards under any split directory")
        plan.shards[fmt] = splits
    return plan


def _read_shard_info(strokes_dir: Path, path: Path, fmt: str, split: str, plan: _Plan) -> _Shard:
    try:
        pf = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise CacheError(f"{path}: unreadable Parquet shard ({exc})") from None
    raw = (pf.schema_arrow.metadata or {}).get(b"quickdraw")
    if raw is None:
        raise CacheError(f"{path}: no 'quickdraw' metadata (not a prepare shard)")
    meta = json.loads(raw)
    classes = meta.get("classes")
    if not isinstance(classes, list) or not classes:
        raise CacheError(f"{path}: metadata has no class list")
    if not plan.classes:
        plan.classes = list(classes)
        plan.upstream = {
            "input_fingerprint": meta.get("input_fingerprint"),
            "params": meta.get("params"),
        }
    elif classes != plan.classes:
        raise CacheError(f"{path}: class list differs from the other shards' (mixed prepare runs?)")
    if meta.get("format", fmt) != fmt or meta.get("split", split) != split:
        raise CacheError(f"{path}: metadata says {meta.get('format')}/{meta.get('split')}, path says {fmt}/{split}")
    names = set(pf.schema_arrow.names)
    missing = [c for c in (*META_COLUMNS, "label", "length", "sequence") if c not in names]
    if missing:
        raise CacheError(f"{path}: missing column(s) {missing}")
    return _Shard(path, path.relative_to(strokes_dir).as_posix(), meta, pf.metadata.num_rows)


def _input_fingerprint(plan: _Plan) -> tuple[str, list[dict[str, Any]]]:
    # Hash shard bytes rather than trusting upstream metadata: a changed prepare (new code, same params)
    # then gives a new version instead of silently reusing a stale one. xxh3 keeps this I/O bound.
    shards = [
        {"file": s.rel, "size": s.path.stat().st_size, "xxh3_128": file_checksum(s.path)}
        for fmt in plan.formats
        for split in plan.shards[fmt]
        for s in plan.shards[fmt][split]
    ]
    return update_fingerprint("", "strokes", {"shards": shards}), shards


def _write_npy_header(f: BinaryIO, dtype: str, shape: tuple[int, ...]) -> None:
    np.lib.format.write_array_header_1_0(
        f, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
    )


def _save_npy(path: Path, arr: np.ndarray, dtype: str) -> None:
    with open(path, "wb") as f:
        np.lib.format.write_array(f, np.ascontiguousarray(arr, dtype=np.dtype(dtype)), version=(1, 0))
        f.flush()
        os.fsync(f.fileno())


def _write_split(out: Path, fmt: str, shards: list[_Shard], n_classes: int) -> dict[str, Any]:
    """Write one split's CSR arrays + meta.parquet; returns counts and exact sums for the scale."""
    k = CHANNELS[fmt]
    out.mkdir(parents=True, exist_ok=True)
    # Pass 1: the `length` column only (cheap), to size the steps header before streaming its body.
    declared = [pq.read_table(s.path, columns=["length"])["length"].to_numpy() for s in shards]
    lengths = np.concatenate(declared).astype(np.int64) if declared else np.zeros(0, np.int64)
    n = len(lengths)
    total = int(lengths.sum())
    labels = np.empty(n, dtype=np.int32)
    key_ids = np.empty(n, dtype=np.uint64)
    meta_batches: list[pa.RecordBatch] = []
    s_n = s_sum = s_sq = 0  # exact integer moments of dx, dy for the normalisation scale
    row = 0
    step = 0
    with open(out / "steps.npy", "wb") as f:
        _write_npy_header(f, "<i2", (total, k))
        for shard in shards:
            pf = pq.ParquetFile(shard.path)
            for batch in pf.iter_batches(batch_size=_BATCH_ROWS):
                m = batch.num_rows
                seq = batch.column("sequence")
                if seq.null_count:
                    raise CacheError(f"{shard.path}: null sequence(s)")
                got = pc.list_value_length(seq).to_numpy(zero_copy_only=False).astype(np.int64)
                if not np.array_equal(got, lengths[row : row + m]):
                    bad = int(np.flatnonzero(got != lengths[row : row + m])[0])
                    raise CacheError(
                        f"{shard.path}: row {row + bad - _rows_before(shards, shard)}: `length` column says "
                        f"{int(lengths[row + bad])}, sequence has {int(got[bad])} steps"
                    )
                fsl = seq.flatten()
                if not pa.types.is_fixed_size_list(fsl.type) or fsl.type.list_size != k:
                    raise CacheError(f"{shard.path}: sequence type {seq.type}, expected list<fixed_size_list<int16, {k}>>")
                steps = fsl.flatten().to_numpy(zero_copy_only=False).astype("<i2", copy=False).reshape(-1, k)
                f.write(memoryview(np.ascontiguousarray(steps)).cast("B"))
                lab = batch.column("label").to_numpy(zero_copy_only=False)
                if m and (lab.min() < 0 or lab.max() >= n_classes):
                    raise CacheError(f"{shard.path}: label out of range 0..{n_classes - 1}")
                labels[row : row + m] = lab
                key_ids[row : row + m] = batch.column("key_id").to_numpy(zero_copy_only=False)
                meta_batches.append(batch.select(list(META_COLUMNS)))
                xy = steps[steps[:, 4] == 0, :2] if k == 5 else steps[:, :2]  # stroke-5: no end steps
                n_xy, sum_xy, sq_xy = xy_moments(xy)
                s_n, s_sum, s_sq = s_n + n_xy, s_sum + sum_xy, s_sq + sq_xy
                row += m
                step += len(steps)
        f.flush()
        os.fsync(f.fileno())
    if row != n or step != total:
        raise CacheError(f"{out}: shard row counts changed while reading ({row} != {n})")
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    _save_npy(out / "offsets.npy", offsets, "<i8")
    _save_npy(out / "labels.npy", labels, "<i4")
    _save_npy(out / "lengths.npy", lengths, "<i4")
    _save_npy(out / "key_ids.npy", key_ids, "<u8")
    meta_schema = pq.read_schema(shards[0].path).remove_metadata()
    meta_schema = pa.schema([meta_schema.field(c) for c in META_COLUMNS])
    table = pa.Table.from_batches(meta_batches, schema=meta_schema) if meta_batches else meta_schema.empty_table()
    pq.write_table(table, out / "meta.parquet", compression="zstd")
    return {
        "n": n,
        "steps": total,
        "max_length": int(lengths.max()) if n else 0,
        "_moments": (s_n, s_sum, s_sq),
    }


def _rows_before(shards: list[_Shard], shard: _Shard) -> int:
    total = 0
    for s in shards:
        if s is shard:
            return total
        total += s.rows
    return total


def _scale(moments: tuple[int, int, int]) -> float | None:
    # Rounded so the manifest stays short and stable; 1.0 (no scaling) for data with no spread.
    scale = scale_from_moments(moments)
    if scale is None:
        return None
    return round(scale, 6) if scale > 0 else 1.0


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def build_cache(
    strokes_dir: str | os.PathLike[str],
    root: str | os.PathLike[str] | None,
    name: str,
    *,
    formats: Sequence[str] | None = None,
) -> CacheVersion:
    """Build (or reuse) the cache version of prepare's shards under ``ROOT/<name>`` and make it LATEST.

    ``formats=None`` caches every format the prepare output has (:func:`prepared_formats`).

    The version id is a fingerprint of the shards' bytes, ``formats`` and the cache format version, so
    building the same input twice is a no-op and yields byte-identical files. Raises :class:`CacheError`
    naming the shard at fault for bad input.
    """
    strokes_dir = Path(strokes_dir)
    check_name(name)
    plan = _plan(strokes_dir, None if formats is None else list(formats))
    input_fp, shard_list = _input_fingerprint(plan)
    params = {"formats": plan.formats, "splits": {fmt: list(plan.shards[fmt]) for fmt in plan.formats}}
    version = version_id(input_fp, params)
    croot = cache_root(root)
    name_dir = croot / name
    final = name_dir / version
    (name_dir / LOCK_DIR).mkdir(parents=True, exist_ok=True)
    write_root_marker(croot)  # gc collects only under a root that carries it
    with FileLock(str(name_dir / LOCK_DIR / f"{version}.lock")):
        if (final / MANIFEST_FILE).is_file():
            log.info("cache %s/%s already built at %s", name, version, final)
            write_latest(name_dir, version)
            return open_version(final)
        tmp = name_dir / f"{TMP_PREFIX}{version}-{os.getpid()}"
        if tmp.exists() or tmp.is_symlink():
            if tmp.is_symlink() or not (tmp / BUILD_MARKER).is_file():
                raise CacheError(f"{tmp}: exists and was not made by a quickdraw build; move it away")
            shutil.rmtree(tmp)
        tmp.mkdir()
        # The ownership marker gc looks for before removing a temp dir (removed again before the rename).
        (tmp / BUILD_MARKER).write_text(tmp.name + "\n", encoding="utf-8")
        try:
            manifest = _build_into(tmp, plan, name, version, input_fp, shard_list, params)
            # fsynced before the directory rename (write_atomic): the manifest is what makes the version exist,
            # so after a power cut a renamed-in version must not have an empty or partial one.
            write_atomic(tmp / MANIFEST_FILE, manifest_json(manifest).encode("utf-8"))
            (tmp / BUILD_MARKER).unlink()
            _fsync_dir(tmp)
            if final.exists() or final.is_symlink():
                # A manifest-less folder with the version's name: not something quickdraw can prove it wrote.
                raise CacheError(
                    f"{final}: exists without a manifest (not a complete cache version, maybe a folder of "
                    "yours); move it away and build again"
                )
            os.rename(tmp, final)
            _fsync_dir(name_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        write_latest(name_dir, version)
    log.info("built cache %s/%s at %s", name, version, final)
    return open_version(final)


def _build_into(
    tmp: Path,
    plan: _Plan,
    name: str,
    version: str,
    input_fp: str,
    shard_list: list[dict[str, Any]],
    params: dict[str, Any],
) -> dict[str, Any]:
    from quickdraw import __version__

    fmt_info: dict[str, Any] = {}
    pause = float(os.environ.get(_PAUSE_ENV, "0") or 0)
    for fmt in plan.formats:
        splits: dict[str, Any] = {}
        for split, shards in plan.shards[fmt].items():
            log.info("cache %s: writing %s/%s from %d shard(s)", name, fmt, split, len(shards))
            splits[split] = _write_split(tmp / fmt / split, fmt, shards, len(plan.classes))
            if pause:
                time.sleep(pause)
                pause = 0.0
        # Sketch-RNN normalises offsets by the training split's std; use all splits when there is no train.
        src = [splits["train"]] if "train" in splits else list(splits.values())
        moments = tuple(sum(s["_moments"][i] for s in src) for i in range(3))
        for s in splits.values():
            del s["_moments"]
        upstream_scale = plan.shards[fmt][next(iter(plan.shards[fmt]))][0].meta.get("scale")
        fmt_info[fmt] = {
            "channels": CHANNELS[fmt],
            "norm_scale": _scale(moments),  # type: ignore[arg-type]
            "upstream_scale": upstream_scale,
            "splits": splits,
        }
    files: dict[str, Any] = {}
    for p in sorted(q for q in tmp.rglob("*") if q.is_file() and q.name != BUILD_MARKER):
        files[p.relative_to(tmp).as_posix()] = {"size": p.stat().st_size, "xxh3_128": file_checksum(p)}
    return {
        "cache_format_version": CACHE_FORMAT_VERSION,
        "name": name,
        "version": version,
        "created_by": {"package": "quickdraw-pipeline", "version": __version__},
        "input": {
            "fingerprint": input_fp,
            "upstream_fingerprint": plan.upstream.get("input_fingerprint"),
            "shards": shard_list,
        },
        "params": {**params, "prepare": plan.upstream.get("params")},
        "classes": plan.classes,
        "formats": fmt_info,
        "counts": {
            "sequences": {fmt: sum(s["n"] for s in fmt_info[fmt]["splits"].values()) for fmt in plan.formats},
            "steps": {fmt: sum(s["steps"] for s in fmt_info[fmt]["splits"].values()) for fmt in plan.formats},
            "files": len(files),
            "bytes": sum(f["size"] for f in files.values()),
        },
        "files": files,
    }
