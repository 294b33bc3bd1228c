"""Ownership: the one place that decides whether a command may delete or replace files in an output folder.

The rule (DESIGN "Safety contract"): a command deletes or replaces only what it can prove it wrote. Every
output folder a stage writes (fetch's ``--out``, prepare's ``--out``) carries a marker file, written when the
folder is created or first claimed empty. A folder that exists, is not empty and has no marker is refused
(the user's own files might be there) unless the caller passes ``overwrite=True`` (the CLI's
``--overwrite``); a marker of another kind (a prepare output given to fetch) is refused too. Inside a claimed
folder, only files whose names the stage itself writes are ever removed (:func:`remove_owned`), sub-folders
are never removed, and a sub-folder that is a symlink is refused instead of being followed
(:func:`owned_subdir`). One process writes a folder at a time (:func:`output_lock`).

The marker's content is fixed (no time, no version), so that two runs leave byte-identical folders and DVC
hashes do not move.

Low layer: imports only the standard library (filelock on Windows) and :mod:`quickdraw.errors`.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from quickdraw.errors import OwnershipError

__all__ = ["LOCK", "MARKER", "NEW_FOLDER_HINT", "claim_output", "only_names", "output_file", "output_lock", "owned_subdir", "read_marker", "remove_owned"]

MARKER = ".quickdraw-output.json"
LOCK = ".quickdraw.lock"
_OWN_FILES = (MARKER, LOCK)
#: The end of a refusal for stages without --overwrite (train, evaluate).
NEW_FOLDER_HINT = "or remove what is in it"


def only_names(names: set[str]) -> Callable[[Path], bool]:
    """An ``adopt`` test for :func:`claim_output`: a folder from before ownership markers that holds nothing but
    the names a stage writes (and quickdraw's own dot-files)."""
    def adopt(root: Path) -> bool:
        return all(p.name in names or p.name.startswith(".quickdraw") for p in root.iterdir())
    return adopt


def read_marker(root: Path) -> str | None:
    """The kind of output (``"fetch"``, ``"prepare"``) ``root``'s marker names, or None without a valid marker."""
    p = root / MARKER
    if p.is_symlink() or not p.is_file():
        return None
    try:
        doc = json.loads(p.read_bytes()[:4096])
    except (OSError, ValueError):
        return None
    if isinstance(doc, dict) and doc.get("created_by") == "quickdraw" and isinstance(doc.get("kind"), str):
        return doc["kind"]
    return None


def _write_marker(root: Path, kind: str) -> None:
    data = json.dumps({"created_by": "quickdraw", "kind": kind}, sort_keys=True) + "\n"
    tmp = root / f"{MARKER}.{os.getpid()}.incomplete"
    tmp.write_text(data, encoding="utf-8")
    os.replace(tmp, root / MARKER)


def claim_output(
    root: str | os.PathLike[str],
    kind: str,
    *,
    overwrite: bool = False,
    adopt: Callable[[Path], bool] | None = None,
    option: str = "--out",
    hint: str = "or pass --overwrite if the folder is yours to reuse (files quickdraw did not write are left alone either way)",
) -> Path:
    """Make ``root`` an output folder of ``kind`` that this tool may write, or raise :class:`OwnershipError`.

    A missing folder is created with the marker; an empty one, or one that ``adopt(root)`` recognises as
    written by an earlier quickdraw (before markers existed), is claimed; one with this kind's marker is
    accepted as is. Anything else is refused unless ``overwrite``. ``root`` itself may be a symlink (the user
    named it); what is inside is judged by :func:`owned_subdir` and :func:`remove_owned`.
    """
    path = Path(root)
    if path.exists() and not path.is_dir():
        raise OwnershipError(f"{path} is not a folder: pick another {option}")
    if not path.exists():
        path.mkdir(parents=True, exist_ok=True)
        _write_marker(path, kind)
        return path
    found = read_marker(path)
    if found == kind:
        return path
    if found is not None and not overwrite:
        raise OwnershipError(f"{path} is a quickdraw {found} output, not a {kind} output: pick another {option}")
    others = [p for p in path.iterdir() if p.name not in _OWN_FILES]
    if found is None and others and not overwrite and not (adopt is not None and adopt(path)):
        shown = ", ".join(sorted(p.name for p in others)[:3]) + (", ..." if len(others) > 3 else "")
        raise OwnershipError(
            f"{path} already exists and was not created by quickdraw (no {MARKER}; it holds {shown}): "
            f"quickdraw replaces files in its output folders, so it will not write there. Pick a new or empty "
            f"{option}, {hint}")
    _write_marker(path, kind)
    return path


def owned_subdir(root: Path, name: str, *, create: bool = True) -> Path:
    """``root/name`` as a real folder inside ``root``: a symlink, a file or a path outside is refused.

    ``name`` must be one path component (class words are checked by the caller; this is the last line).
    """
    if not name or "/" in name or "\x00" in name or name in (".", ".."):
        raise OwnershipError(f"{name!r} is not a folder name inside {root}")
    sub = root / name
    if sub.is_symlink():
        raise OwnershipError(f"{sub} is a symlink: quickdraw does not follow symlinks out of its output folder "
                             f"{root}; remove the link or pick another --out")
    if sub.exists() and not sub.is_dir():
        raise OwnershipError(f"{sub} exists and is not a folder: move it or pick another --out")
    if create:
        sub.mkdir(exist_ok=True)
    return sub


def remove_owned(folder: Path, patterns: Iterable[str]) -> list[Path]:
    """Delete the regular files (or symlinks) directly in ``folder`` whose names match ``patterns``; nothing
    else (no sub-folder, no other file) is touched. Returns what was removed."""
    pats = tuple(patterns)
    removed: list[Path] = []
    for p in sorted(folder.iterdir()):
        if not any(fnmatch.fnmatchcase(p.name, pat) for pat in pats):
            continue
        if p.is_symlink() or p.is_file():
            p.unlink()  # unlink of a symlink removes the link, never its target
            removed.append(p)
    return removed


@contextlib.contextmanager
def output_lock(root: Path, what: str) -> Iterator[None]:
    """Hold ``root``'s writer lock for the block; a second writer fails at once, naming the folder.

    Failing rather than waiting: the other run may take hours, and a queue of waiting runs would each redo
    the same work after it.
    """
    path = root / LOCK
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise OwnershipError(f"{path} is not a regular file (a symlink or a special file): quickdraw does not "
                             f"follow it; remove it and re-run")
    busy = OwnershipError(f"another quickdraw {what} is writing into {root}: wait for it to finish, or use "
                          f"another --out")
    try:
        import fcntl
    except ImportError:  # Windows: filelock's msvcrt lock (importing filelock costs ~50 ms, so POSIX skips it)
        from filelock import FileLock, Timeout

        lock = FileLock(str(path), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise busy from None
        except OSError as exc:
            raise OwnershipError(f"cannot lock {path}: {exc.strerror or exc}") from None
        try:
            yield
        finally:
            lock.release()
        return
    # The same flock(2) lock filelock takes on POSIX, so runs of older versions still exclude each other.
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as exc:
        raise OwnershipError(f"cannot lock {path}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy from None
        except OSError as exc:
            raise OwnershipError(f"cannot lock {path}: {exc.strerror or exc}") from None
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def output_file(out: str | os.PathLike[str], *, overwrite: bool = False) -> tuple[Path, Path]:
    """``(out, temp)`` for a command that writes one file where the user says (an export, a plot).

    A file quickdraw cannot tell it wrote is never replaced without ``overwrite`` (the CLI's ``--overwrite``),
    a folder never, and the temporary name (``.<name>.<pid>.incomplete`` beside it) is one no user file has,
    so writing it destroys nothing; the caller renames it over ``out`` when complete.
    """
    path = Path(out)
    if path.is_dir() and not path.is_symlink():
        raise OwnershipError(f"{path} is a folder: give a file name for --out")
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise OwnershipError(f"{path} already exists: pass --overwrite to replace it, or pick another --out")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path, path.with_name(f".{path.name}.{os.getpid()}.incomplete")
