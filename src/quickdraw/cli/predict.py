"""`quickdraw predict`: classify ndjson drawings with a trained checkpoint."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from quickdraw.cli._common import console, friendly_errors, lit, out_console, print_json, table


def predict(
    file: str = typer.Argument("-", help="ndjson drawings in the dataset's format (a 'drawing' key per line), or - for stdin."),
    checkpoint: Path = typer.Option(Path("models/best.pt"), "--checkpoint", help="Checkpoint to use."),
    # Typed str and checked in the body: a bad value then gets the same one-line error as train's params.
    top_k_text: str = typer.Option("3", "--top-k", metavar="INTEGER", help="Classes to show per drawing (>= 1)."),
    device: str = typer.Option("cpu", "--device", help="cpu, auto (cuda, then mps, then cpu), cuda, cuda:N or mps."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document (a list, one item per drawing)."),
) -> None:
    """Print the top-k classes with probabilities for each drawing.

    Example: quickdraw predict --checkpoint models/best.pt cat.ndjson --top-k 3

    Reads stdin with "-" (e.g. head -5 cat.ndjson | quickdraw predict -). Drawings the model's training
    length rules would drop (fewer than min_len points, or more than max_len with on_long: drop) are listed
    as not classified, with the reason ("skipped" in --json).
    """
    with friendly_errors():
        from quickdraw.models import load_checkpoint
        from quickdraw.pipeline.predict import predict_records, read_ndjson, require_stroke3
        from quickdraw.pipeline.train import check_device, check_number, pick_device

        top_k: int = check_number("--top-k", top_k_text, "int", 1)
        model, info = load_checkpoint(checkpoint, map_location=pick_device(check_device(device, "--device")))
        require_stroke3(model, str(checkpoint))
        if file == "-":
            preds = predict_records(model, info, read_ndjson(sys.stdin, "<stdin>"), top_k=top_k)
        else:
            path = Path(file)
            if not path.is_file():
                raise FileNotFoundError(f"input not found: {path}")
            with open(path, encoding="utf-8") as f:
                preds = predict_records(model, info, read_ndjson(f, str(path)), top_k=top_k, source=str(path))
    bad = [p for p in preds if p.error is not None]
    if as_json:
        print_json([p.to_dict() for p in preds])
        _bad_lines_exit(bad, len(preds))
        return
    t = table()
    t.add_column("line", justify="right", no_wrap=True)
    # Class names wrap (at spaces, else folded) so that --top-k 3 with long names still fits 80 columns.
    t.add_column("word", overflow="fold")
    for i in range(min(top_k, len(info["classes"]))):
        t.add_column(f"#{i + 1}", overflow="fold")
    for p in preds:
        word = lit(p.record.get("word", ""))
        if p.skipped is not None:
            # Dropped by the training length rules: say so in the row instead of leaving it blank.
            t.add_row(str(p.line), word, f"[yellow]not classified: {lit(p.skipped)}[/]")
            continue
        t.add_row(str(p.line), word, *[f"{lit(c)} {prob:.3f}" for c, prob in p.top])
    out_console.print(t)
    _bad_lines_exit(bad, len(preds))


def _bad_lines_exit(bad: list[Any], total: int) -> None:
    # Bad input lines were reported in their rows and the others classified; the exit code still says so,
    # so that a script piping drawings in notices.
    if bad:
        console.print(f"[bold red]error:[/] {len(bad)} of {total} input line(s) could not be read "
                      f"(first: {lit(bad[0].skipped or bad[0].error)})", highlight=False, soft_wrap=True)
        raise typer.Exit(2)
