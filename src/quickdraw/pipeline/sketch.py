"""The Sketch-RNN stage: train the decoder on a cache's stroke-5 split, sample a grid, measure the NLL.

* :func:`train` -- cache (stroke-5) -> ``OUT/sketch.pt`` (best validation NLL), ``OUT/last.pt``,
  ``OUT/metrics.json``; the knobs are :class:`SketchParams` (params.yaml's ``sketch`` section). Adam, the learning
  rate decaying per step as magenta's ``(lr - min_lr) * decay**step + min_lr``, gradients clipped by value
  (``grad_clip``, magenta's ``tf.clip_by_value``), per-sequence random x/y scaling (``augment_scale``, magenta's
  ``random_scale_factor``), length-bucketed batches.
* :func:`sample_files` -- checkpoint -> a PNG/SVG grid and optionally a GIF.
* :func:`evaluate` -- the per-step NLL on a split for the model and two baselines: the untrained model, and
  :class:`~quickdraw.models.sketch.MarginalBaseline` (the train split's marginal offset mixture and pen
  frequencies, no memory).
* :func:`run_stage` -- what the DVC ``sketch`` stage runs: with ``sketch.enabled: false`` (the default) it only
  writes ``OUT/status.json`` saying so (under a second, so ``dvc repro`` stays cheap and never fails on it);
  enabled, it trains and writes ``OUT/samples.png`` too.

Normalisation: offsets are divided by the std of dx, dy over the **selected classes' train sequences** (end steps
excluded; exact integer moments, bounded memory), Sketch-RNN's normalising factor for the data it learns.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from quickdraw._ownership import NEW_FOLDER_HINT, claim_output, only_names, output_file, output_lock
from quickdraw.models.sketch import (
    SketchConfig,
    SketchGrid,
    SketchRNN,
    decoder_inputs,
    fit_marginal,
    load_sketch,
    mdn_loss,
    sample,
    save_sketch,
)
from quickdraw.models.sketch import MAX_HIDDEN, MAX_LAYERS, MAX_MIXTURE, MAX_SAMPLE_LEN
from quickdraw.pipeline._params import ParamError, checked_values, params_section, short_repr
from quickdraw.pipeline.train import check_device, check_number, pick_device
from quickdraw.strokes import scale_from_moments, take_ranges, xy_moments

__all__ = [
    "OUTPUT_NAMES",
    "SketchParams",
    "SketchProgress",
    "SketchResult",
    "check_sketch_param",
    "evaluate",
    "evaluate_nll",
    "load_sketch_params",
    "run_stage",
    "sample_files",
    "select_classes",
    "train",
    "train_scale",
]

log = logging.getLogger(__name__)

#: Everything the stage writes into its output folder (and so all it may replace there).
OUTPUT_NAMES = {"sketch.pt", "last.pt", "metrics.json", "samples.png", "status.json"}
#: Train drawings the marginal baseline is fitted on, at most.
MARGINAL_SEQUENCES = 20_000
_INF = math.inf


@dataclass
class SketchParams:
    """The ``sketch`` section of params.yaml (plus the shared top-level ``seed``)."""

    enabled: bool = False
    #: Classes to learn (one model for all of them): a comma list, a preset or @file; None = every class.
    classes: str | None = "cat"
    hidden: int = 512
    num_mixture: int = 20
    layers: int = 1
    dropout: float = 0.0
    min_sigma: float = 1e-3
    batch_size: int = 100
    steps: int = 2000
    lr: float = 1e-3
    lr_decay: float = 0.9999
    min_lr: float = 1e-5
    grad_clip: float = 1.0
    augment_scale: float = 0.15
    #: Sampling cap (steps) and the grid the stage draws.
    max_len: int = 250
    sample_n: int = 16
    temperature: float = 0.4
    #: Validate every this many steps (and at the end) on at most max_val sequences of the val split.
    eval_every: int = 250
    max_val: int = 2000
    device: str = "cpu"
    num_threads: int | None = None
    seed: int = 0

    @classmethod
    def from_dict(cls, d: dict[str, Any], sources: dict[str, str] | None = None) -> SketchParams:
        """Build from a mapping, checking every value; unknown keys are named with the closest valid ones."""
        return cls(**checked_values("sketch", cls, d, sources, check_sketch_param))

    def validate(self) -> None:
        """Raise :class:`ParamError` on any value that cannot run."""
        for f in dataclasses.fields(self):
            check_sketch_param(f.name, getattr(self, f.name))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (stored in checkpoints)."""
        return dataclasses.asdict(self)

    def config(self, scale: float) -> SketchConfig:
        """The model config these params build, for data of normalising factor ``scale``."""
        return SketchConfig(hidden=self.hidden, num_mixture=self.num_mixture, layers=self.layers,
                            dropout=self.dropout, scale=float(scale), min_sigma=self.min_sigma)


# kind, lo, hi, lo_open, hi_open, optional (as pipeline.train's rules)
_RULES: dict[str, tuple[str, float, float, bool, bool, bool]] = {
    "hidden": ("int", 1, MAX_HIDDEN, False, False, False),
    "num_mixture": ("int", 1, MAX_MIXTURE, False, False, False),
    "layers": ("int", 1, MAX_LAYERS, False, False, False),
    "dropout": ("float", 0, 1, False, True, False),
    "min_sigma": ("float", 0, 10, False, False, False),
    "batch_size": ("int", 1, 100_000, False, False, False),
    "steps": ("int", 1, _INF, False, False, False),
    "lr": ("float", 0, 1, True, False, False),
    "lr_decay": ("float", 0, 1, True, False, False),
    "min_lr": ("float", 0, 1, False, False, False),
    "grad_clip": ("float", 0, _INF, False, False, False),
    "augment_scale": ("float", 0, 1, False, True, False),
    "max_len": ("int", 1, MAX_SAMPLE_LEN, False, False, False),
    "sample_n": ("int", 1, 1024, False, False, False),
    "temperature": ("float", 0, 10, True, False, False),
    "eval_every": ("int", 1, _INF, False, False, False),
    "max_val": ("int", 1, _INF, False, False, False),
    "num_threads": ("int", 1, 1024, False, False, True),
    "seed": ("int", 0, 2**32 - 1, False, False, False),
}


def check_sketch_param(key: str, value: Any, where: str = "") -> Any:
    """``value`` checked (and normalised) for the sketch param ``key``; :class:`ParamError` on one line otherwise."""
    if key == "enabled":
        if not isinstance(value, bool):
            raise ParamError(f"invalid sketch.enabled = {short_repr(value)}{where}: expected true or false")
        return value
    if key == "classes":
        if value is None:
            return None
        if isinstance(value, list) and value and all(isinstance(v, str) and v.strip() for v in value):
            return ",".join(v.strip() for v in value)
        if isinstance(value, str) and value.strip():
            return value.strip()
        raise ParamError(f"invalid sketch.classes = {short_repr(value)}{where}: expected a class name, a comma list, a "
                         f"preset, @file, a list of names, or null for every class")
    if key == "device":
        return check_device(value, "sketch.device", where)
    return check_number(f"sketch.{key}", value, *_RULES[key], where=where)


def load_sketch_params(path: str | os.PathLike[str] | None, overrides: Iterable[str] = ()) -> SketchParams:
    """SketchParams from a params.yaml's ``sketch`` section (top-level ``seed`` unless the section has its own)
    and ``--set key=value`` overrides (``sketch.hidden=128`` or ``hidden=128``; values parsed as YAML)."""
    section, sources = params_section(path, "sketch", overrides)
    return SketchParams.from_dict(section, sources)


# ------------------------------------------------------------------------------------------------- data


def _open(cache: str | os.PathLike[str], split: str, root: str | os.PathLike[str] | None, version: str) -> Any:
    from quickdraw.datasets import load

    return load(cache, split=split, format="stroke5", version=version, root=root, normalize=False)


def select_classes(ds: Any, spec: str | Sequence[str] | None) -> list[str]:
    """The cache classes ``spec`` names (a comma list, a preset, @file or a list; None = all), in cache order
    of the spec; an unknown name is a one-line error with the closest names the cache has."""
    have = list(ds.classes)
    if spec is None:
        return have
    if isinstance(spec, str):
        from quickdraw.classes import PRESETS, resolve_classes

        text = spec.strip()
        names = resolve_classes(text) if (text.startswith("@") or text in PRESETS) else \
            [c.strip() for c in text.split(",") if c.strip()]
    else:
        names = [str(c) for c in spec]
    if not names:
        raise ParamError("no class given (--classes / sketch.classes is empty)")
    for c in names:
        if c not in have:
            close = difflib.get_close_matches(c, have, n=3)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            raise ParamError(f"class {c!r} is not in cache {ds.cache.name}/{ds.cache.version}{hint} "
                             f"(it has {len(have)}: {', '.join(have[:8])}{', ...' if len(have) > 8 else ''})")
    return list(dict.fromkeys(names))


def _indices(ds: Any, classes: Sequence[str]) -> np.ndarray:
    labels = np.asarray(ds.labels)
    want = np.array([list(ds.classes).index(c) for c in classes], np.int64)
    return np.flatnonzero(np.isin(labels, want)).astype(np.int64)


def train_scale(ds: Any, idx: np.ndarray, chunk: int = 4096) -> float:
    """Std of dx, dy over the real (non-end) steps of sequences ``idx`` of a stroke-5 split: Sketch-RNN's
    normalising factor, from exact integer moments, ``chunk`` sequences at a time (bounded memory)."""
    steps, offsets, _ = ds.to_numpy()
    total = (0, 0, 0)
    for lo in range(0, len(idx), chunk):
        rows, _ = take_ranges(np.asarray(offsets), idx[lo : lo + chunk])
        block = np.asarray(steps[rows])
        block = block[block[:, 4] == 0]
        m = xy_moments(block)
        total = (total[0] + m[0], total[1] + m[1], total[2] + m[2])
    scale = scale_from_moments(total)
    if scale is None or not math.isfinite(scale) or scale <= 0:
        raise ValueError("cannot normalise: the selected train sequences have no offsets (or all are zero)")
    return float(scale)


def _batch(ds: Any, idx: np.ndarray, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(targets [B, T, 5] normalised, mask [B, T])`` of sequences ``idx`` (stroke-5 padding rows are end rows)."""
    b = ds.batch(idx)
    x = b["x"].clone()
    x[..., :2] /= scale
    return x, b["mask"]


def _batches(lengths: np.ndarray, batch_size: int, *, shuffle: bool, seed: int, epoch: int) -> list[np.ndarray]:
    from quickdraw.datasets import BucketBatchSampler

    sampler = BucketBatchSampler(lengths, batch_size, shuffle=shuffle, seed=seed)
    sampler.set_epoch(epoch)
    return [np.asarray(b, np.int64) for b in sampler]


@torch.no_grad()
def evaluate_nll(model: Callable[[torch.Tensor], Any], ds: Any, idx: np.ndarray, scale: float,
                 batch_size: int = 256, *, dequantize: bool = False, seed: int = 0) -> dict[str, float]:
    """Per-step NLL (``nll`` = ``offset_nll`` + ``pen_ce``) over sequences ``idx``, every real step weighted
    alike. ``model(inputs)`` returns ``(MixtureParams, state)`` (a :class:`SketchRNN`, or a baseline wrapper).

    ``dequantize`` adds seeded uniform noise in [-0.5, 0.5) px to every real offset first: the data are integers,
    and a density can score integer points arbitrarily well by spiking on them (at dx = 0, say); on dequantized
    points it cannot, so a small gap between the two numbers shows the NLL is not such an artefact."""
    gen = torch.Generator().manual_seed(seed)
    device = torch.device("cpu")
    if isinstance(model, torch.nn.Module):
        model.eval()
        device = next(model.parameters()).device
    sums = {"loss": 0.0, "offset_nll": 0.0, "pen_ce": 0.0}
    steps = 0
    lengths = np.asarray(ds.lengths)[idx]
    for pos in _batches(lengths, batch_size, shuffle=False, seed=0, epoch=0):
        x, mask = _batch(ds, idx[pos], scale)
        if dequantize:
            real = (mask & (x[..., 4] < 0.5))[..., None]
            noise = (torch.rand(x.shape[0], x.shape[1], 2, generator=gen) - 0.5) / scale
            x[..., :2] += torch.where(real, noise, torch.zeros_like(noise))
        x, mask = x.to(device), mask.to(device)
        params, _ = model(decoder_inputs(x))
        out = mdn_loss(params, x, mask)
        n = int(out["n_steps"])
        for k in sums:
            sums[k] += float(out[k]) * n
        steps += n
    if steps == 0:
        return {}
    return {"nll": sums["loss"] / steps, "offset_nll": sums["offset_nll"] / steps,
            "pen_ce": sums["pen_ce"] / steps, "steps": steps, "sequences": int(len(idx))}


# ------------------------------------------------------------------------------------------------ train


@dataclass(frozen=True)
class SketchProgress:
    """A progress event: ``step`` of ``steps`` done, the last batch loss and (after an evaluation) val NLL."""

    step: int
    steps: int
    loss: float
    val_nll: float | None = None


@dataclass
class SketchResult:
    """What a training run produced."""

    out_dir: Path
    checkpoint: Path
    last: Path
    classes: list[str]
    scale: float
    steps: int
    best_step: int
    best_val: dict[str, float]
    train_sequences: int
    seconds: float
    history: list[dict[str, float]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (paths as strings)."""
        return {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(self).items()}


def _claim(out_dir: str | os.PathLike[str]) -> Path:
    return claim_output(out_dir, "sketch", adopt=only_names(OUTPUT_NAMES), hint=NEW_FOLDER_HINT)


def train(
    cache: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    params: SketchParams | None = None,
    classes: str | Sequence[str] | None = None,
    root: str | os.PathLike[str] | None = None,
    version: str = "latest",
    progress: Callable[[SketchProgress], None] | None = None,
) -> SketchResult:
    """Train the Sketch-RNN decoder on ``classes`` (default ``params.classes``) of a cache's stroke-5 train split.

    Writes ``OUT/sketch.pt`` (best validation NLL; the last step's model when there is no val data),
    ``OUT/last.pt`` and ``OUT/metrics.json``, only into a folder quickdraw owns (``claim_output``), one writer at
    a time.

    >>> train("animals10", "models/sketch", classes="cat")  # doctest: +SKIP
    """
    p = params or SketchParams()
    p.validate()
    t0 = time.perf_counter()
    # Inputs first: a wrong cache or class name must not leave a new, empty output folder behind.
    train_ds = _open(cache, "train", root, version)
    val_ds = _open(cache, "val", root, version)
    names = select_classes(train_ds, classes if classes is not None else p.classes)
    idx = _indices(train_ds, names)
    if len(idx) == 0:
        raise ValueError(f"cache {train_ds.cache.name}: no train drawings of {', '.join(names)}")
    out = _claim(out_dir)
    with output_lock(out, "sketch train"):
        return _train(train_ds, val_ds, names, idx, out, p, progress, t0)


def _train(train_ds: Any, val_ds: Any, names: list[str], idx: np.ndarray, out: Path, p: SketchParams,
           progress: Callable[[SketchProgress], None] | None, t0: float) -> SketchResult:
    val_idx = _indices(val_ds, names)
    rng = np.random.default_rng(p.seed)
    if len(val_idx) > p.max_val:
        val_idx = np.sort(rng.choice(val_idx, p.max_val, replace=False))
    scale = train_scale(train_ds, idx)
    torch.manual_seed(p.seed)
    if p.num_threads:
        torch.set_num_threads(p.num_threads)
    device = pick_device(p.device)
    config = p.config(scale)
    model = SketchRNN(config).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=p.lr)
    gen = torch.Generator().manual_seed(p.seed)
    lengths = np.asarray(train_ds.lengths)[idx]
    info = {"classes": names, "params": p.to_dict(),
            "cache": {"name": str(train_ds.cache.name), "version": str(train_ds.cache.version)},
            "normalization": {"scale": scale, "note": "dx, dy divided by the std of the train split's dx, dy "
                              "(selected classes, end steps excluded)"}}
    log.info("sketch: %d train drawings of %s, scale %.3f, %d parameters", len(idx), ", ".join(names), scale,
             sum(t.numel() for t in model.parameters()))

    history: list[dict[str, float]] = []
    best: dict[str, float] = {}
    best_step, step, epoch = 0, 0, 0
    loss_sum, loss_n = 0.0, 0
    best_path, last_path = out / "sketch.pt", out / "last.pt"
    while step < p.steps:
        for pos in _batches(lengths, p.batch_size, shuffle=True, seed=p.seed, epoch=epoch):
            if step >= p.steps:
                break
            x, mask = _batch(train_ds, idx[pos], scale)
            if p.augment_scale > 0:
                # magenta's random_scale_factor: each drawing stretched in x and y independently.
                f = 1 + (torch.rand(x.shape[0], 1, 2, generator=gen) * 2 - 1) * p.augment_scale
                x[..., :2] *= f
            x, mask = x.to(device), mask.to(device)
            lr = (p.lr - p.min_lr) * p.lr_decay ** step + p.min_lr
            for g in opt.param_groups:
                g["lr"] = lr
            model.train()
            params, _ = model(decoder_inputs(x))
            loss = mdn_loss(params, x, mask)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if p.grad_clip > 0:
                torch.nn.utils.clip_grad_value_(model.parameters(), p.grad_clip)
            opt.step()
            step += 1
            lv = float(loss.detach())
            if not math.isfinite(lv):
                raise ValueError(f"training diverged at step {step} (loss {lv}); lower sketch.lr or raise "
                                 f"sketch.min_sigma")
            loss_sum, loss_n = loss_sum + lv, loss_n + 1
            val_nll = None
            if step % p.eval_every == 0 or step == p.steps:
                row: dict[str, float] = {"step": step, "train_loss": loss_sum / loss_n, "lr": lr}
                loss_sum, loss_n = 0.0, 0
                val = evaluate_nll(model, val_ds, val_idx, scale) if len(val_idx) else {}
                row.update({f"val_{k}": v for k, v in val.items() if k not in ("steps", "sequences")})
                history.append(row)
                monitor = val.get("nll", row["train_loss"])
                val_nll = val.get("nll")
                if not best or monitor < best["monitor"]:
                    best = {"monitor": monitor, **row}
                    best_step = step
                    save_sketch(best_path, model, **info, step=step, metrics=row)
                log.info("sketch step %d: %s", step, ", ".join(f"{k}={v:.4g}" for k, v in row.items()))
            if progress:
                progress(SketchProgress(step, p.steps, lv, val_nll))
        epoch += 1
    save_sketch(last_path, model, **info, step=step, metrics=history[-1] if history else {})
    best_val = {k: v for k, v in best.items() if k.startswith("val_")}
    result = SketchResult(out_dir=out, checkpoint=best_path, last=last_path, classes=names, scale=scale, steps=step,
                          best_step=best_step, best_val=best_val, train_sequences=int(len(idx)),
                          seconds=time.perf_counter() - t0, history=history)
    _write_json(out / "metrics.json", {k: v for k, v in result.to_dict().items()
                                       if k not in ("out_dir", "checkpoint", "last", "seconds")})
    return result


def _write_json(path: Path, doc: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.incomplete")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------------- sample


def _write_grid(grid: SketchGrid, target: Path, tmp: Path, *, animation: bool = False) -> Path:
    # The grid's writers pick the format from the suffix: give the temp file the same one.
    tmp = tmp.with_name(tmp.name + target.suffix.lower())
    if animation:
        grid.animate(tmp)
    else:
        grid.save(tmp)
    os.replace(tmp, target)
    return target


def sample_files(
    checkpoint: str | os.PathLike[str],
    out: str | os.PathLike[str] | None,
    *,
    n: int = 16,
    temperature: float = 0.4,
    animate_to: str | os.PathLike[str] | None = None,
    seed: int | None = 0,
    max_len: int = 250,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Sample ``n`` sketches from a checkpoint; write the grid (``.png``/``.svg``) and/or a ``.gif``.

    An existing file is replaced only with ``overwrite``. Returns ``{"checkpoint", "classes", "n", "temperature",
    "seed", "ended", "steps", "out", "animation"}``.
    """
    if out is None and animate_to is None:
        raise ValueError("nothing to write: give --out FILE.png/.svg and/or --animate FILE.gif")
    targets = []
    for target, ok in ((out, (".png", ".svg")), (animate_to, (".gif",))):
        if target is not None:
            if Path(target).suffix.lower() not in ok:
                raise ValueError(f"{target}: expected {' or '.join(ok)}")
            targets.append(output_file(target, overwrite=overwrite))  # refuse before any work
    model, info = load_sketch(checkpoint)
    grid = sample(model, n, temperature, max_len=max_len, seed=seed)
    written: dict[str, str | None] = {"out": None, "animation": None}
    for (path, tmp) in targets:
        is_gif = path.suffix.lower() == ".gif"
        _write_grid(grid, path, tmp, animation=is_gif)
        written["animation" if is_gif else "out"] = str(path)
    return {"checkpoint": str(checkpoint), "classes": info.get("classes", []), "n": len(grid),
            "temperature": temperature, "seed": seed, "ended": int(grid.ended.sum()),
            "steps": [len(s) - 1 for s in grid.sketches], **written}


# --------------------------------------------------------------------------------------------- evaluate


class _Constant:
    """Wraps a :class:`MarginalBaseline` as a model: the same parameters at every step."""

    def __init__(self, baseline: Any) -> None:
        self.baseline = baseline

    def __call__(self, inputs: torch.Tensor) -> tuple[Any, None]:
        return self.baseline.params(inputs.shape[0], inputs.shape[1]), None


def evaluate(
    checkpoint: str | os.PathLike[str],
    cache: str | os.PathLike[str],
    *,
    split: str = "test",
    root: str | os.PathLike[str] | None = None,
    version: str = "latest",
    seed: int = 0,
) -> dict[str, Any]:
    """Per-step NLL on ``split`` (the checkpoint's classes) of the trained model, the same architecture untrained
    (seeded init) and the marginal baseline fitted on the train split; all in the checkpoint's normalised units,
    so they compare directly (lower is better; offset NLL is a density, so it can be negative)."""
    model, info = load_sketch(checkpoint)
    scale = model.config.scale
    ds = _open(cache, split, root, version)
    train_ds = _open(cache, "train", root, version)
    names = select_classes(ds, info.get("classes") or None)
    idx = _indices(ds, names)
    if len(idx) == 0:
        raise ValueError(f"cache {ds.cache.name}: no {split} drawings of {', '.join(names)}")
    tidx = _indices(train_ds, names)
    # The marginal baseline's data: the real train offsets (normalised) and pen-state counts of at most
    # MARGINAL_SEQUENCES seeded train drawings (bounded memory; EM samples its points from these anyway).
    if len(tidx) > MARGINAL_SEQUENCES:
        tidx = np.sort(np.random.default_rng(seed).choice(tidx, MARGINAL_SEQUENCES, replace=False))
    steps, offsets, _ = train_ds.to_numpy()
    rows, _ = take_ranges(np.asarray(offsets), tidx)
    block = np.asarray(steps[rows])
    pen_counts = block[:, 2:5].sum(axis=0)
    offs = block[block[:, 4] == 0, :2].astype(np.float64) / scale
    marginal = fit_marginal(offs, pen_counts, model.config.num_mixture, seed=seed, min_sigma=model.config.min_sigma)
    torch.manual_seed(seed)
    untrained = SketchRNN(model.config)
    doc: dict[str, Any] = {"checkpoint": str(checkpoint), "cache": f"{ds.cache.name}/{ds.cache.version}",
                           "split": split, "classes": names, "scale": scale, "sequences": int(len(idx))}
    for key, m in (("model", model), ("untrained", untrained), ("marginal", _Constant(marginal))):
        doc[key] = evaluate_nll(m, ds, idx, scale)
        doc[key]["nll_dequantized"] = evaluate_nll(m, ds, idx, scale, dequantize=True, seed=seed)["nll"]
    return doc


# -------------------------------------------------------------------------------------------- DVC stage


def run_stage(
    cache: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    params: SketchParams,
    root: str | os.PathLike[str] | None = None,
    progress: Callable[[SketchProgress], None] | None = None,
) -> dict[str, Any]:
    """The DVC ``sketch`` stage. Disabled (``params.enabled`` false): writes only ``OUT/status.json``
    (``{"enabled": false, ...}``), reading no data. Enabled: trains (``OUT/sketch.pt``, ``last.pt``,
    ``metrics.json``), samples ``params.sample_n`` sketches at ``params.temperature`` into ``OUT/samples.png``,
    and writes ``status.json`` with the run's summary. Returns the status document."""
    p = params
    p.validate()
    out = _claim(out_dir)
    if not p.enabled:
        status = {"enabled": False, "note": "the sketch stage is off: set sketch.enabled: true in params.yaml "
                                            "to train Sketch-RNN and draw OUT/samples.png"}
        with output_lock(out, "sketch stage"):
            _write_json(out / "status.json", status)
        return status
    result = train(cache, out, params=p, root=root, progress=progress)
    model, _ = load_sketch(result.checkpoint)
    grid = sample(model, p.sample_n, p.temperature, max_len=p.max_len, seed=p.seed)
    with output_lock(out, "sketch stage"):
        _write_grid(grid, out / "samples.png", out / f".samples.{os.getpid()}.incomplete")
        status = {"enabled": True, "classes": result.classes, "steps": result.steps, "best_step": result.best_step,
                  "best_val": result.best_val, "samples": "samples.png", "temperature": p.temperature,
                  "ended_by_p_end": int(grid.ended.sum()), "n": len(grid)}
        _write_json(out / "status.json", status)
    return status
