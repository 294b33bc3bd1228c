"""`quickdraw classes`: list presets and the 345 categories."""

from __future__ import annotations

import typer
from rich.table import Table

from quickdraw.classes import PRESETS, all_classes, resolve_classes
from quickdraw.cli._common import friendly_errors, out_console, print_json


def classes(
    spec: str = typer.Argument(None, help="Optional class spec to resolve (preset, comma list or @file)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout."),
) -> None:
    """List the presets and the 345 categories, or resolve a class spec.

    Example: quickdraw classes animals10
    """
    with friendly_errors():
        if spec:
            names = resolve_classes(spec)
            if as_json:
                print_json(names)
            else:
                for n in names:
                    out_console.print(n, highlight=False)
            return
    if as_json:
        print_json({"presets": {k: list(v) for k, v in PRESETS.items()}, "classes": list(all_classes())})
        return
    table = Table(title="presets")
    table.add_column("preset")
    table.add_column("n", justify="right")
    table.add_column("classes")
    table.add_row("all", str(len(all_classes())), "every category")
    for name, members in PRESETS.items():
        table.add_row(name, str(len(members)), ", ".join(members))
    out_console.print(table)
    out_console.print(f"[bold]{len(all_classes())} categories:[/] " + ", ".join(all_classes()), highlight=False)
