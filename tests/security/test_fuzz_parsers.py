"""Property-based fuzzing of the record parsers fetch runs (ndjson, raw, binary): for any bytes, a correct
result (every line either a valid row or a named reject, counts adding up) and never an unhandled exception,
never more memory than a small multiple of the input.

The manifest, checkpoint and predict-input readers are fuzzed in their own test modules.
"""

from __future__ import annotations

import json
import tracemalloc
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quickdraw.sources.binary import parse_binary_chunk, write_binary
from quickdraw.sources.ndjson import QUARANTINE_RAW_BYTES, REASONS, parse_chunk
from quickdraw.sources.raw import parse_raw_chunk

SAMPLE = 5
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

GOOD = {"word": "cat", "countrycode": "US", "timestamp": "2017-03-26 18:43:54.78083 UTC", "recognized": True,
        "key_id": "1234567890123456", "drawing": [[[0, 10, 255], [3, 40, 7]], [[5], [6]]]}
GOOD_RAW = {**GOOD, "drawing": [[[0.5, 10.25, 300.0], [3.0, 40.0, 7.0], [0, 17, 40]]]}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@st.composite
def mutated_lines(draw: Any, base: dict[str, Any], compact: bool = False) -> bytes:
    """Valid records with one field replaced, dropped or added, bytes cut or flipped, or plain garbage.

    ``compact`` writes them without spaces, the public files' byte shape: only such lines reach the compiled
    scanner's accepting paths (it refuses any other shape to the exact path)."""
    rec = json.loads(json.dumps(base))
    kind = draw(st.sampled_from(["replace", "drop", "add", "cut", "flip", "garbage", "deep", "good"]))
    if kind == "replace":
        rec[draw(st.sampled_from(sorted(rec)))] = draw(json_values)
    elif kind == "drop":
        rec.pop(draw(st.sampled_from(sorted(rec))))
    elif kind == "add":
        rec[draw(st.text(max_size=8))] = draw(json_values)
    # json, not orjson: big integers must be writable too
    line = json.dumps(rec, separators=(",", ":") if compact else None).encode()
    if kind == "cut":
        line = line[: draw(st.integers(0, len(line)))]
    elif kind == "flip":
        i = draw(st.integers(0, len(line) - 1))
        line = line[:i] + bytes([draw(st.integers(0, 255))]) + line[i + 1 :]
    elif kind == "garbage":
        line = draw(st.binary(max_size=200)).replace(b"\n", b" ")
    elif kind == "deep":
        depth = draw(st.integers(100, 5000))
        line = b'{"word": "cat", "drawing": ' + b"[" * depth + b"]" * depth + b"}"
    return line


def _check(res: Any, n_lines: int) -> None:
    counts = res.counts()
    assert set(counts) <= set(REASONS) | {"truncated_last_record"}
    assert res.table.num_rows + sum(counts.values()) == n_lines  # every non-blank line accounted for, once
    assert len(res.rejects) <= SAMPLE * len(counts)
    assert all(len(r.raw) <= QUARANTINE_RAW_BYTES for r in res.rejects)
    assert list(res.lines) == sorted(res.lines)


def _bounded(fn: Any, data: bytes) -> Any:
    """``fn()``, asserting its traced peak stays within a small multiple of the input. It is called once
    untraced first: the scanner's reused scratch buffers (a fixed size) are allocated on first use."""
    fn()
    tracemalloc.start()
    try:
        out = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * len(data) + (8 << 20), f"{peak:,} bytes traced for {len(data):,} bytes of input"
    return out


NDJSON_LINES = mutated_lines(GOOD) | mutated_lines(GOOD, compact=True)


@pytest.mark.parametrize("scanner", [True, False], ids=["scanner", "exact"])
@SETTINGS
@given(st.lists(NDJSON_LINES, min_size=1, max_size=30), st.booleans())
def test_ndjson_lines(scanner: bool, lines: list[bytes], final_newline: bool) -> None:
    data = b"\n".join(lines) + (b"\n" if final_newline else b"")
    res = _bounded(lambda: parse_chunk(data, 1, word="cat", at_eof=True, sample=SAMPLE, scanner=scanner), data)
    _check(res, sum(1 for x in data.removeprefix(b"\xef\xbb\xbf").split(b"\n") if x.strip()))
    for d in res.table.column("drawing").to_pylist():
        assert sum(d["stroke_len"]) == len(d["x"]) == len(d["y"]) > 0


@pytest.mark.parametrize("scanner", [True, False], ids=["scanner", "exact"])
@SETTINGS
@given(st.binary(max_size=3000))
def test_ndjson_any_bytes(scanner: bool, data: bytes) -> None:
    res = _bounded(lambda: parse_chunk(data, 1, word="cat", at_eof=True, sample=SAMPLE, scanner=scanner), data)
    assert res.table.num_rows + sum(res.counts().values()) == res.n_lines


@SETTINGS
@given(st.lists(NDJSON_LINES, min_size=1, max_size=30), st.booleans(), st.booleans())
def test_ndjson_scanner_and_exact_path_agree(lines: list[bytes], final_newline: bool, crlf: bool) -> None:
    """Small chunks skip the scanner (ndjson.SCANNER_MIN_LINES): the same input must give the same result,
    row for row and reject for reject, whichever path ran."""
    data = (b"\r\n" if crlf else b"\n").join(lines) + (b"\n" if final_newline else b"")
    fast = parse_chunk(data, 7, word="cat", at_eof=True, sample=SAMPLE, scanner=True)
    exact = parse_chunk(data, 7, word="cat", at_eof=True, sample=SAMPLE, scanner=False)
    assert fast.table.equals(exact.table)
    assert fast.lines.tolist() == exact.lines.tolist()
    assert [(r.line, r.reason, r.detail, r.raw) for r in fast.rejects] == \
        [(r.line, r.reason, r.detail, r.raw) for r in exact.rejects]
    assert fast.counts() == exact.counts() and fast.n_lines == exact.n_lines


@SETTINGS
@given(st.lists(mutated_lines(GOOD_RAW), min_size=1, max_size=20), st.booleans())
def test_raw_lines(lines: list[bytes], simplify: bool) -> None:
    data = b"\n".join(lines) + b"\n"
    res = _bounded(lambda: parse_raw_chunk(data, 1, word="cat", at_eof=True, simplify=simplify, sample=SAMPLE), data)
    _check(res, sum(1 for x in data.removeprefix(b"\xef\xbb\xbf").split(b"\n") if x.strip()))
    d = res.table.column("drawing").combine_chunks()
    for name in ("x", "y"):
        v = d.field(name).values.to_numpy(zero_copy_only=False).astype(np.float64)
        assert np.isfinite(v).all()
        if simplify:
            assert (v >= 0).all() and (v <= 255).all()


@SETTINGS
@given(st.binary(max_size=3000))
def test_binary_any_bytes(data: bytes) -> None:
    res, consumed = _bounded(lambda: parse_binary_chunk(data, 1, word="cat", at_eof=True, sample=SAMPLE), data)
    assert consumed == len(data)
    assert len(res.rejects) <= SAMPLE * max(1, len(res.counts()))


@SETTINGS
@given(st.integers(0, 400), st.integers(0, 255), st.integers(1, 3))
def test_binary_flipped_byte(pos: int, value: int, n: int) -> None:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "cat.bin"
        write_binary([GOOD] * n, p)
        data = bytearray(p.read_bytes())
    data[pos % len(data)] = value
    res, consumed = parse_binary_chunk(bytes(data), 1, word="cat", at_eof=True, sample=SAMPLE)
    assert consumed == len(data) and res.table.num_rows <= n
