"""`quickdraw prepare`: fetched drawings -> stroke-3 / stroke-5 shards per split."""

from __future__ import annotations


import typer

from quickdraw.cli._common import console, friendly_errors, lit, out_console, print_json, table
from quickdraw.parallel import SCHEDULER_ENV


def _parse_fractions(text: str) -> tuple[float, float, float]:
    try:
        parts = [float(p) for p in text.split(",")]
    except ValueError:
        raise typer.BadParameter(f"expected three comma-separated numbers like 0.8,0.1,0.1, got {text!r}") from None
    if len(parts) != 3:
        raise typer.BadParameter(f"expected three fractions (train,val,test), got {len(parts)}")
    return parts[0], parts[1], parts[2]


def prepare(
    in_dir: str = typer.Option(..., "--in", help="Fetch output directory (one folder per class), or an fsspec URL (gs://...)."),
    out_dir: str = typer.Option(..., "--out", help="Output directory for stroke3/, stroke5/ and _manifest.json, or an fsspec URL."),
    classes: str = typer.Option(None, "--classes", help="Class spec (preset, comma list, @file); default: every fetched class."),
    min_len: int = typer.Option(6, "--min-len", min=0, max=65535, help="Drop drawings with fewer stroke-3 steps (points)."),
    max_len: int = typer.Option(250, "--max-len", min=1, max=65535, help="Longest stroke-3 sequence kept (stroke-5 adds one end step)."),
    on_long: str = typer.Option("truncate", "--on-long", help="What to do with longer drawings: truncate or drop."),
    fractions: str = typer.Option("0.8,0.1,0.1", "--fractions", help="train,val,test shares (sum 1)."),
    seed: int = typer.Option(0, "--seed", help="Split seed (a drawing's split depends only on key_id and seed)."),
    formats: str = typer.Option("stroke3,stroke5", "--formats", help="Formats to write (comma list)."),
    normalize: bool = typer.Option(False, "--normalize", help="Store Sketch-RNN's scale factor (train std of dx, dy) in the metadata."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON document on stdout."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Write into an existing folder that quickdraw did not create."),
    scheduler: str = typer.Option(None, "--scheduler", help=f"Run the work on a Dask cluster: tcp://HOST:8786 or a scheduler file (default: ${SCHEDULER_ENV}; unset: this machine)."),
) -> None:
    """Turn fetched drawings into stroke-3/stroke-5 Parquet shards with length rules and train/val/test splits.

    Example: quickdraw prepare --in data/raw --out data/strokes --max-len 250 --on-long truncate --fractions 0.8,0.1,0.1

    On a Dask cluster: QUICKDRAW_SCHEDULER=tcp://HOST:8786 quickdraw prepare --in gs://b/raw --out gs://b/strokes
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from quickdraw.parallel import cluster_executor
    from quickdraw.pipeline.prepare import prepare as run_prepare

    fr = _parse_fractions(fractions)
    if on_long not in ("truncate", "drop"):
        raise typer.BadParameter("must be 'truncate' or 'drop'", param_hint="--on-long")
    fmts = tuple(f.strip() for f in formats.split(",") if f.strip())
    with friendly_errors(out_dir):
        # Progress goes to stderr and only to a terminal, so logs and --json stay clean.
        with Progress(
            TextColumn("[bold]prepare[/] {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=not console.is_terminal,
            transient=True,
        ) as bar, cluster_executor(scheduler) as executor:
            task = bar.add_task("", total=None)

            def on_progress(done: int, total: int, word: str) -> None:
                bar.update(task, completed=done, total=total, description=word)

            result = run_prepare(
                in_dir,
                out_dir,
                classes=classes,
                min_len=min_len,
                max_len=max_len,
                on_long=on_long,  # type: ignore[arg-type]
                fractions=fr,
                seed=seed,
                formats=fmts,
                normalize=normalize,
                progress=on_progress,
                overwrite=overwrite,
                executor=executor,
            )
    if as_json:
        print_json(result.to_dict())
        return
    # Headers wrap onto two lines and only the class column folds: nine columns fit 80 with 6-digit counts.
    t = table(f"prepare -> {lit(result.out_dir)}")
    t.add_column("class", overflow="fold", ratio=1, min_width=8)
    for col in ("read", "dupes", "too\nshort", "too long\n(dropped)", "trunc-\nated", "train", "val", "test"):
        t.add_column(col, justify="right", no_wrap=True)
    for word, c in result.per_class.items():
        t.add_row(lit(word), *(str(c[k]) for k in ("read", "duplicates", "too_short", "too_long_dropped", "truncated", "train", "val", "test")))
    t.add_row(
        "[bold]total[/]",
        *(str(v) for v in (result.read, result.duplicates, result.too_short, result.too_long_dropped, result.truncated)),
        *(str(result.split_counts[s]) for s in ("train", "val", "test")),
    )
    out_console.print(t)
    if result.scale is not None:
        out_console.print(f"scale (train std of dx, dy): {result.scale:.4f}", highlight=False)
    out_console.print(f"input fingerprint {result.input_fingerprint}", highlight=False)
