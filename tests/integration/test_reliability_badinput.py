"""The bad-input catalogue, run through the real fetch against the GCS emulator.

One class file interleaves a good record before and after every kind of malformed record; fetch must count
each by reason, quarantine it with its line number and raw bytes, and keep every good record, in order.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from quickdraw.cli.app import app
from quickdraw.pipeline.fetch import FetchOptions, fetch
from quickdraw.sources.ndjson import REASONS

runner = CliRunner()
SRC = "gs://quickdraw_dataset/full/simplified"


def rec(key: int, **kw: Any) -> dict[str, Any]:
    r = {"word": "cat", "countrycode": "US", "timestamp": "2017-03-26 18:43:54.78083 UTC", "recognized": True,
         "key_id": str(key), "drawing": [[[0, 10, 255], [5, 0, 7]], [[3], [4]]]}
    r.update(kw)
    return r


def line(r: Any) -> bytes:
    return json.dumps(r, separators=(",", ":")).encode()


def without(key: str) -> dict[str, Any]:
    r = rec(0)
    del r[key]
    return r


# (name, raw line, reason or None if the line must be accepted / ignored)
CATALOGUE: list[tuple[str, bytes, str | None]] = [
    ("bad_json", b'{"word":"cat","countrycode":', "bad_json"),
    ("not_json_at_all", b"hello world", "bad_json"),
    ("json_array", b"[1,2,3]", "not_an_object"),
    ("json_null", b"null", "not_an_object"),
    ("missing_drawing", line(without("drawing")), "missing_key"),
    ("missing_key_id", line(without("key_id")), "missing_key"),
    ("null_word", line(rec(0, word=None)), "missing_key"),
    ("recognized_string", line(rec(0, recognized="true")), "bad_type"),
    ("key_id_number", line(rec(0) | {"key_id": 123}), "bad_type"),
    ("drawing_string", line(rec(0, drawing="[[1],[2]]")), "bad_type"),
    ("key_id_letters", line(rec(0) | {"key_id": "12ab"}), "bad_key_id"),
    ("key_id_overflow", line(rec(0) | {"key_id": str(2**64)}), "bad_key_id"),
    ("bad_timestamp", line(rec(0, timestamp="2017-13-45 99:00:00 UTC")), "bad_timestamp"),
    ("empty_drawing", line(rec(0, drawing=[])), "empty_drawing"),
    ("empty_stroke", line(rec(0, drawing=[[[], []]])), "empty_stroke"),
    ("stroke_one_list", line(rec(0, drawing=[[[1, 2]]])), "bad_stroke"),
    ("xy_mismatch", line(rec(0, drawing=[[[1, 2, 3], [4, 5]]])), "xy_length_mismatch"),
    ("coord_256", line(rec(0, drawing=[[[1, 256], [3, 4]]])), "out_of_range"),
    ("coord_negative", line(rec(0, drawing=[[[1, 2], [-3, 4]]])), "out_of_range"),
    ("coord_float", line(rec(0, drawing=[[[1.5, 2], [3, 4]]])), "bad_type"),
    ("coord_bool", line(rec(0, drawing=[[[True, 2], [3, 4]]])), "bad_type"),
    ("other_word", line(rec(0, word="dog")), "word_mismatch"),
    ("huge_drawing", line(rec(0, drawing=[[[1], [1]]] * 70_000)), "too_large"),
    ("not_utf8", b'{"word":"cat\xff\xfe","countrycode":"US"}', "not_utf8"),
    ("latin1_country", line(rec(0)).replace(b'"US"', b'"\xe9S"'), "not_utf8"),
    ("gzip_line", gzip.compress(line(rec(0)), mtime=0).replace(b"\n", b""), "not_utf8"),
    # accepted or ignored, never lost:
    ("blank_line", b"", None),
    ("whitespace_line", b"   \t ", None),
    ("crlf", line(rec(0)) + b"\r", "good"),
    ("extra_keys", line(rec(0, extra={"nested": [1, {"a": None}]}, another=1)), "good"),
    ("reordered_keys", json.dumps(dict(reversed(list(rec(0).items())))).encode(), "good"),
    ("spaces", json.dumps(rec(0)).encode(), "good"),
    ("unicode_escape_country", line(rec(0)).replace(b'"US"', b'"\\u0055S"'), "good"),
    ("leading_zero_coord", line(rec(0)).replace(b"[0,10,255]", b"[00,10,255]"), "bad_json"),
]


def build_file() -> tuple[bytes, list[int], list[tuple[int, str, str]]]:
    """The file, the good key_ids in order, and the expected quarantine (line, reason, name)."""
    lines: list[bytes] = []
    good: list[int] = []
    bad: list[tuple[int, str, str]] = []
    key = 1000
    for name, raw, reason in CATALOGUE:
        key += 1
        lines.append(line(rec(key)))
        good.append(key)
        if reason == "good":
            key += 1
            raw = raw.replace(b'"key_id":"0"', f'"key_id":"{key}"'.encode()).replace(b'"key_id": "0"', f'"key_id": "{key}"'.encode())
            good.append(key)
        elif reason is not None:
            bad.append((len(lines) + 1, reason, name))
        lines.append(raw)
    key += 1
    lines.append(line(rec(key)))
    good.append(key)
    body = b"\xef\xbb\xbf" + b"\n".join(lines) + b"\n"
    # ... and a truncated last line (no newline at the end of the file)
    body += line(rec(key + 1))[:-12]
    bad.append((len(lines) + 1, "truncated_last_line", "truncated_last_line"))
    return body, good, bad


@pytest.fixture()
def bucket(bucket_factory: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[list[int], list[tuple[int, str, str]]]:
    body, good, bad = build_file()
    emu = bucket_factory({
        "full/simplified/cat.ndjson": body,
        "full/simplified/dog.ndjson": gzip.compress(b"\n".join(line(rec(i, word="dog")) for i in range(5)), mtime=0),
        "full/simplified/apple.ndjson": b"",
    })
    monkeypatch.setenv("QUICKDRAW_GCS_ENDPOINT", emu.url)
    return good, bad


@pytest.mark.parametrize("chunk", [4 << 20, 1024], ids=["one-chunk", "1KB-chunks"])
def test_catalogue_counts_quarantines_and_keeps_every_good_record(bucket: Any, tmp_path: Path, chunk: int) -> None:
    good, bad = bucket
    assert len({r for _, r, _ in bad}) >= 15
    res = fetch("cat", tmp_path / "out", FetchOptions(source=SRC, chunk_bytes=chunk)).classes[0]
    assert res.status == "fetched", res.error
    want: dict[str, int] = {}
    for _, reason, _ in bad:
        want[reason] = want.get(reason, 0) + 1
    assert res.rejected == want
    assert set(res.rejected) <= set(REASONS)
    assert res.accepted == len(good)
    assert pq.read_table(tmp_path / "out" / "cat").column("key_id").to_pylist() == good
    q = [json.loads(x) for x in (tmp_path / "out" / "cat" / "_quarantine.ndjson").read_text().splitlines()]
    assert [(x["line"], x["reason"]) for x in q] == [(ln, r) for ln, r, _ in bad]
    assert all(x["source"] == f"{SRC}/cat.ndjson" and x["raw"] for x in q)
    man = json.loads((tmp_path / "out" / "cat" / "_manifest.json").read_text())
    assert man["counts"]["rejected"] == want and man["quarantine"]["records"] == len(bad)


def test_gzip_file_fails_its_class_only(bucket: Any, tmp_path: Path) -> None:
    res = runner.invoke(app, ["fetch", "--classes", "cat,dog,apple", "--out", str(tmp_path / "out"), "--source", SRC, "--json"])
    assert res.exit_code == 1
    by = {c["word"]: c for c in json.loads(res.stdout)["classes"]}
    assert by["dog"]["status"] == "failed" and "gzip" in by["dog"]["error"] and "dog.ndjson" in by["dog"]["error"]
    assert by["cat"]["status"] == "fetched" and by["apple"]["status"] == "fetched" and by["apple"]["accepted"] == 0
    assert not (tmp_path / "out" / "dog" / "_manifest.json").exists()
    assert pq.read_table(tmp_path / "out" / "apple").num_rows == 0


def test_strict_stops_at_first_bad_line(bucket: Any, tmp_path: Path) -> None:
    good, bad = bucket
    res = runner.invoke(app, ["fetch", "--classes", "cat", "--out", str(tmp_path / "out"), "--source", SRC, "--strict"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert f"cat.ndjson:{bad[0][0]}: bad record ({bad[0][1]})" in " ".join(res.output.split()).replace(".ndjson: ", ".ndjson:")
