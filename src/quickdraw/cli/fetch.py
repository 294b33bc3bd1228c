"""`quickdraw fetch`: stream classes from the bucket (or any fsspec URL) into Parquet."""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from quickdraw.cli._common import console, friendly_errors, is_verbose, lit, print_json
from quickdraw.parallel import SCHEDULER_ENV
from quickdraw.sources.defaults import DEFAULT_SOURCE

if TYPE_CHECKING:
    from quickdraw.pipeline.fetch import FetchOptions, FetchResult

# The pipeline (pyarrow, fsspec) and rich's progress/table machinery are imported inside the command, so that
# `quickdraw --help` does not pay for them.
MAX_FAILED_LINES = 10  # more failed classes than this are summed up in one line (the --json output has all)


def fetch(
    classes: str = typer.Option("animals10", "--classes", "-c", help="Preset (animals10, all, ...), comma list, or @file."),
    out: str = typer.Option("data/raw", "--out", "-o", help="Output folder (or an fsspec URL: gs://bucket/raw, s3://..., file://...): one sub-folder of Parquet parts per class."),
    source: str = typer.Option(None, "--source", help=f"Any fsspec URL holding <word>.ndjson (or .bin) files (gs://, https://, a local folder). Default: {DEFAULT_SOURCE}, or full/binary, full/raw for those formats."),
    format: str = typer.Option("ndjson", "--format", help="Source format: ndjson (simplified), binary (full/binary/<word>.bin) or raw (full/raw, with timing)."),
    simplify: bool = typer.Option(False, "--simplify", help="With --format raw: apply the published simplification (0-255, RDP 2.0) and write the standard schema."),
    max_per_class: int = typer.Option(None, "--max-per-class", "-n", min=0, help="Stop reading a class once N drawings are accepted (0: no cap)."),
    recognized_only: bool = typer.Option(False, "--recognized-only/--all", help="Keep only drawings the game recognized."),
    countries: str = typer.Option(None, "--countries", help="Keep only these country codes, e.g. US,GB,DE."),
    strict: bool = typer.Option(False, "--strict", help="Stop at the first malformed record (names file, line, reason)."),
    concurrency: int = typer.Option(4, "--concurrency", "-j", min=1, help="Classes fetched at once."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON document on stdout."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Write into an existing folder that quickdraw did not create (files it did not write are still left alone)."),
    scheduler: str = typer.Option(None, "--scheduler", help=f"Run the classes on a Dask cluster: tcp://HOST:8786 or a scheduler file (default: ${SCHEDULER_ENV}; unset: this machine)."),
) -> None:
    """Stream Quick, Draw! classes from the public bucket into Parquet (resumable, re-runs are no-ops).

    Example: quickdraw fetch --classes animals10 --max-per-class 5000 --out data/raw

    Other formats: quickdraw fetch --classes cat --format binary --out data/bin;
    quickdraw fetch --classes cat --format raw [--simplify] --out data/rawtiming

    On a Dask cluster (workers must reach --source and --out, e.g. a bucket or a shared folder):
    QUICKDRAW_SCHEDULER=tcp://HOST:8786 quickdraw fetch --classes all --out gs://my-bucket/raw

    GCS endpoint override (a mirror or an emulator): QUICKDRAW_GCS_ENDPOINT=http://127.0.0.1:4443.
    Ctrl-C stops within a second or two (exit 130); the same command then resumes where it stopped.
    """
    from quickdraw.parallel import cluster_executor
    from quickdraw.pipeline.fetch import fetch as fetch_lib

    if not is_verbose():
        # gcsfs logs every call it gives up on with logger.exception (ERROR, with a traceback), and the same
        # failure then reaches us and is reported in one line naming URL, cause and fix; at ERROR its
        # logger would still print those tracebacks, so for fetch it is quiet unless -v.
        logging.getLogger("gcsfs").setLevel(logging.CRITICAL)

    with friendly_errors():
        opts = _options(source, format, simplify, max_per_class, recognized_only, countries, strict)
    # Bars only on a terminal; otherwise not even rich.progress is imported (~15 ms of a small fetch's start).
    show = sys.stderr.isatty() and not as_json
    bars, on_progress = _progress_bars() if show else (contextlib.nullcontext(), None)
    try:
        with friendly_errors(out), bars, cluster_executor(scheduler) as executor:
            result = fetch_lib(classes, out, opts, concurrency=concurrency, progress=on_progress, overwrite=overwrite,
                               executor=executor)
    except KeyboardInterrupt:
        # The library has already stopped every class at a checkpoint; say so in one line, exit as shells expect.
        console.print("[bold yellow]interrupted:[/] fetch stopped; what was written is kept, and running the same "
                      "command again resumes where it stopped", highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
    if as_json:
        print_json(result.to_dict())
    if result.error is not None:
        # No network, a mirror that is down, access denied: every class would say the same, so say it once.
        console.print(f"[bold red]error:[/] {lit(result.error)}", highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    if not as_json:
        _print_summary(result, out)
    if result.failed:
        raise typer.Exit(1)


def _progress_bars() -> tuple[Any, Any]:
    """A rich ``Progress`` (a context manager) and the callback that feeds it fetch's per-class events."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    bars = Progress(
        TextColumn("[bold]{task.fields[word]:<18}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TextColumn("{task.fields[accepted]:>9,} drawings"),
        TimeRemainingColumn(),
        console=console,
    )
    tasks: dict[str, TaskID] = {}

    def on_progress(word: str, event: str, info: dict[str, Any]) -> None:
        if word not in tasks:
            tasks[word] = bars.add_task("", word=word, accepted=0, total=info.get("size") or None)
        fields: dict[str, Any] = {}
        if "accepted" in info:
            fields["accepted"] = info["accepted"]
        if event == "done" and info.get("size"):
            # Stopping early (max-per-class) is complete, not partial.
            bars.update(tasks[word], completed=info["size"], **fields)
        else:
            bars.update(tasks[word], completed=info.get("bytes", 0), **fields)

    return bars, on_progress


def _print_summary(result: FetchResult, out: str) -> None:
    """The per-class table, narrow enough for 80 columns: long class names wrap, and the per-reason reject
    counts go on lines of their own below it."""
    from rich import box
    from rich.table import Table

    # At 80 columns: no vertical rules, no "read" column (it is accepted + filtered + rejected; --json has it),
    # short status words, so that a class name of up to ~25 characters stays on one line.
    table = Table(title=f"fetched into {lit(str(out))}", title_justify="left", box=box.SIMPLE_HEAD,
                  show_edge=False, collapse_padding=True)
    table.add_column("class", overflow="fold")
    table.add_column("status", no_wrap=True)
    for col in ("accepted", "filtered", "rejected", "MB", "s"):
        table.add_column(col, justify="right", no_wrap=True)
    shown = {"failed": "[red]failed[/]", "not_attempted": "not tried"}
    for c in result.classes:
        table.add_row(
            lit(c.word),
            shown.get(c.status, c.status),
            f"{c.accepted:,}",
            f"{sum(c.filtered.values()):,}",
            f"{sum(c.rejected.values()):,}",
            f"{c.bytes_read / 1e6:.2f}",
            f"{c.seconds:.1f}",
        )
    console.print(table)
    rejected = [c for c in result.classes if c.rejected]
    if rejected:
        console.print("rejected records (see <class>/_quarantine.ndjson):", highlight=False)
        for c in rejected:
            why = ", ".join(f"{k}={v:,}" for k, v in sorted(c.rejected.items()))
            console.print(f"  {lit(c.word)}: {why}", highlight=False, soft_wrap=True)
    failed = result.failed
    for c in failed[:MAX_FAILED_LINES]:
        console.print(f"[bold red]failed:[/] {lit(c.word)}: {lit(c.error or '')}", highlight=False, soft_wrap=True)
    if len(failed) > MAX_FAILED_LINES:
        console.print(f"[bold red]failed:[/] ... and {len(failed) - MAX_FAILED_LINES} more classes (--json lists "
                      "every error)", highlight=False)


def _options(source: str | None, format: str, simplify: bool, max_per_class: int | None, recognized_only: bool,
             countries: str | None, strict: bool) -> FetchOptions:
    from quickdraw.pipeline.fetch import FetchOptions

    return FetchOptions(
        source=source,
        format=format,
        simplify=simplify,
        max_per_class=max_per_class or None,
        recognized_only=recognized_only,
        countries=tuple(c.strip().upper() for c in countries.split(",") if c.strip()) if countries else None,
        strict=strict,
    )
