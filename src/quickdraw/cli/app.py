"""The ``quickdraw`` command: a thin Typer shell over the library.

Each command lives in its own module under ``quickdraw.cli`` and only parses options, calls one library
function and renders the result (rich tables, or one JSON document with ``--json``).

Start-up cost matters here (``quickdraw --help`` is run far more often than any stage): Typer needs every
command's signature to build the app, so the command modules are imported, but each of them imports its
library function (numpy, pyarrow, numba, torch, matplotlib ...) inside the command body, never at module
level. ``tests/unit/test_startup.py`` holds every command module to that; ``benchmarks/bench_startup.py``
measures it.
"""

from __future__ import annotations

import typer

from quickdraw.cli import cache as cache_cmd
from quickdraw.cli import classes as classes_cmd
from quickdraw.cli import evaluate as evaluate_cmd
from quickdraw.cli import export as export_cmd
from quickdraw.cli import fetch as fetch_cmd
from quickdraw.cli import predict as predict_cmd
from quickdraw.cli import prepare as prepare_cmd
from quickdraw.cli import serve as serve_cmd
from quickdraw.cli import show as show_cmd
from quickdraw.cli import sketch as sketch_cmd
from quickdraw.cli import stats as stats_cmd
from quickdraw.cli import train as train_cmd
from quickdraw.cli._common import configure_logging

app = typer.Typer(
    name="quickdraw",
    help=(
        "Quick, Draw! to training-ready, versioned, cached sequence datasets.\n\n"
        "Example: quickdraw fetch --classes animals10 --out data/raw --max-per-class 5000"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain (click) help, not rich panels: rendering help through rich imports ~0.12 CPU-s of rich that
    # `--help` otherwise never needs (0.22 -> 0.09 CPU-s for a bare 15-command app), and at 80 columns the
    # panels squeeze option help into a narrow column and cut long defaults with an ellipsis.
    rich_markup_mode=None,
)


@app.callback()
def _root(
    verbose: bool = typer.Option(
        False, "--verbose", "-v",
        help="Log quickdraw (DEBUG) and its libraries (INFO: gcsfs, fsspec, aiohttp, ...) to stderr, and show "
             "the traceback behind an error. Without it libraries log errors only. QUICKDRAW_LOG=LEVEL sets "
             "quickdraw's own level either way.",
    ),
) -> None:
    # No docstring: Typer would show it instead of the app's help above.
    configure_logging(verbose)


app.command("classes")(classes_cmd.classes)
app.command("fetch")(fetch_cmd.fetch)
app.command("prepare")(prepare_cmd.prepare)
app.command("stats")(stats_cmd.stats)
app.command("show")(show_cmd.show)
app.add_typer(cache_cmd.app, name="cache")
app.command("train")(train_cmd.train)
app.command("evaluate")(evaluate_cmd.evaluate)
app.command("predict")(predict_cmd.predict)
app.command("serve")(serve_cmd.serve)
app.add_typer(export_cmd.app, name="export")
app.add_typer(sketch_cmd.app, name="sketch")


def main() -> None:
    """Console-script entry point."""
    # Configured here too (not only in the callback) so that a failure while Typer parses the command line
    # is logged the same way; the callback then refines it once --verbose is known.
    configure_logging(False)
    app()


if __name__ == "__main__":
    main()
