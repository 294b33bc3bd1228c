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

import os
from pathlib import Path
from typing import Any

import torch

from quickdraw.errors import QuickDrawError
from quickdraw.models.gru import GRUClassifier, ModelConfig

__all__ = ["CHECKPOINT_FORMAT", "input_scaling_info", "load_checkpoint", "save_checkpoint"]

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


def load_checkpoint(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> tuple[GRUClassifier, dict[str, Any]]:
    """Rebuild the model from a checkpoint; returns ``(model in eval mode, info without the weights)``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        doc = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or foreign files
        raise QuickDrawError(f"{path}: not a readable checkpoint ({exc.__class__.__name__}: {exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != CHECKPOINT_FORMAT or "model_state" not in doc:
        raise QuickDrawError(f"{path}: not a quickdraw checkpoint (format {CHECKPOINT_FORMAT} expected)")
    model = GRUClassifier(ModelConfig.from_dict(doc["model_config"]))
    model.load_state_dict(doc["model_state"])
    model.to(map_location).eval()
    info = {k: v for k, v in doc.items() if k != "model_state"}
    return model, info
