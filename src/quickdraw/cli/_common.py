"""Shared CLI plumbing: consoles, JSON output, turning library errors into clean exits."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

import typer
from rich.console import Console

# Human output goes to stderr so that `--json` leaves stdout holding one JSON document and nothing else.
console = Console(stderr=True)
out_console = Console()


def print_json(doc: Any) -> None:
    """Print one JSON document on stdout."""
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


# Errors that mean "the output cannot be written": the user can act on them (free space, fix permissions,
# pick another --out), so they get one line naming the path instead of a traceback.
_WRITE_ERRNOS = {
    errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS,
    errno.ENOTDIR, errno.EISDIR, errno.EEXIST,
}
_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


@contextlib.contextmanager
def friendly_errors(output: str | os.PathLike[str] | None = None) -> Iterator[None]:
    """Turn the library's expected errors into a one-line message and exit code 2 (no traceback).

    ``output`` names where the command writes: a full disk reports no file name (pyarrow and ``write``
    raise a bare ENOSPC/EFBIG), so the message falls back to it.
    """
    from quickdraw.errors import QuickDrawError

    try:
        yield
    except (QuickDrawError, FileNotFoundError, ValueError) as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True, soft_wrap=True)
        raise typer.Exit(2) from None
    except OSError as exc:
        if exc.errno not in _WRITE_ERRNOS:
            raise
        where = exc.filename or (os.fspath(output) if output is not None else "the output")
        what = exc.strerror or str(exc)
        hint = (" (disk full or file size limit; nothing partial is left visible: free space and re-run)"
                if exc.errno in _FULL else "")
        console.print(f"[bold red]error:[/] cannot write {where}: {what}{hint}", highlight=False, markup=True,
                      soft_wrap=True)
        raise typer.Exit(2) from None
