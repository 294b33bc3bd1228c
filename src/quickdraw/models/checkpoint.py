"""Checkpoint files: one ``torch.save`` dict holding weights *and* everything needed to use them.

Layout (``CHECKPOINT_FORMAT`` 1)::

    {"format": 1, "model_state": {...}, "model_config": ModelConfig.to_dict(), "classes": [...],
     "input_scaling": {"xy_scale": s, "columns": ["dx", "dy", "pen_lift"], "note": ...},
     "cache": {"name": ..., "version": ..., "path": ..., "min_len": ..., "max_len": ..., "on_long": ...,
               "norm_scale": ...}, "params": {...},
     "epoch": n, "metrics": {...}}

Only plain Python types and tensors are stored, so ``torch.load(weights_only=True)`` can read it: loading a
checkpoint never runs pickled code.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

import torch

from quickdraw._safety import open_regular
from quickdraw.errors import CheckpointError
from quickdraw.models.gru import ARCHS, GRUClassifier, ModelConfig

__all__ = [
    "CHECKPOINT_FORMAT", "MAX_HIDDEN", "input_scaling_info", "load_checkpoint", "save_checkpoint", "validate_checkpoint",
]

CHECKPOINT_FORMAT = 1


def input_scaling_info(xy_scale: float) -> dict[str, Any]:
    """The human-readable description of the model's input scaling stored beside the config."""
    return {
        "xy_scale": float(xy_scale),
        "columns": ["dx", "dy", "pen_lift"],
        "note": "model input is raw stroke-3; the model divides dx, dy by xy_scale (std of train dx, dy); "
        "pen_lift is used as 0/1",
    }


def save_checkpoint(path: str | os.PathLike[str], model: GRUClassifier, **info: Any) -> Path:
    """Write ``model`` plus ``info`` (classes, cache, params, epoch, ...) atomically to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "format": CHECKPOINT_FORMAT,
        "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "model_config": model.config.to_dict(),
        "input_scaling": input_scaling_info(model.config.xy_scale),
        **info,
    }
    # Write-then-rename: a run killed mid-save never leaves a truncated best.pt behind.
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(doc, tmp)
    os.replace(tmp, path)
    return path


#: Bounds on what a checkpoint may ask this code to allocate or feed (checked before any model is built).
MAX_HIDDEN = 4096
MAX_LAYERS = 8
MAX_CLASSES = 100_000
MAX_CLASS_NAME = 256
MAX_SEQ_LEN = 100_000
MAX_CONV_KERNEL = 63
_POOLS = ("last", "mean", "last+mean")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _config(doc: dict[str, Any], where: str) -> ModelConfig:
    cfg = doc.get("model_config")
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{where}: model_config is a {type(cfg).__name__}, expected a dict")
    if "n_classes" not in cfg:
        raise CheckpointError(f"{where}: model_config has no n_classes")
    fields = {f.name: f.default for f in dataclasses.fields(ModelConfig)}
    values = {k: cfg.get(k, d) for k, d in fields.items()}
    ints = {"n_classes": (1, MAX_CLASSES), "input_size": (3, 4), "hidden": (1, MAX_HIDDEN), "layers": (1, MAX_LAYERS),
            "conv_channels": (1, MAX_HIDDEN), "conv_kernel": (1, MAX_CONV_KERNEL)}
    for key, (lo, hi) in ints.items():
        v = values[key]
        if not _is_int(v):
            raise CheckpointError(f"{where}: {key}={v!r} is not an integer")
        if v > hi:
            raise CheckpointError(f"{where}: {key}={v} exceeds the maximum {hi}")
        if v < lo:
            raise CheckpointError(f"{where}: {key}={v} is below the minimum {lo}")
    d = values["dropout"]
    if not _is_number(d) or not math.isfinite(d) or not 0 <= d < 1:
        raise CheckpointError(f"{where}: dropout={d!r} is not a number in [0, 1)")
    x = values["xy_scale"]
    if not _is_number(x) or not math.isfinite(x) or x <= 0:
        raise CheckpointError(f"{where}: xy_scale={x!r} is not a finite number > 0")
    t = values["dt_scale"]
    if not _is_number(t) or not math.isfinite(t) or t <= 0:
        raise CheckpointError(f"{where}: dt_scale={t!r} is not a finite number > 0")
    if values["pool"] not in _POOLS:
        raise CheckpointError(f"{where}: pool={values['pool']!r} is not one of {', '.join(_POOLS)}")
    if values["arch"] not in ARCHS:
        raise CheckpointError(f"{where}: arch={values['arch']!r} is not one of {', '.join(ARCHS)}")
    if not isinstance(values["layer_norm"], bool):
        raise CheckpointError(f"{where}: layer_norm={values['layer_norm']!r} is not true or false")
    if values["conv_kernel"] % 2 == 0:
        raise CheckpointError(f"{where}: conv_kernel={values['conv_kernel']} is not odd")
    return ModelConfig(**values)


def _check_info(doc: dict[str, Any], config: ModelConfig, where: str) -> None:
    classes = doc.get("classes")
    if classes is None:
        raise CheckpointError(f"{where}: no class list ('classes')")
    if not isinstance(classes, list) or not classes:
        raise CheckpointError(f"{where}: classes must be a non-empty list, got {type(classes).__name__} "
                              f"{'(empty)' if classes == [] else ''}".rstrip())
    for i, c in enumerate(classes):
        if not isinstance(c, str) or not c or len(c) > MAX_CLASS_NAME:
            raise CheckpointError(f"{where}: classes[{i}] is not a non-empty string of at most {MAX_CLASS_NAME} "
                                  f"characters ({type(c).__name__})")
    if len(set(classes)) != len(classes):
        raise CheckpointError(f"{where}: the class list has duplicates")
    if len(classes) != config.n_classes:
        raise CheckpointError(f"{where}: {len(classes)} classes, but model_config.n_classes={config.n_classes}")
    cache = doc.get("cache")
    if cache is None:
        return
    if not isinstance(cache, dict):
        raise CheckpointError(f"{where}: cache is a {type(cache).__name__}, expected a dict")
    for key in ("name", "version", "path"):
        if cache.get(key) is not None and not isinstance(cache[key], str):
            raise CheckpointError(f"{where}: cache.{key} is a {type(cache[key]).__name__}, expected a string")
    for key in ("min_len", "max_len"):
        v = cache.get(key)
        if v is not None and (not _is_int(v) or not 1 <= v <= MAX_SEQ_LEN):
            raise CheckpointError(f"{where}: cache.{key}={v!r} is not an integer in 1..{MAX_SEQ_LEN}")
    if cache.get("on_long") is not None and cache["on_long"] not in ("truncate", "drop"):
        raise CheckpointError(f"{where}: cache.on_long={cache['on_long']!r} is not 'truncate' or 'drop'")


def _check_state(state: Any, config: ModelConfig, where: str) -> None:
    """Keys, shapes, dtypes and finiteness of the weights against the config, before a real model exists."""
    if not isinstance(state, dict):
        raise CheckpointError(f"{where}: model_state is a {type(state).__name__}, expected a dict of tensors")
    with torch.device("meta"):  # shapes only: nothing is allocated, whatever the config says
        expected = {k: v for k, v in GRUClassifier(config).state_dict().items()}
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected), key=str)
    if missing or extra:
        raise CheckpointError(f"{where}: model_state does not match model_config (missing {missing[:3]}, "
                              f"unexpected {[str(k) for k in extra[:3]]})")
    for k, ref in expected.items():
        t = state[k]
        if not isinstance(t, torch.Tensor):
            raise CheckpointError(f"{where}: model_state[{k!r}] is a {type(t).__name__}, expected a tensor")
        if tuple(t.shape) != tuple(ref.shape):
            raise CheckpointError(f"{where}: model_state[{k!r}] has shape {tuple(t.shape)}, model_config "
                                  f"implies {tuple(ref.shape)}")
        if not t.is_floating_point():
            raise CheckpointError(f"{where}: model_state[{k!r}] has dtype {t.dtype}, expected floating point")
        if not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"{where}: model_state[{k!r}] holds NaN or infinite weights")


def validate_checkpoint(doc: Any, where: str = "checkpoint") -> ModelConfig:
    """The :class:`ModelConfig` of a loaded checkpoint document after checking everything :func:`load_checkpoint`
    and its users rely on (structure, types, bounds, class list, weight shapes); :class:`CheckpointError`
    naming ``where`` and the field otherwise. Allocates nothing beyond what the document already holds.
    """
    if not isinstance(doc, dict):
        raise CheckpointError(f"{where}: not a quickdraw checkpoint (a {type(doc).__name__}, not a dict)")
    if doc.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{where}: not a quickdraw checkpoint (format {doc.get('format')!r}, "
                              f"{CHECKPOINT_FORMAT} expected)")
    if "model_state" not in doc:
        raise CheckpointError(f"{where}: not a quickdraw checkpoint (no model_state)")
    config = _config(doc, where)
    _check_info(doc, config, where)
    _check_state(doc["model_state"], config, where)
    return config


def load_checkpoint(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> tuple[GRUClassifier, dict[str, Any]]:
    """Rebuild the model from a checkpoint; returns ``(model in eval mode, info without the weights)``.

    The document is validated (:func:`validate_checkpoint`) before the model is built, so a hand-edited or
    foreign checkpoint is a one-line :class:`CheckpointError` (``checkpoint models/best.pt: hidden=200000
    exceeds the maximum 4096``), never a traceback or a huge allocation. Only a regular file is read.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    where = f"checkpoint {path}"
    with open_regular(path, where, error=CheckpointError) as f:
        try:
            doc = torch.load(f, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises several types for corrupt or foreign files
            raise CheckpointError(f"{where}: not a readable checkpoint ({exc.__class__.__name__}: "
                                  f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    config = validate_checkpoint(doc, where)
    model = GRUClassifier(config)
    model.load_state_dict(doc["model_state"])
    model.to(map_location).eval()
    info = {k: v for k, v in doc.items() if k != "model_state"}
    return model, info
