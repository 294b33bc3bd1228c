"""The bucket's binary format (``full/binary/<word>.bin``): a reader that streams it in chunks, and a writer.

Layout, as the Quick, Draw! README ("Binary files") publishes it, all little-endian, one record after another::

    key_id       uint64
    countrycode  2 ASCII bytes
    recognized   uint8
    timestamp    uint32   (unix seconds)
    n_strokes    uint16
    n_strokes x { n_points uint16, x uint8[n_points], y uint8[n_points] }

There is no word field (the word is the file name) and no record separator, so a chunk can only be cut on
a record boundary: :func:`parse_binary_chunk` parses as many whole records as the bytes hold and says where
the last one ended; the caller carries the rest into the next read.

Equivalence with the ndjson path (tested): for the same drawings, the table here equals the ndjson table with
its timestamps floored to whole seconds (binary stores no sub-second part). ``write_binary`` refuses what the
format cannot hold (a country code that is not 2 ASCII bytes, more than 65,535 strokes or points per stroke,
coordinates outside 0..255, timestamps outside 1970..2106), so that equivalence has no other exception.

A compiled kernel walks the records and writes straight into flat arrays, as the ndjson scanner does; no
Python code runs per drawing.
"""

from __future__ import annotations

import datetime as dt
import os
import struct
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numba
import numpy as np
import pyarrow as pa

from quickdraw.sources.ndjson import ChunkResult, RejectSink
from quickdraw.sources.schema import DRAWING_SCHEMA, drawing_array, parse_timestamp

__all__ = ["HEADER_BYTES", "encode_record", "parse_binary_chunk", "write_binary"]

HEADER_BYTES = 17  # 8 key_id + 2 countrycode + 1 recognized + 4 timestamp + 2 n_strokes

# Per-record status codes from the kernel (0 = a valid drawing).
_REASON = {1: "empty_drawing", 2: "empty_stroke", 3: "bad_type", 4: "bad_type"}
_DETAIL = {1: "no strokes", 2: "a stroke with no points", 3: "recognized byte is not 0 or 1",
           4: "countrycode is not 2 ASCII bytes"}


@numba.njit(cache=True, nogil=True)
def _scan_records(buf, key_id, cc, rec, ts, n_strokes, n_points, status, starts, stroke_pts, xs, ys):  # type: ignore[no-untyped-def]
    """Walk whole records from the start of ``buf``; returns (records, strokes, points, end of last record)."""
    n_buf = buf.shape[0]
    pos = 0
    r = 0
    s_total = 0
    p_total = 0
    while pos + 17 <= n_buf:
        # Find the end of this record first, so a partial record writes nothing.
        ns = buf[pos + 15] | (np.int64(buf[pos + 16]) << 8)
        q = pos + 17
        whole = True
        for _ in range(ns):
            if q + 2 > n_buf:
                whole = False
                break
            npts = buf[q] | (np.int64(buf[q + 1]) << 8)
            q += 2 + 2 * npts
            if q > n_buf:
                whole = False
                break
        if not whole:
            break
        k = np.uint64(0)
        for i in range(8):
            k |= np.uint64(buf[pos + i]) << np.uint64(8 * i)
        key_id[r] = k
        c0 = buf[pos + 8]
        c1 = buf[pos + 9]
        cc[2 * r] = c0
        cc[2 * r + 1] = c1
        st = 0
        for c in (c0, c1):
            if c > 126 or (c < 32 and c != 0):
                st = 4
        rb = buf[pos + 10]
        if rb > 1:
            st = 3
        rec[r] = rb == 1
        t = np.int64(0)
        for i in range(4):
            t |= np.int64(buf[pos + 11 + i]) << (8 * i)
        ts[r] = t * 1000000
        if ns == 0 and st == 0:
            st = 1
        starts[r] = pos
        n_strokes[r] = ns
        q = pos + 17
        tp = 0
        for _ in range(ns):
            npts = buf[q] | (np.int64(buf[q + 1]) << 8)
            if npts == 0 and st == 0:
                st = 2
            stroke_pts[s_total] = npts
            s_total += 1
            for i in range(npts):
                xs[p_total + i] = buf[q + 2 + i]
                ys[p_total + i] = buf[q + 2 + npts + i]
            p_total += npts
            tp += npts
            q += 2 + 2 * npts
        n_points[r] = tp
        status[r] = st
        pos = q
        r += 1
    return r, s_total, p_total, pos


def parse_binary_chunk(
    data: bytes,
    first_record: int,
    *,
    word: str,
    at_eof: bool = False,
    strict_error: Callable[[int, str, str], None] | None = None,
    sample: int | None = None,
) -> tuple[ChunkResult, int]:
    """Parse the whole records at the start of ``data``; returns ``(result, bytes consumed)``.

    ``first_record`` is the 1-based number of the first record (it plays the role of a line number in
    quarantine entries and errors). Fewer bytes than one whole record consume nothing, unless ``at_eof``:
    then the rest is a ``truncated_last_record`` reject and everything is consumed. Invalid but well-framed
    records (no strokes, an empty stroke, a recognized byte other than 0/1, a non-ASCII country code) are
    rejected with their reason; the records around them are kept.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    n_max = len(buf) // HEADER_BYTES + 1
    key_id = np.empty(n_max, np.uint64)
    cc = np.empty(2 * n_max, np.uint8)
    rec = np.empty(n_max, np.bool_)
    ts = np.empty(n_max, np.int64)
    n_strokes = np.empty(n_max, np.int64)
    n_points = np.empty(n_max, np.int64)
    status = np.empty(n_max, np.int8)
    starts = np.empty(n_max, np.int64)
    stroke_pts = np.empty(len(buf) // 2 + 1, np.int32)
    xs = np.empty(len(buf) // 2 + 1, np.uint8)
    ys = np.empty(len(buf) // 2 + 1, np.uint8)
    n, n_s, n_p, end = _scan_records(buf, key_id, cc, rec, ts, n_strokes, n_points, status, starts,
                                     stroke_pts, xs, ys)
    sink = RejectSink(sample)
    bad = np.flatnonzero(status[:n] != 0)
    for i in bad.tolist():
        reason, detail = _REASON[int(status[i])], _DETAIL[int(status[i])]
        if strict_error is not None:
            strict_error(first_record + i, reason, detail)
        stop = starts[i + 1] if i + 1 < n else end
        sink.add(first_record + i, reason, detail, lambda a=int(starts[i]), b=int(stop): data[a:b].hex().encode())
    consumed = end
    n_read = n
    if at_eof and end < len(buf):
        detail = f"{len(buf) - end} bytes at the end of the file are not a whole record"
        if strict_error is not None:
            strict_error(first_record + n, "truncated_last_record", detail)
        sink.add(first_record + n, "truncated_last_record", detail, data[end : end + 64].hex().encode())
        consumed = len(buf)
        n_read += 1
    table = _table(word, n, n_s, n_p, key_id, cc, rec, ts, n_strokes, n_points, stroke_pts, xs, ys)
    lines = np.arange(first_record, first_record + n, dtype=np.int64)
    if len(bad):
        ok = status[:n] == 0
        table = table.filter(pa.array(ok))
        lines = lines[ok]
    return ChunkResult(table, lines, sink.kept, n_read, None, sink.counts), consumed


def _table(word: str, n: int, n_s: int, n_p: int, key_id: np.ndarray, cc: np.ndarray, rec: np.ndarray,
           ts: np.ndarray, n_strokes: np.ndarray, n_points: np.ndarray, stroke_pts: np.ndarray,
           xs: np.ndarray, ys: np.ndarray) -> pa.Table:
    drawing = drawing_array({"x": xs[:n_p], "y": ys[:n_p]}, stroke_pts[:n_s], n_strokes[:n])
    # Country codes: 2 bytes each; trailing NULs pad shorter codes (none in the public files).
    codes = cc[: 2 * n].reshape(n, 2)
    lens = 2 - (codes[:, 1] == 0).astype(np.int32) - ((codes[:, 0] == 0) & (codes[:, 1] == 0)).astype(np.int32)
    co = np.zeros(n + 1, np.int32)
    np.cumsum(lens, out=co[1:])
    keep = np.zeros((n, 2), bool)
    keep[:, 0] = lens >= 1
    keep[:, 1] = lens == 2
    cc_arr = pa.StringArray.from_buffers(n, pa.py_buffer(co), pa.py_buffer(codes[keep].tobytes()))
    wbytes = word.encode("utf-8")
    words = pa.StringArray.from_buffers(n, pa.py_buffer(np.arange(n + 1, dtype=np.int32) * len(wbytes)),
                                        pa.py_buffer(wbytes * n))
    return pa.Table.from_arrays(
        [
            pa.array(key_id[:n]),
            words,
            cc_arr,
            pa.array(ts[:n], pa.timestamp("us", tz="UTC")),
            pa.array(rec[:n]),
            pa.array(n_strokes[:n].astype(np.uint16)),
            pa.array(n_points[:n].astype(np.uint32)),
            drawing,
        ],
        schema=DRAWING_SCHEMA,
    )


# ------------------------------------------------------------------------------------------------- writer

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def encode_record(record: Mapping[str, Any]) -> bytes:
    """One drawing (an ndjson record dict, as in the simplified files) in the published binary layout.

    Raises ``ValueError`` for what the format cannot hold. The timestamp is floored to whole seconds.
    """
    cc = record.get("countrycode") or ""
    ccb = cc.encode("ascii")
    if len(ccb) > 2:
        raise ValueError(f"countrycode {cc!r} does not fit 2 bytes")
    ts = record["timestamp"]
    when = parse_timestamp(ts) if isinstance(ts, str) else ts
    secs = (when - _EPOCH) // dt.timedelta(seconds=1)
    if not 0 <= secs < 2**32:
        raise ValueError(f"timestamp {ts!r} is outside the uint32 seconds range")
    drawing = record["drawing"]
    if len(drawing) > 0xFFFF:
        raise ValueError(f"{len(drawing)} strokes do not fit uint16")
    out = [struct.pack("<Q2sBIH", int(record["key_id"]), ccb.ljust(2, b"\0"), 1 if record["recognized"] else 0,
                       secs, len(drawing))]
    for stroke in drawing:
        xs, ys = stroke[0], stroke[1]
        if len(xs) != len(ys) or len(xs) > 0xFFFF:
            raise ValueError(f"stroke with {len(xs)} x and {len(ys)} y does not fit the format")
        out.append(struct.pack("<H", len(xs)))
        out.append(bytes(xs))  # bytes() raises ValueError outside 0..255
        out.append(bytes(ys))
    return b"".join(out)


def write_binary(records: Iterable[Mapping[str, Any]], path: str | os.PathLike[str]) -> int:
    """Write drawings (ndjson record dicts) to ``path`` in the published binary format; returns the count.

    The ``word`` of each record is not stored (it is the file name, ``<word>.bin``).
    """
    n = 0
    with open(path, "wb") as f:
        for r in records:
            f.write(encode_record(r))
            n += 1
    return n
