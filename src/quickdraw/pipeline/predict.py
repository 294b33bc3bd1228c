"""Classify drawings in the dataset's ndjson format with a trained checkpoint.

Input lines look like the Quick, Draw! simplified files: ``{"drawing": [[[x...], [y...]], ...], ...}``; other
keys (``key_id``, ``word``, ...) are carried through to the output so results can be matched to inputs.
Drawings are encoded with the same stroke-3 encoder the dataset pipeline uses and put through prepare's
length rules (``quickdraw.strokes.apply_length_rules`` with the ``min_len``/``max_len``/``on_long`` recorded in
the checkpoint's cache info; 6/250/truncate for checkpoints that predate them) so the model sees input exactly
like what it was trained on. A drawing the rules drop (too short, or too long under ``on_long: drop``) gets a
:class:`Prediction` with no classes and ``skipped`` saying why, instead of a made-up answer.
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
from quickdraw.strokes import (
    OnLong,
    Stroke3Batch,
    apply_length_rules,
    drawing_to_stroke3,
)

__all__ = ["LengthRules", "Prediction", "classify", "drawing_to_stroke3", "predict_records", "read_ndjson"]

log = logging.getLogger(__name__)

# prepare's defaults: checkpoints written before train stored min_len/on_long were trained on these.
DEFAULT_MIN_LEN = 6
DEFAULT_MAX_LEN = 250
DEFAULT_ON_LONG: OnLong = "truncate"


@dataclass
class Prediction:
    """Top-k classes of one drawing; ``record`` holds the input's other keys (without ``drawing``)."""

    line: int
    top: list[tuple[str, float]]
    record: dict[str, Any] = field(default_factory=dict)
    #: Why the drawing was not classified (the length rule that dropped it); None when it was.
    skipped: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``line``, the record's other keys, ``top`` and, for a dropped drawing, ``skipped``."""
        doc = {"line": self.line, **self.record, "top": [{"class": c, "prob": p} for c, p in self.top]}
        if self.skipped is not None:
            doc["skipped"] = self.skipped
        return doc


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


@dataclass(frozen=True)
class LengthRules:
    """prepare's length rules as the checkpoint's cache info records them (docs/FORMATS.md section 2)."""

    min_len: int = DEFAULT_MIN_LEN
    max_len: int = DEFAULT_MAX_LEN
    on_long: OnLong = DEFAULT_ON_LONG

    @classmethod
    def from_info(cls, info: dict[str, Any]) -> LengthRules:
        """The rules of the cache the checkpoint was trained on; each missing value falls back to the default."""
        cache = info.get("cache") or {}
        min_len, max_len, on_long = cache.get("min_len"), cache.get("max_len"), cache.get("on_long")
        return cls(
            min_len=DEFAULT_MIN_LEN if min_len is None else int(min_len),
            max_len=DEFAULT_MAX_LEN if max_len is None else int(max_len),
            on_long=DEFAULT_ON_LONG if on_long is None else on_long,
        )


def _encode(drawing: Any, rules: LengthRules, source: str, line: int) -> tuple[np.ndarray | None, str | None]:
    """``(stroke-3 after the length rules, None)``, or ``(None, reason)`` when the rules drop the drawing."""
    try:
        seq = drawing_to_stroke3(drawing)
    except (ValueError, TypeError, IndexError) as exc:
        raise BadRecordError(source, line, "bad drawing", str(exc)) from None
    if len(seq) == 0:
        raise BadRecordError(source, line, "empty drawing")
    # The very function prepare uses, so a truncated drawing also ends with pen_lift = 1 as in training.
    res = apply_length_rules(
        Stroke3Batch(steps=seq, offsets=np.array([0, len(seq)], dtype=np.int64)),
        rules.min_len, rules.max_len, rules.on_long,
    )
    if res.too_short:
        return None, f"too_short: {len(seq)} points, the model was trained on at least min_len={rules.min_len}"
    if res.too_long_dropped:
        return None, (f"too_long_dropped: {len(seq)} points, the model was trained on at most "
                      f"max_len={rules.max_len} (on_long: drop)")
    return res.batch[0], None


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
    """Top-k predictions for ``(line, record)`` pairs as :func:`read_ndjson` yields them, one per record.

    A drawing the checkpoint's length rules drop gets ``top == []`` and ``skipped`` set (and a logged warning).
    """
    classes = list(info["classes"])
    rules = LengthRules.from_info(info)
    lines, seqs, extras, skipped = [], [], [], []
    for line, rec in records:
        seq, reason = _encode(rec["drawing"], rules, source, line)
        if reason is not None:
            log.warning("%s:%d: not classified (%s)", source, line, reason)
        lines.append(line)
        seqs.append(seq)
        skipped.append(reason)
        extras.append({k: v for k, v in rec.items() if k != "drawing"})
    kept = [i for i, seq in enumerate(seqs) if seq is not None]
    row_of = {i: r for r, i in enumerate(kept)}
    k = max(1, min(top_k, len(classes)))
    probs = classify(model, [seqs[i] for i in kept], batch_size) if kept else np.zeros((0, len(classes)))
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    out = []
    for i, (line, extra, reason) in enumerate(zip(lines, extras, skipped, strict=True)):
        r = row_of.get(i)
        ranked = [] if r is None else [(classes[j], float(probs[r, j])) for j in top[r]]
        out.append(Prediction(line, ranked, extra, reason))
    return out
