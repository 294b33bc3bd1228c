"""Exports of a cached dataset to other tools' formats.

:func:`export_sketchrnn` writes the layout of the published Sketch-RNN files
(``gs://quickdraw_dataset/sketchrnn/<word>.npz``) that magenta's ``sketch_rnn_train.load_dataset`` reads with
``np.load(path, encoding="latin1", allow_pickle=True)``: keys ``train``, ``valid`` and ``test``, each a 1-D
object array whose items are int16 ``[L, 3]`` stroke-3 arrays ``(dx, dy, pen_lift)`` -- exactly the cache's
stroke-3 rows, unnormalised (magenta computes its own scale factor from the training set). The cache's
``val`` split becomes ``valid``. Length rule: the sequences are the cache's, after prepare's length rules; the
export records which rule that was (``length_rule``: ``min_len``, ``max_len``, ``on_long``) because magenta's
loader *drops* drawings longer than ``max_seq_length`` while prepare by default *truncates* them: a cache
prepared with ``--on-long drop`` (and magenta's ``max_seq_length`` as ``--max-len``) is what matches magenta.

:func:`export_bitmap` writes Google's ``numpy_bitmap`` layout (``<word>.npy``, uint8 ``[N, size * size]``) from
the cache's stroke-3 drawings, with ``<word>.key_ids.npy``, ``<word>.splits.npy`` and ``bitmaps.json``
(:mod:`quickdraw.datasets.bitmap`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from quickdraw._ownership import output_file
from quickdraw.errors import QuickDrawError

__all__ = ["SKETCHRNN_SPLITS", "ExportError", "export_bitmap", "export_sketchrnn", "length_rule"]

#: npz key -> cache split.
SKETCHRNN_SPLITS = {"train": "train", "valid": "val", "test": "test"}


class ExportError(QuickDrawError):
    """The export cannot be written (unknown classes, a bad output path)."""


def _object_array(seqs: list[np.ndarray]) -> np.ndarray:
    arr = np.empty(len(seqs), dtype=object)
    for i, s in enumerate(seqs):  # item by item: numpy would otherwise stack equal-length sequences
        arr[i] = s
    return arr


def export_sketchrnn(
    cache: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    classes: Sequence[str] | None = None,
    version: str = "latest",
    root: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write a cache's stroke-3 splits (all classes, or only ``classes``) as a Sketch-RNN ``.npz``.

    Returns ``{"out", "cache", "version", "classes", "counts": {train, valid, test}}``. A split missing from
    the cache is written as an empty array. The file is written under a temporary name and renamed.

    >>> export_sketchrnn("animals10", "animals10.npz", classes=["cat"])  # doctest: +SKIP
    """
    from quickdraw.cache import resolve
    from quickdraw.datasets import SequenceDataset

    out = Path(out)
    if out.suffix != ".npz":
        raise ExportError(f"{out}: the Sketch-RNN export is an .npz file")
    cv = resolve(cache, version=version, root=root)
    have = list(cv.classes)
    if classes is not None:
        missing = [c for c in classes if c not in have]
        if missing:
            raise ExportError(f"class(es) {', '.join(missing)} not in cache {cv.name}/{cv.version} (have: {', '.join(have)})")
    if "stroke3" not in cv.manifest["formats"]:
        raise ExportError(f"cache {cv.name}/{cv.version} has no stroke3 format")
    splits = cv.manifest["formats"]["stroke3"]["splits"]
    keep_labels = None if classes is None else np.array([have.index(c) for c in classes], np.int32)
    arrays: dict[str, np.ndarray] = {}
    for key, split in SKETCHRNN_SPLITS.items():
        seqs: list[np.ndarray] = []
        if split in splits:
            ds = SequenceDataset(cv, split=split, format="stroke3")
            steps, offsets, labels = ds.to_numpy()
            idx = np.arange(len(labels)) if keep_labels is None else np.flatnonzero(np.isin(labels, keep_labels))
            seqs = [np.array(steps[offsets[i] : offsets[i + 1]], dtype=np.int16) for i in idx.tolist()]
        arrays[key] = _object_array(seqs)
    out, tmp = output_file(out, overwrite=overwrite)  # an existing file is replaced only with overwrite
    try:
        with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a path
            np.savez_compressed(f, **arrays)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return {
        "out": str(out),
        "cache": cv.name,
        "version": cv.version,
        "classes": list(classes) if classes is not None else have,
        "counts": {k: len(v) for k, v in arrays.items()},
        "length_rule": length_rule(cv.manifest),
    }


def length_rule(manifest: dict[str, Any]) -> dict[str, Any]:
    """The prepare length rule a cache's sequences went through, and whether it is magenta's (drop)."""
    prep = manifest.get("params", {}).get("prepare", {}) or {}
    rule = {k: prep.get(k) for k in ("min_len", "max_len", "on_long")}
    rule["matches_magenta"] = rule["on_long"] == "drop"
    return rule


def export_bitmap(
    cache: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    size: int = 28,
    classes: Sequence[str] | None = None,
    version: str = "latest",
    root: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    line_width: float | None = None,
) -> dict[str, Any]:
    """Write a cache's stroke-3 drawings as Google's ``numpy_bitmap`` files into the folder ``out``.

    Per class: ``<word>.npy`` (uint8 ``[N, size * size]``, rows train then val then test, each in cache
    order), ``<word>.key_ids.npy`` (uint64 ``[N]``), ``<word>.splits.npy`` (uint8 ``[N]``: 0 train, 1 val,
    2 test); then ``bitmaps.json`` (size, line width, supersampling, classes, counts, source cache and
    length rule). Files are written under temporary names and renamed; ``out`` must be new, empty or an
    earlier bitmap export (``overwrite`` to reuse another folder).

    >>> export_bitmap("animals10", "bitmaps28", size=28)  # doctest: +SKIP
    """
    from quickdraw._ownership import claim_output, output_lock
    from quickdraw.cache import resolve
    from quickdraw.datasets import SequenceDataset
    from quickdraw.strokes import take_ranges
    from quickdraw.datasets.bitmap import (BITMAP_MANIFEST, LINE_WIDTH, SPLIT_CODES, SUPERSAMPLE, manifest_doc,
                                           render_bitmaps)

    if not 1 <= int(size) <= 1024:
        raise ExportError(f"--size {size}: choose 1..1024 (Google's files use 28)")
    lw = LINE_WIDTH if line_width is None else float(line_width)
    if not 0 < lw <= 256:
        raise ExportError(f"--line-width {line_width}: choose a width in (0, 256] px of the 256 x 256 frame")
    cv = resolve(cache, version=version, root=root)
    have = list(cv.classes)
    if classes is not None:
        missing = [c for c in classes if c not in have]
        if missing:
            raise ExportError(f"class(es) {', '.join(missing)} not in cache {cv.name}/{cv.version} (have: {', '.join(have)})")
    if "stroke3" not in cv.manifest["formats"]:
        raise ExportError(f"cache {cv.name}/{cv.version} has no stroke3 format")
    words = list(classes) if classes is not None else have
    for w in words:
        if "/" in w or "\x00" in w or w in (".", "..") or w.startswith("."):
            raise ExportError(f"class {w!r} cannot be a file name in {out}")
    outdir = claim_output(out, "bitmap-export", overwrite=overwrite)
    splits = cv.manifest["formats"]["stroke3"]["splits"]
    per: dict[int, dict[str, list[np.ndarray]]] = {have.index(w): {"img": [], "key": [], "split": []} for w in words}
    for split, code in SPLIT_CODES.items():
        if split not in splits:
            continue
        ds = SequenceDataset(cv, split=split, format="stroke3")
        steps, offsets, labels = ds.to_numpy()
        keys = np.asarray(ds.key_ids)
        for label, acc in per.items():
            idx = np.flatnonzero(labels == label)
            if not len(idx):
                continue
            rows, offs = take_ranges(offsets, idx)
            img = render_bitmaps(steps[rows], offs, int(size), line_width=lw)
            acc["img"].append(img.reshape(len(idx), int(size) ** 2))
            acc["key"].append(keys[idx].astype(np.uint64))
            acc["split"].append(np.full(len(idx), code, np.uint8))
    counts: dict[str, dict[str, int]] = {}
    with output_lock(outdir, "bitmap export"):
        for label, acc in per.items():
            word = have[label]
            img = np.concatenate(acc["img"]) if acc["img"] else np.zeros((0, int(size) ** 2), np.uint8)
            key = np.concatenate(acc["key"]) if acc["key"] else np.zeros(0, np.uint64)
            code = np.concatenate(acc["split"]) if acc["split"] else np.zeros(0, np.uint8)
            for name, arr in ((f"{word}.npy", img), (f"{word}.key_ids.npy", key), (f"{word}.splits.npy", code)):
                _write_npy(outdir / name, arr)
            counts[word] = {s: int((code == c).sum()) for s, c in SPLIT_CODES.items()}
        doc = manifest_doc(size=int(size), line_width=lw, supersample=SUPERSAMPLE, classes=words, counts=counts,
                           cache={"name": cv.name, "version": cv.version}, length_rule=length_rule(cv.manifest))
        tmp = outdir / f".{BITMAP_MANIFEST}.{os.getpid()}.incomplete"
        tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, outdir / BITMAP_MANIFEST)
    return {"out": str(outdir), "cache": cv.name, "version": cv.version, "size": int(size), "line_width": lw,
            "classes": words, "counts": counts}


def _write_npy(path: Path, arr: np.ndarray) -> None:
    """Write ``arr`` as ``.npy`` under a temporary name, then rename (never a half-written file)."""
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise ExportError(f"{path} is a symlink or not a regular file: quickdraw does not write through it")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.incomplete")
    try:
        with open(tmp, "wb") as f:
            np.save(f, np.ascontiguousarray(arr))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
