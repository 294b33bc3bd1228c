"""Classify drawings in the dataset's ndjson format with a trained checkpoint.

Input lines look like the Quick, Draw! simplified files: ``{"drawing": [[[x...], [y...]], ...], ...}``; other
keys (``key_id``, ``word``, ...) are carried through to the output so results can be matched to inputs.
Drawings are encoded with the same stroke-3 encoder the dataset pipeline uses and put through prepare's
length rules (``quickdraw.strokes.apply_length_rules`` with the ``min_len``/``max_len``/``on_long`` recorded in
the checkpoint's cache info; 6/250/truncate for checkpoints that predate them) so the model sees input exactly
like what it was trained on. A drawing the rules drop (too short, or too long under ``on_long: drop``) gets a
:class:`Prediction` with no classes and ``skipped`` saying why, instead of a made-up answer.

Input is never trusted (DESIGN "Safety contract"): each line is judged on its own by :func:`parse_line` and
:func:`check_drawing`, and a bad line becomes a :class:`Prediction` with ``error`` (the reason) and no classes,
while the other lines are predicted. Bad means: longer than :data:`MAX_LINE_CHARS`, not JSON, nested deeper than
:data:`MAX_DEPTH`, a non-finite number (``Infinity``, ``NaN``, ``1e400``), not an object with a ``drawing``, a
stroke that is not ``[[x...], [y...]]`` of equal length, or a coordinate that is not a whole number in
``0..MAX_COORD`` (32767: every delta between two such coordinates fits the int16 stroke-3, so nothing wraps).
When *every* line is bad there is nothing to show: :func:`predict_records` raises the first line's
:class:`BadRecordError`.

A drawing may also be *raw* (the bucket's ``full/raw`` layout: strokes ``[[x...], [y...], [t...]]`` with float
screen coordinates and milliseconds, as the ``quickdraw serve`` canvas captures them). It is checked with
fetch's raw-record rules and simplified by :func:`simplify_raw_drawing`, i.e. by the very function
``fetch --format raw --simplify`` uses (:func:`quickdraw.sources.raw.simplify_strokes`), before the steps above,
so a raw drawing gets the same answer here, from ``fetch --format raw --simplify`` then predict, and from the
web page.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np
import orjson
import torch

from quickdraw.errors import BadRecordError, CheckpointError
from quickdraw.models import GRUClassifier
from quickdraw.strokes import (
    OnLong,
    Stroke3Batch,
    apply_length_rules,
    drawing_to_stroke3,
)

__all__ = [
    "MAX_COORD", "MAX_DEPTH", "MAX_LINE_CHARS", "LengthRules", "Prediction", "check_drawing", "classify",
    "drawing_to_stroke3", "is_raw_drawing", "parse_line", "predict_records", "read_ndjson", "simplify_raw_drawing",
]

log = logging.getLogger(__name__)

# prepare's defaults: checkpoints written before train stored min_len/on_long were trained on these.
DEFAULT_MIN_LEN = 6
DEFAULT_MAX_LEN = 250
DEFAULT_ON_LONG: OnLong = "truncate"

#: Longest line read (characters); a real simplified drawing is ~0.5 KB. Longer lines are skipped unread.
MAX_LINE_CHARS = 4 << 20
#: Deepest JSON nesting accepted (a drawing needs 4: object, drawing, stroke, coordinates).
MAX_DEPTH = 32
#: Largest coordinate: with coordinates in 0..MAX_COORD every stroke-3 delta fits int16.
MAX_COORD = 32767


@dataclass
class Prediction:
    """Top-k classes of one drawing; ``record`` holds the input's other keys (without ``drawing``)."""

    line: int
    top: list[tuple[str, float]]
    record: dict[str, Any] = field(default_factory=dict)
    #: Why the drawing was not classified (the length rule that dropped it, or the bad input); None when it was.
    skipped: str | None = None
    #: For a bad input line, the reason (``malformed JSON``, ``non-finite number``, ...); None otherwise.
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``line``, the record's other keys, ``top`` and, for a dropped drawing, ``skipped``
        (plus ``error``, the reason, for a bad input line)."""
        doc = {"line": self.line, **self.record, "top": [{"class": c, "prob": p} for c, p in self.top]}
        if self.skipped is not None:
            doc["skipped"] = self.skipped
        if self.error is not None:
            doc["error"] = self.error
        return doc


def _depth_problem(obj: Any) -> bool:
    """Whether ``obj`` nests deeper than :data:`MAX_DEPTH` (iterative: no recursion on hostile input)."""
    stack = [(obj, 1)]
    while stack:
        o, d = stack.pop()
        if isinstance(o, (list, dict)):
            if d > MAX_DEPTH:
                return True
            stack.extend((v, d + 1) for v in (o.values() if isinstance(o, dict) else o))
    return False


def parse_line(line: str | bytes, source: str = "<stdin>", n: int = 0) -> dict[str, Any]:
    """One input line as a record (a dict with a ``drawing``); :class:`BadRecordError` naming the reason otherwise.

    orjson rather than :mod:`json`: it refuses ``Infinity``/``NaN`` and nesting beyond 1024 levels itself
    (json accepts the former and raises ``RecursionError`` on the latter).
    """
    if len(line) > MAX_LINE_CHARS:
        raise BadRecordError(source, n, "line too long", f"{len(line)} characters, at most {MAX_LINE_CHARS}")
    try:
        rec = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        msg = str(exc)
        text = line if isinstance(line, str) else line.decode("utf-8", "replace")
        at = text[exc.pos : exc.pos + 9] if isinstance(exc.pos, int) else ""
        if "infinity" in msg or at.startswith(("Infinity", "NaN", "-Infinity")) or text[max(exc.pos - 1, 0):].startswith("-Inf"):
            raise BadRecordError(source, n, "non-finite number", msg) from None
        if "depth limit" in msg:
            raise BadRecordError(source, n, "too deep", f"JSON nested deeper than {MAX_DEPTH} levels") from None
        raise BadRecordError(source, n, "malformed JSON", msg) from None
    if not isinstance(rec, dict) or "drawing" not in rec:
        raise BadRecordError(source, n, "missing key", "expected an object with a 'drawing' key")
    if _depth_problem(rec):
        raise BadRecordError(source, n, "too deep", f"JSON nested deeper than {MAX_DEPTH} levels")
    return rec


def _bad_coords(values: list[Any], what: str) -> str | None:
    for v in values:
        if type(v) is int:
            if 0 <= v <= MAX_COORD:
                continue
            return f"{what} coordinate {v} outside 0..{MAX_COORD}"
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return f"{what} coordinate {str(v)[:40]!r} is a {type(v).__name__}, not a number"
        if not math.isfinite(v):
            return f"{what} coordinate {v} is not finite"
        if not 0 <= v <= MAX_COORD:
            return f"{what} coordinate {v:g} outside 0..{MAX_COORD}"
        if v != int(v):
            return f"{what} coordinate {v} is not a whole number"
    return None


def check_drawing(drawing: Any, source: str = "<stdin>", n: int = 0) -> list[list[list[int]]]:
    """``drawing`` as ``[[xs, ys], ...]`` of ints if it is a valid drawing, else :class:`BadRecordError`.

    A stroke is ``[[x...], [y...]]`` (a third list, e.g. raw ``t``, is ignored here: :func:`predict_records`
    simplifies raw drawings first, see :func:`is_raw_drawing`) of equal length; coordinates are whole numbers
    in ``0..MAX_COORD`` (the simplified data use 0..255).
    """
    if not isinstance(drawing, list):
        raise BadRecordError(source, n, "wrong type", f"drawing is a {type(drawing).__name__}, expected a list")
    out = []
    for i, stroke in enumerate(drawing):
        if (not isinstance(stroke, list) or len(stroke) not in (2, 3)
                or not all(isinstance(c, list) for c in stroke)):
            raise BadRecordError(source, n, "wrong type", f"stroke {i} is a {type(stroke).__name__}, "
                                 "expected [[x...], [y...]]")
        xs, ys = stroke[0], stroke[1]
        if len(xs) != len(ys):
            raise BadRecordError(source, n, "bad drawing", f"stroke {i} has {len(xs)} x but {len(ys)} y values")
        problem = _bad_coords(xs, f"stroke {i}: x") or _bad_coords(ys, f"stroke {i}: y")
        if problem:
            reason = "non-finite number" if "not finite" in problem else (
                "coordinate out of range" if "outside" in problem else "wrong type")
            raise BadRecordError(source, n, reason, problem)
        out.append([[int(v) for v in xs], [int(v) for v in ys]])
    return out


def _bounded_lines(stream: IO[Any]) -> Iterator[tuple[str | bytes, bool]]:
    """``(line, too_long)`` for each physical line; a line over the limit is skipped without being kept."""
    while True:
        line = stream.readline(MAX_LINE_CHARS + 1)
        if not line:
            return
        nl = "\n" if isinstance(line, str) else b"\n"
        if len(line) > MAX_LINE_CHARS and not line.endswith(nl):
            while True:  # discard the rest of the line in bounded pieces
                rest = stream.readline(1 << 20)
                if not rest or rest.endswith(nl):
                    break
            yield line[:0], True
            continue
        yield line, False


def read_ndjson(stream: IO[str], source: str = "<stdin>") -> Iterator[tuple[int, dict[str, Any] | BadRecordError]]:
    """``(line number, record)`` for each non-blank line; a bad line gives ``(line number, BadRecordError)``.

    Never raises for bad content (only for an unreadable stream, e.g. bytes that are not UTF-8, named with
    the line); :func:`predict_records` turns the errors into per-line results.
    """
    n = 0
    lines = _bounded_lines(stream)
    while True:
        try:
            line, too_long = next(lines)
        except StopIteration:
            return
        except UnicodeDecodeError as exc:
            raise BadRecordError(source, n + 1, "not UTF-8", str(exc)) from None
        n += 1
        if too_long:
            yield n, BadRecordError(source, n, "line too long", f"more than {MAX_LINE_CHARS} characters")
            continue
        if not line.strip():
            continue
        try:
            yield n, parse_line(line, source, n)
        except BadRecordError as exc:
            yield n, exc


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
        if not isinstance(cache, dict):
            cache = {}
        min_len, max_len, on_long = cache.get("min_len"), cache.get("max_len"), cache.get("on_long")
        return cls(
            min_len=DEFAULT_MIN_LEN if min_len is None else int(min_len),
            max_len=DEFAULT_MAX_LEN if max_len is None else int(max_len),
            on_long=DEFAULT_ON_LONG if on_long is None else on_long,
        )


def is_raw_drawing(drawing: Any) -> bool:
    """Whether ``drawing`` is in the raw layout: some stroke carries a third (``t``) list."""
    return isinstance(drawing, list) and any(
        isinstance(s, list) and len(s) == 3 and isinstance(s[2], list) for s in drawing)


#: Stand-in metadata, so that a bare raw drawing can be judged by fetch's own raw-record check.
_RAW_META = {"word": "-", "countrycode": "-", "timestamp": "2017-01-01 00:00:00 UTC", "recognized": True,
             "key_id": "0"}


def simplify_raw_drawing(drawing: Any, source: str = "<stdin>", n: int = 0) -> list[list[list[int]]]:
    """A raw drawing (``[[x...], [y...], [t...]]`` per stroke, any float coordinates) simplified as
    ``fetch --format raw --simplify`` does it: checked with :func:`quickdraw.sources.raw.check_raw_record` and
    put through :func:`quickdraw.sources.raw.simplify_strokes` (align, scale to 0..255, resample, RDP, round).
    Returns the simplified ``[[xs], [ys]]`` strokes; :class:`BadRecordError` naming the reason otherwise.
    """
    # Imported here: numba's import costs ~0.5 s and only raw input needs it.
    from quickdraw.sources.raw import check_raw_record, simplify_strokes

    verdict = check_raw_record({**_RAW_META, "drawing": drawing})
    if verdict is not None:
        raise BadRecordError(source, n, "bad raw drawing", f"{verdict[0]}: {verdict[1]}")
    xs = [v for s in drawing for v in s[0]]
    ys = [v for s in drawing for v in s[1]]
    pts = np.array([len(s[0]) for s in drawing], np.int64)
    sx, sy, spts = simplify_strokes(np.asarray(xs, np.float64), np.asarray(ys, np.float64), pts,
                                    np.array([len(drawing)], np.int64))
    ends = np.cumsum(spts)
    return [[sx[e - k : e].astype(int).tolist(), sy[e - k : e].astype(int).tolist()] for k, e in zip(spts, ends)]


def _encode(drawing: Any, rules: LengthRules, source: str, line: int) -> tuple[np.ndarray | None, str | None]:
    """``(stroke-3 after the length rules, None)``, or ``(None, reason)`` when the rules drop the drawing."""
    if is_raw_drawing(drawing):
        drawing = simplify_raw_drawing(drawing, source, line)
    checked = check_drawing(drawing, source, line)
    try:
        seq = drawing_to_stroke3(checked)
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


def require_stroke3(model: GRUClassifier, where: str = "the checkpoint") -> None:
    """Raise :class:`CheckpointError` unless ``model`` reads stroke-3: predict and serve turn ndjson drawings
    into stroke-3 only, and a stroke3t model (input_size 4) needs the raw timing no simplified line has."""
    if getattr(getattr(model, "config", None), "input_size", 3) != 3:  # (tests of the length rules pass no model)
        raise CheckpointError(f"{where}: this model reads stroke3t (dx, dy, dt, pen_lift: timed) sequences, and "
                              f"predict/serve feed stroke-3 only; score it on its cache with `quickdraw evaluate`")


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
    A bad record (a :class:`BadRecordError` from :func:`read_ndjson`, or a record whose drawing fails
    :func:`check_drawing`) gets ``top == []``, ``error`` (the reason) and ``skipped`` (the full message); if
    every record is bad, the first one's :class:`BadRecordError` is raised instead.
    """
    require_stroke3(model)
    classes = list(info["classes"])
    rules = LengthRules.from_info(info)
    lines, seqs, extras, skipped, errors = [], [], [], [], []
    first_error: BadRecordError | None = None
    for line, rec in records:
        err: BadRecordError | None = rec if isinstance(rec, BadRecordError) else None
        seq, reason = None, None
        if err is None and (not isinstance(rec, dict) or "drawing" not in rec):
            err = BadRecordError(source, line, "missing key", "expected an object with a 'drawing' key")
        if err is None:
            try:
                seq, reason = _encode(rec["drawing"], rules, source, line)
            except BadRecordError as exc:
                err = exc
        if err is not None:
            log.warning("%s", err)
            first_error = first_error or err
            reason = str(err)
        elif reason is not None:
            log.warning("%s:%d: not classified (%s)", source, line, reason)
        lines.append(line)
        seqs.append(seq)
        skipped.append(reason)
        errors.append(None if err is None else err.reason)
        # The other keys travel to the output (e.g. key_id, to match results to inputs), unless hostile.
        keep = isinstance(rec, dict) and (err is None or not _depth_problem(rec))
        extras.append({k: v for k, v in rec.items() if k != "drawing"} if keep else {})
    if first_error is not None and all(e is not None for e in errors):
        raise first_error
    kept = [i for i, seq in enumerate(seqs) if seq is not None]
    row_of = {i: r for r, i in enumerate(kept)}
    k = max(1, min(top_k, len(classes)))
    probs = classify(model, [seqs[i] for i in kept], batch_size) if kept else np.zeros((0, len(classes)))
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    out = []
    for i, (line, extra, reason) in enumerate(zip(lines, extras, skipped, strict=True)):
        r = row_of.get(i)
        ranked = [] if r is None else [(classes[j], float(probs[r, j])) for j in top[r]]
        out.append(Prediction(line, ranked, extra, reason, errors[i]))
    return out
