"""Binary source: the published layout, our writer -> reader == the ndjson path (timestamps in seconds)."""

from __future__ import annotations

import struct
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from quickdraw.errors import BadRecordError
from quickdraw.pipeline.fetch import FetchOptions, fetch
from quickdraw.sources.binary import HEADER_BYTES, encode_record, parse_binary_chunk, write_binary
from quickdraw.sources.ndjson import parse_chunk
from quickdraw.sources.schema import DRAWING_SCHEMA, strokes_of
from quickdraw.sources.synthetic import synthetic_records, to_ndjson


def _floor_seconds(t: pa.Table) -> pa.Table:
    i = t.schema.get_field_index("timestamp")
    return t.set_column(i, "timestamp", pc.floor_temporal(t.column("timestamp"), unit="second"))


def _read_class(out: Path, word: str) -> pa.Table:
    parts = sorted((out / word).glob("part-*.parquet"))
    return pa.concat_tables(pq.read_table(p) for p in parts).replace_schema_metadata(None)


def test_encode_record_follows_the_published_layout() -> None:
    rec = {"key_id": "5152802093400064", "countrycode": "US", "recognized": True,
           "timestamp": "2017-03-26 18:43:54.78083 UTC", "drawing": [[[1, 2, 3], [4, 5, 6]], [[7], [8]]], "word": "cat"}
    b = encode_record(rec)
    key_id, cc, recog, ts, ns = struct.unpack_from("<Q2sBIH", b)
    assert (key_id, cc, recog, ns) == (5152802093400064, b"US", 1, 2)
    assert ts == 1490553834  # 2017-03-26 18:43:54 UTC, the fraction dropped
    assert b[HEADER_BYTES:] == struct.pack("<H", 3) + bytes([1, 2, 3, 4, 5, 6]) + struct.pack("<H", 1) + bytes([7, 8])
    with pytest.raises(ValueError):
        encode_record({**rec, "countrycode": "USA"})
    with pytest.raises(ValueError):
        encode_record({**rec, "drawing": [[[256], [0]]]})


def test_reader_equals_ndjson_parser_on_real_drawings(shared_data: Path) -> None:
    data = (shared_data / "full" / "simplified" / "monkey.ndjson").read_bytes()
    recs = [orjson.loads(line) for line in data.splitlines()]
    blob = b"".join(encode_record(r) for r in recs)
    res, used = parse_binary_chunk(blob, 1, word="monkey", at_eof=True)
    assert used == len(blob) and not res.rejects and res.n_lines == len(recs)
    assert res.table.schema == DRAWING_SCHEMA
    assert [strokes_of(d) for d in res.table.column("drawing").to_pylist()] == [r["drawing"] for r in recs]
    assert res.table.equals(_floor_seconds(parse_chunk(data, 1, word="monkey", at_eof=True).table))


def test_chunks_end_on_record_boundaries() -> None:
    recs = synthetic_records(50, seed=3)
    blob = b"".join(encode_record(r) for r in recs)
    whole, _ = parse_binary_chunk(blob, 1, word="cat", at_eof=True)
    # Any cut: the whole records before it are parsed, the rest is left for the next read.
    for cut in (0, 10, HEADER_BYTES + 1, len(blob) // 3, len(blob) - 1):
        res, used = parse_binary_chunk(blob[:cut], 1, word="cat")
        rest, used2 = parse_binary_chunk(blob[used:], 1 + res.n_lines, word="cat", at_eof=True)
        assert used + used2 == len(blob)
        assert pa.concat_tables([res.table, rest.table]).equals(whole.table)


def test_fetch_binary_equals_fetch_ndjson(tmp_path: Path) -> None:
    """Same drawings, ndjson and binary sources, small chunks and parts: the same Parquet rows."""
    recs = synthetic_records(300, word="cat", seed=7)
    (tmp_path / "nd").mkdir()
    (tmp_path / "nd" / "cat.ndjson").write_bytes(to_ndjson(recs))
    (tmp_path / "bin").mkdir()
    assert write_binary(recs, tmp_path / "bin" / "cat.bin") == 300
    small = {"part_rows": 64, "chunk_bytes": 2000}
    fetch("cat", tmp_path / "o_nd", FetchOptions(source=str(tmp_path / "nd"), **small))
    res = fetch("cat", tmp_path / "o_bin", FetchOptions(source=str(tmp_path / "bin"), format="binary", **small))
    c = res.classes[0]
    assert c.status == "fetched" and c.accepted == 300 and c.read == 300 and not c.rejected
    nd, bn = _read_class(tmp_path / "o_nd", "cat"), _read_class(tmp_path / "o_bin", "cat")
    assert bn.equals(_floor_seconds(nd))
    # with max-per-class and filters too
    opts = {"max_per_class": 40, "recognized_only": True, "countries": ("US", "DE")}
    fetch("cat", tmp_path / "c_nd", FetchOptions(source=str(tmp_path / "nd"), **opts))
    fetch("cat", tmp_path / "c_bin", FetchOptions(source=str(tmp_path / "bin"), format="binary", **opts))
    assert _read_class(tmp_path / "c_bin", "cat").equals(_floor_seconds(_read_class(tmp_path / "c_nd", "cat")))
    # a re-run is a no-op
    again = fetch("cat", tmp_path / "o_bin", FetchOptions(source=str(tmp_path / "bin"), format="binary", **small))
    assert again.classes[0].status == "unchanged"


def test_bad_and_truncated_records_are_quarantined(tmp_path: Path) -> None:
    recs = synthetic_records(5, seed=1)
    empty = encode_record({**recs[0], "drawing": []})
    blob = encode_record(recs[0]) + empty + b"".join(encode_record(r) for r in recs[1:]) + encode_record(recs[0])[:-3]
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "cat.bin").write_bytes(blob)
    res = fetch("cat", tmp_path / "out", FetchOptions(source=str(tmp_path / "src"), format="binary"))
    c = res.classes[0]
    assert c.accepted == 5 and c.rejected == {"empty_drawing": 1, "truncated_last_record": 1} and c.read == 7
    q = [orjson.loads(line) for line in (tmp_path / "out" / "cat" / "_quarantine.ndjson").read_bytes().splitlines()]
    assert [(r["line"], r["reason"]) for r in q] == [(2, "empty_drawing"), (7, "truncated_last_record")]
    with pytest.raises(BadRecordError, match="empty_drawing"):
        fetch("cat", tmp_path / "strict", FetchOptions(source=str(tmp_path / "src"), format="binary", strict=True))


def test_format_options_are_checked() -> None:
    assert FetchOptions(format="binary").source == "gs://quickdraw_dataset/full/binary"
    assert FetchOptions(format="raw").source == "gs://quickdraw_dataset/full/raw"
    assert "format" not in FetchOptions().identity()  # old ndjson manifests keep their identity
    with pytest.raises(ValueError):
        FetchOptions(format="png")
    with pytest.raises(ValueError):
        FetchOptions(simplify=True)
