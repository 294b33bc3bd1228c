"""``SequenceDataset``: one split of one format of a cache version, memory-mapped (CSR layout).

Opening only memory-maps five ``.npy`` files and reads the small manifest, so it costs milliseconds for
millions of sequences and copies nothing; ``ds[i]`` is a view into the shared page cache.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from quickdraw.cache.store import CacheVersion, check_files, open_version, resolve
from quickdraw.datasets._padding import pad as _pad
from quickdraw.datasets._padding import to_torch as _to_torch
from quickdraw.errors import CacheError

if TYPE_CHECKING:
    import polars as pl
    from matplotlib.figure import Figure

    from quickdraw.datasets.render import Drawing
    from quickdraw.datasets.torch_data import TorchSequenceDataset

__all__ = ["SequenceDataset", "load"]

log = logging.getLogger(__name__)


def _mmap(path: Path, dtype: str, ndim: int) -> np.ndarray:
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise CacheError(f"{path}: unreadable array ({exc})") from None
    if arr.dtype != np.dtype(dtype) or arr.ndim != ndim:
        raise CacheError(f"{path}: dtype {arr.dtype} ndim {arr.ndim}, expected {dtype} ndim {ndim}")
    # A plain ndarray view of the same mapping (kept alive through .base): np.memmap's Python-level
    # __getitem__/__array_wrap__ made every ds[i] several times slower, for nothing a reader needs.
    return arr.view(np.ndarray)


class SequenceDataset:
    """Sequences of one split and format: ``ds[i] -> (steps [L, C] int16 view, label)``.

    ``normalize=True`` divides dx, dy by the training split's std (``norm_scale`` in the manifest) and
    returns float32 copies instead of int16 views.
    """

    def __init__(self, cv: CacheVersion, split: str = "train", format: str = "stroke3", normalize: bool = False):
        fmts = cv.manifest["formats"]
        if format not in fmts:
            raise CacheError(f"{cv.path}: no {format!r} in this cache (have: {', '.join(fmts)})")
        if split not in fmts[format]["splits"]:
            have = ", ".join(fmts[format]["splits"])
            raise CacheError(f"{cv.path}: no split {split!r} for {format} (have: {have})")
        self.cache = cv
        self.split = split
        self.format = format
        self.normalize = bool(normalize)
        self.channels: int = int(fmts[format]["channels"])
        scale = fmts[format].get("norm_scale")
        self.scale: float = float(scale) if scale else 1.0
        self.dir = cv.path / format / split
        check_files(cv, prefix=f"{format}/{split}/")
        self._open_arrays()

    def _open_arrays(self) -> None:
        d = self.dir
        self.steps: np.ndarray = _mmap(d / "steps.npy", "<i2", 2)
        self.offsets: np.ndarray = _mmap(d / "offsets.npy", "<i8", 1)
        self._labels: np.ndarray = _mmap(d / "labels.npy", "<i4", 1)
        self._lengths: np.ndarray = _mmap(d / "lengths.npy", "<i4", 1)
        self._key_ids: np.ndarray = _mmap(d / "key_ids.npy", "<u8", 1)
        n = len(self._labels)
        if len(self.offsets) != n + 1 or self.steps.shape[1] != self.channels:
            raise CacheError(f"{d}: arrays disagree (offsets {len(self.offsets)}, labels {n})")
        self._n = n

    # Pickling sends only the location: DataLoader workers (fork or spawn) re-map the same files instead
    # of receiving a copy of the arrays.
    def __getstate__(self) -> dict[str, Any]:
        return {"path": str(self.cache.path), "split": self.split, "format": self.format, "normalize": self.normalize}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(open_version(Path(state["path"])), state["split"], state["format"], state["normalize"])  # type: ignore[misc]

    # -- basic access --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        n = self._n
        i = int(i)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"index {i} out of range for {n} sequences")
        seq = self.steps[self.offsets[i] : self.offsets[i + 1]]
        if self.normalize:
            seq = self._normalized(seq)
        return seq, int(self._labels[i])

    def __iter__(self) -> Iterator[tuple[np.ndarray, int]]:
        for i in range(self._n):
            yield self[i]

    def __repr__(self) -> str:
        return (
            f"SequenceDataset({self.cache.name}/{self.cache.version}, split={self.split!r}, "
            f"format={self.format!r}, n={self._n}, classes={len(self.classes)})"
        )

    def _normalized(self, seq: np.ndarray) -> np.ndarray:
        out = seq.astype(np.float32)
        out[:, :2] /= self.scale
        return out

    @property
    def classes(self) -> list[str]:
        """The class list; labels index into it."""
        return self.cache.classes

    @property
    def name(self) -> str:
        """The cache name."""
        return self.cache.name

    @property
    def version(self) -> str:
        """The cache version id."""
        return self.cache.version

    @property
    def labels(self) -> np.ndarray:
        """int32 [n], memory-mapped."""
        return self._labels

    @property
    def lengths(self) -> np.ndarray:
        """int32 [n] steps per sequence, memory-mapped."""
        return self._lengths

    @property
    def key_ids(self) -> np.ndarray:
        """uint64 [n] Quick, Draw! key ids, memory-mapped."""
        return self._key_ids

    def word(self, i: int) -> str:
        """The class name of sequence ``i``."""
        return self.classes[int(self._labels[i])]

    # -- bulk views ----------------------------------------------------------------------------------
    def to_numpy(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(steps [total, C] int16, offsets [n+1] int64, labels [n] int32)``, all memory-mapped."""
        return self.steps, self.offsets, self._labels

    def to_polars(self) -> pl.DataFrame:
        """One row a drawing: key_id, word, label, countrycode, recognized, timestamp, n_strokes, n_points,
        length and ``sequence`` (``List(Array(Int16, C))``, built zero-copy from the CSR arrays)."""
        import polars as pl
        import pyarrow as pa
        import pyarrow.parquet as pq

        meta = pq.read_table(self.dir / "meta.parquet")
        k = self.channels
        flat = pa.array(np.asarray(self.steps).reshape(-1), pa.int16())
        seq = pa.LargeListArray.from_arrays(
            pa.array(np.asarray(self.offsets), pa.int64()), pa.FixedSizeListArray.from_arrays(flat, k)
        )
        cols = {
            "key_id": meta["key_id"],
            "word": meta["word"],
            "label": pa.array(np.asarray(self._labels), pa.int32()),
            "countrycode": meta["countrycode"],
            "recognized": meta["recognized"],
            "timestamp": meta["timestamp"],
            "n_strokes": meta["n_strokes"],
            "n_points": meta["n_points"],
            "length": pa.array(np.asarray(self._lengths), pa.int32()),
            "sequence": seq,
        }
        return pl.from_arrow(pa.table(cols))  # type: ignore[return-value]

    def batch(self, indices: Any, *, as_torch: bool = True) -> dict[str, Any]:
        """A padded batch built straight from the CSR arrays (the training fast path).

        Returns ``x`` float32 [B, T, C] (stroke-5 padding rows are ``(0, 0, 0, 0, 1)``), ``lengths`` int64
        [B], ``mask`` bool [B, T], ``labels`` int64 [B]; torch tensors unless ``as_torch=False``.
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < -self._n or idx.max() >= self._n):
            raise IndexError(f"batch index out of range for {self._n} sequences")
        idx = np.where(idx < 0, idx + self._n, idx)
        starts = self.offsets[idx]
        lengths = (self.offsets[idx + 1] - starts).astype(np.int64)
        # One gather for the whole batch: position p of the flattened valid cells reads step
        # starts[b] + t; np.repeat builds that index without a Python loop.
        total = int(lengths.sum())
        cum = np.zeros(len(idx), dtype=np.int64)
        if len(idx) > 1:
            np.cumsum(lengths[:-1], out=cum[1:])
        src = np.arange(total, dtype=np.int64) + np.repeat(starts - cum, lengths)
        flat = self.steps[src]
        out = _pad(flat, lengths, self.channels, scale=self.scale if self.normalize else None)
        out["labels"] = self._labels[idx].astype(np.int64)
        return _to_torch(out) if as_torch else out

    # -- conveniences --------------------------------------------------------------------------------
    def torch(self) -> TorchSequenceDataset:
        """This split as a ``torch.utils.data.Dataset`` (items: ``(int16 array, label)``)."""
        from quickdraw.datasets.torch_data import TorchSequenceDataset

        return TorchSequenceDataset(self)

    def drawing(self, i: int) -> Drawing:
        """Sequence ``i`` as a :class:`~quickdraw.datasets.render.Drawing` (renders inline in Jupyter)."""
        from quickdraw.datasets.render import Drawing

        return Drawing(np.asarray(self.steps[self.offsets[i] : self.offsets[i + 1]]), self.format, self.word(i))

    def plot_grid(self, per_class: int = 8, classes: list[str] | None = None) -> Figure:
        """A grid of drawings, one row per class (see :func:`quickdraw.datasets.plot_grid`)."""
        from quickdraw.datasets.render import plot_grid

        return plot_grid(self, per_class=per_class, classes=classes)


def load(
    name_or_path: str | os.PathLike[str],
    split: str = "train",
    format: str = "stroke3",
    version: str = "latest",
    root: str | os.PathLike[str] | None = None,
    normalize: bool = False,
) -> SequenceDataset:
    """Open a cached dataset by name (under the cache root) or by a name/version directory.

    >>> ds = load("animals10", split="train")          # doctest: +SKIP
    >>> seq, label = ds[0]; ds.classes[label]          # doctest: +SKIP

    Raises :class:`quickdraw.errors.CacheError` naming what is missing, truncated or unknown.
    """
    cv = resolve(name_or_path, version=version, root=root)
    return SequenceDataset(cv, split=split, format=format, normalize=normalize)

