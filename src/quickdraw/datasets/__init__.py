"""Loading cached sequences: ``load``, ``SequenceDataset``, PyTorch helpers and rendering.

The torch helpers (``TorchSequenceDataset``, ``collate_padded``, ``BucketBatchSampler``) and matplotlib are
imported on first use, so ``import quickdraw`` and ``quickdraw.load`` stay fast and torch-free.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import os

from quickdraw.cache.store import list_datasets
from quickdraw.datasets.sequence import SequenceDataset
from quickdraw.datasets.sequence import load as _load_sequences

if TYPE_CHECKING:
    from quickdraw.datasets.bitmap import BitmapDataset
    from quickdraw.datasets.render import Drawing, plot_grid, strokes_from_sequence
    from quickdraw.datasets.torch_data import BucketBatchSampler, TorchSequenceDataset, collate_padded

__all__ = [
    "BitmapDataset",
    "BucketBatchSampler",
    "Drawing",
    "SequenceDataset",
    "TorchSequenceDataset",
    "collate_padded",
    "list_datasets",
    "load",
    "plot_grid",
    "strokes_from_sequence",
]

_LAZY = {
    "BitmapDataset": "quickdraw.datasets.bitmap",
    "BucketBatchSampler": "quickdraw.datasets.torch_data",
    "TorchSequenceDataset": "quickdraw.datasets.torch_data",
    "collate_padded": "quickdraw.datasets.torch_data",
    "Drawing": "quickdraw.datasets.render",
    "plot_grid": "quickdraw.datasets.render",
    "strokes_from_sequence": "quickdraw.datasets.render",
}


def load(
    name_or_path: str | os.PathLike[str],
    split: str = "train",
    format: str = "stroke3",
    version: str = "latest",
    root: str | os.PathLike[str] | None = None,
    normalize: bool = False,
) -> SequenceDataset | BitmapDataset:
    """Open a cached dataset (``format`` stroke3, stroke5 or stroke3t: a :class:`SequenceDataset`), or with
    ``format="bitmap"`` a bitmap export folder written by ``quickdraw export bitmap`` (a
    :class:`~quickdraw.datasets.bitmap.BitmapDataset`: uint8 ``[size, size]`` per drawing, memory-mapped).

    >>> ds = load("animals10", split="train")              # doctest: +SKIP
    >>> bm = load("bitmaps28", split="train", format="bitmap")  # doctest: +SKIP
    """
    if format == "bitmap":
        from quickdraw.datasets.bitmap import BitmapDataset

        if normalize:
            raise ValueError("normalize applies to sequences, not bitmaps")
        return BitmapDataset(name_or_path, split)
    return _load_sequences(name_or_path, split=split, format=format, version=version, root=root, normalize=normalize)


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'quickdraw.datasets' has no attribute {name!r}")
    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
