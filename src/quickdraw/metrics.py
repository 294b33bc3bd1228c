"""Pure-numpy classification metrics: top-k accuracy, per-class accuracy, confusion, calibration (ECE).

Kept free of torch so evaluation output can be recomputed from saved probabilities alone. Calibration follows
Guo et al. 2017 ("On Calibration of Modern Neural Networks"): confidence = max probability, equal-width bins
``(lo, hi]`` over [0, 1] (a confidence of exactly 0 falls in the first bin), ECE = sum over bins of
``|bin| / n * |accuracy(bin) - mean confidence(bin)|``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "confusion_matrix",
    "expected_calibration_error",
    "per_class_accuracy",
    "reliability_bins",
    "top_k_accuracy",
    "top_k_correct",
]


def top_k_correct(scores: ArrayLike, labels: ArrayLike, k: int) -> np.ndarray:
    """Bool ``[n]``: is the true label among the ``k`` highest scores of each row.

    Ties are broken towards the lower class index (stable sort on negated scores), so results are
    deterministic.
    """
    s = np.asarray(scores)
    y = np.asarray(labels).astype(np.int64)
    if s.ndim != 2 or y.shape != (s.shape[0],):
        raise ValueError(f"scores must be [n, classes] and labels [n]; got {s.shape} and {y.shape}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    k = min(k, s.shape[1])
    top = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return (top == y[:, None]).any(axis=1)


def top_k_accuracy(scores: ArrayLike, labels: ArrayLike, k: int = 1) -> float:
    """Fraction of rows whose true label is among the ``k`` highest scores (NaN for no rows)."""
    hit = top_k_correct(scores, labels, k)
    return float(hit.mean()) if hit.size else float("nan")


def confusion_matrix(labels: ArrayLike, preds: ArrayLike, n_classes: int) -> np.ndarray:
    """Counts ``[n_classes, n_classes]`` with rows = actual class and columns = predicted class."""
    y = np.asarray(labels).astype(np.int64)
    p = np.asarray(preds).astype(np.int64)
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (y, p), 1)
    return cm


def per_class_accuracy(labels: ArrayLike, preds: ArrayLike, n_classes: int) -> np.ndarray:
    """Recall per class ``[n_classes]`` (NaN for classes absent from ``labels``)."""
    cm = confusion_matrix(labels, preds, n_classes)
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan)


def reliability_bins(confidences: ArrayLike, correct: ArrayLike, n_bins: int = 15) -> list[dict[str, Any]]:
    """Per equal-width bin: ``lo, hi, count, accuracy, confidence`` (accuracy/confidence None if empty)."""
    c = np.asarray(confidences, dtype=np.float64)
    ok = np.asarray(correct).astype(bool)
    if c.shape != ok.shape:
        raise ValueError(f"confidences and correct differ in shape: {c.shape} vs {ok.shape}")
    if c.size and (c.min() < 0 or c.max() > 1):
        raise ValueError("confidences must lie in [0, 1]")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # Right-closed bins (lo, hi]: ceil(c * n) - 1; c == 0 is clipped into bin 0.
    idx = np.clip(np.ceil(c * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    out = []
    for b in range(n_bins):
        sel = idx == b
        n = int(sel.sum())
        out.append({
            "lo": float(edges[b]),
            "hi": float(edges[b + 1]),
            "count": n,
            "accuracy": float(ok[sel].mean()) if n else None,
            "confidence": float(c[sel].mean()) if n else None,
        })
    return out


def expected_calibration_error(confidences: ArrayLike, correct: ArrayLike, n_bins: int = 15) -> float:
    """ECE with ``n_bins`` equal-width bins (0.0 for no samples)."""
    bins = reliability_bins(confidences, correct, n_bins)
    n = sum(b["count"] for b in bins)
    if n == 0:
        return 0.0
    return float(sum(b["count"] / n * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"]))
