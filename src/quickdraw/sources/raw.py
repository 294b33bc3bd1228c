"""The bucket's raw ndjson (``full/raw/<word>.ndjson``): float coordinates and per-point timing, and the
published simplification that turns it into the simplified format.

A raw record is a simplified record whose strokes carry three lists, ``[[x...], [y...], [t...]]``: screen
coordinates (floats, any range) and milliseconds since the first point. Two outputs:

* :data:`RAW_DRAWING_SCHEMA` keeps everything: x and y as float32 (the public values are float32 printed as
  doubles, so nothing is lost) and t as int32 milliseconds (docs/FORMATS.md section 1, "raw variant"), in
  the same flat per-drawing layout as the standard schema: :data:`RAW_DRAWING_TYPE` is
  ``struct<x: list<float32>, y: list<float32>, t: list<int32>, stroke_len: list<uint16>>``, all points of
  the drawing back to back and the number of points of each stroke;
* :func:`simplify_drawings` applies the simplification the Quick, Draw! README publishes and gives the
  standard :data:`~quickdraw.sources.schema.DRAWING_SCHEMA`:

  1. align the drawing to the top-left corner (subtract the minimum x and y);
  2. scale uniformly so that the larger extent becomes 255 (the aspect ratio is kept);
  3. resample every stroke at 1 px spacing along its length;
  4. Ramer-Douglas-Peucker with epsilon 2.0 per stroke, then round to integers.

Google did not publish their code, so the result is close to but not always identical with the simplified
files; docs/FORMATS.md reports how close on the 3,132 shared drawings (same key_id in raw and simplified).

Parsing uses orjson line by line (raw files are ~10x larger per drawing and float-heavy; the fast integer
scanner of the simplified path does not apply), and simplification is one compiled pass over flat arrays.
No library was used for RDP: ``rdp`` on PyPI is pure Python per point (far too slow for 100k drawings) and
a native package would add a dependency for thirty lines of numba.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numba
import numpy as np
import orjson
import pyarrow as pa

from quickdraw.sources.ndjson import MAX_LINE_BYTES, MAX_POINTS, ChunkResult, RejectSink, _line_starts
from quickdraw.sources.schema import DRAWING_SCHEMA, drawing_array, drawing_type, parse_timestamp

__all__ = ["RAW_DRAWING_SCHEMA", "RAW_DRAWING_TYPE", "check_raw_record", "parse_raw_chunk", "raw_table",
           "simplification_closeness", "simplify_drawings",
           "simplify_strokes"]

#: ``struct<x: list<float32>, y: list<float32>, t: list<int32>, stroke_len: list<uint16>>`` (no nulls).
RAW_DRAWING_TYPE = drawing_type({"x": pa.float32(), "y": pa.float32(), "t": pa.int32()})
RAW_DRAWING_SCHEMA = pa.schema(
    [DRAWING_SCHEMA.field(n) for n in DRAWING_SCHEMA.names if n != "drawing"]
    + [pa.field("drawing", RAW_DRAWING_TYPE, nullable=False)]
)

EPSILON = 2.0  # RDP tolerance of the published simplification, in px of the 0..255 frame
# Raw coordinates are screen pixels (the public files stay within a few thousand). Anything beyond this is
# a broken or hostile record: it would overflow float32 (1e39 -> inf) or make the simplification's extent
# meaningless (1e300 -> negative array sizes), so it is rejected as out_of_range instead.
RAW_COORD_LIMIT = 1e6


_NUM = {int, float}
_INT = {int}


def check_raw_record(obj: Any, word: str | None = None) -> tuple[str, str] | None:
    """Why a decoded raw record is invalid, as ``(reason, detail)``, or ``None`` if it is a valid drawing.

    Same metadata rules as :func:`quickdraw.sources.ndjson.check_record`; each stroke must be
    ``[[x...], [y...], [t...]]`` of equal, non-zero length with finite numbers and integer t.
    """
    from quickdraw.sources.ndjson import check_record

    if isinstance(obj, dict) and isinstance(obj.get("drawing"), list):
        # Judge the metadata with the simplified rules on a drawing-less copy, then the strokes here.
        meta = check_record({**obj, "drawing": [[[0], [0]]]}, word)
        if meta is not None:
            return meta
    else:
        return check_record(obj, word)
    drawing = obj["drawing"]
    if not drawing:
        return "empty_drawing", "no strokes"
    n_points = 0
    for i, stroke in enumerate(drawing):
        if not isinstance(stroke, list) or len(stroke) != 3 or not all(isinstance(c, list) for c in stroke):
            return "bad_stroke", f"stroke {i} is not [[x...], [y...], [t...]]"
        xs, ys, ts = stroke
        # Type sets are built in C (map(type, ...)); JSON has no NaN or infinity, so only floats from other
        # sources need the finiteness check.
        txy = set(map(type, xs)) | set(map(type, ys))
        if not txy <= _NUM or (float in txy and not all(map(math.isfinite, xs + ys))):
            return "bad_type", f"stroke {i} has a non-numeric or non-finite coordinate"
        if not set(map(type, ts)) <= _INT or (ts and not (-(2**31) <= min(ts) and max(ts) < 2**31)):
            return "bad_type", f"stroke {i} has a non-integer or out-of-range time"
        if not (len(xs) == len(ys) == len(ts)):
            return "xy_length_mismatch", f"stroke {i}: {len(xs)} x, {len(ys)} y, {len(ts)} t"
        if not xs:
            return "empty_stroke", f"stroke {i}"
        if max(map(abs, xs)) > RAW_COORD_LIMIT or max(map(abs, ys)) > RAW_COORD_LIMIT:
            return "out_of_range", f"stroke {i} has a coordinate beyond +-{RAW_COORD_LIMIT:g} px"
        if len(xs) > MAX_POINTS:  # stroke_len is uint16
            return "too_large", f"stroke {i} has {len(xs)} points"
        n_points += len(xs)
    if len(drawing) > MAX_POINTS or n_points > 2**32 - 1:
        return "too_large", f"{len(drawing)} strokes, {n_points} points"
    return None


def _flat(records: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """x, y (float64), t (int64) of every point, points per stroke, strokes per drawing."""
    xs: list[float] = []
    ys: list[float] = []
    ts: list[int] = []
    pts: list[int] = []
    ns: list[int] = []
    for r in records:
        d = r["drawing"]
        ns.append(len(d))
        for s in d:
            xs.extend(s[0])
            ys.extend(s[1])
            ts.extend(s[2])
            pts.append(len(s[0]))
    return (np.asarray(xs, np.float64), np.asarray(ys, np.float64), np.asarray(ts, np.int64),
            np.asarray(pts, np.int64), np.asarray(ns, np.int64))


def _meta_arrays(records: list[dict[str, Any]], word: str) -> list[pa.Array]:
    return [
        pa.array([int(r["key_id"]) for r in records], pa.uint64()),
        pa.array([word] * len(records), pa.string()),
        pa.array([r["countrycode"] for r in records], pa.string()),
        pa.array([parse_timestamp(r["timestamp"]) for r in records], pa.timestamp("us", tz="UTC")),
        pa.array([bool(r["recognized"]) for r in records], pa.bool_()),
    ]


def _points_per_drawing(drawing: pa.StructArray) -> pa.Array:
    """``n_points`` read off a column :func:`drawing_array` just built: the lengths of its ``x`` lists."""
    return pa.array(np.diff(drawing.field("x").offsets.to_numpy()).astype(np.uint32))


def raw_table(records: list[dict[str, Any]], word: str) -> pa.Table:
    """A :data:`RAW_DRAWING_SCHEMA` table from valid raw records."""
    x, y, t, pts, ns = _flat(records)
    drawing = drawing_array({"x": x, "y": y, "t": t}, pts, ns, type=RAW_DRAWING_TYPE)
    return pa.Table.from_arrays(
        [*_meta_arrays(records, word), pa.array(ns.astype(np.uint16)), _points_per_drawing(drawing), drawing],
        schema=RAW_DRAWING_SCHEMA,
    )


# --------------------------------------------------------------------------------------------- simplify


@numba.njit(cache=True, nogil=True)
def _rdp(px, py, n, eps, keep, stack):  # type: ignore[no-untyped-def]
    # Iterative Ramer-Douglas-Peucker over px[:n], py[:n]: marks kept points in keep[:n].
    for i in range(n):
        keep[i] = False
    keep[0] = True
    keep[n - 1] = True
    top = 0
    stack[0, 0] = 0
    stack[0, 1] = n - 1
    top = 1
    while top > 0:
        top -= 1
        a = stack[top, 0]
        b = stack[top, 1]
        if b - a < 2:
            continue
        ax, ay = px[a], py[a]
        dx, dy = px[b] - ax, py[b] - ay
        seg = math.sqrt(dx * dx + dy * dy)
        best = -1.0
        idx = -1
        for i in range(a + 1, b):
            if seg > 0.0:
                d = abs(dy * px[i] - dx * py[i] + px[b] * ay - py[b] * ax) / seg
            else:
                d = math.sqrt((px[i] - ax) ** 2 + (py[i] - ay) ** 2)
            if d > best:
                best = d
                idx = i
        if best > eps:
            keep[idx] = True
            stack[top, 0] = a
            stack[top, 1] = idx
            stack[top + 1, 0] = idx
            stack[top + 1, 1] = b
            top += 2


@numba.njit(cache=True, nogil=True)
def _bbox(x, y, start, stop):  # type: ignore[no-untyped-def]
    """Bounding box of points ``start:stop``: (min x, min y, larger side); no points give (inf, inf, -inf)."""
    minx = np.inf
    miny = np.inf
    maxx = -np.inf
    maxy = -np.inf
    for i in range(start, stop):
        minx = min(minx, x[i])
        maxx = max(maxx, x[i])
        miny = min(miny, y[i])
        maxy = max(maxy, y[i])
    return minx, miny, max(maxx - minx, maxy - miny)


@numba.njit(cache=True, nogil=True, inline="always")
def _push(rx, ry, r, vx, vy):  # type: ignore[no-untyped-def]
    """Store point ``r`` (doubling ``rx``/``ry`` when full); returns the arrays and ``r + 1``."""
    if r >= rx.shape[0]:
        rx = np.concatenate((rx, np.empty(rx.shape[0], np.float64)))
        ry = np.concatenate((ry, np.empty(ry.shape[0], np.float64)))
    rx[r] = vx
    ry[r] = vy
    return rx, ry, r + 1


@numba.njit(cache=True, nogil=True)
def _simplify(x, y, stroke_pts, n_strokes, eps, spacing, out_x, out_y, out_pts):  # type: ignore[no-untyped-def]
    n_draw = n_strokes.shape[0]
    p = 0  # input point cursor
    s = 0  # stroke cursor
    o = 0  # output point cursor
    cap = 16
    for k in range(stroke_pts.shape[0]):
        cap = max(cap, stroke_pts[k])
    rx = np.empty(cap, np.float64)
    ry = np.empty(cap, np.float64)
    keep = np.empty(cap, np.bool_)
    stack = np.empty((cap + 2, 2), np.int64)
    for d in range(n_draw):
        ns = n_strokes[d]
        npts = 0
        for k in range(s, s + ns):
            npts += stroke_pts[k]
        minx, miny, ext = _bbox(x, y, p, p + npts)
        if ext <= 0:
            ext = 255.0  # a drawing that is one point: scale 1
        for k in range(s, s + ns):
            m = stroke_pts[k]
            # Resample at `spacing` px along the stroke (first and last point always kept).
            r = 0
            px = (x[p] - minx) * 255.0 / ext
            py = (y[p] - miny) * 255.0 / ext
            rx, ry, r = _push(rx, ry, r, px, py)
            carry = 0.0  # distance walked since the last emitted point
            for i in range(p + 1, p + m):
                qx = (x[i] - minx) * 255.0 / ext
                qy = (y[i] - miny) * 255.0 / ext
                seg = math.sqrt((qx - px) ** 2 + (qy - py) ** 2)
                t = spacing - carry
                while t <= seg:
                    f = t / seg
                    rx, ry, r = _push(rx, ry, r, px + (qx - px) * f, py + (qy - py) * f)
                    t += spacing
                carry = seg - (t - spacing)
                px, py = qx, qy
            if m > 1 and (rx[r - 1] != px or ry[r - 1] != py):
                rx, ry, r = _push(rx, ry, r, px, py)
            if keep.shape[0] < r:
                keep = np.empty(rx.shape[0], np.bool_)
                stack = np.empty((rx.shape[0] + 2, 2), np.int64)
            if r > 2:
                _rdp(rx, ry, r, eps, keep, stack)
            else:
                for i in range(r):
                    keep[i] = True
            c = 0
            for i in range(r):
                if keep[i]:
                    out_x[o] = min(255, max(0, int(math.floor(rx[i] + 0.5))))
                    out_y[o] = min(255, max(0, int(math.floor(ry[i] + 0.5))))
                    o += 1
                    c += 1
            out_pts[k] = c
            p += m
        s += ns
    return o


def simplify_strokes(x: np.ndarray, y: np.ndarray, stroke_pts: np.ndarray, n_strokes: np.ndarray,
                     epsilon: float = EPSILON) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The published simplification over flat arrays: returns (x uint8, y uint8, points per stroke).

    ``x``, ``y``: every point of every drawing in order; ``stroke_pts``: points per stroke; ``n_strokes``:
    strokes per drawing. Strokes keep their number (each keeps at least its first point).
    """
    x = np.ascontiguousarray(x, np.float64)
    y = np.ascontiguousarray(y, np.float64)
    stroke_pts = np.ascontiguousarray(stroke_pts, np.int64)
    n_strokes = np.ascontiguousarray(n_strokes, np.int64)
    # Output can exceed the input (resampling adds points before RDP removes them), never 256 * 2 per
    # stroke px of length... bound it by the resampled length: at most perimeter + 2 per stroke.
    bound = _resampled_bound(x, y, stroke_pts, n_strokes)
    out_x = np.empty(bound, np.uint8)
    out_y = np.empty(bound, np.uint8)
    out_pts = np.empty(len(stroke_pts), np.int64)
    n = _simplify(x, y, stroke_pts, n_strokes, float(epsilon), 1.0, out_x, out_y, out_pts)
    return out_x[:n], out_y[:n], out_pts


@numba.njit(cache=True, nogil=True)
def _bound_kernel(x, y, stroke_pts, n_strokes):  # type: ignore[no-untyped-def]
    total = 0
    p = 0
    s = 0
    for d in range(n_strokes.shape[0]):
        ns = n_strokes[d]
        npts = 0
        for k in range(s, s + ns):
            npts += stroke_pts[k]
        if npts == 0:
            s += ns
            continue
        ext = _bbox(x, y, p, p + npts)[2]
        scale = 255.0 / ext if ext > 0 else 1.0
        for k in range(s, s + ns):
            m = stroke_pts[k]
            length = 0.0
            for i in range(p + 1, p + m):
                length += math.sqrt((x[i] - x[i - 1]) ** 2 + (y[i] - y[i - 1]) ** 2)
            total += int(length * scale) + 3
            p += m
        s += ns
    return total


def _resampled_bound(x: np.ndarray, y: np.ndarray, stroke_pts: np.ndarray, n_strokes: np.ndarray) -> int:
    return int(_bound_kernel(x, y, stroke_pts, n_strokes)) + 1


def simplify_drawings(records: list[dict[str, Any]], word: str) -> pa.Table:
    """A :data:`~quickdraw.sources.schema.DRAWING_SCHEMA` table of valid raw records, simplified as published."""
    x, y, _, pts, ns = _flat(records)
    sx, sy, spts = simplify_strokes(x, y, pts, ns)
    drawing = drawing_array({"x": sx, "y": sy}, spts, ns)
    return pa.Table.from_arrays(
        [*_meta_arrays(records, word), pa.array(ns.astype(np.uint16)), _points_per_drawing(drawing), drawing],
        schema=DRAWING_SCHEMA,
    )


# ------------------------------------------------------------------------------------------------ parse


def parse_raw_chunk(
    data: bytes,
    first_line: int,
    *,
    word: str,
    at_eof: bool = False,
    strict_error: Callable[[int, str, str], None] | None = None,
    simplify: bool = False,
    sample: int | None = None,
) -> ChunkResult:
    """Parse whole lines of raw ndjson into a :data:`RAW_DRAWING_SCHEMA` table (or, with ``simplify``, a
    simplified :data:`DRAWING_SCHEMA` table). Bad lines come out as rejects, as in
    :func:`quickdraw.sources.ndjson.parse_chunk`.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    starts, ends = _line_starts(buf)
    good: list[dict[str, Any]] = []
    lines: list[int] = []
    sink = RejectSink(sample)
    blank = 0
    last = len(starts) - 1
    for i in range(len(starts)):
        raw = data[starts[i] : ends[i]]
        line = first_line + i
        if line == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if not raw.strip():
            blank += 1
            continue
        verdict: tuple[str, str] | None
        if len(raw) > 16 * MAX_LINE_BYTES:
            obj, verdict = None, ("too_large", f"{len(raw)} bytes")
        else:
            try:
                obj = orjson.loads(raw)
                verdict = check_raw_record(obj, word)
            except orjson.JSONDecodeError as exc:
                obj = None
                unterminated = at_eof and i == last and not data.endswith(b"\n")
                verdict = ("truncated_last_line" if unterminated else "bad_json", str(exc))
        if verdict is None:
            good.append(obj)
            lines.append(line)
            continue
        if strict_error is not None:
            strict_error(line, verdict[0], verdict[1])
        sink.add(line, verdict[0], verdict[1], raw)
    table = simplify_drawings(good, word) if simplify else raw_table(good, word)
    return ChunkResult(table, np.asarray(lines, np.int64), sink.kept, len(starts) - blank, None, sink.counts)


# ----------------------------------------------------------------------------------------------- measure


def simplification_closeness(mine: list[Any], theirs: list[Any]) -> dict[str, float]:
    """How close simplified drawings are to reference ones, pairwise. Each drawing is either source stroke
    lists ``[[xs, ys], ...]`` or an Arrow ``drawing`` value ``{"x": [..], "y": [..], "stroke_len": [..]}`` (as
    from ``to_pylist()``). Returns the share with the same stroke count, the same point count and identical
    points; the mean absolute coordinate difference (px) over drawings with equal point counts (points matched
    in order); symmetric Chamfer (mean nearest-point distance) and Hausdorff distances (px) over all drawings.
    """

    def pts(d: Any) -> np.ndarray:
        if isinstance(d, dict):  # flat Arrow drawing: all points back to back
            return np.column_stack([np.asarray(d["x"], np.float64), np.asarray(d["y"], np.float64)]).reshape(-1, 2)
        return np.array([(x, y) for s in d for x, y in zip(s[0], s[1])], np.float64).reshape(-1, 2)

    def n_strokes(d: Any) -> int:
        return len(d["stroke_len"]) if isinstance(d, dict) else len(d)

    same_strokes = same_points = identical = 0
    mad: list[float] = []
    chamfer: list[float] = []
    hausdorff: list[float] = []
    for a, b in zip(mine, theirs, strict=True):
        pa_, pb = pts(a), pts(b)
        same_strokes += n_strokes(a) == n_strokes(b)
        if len(pa_) == len(pb):
            same_points += 1
            mad.append(float(np.abs(pa_ - pb).mean()))
            identical += bool(np.array_equal(pa_, pb))
        d = np.sqrt(((pa_[:, None, :] - pb[None, :, :]) ** 2).sum(-1))
        ab, ba = d.min(1), d.min(0)
        chamfer.append(float((ab.mean() + ba.mean()) / 2))
        hausdorff.append(float(max(ab.max(), ba.max())))
    n = max(1, len(mine))
    return {
        "drawings": len(mine),
        "same_strokes": same_strokes / n,
        "same_points": same_points / n,
        "identical": identical / n,
        "mean_abs_diff_px": float(np.mean(mad)) if mad else float("nan"),
        "chamfer_mean_px": float(np.mean(chamfer)) if chamfer else float("nan"),
        "hausdorff_mean_px": float(np.mean(hausdorff)) if hausdorff else float("nan"),
        "hausdorff_p95_px": float(np.percentile(hausdorff, 95)) if hausdorff else float("nan"),
        "hausdorff_max_px": float(np.max(hausdorff)) if hausdorff else float("nan"),
    }
