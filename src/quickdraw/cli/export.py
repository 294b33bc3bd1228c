"""`quickdraw export ...`: a cached dataset in other tools' formats."""

from __future__ import annotations

from pathlib import Path

import typer

from quickdraw.cli._common import console, friendly_errors, lit, print_json
from quickdraw.cli.show import _class_list

app = typer.Typer(
    help="Export a cached dataset to other tools' formats.\n\nExample: quickdraw export sketchrnn --cache animals10 --out animals10.npz",
    no_args_is_help=True,
)


@app.command("sketchrnn")
def sketchrnn(
    cache: str = typer.Option(..., "--cache", help="A cache name, name directory or version directory."),
    out: Path = typer.Option(..., "--out", "-o", help="The .npz file to write."),
    classes: str = typer.Option(None, "--classes", "-c", help="Only these classes: a comma list, a preset or @file (default: all)."),
    version: str = typer.Option("latest", "--version", help="Cache version (an id or a unique prefix)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON document on stdout."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file."),
) -> None:
    """Write a Sketch-RNN .npz (keys train/valid/test, object arrays of int16 [L, 3] stroke-3), as published.

    Example: quickdraw export sketchrnn --cache animals10 --classes cat --out cat.npz

    Read it as magenta does: np.load("cat.npz", encoding="latin1", allow_pickle=True)["train"]
    """
    from quickdraw.pipeline.export import export_sketchrnn

    with friendly_errors():
        doc = export_sketchrnn(cache, out, classes=_class_list(classes), version=version, overwrite=overwrite)
    if as_json:
        print_json(doc)
        return
    c = doc["counts"]
    console.print(f"wrote {lit(doc['out'])} from {lit(doc['cache'])}/{lit(doc['version'])}: train {c['train']}, "
                  f"valid {c['valid']}, test {c['test']}", highlight=False, soft_wrap=True)
