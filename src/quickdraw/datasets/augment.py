"""Training-time augmentation of stroke-3 drawings: anisotropic scale, small rotation, stroke dropout, jitter.

Every transform works on the drawing's absolute points (the cumulative sum of ``dx, dy``) and turns them back
into deltas after rounding once, so rounding never accumulates along a drawing: the output is again valid
stroke-3 (int16 ``(dx, dy, pen_lift)``, the first point relative to (0, 0), ``pen_lift`` 0/1 and 1 on the
last point of each stroke, as in the input). Scale and rotation are about the drawing's centre (the middle
of its bounding box), so the first point's offset stays where a drawing starts.

* ``scale`` a: ``x`` and ``y`` scaled by independent factors from U(1 - a, 1 + a) (anisotropic);
* ``rotate`` d: rotation by an angle from U(-d, d) degrees;
* ``stroke_dropout`` p: each stroke (a run of points ending in ``pen_lift = 1``) dropped with probability p,
  at least one stroke always kept; the remaining strokes keep their places (the next kept point's delta
  spans the dropped stroke) and their own pen lifts;
* ``jitter`` s: Gaussian noise of std s (coordinate units, 0..255 scale) on every point.

Randomness comes from ``numpy.random.default_rng([seed, epoch, key])`` per drawing (``key`` its index in
the split), so a drawing gets the same augmentation in an epoch whichever batch, process or DDP rank it
lands in, and a run is reproducible from its seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Augment", "augment_batch", "augment_stroke3"]

_I16 = np.iinfo(np.int16)


@dataclass(frozen=True)
class Augment:
    """Augmentation strengths; all 0 (the default) means no augmentation."""

    scale: float = 0.0
    rotate: float = 0.0
    stroke_dropout: float = 0.0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        for name, lo, hi in (("scale", 0.0, 0.9), ("rotate", 0.0, 180.0), ("stroke_dropout", 0.0, 0.95),
                             ("jitter", 0.0, 64.0)):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or not lo <= v <= hi:
                raise ValueError(f"augmentation {name}={v!r} is not a number in [{lo:g}, {hi:g}]")

    @property
    def active(self) -> bool:
        """Whether any transform is switched on."""
        return bool(self.scale or self.rotate or self.stroke_dropout or self.jitter)


def _stroke_ids(pen: np.ndarray) -> np.ndarray:
    """Stroke number of every point: a stroke ends at (and includes) a point with ``pen_lift = 1``."""
    ends = (pen != 0).astype(np.int64)
    return np.concatenate([[0], np.cumsum(ends)[:-1]]) if len(pen) else np.zeros(0, np.int64)


def augment_stroke3(seq: np.ndarray, rng: np.random.Generator, aug: Augment) -> np.ndarray:
    """One augmented copy of stroke-3 ``seq`` ``[L, 3]`` (any integer dtype) as int16 ``[L', 3]``, ``L' <= L``."""
    s = np.asarray(seq)
    if len(s) == 0 or not aug.active:
        return s.astype(np.int16, copy=True)
    pts = np.cumsum(s[:, :2].astype(np.float64), axis=0)
    pen = (s[:, 2] != 0).astype(np.int16)
    if aug.stroke_dropout > 0:
        sid = _stroke_ids(pen)
        n = int(sid[-1]) + 1
        keep = rng.random(n) >= aug.stroke_dropout
        if not keep.any():
            keep[rng.integers(n)] = True
        rows = keep[sid]
        pts, pen = pts[rows], pen[rows]
    centre = (pts.min(axis=0) + pts.max(axis=0)) / 2
    m = np.eye(2)
    if aug.scale > 0:
        m = np.diag(rng.uniform(1 - aug.scale, 1 + aug.scale, size=2)) @ m
    if aug.rotate > 0:
        a = math.radians(float(rng.uniform(-aug.rotate, aug.rotate)))
        m = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]) @ m
    pts = (pts - centre) @ m.T + centre
    if aug.jitter > 0:
        pts = pts + rng.normal(0.0, aug.jitter, size=pts.shape)
    absolute = np.round(pts).astype(np.int64)
    deltas = np.diff(absolute, axis=0, prepend=np.zeros((1, 2), np.int64))
    out = np.empty((len(absolute), 3), dtype=np.int16)
    out[:, :2] = np.clip(deltas, _I16.min, _I16.max)
    out[:, 2] = pen
    return out


def augment_batch(seqs: Sequence[np.ndarray], keys: Sequence[int] | np.ndarray, aug: Augment, seed: int,
                  epoch: int) -> list[np.ndarray]:
    """Augmented copies of ``seqs``; drawing ``keys[i]`` (its index in the split) seeds its own generator."""
    if not aug.active:
        return [np.asarray(q).astype(np.int16, copy=True) for q in seqs]
    return [augment_stroke3(q, np.random.default_rng([int(seed), int(epoch), int(k)]), aug)
            for q, k in zip(seqs, keys, strict=True)]
