"""The ``cache`` DVC stage: prepare's stroke shards -> a versioned sequence cache (docs/FORMATS.md section 3).

dvc.yaml calls ``quickdraw cache build --in data/strokes --name NAME``; this module is the library side,
usable from Python without the CLI.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from quickdraw.cache import build_cache

__all__ = ["run"]

log = logging.getLogger(__name__)


def run(
    strokes_dir: str | os.PathLike[str],
    name: str,
    *,
    root: str | os.PathLike[str] | None = None,
    formats: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Build (or reuse) the cache of ``strokes_dir`` as ``name`` and return its summary (JSON-ready).

    ``formats=None`` caches every format the prepare output holds.
    """
    cv = build_cache(strokes_dir, root, name, formats=formats)
    summary = cv.summary()
    log.info("cache stage: %s/%s (%d bytes) at %s", cv.name, cv.version, cv.size_bytes, cv.path)
    return summary
