"""Reading the fetch output (docs/FORMATS.md section 1): complete classes only.

A class directory counts only once its ``_manifest.json`` exists: fetch writes the manifest last, so a
class without one is still being written (or was interrupted) and must not be read.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow.dataset as pads

from quickdraw._safety import contained, open_regular
from quickdraw.errors import FetchSchemaError, UnsafePathError
from quickdraw.sources.schema import DRAWING_SCHEMA, SCHEMA_VERSION

__all__ = ["MANIFEST", "check_schema_version", "class_parts", "fetched_classes", "read_class_manifest", "scan_fetched"]

MANIFEST = "_manifest.json"


def fetched_classes(directory: str | Path) -> list[str]:
    """The words under ``directory`` whose class is complete (has ``_manifest.json``), sorted by name.

    Raises ``FileNotFoundError`` if ``directory`` does not exist. ``directory`` may be an fsspec URL
    (``gs://...``, :mod:`quickdraw.sources.remote`).
    """
    from quickdraw.sources import remote

    if remote.is_remote(directory):
        return remote.fetched_classes(str(directory))
    root = remote.local_path(directory)
    if not root.is_dir():
        raise FileNotFoundError(f"fetch output directory not found: {root}")
    words = []
    for p in sorted(root.iterdir()):
        m = p / MANIFEST
        if not p.is_dir() or p.is_symlink() or not (m.exists() or m.is_symlink()):
            continue
        if m.is_symlink() or not m.is_file():
            # A FIFO or a link where a manifest should be: say so rather than silently drop the class.
            raise UnsafePathError(f"{m} is not a regular file: remove it and fetch the class again")
        words.append(p.name)
    return words


def read_class_manifest(directory: str | Path, word: str) -> dict[str, Any]:
    """The parsed ``_manifest.json`` of one fetched class (``FileNotFoundError`` if the class is incomplete).

    ``directory`` may be an fsspec URL; the manifest object is read directly.
    """
    from quickdraw.sources import remote

    if remote.is_remote(directory):
        fs, root = remote.output_fs(str(directory))
        doc = remote.read_json(fs, f"{root}/{word}/{MANIFEST}", f"class {word!r}: manifest")
        if doc is None:
            raise FileNotFoundError(f"class {word!r} is not complete in {directory} (no {MANIFEST})")
        if not isinstance(doc, dict):
            raise UnsafePathError(f"{directory}/{word}/{MANIFEST} is not a fetch manifest (a JSON object expected)")
        return doc
    path = remote.local_path(directory) / word / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"class {word!r} is not complete in {directory} (no {MANIFEST})")
    with open_regular(path, f"class {word!r}: manifest") as f:
        doc = json.loads(f.read(64 << 20))
    if not isinstance(doc, dict):
        raise UnsafePathError(f"{path} is not a fetch manifest (a JSON object expected)")
    return doc


def check_schema_version(directory: str | Path, word: str) -> dict[str, Any]:
    """The class manifest, after checking the class was fetched in the layout this quickdraw reads.

    Raises :class:`~quickdraw.errors.FetchSchemaError` naming the manifest otherwise (schema 1 stored a list
    per stroke): running ``quickdraw fetch`` again on the same directory re-fetches the class.
    """
    manifest = read_class_manifest(directory, word)
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise FetchSchemaError(
            f"{Path(directory) / word / MANIFEST}: fetch schema version {version}, this quickdraw reads version "
            f"{SCHEMA_VERSION} (the drawing layout changed): run `quickdraw fetch` again on the same --out, "
            "it re-fetches the class"
        )
    return manifest


def class_parts(directory: str | Path, word: str) -> list[Path]:
    """The part files of one complete class in source order.

    The manifest's ``parts`` list is authoritative when present (a stray file is ignored); otherwise the
    ``part-*.parquet`` files sorted by name, which is source order since names are zero-padded.
    """
    manifest = read_class_manifest(directory, word)
    base = Path(directory) / word
    listed = manifest.get("parts")
    what = f"{base / '_manifest.json'}: part entry"
    # Every part is contained (quickdraw._safety): an entry such as '../victim.parquet', an absolute path, a
    # symlink out of the class folder or a FIFO is refused, naming the manifest, before anything is opened.
    if listed:
        if not isinstance(listed, list):
            raise UnsafePathError(f"{what.rsplit(':', 1)[0]}: 'parts' is a {type(listed).__name__}, expected a list")
        return [contained(base, p.get("file") if isinstance(p, dict) else p, what) for p in listed]
    return [contained(base, p.name, what) for p in sorted(base.glob("part-*.parquet"))]


def scan_fetched(directory: str | Path, classes: Sequence[str] | None = None) -> pads.Dataset:
    """A lazy :class:`pyarrow.dataset.Dataset` over the complete classes (optionally only ``classes``).

    Files are ordered by class (sorted) then part, so a scan sees each class's rows in source order.
    """
    words = fetched_classes(directory) if classes is None else list(classes)
    for w in words:
        check_schema_version(directory, w)
    files = [str(p) for w in words for p in class_parts(directory, w)]
    return pads.dataset(files, schema=DRAWING_SCHEMA, format="parquet")
