"""`quickdraw classes`: list presets and the 345 categories."""

from __future__ import annotations

import typer

from quickdraw.classes import PRESETS, all_classes, resolve_classes
from quickdraw.cli._common import friendly_errors, lit, out_console, print_json, table


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
                    out_console.print(n, highlight=False, markup=False, soft_wrap=True)
            return
    if as_json:
        print_json({"presets": {k: list(v) for k, v in PRESETS.items()}, "classes": list(all_classes())})
        return
    t = table("presets")
    t.add_column("preset", no_wrap=True)
    t.add_column("n", justify="right", no_wrap=True)
    t.add_column("classes", ratio=1)  # wraps at the ", " between names, so a name is never cut
    t.add_row("all", str(len(all_classes())), "every category")
    for name, members in PRESETS.items():
        t.add_row(lit(name), str(len(members)), lit(", ".join(members)))
    out_console.print(t)
    out_console.print(f"[bold]{len(all_classes())} categories:[/] " + lit(", ".join(all_classes())), highlight=False)
