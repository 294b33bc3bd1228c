"""quickdraw-pipeline: Quick, Draw! to training-ready, versioned, cached sequence datasets.

>>> import quickdraw as qd
>>> qd.resolve_classes("animals10")[:3]
['butterfly', 'cow', 'elephant']
"""

from __future__ import annotations

from quickdraw.classes import PRESETS, UnknownClassError, all_classes, resolve_classes

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "UnknownClassError",
    "__version__",
    "all_classes",
    "resolve_classes",
]
