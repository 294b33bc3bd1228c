"""The versioned store on disk: roots, names, versions, the LATEST pointer and the manifest.

Layout (docs/FORMATS.md section 3)::

    ROOT/<name>/LATEST                      the current version id, replaced atomically
    ROOT/<name>/<version>/manifest.json     written last: a version without it is not a version
    ROOT/<name>/.tmp-<version>-<pid>/       a build in progress (or killed: gc removes it)
    ROOT/<name>/.locks/<version>.lock       serialises builds of one version
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quickdraw._io import write_atomic
from quickdraw.cache.fingerprint import CACHE_FORMAT_VERSION
from quickdraw.errors import CacheError

__all__ = [
    "LATEST_FILE",
    "MANIFEST_FILE",
    "CacheVersion",
    "cache_root",
    "check_files",
    "list_datasets",
    "list_versions",
    "read_latest",
    "resolve",
    "write_latest",
]

log = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"
LATEST_FILE = "LATEST"
TMP_PREFIX = ".tmp-"
LOCK_DIR = ".locks"
PROJECT_CACHE = Path("data") / "cache"  # where dvc.yaml's cache stage writes
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_VERSION_RE = re.compile(r"^[0-9a-f]{4,64}$")


def cache_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The cache root: ``root`` if given, else ``$QUICKDRAW_CACHE``, else the user cache dir."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("QUICKDRAW_CACHE")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("quickdraw"))


def check_name(name: str) -> str:
    """Reject names that would escape the root or collide with the store's own files."""
    if not _NAME_RE.match(name) or name in (LATEST_FILE, LOCK_DIR):
        raise CacheError(f"invalid cache name {name!r}: use letters, digits, '.', '_', '+' or '-'")
    return name


@dataclass(frozen=True)
class CacheVersion:
    """One complete cache version: ``path`` is ``ROOT/<name>/<version>``."""

    name: str
    version: str
    path: Path
    manifest: dict[str, Any] = field(repr=False, compare=False)

    @property
    def classes(self) -> list[str]:
        """The class list; ``label`` indexes into it."""
        return list(self.manifest["classes"])

    @property
    def formats(self) -> list[str]:
        """Formats present (``stroke3``, ``stroke5``)."""
        return list(self.manifest["formats"])

    def splits(self, fmt: str | None = None) -> list[str]:
        """Splits present for ``fmt`` (default: the first format)."""
        fmt = fmt or self.formats[0]
        return list(self.manifest["formats"][fmt]["splits"])

    @property
    def size_bytes(self) -> int:
        """Total bytes of the version's data files."""
        return int(sum(f["size"] for f in self.manifest["files"].values()))

    @property
    def is_latest(self) -> bool:
        """Whether ``ROOT/<name>/LATEST`` points at this version."""
        return read_latest(self.path.parent) == self.version

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary (what ``quickdraw cache ls/info --json`` print)."""
        m = self.manifest
        return {
            "name": self.name,
            "version": self.version,
            "path": str(self.path),
            "latest": self.is_latest,
            "classes": m["classes"],
            "formats": {
                fmt: {split: dict(s) for split, s in info["splits"].items()} for fmt, info in m["formats"].items()
            },
            "counts": m["counts"],
            "size_bytes": self.size_bytes,
            "params": m["params"],
            "input": {k: v for k, v in m["input"].items() if k != "shards"},
            "created_by": m["created_by"],
        }


def read_manifest(version_dir: Path) -> dict[str, Any]:
    """Read and sanity-check ``manifest.json`` of a version directory."""
    path = version_dir / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CacheError(f"{path}: missing; {version_dir} is not a complete cache version (rebuild it)") from None
    except (OSError, ValueError) as exc:
        raise CacheError(f"{path}: unreadable manifest ({exc})") from None
    got = manifest.get("cache_format_version") if isinstance(manifest, dict) else None
    if got != CACHE_FORMAT_VERSION:
        raise CacheError(
            f"{path}: cache format version {got!r}, this quickdraw reads {CACHE_FORMAT_VERSION} (rebuild the cache)"
        )
    return manifest


def open_version(version_dir: Path) -> CacheVersion:
    """A :class:`CacheVersion` for a version directory (needs its manifest)."""
    version_dir = Path(version_dir)
    manifest = read_manifest(version_dir)
    return CacheVersion(name=version_dir.parent.name, version=version_dir.name, path=version_dir, manifest=manifest)


def check_files(cv: CacheVersion, prefix: str = "") -> None:
    """Cheap open-time check: every manifest file under ``prefix`` exists with its recorded size.

    Catches truncation and missing files in microseconds; :func:`quickdraw.cache.verify` does the full
    checksum pass.
    """
    for rel, info in cv.manifest["files"].items():
        if not rel.startswith(prefix):
            continue
        p = cv.path / rel
        try:
            size = p.stat().st_size
        except FileNotFoundError:
            raise CacheError(f"{p}: missing from cache version {cv.name}/{cv.version} (rebuild it)") from None
        if size != info["size"]:
            raise CacheError(
                f"{p}: size {size} bytes, manifest says {info['size']} (corrupt or truncated; "
                f"run `quickdraw cache verify {cv.path}` and rebuild)"
            )


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file + ``os.replace`` so readers see the old or the new content, never half."""
    write_atomic(path, text.encode("utf-8"))


def read_latest(name_dir: Path) -> str | None:
    """The version LATEST points at, or None."""
    try:
        text = (Path(name_dir) / LATEST_FILE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return text or None


def write_latest(name_dir: Path, version: str) -> None:
    """Point ``name_dir/LATEST`` at ``version`` atomically."""
    atomic_write_text(Path(name_dir) / LATEST_FILE, version + "\n")


def _is_version_dir(p: Path) -> bool:
    return p.is_dir() and bool(_VERSION_RE.match(p.name)) and (p / MANIFEST_FILE).is_file()


def list_versions(name: str, root: str | os.PathLike[str] | None = None) -> list[CacheVersion]:
    """Complete versions of ``name``, LATEST first, then newest manifest first."""
    name_dir = cache_root(root) / check_name(name)
    return _versions_in(name_dir)


def _versions_in(name_dir: Path) -> list[CacheVersion]:
    if not name_dir.is_dir():
        return []
    latest = read_latest(name_dir)
    found: list[tuple[CacheVersion, float]] = []
    for p in name_dir.iterdir():
        if not _is_version_dir(p):
            continue
        try:
            # mtime only orders the listing; it is never written into a file.
            found.append((open_version(p), (p / MANIFEST_FILE).stat().st_mtime))
        except FileNotFoundError:
            continue  # removed by a concurrent `gc` between the listing and the open: it is simply gone
        except CacheError as exc:
            if not p.exists():
                continue
            log.warning("skipping %s: %s", p, exc)
    found.sort(key=lambda vm: (vm[0].version != latest, -vm[1], vm[0].version))
    return [v for v, _ in found]


def list_datasets(root: str | os.PathLike[str] | None = None) -> list[str]:
    """Names under the cache root that hold at least one complete version, sorted."""
    r = cache_root(root)
    if not r.is_dir():
        return []
    names = []
    for d in sorted(r.iterdir()):
        if d.is_dir() and _NAME_RE.match(d.name) and any(_is_version_dir(p) for p in d.iterdir()):
            names.append(d.name)
    return names


def _pick(name_dir: Path, version: str) -> CacheVersion:
    versions = _versions_in(name_dir)
    if not versions:
        raise CacheError(f"{name_dir}: no complete cache version (run `quickdraw cache build`)")
    if version == "latest":
        latest = read_latest(name_dir)
        if latest is None:
            # No pointer (e.g. copied without it): the most recently written version is the sane default.
            log.warning("%s has no LATEST pointer; using %s", name_dir, versions[0].version)
            return versions[0]
        match = [v for v in versions if v.version == latest]
        if not match:
            raise CacheError(f"{name_dir / LATEST_FILE}: points at {latest!r}, which is missing or incomplete")
        return match[0]
    match = [v for v in versions if v.version.startswith(version)]
    if len(match) == 1:
        return match[0]
    have = ", ".join(v.version for v in versions)
    kind = "ambiguous" if match else "unknown"
    raise CacheError(f"{kind} version {version!r} of {name_dir.name} (have: {have})")


def resolve(
    name_or_path: str | os.PathLike[str],
    version: str = "latest",
    root: str | os.PathLike[str] | None = None,
) -> CacheVersion:
    """Find a cache version by name (under the root), by a name directory or by a version directory.

    A name is looked up under :func:`cache_root`; when no root is given and the name is not there, under
    ``./data/cache`` (the DVC project's cache stage output) too.

    Raises :class:`CacheError` naming what was looked for and what exists.
    """
    text = os.fspath(name_or_path)
    looks_like_path = isinstance(name_or_path, os.PathLike) or os.sep in text or text.startswith(".")
    p = Path(text).expanduser()
    if looks_like_path or (not _NAME_RE.match(text)):
        if (p / MANIFEST_FILE).is_file():
            if version not in ("latest", p.name) and not p.name.startswith(version):
                raise CacheError(f"{p} is version {p.name}, not {version!r}")
            return open_version(p)
        if p.is_dir() and (any(_is_version_dir(c) for c in p.iterdir()) or (p / LATEST_FILE).exists()):
            return _pick(p, version)
        if p.is_dir() and _VERSION_RE.match(p.name):
            raise CacheError(f"{p / MANIFEST_FILE}: missing; {p} is not a complete cache version (rebuild it)")
        raise CacheError(f"{p}: not a cache version or cache name directory")
    r = cache_root(root)
    name_dir = r / text
    if not name_dir.is_dir() and root is None and (Path.cwd() / PROJECT_CACHE / text).is_dir():
        # Inside a `dvc repro` project the cache stage writes to ./data/cache: a notebook opened there finds it
        # by name without being told the root.
        name_dir = Path.cwd() / PROJECT_CACHE / text
    if not name_dir.is_dir():
        have = list_datasets(r)
        hint = f" (have: {', '.join(have)})" if have else " (the cache is empty: run `quickdraw cache build`)"
        raise CacheError(f"no cached dataset {text!r} under {r}{hint}")
    return _pick(name_dir, version)


def manifest_json(manifest: Mapping[str, Any]) -> str:
    """The manifest text: keys in construction order (train, val, test read naturally), fixed formatting."""
    return json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
