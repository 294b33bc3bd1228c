"""`quickdraw sketch ...`: train Sketch-RNN on a class and draw new doodles (train, sample, evaluate, stage)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from quickdraw.cli._common import console, friendly_errors, lit, print_json

app = typer.Typer(
    help="Sketch-RNN: learn a class of drawings and draw new ones.\n\n"
         "Example: quickdraw sketch train --cache animals10 --classes cat --out models/sketch",
    no_args_is_help=True,
)


def _progress_wanted(quiet: bool, as_json: bool) -> bool:
    # A bar only for a person watching: not under --quiet/--json, not into a log file or a DVC run's pipe.
    return not (quiet or as_json) and sys.stderr.isatty()


@app.command("train")
def train(
    cache: str = typer.Option(..., "--cache", help="Cache name (under --cache-root) or a cache version directory."),
    classes: str = typer.Option(None, "--classes", "-c", help="Classes to learn: a name, comma list, preset or @file (default: sketch.classes of --params, else cat)."),
    out: Path = typer.Option(Path("models/sketch"), "--out", help="Folder for sketch.pt (best), last.pt and metrics.json."),
    cache_root: Path = typer.Option(None, "--cache-root", help="Cache root (default $QUICKDRAW_CACHE or the user cache dir)."),
    version: str = typer.Option("latest", "--version", help="Cache version (an id or a unique prefix)."),
    params_file: Path = typer.Option(None, "--params", help="params.yaml; its `sketch` section and top-level `seed` are read."),
    sets: list[str] = typer.Option([], "--set", help="Override a param, e.g. --set sketch.hidden=256 (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print the run summary as one JSON document on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar (there is none when stderr is not a terminal)."),
) -> None:
    """Train the Sketch-RNN decoder (LSTM + 20-component bivariate mixture) on a cache's stroke-5 train split.

    Example: quickdraw sketch train --cache animals10 --classes cat --out models/sketch --set sketch.steps=5000
    """
    with friendly_errors(out):
        from quickdraw.pipeline.sketch import load_sketch_params
        from quickdraw.pipeline.sketch import train as run

        params = load_sketch_params(params_file, sets)
        kw: dict[str, Any] = {"params": params, "classes": classes, "root": cache_root, "version": version}
        if _progress_wanted(quiet, as_json):
            with _Bar() as bar:
                result = run(cache, out, progress=bar, **kw)
        else:
            result = run(cache, out, **kw)
    if as_json:
        print_json(result.to_dict())
        return
    val = ", ".join(f"{k}={v:.4f}" for k, v in result.best_val.items())
    console.print(f"[bold green]done[/] {result.steps} steps on {result.train_sequences} drawings of "
                  f"{lit(', '.join(result.classes))} in {result.seconds:.0f}s; best step {result.best_step}"
                  f"{': ' + val if val else ''}\n  {lit(result.checkpoint)}", highlight=False, soft_wrap=True)


@app.command("sample")
def sample(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="A checkpoint from `quickdraw sketch train` (sketch.pt)."),
    n: int = typer.Option(16, "--n", help="How many sketches (1..1024)."),
    temperature: float = typer.Option(0.4, "--temperature", "-t", help="Randomness, 0 < t <= 10 (0.1 tidy, 1.0 wild)."),
    out: Path = typer.Option(None, "--out", "-o", help="The grid: FILE.png or FILE.svg."),
    animate: Path = typer.Option(None, "--animate", help="Also write FILE.gif drawing the sketches stroke by stroke."),
    seed: int = typer.Option(0, "--seed", help="Random seed (the same seed draws the same sketches)."),
    max_len: int = typer.Option(250, "--max-len", help="Stop a sketch after this many steps if it has not ended."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON document on stdout."),
) -> None:
    """Draw new doodles from a trained Sketch-RNN; each stops at its sampled end of drawing (or --max-len).

    Example: quickdraw sketch sample --checkpoint models/sketch/sketch.pt --n 16 --temperature 0.4 --out grid.png --animate grid.gif
    """
    with friendly_errors(out):
        from quickdraw.pipeline.sketch import check_sketch_param, sample_files

        check_sketch_param("sample_n", n, " (--n)")
        check_sketch_param("temperature", temperature, " (--temperature)")
        check_sketch_param("max_len", max_len, " (--max-len)")
        check_sketch_param("seed", seed, " (--seed)")
        doc = sample_files(checkpoint, out, n=n, temperature=temperature, animate_to=animate, seed=seed,
                           max_len=max_len, overwrite=overwrite)
    if as_json:
        print_json(doc)
        return
    for key in ("out", "animation"):
        if doc[key]:
            console.print(f"wrote {lit(doc[key])}", highlight=False, soft_wrap=True)
    console.print(f"{doc['n']} sketches of {lit(', '.join(doc['classes']))} at temperature {temperature:g}: "
                  f"{doc['ended']} ended by themselves, steps {min(doc['steps'])}..{max(doc['steps'])}",
                  highlight=False, soft_wrap=True)


@app.command("evaluate")
def evaluate(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="A checkpoint from `quickdraw sketch train`."),
    cache: str = typer.Option(..., "--cache", help="The cache to score (its train split fits the marginal baseline)."),
    split: str = typer.Option("test", "--split", help="The split to score."),
    cache_root: Path = typer.Option(None, "--cache-root", help="Cache root (default $QUICKDRAW_CACHE or the user cache dir)."),
    version: str = typer.Option("latest", "--version", help="Cache version (an id or a unique prefix)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON document on stdout."),
) -> None:
    """Per-step NLL on a split: the model against the untrained model and the marginal-offsets baseline.

    Example: quickdraw sketch evaluate --checkpoint models/sketch/sketch.pt --cache animals10 --split test
    """
    with friendly_errors():
        from quickdraw.pipeline.sketch import evaluate as run

        doc = run(checkpoint, cache, split=split, root=cache_root, version=version)
    if as_json:
        print_json(doc)
        return
    from quickdraw.cli._common import table

    t = table(f"NLL per step on {lit(doc['cache'])} {lit(split)} ({doc['sequences']} drawings of "
              f"{lit(', '.join(doc['classes']))}; lower is better)")
    for col in ("model", "nll", "offset nll", "pen ce", "nll dequantized"):
        t.add_column(col, no_wrap=True, justify="left" if col == "model" else "right")
    for key, label in (("model", "trained"), ("untrained", "untrained"), ("marginal", "marginal offsets")):
        r = doc[key]
        t.add_row(label, f"{r['nll']:.4f}", f"{r['offset_nll']:.4f}", f"{r['pen_ce']:.4f}",
                  f"{r['nll_dequantized']:.4f}")
    console.print(t)


@app.command("stage")
def stage(
    cache: str = typer.Option(..., "--cache", help="Cache name (under --cache-root) or a cache version directory."),
    out: Path = typer.Option(Path("models/sketch"), "--out", help="The stage's output folder."),
    cache_root: Path = typer.Option(None, "--cache-root", help="Cache root (default $QUICKDRAW_CACHE or the user cache dir)."),
    params_file: Path = typer.Option(None, "--params", help="params.yaml; its `sketch` section (enabled, classes, ...)."),
    sets: list[str] = typer.Option([], "--set", help="Override a param, e.g. --set sketch.enabled=true (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print the stage status as one JSON document on stdout."),
) -> None:
    """The DVC `sketch` stage: off unless sketch.enabled is true (then it only writes OUT/status.json saying so);
    on, it trains, samples OUT/samples.png and writes OUT/status.json.

    Example: quickdraw sketch stage --cache animals10 --cache-root data/cache --out models/sketch --params params.yaml
    """
    with friendly_errors(out):
        from quickdraw.pipeline.sketch import load_sketch_params, run_stage

        params = load_sketch_params(params_file, sets)
        doc = run_stage(cache, out, params=params, root=cache_root)
    if as_json:
        print_json(doc)
        return
    if not doc["enabled"]:
        console.print(f"sketch stage disabled (sketch.enabled: false): wrote {lit(out / 'status.json')}",
                      highlight=False, soft_wrap=True)
    else:
        console.print(f"sketch: {doc['steps']} steps, wrote {lit(out / 'samples.png')}", highlight=False,
                      soft_wrap=True)


class _Bar:
    """A rich progress bar fed by the library's progress callback."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("[bold]sketch"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("loss {task.fields[loss]}{task.fields[val]}"), TimeRemainingColumn(),
                                 console=console)
        self.task: Any = None
        self.val = ""

    def __enter__(self) -> _Bar:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)  # type: ignore[arg-type]

    def __call__(self, ev: Any) -> None:
        if self.task is None:
            self.task = self.progress.add_task("sketch", total=ev.steps, loss="-", val="")
        if ev.val_nll is not None:
            self.val = f"  val nll {ev.val_nll:.4f}"
        self.progress.update(self.task, completed=ev.step, loss=f"{ev.loss:.4f}", val=self.val)
