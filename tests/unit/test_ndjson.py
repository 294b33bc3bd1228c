"""The record parser: the compiled fast path and the exact path must agree, and bad lines are classified."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quickdraw.errors import BadRecordError
from quickdraw.sources.ndjson import REASONS, check_record, parse_chunk
from quickdraw.sources.schema import DRAWING_SCHEMA, table_from_records


def rec(key: int = 5, word: str = "cat", drawing: Any = None, **kw: Any) -> dict[str, Any]:
    r = {
        "word": word,
        "countrycode": "US",
        "timestamp": "2017-03-26 18:43:54.78083 UTC",
        "recognized": True,
        "key_id": str(key),
        "drawing": drawing if drawing is not None else [[[0, 10, 255], [5, 0, 7]], [[3], [4]]],
    }
    r.update(kw)
    return r


def line(r: Any) -> bytes:
    # The public files' exact byte shape: no spaces.
    return json.dumps(r, separators=(",", ":")).encode()


def test_fast_path_matches_reference_builder() -> None:
    recs = [rec(i, recognized=bool(i % 2), countrycode=["US", "GB", ""][i % 3]) for i in range(1, 50)]
    data = b"\n".join(line(r) for r in recs) + b"\n"
    res = parse_chunk(data, 1, word="cat", at_eof=True, scanner=True)
    assert res.rejects == []
    assert res.table.equals(table_from_records(recs))
    assert res.table.schema == DRAWING_SCHEMA
    assert res.lines.tolist() == list(range(1, 50))


BAD_LINES: list[tuple[bytes, str]] = [
    (b"{not json", "bad_json"),
    (b"[1, 2]", "not_an_object"),
    (line({k: v for k, v in rec().items() if k != "key_id"}), "missing_key"),
    (line(rec(recognized="yes")), "bad_type"),
    (line(rec(countrycode=7)), "bad_type"),
    (line(rec(key="12ab")), "bad_key_id"),
    (line(rec(key=2**64)), "bad_key_id"),
    (line(rec(timestamp="2017-02-30 10:00:00.1 UTC")), "bad_timestamp"),
    (line(rec(drawing=[])), "empty_drawing"),
    (line(rec(drawing=[[[], []]])), "empty_stroke"),
    (line(rec(drawing=[[[1, 2]]])), "bad_stroke"),
    (line(rec(drawing=[[[1, 2], [3]]])), "xy_length_mismatch"),
    (line(rec(drawing=[[[1, 256], [3, 4]]])), "out_of_range"),
    (line(rec(drawing=[[[-1, 2], [3, 4]]])), "out_of_range"),
    (line(rec(drawing=[[[1.5, 2], [3, 4]]])), "bad_type"),
    (line(rec(word="dog")), "word_mismatch"),
    (line(rec(drawing=[[[7] * 65536, [9] * 65536]])), "too_large"),  # stroke_len is uint16
    (b"\xff\xfe{\"word\": 1}", "not_utf8"),
]


@pytest.mark.parametrize("scanner", [True, False], ids=["scanner", "exact"])
@pytest.mark.parametrize("raw,reason", BAD_LINES, ids=[r for _, r in BAD_LINES])
def test_bad_lines_are_quarantined_and_neighbours_kept(raw: bytes, reason: str, scanner: bool) -> None:
    assert reason in REASONS
    good1, good2 = rec(1), rec(2)
    data = line(good1) + b"\n" + raw + b"\n" + line(good2) + b"\n"
    res = parse_chunk(data, 10, word="cat", at_eof=True, scanner=scanner)
    assert [(r.line, r.reason) for r in res.rejects] == [(11, reason)]
    assert res.table.column("key_id").to_pylist() == [1, 2]
    assert res.lines.tolist() == [10, 12]
    assert res.rejects[0].raw == raw


def test_truncated_last_line_blank_lines_crlf_bom_extra_keys() -> None:
    r1, r2, r3 = rec(1), rec(2), rec(3, extra={"a": [1]})
    data = b"\xef\xbb\xbf" + line(r1) + b"\r\n\n" + line(r2) + b"\r\n" + line(r3) + b"\n" + line(rec(4))[:-9]
    res = parse_chunk(data, 1, word="cat", at_eof=True)
    assert res.table.column("key_id").to_pylist() == [1, 2, 3]
    assert res.lines.tolist() == [1, 3, 4]
    assert [(r.line, r.reason) for r in res.rejects] == [(5, "truncated_last_line")]
    assert res.n_lines == 4


def test_strict_names_line_and_reason() -> None:
    data = line(rec(1)) + b"\n" + line(rec(drawing=[])) + b"\n"

    def strict(ln: int, reason: str, detail: str) -> None:
        raise BadRecordError("gs://b/cat.ndjson", ln, reason, detail)

    with pytest.raises(BadRecordError, match=r"gs://b/cat.ndjson:2: bad record \(empty_drawing\)"):
        parse_chunk(data, 1, word="cat", strict_error=strict)


coord = st.integers(0, 255)
stroke = st.integers(1, 6).flatmap(lambda n: st.tuples(st.lists(coord, min_size=n, max_size=n), st.lists(coord, min_size=n, max_size=n)))
good_record = st.builds(
    lambda k, d, r, cc: rec(k, drawing=[list(s) for s in d], recognized=r, countrycode=cc),
    st.integers(0, 2**64 - 1), st.lists(stroke, min_size=1, max_size=5), st.booleans(), st.sampled_from(["US", "", "GB", "BR"]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(good_record, min_size=1, max_size=8))
def test_property_fast_equals_reference(recs: list[dict[str, Any]]) -> None:
    data = b"\n".join(line(r) for r in recs) + b"\n"
    res = parse_chunk(data, 1, word="cat", at_eof=True, scanner=True)
    assert res.rejects == []
    assert res.table.equals(table_from_records(recs))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(good_record, st.data())
def test_fuzz_mutations_never_crash_nor_accept_invalid(r: dict[str, Any], data: st.DataObject) -> None:
    raw = bytearray(line(r))
    for _ in range(data.draw(st.integers(1, 3))):
        op = data.draw(st.sampled_from(["flip", "delete", "insert"]))
        i = data.draw(st.integers(0, len(raw) - 1))
        if op == "flip":
            raw[i] = data.draw(st.sampled_from(b'0123456789[],:"{}-.ae \\x'))
        elif op == "delete":
            del raw[i]
        else:
            raw.insert(i, data.draw(st.sampled_from(b'0123456789[],:"{}-.e ')))
    blob = bytes(raw)
    res = parse_chunk(blob + b"\n", 1, word="cat", at_eof=True)
    assert res.table.num_rows + len(res.rejects) == (1 if blob.strip() else 0)
    try:
        obj = orjson.loads(blob)
        verdict = check_record(obj, "cat")
    except orjson.JSONDecodeError:
        verdict = ("bad_json", "")
    if res.table.num_rows:
        # Accepted only if the reference definition accepts it, and converted exactly as the reference does.
        assert verdict is None
        assert res.table.equals(table_from_records([obj]))
    elif blob.strip():
        assert verdict is not None


def test_small_chunks_skip_the_scanner_until_it_is_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default path choice: the exact path below SCANNER_MIN_LINES lines (numba costs ~0.5 CPU-s to load,
    more than the exact path needs for that many), the scanner at or above it, or once it is loaded anyway."""
    import sys

    from quickdraw.sources import ndjson

    monkeypatch.delitem(sys.modules, "quickdraw.sources._kernel", raising=False)
    assert not ndjson._use_scanner(ndjson.SCANNER_MIN_LINES - 1)
    assert ndjson._use_scanner(ndjson.SCANNER_MIN_LINES)
    monkeypatch.setitem(sys.modules, "quickdraw.sources._kernel", object())
    assert ndjson._use_scanner(1)
