"""The versioned sequence cache: fingerprints, the on-disk store, build, verify and gc.

See docs/FORMATS.md section 3 for the layout. Typical use::

    from quickdraw.cache import build_cache, verify
    cv = build_cache("data/strokes", None, "animals10")
    assert verify(cv).ok
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from quickdraw.cache.fingerprint import (
    CACHE_FORMAT_VERSION,
    file_checksum,
    update_fingerprint,
    version_id,
)
from quickdraw.cache.gc import GcReport, gc
from quickdraw.cache.store import (
    CacheVersion,
    cache_root,
    check_files,
    check_split,
    is_cache_root,
    list_datasets,
    list_versions,
    read_latest,
    resolve,
    search_roots,
    write_latest,
)
from quickdraw.cache.verify import Problem, VerifyReport, verify

if TYPE_CHECKING:
    from quickdraw.cache.build import build_cache

__all__ = [
    "CACHE_FORMAT_VERSION",
    "CacheVersion",
    "GcReport",
    "Problem",
    "VerifyReport",
    "build_cache",
    "cache_root",
    "check_files",
    "check_split",
    "is_cache_root",
    "file_checksum",
    "gc",
    "list_datasets",
    "list_versions",
    "read_latest",
    "resolve",
    "search_roots",
    "update_fingerprint",
    "verify",
    "version_id",
    "write_latest",
]


def __getattr__(name: str) -> Any:
    # build pulls in pyarrow; loading a cache must not pay for that import.
    if name == "build_cache":
        from quickdraw.cache.build import build_cache

        return build_cache
    raise AttributeError(f"module 'quickdraw.cache' has no attribute {name!r}")
