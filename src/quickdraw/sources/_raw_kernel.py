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


# The maximum of a run of numerators, vectorised: the flags only let LLVM assume no NaN/inf/signed zeros
# (there are none: inputs are finite and these are absolute values or squares); no reassociation and no
# contraction into FMA, so every value is computed exactly as in the plain loop.
_MAX_FLAGS = {"nnan", "ninf", "nsz"}


@numba.njit(cache=True, nogil=True, fastmath=_MAX_FLAGS)
def _max_cross(px, py, a, b, sx, sy, vx, vy):  # type: ignore[no-untyped-def]
    cmax = 0.0
    for i in range(a + 1, b):
        cmax = max(cmax, abs(vx * (sy - py[i]) - vy * (sx - px[i])))
    return cmax


@numba.njit(cache=True, nogil=True, fastmath=_MAX_FLAGS)
def _max_sq(px, py, a, b, sx, sy):  # type: ignore[no-untyped-def]
    cmax = 0.0
    for i in range(a + 1, b):
        cmax = max(cmax, (px[i] - sx) ** 2 + (py[i] - sy) ** 2)
    return cmax


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
        # rdp_rec compares d = |cross| / norm (or the distance to start when start == end). Division and sqrt
        # are monotonic but not strictly, so first find the largest numerator without them, then take the
        # first point whose d equals that maximum's d: the same choice, with a division only near the top.
        cmax = _max_sq(px, py, a, b, sx, sy) if same else _max_cross(px, py, a, b, sx, sy, vx, vy)
        best = math.sqrt(cmax) if same else cmax / norm
        idx = -1
        if best > 0.0:
            floor_ = cmax * (1.0 - 1e-12)  # every numerator whose d can equal best is at least this
            for i in range(a + 1, b):
                if same:
                    c = (px[i] - sx) ** 2 + (py[i] - sy) ** 2
                    if c >= floor_ and math.sqrt(c) == best:
                        idx = i
                        break
                else:
                    c = abs(vx * (sy - py[i]) - vy * (sx - px[i]))
                    if c >= floor_ and c / norm == best:
                        idx = i
                        break
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


# ------------------------------------------------------------------------------------------------ scanner
#
# The public raw lines all have one shape (no whitespace, this key order, numbers without exponents):
#
#   {"word":"cat","countrycode":"US","timestamp":"2017-03-26 18:43:54.78083 UTC","recognized":true,
#    "key_id":"1234567890123456","drawing":[[[414.25,...],[...],[0,17,...]],...]}
#
# :func:`scan_raw_lines` accepts exactly that shape with values the exact path accepts as they are, and
# refuses everything else (blank lines, CRLF, a BOM, escapes, exponents, "-0", huge or out-of-range values,
# any invalid record): refused lines go to orjson + ``check_raw_record``, which stays the definition of
# validity. The scanner may only be stricter than that definition, never looser (tests/security fuzz it).
#
# Coordinates must come out as the very float64 orjson gives (simplification depends on the last bit), so
# decimals are converted exactly: Clinger's fast path (mantissa < 2^53 and <= 22 decimals: one correctly
# rounded division) and, for the 16-17 digit mantissas of the float32 values printed as doubles, an exact
# 128-bit long division by 5^k with round half to even; anything beyond 19 digits or 27 decimals is refused.

from quickdraw.sources._kernel import _header  # noqa: E402  (the fields before the drawing: shared)

_POW10 = np.array([10.0**k for k in range(23)], np.float64)
_POW5 = np.array([5**k for k in range(28)], np.uint64)
_TWO53 = np.uint64(1 << 53)
COORD_LIMIT = 1e6  # == quickdraw.sources.raw.RAW_COORD_LIMIT (beyond it the exact path says out_of_range)

_SCAN_RAW_SIG = numba.types.UniTuple(numba.types.int64, 2)(
    _arr(numba.types.uint8, readonly=True),  # buf
    _arr(numba.types.int64, readonly=True),  # starts
    _arr(numba.types.int64, readonly=True),  # ends
    _arr(numba.types.uint8, readonly=True),  # word
    numba.types.int64,  # max_line: longer lines are refused (the exact path calls them too_large)
    _F64,  # xs
    _F64,  # ys
    _arr(numba.types.int64),  # ts
    _arr(numba.types.int64),  # stroke_pts
    _arr(numba.types.uint64),  # key_id
    _arr(numba.types.int64),  # timestamp (us)
    _arr(numba.types.boolean),  # recognized
    _arr(numba.types.int64),  # cc_start
    _arr(numba.types.int64),  # cc_end
    _arr(numba.types.int64),  # n_strokes
    _arr(numba.types.int64),  # n_points
    _arr(numba.types.boolean),  # refused
)


@numba.njit(cache=True, nogil=True)
def _bitlen(v):  # type: ignore[no-untyped-def]
    n = 0
    while v != np.uint64(0):
        v = v >> np.uint64(1)
        n += 1
    return n


@numba.njit(cache=True, nogil=True)
def _exact_div(m, k):  # type: ignore[no-untyped-def]
    """The float64 nearest to ``m / 10**k`` (ties to even), for 0 < m < 2**64 and k <= 27."""
    d = _POW5[k]
    b = _bitlen(m)
    sh = 56 - b + _bitlen(d)  # so that the quotient has 55-57 bits: 53 kept, a guard bit, and more
    if sh < 0:
        sh = 0
    if sh == 0:
        hi = np.uint64(0)
        lo = m
    elif sh < 64:
        hi = m >> np.uint64(64 - sh)
        lo = m << np.uint64(sh)
    else:
        hi = m << np.uint64(sh - 64)
        lo = np.uint64(0)
    # Long division of the 128-bit (hi, lo) by d, w bits at a time: rem < d < 2**(63 - w), so rem << w fits
    # in 63 bits (a 32-bit step for 5**13 and below, a few bits for the largest d).
    w = 63 - _bitlen(d)
    if w > 32:
        w = 32
    if w < 1:  # d has 63 bits (5**27): one bit at a time, rem << 1 < 2**64 still fits
        w = 1
    mask = (np.uint64(1) << np.uint64(w)) - np.uint64(1)
    total = b + sh
    i = ((total + w - 1) // w) * w - w
    rem = np.uint64(0)
    q = np.uint64(0)
    while i >= 0:
        if i >= 64:
            chunk = hi >> np.uint64(i - 64)
        elif i == 0:
            chunk = lo
        else:
            chunk = (lo >> np.uint64(i)) | (hi << np.uint64(64 - i))
        rem = (rem << np.uint64(w)) | (chunk & mask)
        q = (q << np.uint64(w)) | (rem // d)
        rem = rem % d
        i -= w
    nb = _bitlen(q)
    shift = nb - 53
    mant = q >> np.uint64(shift)
    low = q & ((np.uint64(1) << np.uint64(shift)) - np.uint64(1))
    half = np.uint64(1) << np.uint64(shift - 1)
    if low > half or (low == half and (rem != np.uint64(0) or (mant & np.uint64(1)) == np.uint64(1))):
        mant += np.uint64(1)
        if mant == _TWO53 + _TWO53:
            mant = mant >> np.uint64(1)
            shift += 1
    return math.ldexp(float(mant), shift - sh - k)


@numba.njit(cache=True, nogil=True)
def _coord(buf, pos, end):  # type: ignore[no-untyped-def]
    """A JSON number without exponent at ``pos``: (position after it, float64 value); (-1, 0) to refuse."""
    neg = False
    if pos < end and buf[pos] == 45:
        neg = True
        pos += 1
    if pos >= end or buf[pos] < 48 or buf[pos] > 57:
        return -1, 0.0
    m = np.uint64(0)
    nd = 0  # significant digits in m
    if buf[pos] == 48:
        pos += 1
        if pos < end and 48 <= buf[pos] <= 57:
            return -1, 0.0  # leading zero: not JSON
    else:
        while pos < end and 48 <= buf[pos] <= 57:
            if nd >= 19:
                return -1, 0.0
            m = m * np.uint64(10) + np.uint64(buf[pos] - 48)
            nd += 1
            pos += 1
    k = 0
    is_float = False
    if pos < end and buf[pos] == 46:
        is_float = True
        pos += 1
        if pos >= end or buf[pos] < 48 or buf[pos] > 57:
            return -1, 0.0
        while pos < end and 48 <= buf[pos] <= 57:
            if nd >= 19 or k >= 27:
                return -1, 0.0
            m = m * np.uint64(10) + np.uint64(buf[pos] - 48)
            if m != np.uint64(0):
                nd += 1
            k += 1
            pos += 1
    if pos < end and (buf[pos] == 101 or buf[pos] == 69):
        return -1, 0.0  # exponents: left to the exact path
    if m == np.uint64(0):
        if neg and not is_float:
            return -1, 0.0  # "-0" is the integer 0 (+0.0) in Python; rare enough to leave to the exact path
        return pos, -0.0 if neg else 0.0
    if not is_float and nd > 15:
        return -1, 0.0  # a huge integer: the exact path decides (it is out of range anyway)
    if m < _TWO53 and k <= 22:
        v = float(m) / _POW10[k]
    else:
        v = _exact_div(m, k)
    if v > COORD_LIMIT:
        return -1, 0.0
    return pos, -v if neg else v


@numba.njit(cache=True, nogil=True)
def _coords(buf, pos, end, dst, cursor):  # type: ignore[no-untyped-def]
    """``[v,v,...]`` (at least one value) into ``dst[cursor:]``; returns (position after ']', count)."""
    if pos >= end or buf[pos] != 91:
        return -1, 0
    pos += 1
    n = 0
    while True:
        pos, v = _coord(buf, pos, end)
        if pos < 0:
            return -1, 0
        dst[cursor + n] = v
        n += 1
        if pos >= end:
            return -1, 0
        c = buf[pos]
        if c == 44:
            pos += 1
        elif c == 93:
            return pos + 1, n
        else:
            return -1, 0


@numba.njit(cache=True, nogil=True)
def _times(buf, pos, end, dst, cursor):  # type: ignore[no-untyped-def]
    """``[t,t,...]`` of JSON integers in the int32 range; returns (position after ']', count)."""
    if pos >= end or buf[pos] != 91:
        return -1, 0
    pos += 1
    n = 0
    while True:
        neg = False
        if pos < end and buf[pos] == 45:
            neg = True
            pos += 1
        if pos >= end or buf[pos] < 48 or buf[pos] > 57:
            return -1, 0
        v = 0
        nd = 0
        if buf[pos] == 48:
            pos += 1
            nd = 1
            if neg:
                return -1, 0  # "-0": left to the exact path
        else:
            while pos < end and 48 <= buf[pos] <= 57:
                v = v * 10 + (buf[pos] - 48)
                nd += 1
                pos += 1
                if nd > 10:
                    return -1, 0
        if neg:
            v = -v
        if v < -2147483648 or v > 2147483647:
            return -1, 0
        if pos >= end:
            return -1, 0
        c = buf[pos]
        dst[cursor + n] = v
        n += 1
        if c == 44:
            pos += 1
        elif c == 93:
            return pos + 1, n
        else:
            return -1, 0  # '.', 'e' (a float time is bad_type) or anything else


@numba.njit(cache=True, nogil=True)
def _scan_raw_one(buf, pos, end, i, word, xs, ys, ts, stroke_pts, s_cursor, p_cursor, key_id, tstamp, rec,
                  cc_start, cc_end):  # type: ignore[no-untyped-def]
    pos = _header(buf, pos, end, i, word, key_id, tstamp, rec, cc_start, cc_end)
    if pos < 0:
        return -1, 0, 0
    ns = 0
    npts = 0
    while True:
        if pos >= end or buf[pos] != 91:
            return -1, 0, 0
        pos, nx = _coords(buf, pos + 1, end, xs, p_cursor + npts)
        if pos < 0 or pos >= end or buf[pos] != 44:
            return -1, 0, 0
        pos, ny = _coords(buf, pos + 1, end, ys, p_cursor + npts)
        if pos < 0 or ny != nx or pos >= end or buf[pos] != 44:
            return -1, 0, 0
        pos, nt = _times(buf, pos + 1, end, ts, p_cursor + npts)
        if pos < 0 or nt != nx or pos >= end or buf[pos] != 93 or nx > 65535:
            return -1, 0, 0
        pos += 1
        stroke_pts[s_cursor + ns] = nx
        ns += 1
        npts += nx
        if pos < end and buf[pos] == 44:
            pos += 1
            continue
        break
    if pos + 2 != end or buf[pos] != 93 or buf[pos + 1] != 125 or ns > 65535:
        return -1, 0, 0
    return 0, ns, npts


@numba.njit([_SCAN_RAW_SIG], cache=True, nogil=True)
def scan_raw_lines(buf, starts, ends, word, max_line, xs, ys, ts, stroke_pts, key_id, tstamp, rec, cc_start,
                   cc_end, n_strokes, n_points, refused):  # type: ignore[no-untyped-def]
    """Scan raw lines ``buf[starts[i]:ends[i]]`` into the output arrays (sized for the whole chunk: a point
    takes at least 6 bytes, a stroke 12); ``refused[i]`` marks each line that does not have the exact public
    shape (its outputs are left unset). Returns ``(strokes, points)`` written."""
    p_cursor = 0
    s_cursor = 0
    for i in range(starts.shape[0]):
        if ends[i] - starts[i] > max_line:
            st, ns, npts = -1, 0, 0
        else:
            st, ns, npts = _scan_raw_one(buf, starts[i], ends[i], i, word, xs, ys, ts, stroke_pts, s_cursor,
                                         p_cursor, key_id, tstamp, rec, cc_start, cc_end)
        if st < 0:
            refused[i] = True
            n_strokes[i] = 0
            n_points[i] = 0
            continue
        refused[i] = False
        n_strokes[i] = ns
        n_points[i] = npts
        s_cursor += ns
        p_cursor += npts
    return s_cursor, p_cursor
