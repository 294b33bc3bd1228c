"""quickdraw-pipeline: Quick, Draw! to training-ready, versioned, cached sequence datasets.

>>> import quickdraw as qd
>>> qd.resolve_classes("animals10")[:3]
['butterfly', 'cow', 'elephant']

``qd.load("animals10", split="train")`` opens a cached split; ``qd.load("bitmaps28", format="bitmap")`` a bitmap
export (see :mod:`quickdraw.datasets`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from quickdraw.classes import PRESETS, UnknownClassError, all_classes, resolve_classes

if TYPE_CHECKING:
    from quickdraw.cache import build_cache
    from quickdraw.datasets import SequenceDataset, list_datasets, load

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "SequenceDataset",
    "UnknownClassError",
    "__version__",
    "all_classes",
    "build_cache",
    "list_datasets",
    "load",
    "resolve_classes",
]

# Imported on first use so that `import quickdraw` stays fast (no numpy/pyarrow/torch at import time).
_LAZY = {
    "load": "quickdraw.datasets",
    "list_datasets": "quickdraw.datasets",
    "SequenceDataset": "quickdraw.datasets",
    "build_cache": "quickdraw.cache",
}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'quickdraw' has no attribute {name!r}")
    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
