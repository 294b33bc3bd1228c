"""`quickdraw cache ...` (being built)."""

from __future__ import annotations

import typer

app = typer.Typer(help="The versioned sequence cache.", no_args_is_help=True)
