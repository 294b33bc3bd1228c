"""Padding concatenated steps into a batch block: shared by ``SequenceDataset.batch`` and ``collate_padded``.

Both the CSR fast path (:mod:`quickdraw.datasets.sequence`) and the PyTorch collate function
(:mod:`quickdraw.datasets.torch_data`) build the same dict from the same kind of input; the code lives here,
below both, so that neither has to import the other for it. Torch is imported only when tensors are asked for.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["pad", "to_torch"]


def pad(flat: np.ndarray, lengths: np.ndarray, channels: int, scale: float | None = None) -> dict[str, np.ndarray]:
    """Scatter concatenated steps into a zero-padded [B, T, C] float32 block with one masked fill.

    Returns ``x`` float32 [B, T, C], ``lengths`` int64 [B] and ``mask`` bool [B, T]; ``scale`` divides dx, dy.
    Stroke-5 (``channels == 5``) padding rows are end-of-drawing steps ``(0, 0, 0, 0, 1)``.
    """
    b = len(lengths)
    t = int(lengths.max()) if b else 0
    mask = np.arange(t, dtype=np.int64)[None, :] < lengths[:, None]
    x = np.zeros((b, t, channels), dtype=np.float32)
    x[mask] = flat
    if scale is not None:
        x[..., :2] /= scale
    if channels == 5:
        x[..., 4][~mask] = 1.0  # stroke-5 padding is an end-of-drawing step
    return {"x": x, "lengths": lengths.astype(np.int64, copy=False), "mask": mask}


def to_torch(batch: dict[str, np.ndarray]) -> dict[str, Any]:
    """The same dict with every array as a torch tensor (sharing memory, no copy)."""
    import torch

    return {k: torch.from_numpy(v) for k, v in batch.items()}
