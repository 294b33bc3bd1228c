"""The ``quickdraw`` command: a thin Typer shell over the library.

Each command lives in its own module under ``quickdraw.cli`` and only parses options, calls one library
function and renders the result (rich tables, or one JSON document with ``--json``).
"""

from __future__ import annotations

import logging
import os

import typer

from quickdraw.cli import cache as cache_cmd
from quickdraw.cli import classes as classes_cmd
from quickdraw.cli import evaluate as evaluate_cmd
from quickdraw.cli import export as export_cmd
from quickdraw.cli import fetch as fetch_cmd
from quickdraw.cli import predict as predict_cmd
from quickdraw.cli import prepare as prepare_cmd
from quickdraw.cli import show as show_cmd
from quickdraw.cli import stats as stats_cmd
from quickdraw.cli import train as train_cmd

app = typer.Typer(
    name="quickdraw",
    help=(
        "Quick, Draw! to training-ready, versioned, cached sequence datasets.\n\n"
        "Example: quickdraw fetch --classes animals10 --out data/raw --max-per-class 5000"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.command("classes")(classes_cmd.classes)
app.command("fetch")(fetch_cmd.fetch)
app.command("prepare")(prepare_cmd.prepare)
app.command("stats")(stats_cmd.stats)
app.command("show")(show_cmd.show)
app.add_typer(cache_cmd.app, name="cache")
app.command("train")(train_cmd.train)
app.command("evaluate")(evaluate_cmd.evaluate)
app.command("predict")(predict_cmd.predict)
app.add_typer(export_cmd.app, name="export")


def main() -> None:
    """Console-script entry point."""
    logging.basicConfig(level=os.environ.get("QUICKDRAW_LOG", "WARNING"), format="%(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":
    main()
