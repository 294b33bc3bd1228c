"""The ``cache`` DVC stage: prepare's stroke shards -> a versioned sequence cache (docs/FORMATS.md section 3).

dvc.yaml calls ``quickdraw cache build --in data/strokes --name NAME``; this module is the library side,
usable from Python without the CLI.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
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

    ``formats=None`` caches every format the prepare output holds. ``strokes_dir`` may be an fsspec URL
    (``gs://bucket/strokes``): the shards its manifest lists are downloaded to a temporary folder (``$TMPDIR``)
    and the cache is built locally from them, memory-mapped as always; the version is the same as from a
    local copy of the same shards.
    """
    from quickdraw.sources.remote import is_remote

    if is_remote(strokes_dir):
        with _staged_prepare_output(os.fspath(strokes_dir)) as local:
            return run(local, name, root=root, formats=formats)
    cv = build_cache(strokes_dir, root, name, formats=formats)
    summary = cv.summary()
    log.info("cache stage: %s/%s (%d bytes) at %s", cv.name, cv.version, cv.size_bytes, cv.path)
    return summary


_SHARD = re.compile(r"(stroke3|stroke5)/(train|val|test)/part-[0-9]{5,}\.parquet")


@contextlib.contextmanager
def _staged_prepare_output(url: str) -> Iterator[Path]:
    """Download a prepare output's manifest and the shards it lists (each a checked relative name) into a
    temporary folder, removed afterwards. Only a complete output (its manifest exists) is read."""
    from quickdraw._safety import check_relpath
    from quickdraw.errors import CacheError
    from quickdraw.sources import remote

    fs, root = remote.output_fs(url)
    manifest = remote.read_json(fs, f"{root}/_manifest.json", "prepare manifest")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
        raise CacheError(f"{url}/_manifest.json: missing or not a prepare manifest; the prepare output is "
                         "incomplete (rerun prepare)")
    tmp = Path(tempfile.mkdtemp(prefix="quickdraw-cache-in-"))
    try:
        for entry in manifest["files"]:
            rel = entry.get("file") if isinstance(entry, dict) else None
            check_relpath(rel, f"{url}/_manifest.json: file entry", error=CacheError)
            if not _SHARD.fullmatch(rel):  # type: ignore[arg-type]
                raise CacheError(f"{url}/_manifest.json: file entry {rel!r} is not a <format>/<split>/part-N.parquet shard")
            dest = tmp / rel  # type: ignore[operator]
            dest.parent.mkdir(parents=True, exist_ok=True)
            remote.download(fs, f"{root}/{rel}", dest)
        (tmp / "_manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        log.info("cache stage: %d shard(s) of %s staged in %s", len(manifest["files"]), url, tmp)
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
