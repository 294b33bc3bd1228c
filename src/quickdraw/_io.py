"""Small file-writing helpers shared by every stage: atomic replace and content hashes.

Atomic means readers (a concurrent `load`, `stats`, DVC) see the old file or the new one, never half of it;
the data is fsynced before the rename so a power cut cannot leave a renamed but empty file.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["sha256_file", "write_atomic", "write_json_atomic"]


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a per-process ``.incomplete`` file and ``os.replace``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.incomplete")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, doc: Any, *, sort_keys: bool = True) -> None:
    """Write ``doc`` as indented JSON (stable formatting, so equal documents give equal bytes)."""
    write_atomic(path, (json.dumps(doc, indent=2, sort_keys=sort_keys, ensure_ascii=False) + "\n").encode("utf-8"))


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
