"""Compiled kernels of the raw path: Google's simplification, reproduced bit for bit, and a scanner for the
exact byte layout of the public raw ndjson lines.

Imported lazily (only when a raw chunk is parsed or simplified) so that processes which never touch raw data
do not pay numba's import; every kernel is compiled for the exact signatures used and cached on disk
(``cache=True``; ``make venv`` compiles them once).

**The simplification** (measured against the 3,132 shared drawings whose key_id is in both ``full/raw`` and
``full/simplified``: 3,131 come out identical point for point, see docs/FORMATS.md). Per drawing:

1. ``v = (x - min x) * 255 / extent`` in float64, in exactly that order (``extent`` = the larger of the x and
   y extents); ``x * (255 / extent)`` or float32 arithmetic change the last bit of some values and with it
   roundings and RDP ties;
2. per stroke, arc length resampling at 1 px: cumulative length ``cum`` over ``sqrt(dx*dx + dy*dy)`` of each
   segment, one point at every whole length ``s = 1, 2, ... < L`` at ``a * (1 - f) + b * f`` with
   ``f = (s - cum[j]) / seglen[j]`` (the segment's own length, not ``cum[j+1] - cum[j]``), the first point and
   the last point (unless the last sample is already exactly it);
3. Ramer-Douglas-Peucker, epsilon 2.0, the distance of the ``rdp`` package (``|cross(end - start, start - p)|
   / |end - start|``, or ``|p - start|`` when start == end), the *first* point of maximal distance, split only
   when it is strictly greater than epsilon; a stroke of one point gives that point twice (``rdp_rec``
   returns ``M[0], M[-1]``);
4. round half to even (``numpy.rint``).

Each of these choices was picked by measurement: the RDP tie-break, the interpolation form and the segment
length each move 2-5% of the drawings (many strokes have runs of points at exactly equal distance from the
chord, and the last bit of the interpolated points decides which one is "first").
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["resampled_bound", "simplify_flat"]

EPSILON = 2.0


def _arr(dtype: object, readonly: bool = False) -> object:
    return numba.types.Array(dtype, 1, "C", readonly=readonly)


_F64 = _arr(numba.types.float64)
_F64R = _arr(numba.types.float64, readonly=True)
_I64R = _arr(numba.types.int64, readonly=True)

# x, y, t (t may be empty: no timing wanted), stroke_pts, n_strokes
_BOUND_SIG = numba.types.int64(_F64R, _F64R, _F64R, _I64R, _I64R)
# x, y, t, stroke_pts, n_strokes, out_x, out_y, out_t, out_pts
_SIMPLIFY_SIG = numba.types.int64(_F64R, _F64R, _F64R, _I64R, _I64R, _arr(numba.types.uint8),
                                  _arr(numba.types.uint8), _F64, _arr(numba.types.int64))


@numba.njit(cache=True, nogil=True)
def _frame(x, y, start, stop):  # type: ignore[no-untyped-def]
    """min x, min y and the extent (larger side) of points ``start:stop``."""
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


@numba.njit([_BOUND_SIG], cache=True, nogil=True)
def resampled_bound(x, y, t, stroke_pts, n_strokes):  # type: ignore[no-untyped-def]
    """An upper bound on the points of all strokes after resampling (the simplified output is never more)."""
    total = 0
    p = 0
    s = 0
    for d in range(n_strokes.shape[0]):
        ns = n_strokes[d]
        npts = 0
        for k in range(s, s + ns):
            npts += stroke_pts[k]
        minx, miny, ext = _frame(x, y, p, p + npts)
        scale = 255.0 / ext if ext > 0 else 1.0
        for k in range(s, s + ns):
            m = stroke_pts[k]
            length = 0.0
            for i in range(p + 1, p + m):
                length += math.sqrt((x[i] - x[i - 1]) ** 2 + (y[i] - y[i - 1]) ** 2)
            # +1 for rounding of the scaled length, +2 for the first and last point
            total += int(length * scale * 1.000001) + 3
            p += m
        s += ns
    return total + 1


@numba.njit(cache=True, nogil=True)
def _rdp(px, py, n, eps, keep, stack):  # type: ignore[no-untyped-def]
    """Ramer-Douglas-Peucker over ``px[:n], py[:n]`` as ``rdp.rdp_rec`` decides it; marks ``keep[:n]``.

    Iterative, but every range is decided from its own points only, so the kept set is the recursive one.
    """
    for i in range(n):
        keep[i] = False
    keep[0] = True
    keep[n - 1] = True
    stack[0, 0] = 0
    stack[0, 1] = n - 1
    top = 1
    while top > 0:
        top -= 1
        a = stack[top, 0]
        b = stack[top, 1]
        if b - a < 2:
            continue
        sx, sy = px[a], py[a]
        vx, vy = px[b] - sx, py[b] - sy
        same = vx == 0.0 and vy == 0.0
        norm = math.sqrt(vx * vx + vy * vy)
        best = 0.0
        idx = -1
        for i in range(a + 1, b):
            if same:
                d = math.sqrt((px[i] - sx) ** 2 + (py[i] - sy) ** 2)
            else:
                d = abs(vx * (sy - py[i]) - vy * (sx - px[i])) / norm
            if d > best:  # strict: the first point of maximal distance wins
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
def _round255(v):  # type: ignore[no-untyped-def]
    r = np.rint(v)  # half to even, as numpy.round
    if r < 0.0:
        return 0
    if r > 255.0:
        return 255
    return int(r)


@numba.njit([_SIMPLIFY_SIG], cache=True, nogil=True)
def simplify_flat(x, y, t, stroke_pts, n_strokes, out_x, out_y, out_t, out_pts):  # type: ignore[no-untyped-def]
    """Simplify every drawing of flat arrays (module docstring); returns the number of points written.

    ``x``, ``y``: all points, drawing after drawing; ``stroke_pts``: points per stroke; ``n_strokes``: strokes
    per drawing. ``out_x``/``out_y`` (at least :func:`resampled_bound` long) get the simplified points,
    ``out_pts`` the points of each stroke (>= 2: a one-point stroke is written twice). With a non-empty ``t``
    (the raw milliseconds), ``out_t`` gets each kept point's time, interpolated at the same position as its
    coordinates (exact at the raw points, linear in between).
    """
    timed = t.shape[0] > 0
    cap = 16
    for k in range(stroke_pts.shape[0]):
        cap = max(cap, stroke_pts[k])
    sx = np.empty(cap, np.float64)
    sy = np.empty(cap, np.float64)
    cum = np.empty(cap, np.float64)
    seglen = np.empty(cap, np.float64)
    rcap = 64
    rx = np.empty(rcap, np.float64)
    ry = np.empty(rcap, np.float64)
    rt = np.empty(rcap, np.float64)
    keep = np.empty(rcap, np.bool_)
    stack = np.empty((rcap + 2, 2), np.int64)
    p = 0
    s = 0
    o = 0
    for d in range(n_strokes.shape[0]):
        ns = n_strokes[d]
        npts = 0
        for k in range(s, s + ns):
            npts += stroke_pts[k]
        minx, miny, ext = _frame(x, y, p, p + npts)
        for k in range(s, s + ns):
            m = stroke_pts[k]
            for i in range(m):
                if ext > 0:
                    sx[i] = (x[p + i] - minx) * 255.0 / ext
                    sy[i] = (y[p + i] - miny) * 255.0 / ext
                else:  # a drawing that is one point (or one point many times): everything at 0
                    sx[i] = x[p + i] - minx
                    sy[i] = y[p + i] - miny
            cum[0] = 0.0
            for i in range(1, m):
                seglen[i - 1] = math.sqrt((sx[i] - sx[i - 1]) ** 2 + (sy[i] - sy[i - 1]) ** 2)
                cum[i] = cum[i - 1] + seglen[i - 1]
            length = cum[m - 1]
            need = int(length) + 3
            if need > rcap:
                while rcap < need:
                    rcap *= 2
                rx = np.empty(rcap, np.float64)
                ry = np.empty(rcap, np.float64)
                rt = np.empty(rcap, np.float64)
                keep = np.empty(rcap, np.bool_)
                stack = np.empty((rcap + 2, 2), np.int64)
            rx[0] = sx[0]
            ry[0] = sy[0]
            if timed:
                rt[0] = t[p]
            r = 1
            j = 0
            step = 1
            while True:
                pos = float(step)
                if pos >= length:
                    break
                while cum[j + 1] <= pos:
                    j += 1
                f = (pos - cum[j]) / seglen[j]
                rx[r] = sx[j] * (1.0 - f) + sx[j + 1] * f
                ry[r] = sy[j] * (1.0 - f) + sy[j + 1] * f
                if timed:
                    rt[r] = t[p + j] * (1.0 - f) + t[p + j + 1] * f
                r += 1
                step += 1
            if m > 1 and (rx[r - 1] != sx[m - 1] or ry[r - 1] != sy[m - 1]):
                rx[r] = sx[m - 1]
                ry[r] = sy[m - 1]
                if timed:
                    rt[r] = t[p + m - 1]
                r += 1
            if r == 1:  # rdp_rec of a single point returns it twice
                rx[1] = rx[0]
                ry[1] = ry[0]
                if timed:
                    rt[1] = rt[0]
                r = 2
            _rdp(rx, ry, r, EPSILON, keep, stack)
            c = 0
            for i in range(r):
                if keep[i]:
                    out_x[o] = _round255(rx[i])
                    out_y[o] = _round255(ry[i])
                    if timed:
                        out_t[o] = rt[i]
                    o += 1
                    c += 1
            out_pts[k] = c
            p += m
        s += ns
    return o
