"""`quickdraw train`: train the GRU classifier on a cached dataset (the DVC `train` stage)."""

from __future__ import annotations

from pathlib import Path

import typer

from quickdraw.cli._common import console, friendly_errors, print_json


def train(
    cache: str = typer.Option(..., "--cache", help="Cache name (under --cache-root) or a cache version directory."),
    cache_root: Path = typer.Option(None, "--cache-root", help="Cache root (default $QUICKDRAW_CACHE or the user cache dir)."),
    out: Path = typer.Option(Path("models"), "--out", help="Directory for best.pt and last.pt."),
    params_file: Path = typer.Option(None, "--params", help="params.yaml; its `train` section and top-level `seed` are read."),
    sets: list[str] = typer.Option([], "--set", help="Override a param, e.g. --set train.hidden=128 (repeatable)."),
    live_dir: Path = typer.Option(Path("dvclive"), "--live-dir", help="Where dvclive writes per-epoch metrics and plots."),
    as_json: bool = typer.Option(False, "--json", help="Print the run summary as JSON on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Train the bidirectional GRU classifier on a cache's train split (validated on its val split).

    Example: quickdraw train --cache animals10 --out models --params params.yaml --set train.epochs=5

    On several GPUs or processes: torchrun --nproc_per_node=2 -m quickdraw train --cache animals10 --out models
    (DDP; only rank 0 writes files and prints).
    """
    import os

    # Under torchrun only rank 0 prints: the other ranks train silently and exit with the same status.
    rank = os.environ.get("RANK", "0").strip() or "0"
    if rank != "0":
        quiet, as_json = True, False
        import logging

        logging.getLogger("quickdraw").setLevel(logging.WARNING)
    with friendly_errors():
        from quickdraw.pipeline.train import load_params
        from quickdraw.pipeline.train import train as run_train

        params = load_params(params_file, sets)
        if quiet or as_json:
            result = run_train(cache, out, params=params, root=cache_root, live_dir=live_dir)
        else:
            with _ProgressBar() as bar:
                result = run_train(cache, out, params=params, root=cache_root, live_dir=live_dir, progress=bar)
    if rank != "0":
        return
    if as_json:
        print_json(result.to_dict())
        return
    best = result.best_metrics
    console.print(
        f"[bold green]done[/] {result.epochs_run} epochs in {result.seconds:.0f}s"
        f"{' (early stop)' if result.stopped_early else ''}; best epoch {result.best_epoch}: "
        + ", ".join(f"{k}={v:.4f}" for k, v in best.items())
        + f"\n  {result.best_path}\n  {result.last_path}",
        highlight=False,
    )


class _ProgressBar:
    """A rich progress bar fed by the library's progress callback (the library itself never prints)."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TimeRemainingColumn(), console=console, transient=False,
        )
        self.task: int | None = None

    def __enter__(self) -> _ProgressBar:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)  # type: ignore[arg-type]

    def __call__(self, ev: object) -> None:
        from quickdraw.pipeline.train import ProgressEvent

        assert isinstance(ev, ProgressEvent)
        label = f"{ev.epoch}/{ev.epochs}"
        if ev.kind == "epoch_start":
            self.task = self.progress.add_task("train", total=ev.steps, epoch=label, loss="-")
        elif ev.kind == "step" and self.task is not None:
            self.progress.update(self.task, completed=ev.step, loss=f"{ev.loss:.4f}")
        elif ev.kind == "epoch_end" and self.task is not None:
            m = ev.metrics
            val = f"  val loss {m['val_loss']:.4f} top1 {m['val_top1']:.3f}" if "val_loss" in m else ""
            self.progress.update(self.task, completed=ev.steps, loss=f"{ev.loss:.4f}{val}")
