"""`quickdraw evaluate`: metrics and plots of a checkpoint on a cache split (the DVC `evaluate` stage)."""

from __future__ import annotations

from pathlib import Path

import typer

from quickdraw.cli._common import friendly_errors, lit, out_console, print_json, table


def evaluate(
    checkpoint: Path = typer.Option(Path("models/best.pt"), "--checkpoint", help="Checkpoint to evaluate."),
    cache: str = typer.Option(None, "--cache", help="Cache name or directory (default: the one the checkpoint was trained on). The version trained on is used; if this cache lacks it, its latest version, with a warning."),
    cache_root: Path = typer.Option(None, "--cache-root", help="Cache root (default $QUICKDRAW_CACHE or the user cache dir)."),
    split: str = typer.Option("test", "--split", help="Split to evaluate."),
    out: Path = typer.Option(Path("eval"), "--out", help="Directory for metrics.json and plots/."),
    # Typed str and checked in the body: a bad value then gets the same one-line error as train's params.
    batch_size: str = typer.Option("512", "--batch-size", metavar="INTEGER", help="Sequences per forward pass (>= 1)."),
    device: str = typer.Option("auto", "--device", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps."),
    as_json: bool = typer.Option(False, "--json", help="Print metrics.json on stdout."),
) -> None:
    """Evaluate a checkpoint: top-1, top-3, per-class accuracy, ECE; confusion/reliability/confidence plots.

    Example: quickdraw evaluate --checkpoint models/best.pt --cache animals10 --out eval
    """
    with friendly_errors():
        from quickdraw.pipeline.evaluate import evaluate as run_evaluate
        from quickdraw.pipeline.train import check_device, check_number

        size = check_number("--batch-size", batch_size, "int", 1)
        device = check_device(device, "--device")
        doc = run_evaluate(checkpoint, cache, out, split=split, root=cache_root, batch_size=size, device=device)
    if as_json:
        print_json(doc)
        return
    t = table(f"{lit(split)}: {doc['n']:,} sequences")
    t.add_column("metric", no_wrap=True)
    t.add_column("value", justify="right", overflow="fold")
    for key in ("top1", "top3", "ece"):
        t.add_row(key, f"{doc[key]:.4f}")
    per = sorted((v, k) for k, v in doc["per_class"].items() if v is not None)
    if per:
        t.add_row("worst class", f"{lit(per[0][1])} {per[0][0]:.3f}")
        t.add_row("best class", f"{lit(per[-1][1])} {per[-1][0]:.3f}")
    out_console.print(t)
    out_console.print(f"wrote {lit(out / 'metrics.json')} and {lit(out / 'plots')}/", highlight=False, soft_wrap=True)
