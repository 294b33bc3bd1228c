"""Parsing simplified ndjson into :data:`~quickdraw.sources.schema.DRAWING_SCHEMA` tables, fast and exactly.

Two paths produce the same table:

* the fast path is a compiled scanner (:mod:`quickdraw.sources._kernel`) that accepts lines of exactly the
  shape the public files have and writes them straight into flat arrays; no Python code runs per drawing;
* the exact path runs only on the lines the scanner refuses (blank lines, CRLF, a BOM, another key order,
  a bad record): it decodes the line with orjson, judges it with :func:`check_record` (the definition of
  validity), quarantines bad ones with their line number and reason, and converts good ones with the
  reference builder :func:`~quickdraw.sources.schema.table_from_records`.

A bad record therefore never costs the good records beside it, and tests hold both paths to the same output.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from quickdraw.sources.schema import DRAWING_SCHEMA, drawing_array

__all__ = ["ChunkResult", "QUARANTINE_RAW_BYTES", "QUARANTINE_SAMPLE", "Reject", "RejectSink", "SCANNER_MIN_LINES",
           "check_record",
           "parse_chunk", "REASONS"]

# Every reason a record can be rejected for; counts in manifests use these keys.
REASONS = (
    "bad_json",
    "truncated_last_line",
    "not_utf8",
    "not_an_object",
    "missing_key",
    "bad_type",
    "bad_key_id",
    "bad_timestamp",
    "empty_drawing",
    "empty_stroke",
    "bad_stroke",
    "xy_length_mismatch",
    "out_of_range",
    "word_mismatch",
    "too_large",
)

REQUIRED = ("word", "countrycode", "timestamp", "recognized", "key_id", "drawing")
MAX_LINE_BYTES = 4 << 20  # a real simplified drawing is ~0.5 KB; 4 MB is a broken or hostile record
MAX_POINTS = 65535
# Bounds on what bad input can cost (DESIGN "Safety contract: Bounds"): counts of rejects stay exact, but only
# the first QUARANTINE_SAMPLE lines of each reason (per class) are kept, each cut to QUARANTINE_RAW_BYTES.
# So the quarantine of a class stays under ~30 MB however the input is made (even 4x JSON escaping of
# binary bytes: 16 reasons x 100 x 16 KB), and a chunk of two million bad one-byte lines holds 1,600 Reject
# objects, not two million.
QUARANTINE_SAMPLE = 100
QUARANTINE_RAW_BYTES = 4096
# Below this many lines a chunk takes the exact (orjson) path unless the scanner is already loaded. Loading it
# costs ~0.5 CPU-s per process (importing numba, then its run-time start: typing and target contexts, the NRT),
# the time the exact path needs for ~10k lines (~18k lines/s here); so a capped fetch of a few hundred drawings
# (a user trying the tool, a test) never pays for numba, and a full fetch loads it on its first chunk. Both
# paths give the same table (tests hold them to it), so which one ran never shows in the output.
SCANNER_MIN_LINES = 2048

@dataclass
class Reject:
    """One quarantined line."""

    line: int
    reason: str
    detail: str
    raw: bytes
    size: int = -1  # bytes of the whole line when ``raw`` holds only its start (-1: ``raw`` is all of it)

    def to_json(self, url: str) -> dict[str, Any]:
        """The quarantine-file record for this line of ``url``."""
        doc: dict[str, Any] = {
            "source": url,
            "line": self.line,
            "reason": self.reason,
            "detail": self.detail,
            # The raw bytes, decoded losslessly where they are UTF-8; cut to QUARANTINE_RAW_BYTES when from a sink.
            "raw": self.raw.decode("utf-8", errors="backslashreplace")[:MAX_LINE_BYTES],
        }
        if self.size > len(self.raw):
            doc["raw_bytes"] = self.size  # the line was longer: "raw" is its start
        return doc


class RejectSink:
    """Where a parser puts bad lines: exact counts per reason, and the first ``sample`` lines of each reason
    (all of them when ``sample`` is None), their raw bytes cut to QUARANTINE_RAW_BYTES when sampling."""

    def __init__(self, sample: int | None = None) -> None:
        self.sample = sample
        self.counts: dict[str, int] = {}
        self.kept: list[Reject] = []

    def add(self, line: int, reason: str, detail: str, raw: bytes | Callable[[], bytes]) -> None:
        """Count one bad line; keep it if its reason's sample is not full (``raw`` may be a thunk)."""
        n = self.counts.get(reason, 0)
        self.counts[reason] = n + 1
        if self.sample is not None and n >= self.sample:
            return
        data = raw() if callable(raw) else raw
        if self.sample is not None and len(data) > QUARANTINE_RAW_BYTES:
            self.kept.append(Reject(line, reason, detail, bytes(data[:QUARANTINE_RAW_BYTES]), len(data)))
        else:
            self.kept.append(Reject(line, reason, detail, bytes(data)))


@dataclass
class ChunkResult:
    """The drawings of one chunk (all valid, in line order), their line numbers, and the rejected lines."""

    table: pa.Table
    lines: np.ndarray  # 1-based line number of each row of `table`
    rejects: list[Reject] = field(default_factory=list)  # all of them, or a sample per reason (RejectSink)
    n_lines: int = 0  # non-blank lines seen
    lines_spanned: int | None = None  # physical lines in the chunk, blank ones included (None: not counted)
    reject_counts: dict[str, int] | None = None  # exact counts per reason (None: count ``rejects``)

    def counts(self) -> dict[str, int]:
        """Exact number of rejected lines per reason, whether or not ``rejects`` is only a sample."""
        if self.reject_counts is not None:
            return self.reject_counts
        out: dict[str, int] = {}
        for r in self.rejects:
            out[r.reason] = out.get(r.reason, 0) + 1
        return out


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_record(obj: Any, word: str | None = None) -> tuple[str, str] | None:
    """Why a decoded record is invalid, as ``(reason, detail)``, or ``None`` if it is a valid drawing.

    This is the reference definition of validity; the vectorised checks must agree with it.
    """
    if not isinstance(obj, dict):
        return "not_an_object", type(obj).__name__
    for k in REQUIRED:
        if k not in obj or obj[k] is None:
            return "missing_key", k
    for k in ("word", "countrycode", "timestamp", "key_id"):
        if not isinstance(obj[k], str):
            return "bad_type", f"{k} is {type(obj[k]).__name__}, expected string"
    if not isinstance(obj["recognized"], bool):
        return "bad_type", f"recognized is {type(obj['recognized']).__name__}, expected bool"
    kid = obj["key_id"]
    if not (kid.isascii() and kid.isdigit()) or len(kid) > 20 or int(kid) >= 2**64:
        return "bad_key_id", repr(kid[:40])
    try:
        from quickdraw.sources.schema import parse_timestamp

        parse_timestamp(obj["timestamp"])
    except ValueError:
        return "bad_timestamp", repr(obj["timestamp"][:40])
    if word is not None and obj["word"] != word:
        return "word_mismatch", f"word {obj['word']!r} in the file of {word!r}"
    drawing = obj["drawing"]
    if not isinstance(drawing, list):
        return "bad_type", f"drawing is {type(drawing).__name__}, expected list"
    if not drawing:
        return "empty_drawing", "no strokes"
    n_points = 0
    for i, stroke in enumerate(drawing):
        if not isinstance(stroke, list) or len(stroke) != 2 or not all(isinstance(c, list) for c in stroke):
            return "bad_stroke", f"stroke {i} is not [[x...], [y...]]"
        xs, ys = stroke
        for c in (xs, ys):
            for v in c:
                if not _is_int(v):
                    return "bad_type", f"stroke {i} has non-integer coordinate {v!r}"[:120]
        if len(xs) != len(ys):
            return "xy_length_mismatch", f"stroke {i}: {len(xs)} x against {len(ys)} y"
        if not xs:
            return "empty_stroke", f"stroke {i}"
        if any(v < 0 or v > 255 for v in xs) or any(v < 0 or v > 255 for v in ys):
            return "out_of_range", f"stroke {i} has a coordinate outside 0..255"
        if len(xs) > MAX_POINTS:
            return "too_large", f"stroke {i} has {len(xs)} points (stroke_len is uint16)"
        n_points += len(xs)
    if len(drawing) > MAX_POINTS or n_points > 2**32 - 1:
        return "too_large", f"{len(drawing)} strokes, {n_points} points"
    return None


def _classify_line(raw: bytes, word: str | None, last_unterminated: bool) -> tuple[Any, tuple[str, str] | None]:
    if len(raw) > MAX_LINE_BYTES:
        return None, ("too_large", f"{len(raw)} bytes")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return None, ("not_utf8", "line is not valid UTF-8")
        if last_unterminated:
            return None, ("truncated_last_line", f"no newline at end of file and not valid JSON: {exc}")
        return None, ("bad_json", str(exc))
    return obj, check_record(obj, word)


_SCRATCH = threading.local()


def _scratch(cap: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-thread scratch buffers for the scanner (x, y, points per stroke, newline mask), grown, never shrunk.

    Allocating chunk-sized arrays per chunk and freeing them again fragmented the heap enough that peak RSS
    crept up with the input size, and every fresh allocation of that size is mapped anew by the kernel (page
    faults were a third of fetch's CPU time); reusing them keeps RSS flat and the faults to the first chunk.
    Nothing returned by this module keeps a view of them (results are copied out).
    """
    bufs = getattr(_SCRATCH, "bufs", None)
    if bufs is None or len(bufs[0]) < cap:
        bufs = (np.empty(cap, np.uint8), np.empty(cap, np.uint8), np.empty(cap // 4 + 1, np.int32),
                np.empty(cap, np.bool_))
        _SCRATCH.bufs = bufs
    return bufs


def _fast_table(
    buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, word: str
) -> tuple[pa.Table, np.ndarray]:
    """Run the compiled scanner over lines; return the table of accepted lines and the refused mask."""
    from quickdraw.sources._kernel import scan_lines

    n = len(starts)
    xs, ys, stroke_pts, _ = _scratch(max(len(buf), 1))
    key_id = np.empty(n, np.uint64)
    ts = np.empty(n, np.int64)
    rec = np.empty(n, np.bool_)
    cc_start = np.empty(n, np.int64)
    cc_end = np.empty(n, np.int64)
    n_strokes = np.empty(n, np.int32)
    n_points = np.empty(n, np.int64)
    refused = np.empty(n, np.bool_)
    wb = np.frombuffer(word.encode("utf-8"), np.uint8)
    total_s, total_p = scan_lines(buf, starts, ends, wb, xs, ys, stroke_pts, key_id, ts, rec, cc_start, cc_end,
                                  n_strokes, n_points, refused)
    ok = ~refused
    m = int(ok.sum())
    ns = n_strokes[ok]
    # Copy out the used part: the scratch buffers are sized for the worst case (the whole chunk), and a
    # zero-copy view would keep them alive as long as the table is buffered.
    drawing = drawing_array({"x": xs[:total_p].copy(), "y": ys[:total_p].copy()}, stroke_pts[:total_s], ns)
    # Country codes are gathered from their byte spans in one vectorised step.
    cs, ce = cc_start[ok], cc_end[ok]
    lens = ce - cs
    co = np.zeros(m + 1, np.int32)
    np.cumsum(lens, out=co[1:])
    idx = np.repeat(cs - co[:-1], lens) + np.arange(co[-1], dtype=np.int64)
    cc = pa.StringArray.from_buffers(m, pa.py_buffer(co), pa.py_buffer(buf[idx].tobytes()))
    wbytes = word.encode("utf-8")
    words = pa.StringArray.from_buffers(
        m, pa.py_buffer(np.arange(m + 1, dtype=np.int32) * len(wbytes)), pa.py_buffer(wbytes * m)
    )
    table = pa.Table.from_arrays(
        [
            pa.array(key_id[ok]),
            words,
            cc,
            pa.array(ts[ok], pa.timestamp("us", tz="UTC")),
            pa.array(rec[ok]),
            pa.array(ns.astype(np.uint16)),
            pa.array(n_points[ok].astype(np.uint32)),
            drawing,
        ],
        schema=DRAWING_SCHEMA,
    )
    return table, refused


def _use_scanner(n_lines: int) -> bool:
    """Whether a chunk of ``n_lines`` lines goes to the compiled scanner (see :data:`SCANNER_MIN_LINES`)."""
    return n_lines >= SCANNER_MIN_LINES or "quickdraw.sources._kernel" in sys.modules


def _line_starts(buf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mask = _scratch(max(len(buf), 1))[3][: len(buf)]
    np.equal(buf, 10, out=mask)
    nl = np.flatnonzero(mask)
    starts = np.concatenate(([0], nl + 1))
    ends = np.concatenate((nl, [len(buf)]))
    if len(starts) and starts[-1] == len(buf):  # data ended with a newline: no trailing partial line
        starts, ends = starts[:-1], ends[:-1]
    return starts, ends


def parse_chunk(
    data: bytes | bytearray | memoryview,
    first_line: int,
    *,
    word: str,
    at_eof: bool = False,
    strict_error: Callable[[int, str, str], None] | None = None,
    sample: int | None = None,
    scanner: bool | None = None,
) -> ChunkResult:
    """Parse whole lines of simplified ndjson; ``first_line`` is the 1-based number of the first line.

    ``sample`` keeps only the first ``sample`` rejects of each reason (counts stay exact), which bounds
    memory on input that is mostly bad (fetch passes QUARANTINE_SAMPLE).

    ``at_eof`` says the chunk ends the file, so a final line without a newline may be a truncated record.
    ``strict_error(line, reason, detail)`` is called on the first bad record (it is expected to raise).
    Rows come out in line order; bad lines come out as :class:`Reject` with their reason. ``data`` may be a
    view of a buffer the caller reuses: nothing returned refers to it. ``scanner`` forces the compiled scanner
    (True) or the exact path for every line (False); by default small chunks take the exact path while the
    scanner is not loaded yet (see :data:`SCANNER_MIN_LINES`). The result is the same either way.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    starts, ends = _line_starts(buf)
    if scanner is None:
        scanner = _use_scanner(len(starts))
    if scanner:
        table, refused = _fast_table(buf, starts, ends, word)
    else:
        table, refused = DRAWING_SCHEMA.empty_table(), np.ones(len(starts), np.bool_)
    lines = np.arange(first_line, first_line + len(starts), dtype=np.int64)
    if not refused.any():
        return ChunkResult(table, lines, [], len(starts), len(starts))
    # Only the refused lines take the slow, exact path; the rest stay as the scanner made them.
    good_recs: list[dict[str, Any]] = []
    good_lines: list[int] = []
    sink = RejectSink(sample)
    blank = 0
    last = len(starts) - 1
    for i in np.flatnonzero(refused).tolist():
        raw = bytes(data[starts[i] : ends[i]])
        line = first_line + i
        if line == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]  # a UTF-8 BOM on the first line is an encoding artefact, not bad data
        if raw.endswith(b"\r"):
            raw = raw[:-1]  # CRLF line endings
        if not raw.strip():
            blank += 1  # blank lines are not records
            continue
        unterminated = at_eof and i == last and buf[-1] != 10
        obj, verdict = _classify_line(raw, word, unterminated)
        if verdict is None:
            good_recs.append(obj)
            good_lines.append(line)
            continue
        if strict_error is not None:
            strict_error(line, verdict[0], verdict[1])
        sink.add(line, verdict[0], verdict[1], raw)
    if good_recs:
        from quickdraw.sources.schema import table_from_records

        if not scanner:  # every line took this loop, in line order: nothing to merge
            return ChunkResult(table_from_records(good_recs), np.asarray(good_lines, dtype=np.int64), sink.kept,
                               len(starts) - blank, len(starts), sink.counts)
        both = pa.concat_tables([table, table_from_records(good_recs)])
        both_lines = np.concatenate([lines[~refused], np.asarray(good_lines, dtype=np.int64)])
        order = np.argsort(both_lines, kind="stable")
        return ChunkResult(both.take(pa.array(order)), both_lines[order], sink.kept, len(starts) - blank,
                           len(starts), sink.counts)
    return ChunkResult(table, lines[~refused], sink.kept, len(starts) - blank, len(starts), sink.counts)
