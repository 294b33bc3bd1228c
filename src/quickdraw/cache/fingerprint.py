"""Fingerprints: content hashes of files and a hash chain naming cache versions.

A version is named like a Hugging Face ``datasets`` fingerprint: each step folds its name and its
canonical-JSON parameters into the previous fingerprint, so the result changes whenever the input bytes,
a content-shaping parameter or the on-disk format changes, and never otherwise.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import xxhash

__all__ = [
    "CACHE_FORMAT_VERSION",
    "VERSION_LENGTH",
    "file_checksum",
    "update_fingerprint",
    "version_id",
]

# Bump when the layout or the meaning of any cache file changes: old versions then get new names instead of
# being misread.
CACHE_FORMAT_VERSION = 1
VERSION_LENGTH = 16
_CHUNK = 1 << 22


def _canonical(params: Mapping[str, Any]) -> bytes:
    # sort_keys + fixed separators: the same params always hash the same, whatever the dict order.
    return json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str).encode()


def update_fingerprint(previous: str, step: str, params: Mapping[str, Any]) -> str:
    """Fold one transformation ``step`` with its ``params`` into ``previous``; returns 32 hex chars."""
    h = hashlib.blake2b(digest_size=16)
    for part in (previous.encode(), step.encode(), _canonical(params)):
        # Length-prefix each part so that ("ab", "c") and ("a", "bc") never collide.
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()


def version_id(input_fingerprint: str, params: Mapping[str, Any]) -> str:
    """The cache version for an input fingerprint and the params that shape the content."""
    fp = update_fingerprint(input_fingerprint, "cache.build", params)
    fp = update_fingerprint(fp, "cache.format", {"cache_format_version": CACHE_FORMAT_VERSION})
    return fp[:VERSION_LENGTH]


def file_checksum(path: str | Path) -> str:
    """xxh3-128 of a file's bytes as hex (several GB/s, so verifying a cache is I/O bound).

    Only a regular file is read (:func:`quickdraw._safety.open_regular`): a FIFO or device raises
    :class:`~quickdraw.errors.UnsafePathError` instead of blocking or reading forever.
    """
    from quickdraw._safety import open_regular

    h = xxhash.xxh3_128()
    with open_regular(path, "checksum") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()
