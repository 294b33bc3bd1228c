"""A compiled scanner for the exact byte layout of Quick, Draw! simplified ndjson lines.

Why not a JSON library: Arrow's JSON reader builds list<list<list<int64>>> at ~50k drawings/s here and
orjson returns Python lists that must then be flattened per drawing; both are far from the 15x-a-notebook
target. Every line of the public files has the same shape::

    {"word":"cat","countrycode":"BR","timestamp":"2017-03-01 12:00:00.12345 UTC","recognized":true,
     "key_id":"5000000000000001","drawing":[[[x,...],[y,...]],...]}

so this scanner accepts exactly that shape and nothing else, writing straight into flat arrays. A line it
does not accept is *not* judged bad: the caller sends its chunk to the exact path
(:func:`quickdraw.sources.ndjson.check_record`), which is the definition of validity. The scanner is only
allowed to be stricter than that definition, never looser; a fuzz test holds it to this.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["scan_lines"]

_P_WORD = np.frombuffer(b'{"word":"', np.uint8)
_P_CC = np.frombuffer(b'","countrycode":"', np.uint8)
_P_TS = np.frombuffer(b'","timestamp":"', np.uint8)
_P_REC = np.frombuffer(b' UTC","recognized":', np.uint8)
_P_KEY = np.frombuffer(b',"key_id":"', np.uint8)
_P_DRAW = np.frombuffer(b'","drawing":[', np.uint8)
_TRUE = np.frombuffer(b"true", np.uint8)
_FALSE = np.frombuffer(b"false", np.uint8)

_U64_MAX = np.uint64(0xFFFFFFFFFFFFFFFF)


def _arr(dtype: object, readonly: bool = False) -> object:
    return numba.types.Array(dtype, 1, "C", readonly=readonly)


# The one signature :func:`scan_lines` is compiled for, eagerly (at import) and cached on disk (``cache=True``:
# next to this file in __pycache__, or in NUMBA_CACHE_DIR / the user cache dir when that is not writable).
# Why explicit: with lazy compilation every new combination of argument types is another 4-5 CPU-s compile,
# and callers differ in one flag only: fetch passes a view of its reused ``bytearray`` (a writable array),
# tests and benchmarks pass ``bytes`` (read-only). Declaring ``buf`` (and ``word``) read-only makes both
# match this one signature (numba converts a writable array to a read-only one for free), so whatever
# process compiles first, every later one loads the same cache entry.
_SCAN_LINES_SIG = (
    _arr(numba.types.uint8, readonly=True),  # buf
    _arr(numba.types.int64),  # starts
    _arr(numba.types.int64),  # ends
    _arr(numba.types.uint8, readonly=True),  # word
    _arr(numba.types.uint8),  # xs
    _arr(numba.types.uint8),  # ys
    _arr(numba.types.int32),  # stroke_pts
    _arr(numba.types.uint64),  # key_id
    _arr(numba.types.int64),  # ts
    _arr(numba.types.boolean),  # rec
    _arr(numba.types.int64),  # cc_start
    _arr(numba.types.int64),  # cc_end
    _arr(numba.types.int32),  # n_strokes
    _arr(numba.types.int64),  # n_points
    _arr(numba.types.boolean),  # refused
)


@numba.njit(cache=True, nogil=True)
def _lit(buf, pos, end, lit):  # type: ignore[no-untyped-def]
    n = lit.shape[0]
    if pos + n > end:
        return -1
    for i in range(n):
        if buf[pos + i] != lit[i]:
            return -1
    return pos + n


@numba.njit(cache=True, nogil=True)
def _string(buf, pos, end):  # type: ignore[no-untyped-def]
    # Printable-ASCII JSON string body without escapes; returns the index of the closing quote. Anything
    # else (escapes, UTF-8, control characters) is left to the exact path.
    while pos < end:
        c = buf[pos]
        if c == 34:
            return pos
        if c == 92 or c < 32 or c > 126:
            return -1
        pos += 1
    return -1


@numba.njit(cache=True, nogil=True)
def _digits(buf, pos, end, n):  # type: ignore[no-untyped-def]
    v = 0
    for i in range(n):
        if pos + i >= end:
            return -1
        c = buf[pos + i]
        if c < 48 or c > 57:
            return -1
        v = v * 10 + (c - 48)
    return v


@numba.njit(cache=True, nogil=True)
def _days_from_civil(y, m, d):  # type: ignore[no-untyped-def]
    # Howard Hinnant's algorithm: days since 1970-01-01 of a proleptic Gregorian date.
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    mp = (m + 9) % 12
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


@numba.njit(cache=True, nogil=True)
def _timestamp(buf, pos, end, out, i):  # type: ignore[no-untyped-def]
    # "YYYY-MM-DD HH:MM:SS[.f{1,6}]"; returns the position after it, or -1. Same validity as
    # datetime.fromisoformat for this shape: real calendar dates, hour < 24, minute and second < 60.
    if pos + 19 > end:
        return -1
    y = _digits(buf, pos, end, 4)
    mo = _digits(buf, pos + 5, end, 2)
    d = _digits(buf, pos + 8, end, 2)
    h = _digits(buf, pos + 11, end, 2)
    mi = _digits(buf, pos + 14, end, 2)
    s = _digits(buf, pos + 17, end, 2)
    if y < 1 or mo < 1 or d < 1 or h < 0 or mi < 0 or s < 0:
        return -1
    if buf[pos + 4] != 45 or buf[pos + 7] != 45 or buf[pos + 10] != 32 or buf[pos + 13] != 58 or buf[pos + 16] != 58:
        return -1
    if mo > 12 or h > 23 or mi > 59 or s > 59:
        return -1
    leap = (y % 4 == 0 and y % 100 != 0) or y % 400 == 0
    dim = 31
    if mo == 2:
        dim = 29 if leap else 28
    elif mo == 4 or mo == 6 or mo == 9 or mo == 11:
        dim = 30
    if d > dim:
        return -1
    p = pos + 19
    us = 0
    if p < end and buf[p] == 46:
        p += 1
        nd = 0
        while p < end and 48 <= buf[p] <= 57 and nd < 7:
            us = us * 10 + (buf[p] - 48)
            nd += 1
            p += 1
        if nd == 0 or nd > 6:
            return -1
        for _ in range(6 - nd):
            us *= 10
    days = _days_from_civil(y, mo, d)
    out[i] = ((days * 24 + h) * 60 + mi) * 60 * 1_000_000 + s * 1_000_000 + us
    return p


@numba.njit(cache=True, nogil=True)
def _coord_list(buf, pos, end, dst, cursor):  # type: ignore[no-untyped-def]
    # "[v,v,...]" with 0 <= v <= 255, no leading zeros, at least one value. Returns (pos after ']', count).
    # Digits are read by position (one, two or three) rather than in a loop: this is the innermost loop of
    # fetch, run ~90 times a drawing. A value is always followed by ',' or ']', so pos + 1 < end holds
    # for every well-formed value and guards the look-ahead reads.
    if pos >= end or buf[pos] != 91:
        return -1, 0
    pos += 1
    n = 0
    while pos + 1 < end:
        d0 = np.int64(buf[pos]) - 48
        if d0 < 0 or d0 > 9:
            return -1, 0
        d1 = np.int64(buf[pos + 1]) - 48
        if d1 < 0 or d1 > 9:
            v = d0
            pos += 1
        elif d0 == 0:
            return -1, 0  # leading zero
        else:
            if pos + 2 >= end:
                return -1, 0
            d2 = np.int64(buf[pos + 2]) - 48
            if d2 < 0 or d2 > 9:
                v = d0 * 10 + d1
                pos += 2
            else:
                v = d0 * 100 + d1 * 10 + d2
                if v > 255:
                    return -1, 0
                pos += 3  # a fourth digit fails the separator test below
        if pos >= end:
            return -1, 0
        dst[cursor + n] = v
        n += 1
        c = buf[pos]
        if c == 44:
            pos += 1
        elif c == 93:
            return pos + 1, n
        else:
            return -1, 0
    return -1, 0


@numba.njit(cache=True, nogil=True)
def _header(buf, pos, end, i, word, key_id, ts, rec, cc_start, cc_end):  # type: ignore[no-untyped-def]
    """The fields before the drawing, the same in simplified and raw lines (both scanners use this):
    ``"word"`` (must equal ``word``), ``"countrycode"`` (its span), ``"timestamp"``, ``"recognized"``,
    ``"key_id"``, then the ``"drawing":`` key. Returns the position after it, or -1 if the shape differs."""
    pos = _lit(buf, pos, end, _P_WORD)
    if pos < 0:
        return -1
    q = _string(buf, pos, end)
    if q < 0 or q - pos != word.shape[0]:
        return -1
    for k in range(word.shape[0]):
        if buf[pos + k] != word[k]:
            return -1
    pos = _lit(buf, q, end, _P_CC)
    if pos < 0:
        return -1
    q = _string(buf, pos, end)
    if q < 0:
        return -1
    cc_start[i] = pos
    cc_end[i] = q
    pos = _lit(buf, q, end, _P_TS)
    if pos < 0:
        return -1
    pos = _timestamp(buf, pos, end, ts, i)
    if pos < 0:
        return -1
    pos = _lit(buf, pos, end, _P_REC)
    if pos < 0:
        return -1
    t = _lit(buf, pos, end, _TRUE)
    if t >= 0:
        rec[i] = True
        pos = t
    else:
        pos = _lit(buf, pos, end, _FALSE)
        if pos < 0:
            return -1
        rec[i] = False
    pos = _lit(buf, pos, end, _P_KEY)
    if pos < 0:
        return -1
    kv = np.uint64(0)
    nd = 0
    while pos < end and 48 <= buf[pos] <= 57:
        dgt = np.uint64(buf[pos] - 48)
        if kv > (_U64_MAX - dgt) // np.uint64(10):
            return -1
        kv = kv * np.uint64(10) + dgt
        nd += 1
        pos += 1
    if nd == 0 or nd > 20:
        return -1
    key_id[i] = kv
    return _lit(buf, pos, end, _P_DRAW)


@numba.njit(cache=True, nogil=True)
def _scan_one(buf, pos, end, i, word, xs, ys, stroke_pts, s_cursor, p_cursor, key_id, ts, rec, cc_start, cc_end):  # type: ignore[no-untyped-def]
    pos = _header(buf, pos, end, i, word, key_id, ts, rec, cc_start, cc_end)
    if pos < 0:
        return -1, 0, 0
    ns = 0
    npts = 0
    while True:
        if pos >= end or buf[pos] != 91:
            return -1, 0, 0
        pos, nx = _coord_list(buf, pos + 1, end, xs, p_cursor + npts)
        if pos < 0 or pos >= end or buf[pos] != 44:
            return -1, 0, 0
        pos, ny = _coord_list(buf, pos + 1, end, ys, p_cursor + npts)
        if pos < 0 or ny != nx or pos >= end or buf[pos] != 93 or nx > 65535:
            return -1, 0, 0
        pos += 1
        stroke_pts[s_cursor + ns] = nx
        ns += 1
        npts += nx
        if pos < end and buf[pos] == 44:
            pos += 1
            continue
        break
    # the drawing's closing ']' and the record's closing '}' end the line exactly
    if pos + 2 != end or buf[pos] != 93 or buf[pos + 1] != 125 or ns > 65535:
        return -1, 0, 0
    return 0, ns, npts


@numba.njit([_SCAN_LINES_SIG], cache=True, nogil=True)
def scan_lines(buf, starts, ends, word, xs, ys, stroke_pts, key_id, ts, rec, cc_start, cc_end, n_strokes, n_points, refused):  # type: ignore[no-untyped-def]
    """Scan lines ``buf[starts[i]:ends[i]]`` into the output arrays; ``refused[i]`` is set for each line that
    does not have the exact expected shape (its outputs are left unset). Returns ``(n_strokes, n_points)``."""
    p_cursor = 0
    s_cursor = 0
    for i in range(starts.shape[0]):
        st, ns, npts = _scan_one(buf, starts[i], ends[i], i, word, xs, ys, stroke_pts, s_cursor, p_cursor,
                                 key_id, ts, rec, cc_start, cc_end)
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
