"""Garbage collection: drop versions nobody points at and temp dirs of dead builds.

Ownership (DESIGN "Safety contract"): gc deletes only what it can prove quickdraw wrote.

* The root must be a cache: it carries :data:`~quickdraw.cache.store.ROOT_MARKER` (written by ``build_cache``),
  or, for caches built before the marker existed, *every* folder that looks like a version (under the names
  collected) is a valid quickdraw version. Otherwise :class:`CacheError` and nothing is removed.
* A version is removed only if its manifest validates: readable, this format, created by quickdraw-pipeline,
  its ``version`` equal to the folder name and its ``name`` to the name folder, every file entry a regular file
  inside it. A folder that looks like a version but fails this is left alone and reported (``skipped``).
* A ``.tmp-<version>-<pid>`` dir is removed only if it holds the builder's
  :data:`~quickdraw.cache.store.BUILD_MARKER` naming that dir and the pid is dead; write_atomic's
  ``.<file>.<pid>.incomplete`` files only under a marked root. Symlinks are never followed or removed.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from quickdraw._safety import contained
from quickdraw.cache.store import (
    _NAME_RE,
    _VERSION_RE,
    BUILD_MARKER,
    LOCK_DIR,
    MANIFEST_FILE,
    ROOT_MARKER,
    TMP_PREFIX,
    cache_root,
    check_name,
    is_cache_root,
    newest_version,
    read_latest,
    read_manifest,
    read_small_text,
)
from quickdraw.errors import CacheError

__all__ = ["PINNED_FILE", "GcReport", "gc"]

log = logging.getLogger(__name__)

# One version id per line; versions listed here survive gc like LATEST does (e.g. the one a model was
# trained on).
PINNED_FILE = "PINNED"
_TMP_RE = re.compile(rf"{re.escape(TMP_PREFIX)}([0-9a-f]{{4,64}})-(\d{{1,10}})")
# quickdraw._io.write_atomic's temp files (e.g. `.LATEST.<pid>.incomplete` left by a killed build)
_TMP_FILE_RE = re.compile(r"\.(LATEST|PINNED)\.(\d{1,10})\.incomplete")


@dataclass
class GcReport:
    """What :func:`gc` removed (or would remove with ``dry_run``) and kept."""

    removed: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)
    freed_bytes: int = 0
    dry_run: bool = False
    #: Folders that look like versions or temp dirs but that gc cannot prove quickdraw wrote: left alone.
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "removed": [str(p) for p in self.removed],
            "kept": [str(p) for p in self.kept],
            "skipped": [{"path": str(p), "reason": r} for p, r in self.skipped],
            "freed_bytes": self.freed_bytes,
            "dry_run": self.dry_run,
        }


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _du(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def read_pinned(name_dir: Path) -> set[str]:
    """Versions pinned in ``name_dir/PINNED``."""
    text = read_small_text(name_dir / PINNED_FILE)
    if text is None:
        return set()
    return {line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")}


def _protected(name_dir: Path) -> set[str]:
    """Versions gc must not remove: PINNED, plus what ``version="latest"`` opens.

    That is LATEST's target, or, when LATEST is missing, the newest version: ``load`` falls back to it
    (``store._pick``), so removing it would break loading a name that gc was meant to tidy, not empty.
    """
    protected = read_pinned(name_dir)
    latest = read_latest(name_dir)
    if latest:
        protected.add(latest)
    else:
        newest = newest_version(name_dir)
        if newest is not None:
            protected.add(newest.version)
    return protected


def _is_kept(version: str, protected: set[str], wanted: list[str]) -> bool:
    return version in protected or any(version.startswith(w) for w in wanted if w)


def version_problem(path: Path) -> str | None:
    """Why ``path`` is not a version gc may delete (None when quickdraw provably wrote it)."""
    if path.is_symlink() or not path.is_dir():
        return "a symlink or not a directory"
    if not (path / MANIFEST_FILE).is_file():
        return "no manifest.json"
    try:
        m = read_manifest(path)
    except CacheError as exc:
        return str(exc)
    if m.get("version") != path.name:
        return f"its manifest names version {m.get('version')!r}, not the folder name"
    if m.get("name") != path.parent.name:
        return f"its manifest names dataset {m.get('name')!r}, not {path.parent.name!r}"
    if m["created_by"].get("package") != "quickdraw-pipeline":
        return "its manifest was not created by quickdraw-pipeline"
    for rel in m["files"]:
        try:
            contained(path, rel, f"{path / MANIFEST_FILE}: file entry", error=CacheError, must_exist=False)
        except CacheError as exc:
            return str(exc)
    # Removing the version removes everything in it: only when nothing but what the build wrote is there.
    listed = {MANIFEST_FILE, *m["files"]}
    for f in path.rglob("*"):
        rel = f.relative_to(path).as_posix()
        if f.is_symlink() or (not f.is_dir() and rel not in listed):
            return f"it holds {rel!r}, which its manifest does not list (not written by the build)"
        if f.is_dir() and not any(x == rel or x.startswith(rel + "/") for x in listed):
            return f"it holds the folder {rel!r}, which its manifest does not list"
    return None


def _temp_owned(path: Path) -> bool:
    """A temp dir the builder made: a real dir holding the build marker that names it."""
    marker = path / BUILD_MARKER
    if path.is_symlink() or not path.is_dir() or marker.is_symlink() or not marker.is_file():
        return False
    try:
        return marker.read_text(encoding="utf-8").strip() == path.name
    except (OSError, UnicodeDecodeError):
        return False


def gc(
    root: str | os.PathLike[str] | None = None,
    name: str | None = None,
    *,
    keep: Iterable[str] = (),
    dry_run: bool = False,
) -> GcReport:
    """Remove every version except LATEST, pinned ones and ``keep``, plus temp dirs of dead builds.

    Without a LATEST file the newest version stands in for it (the one ``load`` opens then). ``keep`` holds
    version ids (or unique prefixes), or ``name/version``. With ``name`` only that dataset is collected. A
    temp dir whose builder process is still alive is left alone, and so is a version whose build lock is held.
    Only what quickdraw provably wrote is removed (see the module docstring); a root that is not a cache is a
    :class:`CacheError` and nothing is touched.
    """
    r = cache_root(root)
    report = GcReport(dry_run=dry_run)
    if not r.is_dir():
        return report
    keep = list(keep)
    names = [check_name(name)] if name else sorted(
        d.name for d in r.iterdir() if _NAME_RE.fullmatch(d.name) and d.is_dir() and not d.is_symlink()
    )
    name_dirs = [r / n for n in names if (r / n).is_dir() and not (r / n).is_symlink()]
    # Judge every candidate first: under a root without the marker, one folder gc cannot vouch for means the
    # root is not (only) a cache, and nothing at all is removed.
    problems: dict[Path, str | None] = {}
    for name_dir in name_dirs:
        for child in sorted(name_dir.iterdir()):
            if _VERSION_RE.fullmatch(child.name) and (child.is_dir() or child.is_symlink()):
                problems[child] = version_problem(child)
    marked = is_cache_root(r)
    if not marked:
        bad = [(p, why) for p, why in problems.items() if why is not None]
        if bad:
            p, why = bad[0]
            raise CacheError(
                f"{r} is not a quickdraw cache root (no {ROOT_MARKER} marker, and {p.relative_to(r)} is not a "
                f"quickdraw cache version: {why}); nothing removed"
            )
    # A --keep that matches nothing is a typo, and gc would delete the very version it meant: refuse first.
    versions = {(p.parent.name, p.name) for p in problems}
    for k in keep:
        kn, kv = k.split("/", 1) if "/" in k else (None, k)
        if not kv or not any((kn is None or kn == vn) and v.startswith(kv) for vn, v in versions):
            raise CacheError(f"--keep {k!r} matches no version under {r} (give a version id or prefix, or "
                             f"NAME/VERSION, as `quickdraw cache ls` shows them); nothing removed")
    for name_dir in name_dirs:
        n = name_dir.name
        protected = _protected(name_dir)
        wanted = [k.split("/", 1)[1] if "/" in k else k for k in keep if "/" not in k or k.split("/", 1)[0] == n]
        for child in sorted(name_dir.iterdir()):
            if child.is_symlink():
                continue  # never followed, never removed
            f = _TMP_FILE_RE.fullmatch(child.name)
            if f and child.is_file():
                if marked and not _pid_alive(int(f.group(2))):
                    _remove(child, report, dry_run)
                continue
            if child.name.startswith(TMP_PREFIX) and child.is_dir():
                m = _TMP_RE.fullmatch(child.name)
                if m is None or not _temp_owned(child):
                    log.warning("gc: leaving %s alone (no %s marker: not a quickdraw build dir)", child, BUILD_MARKER)
                    report.skipped.append((child, f"no {BUILD_MARKER} marker naming it"))
                    continue
                if _pid_alive(int(m.group(2))):
                    log.info("gc: keeping %s (build process %s still running)", child, m.group(2))
                    report.kept.append(child)
                    continue
                _remove(child, report, dry_run)
                continue
            if child not in problems:
                continue  # LATEST, PINNED, .locks, and anything else that is not ours to judge
            why = problems[child]
            if why is not None:
                log.warning("gc: leaving %s alone (%s)", child, why)
                report.skipped.append((child, why))
                continue
            if _is_kept(child.name, protected, wanted):
                report.kept.append(child)
                continue
            if dry_run:
                _remove(child, report, dry_run)  # nothing is deleted, so there is no race to guard against
                continue
            # A concurrent build_cache of this version may have renamed it in and pointed LATEST at it after
            # `protected` was read. Builds hold `.locks/<version>.lock` until LATEST is written, so take it
            # (never wait: a busy lock means a build is using the version right now) and decide again
            # from LATEST and PINNED as they are while the lock is held.
            (name_dir / LOCK_DIR).mkdir(exist_ok=True)
            lock = FileLock(str(name_dir / LOCK_DIR / f"{child.name}.lock"), timeout=0)
            try:
                lock.acquire()
            except Timeout:
                log.info("gc: keeping %s (a build of it holds its lock)", child)
                report.kept.append(child)
                continue
            try:
                if _is_kept(child.name, _protected(name_dir), wanted):
                    log.info("gc: keeping %s (became LATEST or pinned while gc ran)", child)
                    report.kept.append(child)
                    continue
                _remove(child, report, dry_run)
            finally:
                lock.release()
    return report


def _remove(path: Path, report: GcReport, dry_run: bool) -> None:
    size = _du(path)
    log.info("gc: removing %s (%d bytes)", path, size)
    if not dry_run:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    report.removed.append(path)
    report.freed_bytes += size
