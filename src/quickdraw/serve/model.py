"""The model behind ``quickdraw serve``: one checkpoint, loaded once, and the request limits it is used under.

Every drawing goes through :func:`quickdraw.pipeline.predict.predict_records`, the function behind
``quickdraw predict``, with the request body parsed by :func:`quickdraw.pipeline.predict.parse_line` (the same
bounded, orjson-based parser as one ndjson line). A raw drawing (strokes ``[[x...], [y...], [t...]]``, what the
page's canvas captures) is simplified inside ``predict_records`` by the function ``fetch --format raw --simplify``
uses. So the page, ``curl`` and the CLI cannot disagree: there is no second code path to drift.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from quickdraw.errors import BadRecordError, QuickDrawError
from quickdraw.models import load_checkpoint
from quickdraw.pipeline.predict import is_raw_drawing, parse_line, predict_records, require_stroke3

__all__ = ["Limits", "LimitError", "Predictor"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """Bounds on one request. The defaults are ~10x the largest drawing of the shared raw sample (1,174 points,
    55 strokes, 27 KB as JSON), so a real drawing never meets them and a hostile one costs milliseconds."""

    #: Request body, in bytes (413 beyond it, checked on ``Content-Length`` and again while reading).
    max_body_bytes: int = 1 << 20
    #: Points of one drawing, all strokes together (422 beyond it).
    max_points: int = 10_000
    #: Strokes of one drawing (422 beyond it).
    max_strokes: int = 500
    #: Largest ``top_k`` a request may ask for (it is also capped at the number of classes).
    max_top_k: int = 50

    def to_dict(self) -> dict[str, int]:
        """JSON-ready form (``/api/health`` shows it so the page and clients know the bounds)."""
        return asdict(self)


class LimitError(QuickDrawError):
    """A request over one of the :class:`Limits`; ``limit`` names the field, ``status`` is the HTTP code."""

    def __init__(self, limit: str, value: int, maximum: int, status: int, what: str) -> None:
        self.limit, self.value, self.maximum, self.status = limit, value, maximum, status
        super().__init__(f"{what}: {value} is over the limit {limit}={maximum}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON error body: the message, the limit's name, its value and what the request had."""
        return {"error": str(self), "limit": self.limit, "max": self.maximum, "value": self.value}


def _count(drawing: Any) -> tuple[int, int]:
    """``(strokes, points)`` of a drawing as far as its shape allows (bad shapes are judged later, by predict)."""
    if not isinstance(drawing, list):
        return 0, 0
    points = 0
    for stroke in drawing:
        if isinstance(stroke, list) and stroke and isinstance(stroke[0], list):
            points += len(stroke[0])
    return len(drawing), points


def _model_version(model: Any) -> str:
    """A short content hash of the loaded weights: two servers answer alike iff their versions match."""
    h = hashlib.blake2b(digest_size=8)
    for key, tensor in sorted(model.state_dict().items()):
        h.update(key.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class Predictor:
    """A checkpoint loaded once, answering one drawing at a time (thread-safe: inference only reads the weights).

    ``checkpoint`` comes from the command line only; nothing in a request chooses a file or a model.
    """

    def __init__(self, checkpoint: str | os.PathLike[str], limits: Limits | None = None) -> None:
        self.checkpoint = Path(checkpoint)
        self.limits = limits or Limits()
        self.model, self.info = load_checkpoint(self.checkpoint, map_location="cpu")
        require_stroke3(self.model, str(self.checkpoint))  # at start-up, not at the first request
        self.classes: list[str] = list(self.info["classes"])
        self.version = _model_version(self.model)
        self._lock = threading.Lock()  # counts only; inference itself runs unlocked
        self.requests = 0

    def describe(self) -> dict[str, Any]:
        """The model as every answer names it: classes, version (weights hash), epoch and training cache."""
        cache = self.info.get("cache") if isinstance(self.info.get("cache"), dict) else {}
        return {
            "classes": self.classes,
            "version": self.version,
            "epoch": self.info.get("epoch"),
            "cache": {k: cache.get(k) for k in ("name", "version", "min_len", "max_len", "on_long")},
        }

    def check_limits(self, record: dict[str, Any]) -> None:
        """Raise :class:`LimitError` (422) when the drawing has more strokes or points than the limits allow."""
        strokes, points = _count(record.get("drawing"))
        if strokes > self.limits.max_strokes:
            raise LimitError("max_strokes", strokes, self.limits.max_strokes, 422, "strokes in the drawing")
        if points > self.limits.max_points:
            raise LimitError("max_points", points, self.limits.max_points, 422, "points in the drawing")

    def top_k(self, record: dict[str, Any]) -> int:
        """The request's ``top_k`` (default 3), checked: a whole number in 1..max_top_k, else BadRecordError."""
        k = record.get("top_k", 3)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= self.limits.max_top_k:
            raise BadRecordError("request", 1, "bad top_k",
                                 f"top_k must be a whole number in 1..{self.limits.max_top_k}, got {str(k)[:40]!r}")
        return k

    def predict_body(self, body: bytes) -> dict[str, Any]:
        """Answer one request body (JSON ``{"drawing": [...], "top_k": 3}``): top-k, why it was skipped, the model.

        Raises :class:`BadRecordError` for a body that is not a valid drawing and :class:`LimitError` for one
        over the limits; both carry a message naming the problem.
        """
        record = parse_line(body, "request", 1)
        self.check_limits(record)
        k = self.top_k(record)
        pred = predict_records(self.model, self.info, [(1, {"drawing": record["drawing"]})], top_k=k,
                               source="request")[0]
        with self._lock:
            self.requests += 1
        return {
            "top": [{"class": c, "prob": p} for c, p in pred.top],
            "skipped": pred.skipped,
            "input": "raw" if is_raw_drawing(record["drawing"]) else "simplified",
            "model": self.describe(),
        }
