"""DVC stage `train`: sequence cache -> GRU classifier checkpoints (`best.pt`, `last.pt`) + dvclive metrics.

nanoGPT style: one short linear loop, every knob in :class:`TrainParams` (the ``train`` section of
params.yaml), the knobs and the model config saved in each checkpoint.

Schedule (:func:`plan_schedule`, sized by the train split actually fetched): AdamW; linear warm-up over
``warmup`` of the planned optimizer steps (at most ``warmup_steps``), then ``ReduceLROnPlateau`` on the
validation loss once per epoch; early stopping after ``patience`` epochs without a better validation loss.
Small splits get a smaller batch (at least ``min_steps_per_epoch`` steps an epoch) and, when ``epochs``
would plan fewer than ``min_steps`` steps, more epochs with a patience stretched alike.
Training loss uses label smoothing; validation loss is plain cross-entropy (it is what plateau detection and
``best.pt`` selection should track, not the regularised objective).

Batches come from the length-bucketing sampler over the train split, so a batch holds sequences of similar
length and the (exact, packing-free) GRU wastes little work on padding.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from quickdraw._ownership import NEW_FOLDER_HINT, claim_output, only_names
from quickdraw.datasets.torch_data import BucketBatchSampler, shard_batch
# ParamError lives with the params-file reader that train and sketch share; importable from here as before.
from quickdraw.pipeline._params import ParamError, checked_values, params_section, short_repr
from quickdraw.models import GRUClassifier, ModelConfig, save_checkpoint
from quickdraw.datasets.augment import Augment, augment_batch
from quickdraw.models.checkpoint import MAX_CONV_KERNEL, MAX_HIDDEN, MAX_LAYERS
from quickdraw.models.gru import ARCHS
from quickdraw.pipeline.ddp import DistContext, all_reduce_sums, broadcast_error
from quickdraw.pipeline.ddp import from_env as ddp_from_env
from quickdraw.strokes import normalizing_scale

__all__ = [
    "ParamError",
    "ProgressCallback",
    "ProgressEvent",
    "SplitLike",
    "TrainParams",
    "TrainResult",
    "Schedule",
    "check_device",
    "check_precision",
    "check_number",
    "check_param",
    "iter_batches",
    "load_params",
    "make_batch",
    "pick_device",
    "plan_schedule",
    "train",
    "train_on",
]

log = logging.getLogger(__name__)


class SplitLike(Protocol):
    """What training needs of a split; ``quickdraw.load(...)`` returns such an object (FORMATS.md §4)."""

    lengths: np.ndarray
    labels: np.ndarray
    classes: Sequence[str]

    def __len__(self) -> int: ...
    def __getitem__(self, i: int) -> tuple[np.ndarray, int]: ...




@dataclass
class TrainParams:
    """The ``train`` section of params.yaml (plus the shared top-level ``seed``).

    Sizes that depend on the data are planned per run by :func:`plan_schedule`: ``batch_size`` is the
    largest batch (smaller when the train split would give fewer than ``min_steps_per_epoch`` batches),
    ``epochs`` grow (with ``patience``) when they would plan fewer than ``min_steps`` optimizer steps, and
    warm-up lasts ``warmup`` of the planned optimizer steps, at most ``warmup_steps``.
    """

    #: Model: one of quickdraw.models.ARCHS (bigru, gru, lstm, bilstm, conv-bigru); LayerNorm between layers.
    arch: str = "bigru"
    hidden: int = 192
    layers: int = 2
    dropout: float = 0.3
    pool: str = "last"
    layer_norm: bool = False
    #: conv-bigru's front end: output channels and (odd) kernel width over the steps.
    conv_channels: int = 64
    conv_kernel: int = 5
    #: Augmentation of training batches (0 = off; see quickdraw.datasets.augment): x/y scale factors in
    #: U(1 - aug_scale, 1 + aug_scale), rotation in U(-aug_rotate, aug_rotate) degrees, each stroke dropped
    #: with probability aug_stroke_dropout, Gaussian point jitter of std aug_jitter (0..255 coordinate units).
    aug_scale: float = 0.0
    aug_rotate: float = 0.0
    aug_stroke_dropout: float = 0.0
    aug_jitter: float = 0.0
    lr: float = 2e-3
    weight_decay: float = 1e-2
    label_smoothing: float = 0.1
    clip: float = 1.0
    batch_size: int = 256
    min_steps_per_epoch: int = 40
    epochs: int = 20
    min_steps: int = 1500
    patience: int = 4
    warmup: float = 0.2
    warmup_steps: int = 300
    plateau_factor: float = 0.5
    plateau_patience: int = 1
    min_lr: float = 1e-5
    #: Caps for tiny runs: per-class training sequences (seeded choice), steps per epoch, val sequences per class.
    max_train_per_class: int | None = None
    max_steps_per_epoch: int | None = None
    max_val_per_class: int | None = None
    #: The cache format trained on: stroke3 (dx, dy, pen_lift) or stroke3t (dx, dy, dt, pen_lift; from raw
    #: fetches). The model's input size follows it; augmentation is for stroke3 only.
    format: str = "stroke3"
    #: Sequences sampled from the train split to estimate the dx, dy scale.
    scale_sample: int = 5000
    device: str = "auto"
    #: Autocast precision: fp32 (none), bf16 (CUDA or CPU) or fp16 (CUDA only, with a GradScaler).
    precision: str = "fp32"
    #: torch intra-op threads; None leaves torch's default.
    num_threads: int | None = None
    seed: int = 0

    @classmethod
    def from_dict(cls, d: dict[str, Any], sources: dict[str, str] | None = None) -> TrainParams:
        """Build from a mapping, checking every value (:func:`check_param`); unknown keys are named with
        the closest valid ones. ``sources`` maps a key to where it came from (shown in errors)."""
        params = cls(**checked_values("train", cls, d, sources, check_param))
        params.validate()
        return params

    def validate(self) -> None:
        """Raise :class:`ParamError` (a ValueError) on any value that cannot train, naming key, value and
        what is allowed."""
        for f in dataclasses.fields(self):
            check_param(f.name, getattr(self, f.name))
        if self.format != "stroke3" and self.augment().active:
            # The augmentations read column 2 as the pen; in stroke3t it is the time.
            raise ParamError(f"train.format = {self.format!r} with augmentation (aug_*): augmentation applies to "
                             f"stroke3 only; set the aug_* params to 0 or train on stroke3")

    def to_dict(self) -> dict[str, Any]:
        """The params as a plain dict (stored in checkpoints and logged to dvclive)."""
        return dataclasses.asdict(self)

    def augment(self) -> Augment:
        """The training-batch augmentation these params ask for (inactive when all ``aug_*`` are 0)."""
        return Augment(scale=self.aug_scale, rotate=self.aug_rotate, stroke_dropout=self.aug_stroke_dropout,
                       jitter=self.aug_jitter)


# What each train param allows: (kind, low, high, low_open, high_open, optional). kind: int | float.
_INF = math.inf
_RULES: dict[str, tuple[str, float, float, bool, bool, bool]] = {
    # Upper bounds: what load_checkpoint accepts, so every model trained can be loaded again.
    "hidden": ("int", 1, MAX_HIDDEN, False, False, False),
    "layers": ("int", 1, MAX_LAYERS, False, False, False),
    "dropout": ("float", 0, 1, False, True, False),
    "conv_channels": ("int", 1, MAX_HIDDEN, False, False, False),
    "conv_kernel": ("int", 1, MAX_CONV_KERNEL, False, False, False),
    "aug_scale": ("float", 0, 0.9, False, False, False),
    "aug_rotate": ("float", 0, 180, False, False, False),
    "aug_stroke_dropout": ("float", 0, 0.95, False, False, False),
    "aug_jitter": ("float", 0, 64, False, False, False),
    "lr": ("float", 0, _INF, True, False, False),
    "weight_decay": ("float", 0, _INF, False, False, False),
    "label_smoothing": ("float", 0, 1, False, True, False),
    "clip": ("float", 0, _INF, False, False, False),
    "batch_size": ("int", 1, 1 << 20, False, False, False),
    "min_steps_per_epoch": ("int", 1, 10**9, False, False, False),
    "epochs": ("int", 1, 10**6, False, False, False),
    "min_steps": ("int", 0, 10**9, False, False, False),
    "patience": ("int", 1, 10**6, False, False, False),
    "warmup": ("float", 0, 1, False, False, False),
    "warmup_steps": ("int", 0, 10**9, False, False, False),
    "plateau_factor": ("float", 0, 1, True, True, False),
    "plateau_patience": ("int", 0, _INF, False, False, False),
    "min_lr": ("float", 0, _INF, False, False, False),
    "max_train_per_class": ("int", 1, _INF, False, False, True),
    "max_steps_per_epoch": ("int", 1, 10**9, False, False, True),
    "max_val_per_class": ("int", 1, _INF, False, False, True),
    "scale_sample": ("int", 1, _INF, False, False, False),
    "num_threads": ("int", 1, _INF, False, False, True),
    "seed": ("int", 0, 2**32 - 1, False, False, False),
}
_POOLS = ("last", "mean", "last+mean")
_PRECISIONS = ("fp32", "bf16", "fp16")
_FORMATS = ("stroke3", "stroke3t")


def _show(value: Any) -> str:
    """A value as the user wrote it, kept short (errors are one line)."""
    text = short_repr(value)  # bounded: a YAML alias bomb is a value no full repr() finishes
    return text if len(text) <= 60 else text[:57] + "..."


def _allowed(kind: str, lo: float, hi: float, lo_open: bool, hi_open: bool, optional: bool) -> str:
    what = "an integer" if kind == "int" else "a finite number"
    if lo > -_INF and hi < _INF:
        top = f"{int(hi)}" if kind == "int" else f"{hi:g}"
        rng = f" with {lo:g} {'<' if lo_open else '<='} value {'<' if hi_open else '<='} {top}"
    elif lo > -_INF:
        rng = f" {'>' if lo_open else '>='} {lo:g}"
    else:
        rng = ""
    return what + rng + (" or null" if optional else "")


def check_param(key: str, value: Any, where: str = "") -> Any:
    """``value`` checked (and normalised: ``12.0`` -> ``12`` for ints, ``"1e-3"`` -> ``0.001`` for floats)
    for the train param ``key``; raises :class:`ParamError` naming key, value and what is allowed."""
    if key == "pool":
        if value not in _POOLS:
            raise ParamError(f"invalid train.{key} = {_show(value)}{where}: expected one of {', '.join(_POOLS)}")
        return value
    if key == "device":
        return check_device(value, f"train.{key}", where)
    if key == "arch":
        if value not in ARCHS:
            raise ParamError(f"invalid train.{key} = {_show(value)}{where}: expected one of {', '.join(ARCHS)}")
        return value
    if key == "layer_norm":
        if not isinstance(value, bool):
            raise ParamError(f"invalid train.{key} = {_show(value)}{where}: expected true or false")
        return value
    if key == "conv_kernel":
        k = check_number(f"train.{key}", value, *_RULES[key], where=where)
        if k % 2 == 0:
            raise ParamError(f"invalid train.{key} = {_show(value)}{where}: expected an odd integer "
                             f"(1 <= value <= {MAX_CONV_KERNEL}) so the convolution keeps every step centred")
        return k
    if key == "format":
        if value not in _FORMATS:
            raise ParamError(f"invalid train.{key} = {_show(value)}{where}: expected one of {', '.join(_FORMATS)}")
        return value
    if key == "precision":
        if value not in _PRECISIONS:
            raise ParamError(f"invalid train.{key} = {_show(value)}{where}: expected one of {', '.join(_PRECISIONS)}")
        return value
    return check_number(f"train.{key}", value, *_RULES[key], where=where)


def check_number(
    label: str, value: Any, kind: str = "int", lo: float = -_INF, hi: float = _INF, lo_open: bool = False,
    hi_open: bool = False, optional: bool = False, *, where: str = "",
) -> Any:
    """``value`` as an int (``kind="int"``: no bools, no fractions) or a finite float in ``[lo, hi]`` (open
    ends with ``lo_open``/``hi_open``; None allowed with ``optional``); numeric strings are parsed. Else
    :class:`ParamError` ``invalid LABEL = VALUE (WHERE): expected ...``. The CLI's typed options use it too."""
    allowed = _allowed(kind, lo, hi, lo_open, hi_open, optional)

    def bad() -> ParamError:
        return ParamError(f"invalid {label} = {_show(value)}{where}: expected {allowed}")

    if value is None:
        if optional:
            return None
        raise bad()
    if isinstance(value, bool):  # YAML true/false: a bool is an int to Python, never to us
        raise bad()
    num: Any = value
    if isinstance(value, str):
        # PyYAML (YAML 1.1) reads 1e-3 and nan as strings; DVC (YAML 1.2) reads them as numbers: accept both.
        text = value.strip()
        try:
            num = int(text) if kind == "int" and text.lstrip("+-").isdigit() else float(text)
        except ValueError:
            raise bad() from None
    if not isinstance(num, (int, float)) or not math.isfinite(num):
        raise bad()
    if kind == "int":
        if isinstance(num, float):
            if not num.is_integer():
                raise bad()
            num = int(num)
    else:
        num = float(num)
    if num < lo or num > hi or (lo_open and num == lo) or (hi_open and num == hi):
        raise bad()
    return num


_DEVICES = "auto, cpu, cuda, cuda:N or mps"


def check_device(value: Any, key: str = "device", where: str = "") -> str:
    """``value`` if it names a device this machine has (``auto``, ``cpu``, ``cuda``, ``cuda:N`` with N below
    the CUDA device count, ``mps``); else :class:`ParamError` naming key, value and what is allowed."""
    head = f"invalid {key} = {_show(value)}{where}"
    if not isinstance(value, str):
        raise ParamError(f"{head}: expected {_DEVICES}")
    name = value.strip().lower()
    if name in ("auto", "cpu"):
        return name
    if name == "cuda" or name.startswith("cuda:"):
        idx = name.partition(":")[2]
        if name != "cuda" and not idx.isdigit():
            raise ParamError(f"{head}: expected {_DEVICES}, N a device number")
        if not torch.cuda.is_available():
            raise ParamError(f"{head}: CUDA is not available on this machine; use auto or cpu")
        count = torch.cuda.device_count()
        if idx and int(idx) >= count:
            raise ParamError(f"{head}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
        return name
    if name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ParamError(f"{head}: MPS is not available on this machine; use auto or cpu")
        return name
    raise ParamError(f"{head}: expected {_DEVICES}")


def load_params(path: str | os.PathLike[str] | None, overrides: Iterable[str] = ()) -> TrainParams:
    """TrainParams from a params.yaml (``train`` section + top-level ``seed``) and ``--set`` overrides.

    Overrides are ``key=value`` with ``key`` either ``train.<name>``, ``<name>`` or ``seed``; values are
    parsed as YAML (``train.max_steps_per_epoch=null`` works). Every value is checked by type and range
    (:func:`check_param`); a bad one raises :class:`ParamError` naming the key, the value, where it came
    from and what is allowed. ``dvc repro`` goes through here too (its stage passes ``--params params.yaml``).
    """
    section, sources = params_section(path, "train", overrides)
    return TrainParams.from_dict(section, sources)


#: The smallest batch the automatic reduction goes down to (an explicit smaller batch_size is kept).
MIN_AUTO_BATCH = 16
#: ``min_steps`` never stretches a run beyond this many times ``epochs``.
MAX_EPOCH_STRETCH = 4


@dataclass(frozen=True)
class Schedule:
    """What a run plans from the params and the size of its train split (:func:`plan_schedule`)."""

    batch_size: int
    steps_per_epoch: int
    epochs: int
    patience: int
    warmup_steps: int

    @property
    def planned_steps(self) -> int:
        """Optimizer steps if no early stop."""
        return self.steps_per_epoch * self.epochs


def plan_schedule(n_train: int, p: TrainParams) -> Schedule:
    """Batch size, steps per epoch, epochs, patience and warm-up for ``n_train`` training sequences.

    * batch: ``p.batch_size``, unless the split would then give fewer than ``p.min_steps_per_epoch`` batches:
      then ``n_train // p.min_steps_per_epoch`` (not below ``MIN_AUTO_BATCH``, nor above ``p.batch_size``);
    * epochs: ``p.epochs``, more when that plans fewer than ``p.min_steps`` optimizer steps (enough epochs
      for ``min_steps``, at most ``MAX_EPOCH_STRETCH * p.epochs``); patience is stretched by the same factor,
      so it stays the same number of optimizer steps without a better validation loss (not with an
      explicit ``max_steps_per_epoch``);
    * warm-up: ``ceil(p.warmup * planned steps)``, at most ``p.warmup_steps``.

    40,000 train drawings (animals10 at 5,000 a class) with the defaults: batch 256, 157 steps an epoch,
    12 epochs (1,884 steps >= min_steps), patience 4, warm-up min(300, 377) = 300 steps: the schedule of
    the runs before these rules existed. 1,214 drawings: batch 30, 41 steps an epoch, 37 epochs,
    patience 13, warm-up 300 steps (instead of a warm-up longer than the whole run).
    """
    bs = p.batch_size
    if n_train // bs < p.min_steps_per_epoch:
        bs = min(p.batch_size, max(MIN_AUTO_BATCH, n_train // p.min_steps_per_epoch))
    steps = max(1, -(-n_train // bs))
    if p.max_steps_per_epoch is not None:
        steps = min(steps, p.max_steps_per_epoch)
    epochs, patience = p.epochs, p.patience
    # An explicit max_steps_per_epoch (a cap for tiny runs) means the user sized the run: no stretching.
    if p.max_steps_per_epoch is None and steps * epochs < p.min_steps:
        epochs = min(-(-p.min_steps // steps), MAX_EPOCH_STRETCH * p.epochs)
        patience = -(-p.patience * epochs // p.epochs)
    warmup = min(p.warmup_steps, math.ceil(p.warmup * steps * epochs - 1e-9))
    return Schedule(batch_size=bs, steps_per_epoch=steps, epochs=epochs, patience=patience, warmup_steps=warmup)


@dataclass
class ProgressEvent:
    """Sent to the progress callback: ``kind`` is ``"epoch_start"``, ``"step"`` or ``"epoch_end"``."""

    kind: str
    epoch: int
    epochs: int
    step: int = 0
    steps: int = 0
    loss: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)


ProgressCallback = Callable[[ProgressEvent], None]


@dataclass
class TrainResult:
    """What a run produced."""

    out_dir: Path
    best_path: Path
    last_path: Path
    best_epoch: int
    epochs_run: int
    stopped_early: bool
    best_metrics: dict[str, float]
    history: list[dict[str, float]]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (paths as strings), what ``quickdraw train --json`` prints."""
        d = dataclasses.asdict(self)
        return {k: str(v) if isinstance(v, Path) else v for k, v in d.items()}


# ------------------------------------------------------------------------------------------------ helpers


def check_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``train.precision`` on ``device`` (None for fp32); :class:`ParamError` where
    this project does not support it: fp16 needs CUDA (its GradScaler is a CUDA tool; on CPU fp16 matmuls are
    slow and unscaled fp16 gradients underflow), bf16 runs on CUDA and CPU (CPU autocast covers the linear
    and conv layers; the recurrent cells stay fp32), MPS trains in fp32 only."""
    if precision == "fp32":
        return None
    if precision == "fp16" and device.type != "cuda":
        raise ParamError(f"invalid train.precision = 'fp16' on {device.type}: fp16 autocast needs CUDA; "
                         "use bf16 or fp32")
    if precision == "bf16" and device.type not in ("cuda", "cpu"):
        raise ParamError(f"invalid train.precision = 'bf16' on {device.type}: bf16 autocast runs on CUDA or CPU "
                         "here; use fp32")
    return torch.float16 if precision == "fp16" else torch.bfloat16


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` -> cuda, then mps, then cpu; any other name is checked first (:func:`check_device`)."""
    name = check_device(name)
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def make_batch(ds: Any, indices: Sequence[int] | np.ndarray) -> dict[str, torch.Tensor]:
    """A padded batch ``dict(x float32 [B, T, 3], lengths int64 [B], labels int64 [B])`` of raw stroke-3.

    Uses ``ds.batch(indices)`` when the dataset offers it (one vectorised gather from the CSR cache), else
    ``collate_padded`` over ``ds[i]``.
    """
    idx = np.asarray(indices, dtype=np.int64)
    if hasattr(ds, "batch"):
        b = ds.batch(idx)
    else:
        from quickdraw.datasets import collate_padded

        b = collate_padded([ds[int(i)] for i in idx])
    return {
        "x": torch.as_tensor(b["x"], dtype=torch.float32),
        "lengths": torch.as_tensor(b["lengths"], dtype=torch.int64),
        "labels": torch.as_tensor(b["labels"], dtype=torch.int64),
    }


def _bucket_batches(
    lengths: np.ndarray, batch_size: int, *, shuffle: bool, seed: int, epoch: int = 0
) -> list[np.ndarray]:
    """Batches of positions into ``lengths``, grouped by length (``BucketBatchSampler``)."""
    from quickdraw.datasets import BucketBatchSampler

    sampler = BucketBatchSampler(lengths, batch_size, shuffle=shuffle, seed=seed, drop_last=False)
    sampler.set_epoch(epoch)
    return [np.asarray(b, dtype=np.int64) for b in sampler]


def _per_class_subset(labels: np.ndarray, cap: int | None, seed: int) -> np.ndarray:
    """Indices keeping at most ``cap`` items of each class (seeded), in ascending order."""
    if cap is None:
        return np.arange(len(labels), dtype=np.int64)
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        keep.append(members if len(members) <= cap else rng.choice(members, cap, replace=False))
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)


def _estimate_xy_scale(ds: SplitLike, subset: np.ndarray, n: int, seed: int) -> float:
    """Std of ``dx, dy`` over (a seeded sample of) the training sequences: Sketch-RNN's normaliser."""
    rng = np.random.default_rng(seed)
    pick = subset if len(subset) <= n else rng.choice(subset, n, replace=False)
    steps = np.concatenate([np.asarray(ds[int(i)][0])[:, :2] for i in pick]) if len(pick) else np.zeros((0, 2))
    scale = normalizing_scale(steps)
    if not math.isfinite(scale) or scale <= 0:
        log.warning("could not estimate the input scale (%.3g); using 1.0", scale)
        return 1.0
    return float(scale)


def _estimate_column_scale(ds: SplitLike, subset: np.ndarray, n: int, seed: int, column: int) -> float:
    """Std of one column (stroke3t's dt) over a seeded sample of the training sequences; 1.0 if degenerate."""
    rng = np.random.default_rng(seed)
    pick = subset if len(subset) <= n else rng.choice(subset, n, replace=False)
    vals = np.concatenate([np.asarray(ds[int(i)][0])[:, column] for i in pick]).astype(np.float64) if len(pick) \
        else np.zeros(0)
    scale = float(vals.std()) if len(vals) else 0.0
    return scale if math.isfinite(scale) and scale > 0 else 1.0


@torch.no_grad()
def _validate(
    model: nn.Module, ds: SplitLike, subset: np.ndarray, batch_size: int, device: torch.device,
    dist: DistContext | None = None, autocast_dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """Loss, top-1 and top-3 over ``subset``; under DDP each rank takes every N-th batch and the sums are
    all-reduced, so every rank returns the same numbers (and so takes the same plateau/early-stop decisions)."""
    dist = dist or DistContext()
    model.eval()
    total_loss, top1, top3, n = 0.0, 0, 0, 0
    batches = _bucket_batches(np.asarray(ds.lengths)[subset], batch_size, shuffle=False, seed=0)
    for pos in batches[dist.rank :: dist.world_size]:
        b = make_batch(ds, subset[pos])
        y = b["labels"].to(device)
        with _autocast(device, autocast_dtype):
            logits = model(b["x"].to(device), b["lengths"]).float()
        total_loss += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
        k = min(3, logits.shape[1])
        top = logits.topk(k, dim=1).indices
        top1 += int((top[:, 0] == y).sum())
        top3 += int((top == y[:, None]).any(1).sum())
        n += len(y)
    total_loss, top1_f, top3_f, n_f = all_reduce_sums(dist, [total_loss, top1, top3, n], _reduce_device(dist, device))
    if n_f == 0:
        return {}
    return {"loss": total_loss / n_f, "top1": top1_f / n_f, "top3": top3_f / n_f}


def _autocast(device: torch.device, dtype: torch.dtype | None) -> Any:
    """``torch.autocast`` for ``dtype``, or a no-op context for fp32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _reduce_device(dist: DistContext, device: torch.device) -> torch.device:
    # nccl reduces CUDA tensors, gloo CPU tensors.
    return device if dist.backend == "nccl" else torch.device("cpu")


class _NoLive:
    """Stands in for dvclive's ``Live`` on ranks other than 0 (which write nothing)."""

    def __init__(self) -> None:
        self.summary: dict[str, Any] = {}

    def __enter__(self) -> _NoLive:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def log_params(self, params: dict[str, Any]) -> None:
        """Ignored."""

    def log_metric(self, name: str, value: float) -> None:
        """Ignored."""

    def next_step(self) -> None:
        """Ignored."""


def _open_split(cache: str | os.PathLike[str], split: str, root: str | os.PathLike[str] | None,
                fmt: str = "stroke3") -> Any:
    from quickdraw.datasets import load

    # normalize=False: the model scales its inputs itself (ModelConfig.xy_scale, dt_scale), so batches stay raw.
    return load(cache, split=split, format=fmt, root=root, normalize=False)


def _cache_info(ds: Any, cache: str | os.PathLike[str] | None) -> dict[str, Any]:
    """Name, version, path, max_len and dx/dy scale of the cache a split came from, as far as it tells."""
    info: dict[str, Any] = {"name": str(cache) if cache is not None else None}
    for attr in ("name", "version"):
        v = getattr(ds, attr, None)
        if v is not None and not callable(v):
            info[attr] = str(v)
    cv = getattr(ds, "cache", None)  # quickdraw.cache.store.CacheVersion
    if getattr(cv, "path", None) is not None:
        info["path"] = str(cv.path)
    manifest = getattr(cv, "manifest", None)
    if isinstance(manifest, dict):
        params = manifest.get("params") or {}
        # Length rules are prepare's params; the cache manifest nests them under "prepare".
        for scope in (params.get("prepare") or {}, params) if isinstance(params, dict) else ():
            for key in ("max_len", "min_len", "on_long"):
                if isinstance(scope, dict) and key in scope:
                    info.setdefault(key, scope[key])
        scale = ((manifest.get("formats") or {}).get("stroke3") or {}).get("norm_scale")
        if scale:
            info["norm_scale"] = float(scale)
    return info


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ------------------------------------------------------------------------------------------------- train


def train(
    cache_name_or_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    params: TrainParams | None = None,
    root: str | os.PathLike[str] | None = None,
    progress: ProgressCallback | None = None,
    live_dir: str | os.PathLike[str] | None = None,
) -> TrainResult:
    """Train on the cache's train split, validate on its val split; write ``best.pt``/``last.pt``.

    ``live_dir`` is where dvclive writes per-epoch metrics (default ``out_dir/dvclive``; DVC pipelines
    should point it outside ``out_dir`` so the metrics are not inside the model output).
    """
    fmt = (params or TrainParams()).format
    train_ds = _open_split(cache_name_or_path, "train", root, fmt)
    val_ds = _open_split(cache_name_or_path, "val", root, fmt)
    return train_on(
        train_ds, val_ds, out_dir, params=params, progress=progress, live_dir=live_dir,
        cache_info=_cache_info(train_ds, cache_name_or_path),
    )


def train_on(
    train_ds: SplitLike,
    val_ds: SplitLike | None,
    out_dir: str | os.PathLike[str],
    *,
    params: TrainParams | None = None,
    progress: ProgressCallback | None = None,
    live_dir: str | os.PathLike[str] | None = None,
    cache_info: dict[str, Any] | None = None,
) -> TrainResult:
    """The training loop over already-opened splits (what :func:`train` calls after loading the cache).

    Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) this runs DistributedDataParallel: every rank
    builds the same global batches and trains on its share of each (see :mod:`quickdraw.pipeline.ddp`);
    only rank 0 writes checkpoints, dvclive files, logs and progress; the result is the same on every rank.
    """
    p = params or TrainParams()
    p.validate()
    t_start = time.perf_counter()
    device = pick_device(p.device)
    dist = ddp_from_env(device.type)
    try:
        return _train_loop(train_ds, val_ds, out_dir, p, progress, live_dir, cache_info, device, dist, t_start)
    finally:
        dist.close()


def _train_loop(
    train_ds: SplitLike, val_ds: SplitLike | None, out_dir: str | os.PathLike[str], p: TrainParams,
    progress: ProgressCallback | None, live_dir: str | os.PathLike[str] | None, cache_info: dict[str, Any] | None,
    device: torch.device, dist: DistContext, t_start: float,
) -> TrainResult:
    from dvclive import Live

    if dist.enabled and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)  # one GPU per process, as torchrun lays them out
        torch.cuda.set_device(device)
    if dist.enabled and device.type == "mps":
        raise ParamError("invalid train.device = 'mps' under torchrun: DDP runs on CUDA (nccl) or CPU (gloo)")
    amp_dtype = check_precision(p.precision, device)
    red_dev = _reduce_device(dist, device)
    info: Callable[..., None] = log.info if dist.is_main else (lambda *a, **k: None)
    out = Path(out_dir)
    live_path = Path(live_dir) if live_dir is not None else out / "dvclive"
    error: BaseException | None = None
    if dist.is_main:
        try:
            # best.pt/last.pt are replaced and dvclive clears its folder: both only in folders quickdraw owns.
            out = claim_output(out_dir, "train", adopt=only_names({"best.pt", "last.pt", "dvclive"}),
                               hint=NEW_FOLDER_HINT)
            live_path = Path(live_dir) if live_dir is not None else out / "dvclive"
            claim_output(live_path, "dvclive", adopt=only_names({"metrics.json", "params.yaml", "plots"}),
                         option="--live-dir", hint=NEW_FOLDER_HINT)
        except BaseException as exc:  # noqa: BLE001 - re-raised right below, after telling the other ranks
            error = exc
    broadcast_error(dist, error, red_dev)
    _seed_everything(p.seed)
    if p.num_threads:
        torch.set_num_threads(p.num_threads)
    classes = list(train_ds.classes)
    if val_ds is not None and list(val_ds.classes) != classes:
        raise ValueError("train and val splits have different class lists")

    train_idx = _per_class_subset(np.asarray(train_ds.labels), p.max_train_per_class, p.seed)
    if len(train_idx) == 0:
        raise ValueError("the train split is empty")
    val_idx = (
        _per_class_subset(np.asarray(val_ds.labels), p.max_val_per_class, p.seed + 1)
        if val_ds is not None else np.zeros(0, dtype=np.int64)
    )
    if len(val_idx) == 0 and dist.is_main:
        log.warning("no validation data: early stopping and best.pt follow the training loss")
    train_lengths = np.asarray(train_ds.lengths)[train_idx]
    plan = plan_schedule(len(train_idx), p)
    info("schedule: batch %d, %d steps an epoch, %d epochs at most (patience %d), %d warm-up steps%s",
         plan.batch_size, plan.steps_per_epoch, plan.epochs, plan.patience, plan.warmup_steps,
         f"; global batch split over {dist.world_size} ranks ({dist.backend})" if dist.enabled else "")

    # The cache records the train split's dx/dy std; estimating it here is the fallback for other sources.
    scale = float((cache_info or {}).get("norm_scale") or 0) or _estimate_xy_scale(
        train_ds, train_idx, p.scale_sample, p.seed
    )
    # stroke3t (dx, dy, dt, pen_lift) has a time column, scaled like dx, dy by its std over the train split.
    input_size = int(getattr(train_ds, "channels", 3))
    if input_size not in (3, 4):
        raise ParamError(f"the train split has {input_size} channels per step: expected stroke3 (3) or stroke3t (4)")
    dt_scale = _estimate_column_scale(train_ds, train_idx, p.scale_sample, p.seed, 2) if input_size == 4 else 1.0
    config = ModelConfig(
        n_classes=len(classes), input_size=input_size, dt_scale=dt_scale,
        hidden=p.hidden, layers=p.layers, dropout=p.dropout, xy_scale=scale, pool=p.pool,
        arch=p.arch, layer_norm=p.layer_norm, conv_channels=p.conv_channels, conv_kernel=p.conv_kernel,
    )
    aug = p.augment()
    model = GRUClassifier(config).to(device)
    n_parameters = sum(t.numel() for t in model.parameters())
    info("training %s%s on %d sequences (%d classes) on %s, xy_scale=%.3f, %d parameters%s", p.arch,
         " + LayerNorm" if p.layer_norm else "", len(train_idx), len(classes), device, scale, n_parameters,
         f", augmentation {aug}" if aug.active else "")
    # DDP broadcasts rank 0's weights at construction and averages gradients in backward.
    net: nn.Module = model
    if dist.enabled:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    opt = torch.optim.AdamW(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="min", factor=p.plateau_factor, patience=p.plateau_patience, min_lr=p.min_lr
    )
    scaler = torch.amp.GradScaler(device.type, enabled=p.precision == "fp16")
    ckpt_info = {"classes": classes, "cache": cache_info or {}, "params": p.to_dict(),
                 "schedule": dataclasses.asdict(plan), "world_size": dist.world_size}
    sampler = BucketBatchSampler(train_lengths, plan.batch_size, shuffle=True, seed=p.seed, drop_last=False)

    history: list[dict[str, float]] = []
    best_loss, best_epoch, best_metrics, bad_epochs = math.inf, 0, {}, 0
    global_step, stopped_early, epoch = 0, False, 0
    train_seconds, train_seen = 0.0, 0.0
    live_cm: Any = Live(dir=str(live_path), save_dvc_exp=False, dvcyaml=None, report=None) if dist.is_main else _NoLive()
    with live_cm as live:
        live.log_params({k: v for k, v in p.to_dict().items() if v is not None})
        live.log_params({f"schedule.{k}": v for k, v in dataclasses.asdict(plan).items()})
        live.log_params({"world_size": dist.world_size})
        for epoch in range(1, plan.epochs + 1):
            t0 = time.perf_counter()
            net.train()
            sampler.set_epoch(epoch)
            batches = sampler.global_batches()
            if p.max_steps_per_epoch is not None:
                batches = batches[: p.max_steps_per_epoch]
            if progress and dist.is_main:
                progress(ProgressEvent("epoch_start", epoch, plan.epochs, 0, len(batches)))
            loss_sum, seen = 0.0, 0
            for step, gpos in enumerate(batches, 1):
                if global_step < plan.warmup_steps:
                    for g in opt.param_groups:
                        g["lr"] = p.lr * (global_step + 1) / plan.warmup_steps
                loss, part_sum, n_mine = _step_loss(net, train_ds, train_idx, gpos, dist, p, device, amp_dtype,
                                                    aug, epoch)
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if p.clip > 0:
                    scaler.unscale_(opt)
                    nn.utils.clip_grad_norm_(model.parameters(), p.clip)
                scaler.step(opt)
                scaler.update()
                global_step += 1
                loss_sum += part_sum
                seen += n_mine
                if progress and dist.is_main:
                    shown = part_sum / n_mine if n_mine else float("nan")
                    progress(ProgressEvent("step", epoch, plan.epochs, step, len(batches), shown))

            loss_sum, seen_all = all_reduce_sums(dist, [loss_sum, seen], red_dev)
            epoch_seconds = time.perf_counter() - t0
            train_loss = loss_sum / max(seen_all, 1)
            val = (_validate(model, val_ds, val_idx, 2 * plan.batch_size, device, dist, amp_dtype)
                   if val_ds is not None and len(val_idx) else {})
            monitor = val.get("loss", train_loss)
            lr_now = opt.param_groups[0]["lr"]
            # Plateau decisions only make sense once warm-up has handed the lr back to the schedule.
            if global_step >= plan.warmup_steps:
                plateau.step(monitor)
            train_seconds += epoch_seconds
            train_seen += seen_all
            row = {"epoch": epoch, "train_loss": train_loss, "lr": lr_now,
                   "seconds": time.perf_counter() - t0, "train_seq_per_s": seen_all / max(epoch_seconds, 1e-9)}
            row.update({f"val_{k}": v for k, v in val.items()})
            history.append(row)
            live.log_metric("train/loss", train_loss)
            for k, v in val.items():
                live.log_metric(f"val/{k}", v)
            live.log_metric("lr", lr_now)
            live.log_metric("epoch_seconds", row["seconds"])

            improved = monitor < best_loss - 1e-7
            if improved:
                best_loss, best_epoch, bad_epochs = monitor, epoch, 0
                best_metrics = {k: v for k, v in row.items() if k.startswith(("val_", "train_loss"))}
                if dist.is_main:
                    save_checkpoint(out / "best.pt", model, **ckpt_info, epoch=epoch, metrics=row)
            else:
                bad_epochs += 1
            if dist.is_main:
                save_checkpoint(out / "last.pt", model, **ckpt_info, epoch=epoch, metrics=row)
            info("epoch %d: %s", epoch, ", ".join(f"{k}={v:.4g}" for k, v in row.items()))
            if progress and dist.is_main:
                progress(ProgressEvent("epoch_end", epoch, plan.epochs, len(batches), len(batches), train_loss, row))
            live.next_step()
            # Every rank holds the same reduced monitor, so every rank stops at the same epoch.
            if bad_epochs >= plan.patience:
                stopped_early = True
                info("early stop: no better validation loss for %d epochs", bad_epochs)
                break
        # metrics.json otherwise holds only the last epoch; dvc exp show should also see the kept model's.
        live.summary["best"] = {"epoch": best_epoch, **best_metrics}
        # What a sweep compares besides accuracy (dvc exp show reads them from dvclive/metrics.json).
        live.summary["model"] = {"n_parameters": n_parameters}
        live.summary["speed"] = {"train_seq_per_s": train_seen / max(train_seconds, 1e-9),
                                 "wall_seconds": time.perf_counter() - t_start, "world_size": dist.world_size}
    dist.barrier()  # the other ranks return only once rank 0 has written everything

    return TrainResult(
        out_dir=out, best_path=out / "best.pt", last_path=out / "last.pt", best_epoch=best_epoch,
        epochs_run=epoch, stopped_early=stopped_early, best_metrics=best_metrics, history=history,
        seconds=time.perf_counter() - t_start,
    )


def _step_loss(
    net: nn.Module, ds: SplitLike, train_idx: np.ndarray, gpos: np.ndarray, dist: DistContext, p: TrainParams,
    device: torch.device, amp_dtype: torch.dtype | None, aug: Augment | None = None, epoch: int = 0,
) -> tuple[torch.Tensor, float, int]:
    """This rank's share of one global batch: ``(loss to backpropagate, sum of its losses, its size)``.

    The loss is this rank's *sum* of per-drawing losses times ``world_size / global batch size``: DDP averages
    gradients over the ranks, so the step follows the gradient of the global batch's mean loss exactly, even
    when the shares differ in size (a single process gets the plain mean). A rank whose share is empty
    (a last global batch smaller than the number of ranks) still runs forward and backward, on one
    drawing with weight 0, because every rank must join DDP's gradient all-reduce.
    """
    mine = shard_batch(gpos, dist.world_size, dist.rank)
    weight = dist.world_size / len(gpos)
    n_mine = len(mine)
    if n_mine == 0:
        mine, weight = gpos[:1], 0.0
    keys = train_idx[mine]
    if aug is not None and aug.active:
        from quickdraw.datasets.torch_data import collate_padded

        items = [ds[int(i)] for i in keys]
        seqs = augment_batch([q for q, _ in items], keys, aug, p.seed, epoch)
        b = collate_padded(list(zip(seqs, [lab for _, lab in items], strict=True)))
    else:
        b = make_batch(ds, keys)
    y = b["labels"].to(device)
    with _autocast(device, amp_dtype):
        logits = net(b["x"].to(device), b["lengths"])
    losses = nn.functional.cross_entropy(logits.float(), y, reduction="none", label_smoothing=p.label_smoothing)
    total = losses.sum()
    return total * weight, float(total.detach()) if n_mine else 0.0, n_mine


def iter_batches(ds: SplitLike, batch_size: int) -> Iterator[tuple[np.ndarray, dict[str, torch.Tensor]]]:
    """``(indices, batch)`` over a whole split in length-bucketed order (evaluation, prediction)."""
    idx = np.arange(len(ds), dtype=np.int64)
    for pos in _bucket_batches(np.asarray(ds.lengths), batch_size, shuffle=False, seed=0):
        yield idx[pos], make_batch(ds, idx[pos])
