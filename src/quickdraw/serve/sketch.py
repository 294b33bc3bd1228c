""""Finish my drawing" for ``quickdraw serve --sketch-checkpoint``: ``POST /api/complete`` and a page button.

Plugged in through the app's :class:`~quickdraw.serve.app.Extension` point (no route of the app is edited): the
route, and ``static/js/complete.js``, which adds a *Finish it* button to the toolbar and animates the answer.

A request is ``{"drawing": [...], "n": 1, "temperature": 0.4, "seed": 0, "max_len": 150}`` (all but ``drawing``
optional). The drawing is the page's raw ``[[x...], [y...], [t...]]`` strokes (simplified exactly as
``fetch --format raw --simplify`` does, like ``/api/predict``) or already simplified ``[[x...], [y...]]``; its
stroke-3 becomes the decoder's prefix after S0 (:func:`quickdraw.models.sketch.complete`), and the answer holds
``n`` continuations as strokes -- in the simplified 0..255 frame (``strokes_simplified``) and mapped back into
the request's own frame (``strokes``, with ``t`` continuing after the drawing's last time), ready to append to the
pad. An empty drawing is allowed: the model then draws from scratch.

Bounds as ``/api/predict`` (:class:`~quickdraw.serve.model.Limits`: body bytes, points, strokes) plus ``n <=
MAX_N``, ``max_len <= MAX_STEPS``, ``0 < temperature <= MAX_TEMPERATURE``; sampling runs in a worker thread.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import anyio
import numpy as np
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from quickdraw.datasets.render import strokes_from_sequence
from quickdraw.errors import BadRecordError
from quickdraw.models.sketch import complete, load_sketch
from quickdraw.pipeline.predict import check_drawing, is_raw_drawing, parse_line, simplify_raw_drawing
from quickdraw.serve.app import STATIC, Extension, _json, _read_body
from quickdraw.serve.model import LimitError, Limits, _count
from quickdraw.strokes import drawing_to_stroke3

__all__ = ["MAX_N", "MAX_STEPS", "MAX_TEMPERATURE", "Completer", "sketch_extension"]

MAX_N = 8
MAX_STEPS = 250
MAX_TEMPERATURE = 2.0
#: Milliseconds between two generated points in the raw frame (the pad's t must keep growing).
POINT_MS = 16


class Completer:
    """A Sketch-RNN checkpoint loaded once, continuing drawings (thread-safe: sampling only reads the weights)."""

    def __init__(self, checkpoint: str | os.PathLike[str], limits: Limits | None = None) -> None:
        self.checkpoint = Path(checkpoint)
        self.limits = limits or Limits()
        self.model, self.info = load_sketch(self.checkpoint)
        self.classes: list[str] = list(self.info.get("classes") or [])
        self._lock = threading.Lock()
        self.requests = 0

    def describe(self) -> dict[str, Any]:
        """What ``/api/health`` lists under the extension: the classes it learned and the request bounds."""
        return {"classes": self.classes, "step": self.info.get("step"), "max_n": MAX_N, "max_len": MAX_STEPS,
                "max_temperature": MAX_TEMPERATURE}

    def _option(self, record: dict[str, Any], key: str, default: Any, lo: float, hi: float, kind: type) -> Any:
        v = record.get(key, default)
        ok = not isinstance(v, bool) and (isinstance(v, int) if kind is int else isinstance(v, (int, float)))
        if not ok or not (lo < v <= hi if key == "temperature" else lo <= v <= hi):
            rng = f"0 < {key} <= {hi:g}" if key == "temperature" else f"{lo:g}..{hi:g}"
            raise BadRecordError("request", 1, f"bad {key}", f"{key} must be a {'whole ' if kind is int else ''}"
                                 f"number in {rng}, got {str(v)[:40]!r}")
        return v

    def complete_body(self, body: bytes) -> dict[str, Any]:
        """Answer one request body; :class:`BadRecordError` / :class:`LimitError` name what is wrong."""
        record = parse_line(body, "request", 1)
        strokes, points = _count(record.get("drawing"))  # the bounds /api/predict holds, counted the same way
        if strokes > self.limits.max_strokes:
            raise LimitError("max_strokes", strokes, self.limits.max_strokes, 422, "strokes in the drawing")
        if points > self.limits.max_points:
            raise LimitError("max_points", points, self.limits.max_points, 422, "points in the drawing")
        n = self._option(record, "n", 1, 1, MAX_N, int)
        temperature = float(self._option(record, "temperature", 0.4, 0.0, MAX_TEMPERATURE, float))
        max_len = self._option(record, "max_len", 150, 1, MAX_STEPS, int)
        seed = record.get("seed")
        if seed is not None:
            seed = self._option(record, "seed", 0, 0, 2**32 - 1, int)
        drawing = record["drawing"]
        raw = is_raw_drawing(drawing)
        frame = (0.0, 0.0, 1.0)
        t_last = 0.0
        if raw:
            simplified = simplify_raw_drawing(drawing, "request", 1) if drawing else []
            if drawing:
                xs = np.array([v for s in drawing for v in s[0]], np.float64)
                ys = np.array([v for s in drawing for v in s[1]], np.float64)
                ext = float(max(xs.max() - xs.min(), ys.max() - ys.min()))
                # simplify: v = (x - min) * 255 / extent; the answer goes back through the inverse.
                frame = (float(xs.min()), float(ys.min()), 255.0 / ext if ext > 0 else 1.0)
                t_last = float(max(max(s[2]) for s in drawing if s[2]))
        else:
            simplified = check_drawing(drawing, "request", 1)
        prefix = drawing_to_stroke3(simplified)
        grid = complete(self.model, prefix, n, temperature, max_len=max_len, seed=seed)
        n_prefix_strokes = len(strokes_from_sequence(np.asarray(prefix, np.float64), "stroke3")) if len(prefix) else 0
        sketches = []
        x0, y0, k = frame
        for i, seq in enumerate(grid.sketches):
            cont = strokes_from_sequence(seq, "stroke5")[n_prefix_strokes:]
            simp = [[np.round(s[:, 0], 2).tolist(), np.round(s[:, 1], 2).tolist()] for s in cont]
            mapped: list[list[list[float]]] = []
            t = t_last
            for s in cont:
                ts = [t + POINT_MS * (j + 1) for j in range(len(s))]
                t = ts[-1]
                mapped.append([np.round(s[:, 0] / k + x0, 2).tolist(), np.round(s[:, 1] / k + y0, 2).tolist(),
                               [int(round(v)) for v in ts]])
            sketches.append({"strokes": mapped if raw else simp, "strokes_simplified": simp,
                             "ended": bool(grid.ended[i]), "steps": len(seq) - 1 - grid.prefix_length})
        with self._lock:
            self.requests += 1
        return {"input": "raw" if raw else "simplified", "prefix_steps": int(len(prefix)), "temperature": temperature,
                "seed": seed, "sketches": sketches, "model": {"classes": self.classes, "step": self.info.get("step")}}


def sketch_extension(completer: Completer, *, inference_threads: int = 2) -> Extension:
    """The :class:`Extension` that adds ``POST /api/complete`` and the page's *Finish it* button."""
    limiter = anyio.CapacityLimiter(max(1, inference_threads))

    async def complete_route(request: Request) -> Response:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            return _json({"error": f"Content-Type must be application/json, got {ctype or 'none'!r}"}, 415)
        try:
            body = await _read_body(request, completer.limits.max_body_bytes)
            answer = await anyio.to_thread.run_sync(completer.complete_body, body, limiter=limiter)
        except LimitError as exc:
            return _json(exc.to_dict(), exc.status)
        except BadRecordError as exc:
            status = 400 if exc.reason in ("malformed JSON", "non-finite number", "too deep") else 422
            return _json({"error": str(exc), "reason": exc.reason}, status)
        return _json(answer)

    return Extension(name="sketch", routes=[Route("/api/complete", complete_route, methods=["POST"])],
                     static_dir=STATIC / "js", module="complete.js", info=completer.describe())
