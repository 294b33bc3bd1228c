"""Exports of a cached dataset to other tools' formats.

:func:`export_sketchrnn` writes the layout of the published Sketch-RNN files
(``gs://quickdraw_dataset/sketchrnn/<word>.npz``) that magenta's ``sketch_rnn_train.load_dataset`` reads with
``np.load(path, encoding="latin1", allow_pickle=True)``: keys ``train``, ``valid`` and ``test``, each a 1-D
object array whose items are int16 ``[L, 3]`` stroke-3 arrays ``(dx, dy, pen_lift)`` -- exactly the cache's
stroke-3 rows, unnormalised (magenta computes its own scale factor from the training set). The cache's
``val`` split becomes ``valid``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from quickdraw._ownership import output_file
from quickdraw.errors import QuickDrawError

__all__ = ["SKETCHRNN_SPLITS", "ExportError", "export_sketchrnn"]

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
    }
