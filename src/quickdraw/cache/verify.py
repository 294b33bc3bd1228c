"""Full integrity check of a cache version: every file's size and xxh3-128 against the manifest."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quickdraw._safety import contained
from quickdraw.cache.fingerprint import file_checksum
from quickdraw.cache.store import MANIFEST_FILE, CacheVersion, check_split, resolve
from quickdraw.errors import CacheError, QuickDrawError

__all__ = ["Problem", "VerifyReport", "verify"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Problem:
    """One bad file: ``reason`` is ``missing``, ``size``, ``checksum``, ``unsafe`` (a path that is not a regular
    file inside the version) or ``unexpected`` (extras); ``content`` names a split directory whose arrays
    disagree with each other or with the manifest."""

    file: str
    reason: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.file}: {self.reason}" + (f" ({self.detail})" if self.detail else "")


@dataclass
class VerifyReport:
    """The outcome of :func:`verify`; ``ok`` is False if any file is missing, truncated or altered."""

    name: str
    version: str
    path: Path
    checked: int = 0
    bytes: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no problem (extras count as problems too: a version's content is exactly its manifest)."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what ``quickdraw cache verify --json`` prints)."""
        return {
            "name": self.name,
            "version": self.version,
            "path": str(self.path),
            "ok": self.ok,
            "checked": self.checked,
            "bytes": self.bytes,
            "problems": [{"file": p.file, "reason": p.reason, "detail": p.detail} for p in self.problems],
        }


def verify(
    target: CacheVersion | str | os.PathLike[str],
    version: str = "latest",
    root: str | os.PathLike[str] | None = None,
) -> VerifyReport:
    """Re-check every file of a version (a :class:`CacheVersion`, a name or a path) against its manifest.

    Never raises for damaged data files; each is named in ``report.problems``. A missing or unreadable
    manifest raises :class:`quickdraw.errors.CacheError` (there is nothing to check against).
    """
    cv = target if isinstance(target, CacheVersion) else resolve(target, version=version, root=root)
    report = VerifyReport(cv.name, cv.version, cv.path)
    listed = cv.manifest["files"]
    what = f"{cv.path / MANIFEST_FILE}: file entry"
    for rel, info in sorted(listed.items()):
        p = cv.path / rel
        report.checked += 1
        # Every path is judged before it is touched: '../../dev/zero', an absolute path, a symlink out of the
        # version, a FIFO or a device is an `unsafe` problem and is never stat'ed as data nor opened.
        try:
            contained(cv.path, rel, what, error=CacheError, must_exist=False)
        except CacheError as exc:
            report.problems.append(Problem(rel, "unsafe", str(exc)))
            continue
        try:
            size = p.stat().st_size
        except FileNotFoundError:
            report.problems.append(Problem(rel, "missing"))
            continue
        report.bytes += size
        if size != info["size"]:
            report.problems.append(Problem(rel, "size", f"{size} bytes, manifest says {info['size']}"))
            continue
        try:
            got = file_checksum(p)
        except QuickDrawError as exc:  # swapped for a FIFO/device since the check
            report.problems.append(Problem(rel, "unsafe", str(exc)))
            continue
        if got != info["xxh3_128"]:
            report.problems.append(Problem(rel, "checksum", f"xxh3_128 {got}, manifest says {info['xxh3_128']}"))
    for p in sorted(cv.path.rglob("*")):
        rel = p.relative_to(cv.path).as_posix()
        if p.is_file() and rel != MANIFEST_FILE and rel not in listed:
            report.problems.append(Problem(rel, "unexpected", "file not in the manifest"))
    # Files that match their checksums can still disagree with each other (a manifest rewritten together with
    # its files): the full array invariants, for every split whose own files are intact.
    damaged = {prob.file for prob in report.problems}
    for fmt, info in cv.manifest["formats"].items():
        for split in info["splits"]:
            prefix = f"{fmt}/{split}/"
            if any(f.startswith(prefix) for f in damaged):
                continue
            try:
                check_split(cv, fmt, split, full=True)
            except CacheError as exc:
                report.problems.append(Problem(prefix.rstrip("/"), "content", str(exc)))
    for prob in report.problems:
        log.warning("%s/%s: %s", cv.name, cv.version, prob)
    return report
