"""Bitmaps in Google's ``numpy_bitmap`` layout, and reading them back memory-mapped for CNNs.

Google publishes ``numpy_bitmap/<word>.npy``: one uint8 ``[N, 784]`` array per class, each row a 28 x 28
grayscale image of a simplified drawing (strokes bright on a 0 background). :func:`render_bitmaps` renders
stroke-3 sequences of the simplified 256 x 256 frame the same way, anti-aliased as
:mod:`quickdraw.datasets._raster` documents (round-capped lines of ``line_width`` frame px, box-filtered
``ss x ss`` supersampling); :func:`quickdraw.pipeline.export.export_bitmap` writes the layout, plus per class
``<word>.key_ids.npy`` (uint64) and ``<word>.splits.npy`` (uint8 codes, :data:`SPLIT_CODES`) and a
``bitmaps.json`` that says how they were made; :class:`BitmapDataset` (``qd.load(dir, format="bitmap")``)
maps them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from quickdraw._safety import contained
from quickdraw.errors import CacheError

__all__ = ["BITMAP_MANIFEST", "LINE_WIDTH", "SPLIT_CODES", "SUPERSAMPLE", "BitmapDataset", "render_bitmaps",
           "stroke3_to_flat_strokes"]

#: Line width in px of the 256 x 256 frame (about 1.75 px in a 28 x 28 bitmap).
LINE_WIDTH = 16.0
#: Sub-samples per bitmap pixel and axis (8 x 8 = 64 coverage levels per pixel).
SUPERSAMPLE = 8
#: split name -> code in ``<word>.splits.npy``.
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
BITMAP_MANIFEST = "bitmaps.json"


def stroke3_to_flat_strokes(steps: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, ...]:
    """Absolute points of stroke-3 CSR sequences: ``(x int64, y int64, points per stroke, strokes per drawing)``.

    A stroke ends at each pen lift and at the end of each sequence (a truncated sequence ends lifted anyway).
    """
    steps = np.asarray(steps)
    offsets = np.asarray(offsets, np.int64)
    xy = np.cumsum(steps[:, :2].astype(np.int64), axis=0)
    lengths = np.diff(offsets)
    # Undo the running sum across sequence boundaries: every sequence starts from (0, 0).
    base = np.zeros((len(lengths), 2), np.int64)
    nonempty = lengths > 0
    starts = offsets[:-1][nonempty]
    base[nonempty] = np.where((starts > 0)[:, None], xy[np.maximum(starts - 1, 0)], 0)
    xy -= np.repeat(base, lengths, axis=0)
    ends = np.union1d(np.flatnonzero(steps[:, 2] == 1) + 1, offsets[1:][nonempty])
    stroke_pts = np.diff(np.concatenate(([0], ends)))
    # strokes per sequence: stroke ends inside (offsets[d], offsets[d + 1]]
    n_strokes = np.searchsorted(ends, offsets[1:], side="right") - np.searchsorted(ends, offsets[:-1], side="right")
    return (np.ascontiguousarray(xy[:, 0]), np.ascontiguousarray(xy[:, 1]), stroke_pts.astype(np.int64),
            n_strokes.astype(np.int64))


def render_bitmaps(steps: np.ndarray, offsets: np.ndarray, size: int = 28, *, line_width: float = LINE_WIDTH,
                   ss: int = SUPERSAMPLE) -> np.ndarray:
    """uint8 ``[n, size, size]`` bitmaps of stroke-3 CSR sequences in the 0..255 frame (module docstring)."""
    from quickdraw.datasets._raster import rasterize  # numba: only when rendering

    if not 1 <= size <= 1024 or not 1 <= ss <= 32 or not 0 < line_width <= 256:
        raise ValueError(f"size {size} (1..1024), ss {ss} (1..32), line_width {line_width} (0..256]")
    x, y, pts, ns = stroke3_to_flat_strokes(steps, offsets)
    out = np.zeros((len(ns), size, size), np.uint8)
    rasterize(x, y, pts, ns, int(size), float(line_width), int(ss), out)
    return out


class BitmapDataset:
    """One split of a bitmap export: ``ds[i] -> (uint8 [size, size] view, label)``, memory-mapped.

    Opened by ``qd.load(dir, split, format="bitmap")`` on a folder :func:`quickdraw.pipeline.export.export_bitmap`
    wrote. ``.images(i)`` is the same view; ``.labels``, ``.key_ids`` (per drawing of the split), ``.classes``;
    ``.to_numpy() -> (images [n, size, size] uint8 copy, labels int64)`` for small splits.
    """

    def __init__(self, path: str | os.PathLike[str], split: str = "train") -> None:
        self.path = Path(path)
        mpath = self.path / BITMAP_MANIFEST
        try:
            doc = json.loads(mpath.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CacheError(f"{mpath}: not a bitmap export ({exc}); write one with `quickdraw export bitmap`") from exc
        if not (isinstance(doc, dict) and doc.get("format") == "numpy_bitmap" and isinstance(doc.get("classes"), list)
                and isinstance(doc.get("size"), int) and doc["size"] > 0):
            raise CacheError(f"{mpath}: malformed bitmap manifest (needs format numpy_bitmap, classes, size)")
        if split not in SPLIT_CODES:
            raise CacheError(f"{self.path}: no split {split!r} (have: {', '.join(SPLIT_CODES)})")
        self.split = split
        self.size: int = doc["size"]
        self.classes: list[str] = [str(c) for c in doc["classes"]]
        self.manifest = doc
        self._images: list[np.ndarray] = []
        rows: list[np.ndarray] = []
        labels: list[np.ndarray] = []
        keys: list[np.ndarray] = []
        for label, word in enumerate(self.classes):
            img = np.load(contained(self.path, f"{word}.npy", str(mpath)), mmap_mode="r")
            codes = np.load(contained(self.path, f"{word}.splits.npy", str(mpath)), mmap_mode="r")
            kid = np.load(contained(self.path, f"{word}.key_ids.npy", str(mpath)), mmap_mode="r")
            if img.dtype != np.uint8 or img.ndim != 2 or img.shape[1] != self.size**2 or len(codes) != len(img) \
                    or len(kid) != len(img):
                raise CacheError(f"{self.path / word}.npy: not N x {self.size ** 2} uint8 with matching splits and key_ids")
            self._images.append(img.reshape(len(img), self.size, self.size))
            sel = np.flatnonzero(np.asarray(codes) == SPLIT_CODES[split])
            rows.append(sel)
            labels.append(np.full(len(sel), label, np.int64))
            keys.append(np.asarray(kid)[sel])
        self._class_of = np.concatenate(labels) if labels else np.zeros(0, np.int64)
        self._row = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        self.key_ids = np.concatenate(keys) if keys else np.zeros(0, np.uint64)

    @property
    def labels(self) -> np.ndarray:
        """Label (index into :attr:`classes`) of every drawing of the split."""
        return self._class_of

    def __len__(self) -> int:
        return len(self._row)

    def images(self, i: int) -> np.ndarray:
        """The uint8 ``[size, size]`` bitmap of drawing ``i`` (a read-only view of the mapped file)."""
        return self._images[int(self._class_of[i])][int(self._row[i])]

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} bitmaps")
        i = i % len(self)
        return self.images(i), int(self._class_of[i])

    def to_numpy(self) -> tuple[np.ndarray, np.ndarray]:
        """All bitmaps of the split as one uint8 ``[n, size, size]`` array (a copy) and the labels."""
        out = np.empty((len(self), self.size, self.size), np.uint8)
        for label in range(len(self.classes)):
            at = np.flatnonzero(self._class_of == label)
            out[at] = self._images[label][self._row[at]]
        return out, self._class_of.copy()

    def __repr__(self) -> str:
        return f"BitmapDataset({str(self.path)!r}, split={self.split!r}, n={len(self)}, size={self.size})"


def load_bitmaps(path: str | os.PathLike[str], split: str = "train") -> BitmapDataset:
    """Open a bitmap export folder (see :class:`BitmapDataset`)."""
    return BitmapDataset(path, split)


def manifest_doc(**kw: Any) -> dict[str, Any]:
    """The ``bitmaps.json`` document: how the files were made (renderer settings, source cache, counts)."""
    return {"format": "numpy_bitmap", "renderer": "quickdraw.datasets._raster (supersampled round-capped lines)",
            "split_codes": SPLIT_CODES, **kw}
