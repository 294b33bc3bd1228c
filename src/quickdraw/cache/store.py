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

import numpy as np

from quickdraw._io import write_atomic
from quickdraw._safety import check_relpath, contained, open_regular
from quickdraw.cache.fingerprint import CACHE_FORMAT_VERSION
from quickdraw.errors import CacheError

__all__ = [
    "LATEST_FILE",
    "MANIFEST_FILE",
    "CacheVersion",
    "cache_root",
    "check_files",
    "check_split",
    "is_cache_root",
    "list_datasets",
    "list_versions",
    "newest_version",
    "read_latest",
    "resolve",
    "search_roots",
    "write_latest",
]

log = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"
LATEST_FILE = "LATEST"
TMP_PREFIX = ".tmp-"
LOCK_DIR = ".locks"
#: Written by ``build_cache`` at the root it creates or writes into: ``gc`` only collects under a root that is a
#: cache (docs/FORMATS.md section 3, "Ownership").
ROOT_MARKER = ".quickdraw-cache"
ROOT_MARKER_TEXT = "quickdraw-pipeline sequence cache root: `quickdraw cache gc` may remove versions here\n"
#: Written into ``.tmp-<version>-<pid>/`` right after the builder creates it, removed just before the rename:
#: gc removes a temp dir only if it carries this file naming that dir (a user's `.tmp-*` folder is never touched).
BUILD_MARKER = ".quickdraw-build"
#: The array files of one ``<format>/<split>/`` directory: dtype and number of dimensions.
SPLIT_ARRAYS: dict[str, tuple[str, int]] = {
    "steps.npy": ("<i2", 2),
    "offsets.npy": ("<i8", 1),
    "labels.npy": ("<i4", 1),
    "lengths.npy": ("<i4", 1),
    "key_ids.npy": ("<u8", 1),
}
SPLIT_FILES = (*SPLIT_ARRAYS, "meta.parquet")
PROJECT_CACHE = Path("data") / "cache"  # where dvc.yaml's cache stage writes
MAX_MANIFEST_BYTES = 64 << 20
# Always used with .fullmatch: `$` would accept a trailing newline ("foo\n").
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,254}")
_VERSION_RE = re.compile(r"[0-9a-f]{4,64}")


def cache_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The cache root: ``root`` if given, else ``$QUICKDRAW_CACHE``, else the user cache dir."""
    if root is not None:
        return _expand(root, "cache root")
    env = os.environ.get("QUICKDRAW_CACHE")
    if env:
        return _expand(env, "$QUICKDRAW_CACHE")
    import platformdirs

    return Path(platformdirs.user_cache_dir("quickdraw"))


def _expand(p: str | os.PathLike[str], what: str) -> Path:
    try:
        return Path(p).expanduser()
    except RuntimeError as exc:  # `~nosuchuser/...` or no home directory: name the setting, not a traceback
        raise CacheError(f"{what} {os.fspath(p)!r}: cannot expand '~' ({exc})") from None


def check_name(name: str) -> str:
    """Reject names that would escape the root or collide with the store's own files."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or name in (LATEST_FILE, LOCK_DIR, ROOT_MARKER):
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


# Keys every reader indexes without a guard (CacheVersion, SequenceDataset, verify, `cache ls/info`) and the type
# each must have: checking them once here turns a hand-edited or foreign manifest into a CacheError naming the
# file instead of a KeyError/TypeError traceback somewhere downstream.
_MANIFEST_KEYS: dict[str, type] = {
    "classes": list,
    "formats": dict,
    "files": dict,
    "counts": dict,
    "params": dict,
    "input": dict,
    "created_by": dict,
}


_CHANNELS = {"stroke3": 3, "stroke5": 5, "stroke3t": 4}  # stroke3t: (dx, dy, dt, pen_lift)
_SPLIT_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def _nonneg_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _manifest_problem(manifest: dict[str, Any]) -> str | None:
    """What is wrong with a manifest's structure (None when readers can index it safely).

    Structure, types and the text of every path are checked here (pure, no file system access); whether a
    path resolves to a regular file inside the version is checked when the file is used
    (:func:`check_files`, :func:`check_split`, ``verify``), through :func:`quickdraw._safety.contained`.
    """
    for key, typ in _MANIFEST_KEYS.items():
        if key not in manifest:
            return f"no {key!r} key"
        if not isinstance(manifest[key], typ):
            return f"{key!r} is a {type(manifest[key]).__name__}, expected a {typ.__name__}"
    classes = manifest["classes"]
    if not classes:
        return "empty class list"
    if not all(isinstance(c, str) and c for c in classes):
        return "class list holds something other than non-empty strings"
    if len(set(classes)) != len(classes):
        return "class list has duplicates"
    if not manifest["formats"]:
        return "no formats"
    for fmt, info in manifest["formats"].items():
        if fmt not in _CHANNELS:
            return f"unknown format {fmt!r} (this quickdraw reads {', '.join(_CHANNELS)})"
        if not isinstance(info, dict) or info.get("channels") != _CHANNELS[fmt] or isinstance(info.get("channels"), bool):
            return f"formats.{fmt} needs 'channels' = {_CHANNELS[fmt]}"
        if not isinstance(info.get("splits"), dict):
            return f"formats.{fmt} has no 'splits' object"
        scale = info.get("norm_scale")
        if scale is not None and (isinstance(scale, bool) or not isinstance(scale, (int, float))
                                  or not np.isfinite(scale) or scale <= 0):
            return f"formats.{fmt}.norm_scale {scale!r} is not a finite number > 0"
        for split, s in info["splits"].items():
            if not _SPLIT_NAME_RE.fullmatch(split):
                return f"formats.{fmt}: bad split name {split!r}"
            if not isinstance(s, dict) or not all(_nonneg_int(s.get(k)) for k in ("n", "steps", "max_length")):
                return f"formats.{fmt}.splits.{split} needs integer 'n', 'steps' and 'max_length' >= 0"
    for rel, f in manifest["files"].items():
        try:
            check_relpath(rel, "file entry", error=CacheError)
        except CacheError as exc:
            return str(exc)
        if not isinstance(f, dict) or not _nonneg_int(f.get("size")) or not isinstance(f.get("xxh3_128"), str):
            return f"files[{rel!r}] needs an integer 'size' >= 0 and a string 'xxh3_128'"
    if not isinstance(manifest["counts"].get("sequences"), dict):
        return "counts has no 'sequences' object"
    return None


def read_manifest(version_dir: Path) -> dict[str, Any]:
    """Read and sanity-check ``manifest.json`` of a version directory (format version and required keys)."""
    path = version_dir / MANIFEST_FILE
    missing = CacheError(f"{path}: missing; {version_dir} is not a complete cache version (rebuild it)")
    if not path.exists() and not path.is_symlink():
        raise missing
    try:
        with open_regular(path, "cache manifest", error=CacheError) as f:
            data = f.read(MAX_MANIFEST_BYTES + 1)
        if len(data) > MAX_MANIFEST_BYTES:
            raise CacheError(f"{path}: more than {MAX_MANIFEST_BYTES} bytes, not a cache manifest")
        manifest = json.loads(data.decode("utf-8"))
    except CacheError:
        if not path.exists() and not path.is_symlink():
            raise missing from None  # removed by a concurrent gc
        raise
    except (OSError, ValueError, RecursionError) as exc:
        raise CacheError(f"{path}: unreadable manifest ({exc})") from None
    got = manifest.get("cache_format_version") if isinstance(manifest, dict) else None
    if got != CACHE_FORMAT_VERSION:
        raise CacheError(
            f"{path}: cache format version {got!r}, this quickdraw reads {CACHE_FORMAT_VERSION} (rebuild the cache)"
        )
    problem = _manifest_problem(manifest)
    if problem:
        raise CacheError(f"{path}: malformed manifest ({problem}); rebuild the cache version")
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
    what = f"{cv.path / MANIFEST_FILE}: file entry"
    for rel, info in cv.manifest["files"].items():
        if not rel.startswith(prefix):
            continue
        p = cv.path / rel
        if not p.exists() and not p.is_symlink():
            raise CacheError(f"{p}: missing from cache version {cv.name}/{cv.version} (rebuild it)")
        contained(cv.path, rel, what, error=CacheError)
        size = p.stat().st_size
        if size != info["size"]:
            raise CacheError(
                f"{p}: size {size} bytes, manifest says {info['size']} (corrupt or truncated; "
                f"run `quickdraw cache verify {cv.path}` and rebuild)"
            )
    parts = prefix.rstrip("/").split("/")
    if len(parts) == 2 and parts[0] in cv.manifest["formats"] and parts[1] in cv.manifest["formats"][parts[0]]["splits"]:
        # Opening a split (SequenceDataset): the cheap array invariants too, so a cache tampered without
        # changing any size is a CacheError here instead of an IndexError (or silently wrong data) later.
        check_split(cv, parts[0], parts[1], _paths_checked=True)


def _split_problem(cv: CacheVersion, fmt: str, split: str, arrays: dict[str, np.ndarray], full: bool) -> str | None:
    info = cv.manifest["formats"][fmt]["splits"][split]
    k = cv.manifest["formats"][fmt]["channels"]
    steps, offsets, labels = arrays["steps.npy"], arrays["offsets.npy"], arrays["labels.npy"]
    lengths, key_ids = arrays["lengths.npy"], arrays["key_ids.npy"]
    n = info["n"]
    if steps.shape != (info["steps"], k):
        return f"steps.npy has shape {steps.shape}, the manifest says ({info['steps']}, {k})"
    if len(labels) != n or len(lengths) != n or len(key_ids) != n or len(offsets) != n + 1:
        return (f"array lengths disagree: labels {len(labels)}, lengths {len(lengths)}, key_ids {len(key_ids)}, "
                f"offsets {len(offsets)}; the manifest says n = {n} (offsets n + 1)")
    if offsets[0] != 0 or offsets[-1] != len(steps):
        return f"offsets run from {int(offsets[0])} to {int(offsets[-1])}, expected 0 to {len(steps)} (the steps)"
    if n and not bool(np.all(offsets[1:] >= offsets[:-1])):
        bad = int(np.flatnonzero(offsets[1:] < offsets[:-1])[0])
        return f"offsets decrease at sequence {bad} ({int(offsets[bad])} -> {int(offsets[bad + 1])})"
    n_classes = len(cv.manifest["classes"])
    if n and (int(labels.min()) < 0 or int(labels.max()) >= n_classes):
        return f"labels run {int(labels.min())}..{int(labels.max())}, outside 0..{n_classes - 1} (the class list)"
    if not full:
        return None
    if not np.array_equal(np.diff(offsets), lengths):
        bad = int(np.flatnonzero(np.diff(offsets) != lengths)[0])
        return f"lengths[{bad}] = {int(lengths[bad])}, the offsets say {int(offsets[bad + 1] - offsets[bad])}"
    if n and int(lengths.max()) != info["max_length"]:
        return f"longest sequence has {int(lengths.max())} steps, the manifest says max_length {info['max_length']}"
    pen = steps[:, 3:] if k == 4 else steps[:, 2:]  # stroke3t: column 2 is dt (ms), the pen is last
    if k == 4 and len(steps) and int(steps[:, 2].min()) < 0:
        return "stroke-3t dt column holds negative times"
    if pen.size and (int(pen.min()) < 0 or int(pen.max()) > 1):
        return "pen columns hold values other than 0 and 1"
    if k == 5 and len(steps) and not bool(np.all(pen.sum(axis=1, dtype=np.int64) == 1)):
        return "stroke-5 pen state is not exactly one of (p_down, p_up, p_end) per step"
    return None


def split_arrays(cv: CacheVersion, fmt: str, split: str, *, _paths_checked: bool = False) -> dict[str, np.ndarray]:
    """The memory-mapped arrays of one split (file name -> array), after the containment and dtype checks."""
    what = f"{cv.path / MANIFEST_FILE}: file entry"
    arrays: dict[str, np.ndarray] = {}
    for name, (dtype, ndim) in SPLIT_ARRAYS.items():
        rel = f"{fmt}/{split}/{name}"
        if rel not in cv.manifest["files"]:
            raise CacheError(f"{cv.path / MANIFEST_FILE}: lists no {rel} (rebuild the cache version)")
        p = cv.path / rel if _paths_checked else contained(cv.path, rel, what, error=CacheError)
        try:
            arr = np.load(p, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise CacheError(f"{p}: unreadable array ({exc})") from None
        if arr.dtype != np.dtype(dtype) or arr.ndim != ndim:
            raise CacheError(f"{p}: dtype {arr.dtype} ndim {arr.ndim}, expected {dtype} ndim {ndim}")
        arrays[name] = arr.view(np.ndarray)
    return arrays


def check_split(
    cv: CacheVersion, fmt: str, split: str, *, full: bool = False, _paths_checked: bool = False
) -> dict[str, np.ndarray]:
    """Check one split's arrays against each other and the manifest; returns them (memory-mapped).

    Cheap (open time, ``full=False``): shapes and lengths agree with the manifest, offsets start at 0, end at
    the number of steps and never decrease, labels index the class list. ``full=True`` (``verify``) adds
    ``lengths == diff(offsets)``, ``max_length`` and the pen columns. Raises :class:`CacheError` naming the
    split directory and the first broken invariant.
    """
    arrays = split_arrays(cv, fmt, split, _paths_checked=_paths_checked)
    problem = _split_problem(cv, fmt, split, arrays, full)
    if problem:
        raise CacheError(
            f"{cv.path / fmt / split}: {problem} (corrupt or tampered; run `quickdraw cache verify {cv.path}` "
            "and rebuild)"
        )
    return arrays


def read_small_text(path: Path, limit: int = 1 << 20) -> str | None:
    """A small state file's text (LATEST, PINNED), or None if missing.

    Only a regular file is read, at most ``limit`` bytes: a FIFO or ``/dev/zero`` put in its place is a
    CacheError, not a hang.
    """
    if not path.exists() and not path.is_symlink():
        return None
    try:
        with open_regular(path, "cache state file", error=CacheError) as f:
            data = f.read(limit + 1)
    except CacheError:
        if not path.exists() and not path.is_symlink():
            return None  # removed meanwhile
        raise
    if len(data) > limit:
        raise CacheError(f"{path}: more than {limit} bytes, not a quickdraw state file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise CacheError(f"{path}: not UTF-8 text") from None


def read_latest(name_dir: Path) -> str | None:
    """The version LATEST points at, or None."""
    text = (read_small_text(Path(name_dir) / LATEST_FILE, 4096) or "").strip()
    return text or None


def write_latest(name_dir: Path, version: str) -> None:
    """Point ``name_dir/LATEST`` at ``version`` atomically (fsynced temp file + ``os.replace``)."""
    write_atomic(Path(name_dir) / LATEST_FILE, (version + "\n").encode("utf-8"))


def is_cache_root(root: Path) -> bool:
    """Whether ``root`` carries the marker ``build_cache`` writes (:data:`ROOT_MARKER`, a regular file)."""
    p = Path(root) / ROOT_MARKER
    return p.is_file() and not p.is_symlink()


def write_root_marker(root: Path) -> None:
    """Create :data:`ROOT_MARKER` in ``root`` if it is missing (never replaces anything)."""
    p = Path(root) / ROOT_MARKER
    if not p.is_file():
        try:
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(ROOT_MARKER_TEXT)


def _is_version_dir(p: Path) -> bool:
    return p.is_dir() and bool(_VERSION_RE.fullmatch(p.name)) and (p / MANIFEST_FILE).is_file()


def search_roots(root: str | os.PathLike[str] | None = None) -> list[Path]:
    """Where names are looked up, in order: :func:`cache_root`, then (only when no root is given) ``./data/cache``.

    Inside a `dvc repro` project the cache stage writes to ``./data/cache``: a notebook opened there finds
    (``resolve``) and lists (``list_datasets``, ``quickdraw cache ls``) those datasets without being told the
    root. One helper so that listing and loading can never disagree about where to look.
    """
    roots = [cache_root(root)]
    if root is None:
        project = Path.cwd() / PROJECT_CACHE
        if not _same_dir(project, roots[0]):
            roots.append(project)
    return roots


def _same_dir(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return a == b


def find_name_dir(name: str, root: str | os.PathLike[str] | None = None) -> Path | None:
    """``<root>/<name>`` in the first search root that has it (see :func:`search_roots`), else None."""
    for r in search_roots(root):
        if (r / name).is_dir():
            return r / name
    return None


def list_versions(name: str, root: str | os.PathLike[str] | None = None) -> list[CacheVersion]:
    """Complete versions of ``name``, LATEST first, then newest manifest first."""
    name_dir = find_name_dir(check_name(name), root)
    return _versions_in(name_dir) if name_dir is not None else []


def _versions_in(name_dir: Path, *, ignore_latest: bool = False) -> list[CacheVersion]:
    if not name_dir.is_dir():
        return []
    latest = None if ignore_latest else read_latest(name_dir)
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


def newest_version(name_dir: Path) -> CacheVersion | None:
    """The most recently written complete version (newest manifest, then smallest id), ignoring LATEST.

    This is what ``version="latest"`` opens when ``LATEST`` is missing (:func:`_pick`), so ``gc`` protects the
    same version.
    """
    versions = _versions_in(name_dir, ignore_latest=True)
    return versions[0] if versions else None


def list_datasets(root: str | os.PathLike[str] | None = None) -> list[str]:
    """Names that hold at least one complete version, sorted, over :func:`search_roots`.

    A name found in several roots counts once, from the root :func:`resolve` would use for it.
    """
    names: set[str] = set()
    for r in search_roots(root):
        if r.is_dir():
            names.update(d.name for d in r.iterdir() if d.is_dir() and _NAME_RE.fullmatch(d.name))
    out = []
    for n in sorted(names):
        d = find_name_dir(n, root)
        try:
            if d is not None and any(_is_version_dir(p) for p in d.iterdir()):
                out.append(n)
        except FileNotFoundError:
            continue  # the name dir was removed between the two looks: not a dataset any more
    return out


def _pick(name_dir: Path, version: str) -> CacheVersion:
    versions = _versions_in(name_dir)
    if not versions:
        raise CacheError(f"{name_dir}: no complete cache version (run `quickdraw cache build`)")
    if version == "latest":
        latest = read_latest(name_dir)
        if latest is None:
            # No pointer (e.g. copied without it): the most recently written version is the sane default.
            # Without LATEST, `versions` is already newest first, i.e. exactly `newest_version` (gc's rule).
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

    A name is looked up in :func:`search_roots`: :func:`cache_root`, then, when no root is given and the name
    is not there, ``./data/cache`` (the DVC project's cache stage output).

    Raises :class:`CacheError` naming what was looked for and what exists.
    """
    text = os.fspath(name_or_path)
    looks_like_path = isinstance(name_or_path, os.PathLike) or os.sep in text or text.startswith(".")
    if "\0" in text:
        raise CacheError(f"{text[:200]!r}: not a cache name or path (NUL character)")
    p = Path(text).expanduser()
    if looks_like_path or (not _NAME_RE.fullmatch(text)):
        try:
            return _resolve_path(p, version)
        except OSError as exc:  # ENAMETOOLONG, ELOOP, EACCES...: a named error, not a traceback
            raise CacheError(f"{text[:200]!r}: not a usable cache path ({exc.strerror or exc})") from None
    name_dir = find_name_dir(text, root)
    if name_dir is None:
        have = list_datasets(root)
        hint = f" (have: {', '.join(have)})" if have else " (the cache is empty: run `quickdraw cache build`)"
        where = " or ".join(str(r) for r in search_roots(root))
        raise CacheError(f"no cached dataset {text!r} under {where}{hint}")
    return _pick(name_dir, version)


def _resolve_path(p: Path, version: str) -> CacheVersion:
    if (p / MANIFEST_FILE).is_file():
        if version not in ("latest", p.name) and not p.name.startswith(version):
            raise CacheError(f"{p} is version {p.name}, not {version!r}")
        return open_version(p)
    if p.is_dir() and (any(_is_version_dir(c) for c in p.iterdir()) or (p / LATEST_FILE).exists()):
        return _pick(p, version)
    if p.is_dir() and _VERSION_RE.fullmatch(p.name):
        raise CacheError(f"{p / MANIFEST_FILE}: missing; {p} is not a complete cache version (rebuild it)")
    raise CacheError(f"{p}: not a cache version or cache name directory")


def manifest_json(manifest: Mapping[str, Any]) -> str:
    """The manifest text: keys in construction order (train, val, test read naturally), fixed formatting."""
    return json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
