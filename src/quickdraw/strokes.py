"""Pure-numpy stroke encodings: drawing -> stroke-3 -> stroke-5, length rules, normalisation scale.

Encodings (see docs/FORMATS.md section 2):

* **drawing**: a list of strokes, each ``(xs, ys)`` of absolute coordinates (0..255 in the simplified data).
* **stroke-3**: int16 ``[L, 3]`` rows ``(dx, dy, pen_lift)``; the first row is relative to ``(0, 0)``;
  ``pen_lift = 1`` on the last point of every stroke. ``L`` equals the number of points.
* **stroke-5**: int16 ``[L + 1, 5]`` rows ``(dx, dy, p_down, p_up, p_end)`` exactly as Sketch-RNN's
  ``to_big_strokes`` builds them (``p_up = pen_lift``, ``p_down = 1 - pen_lift``), followed by one
  end-of-drawing row ``(0, 0, 0, 0, 1)``; padding rows (:func:`pad_stroke5`) are ``(0, 0, 0, 0, 1)`` too.

* **stroke-3t**: int16 ``[L, 4]`` rows ``(dx, dy, dt, pen_lift)`` -- stroke-3 plus the milliseconds since the
  previous point (0 on the first), clipped to ``0..DT_CLIP_MS`` (:func:`stroke3t_from_points`). Made from raw
  drawings (the only ones with timing); pen_lift is the *last* column, so code that finds the pen in the
  last column (the length rules) handles stroke-3 and stroke-3t alike.

Length rules count **stroke-3 steps** (= points of the drawing). A stroke-5 sequence is always one step
longer (its end row), so ``max_len=250`` gives stroke-5 sequences of at most 251 rows -- the same
``max_seq_length + 1`` that Sketch-RNN pads to.

Batch work happens on CSR arrays (one flat ``[total, C]`` int16 array plus int64 ``offsets`` of length
``n + 1``; sequence ``i`` is ``steps[offsets[i]:offsets[i + 1]]``) with no Python loop per drawing;
:func:`arrow_drawings_to_stroke3` converts the Arrow ``drawing`` column straight into that form.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa

__all__ = [
    "DT_CLIP_MS",
    "END_STEP",
    "LengthRuleResult",
    "OnLong",
    "Stroke3Batch",
    "apply_length_rules",
    "arrow_drawings_to_stroke3",
    "drawing_to_stroke3",
    "normalizing_scale",
    "scale_from_moments",
    "xy_moments",
    "pad_stroke5",
    "stroke3_batch_to_stroke5",
    "stroke3t_from_points",
    "stroke3_to_points",
    "stroke3_to_stroke5",
    "stroke3_to_strokes",
    "stroke5_to_stroke3",
    "take_ranges",
]

OnLong = Literal["truncate", "drop"]

#: stroke-3t's dt is clipped to 0..DT_CLIP_MS milliseconds: a pause of more than 10 s says nothing more than
#: 10 s, and a clock that ran backwards (negative differences occur in the raw files) says nothing at all.
DT_CLIP_MS = 10_000

#: The stroke-5 end-of-drawing row, also used for padding.
END_STEP: tuple[int, int, int, int, int] = (0, 0, 0, 0, 1)

Int16Array = npt.NDArray[np.int16]
Int64Array = npt.NDArray[np.int64]


# --------------------------------------------------------------------------------------------------- single


def drawing_to_stroke3(drawing: Sequence[Sequence[Sequence[int]]]) -> Int16Array:
    """Encode one drawing (``[[xs, ys], ...]`` of absolute points) as stroke-3 int16 ``[n_points, 3]``.

    >>> drawing_to_stroke3([[[10, 12], [5, 5]], [[0], [0]]]).tolist()
    [[10, 5, 0], [2, 0, 1], [-12, -5, 1]]
    """
    xs: list[int] = []
    ys: list[int] = []
    lifts: list[int] = []
    for stroke in drawing:
        sx, sy = stroke[0], stroke[1]
        if len(sx) != len(sy):
            raise ValueError(f"stroke has {len(sx)} x but {len(sy)} y values")
        if len(sx) == 0:
            continue  # an empty stroke has no point to carry a pen lift
        xs.extend(int(v) for v in sx)
        ys.extend(int(v) for v in sy)
        lifts.extend([0] * (len(sx) - 1) + [1])
    out = np.zeros((len(xs), 3), dtype=np.int16)
    if xs:
        absolute = np.array([xs, ys], dtype=np.int32).T
        out[:, 0:2] = np.diff(absolute, axis=0, prepend=0)
        out[:, 2] = lifts
    return out


def stroke3_to_points(seq: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Absolute ``(x, y, pen_lift)`` int64 ``[L, 3]`` from a stroke-3 sequence (cumulative sum of the deltas)."""
    arr = np.asarray(seq)
    out = np.empty((len(arr), 3), dtype=np.int64)
    out[:, 0:2] = np.cumsum(arr[:, 0:2].astype(np.int64), axis=0)
    out[:, 2] = arr[:, 2]
    return out


def stroke3_to_strokes(seq: npt.ArrayLike) -> list[list[list[int]]]:
    """Decode stroke-3 back into a drawing ``[[xs, ys], ...]`` (the inverse of :func:`drawing_to_stroke3`).

    Points after the last pen lift (only possible in hand-made sequences) form a final stroke.
    """
    pts = stroke3_to_points(seq)
    ends = np.flatnonzero(pts[:, 2] == 1) + 1
    cuts = ends if len(ends) and ends[-1] == len(pts) else np.append(ends, len(pts))
    strokes: list[list[list[int]]] = []
    start = 0
    for stop in cuts.tolist():
        if stop > start:
            strokes.append([pts[start:stop, 0].tolist(), pts[start:stop, 1].tolist()])
        start = stop
    return strokes


def stroke3_to_stroke5(seq: npt.ArrayLike) -> Int16Array:
    """Stroke-3 ``[L, 3]`` -> stroke-5 ``[L + 1, 5]`` as Sketch-RNN's ``to_big_strokes``, plus one end row."""
    arr = np.asarray(seq)
    n = len(arr)
    out = np.zeros((n + 1, 5), dtype=np.int16)
    out[:n, 0:2] = arr[:, 0:2]
    out[:n, 3] = arr[:, 2]
    out[:n, 2] = 1 - out[:n, 3]
    out[n, 4] = 1
    return out


def stroke5_to_stroke3(seq: npt.ArrayLike) -> Int16Array:
    """Stroke-5 (padded or not) -> stroke-3, as Sketch-RNN's ``to_normal_strokes``.

    The sequence ends before the first row with ``p_end > 0``; ``pen_lift`` is ``p_up``. Unlike the
    original, a sequence whose *first* row is an end row decodes to an empty sequence (Sketch-RNN's loop
    cannot tell "end at index 0" from "no end" and returns everything; no real drawing is empty).
    """
    arr = np.asarray(seq)
    ends = np.flatnonzero(arr[:, 4] > 0)
    n = int(ends[0]) if len(ends) else len(arr)
    out = np.empty((n, 3), dtype=np.int16)
    out[:, 0:2] = arr[:n, 0:2]
    out[:, 2] = arr[:n, 3]
    return out


def pad_stroke5(seq: npt.ArrayLike, length: int) -> Int16Array:
    """Pad a stroke-5 sequence to ``length`` rows with ``(0, 0, 0, 0, 1)`` (Sketch-RNN's padding)."""
    arr = np.asarray(seq)
    if len(arr) > length:
        raise ValueError(f"sequence of {len(arr)} steps does not fit in {length}")
    out = np.zeros((length, 5), dtype=np.int16)
    out[len(arr):, 4] = 1
    out[: len(arr)] = arr
    return out


# --------------------------------------------------------------------------------------------------- batch


@dataclass(frozen=True)
class Stroke3Batch:
    """Many stroke-3 sequences in CSR form: ``steps[offsets[i]:offsets[i + 1]]`` is sequence ``i``."""

    steps: Int16Array  # [total, 3]
    offsets: Int64Array  # [n + 1], offsets[0] == 0

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> Int64Array:
        """Steps per sequence."""
        return np.diff(self.offsets)

    def __getitem__(self, i: int) -> Int16Array:
        return self.steps[self.offsets[i] : self.offsets[i + 1]]


def _list_parts(arr: pa.Array) -> tuple[Int64Array, pa.Array]:
    """Offsets (absolute into ``arr.values``) and the unsliced child of a list array."""
    offsets = np.asarray(arr.offsets.to_numpy(zero_copy_only=False), dtype=np.int64)
    return offsets, arr.values


def arrow_drawings_to_stroke3(drawings: pa.Array | pa.ChunkedArray) -> Stroke3Batch:
    """Convert an Arrow ``drawing`` column (``struct<x, y, stroke_len>``, docs/FORMATS.md section 1) to stroke-3 CSR.

    Fully vectorised: the flat Arrow buffers are read as numpy arrays (no copy of the coordinates beyond
    one int16 widening), deltas are one ``np.diff`` over all points, and drawing starts and stroke ends are
    fixed up by fancy indexing. Empty strokes are skipped; a drawing without points gives an empty sequence.
    Raises ``ValueError`` if x and y differ in length or ``stroke_len`` does not add up to the points.
    """
    if isinstance(drawings, pa.ChunkedArray):
        drawings = drawings.combine_chunks() if drawings.num_chunks != 1 else drawings.chunk(0)
    if drawings.null_count:
        raise ValueError("drawing column contains nulls")
    px_off, x_values = _list_parts(drawings.field("x"))  # field() is already sliced like `drawings`
    py_off, y_values = _list_parts(drawings.field("y"))
    s_off, s_values = _list_parts(drawings.field("stroke_len"))
    offsets = px_off - px_off[0]  # points before each drawing
    if not np.array_equal(offsets, py_off - py_off[0]):
        raise ValueError("a drawing has different numbers of x and y values")
    total = int(offsets[-1])
    x = np.asarray(x_values.to_numpy(zero_copy_only=False)[px_off[0] : px_off[0] + total])
    y = np.asarray(y_values.to_numpy(zero_copy_only=False)[py_off[0] : py_off[0] + total])
    slen = np.asarray(s_values.to_numpy(zero_copy_only=False)[s_off[0] : s_off[-1]], dtype=np.int64)
    stroke_end = np.zeros(len(slen) + 1, dtype=np.int64)
    np.cumsum(slen, out=stroke_end[1:])
    if not np.array_equal(stroke_end[s_off - s_off[0]], offsets):
        raise ValueError("a drawing's stroke_len does not add up to its number of points")

    steps = np.empty((total, 3), dtype=np.int16)
    if total:
        xi = x.astype(np.int16)
        yi = y.astype(np.int16)
        steps[0, 0], steps[0, 1] = xi[0], yi[0]
        np.subtract(xi[1:], xi[:-1], out=steps[1:, 0])
        np.subtract(yi[1:], yi[:-1], out=steps[1:, 1])
        # The first point of every non-empty drawing is relative to (0, 0), not to the previous drawing.
        starts = offsets[:-1][np.diff(offsets) > 0]
        steps[starts, 0] = xi[starts]
        steps[starts, 1] = yi[starts]
        steps[:, 2] = 0
        steps[stroke_end[1:][slen > 0] - 1, 2] = 1
    return Stroke3Batch(steps=steps, offsets=offsets.astype(np.int64, copy=False))


def take_ranges(offsets: Int64Array, index: npt.ArrayLike, lengths: npt.ArrayLike | None = None) -> tuple[Int64Array, Int64Array]:
    """Row indexes gathering sequences ``index`` (optionally only their first ``lengths`` rows) from CSR.

    Returns ``(rows, new_offsets)``: ``flat[rows]`` is the concatenation of the selected (shortened)
    sequences and ``new_offsets`` is its CSR offsets. No Python loop per sequence.
    """
    idx = np.asarray(index, dtype=np.int64)
    starts = offsets[idx]
    lens = (offsets[idx + 1] - starts) if lengths is None else np.asarray(lengths, dtype=np.int64)
    new_offsets = np.zeros(len(idx) + 1, dtype=np.int64)
    np.cumsum(lens, out=new_offsets[1:])
    rows = np.arange(new_offsets[-1], dtype=np.int64) + np.repeat(starts - new_offsets[:-1], lens)
    return rows, new_offsets


@dataclass(frozen=True)
class LengthRuleResult:
    """What :func:`apply_length_rules` kept and why it dropped or shortened the rest."""

    batch: Stroke3Batch  # the kept sequences, in input order
    kept: npt.NDArray[np.bool_]  # [n_input] mask of kept sequences
    truncated: npt.NDArray[np.bool_]  # [n_input] mask: kept but shortened to max_len
    too_short: int
    too_long_dropped: int

    @property
    def n_truncated(self) -> int:
        """How many kept sequences were shortened."""
        return int(self.truncated.sum())


def apply_length_rules(batch: Stroke3Batch, min_len: int = 6, max_len: int = 250, on_long: OnLong = "truncate") -> LengthRuleResult:
    """Apply the length rules to stroke-3 sequences (lengths count stroke-3 steps, i.e. points).

    * fewer than ``min_len`` steps: dropped (``too_short``);
    * more than ``max_len`` steps: ``on_long="drop"`` drops it (``too_long_dropped``); ``"truncate"`` keeps
      the first ``max_len`` steps and sets ``pen_lift = 1`` on the last kept step, so the cut drawing still
      ends by lifting the pen like every stroke-3 drawing does (and decodes to whole strokes).
    """
    if on_long not in ("truncate", "drop"):
        raise ValueError(f"on_long must be 'truncate' or 'drop', not {on_long!r}")
    if min_len < 0 or max_len < 1 or min_len > max_len:
        raise ValueError(f"need 0 <= min_len <= max_len and max_len >= 1 (got min_len={min_len}, max_len={max_len})")
    lengths = batch.lengths
    short = lengths < min_len
    long_ = lengths > max_len
    if on_long == "drop":
        kept = ~short & ~long_
        truncated = np.zeros_like(kept)
        n_long_dropped = int(long_.sum())
    else:
        kept = ~short
        truncated = long_ & kept
        n_long_dropped = 0
    if kept.all() and not truncated.any():
        out = batch  # the common case costs nothing
    else:
        # Row mask of the kept prefixes: +1 where a kept prefix starts, -1 where it ends, then a running
        # sum. Byte-wide arrays keep this several times faster than int64 row indexes or np.repeat.
        new_len = np.minimum(lengths[kept], max_len)
        # Empty sequences add no rows and would share a start with their successor, so skip them.
        nonempty = new_len > 0
        starts = batch.offsets[:-1][kept][nonempty]
        delta = np.zeros(len(batch.steps) + 1, dtype=np.int8)
        delta[starts] += 1
        delta[starts + new_len[nonempty]] -= 1
        rows = np.cumsum(delta[:-1], dtype=np.int8).view(np.bool_)
        steps = batch.steps[rows]
        offs = np.zeros(len(new_len) + 1, dtype=np.int64)
        np.cumsum(new_len, out=offs[1:])
        if truncated.any():
            steps[offs[1:][truncated[kept]] - 1, -1] = 1  # pen_lift: the last column (stroke-3 and stroke-3t)
        out = Stroke3Batch(steps=steps, offsets=offs)
    return LengthRuleResult(batch=out, kept=kept, truncated=truncated, too_short=int(short.sum()), too_long_dropped=n_long_dropped)


def stroke3t_from_points(x: npt.ArrayLike, y: npt.ArrayLike, t: npt.ArrayLike, stroke_pts: npt.ArrayLike,
                         n_strokes: npt.ArrayLike) -> Stroke3Batch:
    """Stroke-3t CSR (steps int16 ``[total, 4]`` = ``(dx, dy, dt, pen_lift)``) from flat absolute points.

    ``x``, ``y`` (0..255), ``t`` (ms, any float: rounded half to even) of every point, drawing after drawing;
    ``stroke_pts`` points per stroke; ``n_strokes`` strokes per drawing. The first step of a drawing is
    relative to (0, 0) with dt 0; dt is clipped to ``0..DT_CLIP_MS``.

    >>> stroke3t_from_points([10, 12, 0], [5, 5, 0], [0, 40, 300.4], [2, 1], [2]).steps.tolist()
    [[10, 5, 0, 0], [2, 0, 40, 1], [-12, -5, 260, 1]]
    """
    xi = np.asarray(x, np.int64)
    yi = np.asarray(y, np.int64)
    ti = np.rint(np.asarray(t, np.float64)).astype(np.int64)
    pts = np.asarray(stroke_pts, np.int64)
    ns = np.asarray(n_strokes, np.int64)
    stroke_end = np.cumsum(pts)
    draw_strokes = np.concatenate(([0], np.cumsum(ns)))
    offsets = np.concatenate(([0], stroke_end))[draw_strokes].astype(np.int64)
    steps = np.zeros((len(xi), 4), np.int16)
    if len(xi):
        d = np.diff(np.column_stack([xi, yi, ti]), axis=0, prepend=0)
        starts = offsets[:-1][np.diff(offsets) > 0]
        d[starts, 0:2] = np.column_stack([xi[starts], yi[starts]])
        d[starts, 2] = 0
        steps[:, 0:2] = d[:, 0:2]
        steps[:, 2] = np.clip(d[:, 2], 0, DT_CLIP_MS)
        steps[stroke_end[pts > 0] - 1, 3] = 1
    return Stroke3Batch(steps=steps, offsets=offsets)


def stroke3_batch_to_stroke5(batch: Stroke3Batch) -> tuple[Int16Array, Int64Array]:
    """Stroke-3 CSR -> stroke-5 CSR ``(steps [total + n, 5], offsets [n + 1])``, one end row per sequence."""
    n = len(batch)
    offsets5 = batch.offsets + np.arange(n + 1, dtype=np.int64)
    out = np.empty((len(batch.steps) + n, 5), dtype=np.int16)
    # np.insert places one end row after each sequence in a single vectorised pass per column; it measured
    # about 2x faster than scattering rows through a boolean or integer index.
    at = batch.offsets[1:]
    out[:, 0] = np.insert(batch.steps[:, 0], at, 0)
    out[:, 1] = np.insert(batch.steps[:, 1], at, 0)
    pen = np.insert(batch.steps[:, 2], at, -1)  # -1 marks the end rows (pen_lift itself is 0 or 1)
    np.equal(pen, 0, out=out[:, 2], casting="unsafe")
    np.equal(pen, 1, out=out[:, 3], casting="unsafe")
    np.equal(pen, -1, out=out[:, 4], casting="unsafe")
    return out, offsets5


def xy_moments(steps: npt.ArrayLike) -> tuple[int, int, int]:
    """Exact integer moments ``(count, sum, sum of squares)`` of the ``dx`` and ``dy`` columns.

    Summing these over batches and taking :func:`scale_from_moments` once gives the same scale as one pass
    over all the data, with no floating-point drift, which keeps cache manifests byte-identical.
    """
    d = np.asarray(steps)[:, 0:2].astype(np.int64)
    return int(d.size), int(d.sum()), int((d * d).sum())


def scale_from_moments(moments: tuple[int, int, int]) -> float | None:
    """Sketch-RNN's normalising factor (std of all ``dx`` and ``dy`` together) from summed moments; None if empty."""
    n, s, sq = moments
    if n == 0:
        return None
    mean = s / n
    return float(math.sqrt(max(sq / n - mean * mean, 0.0)))


def normalizing_scale(steps: npt.ArrayLike) -> float:
    """Sketch-RNN's normalising factor: the standard deviation of all ``dx`` and ``dy`` values together.

    Compute it over the training split only; divide offsets by it at load time (stored data stay int16).
    NaN for no data.
    """
    arr = np.asarray(steps)
    if len(arr) == 0:
        return float("nan")
    scale = scale_from_moments(xy_moments(arr))
    return float("nan") if scale is None else scale
