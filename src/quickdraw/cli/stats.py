"""`quickdraw stats`: per class and split counts, lengths, countries and drops."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from quickdraw.cli._common import friendly_errors, out_console, print_json


def _counts(m: dict[str, Any] | None) -> str:
    return ", ".join(f"{k} {v}" for k, v in (m or {}).items() if v) or "0"


def _num(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:.0f}" if float(v).is_integer() else f"{v:.1f}"


def stats(
    path_or_name: str = typer.Argument(..., help="A fetch output dir, a prepare output dir, or a cache name / version dir."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
    plots: Path = typer.Option(None, "--plots", help="Also write histograms of points and strokes per class (PNG) into DIR."),
) -> None:
    """Show what is in the data, per class and split: count, recognized share, lengths, top countries, drops.

    Example: quickdraw stats data/strokes

    Histograms too: quickdraw stats data/raw --plots plots/
    """
    from quickdraw.pipeline.stats import compute_stats

    with friendly_errors():
        doc = compute_stats(path_or_name)
        if plots is not None:
            from quickdraw.pipeline.stats_plots import write_length_plots

            doc["plots"] = [str(p) for p in write_length_plots(path_or_name, plots)]
    if as_json:
        print_json(doc)
        return
    has_steps = any("steps" in r for r in doc["rows"])
    table = Table(title=f"{doc['kind']}: {doc['path']}  ({doc['total']} drawings, {len(doc['classes'])} classes)")
    cols = ["class", "split", "n", "recognized", "points p5/p50/p95/max", "strokes p50/max"]
    if has_steps:
        cols.append("steps p50/max")
    cols.append("top countries")
    for c in cols:
        table.add_column(c, justify="right" if c not in ("class", "split", "top countries") else "left")
    for r in doc["rows"]:
        pts = r["points"]
        cells = [
            r["word"],
            r["split"],
            str(r["count"]),
            "-" if r["recognized_share"] is None else f"{100 * r['recognized_share']:.1f}%",
            "/".join(_num(pts[k]) for k in ("p5", "p50", "p95", "max")),
            f"{_num(r['strokes']['p50'])}/{_num(r['strokes']['max'])}",
        ]
        if has_steps:
            cells.append(f"{_num(r['steps']['p50'])}/{_num(r['steps']['max'])}" if "steps" in r else "-")
        cells.append(", ".join(f"{cc or '?'} {n}" for cc, n in r["top_countries"]))
        table.add_row(*cells)
    out_console.print(table)
    out_console.print("splits: " + ", ".join(f"{s} {n}" for s, n in doc["splits"].items()), highlight=False)
    drops = doc.get("drops") or {}
    if doc["kind"] == "prepare" and drops:
        dt = Table(title="dropped by prepare")
        for c in ("class", "read", "duplicates", "too short", "too long (dropped)", "truncated", "kept"):
            dt.add_column(c, justify="left" if c == "class" else "right")
        for word, d in drops.items():
            dt.add_row(word, *(_num(d.get(k)) for k in ("read", "duplicates", "too_short", "too_long_dropped", "truncated", "kept")))
        out_console.print(dt)
    elif doc["kind"] == "fetch" and drops:
        dt = Table(title="filtered / rejected at fetch")
        for c in ("class", "read", "filtered", "rejected"):
            dt.add_column(c)
        for word, d in drops.items():
            dt.add_row(word, _num(d.get("read")), _counts(d.get("filtered")), _counts(d.get("rejected")))
        out_console.print(dt)
    if doc.get("plots"):
        out_console.print("plots: " + ", ".join(doc["plots"]), highlight=False)
