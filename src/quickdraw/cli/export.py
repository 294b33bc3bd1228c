"""`quickdraw export ...`: a cached dataset in other tools' formats."""

from __future__ import annotations

from pathlib import Path

import typer

from quickdraw.cli._common import console, friendly_errors, lit, print_json
from quickdraw.cli.show import _class_list

app = typer.Typer(
    help="Export a cached dataset to other tools' formats.\n\nExample: quickdraw export sketchrnn --cache animals10 --out animals10.npz\n\nExample: quickdraw export bitmap --cache animals10 --size 28 --out bitmaps28",
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
    rule = doc["length_rule"]
    console.print(f"wrote {lit(doc['out'])} from {lit(doc['cache'])}/{lit(doc['version'])}: train {c['train']}, "
                  f"valid {c['valid']}, test {c['test']}; length rule max_len={rule['max_len']} "
                  f"on_long={rule['on_long']}" + ("" if rule["matches_magenta"] else
                                                  " (magenta drops long drawings: prepare with --on-long drop to match)"),
                  highlight=False, soft_wrap=True)


@app.command("bitmap")
def bitmap(
    cache: str = typer.Option(..., "--cache", help="A cache name, name directory or version directory."),
    out: Path = typer.Option(..., "--out", "-o", help="The folder to write <word>.npy files into."),
    size: int = typer.Option(28, "--size", help="Bitmap side in pixels (Google's numpy_bitmap files: 28)."),
    classes: str = typer.Option(None, "--classes", "-c", help="Only these classes: a comma list, a preset or @file (default: all)."),
    line_width: float = typer.Option(None, "--line-width", help="Line width in px of the 256x256 frame (default 16)."),
    version: str = typer.Option("latest", "--version", help="Cache version (an id or a unique prefix)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON document on stdout."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Write into a folder quickdraw did not create."),
) -> None:
    """Write Google's numpy_bitmap layout: <word>.npy (N x size*size uint8), <word>.key_ids.npy, <word>.splits.npy.

    Example: quickdraw export bitmap --cache animals10 --size 28 --out bitmaps28

    Rendered anti-aliased from the cache's simplified stroke-3 drawings (round-capped lines, 8x8 supersampling);
    read back with qd.load("bitmaps28", split="train", format="bitmap").
    """
    from quickdraw.pipeline.export import export_bitmap

    with friendly_errors():
        doc = export_bitmap(cache, out, size=size, classes=_class_list(classes), version=version,
                            overwrite=overwrite, line_width=line_width)
    if as_json:
        print_json(doc)
        return
    n = sum(sum(c.values()) for c in doc["counts"].values())
    console.print(f"wrote {len(doc['classes'])} class file(s), {n} bitmaps of {doc['size']}x{doc['size']}, into "
                  f"{lit(doc['out'])} from {lit(doc['cache'])}/{lit(doc['version'])}", highlight=False, soft_wrap=True)
