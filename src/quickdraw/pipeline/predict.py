"""Classify drawings in the dataset's ndjson format with a trained checkpoint.

Input lines look like the Quick, Draw! simplified files: ``{"drawing": [[[x...], [y...]], ...], ...}``; other
keys (``key_id``, ``word``, ...) are carried through to the output so results can be matched to inputs.
Drawings are encoded with the same stroke-3 encoder the dataset pipeline uses and truncated to the
cache's ``max_len`` (recorded in the checkpoint, default 250) so the model sees what it was trained on.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np
import torch

from quickdraw.errors import BadRecordError
from quickdraw.models import GRUClassifier

__all__ = ["Prediction", "classify", "drawing_to_stroke3", "predict_records", "read_ndjson"]

log = logging.getLogger(__name__)

DEFAULT_MAX_LEN = 250

try:
    from quickdraw.strokes import drawing_to_stroke3
except ImportError:  # pragma: no cover - only until quickdraw.strokes lands

    def drawing_to_stroke3(drawing: Sequence[Sequence[Sequence[int]]]) -> np.ndarray:  # type: ignore[misc]
        """Stand-in for ``quickdraw.strokes.drawing_to_stroke3`` (same encoding, FORMATS.md)."""
        pts, lifts = [], []
        for sx, sy in ((s[0], s[1]) for s in drawing):
            if len(sx) != len(sy):
                raise ValueError(f"stroke has {len(sx)} x but {len(sy)} y values")
            pts.extend(zip(sx, sy, strict=True))
            lifts.extend([0] * (len(sx) - 1) + [1] if len(sx) else [])
        out = np.zeros((len(pts), 3), dtype=np.int16)
        if pts:
            out[:, :2] = np.diff(np.asarray(pts, dtype=np.int32), axis=0, prepend=0)
            out[:, 2] = lifts
        return out


@dataclass
class Prediction:
    """Top-k classes of one drawing; ``record`` holds the input's other keys (without ``drawing``)."""

    line: int
    top: list[tuple[str, float]]
    record: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, **self.record, "top": [{"class": c, "prob": p} for c, p in self.top]}


def read_ndjson(stream: IO[str], source: str = "<stdin>") -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, record)`` for each non-blank line; malformed lines raise :class:`BadRecordError`."""
    for n, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadRecordError(source, n, "malformed JSON", str(exc)) from None
        if not isinstance(rec, dict) or "drawing" not in rec:
            raise BadRecordError(source, n, "missing key", "expected an object with a 'drawing' key")
        yield n, rec


def _encode(drawing: Any, max_len: int, source: str, line: int) -> np.ndarray:
    try:
        seq = drawing_to_stroke3(drawing)
    except (ValueError, TypeError, IndexError) as exc:
        raise BadRecordError(source, line, "bad drawing", str(exc)) from None
    if len(seq) == 0:
        raise BadRecordError(source, line, "empty drawing")
    return seq[:max_len]


@torch.no_grad()
def classify(model: GRUClassifier, sequences: Sequence[np.ndarray], batch_size: int = 256) -> np.ndarray:
    """Softmax probabilities ``[n, K]`` for raw stroke-3 int16 sequences (any lengths, any order)."""
    model.eval()
    device = next(model.parameters()).device
    out = np.zeros((len(sequences), model.config.n_classes), dtype=np.float32)
    # Length-sorted chunks keep padding small, as in training.
    order = np.argsort([len(s) for s in sequences], kind="stable")
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        lengths = torch.tensor([len(sequences[i]) for i in idx], dtype=torch.int64)
        x = torch.zeros(len(idx), int(lengths.max()), 3)
        for r, i in enumerate(idx):
            x[r, : len(sequences[i])] = torch.from_numpy(np.asarray(sequences[i], dtype=np.float32))
        out[idx] = torch.softmax(model(x.to(device), lengths), dim=1).cpu().numpy()
    return out


def predict_records(
    model: GRUClassifier,
    info: dict[str, Any],
    records: Iterable[tuple[int, dict[str, Any]]],
    *,
    top_k: int = 3,
    source: str = "<stdin>",
    batch_size: int = 256,
) -> list[Prediction]:
    """Top-k predictions for ``(line, record)`` pairs as :func:`read_ndjson` yields them."""
    classes = list(info["classes"])
    max_len = int((info.get("cache") or {}).get("max_len") or DEFAULT_MAX_LEN)
    lines, seqs, extras = [], [], []
    for line, rec in records:
        seqs.append(_encode(rec["drawing"], max_len, source, line))
        lines.append(line)
        extras.append({k: v for k, v in rec.items() if k != "drawing"})
    if not seqs:
        return []
    probs = classify(model, seqs, batch_size)
    k = max(1, min(top_k, len(classes)))
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return [
        Prediction(line, [(classes[j], float(probs[r, j])) for j in top[r]], extra)
        for r, (line, extra) in enumerate(zip(lines, extras, strict=True))
    ]
