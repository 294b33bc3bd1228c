"""Differential fuzzing of the compiled raw path against the exact (orjson) path.

For any chunk of lines, ``parse_raw_chunk(..., scanner=True)`` must give exactly the rows, line numbers,
rejects and counts of ``scanner=False`` (raw variant and ``--simplify``): the scanner may refuse a line it
could have read, never accept one differently. Lines are drawn in the public byte shape (compact JSON, the key
order of the files), valid or with one change, so the scanner's accepting paths are exercised, not only its
refusals. The decimal converter is held to Python's ``float()`` on its own.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from quickdraw.sources.raw import parse_raw_chunk

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Numbers as the public files print them (float32 values as shortest doubles, integers) and nearby trouble:
# long mantissas, exact halves between doubles, negative zero, leading zeros, exponents, huge values.
good_number = st.one_of(
    st.floats(-3000, 3000, width=32).map(lambda v: repr(float(v))),
    st.integers(-5000, 5000).map(str),
    st.floats(-1e6, 1e6).map(repr),
    st.builds(lambda i, f: f"{i}.{f}", st.integers(0, 10**6 - 1), st.text("0123456789", min_size=1, max_size=22)),
)
# Valid JSON numbers the exact path accepts (or calls out_of_range) that the scanner must treat with care.
odd_valid = st.sampled_from(["-0", "-0.0", "0.0", "0", "1000000.0", "1000000.0000000001", "1000000.5", "-1500000.25", "999999.99999999999999",
                             "-999999.9999999999", "0.000000000000000000000000001", "9007199254740993.0",
                             "12345678901234567890", "1e3", "1E-2", "-1e400", "123456789012345.6789"])
invalid_number = st.sampled_from(["00", "01.5", "1.", ".5", "+1", "1_0", "0x10", "NaN", "Infinity", "true", '"1"',
                                  "[1]", "", "--1", "1..2"])
# Mostly numbers the exact path accepts, so whole lines are valid often and reach the scanner's accepting paths.
number_text = st.one_of(good_number, good_number, good_number, good_number, good_number, good_number, odd_valid,
                        odd_valid, invalid_number)
time_text = st.one_of(st.integers(-10, 100_000).map(str), st.integers(-10, 100_000).map(str),
                      st.integers(-10, 100_000).map(str),
                      st.sampled_from(["-0", "1.0", "2147483648", "-2147483649", "2147483647", "-2147483648", "01",
                                       "1e2", "null"]))


def _maybe(draw: Any, good: str, bad: list[str]) -> str:
    return draw(st.sampled_from(bad)) if draw(st.integers(0, 9)) == 0 else good


@st.composite
def raw_line(draw: Any) -> bytes:
    n_strokes = draw(st.integers(1, 3))
    strokes = []
    for _ in range(n_strokes):
        n = draw(st.integers(0, 4)) if draw(st.integers(0, 20)) == 0 else draw(st.integers(1, 4))
        xs = [draw(number_text) for _ in range(n)]
        ys = [draw(number_text) for _ in range(n + (draw(st.integers(0, 30)) == 0))]
        ts = [draw(time_text) for _ in range(n)]
        strokes.append(f"[[{','.join(xs)}],[{','.join(ys)}],[{','.join(ts)}]]")
    word = _maybe(draw, "cat", ["dog", "ca\\u0074", "", "cat "])
    cc = _maybe(draw, draw(st.sampled_from(["US", "BR", "VE"])), ["", "Z\\u00e9", '\\"', "U\tS"])
    ts_ = _maybe(draw, "2017-03-26 18:43:54.78083 UTC", ["2017-02-30 10:00:00 UTC", "2017-03-26 18:43:54 UTC",
                                                         "2017-03-26T18:43:54 UTC", "2017-03-26 18:43:54.1234567 UTC"])
    rec = _maybe(draw, draw(st.sampled_from(["true", "false"])), ["1", "null", "True"])
    key = _maybe(draw, "1234567890123456", ["18446744073709551615", "18446744073709551616", "", "12a", "007"])
    line = (f'{{"word":"{word}","countrycode":"{cc}","timestamp":"{ts_}","recognized":{rec},"key_id":"{key}",'
            f'"drawing":[{",".join(strokes)}]}}').encode()
    if draw(st.integers(0, 30)) == 0:  # a flipped byte somewhere
        i = draw(st.integers(0, len(line) - 1))
        line = line[:i] + bytes([draw(st.integers(0, 255))]) + line[i + 1:]
    return line.replace(b"\n", b" ")


def _same(a: Any, b: Any) -> None:
    assert a.table.schema == b.table.schema
    # Compare bit patterns too: -0.0 == 0.0 in Arrow's equality, not in the data.
    assert a.table.equals(b.table)
    for name in ("x", "y"):
        if "t" in a.table.schema.field("drawing").type.names:
            xa = a.table.column("drawing").combine_chunks().field(name).values.to_numpy()
            xb = b.table.column("drawing").combine_chunks().field(name).values.to_numpy()
            assert np.array_equal(xa.view(np.uint32), xb.view(np.uint32))
    assert a.lines.tolist() == b.lines.tolist()
    assert [(r.line, r.reason, r.raw) for r in a.rejects] == [(r.line, r.reason, r.raw) for r in b.rejects]
    assert a.counts() == b.counts() and a.n_lines == b.n_lines


@SETTINGS
@given(st.lists(raw_line(), min_size=1, max_size=8), st.booleans(), st.booleans())
@example([b'{"word":"cat","countrycode":"US","timestamp":"2017-03-26 18:43:54.78083 UTC","recognized":true,'
          b'"key_id":"1","drawing":[[[-0.0,1.5],[2,3],[0,1]]]}'], True, False)
@example([b'{"word":"cat","countrycode":"US","timestamp":"2017-03-26 18:43:54.78083 UTC","recognized":true,'
          b'"key_id":"1","drawing":[[[-0,1.5],[2,-0],[0,1]]]}'], False, True)
def test_scanner_matches_exact_path(lines: list[bytes], simplify: bool, trailing_newline: bool) -> None:
    data = b"\n".join(lines) + (b"\n" if trailing_newline else b"")
    fast = parse_raw_chunk(data, 7, word="cat", at_eof=True, simplify=simplify, scanner=True)
    exact = parse_raw_chunk(data, 7, word="cat", at_eof=True, simplify=simplify, scanner=False)
    _same(fast, exact)


def _valid_raw_line(rng: Any, key: int) -> bytes:
    """A line in the public raw layout that the scanner accepts: float32 and float64 shortest reprs, integers."""
    # (Other decimal spellings, e.g. trailing zeros, are valid JSON that the scanner leaves to the exact path.)
    def num() -> str:
        kind = rng.randrange(3)
        if kind == 0:
            return repr(float(np.float32(rng.uniform(-3000, 3000))))
        if kind == 1:
            return str(rng.randrange(-5000, 5000))
        return repr(rng.uniform(-1e5, 1e5))

    strokes = []
    for _ in range(rng.randrange(1, 4)):
        n = rng.randrange(1, 6)
        xs, ys = [num() for _ in range(n)], [num() for _ in range(n)]
        ts = [str(rng.randrange(0, 100_000)) for _ in range(n)]
        strokes.append(f"[[{','.join(xs)}],[{','.join(ys)}],[{','.join(ts)}]]")
    return (f'{{"word":"cat","countrycode":"US","timestamp":"2017-03-26 18:43:54.78083 UTC","recognized":true,'
            f'"key_id":"{1234567890123456 + key}","drawing":[{",".join(strokes)}]}}').encode()


@pytest.mark.parametrize("simplify", [False, True])
def test_fuzz_reached_the_accepting_paths(simplify: bool) -> None:
    """The hypothesis test above mixes valid and invalid lines, and how many of its chunks have rows moves with
    what ran before it in the process (19 to 69 of 202 measured): so the scanner's accepting paths get a
    deterministic differential test of their own, 300 seeded valid lines that it must accept, all of them."""
    import random

    rng = random.Random(20261202)
    data = b"\n".join(_valid_raw_line(rng, i) for i in range(300)) + b"\n"
    fast = parse_raw_chunk(data, 1, word="cat", at_eof=True, simplify=simplify, scanner=True)
    exact = parse_raw_chunk(data, 1, word="cat", at_eof=True, simplify=simplify, scanner=False)
    assert fast.table.num_rows == 300 and not fast.rejects
    _same(fast, exact)
    from quickdraw.sources.ndjson import _line_starts
    from quickdraw.sources.raw import _fast_raw

    buf = np.frombuffer(data, np.uint8)
    starts, ends = _line_starts(buf)
    _, refused = _fast_raw(buf, starts, ends, "cat", simplify)
    assert not refused.any(), int(refused.sum())  # the scanner itself took every line, not the exact path


def test_scanner_reads_the_public_layout(shared_data: Any) -> None:
    """On the real files the scanner refuses nothing (else the speed would be the exact path's)."""
    from quickdraw.sources._raw_kernel import scan_raw_lines  # noqa: F401  (loaded: the scanner path)
    from quickdraw.sources.ndjson import _line_starts
    from quickdraw.sources.raw import _fast_raw

    files = sorted((shared_data / "full" / "raw").glob("*.ndjson"))[:40]
    if not files:
        pytest.skip("no shared raw files")
    for f in files:
        data = f.read_bytes()
        buf = np.frombuffer(data, np.uint8)
        starts, ends = _line_starts(buf)
        _, refused = _fast_raw(buf, starts, ends, f.stem, False)
        assert not refused.any(), f
        _same(parse_raw_chunk(data, 1, word=f.stem, at_eof=True, scanner=True),
              parse_raw_chunk(data, 1, word=f.stem, at_eof=True, scanner=False))


@settings(max_examples=3000, deadline=None)
@given(number_text)
def test_decimal_conversion_is_exact(text: str) -> None:
    from quickdraw.sources._raw_kernel import _coord

    buf = np.frombuffer(text.encode() + b"]", np.uint8)
    pos, v = _coord(buf, 0, len(buf))
    if pos < 0 or pos != len(text):
        return  # refused, or stopped before a character the list parser then refuses: the exact path decides
    ref = float(text)
    assert v == ref and math.copysign(1, v) == math.copysign(1, ref), (text, v, ref)
    assert json.loads(text) == ref  # it was a JSON number
