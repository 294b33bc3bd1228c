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

from quickdraw.cache.store import TMP_PREFIX, _is_version_dir, cache_root, check_name, read_latest

__all__ = ["PINNED_FILE", "GcReport", "gc"]

log = logging.getLogger(__name__)

# One version id per line; versions listed here survive gc like LATEST does (e.g. the one a model was
# trained on).
PINNED_FILE = "PINNED"
_TMP_RE = re.compile(rf"^{re.escape(TMP_PREFIX)}([0-9a-f]+)-(\d+)$")


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
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def read_pinned(name_dir: Path) -> set[str]:
    """Versions pinned in ``name_dir/PINNED``."""
    try:
        text = (name_dir / PINNED_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return set()
    return {line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")}


def gc(
    root: str | os.PathLike[str] | None = None,
    name: str | None = None,
    *,
    keep: Iterable[str] = (),
    dry_run: bool = False,
) -> GcReport:
    """Remove every version except LATEST, pinned ones and ``keep``, plus temp dirs of dead builds.

    ``keep`` holds version ids (or unique prefixes), or ``name/version``. With ``name`` only that dataset
    is collected. A temp dir whose builder process is still alive is left alone.
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
        protected = read_pinned(name_dir)
        latest = read_latest(name_dir)
        if latest:
            protected.add(latest)
        wanted = [k.split("/", 1)[1] if "/" in k else k for k in keep if "/" not in k or k.split("/", 1)[0] == n]
        for child in sorted(name_dir.iterdir()):
            m = _TMP_RE.match(child.name)
            if m and child.is_dir():
                if _pid_alive(int(m.group(2))):
                    log.info("gc: keeping %s (build process %s still running)", child, m.group(2))
                    report.kept.append(child)
                    continue
            elif _is_version_dir(child) or (child.is_dir() and re.fullmatch(r"[0-9a-f]{16}", child.name)):
                if child.name in protected or any(child.name.startswith(w) for w in wanted if w):
                    report.kept.append(child)
                    continue
            else:
                continue
            size = _du(child)
            log.info("gc: removing %s (%d bytes)", child, size)
            if not dry_run:
                shutil.rmtree(child, ignore_errors=True)
            report.removed.append(child)
            report.freed_bytes += size
    return report
