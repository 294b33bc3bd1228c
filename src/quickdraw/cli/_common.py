"""Shared CLI plumbing: consoles, logging, JSON output, literal text, turning library errors into clean exits."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table


class _LazyConsole:
    """A rich ``Console`` made on first use. Importing rich's console costs ~20 ms and ``--help`` (which Typer
    renders without rich here, see ``cli.app``) never prints through one, so it is not made at import."""

    def __init__(self, **kwargs: Any) -> None:
        self._kwargs = kwargs
        self._console: Console | None = None

    def _real(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._kwargs)
        return self._console

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_kwargs", "_console"):
            raise AttributeError(name)  # e.g. copy/pickle probing before __init__ ran: no recursion into _real()
        return getattr(self._real(), name)

    # Special methods are looked up on the type, not through __getattr__: rich's Live (progress bars) enters
    # the console as a context manager.
    def __enter__(self) -> Console:
        return self._real().__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._real().__exit__(*exc)


# Human output goes to stderr so that `--json` leaves stdout holding one JSON document and nothing else.
console: Console = _LazyConsole(stderr=True)  # type: ignore[assignment]
out_console: Console = _LazyConsole()  # type: ignore[assignment]


# Libraries that log retries, connection resets and their own tracebacks at WARNING/INFO: a user sees their
# outcome in quickdraw's one-line error or summary, so without --verbose they only log errors.
NOISY_LOGGERS = ("gcsfs", "fsspec", "aiohttp", "asyncio", "urllib3", "google", "numba", "matplotlib", "PIL")
_state = {"verbose": False}


def configure_logging(verbose: bool) -> None:
    """Set up logging for one CLI run.

    Without ``verbose``: quickdraw logs at ``$QUICKDRAW_LOG`` (default WARNING) and the libraries in
    :data:`NOISY_LOGGERS` at ERROR. With it: quickdraw at DEBUG (or ``$QUICKDRAW_LOG`` when that is set),
    the libraries at INFO, and :func:`friendly_errors` prints the traceback behind an error.
    """
    _state["verbose"] = verbose
    env = os.environ.get("QUICKDRAW_LOG", "").strip().upper()
    own = env or ("DEBUG" if verbose else "WARNING")
    if not isinstance(logging.getLevelName(own), int):
        own = "WARNING"  # an unknown level name must not turn into a traceback at start-up
    # The root level gates every library without a level of its own (filelock, dvc, ...): INFO at most with
    # --verbose, so their DEBUG chatter needs QUICKDRAW_LOG=DEBUG.
    root_level = logging.INFO if verbose else logging.WARNING
    if env:
        root_level = min(root_level, logging.getLevelName(own))
    root = logging.getLogger()
    if not root.handlers:  # a plain CLI run; under an embedding app or pytest the host owns the handlers
        logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
        root.setLevel(root_level)
    elif verbose or env:
        root.setLevel(root_level)
    # NOTSET when nothing was asked for: quickdraw's records then follow the root level (and a host's caplog).
    logging.getLogger("quickdraw").setLevel(own if (verbose or env) else logging.NOTSET)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.ERROR)


def is_verbose() -> bool:
    """Whether ``-v/--verbose`` was given for this run."""
    return _state["verbose"]


def lit(value: Any) -> str:
    """``value`` as text that rich prints literally (``[red]`` in a class name or path is not markup).

    Every value that comes from data (class names, paths, country codes, error messages) goes through this
    before it is put in a markup string or a table cell.
    """
    from rich.markup import escape

    return escape(str(value))


def table(title: str | None = None) -> Table:
    """A table in the CLI's one style, built to stay readable at 80 columns.

    A light box (a rule under the header, no vertical bars) leaves the columns ~2 characters each more than
    rich's default grid; the title is left-aligned so a long path in it wraps instead of centring oddly.
    ``title`` is markup: pass data in it through :func:`lit`. Columns that hold names should be added with
    ``overflow="fold"`` (they wrap), numbers with ``no_wrap=True`` (they are never cut).
    """
    from rich import box
    from rich.table import Table

    return Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)


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
        _traceback_if_verbose()
        console.print(f"[bold red]error:[/] {lit(exc)}", highlight=False, markup=True, soft_wrap=True)
        raise typer.Exit(2) from None
    except ImportError as exc:
        # fsspec names the package a URL scheme needs (s3:// -> "Install s3fs to access S3").
        _traceback_if_verbose()
        console.print(f"[bold red]error:[/] {lit(exc)} (an optional package for this kind of URL; "
                      f"install it into the project's environment, e.g. .venv/bin/pip install ...)",
                      highlight=False, markup=True, soft_wrap=True)
        raise typer.Exit(2) from None
    except OSError as exc:
        if exc.errno not in _WRITE_ERRNOS:
            raise
        _traceback_if_verbose()
        where = exc.filename or (os.fspath(output) if output is not None else "the output")
        what = exc.strerror or str(exc)
        hint = (" (disk full or file size limit; nothing partial is left visible: free space and re-run)"
                if exc.errno in _FULL else "")
        console.print(f"[bold red]error:[/] cannot write {lit(where)}: {lit(what)}{hint}", highlight=False,
                      markup=True, soft_wrap=True)
        raise typer.Exit(2) from None


def _traceback_if_verbose() -> None:
    # Called inside an ``except`` block: with --verbose the user (or a bug report) gets the whole story.
    if _state["verbose"]:
        import traceback

        traceback.print_exc(file=sys.stderr)
