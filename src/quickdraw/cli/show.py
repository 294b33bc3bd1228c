"""`quickdraw show`: a grid of drawings per class, and a GIF replaying them in stroke order."""

from __future__ import annotations

from pathlib import Path

import typer

from quickdraw.cli._common import console, friendly_errors, lit, print_json


def _class_list(spec: str | None) -> list[str] | None:
    """A preset or @file goes through the class resolver; a comma list is taken as written."""
    if not spec:
        return None
    from quickdraw.classes import PRESETS, resolve_classes

    if spec.startswith("@") or spec in PRESETS:
        return resolve_classes(spec)
    return [c.strip() for c in spec.split(",") if c.strip()]


def show(
    path_or_name: str = typer.Argument(..., help="A fetch output dir, a prepare output dir, or a cache name / version dir."),
    out: Path = typer.Option(None, "--out", "-o", help="The grid: FILE.png or FILE.svg (one row per class)."),
    animate: Path = typer.Option(None, "--animate", help="Also write FILE.gif replaying the drawings in stroke order."),
    classes: str = typer.Option(None, "--classes", "-c", help="Classes to show, in order: a comma list, a preset or @file (default: all)."),
    n: int = typer.Option(16, "--n", "-n", min=1, max=1000, help="Drawings per class (the first N in the data; at most 1,000)."),
    split: str = typer.Option("train", "--split", help="Split of a prepare output or a cache (train, val, test)."),
    version: str = typer.Option("latest", "--version", help="Cache version (an id or a unique prefix)."),
    as_json: bool = typer.Option(False, "--json", help="Print what was written as one JSON document on stdout."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file."),
) -> None:
    """Draw the first N drawings of each class as a grid (PNG/SVG) and optionally a stroke-order GIF.

    Example: quickdraw show data/raw --classes cat,snake --n 8 --out grid.png --animate grid.gif

    Also: quickdraw show animals10 --split val --out val.svg   (a cache by name)
    """
    from quickdraw.pipeline.show import show as show_lib

    with friendly_errors():
        doc = show_lib(path_or_name, out, animate_to=animate, classes=_class_list(classes), n=n, split=split, overwrite=overwrite,
                       version=version)
    if as_json:
        print_json(doc)
        return
    for key in ("out", "animation"):
        if doc[key]:
            console.print(f"wrote {lit(doc[key])}", highlight=False, soft_wrap=True)
    console.print(f"{doc['kind']}: " + ", ".join(f"{lit(w)} {k}" for w, k in doc["drawings"].items()), highlight=False)
