"""Loading cached sequences: ``load``, ``SequenceDataset``, PyTorch helpers and rendering.

The torch helpers (``TorchSequenceDataset``, ``collate_padded``, ``BucketBatchSampler``) and matplotlib are
imported on first use, so ``import quickdraw`` and ``quickdraw.load`` stay fast and torch-free.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from quickdraw.cache.store import list_datasets
from quickdraw.datasets.sequence import SequenceDataset, load

if TYPE_CHECKING:
    from quickdraw.datasets.render import Drawing, plot_grid, strokes_from_sequence
    from quickdraw.datasets.torch_data import BucketBatchSampler, TorchSequenceDataset, collate_padded

__all__ = [
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
    "BucketBatchSampler": "quickdraw.datasets.torch_data",
    "TorchSequenceDataset": "quickdraw.datasets.torch_data",
    "collate_padded": "quickdraw.datasets.torch_data",
    "Drawing": "quickdraw.datasets.render",
    "plot_grid": "quickdraw.datasets.render",
    "strokes_from_sequence": "quickdraw.datasets.render",
}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'quickdraw.datasets' has no attribute {name!r}")
    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
