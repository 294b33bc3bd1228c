"""The bucket's raw ndjson (``full/raw/<word>.ndjson``): float coordinates and per-point timing, and the
published simplification that turns it into the simplified format.

A raw record is a simplified record whose strokes carry three lists, ``[[x...], [y...], [t...]]``: screen
coordinates (floats, any range) and milliseconds since the first point. Two outputs:

* :data:`RAW_DRAWING_SCHEMA` keeps everything: x and y as float32 (the public values are float32 printed as
  doubles; a few percent are not exactly float32 and are rounded to it, see docs/FORMATS.md) and t as int32 milliseconds (docs/FORMATS.md section 1, "raw variant"), in
  the same flat per-drawing layout as the standard schema: :data:`RAW_DRAWING_TYPE` is
  ``struct<x: list<float32>, y: list<float32>, t: list<int32>, stroke_len: list<uint16>>``, all points of
  the drawing back to back and the number of points of each stroke;
* :func:`simplify_drawings` applies Google's simplification and gives the standard
  :data:`~quickdraw.sources.schema.DRAWING_SCHEMA`: align to the top-left corner, scale the larger extent to
  255, resample every stroke at 1 px, Ramer-Douglas-Peucker with epsilon 2.0, round half to even. The exact
  arithmetic (found by measurement; Google did not publish their code) is in
  :mod:`quickdraw.sources._raw_kernel`: on the 3,132 shared drawings with both a raw and a simplified twin,
  3,131 come out identical point for point (docs/FORMATS.md).

Parsing: a compiled scanner (:func:`quickdraw.sources._raw_kernel.scan_raw_lines`) reads lines of exactly the
public layout into flat arrays; every line it refuses takes the exact path (orjson + :func:`check_raw_record`,
the definition of validity), so quarantine reasons are the exact path's. No library was used for RDP:
``rdp`` on PyPI is pure Python per point (far too slow for 100k drawings); its distance and tie-breaking are
reproduced in the kernel.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from quickdraw.sources.ndjson import MAX_LINE_BYTES, MAX_POINTS, ChunkResult, RejectSink, _line_starts
from quickdraw.sources.schema import DRAWING_SCHEMA, drawing_array, drawing_type, parse_timestamp

__all__ = ["RAW_DRAWING_SCHEMA", "RAW_DRAWING_TYPE", "check_raw_record", "drawings_to_steps", "parse_raw_chunk",
           "raw_table",
           "simplification_closeness", "simplify_drawings",
           "simplify_strokes"]

#: ``struct<x: list<float32>, y: list<float32>, t: list<int32>, stroke_len: list<uint16>>`` (no nulls).
RAW_DRAWING_TYPE = drawing_type({"x": pa.float32(), "y": pa.float32(), "t": pa.int32()})
RAW_DRAWING_SCHEMA = pa.schema(
    [DRAWING_SCHEMA.field(n) for n in DRAWING_SCHEMA.names if n != "drawing"]
    + [pa.field("drawing", RAW_DRAWING_TYPE, nullable=False)]
)

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
    return _flat_table(_meta_arrays(records, word), x, y, t, pts, ns, simplify=False)


# --------------------------------------------------------------------------------------------- simplify


def simplify_strokes(x: np.ndarray, y: np.ndarray, stroke_pts: np.ndarray, n_strokes: np.ndarray,
                     t: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """Google's simplification over flat arrays: returns ``(x uint8, y uint8, points per stroke)``, plus the
    kept points' times (float64 ms, interpolated like the coordinates) when ``t`` is given.

    ``x``, ``y``: every point of every drawing in order; ``stroke_pts``: points per stroke; ``n_strokes``:
    strokes per drawing. Strokes keep their number; a stroke that collapses to one point is written as two
    identical points, as in the published files. The exact rules are in :mod:`quickdraw.sources._raw_kernel`.
    """
    from quickdraw.sources._raw_kernel import resampled_bound, simplify_flat  # numba: only when simplifying

    x = np.ascontiguousarray(x, np.float64)
    y = np.ascontiguousarray(y, np.float64)
    tt = np.ascontiguousarray(t, np.float64) if t is not None else np.empty(0, np.float64)
    stroke_pts = np.ascontiguousarray(stroke_pts, np.int64)
    n_strokes = np.ascontiguousarray(n_strokes, np.int64)
    bound = int(resampled_bound(x, y, tt, stroke_pts, n_strokes))
    out_x = np.empty(bound, np.uint8)
    out_y = np.empty(bound, np.uint8)
    out_t = np.empty(bound if t is not None else 0, np.float64)
    out_pts = np.empty(len(stroke_pts), np.int64)
    n = int(simplify_flat(x, y, tt, stroke_pts, n_strokes, out_x, out_y, out_t, out_pts))
    if t is not None:
        return out_x[:n].copy(), out_y[:n].copy(), out_pts, out_t[:n].copy()
    return out_x[:n].copy(), out_y[:n].copy(), out_pts


def simplify_drawings(records: list[dict[str, Any]], word: str) -> pa.Table:
    """A :data:`~quickdraw.sources.schema.DRAWING_SCHEMA` table of valid raw records, simplified as Google did."""
    x, y, t, pts, ns = _flat(records)
    return _flat_table(_meta_arrays(records, word), x, y, t, pts, ns, simplify=True)


def _flat_table(meta: list[pa.Array], x: np.ndarray, y: np.ndarray, t: np.ndarray, pts: np.ndarray,
                ns: np.ndarray, simplify: bool) -> pa.Table:
    """The raw-variant (or, with ``simplify``, the simplified) table of flat points and metadata columns."""
    if simplify:
        sx, sy, spts = simplify_strokes(x, y, pts, ns)
        drawing = drawing_array({"x": sx, "y": sy}, spts, ns)
        schema = DRAWING_SCHEMA
    else:
        drawing = drawing_array({"x": x, "y": y, "t": t}, pts, ns, type=RAW_DRAWING_TYPE)
        schema = RAW_DRAWING_SCHEMA
    return pa.Table.from_arrays([*meta, pa.array(ns.astype(np.uint16)), _points_per_drawing(drawing), drawing],
                                schema=schema)


def _fast_raw(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, word: str,
              simplify: bool) -> tuple[pa.Table, np.ndarray]:
    """Run the compiled raw scanner over lines; the table of the accepted lines and the refused mask."""
    from quickdraw.sources._raw_kernel import scan_raw_lines  # numba: only once raw lines are parsed

    n = len(starts)
    size = max(len(buf), 1)
    # A point takes at least 6 bytes ("0,0,0" across the three lists), a stroke at least 12.
    xs = np.empty(size // 6 + 1, np.float64)
    ys = np.empty(size // 6 + 1, np.float64)
    ts = np.empty(size // 6 + 1, np.int64)
    stroke_pts = np.empty(size // 12 + 1, np.int64)
    key_id = np.empty(n, np.uint64)
    tstamp = np.empty(n, np.int64)
    rec = np.empty(n, np.bool_)
    cc_start = np.empty(n, np.int64)
    cc_end = np.empty(n, np.int64)
    n_strokes = np.empty(n, np.int64)
    n_points = np.empty(n, np.int64)
    refused = np.empty(n, np.bool_)
    wb = np.frombuffer(word.encode("utf-8"), np.uint8)
    total_s, total_p = scan_raw_lines(buf, starts, ends, wb, RAW_MAX_LINE_BYTES, xs, ys, ts, stroke_pts, key_id,
                                      tstamp, rec, cc_start, cc_end, n_strokes, n_points, refused)
    ok = ~refused
    m = int(ok.sum())
    cs, ce = cc_start[ok], cc_end[ok]
    lens = ce - cs
    co = np.zeros(m + 1, np.int32)
    np.cumsum(lens, out=co[1:])
    idx = np.repeat(cs - co[:-1], lens) + np.arange(co[-1], dtype=np.int64)
    cc = pa.StringArray.from_buffers(m, pa.py_buffer(co), pa.py_buffer(buf[idx].tobytes()))
    wbytes = word.encode("utf-8")
    words = pa.StringArray.from_buffers(
        m, pa.py_buffer(np.arange(m + 1, dtype=np.int32) * len(wbytes)), pa.py_buffer(wbytes * m))
    meta = [pa.array(key_id[ok]), words, cc, pa.array(tstamp[ok], pa.timestamp("us", tz="UTC")), pa.array(rec[ok])]
    table = _flat_table(meta, xs[:total_p], ys[:total_p], ts[:total_p], stroke_pts[:total_s], n_strokes[ok],
                        simplify)
    return table, refused


#: Lines longer than this are ``too_large`` (a raw drawing is ~10x a simplified one; this is 64 MiB).
RAW_MAX_LINE_BYTES = 16 * MAX_LINE_BYTES
#: Below this many lines a chunk takes the exact path while the raw scanner is not loaded yet (numba's import
#: and the cached kernels cost ~0.5 s, more than orjson needs for a few hundred raw lines).
RAW_SCANNER_MIN_LINES = 256


def parse_raw_chunk(
    data: bytes,
    first_line: int,
    *,
    word: str,
    at_eof: bool = False,
    strict_error: Callable[[int, str, str], None] | None = None,
    simplify: bool = False,
    sample: int | None = None,
    scanner: bool | None = None,
) -> ChunkResult:
    """Parse whole lines of raw ndjson into a :data:`RAW_DRAWING_SCHEMA` table (or, with ``simplify``, a
    simplified :data:`DRAWING_SCHEMA` table). Bad lines come out as rejects, as in
    :func:`quickdraw.sources.ndjson.parse_chunk`.

    Lines of the public layout go through the compiled scanner; the others (and every line with
    ``scanner=False``) through the exact path, orjson + :func:`check_raw_record`. Both give the same rows and
    the same rejects (tests/security/test_fuzz_raw_kernel.py). By default (``scanner=None``) the scanner is
    used when simplifying (numba is loaded for that anyway), for chunks of at least
    :data:`RAW_SCANNER_MIN_LINES` lines, or once it is loaded.
    """
    import sys

    buf = np.frombuffer(data, dtype=np.uint8)
    starts, ends = _line_starts(buf)
    if scanner is None:
        scanner = simplify or len(starts) >= RAW_SCANNER_MIN_LINES or "quickdraw.sources._raw_kernel" in sys.modules
    if scanner:
        table, refused = _fast_raw(buf, starts, ends, word, simplify)
    else:
        table = (DRAWING_SCHEMA if simplify else RAW_DRAWING_SCHEMA).empty_table()
        refused = np.ones(len(starts), np.bool_)
    lines = np.arange(first_line, first_line + len(starts), dtype=np.int64)
    if not refused.any():
        return ChunkResult(table, lines, [], len(starts), len(starts))
    good: list[dict[str, Any]] = []
    good_lines: list[int] = []
    sink = RejectSink(sample)
    blank = 0
    last = len(starts) - 1
    for i in np.flatnonzero(refused).tolist():
        raw = bytes(data[starts[i] : ends[i]])
        line = first_line + i
        if line == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if not raw.strip():
            blank += 1
            continue
        verdict: tuple[str, str] | None
        if len(raw) > RAW_MAX_LINE_BYTES:
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
            good_lines.append(line)
            continue
        if strict_error is not None:
            strict_error(line, verdict[0], verdict[1])
        sink.add(line, verdict[0], verdict[1], raw)
    if good:
        exact = simplify_drawings(good, word) if simplify else raw_table(good, word)
        both = pa.concat_tables([table, exact]) if table.num_rows else exact
        both_lines = np.concatenate([lines[~refused], np.asarray(good_lines, np.int64)])
        order = np.argsort(both_lines, kind="stable")
        table, kept_lines = both.take(pa.array(order)), both_lines[order]
    else:
        kept_lines = lines[~refused]
    return ChunkResult(table, kept_lines, sink.kept, len(starts) - blank, len(starts), sink.counts)


def drawings_to_steps(drawings: pa.Array | pa.ChunkedArray) -> Any:
    """The sequences prepare encodes from a fetch output's ``drawing`` column: stroke-3 of simplified drawings
    (:func:`quickdraw.strokes.arrow_drawings_to_stroke3`), or, for the raw variant (a ``t`` field), stroke-3t
    of the drawings simplified as Google did, each kept point with its time (a ``Stroke3Batch`` of 4 columns;
    columns 0, 1, 3 are the simplified drawing's stroke-3).

    The raw variant stores float32 coordinates, so a coordinate that is not exactly a float32 in the source
    (4.4% of them, off by at most 3.8e-5 px) is simplified from its float32 value: on the 3,132 shared pairs
    3,114 drawings come out identical to Google's this way, against 3,131 from the source's float64 values
    (``fetch --simplify``); the others differ by an RDP choice or a rounding at exactly .5.
    """
    from quickdraw.strokes import arrow_drawings_to_stroke3, stroke3t_from_points

    if isinstance(drawings, pa.ChunkedArray):
        drawings = drawings.combine_chunks() if drawings.num_chunks != 1 else drawings.chunk(0)
    if "t" not in [f.name for f in drawings.type]:
        return arrow_drawings_to_stroke3(drawings)
    xs, ys, ts, sl = (drawings.field(n) for n in ("x", "y", "t", "stroke_len"))
    x, y, t, pts = (np.asarray(a.flatten().to_numpy(zero_copy_only=False)) for a in (xs, ys, ts, sl))
    ns = np.diff(np.asarray(sl.offsets.to_numpy(zero_copy_only=False), np.int64))
    sx, sy, spts, st = simplify_strokes(x.astype(np.float64), y.astype(np.float64), pts.astype(np.int64), ns,
                                        t=t.astype(np.float64))
    return stroke3t_from_points(sx, sy, st, spts, ns)


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
