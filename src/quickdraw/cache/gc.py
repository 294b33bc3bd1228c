"""Garbage collection: drop versions nobody points at and temp dirs of dead builds."""

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

from quickdraw.cache.store import (
    LOCK_DIR,
    TMP_PREFIX,
    _is_version_dir,
    cache_root,
    check_name,
    newest_version,
    read_latest,
)

__all__ = ["PINNED_FILE", "GcReport", "gc"]

log = logging.getLogger(__name__)

# One version id per line; versions listed here survive gc like LATEST does (e.g. the one a model was
# trained on).
PINNED_FILE = "PINNED"
_TMP_RE = re.compile(rf"^{re.escape(TMP_PREFIX)}([0-9a-f]+)-(\d+)$")
# quickdraw._io.write_atomic's temp files (e.g. `.LATEST.<pid>.incomplete` left by a killed build)
_TMP_FILE_RE = re.compile(r"^\..+\.(\d+)\.incomplete$")


@dataclass
class GcReport:
    """What :func:`gc` removed (or would remove with ``dry_run``) and kept."""

    removed: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)
    freed_bytes: int = 0
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "removed": [str(p) for p in self.removed],
            "kept": [str(p) for p in self.kept],
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
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def read_pinned(name_dir: Path) -> set[str]:
    """Versions pinned in ``name_dir/PINNED``."""
    try:
        text = (name_dir / PINNED_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
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
    """
    r = cache_root(root)
    report = GcReport(dry_run=dry_run)
    if not r.is_dir():
        return report
    keep = list(keep)
    names = [check_name(name)] if name else sorted(d.name for d in r.iterdir() if d.is_dir())
    for n in names:
        name_dir = r / n
        if not name_dir.is_dir():
            continue
        protected = _protected(name_dir)
        wanted = [k.split("/", 1)[1] if "/" in k else k for k in keep if "/" not in k or k.split("/", 1)[0] == n]
        for child in sorted(name_dir.iterdir()):
            f = _TMP_FILE_RE.match(child.name)
            if f and child.is_file():
                if not _pid_alive(int(f.group(1))):
                    _remove(child, report, dry_run)
                continue
            m = _TMP_RE.match(child.name)
            if m and child.is_dir():
                if _pid_alive(int(m.group(2))):
                    log.info("gc: keeping %s (build process %s still running)", child, m.group(2))
                    report.kept.append(child)
                    continue
                _remove(child, report, dry_run)
            elif _is_version_dir(child) or (child.is_dir() and re.fullmatch(r"[0-9a-f]{16}", child.name)):
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
