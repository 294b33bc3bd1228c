"""Shared CLI plumbing: consoles, JSON output, turning library errors into clean exits."""

from __future__ import annotations

import contextlib
import json
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


@contextlib.contextmanager
def friendly_errors() -> Iterator[None]:
    """Turn the library's expected errors into a one-line message and exit code 2 (no traceback)."""
    from quickdraw.errors import QuickDrawError

    try:
        yield
    except (QuickDrawError, FileNotFoundError, ValueError) as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True, soft_wrap=True)
        raise typer.Exit(2) from None
