"""`quickdraw stats`: per class and split counts, lengths, countries and drops."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from quickdraw.cli._common import friendly_errors, lit, out_console, print_json, table

if TYPE_CHECKING:
    from rich.table import Table


def _counts(m: dict[str, Any] | None) -> str:
    return ", ".join(f"{lit(k)} {v}" for k, v in (m or {}).items() if v) or "0"


def _num(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:.0f}" if float(v).is_integer() else f"{v:.1f}"


def _pair(m: dict[str, Any], a: str, b: str) -> str:
    return f"{_num(m[a])}/{_num(m[b])}"


def _countries(top: list[list[Any]], n: int) -> str:
    return ", ".join(f"{lit(cc or '?')} {k}" for cc, k in top[:n])


def stats(
    path_or_name: str = typer.Argument(..., help="A fetch output dir, a prepare output dir, or a cache name / version dir."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
    plots: Path = typer.Option(None, "--plots", help="Also write histograms of points and strokes per class (PNG) into DIR."),
    wide: bool = typer.Option(False, "--wide", "-w", help="All columns (points p5/p50/p95/max, three top countries), wider than 80 columns."),
) -> None:
    """Show what is in the data, per class and split: count, recognized share, lengths, top countries, drops.

    Example: quickdraw stats data/strokes

    Histograms too: quickdraw stats data/raw --plots plots/
    """
    with friendly_errors():
        # Imported here, not at module level: polars and numpy are not paid by `quickdraw --help`.
        from quickdraw.pipeline.stats import compute_stats

        doc = compute_stats(path_or_name)
        if plots is not None:
            from quickdraw.pipeline.stats_plots import write_length_plots

            doc["plots"] = [str(p) for p in write_length_plots(path_or_name, plots)]
    if as_json:
        print_json(doc)
        return
    console = out_console if not wide else _wide_console()
    console.print(_rows_table(doc, wide))
    console.print("splits: " + ", ".join(f"{lit(s)} {n}" for s, n in doc["splits"].items()), highlight=False)
    drops = doc.get("drops") or {}
    if doc["kind"] == "prepare" and drops:
        dt = table("dropped by prepare")
        dt.add_column("class", overflow="fold", ratio=1, min_width=8)
        for c in ("read", "dupes", "too short", "too long (dropped)", "truncated", "kept"):
            dt.add_column(c, justify="right")
        for word, d in drops.items():
            dt.add_row(lit(word), *(_num(d.get(k)) for k in ("read", "duplicates", "too_short", "too_long_dropped", "truncated", "kept")))
        console.print(dt)
    elif doc["kind"] == "fetch" and drops:
        dt = table("filtered / rejected at fetch")
        dt.add_column("class", overflow="fold", ratio=1, min_width=8)
        dt.add_column("read", justify="right")
        dt.add_column("filtered", overflow="fold", ratio=1)
        dt.add_column("rejected", overflow="fold", ratio=1)
        for word, d in drops.items():
            dt.add_row(lit(word), _num(d.get("read")), _counts(d.get("filtered")), _counts(d.get("rejected")))
        console.print(dt)
    if doc.get("plots"):
        console.print("plots: " + ", ".join(lit(p) for p in doc["plots"]), highlight=False)


def _rows_table(doc: dict[str, Any], wide: bool) -> Table:
    """One row per (class, split). Default: what fits 80 columns (median and max lengths, the top country);
    ``wide``: every statistic."""
    has_steps = any("steps" in r for r in doc["rows"])
    t = table(f"{doc['kind']}: {lit(doc['path'])} ({doc['total']:,} drawings, {len(doc['classes'])} classes)")
    # Only the class column may wrap (at spaces, else folded): numbers are never cut.
    t.add_column("class", overflow="fold", ratio=1, min_width=8)
    t.add_column("split", no_wrap=True)
    for c in ("n", "recog."):
        t.add_column(c, justify="right", no_wrap=True)
    if wide:
        t.add_column("points p5/p50/p95/max", justify="right", no_wrap=True)
        t.add_column("strokes p50/max", justify="right", no_wrap=True)
        if has_steps:
            t.add_column("steps p50/max", justify="right", no_wrap=True)
        t.add_column("top countries", no_wrap=True)
    else:
        t.add_column("points\np50/max", justify="right", no_wrap=True)
        t.add_column("strokes\np50/max", justify="right", no_wrap=True)
        if has_steps:
            t.add_column("steps\np50/max", justify="right", no_wrap=True)
        t.add_column("top\ncountry", no_wrap=True)
    for r in doc["rows"]:
        pts = r["points"]
        cells = [
            lit(r["word"]),
            lit(r["split"]),
            f"{r['count']:,}",
            "-" if r["recognized_share"] is None else f"{100 * r['recognized_share']:.1f}%",
            "/".join(_num(pts[k]) for k in ("p5", "p50", "p95", "max")) if wide else _pair(pts, "p50", "max"),
            _pair(r["strokes"], "p50", "max"),
        ]
        if has_steps:
            cells.append(_pair(r["steps"], "p50", "max") if "steps" in r else "-")
        cells.append(_countries(r["top_countries"], 3 if wide else 1))
        t.add_row(*cells)
    return t


def _wide_console() -> Any:
    """A stdout console at least 160 columns wide: --wide output is meant to be read with a pager or a
    wide window, never cut to the terminal."""
    from rich.console import Console

    return Console(width=max(out_console.width, 160))
