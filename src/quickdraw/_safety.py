"""Containment: the one place that decides whether a path read from a file may be opened.

Every path that comes from data rather than from the user's command line (a cache manifest's ``files``, a
fetch manifest's ``parts``, a prepare output's shards, a checkpoint) goes through :func:`contained` (or
:func:`check_relpath` where only the text can be judged yet) before anything is stat'ed or opened, and files
are opened with :func:`open_regular`, which refuses FIFOs, devices and directories *after* opening (``fstat``
on the open descriptor, so a file swapped for a FIFO between a check and the open is still refused, and
``O_NONBLOCK`` keeps the open itself from blocking on a FIFO).

The rules (docs/FORMATS.md "Paths inside manifests"): a non-empty relative POSIX path, already normalized (no
``.``/``..``/empty components, no trailing ``/``), no backslash, no NUL or other control characters, no drive
letter, at most 4096 bytes; once resolved (symlinks followed) it is still inside the folder; and it names a
regular file. Anything else is an :class:`~quickdraw.errors.UnsafePathError` (or the ``error`` class a caller
passes, e.g. :class:`~quickdraw.errors.CacheError`) whose message names the file the path was read from.

Low layer: imports only the standard library and :mod:`quickdraw.errors`.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import IO

from quickdraw.errors import QuickDrawError, UnsafePathError

__all__ = ["MAX_RELPATH_BYTES", "check_relpath", "contained", "open_regular", "regular_file"]

MAX_RELPATH_BYTES = 4096


def _refuse(error: type[QuickDrawError], what: str, rel: object, why: str) -> QuickDrawError:
    shown = repr(rel) if not isinstance(rel, str) else repr(rel[:200])
    return error(f"{what} {shown} {why}")


def check_relpath(rel: object, what: str = "path", *, error: type[QuickDrawError] = UnsafePathError) -> str:
    """``rel`` if it is a safe relative path by its text alone, else ``error`` naming ``what`` and the value.

    ``what`` says where the value came from, e.g. ``"models/best.pt: cache path"`` or
    ``"<dir>/manifest.json: file entry"``.
    """
    if not isinstance(rel, str):
        raise _refuse(error, what, rel, f"is a {type(rel).__name__}, expected a relative path string")
    if not rel:
        raise _refuse(error, what, rel, "is empty")
    if len(rel.encode("utf-8", "surrogatepass")) > MAX_RELPATH_BYTES:
        raise _refuse(error, what, rel, f"is longer than {MAX_RELPATH_BYTES} bytes")
    if any(ord(c) < 32 or ord(c) == 127 for c in rel):
        raise _refuse(error, what, rel, "contains a NUL or control character")
    if "\\" in rel:
        raise _refuse(error, what, rel, "contains a backslash (paths in manifests use '/')")
    if rel.startswith("/") or (len(rel) >= 2 and rel[1] == ":"):
        raise _refuse(error, what, rel, "is absolute: it must be relative to its folder")
    parts = rel.split("/")
    if ".." in parts:
        raise _refuse(error, what, rel, "is outside its folder: '..' is not allowed")
    if any(p in ("", ".") for p in parts):
        raise _refuse(error, what, rel, "is not normalized (empty or '.' component)")
    return rel


def contained(
    base: str | os.PathLike[str],
    rel: object,
    what: str = "path",
    *,
    error: type[QuickDrawError] = UnsafePathError,
    must_exist: bool = True,
) -> Path:
    """``base / rel`` after checking that ``rel`` is safe and, resolved, a regular file inside ``base``.

    With ``must_exist=False`` a missing file is allowed (the caller reports it in its own words) but
    anything that exists must still be a regular file inside ``base``. Raises ``error`` otherwise.
    """
    check_relpath(rel, what, error=error)
    assert isinstance(rel, str)
    base_p = Path(base)
    path = base_p / rel
    try:
        real_base = base_p.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise error(f"{what} {rel!r}: its folder {base_p} cannot be resolved ({exc})") from None
    try:
        real = path.resolve(strict=True)
    except FileNotFoundError:
        if must_exist:
            raise error(f"{what} {rel!r}: {path} does not exist") from None
        real = Path(os.path.realpath(path))
        if not real.is_relative_to(real_base):
            raise error(f"{what} {rel!r} is outside its folder: it resolves to {real}, not inside {real_base}")
        return path
    except (OSError, RuntimeError) as exc:  # symlink loop, permission
        raise error(f"{what} {rel!r}: cannot resolve {path} ({exc})") from None
    if not real.is_relative_to(real_base):
        raise error(f"{what} {rel!r} is outside its folder: it resolves to {real}, not inside {real_base}")
    regular_file(real, f"{what} {rel!r}", error=error)
    return path


def regular_file(path: str | os.PathLike[str], what: str, *, error: type[QuickDrawError] = UnsafePathError) -> os.stat_result:
    """``os.stat`` of ``path`` if it is a regular file; ``error`` for a FIFO, device, socket or directory."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(f"{what}: {os.fspath(path)} does not exist") from None
    except OSError as exc:
        raise error(f"{what}: cannot stat {os.fspath(path)} ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{what}: {os.fspath(path)} is {_kind(st.st_mode)}, not a regular file")
    return st


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def open_regular(path: str | os.PathLike[str], what: str, *, error: type[QuickDrawError] = UnsafePathError) -> IO[bytes]:
    """Open ``path`` for binary reading only if it is a regular file (checked on the open descriptor).

    ``O_NONBLOCK`` makes opening a FIFO return at once instead of waiting for a writer; the flag is cleared
    again before the file object is returned.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise error(f"{what}: {os.fspath(path)} does not exist") from None
    except OSError as exc:
        raise error(f"{what}: cannot open {os.fspath(path)} ({exc.strerror or exc})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{what}: {os.fspath(path)} is {_kind(st.st_mode)}, not a regular file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
