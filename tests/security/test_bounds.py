"""Bounded resources on mostly-bad input: exact counts, a bounded quarantine sample, same result on resume.

Before: 8 MB of one-byte bad lines gave a 711 MB quarantine (x89) and 2.9 GB RSS, since every reject was
held in memory and written whole. Peak RSS is measured by benchmarks/bench_hostile.py, not here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import quickdraw.pipeline.fetch as fetch_mod
from quickdraw.pipeline.fetch import FetchOptions, fetch
from quickdraw.sources.ndjson import QUARANTINE_RAW_BYTES, QUARANTINE_SAMPLE
from tests.integration.test_fetch import crash_at_part, synthetic_ndjson


def dir_bytes(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def killed_at_part(index: int, out: Path, opts: FetchOptions, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fetch ``cat`` into ``out`` and kill the run as it writes part ``index`` (a deterministic stand-in)."""
    real = fetch_mod._write_part
    monkeypatch.setattr(fetch_mod, "_write_part", crash_at_part(index, real))
    with pytest.raises(KeyboardInterrupt):
        fetch("cat", out, opts)
    monkeypatch.setattr(fetch_mod, "_write_part", real)


def hostile(n_good: int, bad_per_good: int) -> tuple[bytes, int]:
    """Good drawings with runs of one-byte bad lines between them (and a few long bad ones)."""
    good = synthetic_ndjson(n_good).splitlines(keepends=True)
    out: list[bytes] = []
    bad = 0
    for i, g in enumerate(good):
        out.append(g)
        out.append(b"x\n" * bad_per_good)
        bad += bad_per_good
        if i % 50 == 0:
            out.append(b'{"word": "cat", "countrycode": "US", "timestamp": "2017-03-26 18:43:54.78083 UTC", '
                       b'"recognized": true, "key_id": "' + b"9" * 20_000 + b'", "drawing": [[[1], [2]]]}\n')
            bad += 1
    return b"".join(out), bad


def test_quarantine_is_a_bounded_sample_with_exact_counts(tmp_path: Path) -> None:
    data, n_bad = hostile(400, 2_000)  # 800,000 bad lines, ~1.6 MB of them
    src = tmp_path / "src"
    src.mkdir()
    (src / "cat.ndjson").write_bytes(data)
    res = fetch("cat", tmp_path / "out", FetchOptions(source=str(src), chunk_bytes=256 << 10)).classes[0]
    assert res.status == "fetched" and res.accepted == 400
    assert sum(res.rejected.values()) == n_bad  # counts stay exact
    man = json.loads((tmp_path / "out" / "cat" / "_manifest.json").read_text())
    assert man["quarantine"]["records"] == n_bad
    q = [json.loads(x) for x in (tmp_path / "out" / "cat" / "_quarantine.ndjson").read_text().splitlines()]
    per_reason: dict[str, int] = {}
    for r in q:
        per_reason[r["reason"]] = per_reason.get(r["reason"], 0) + 1
        assert len(r["raw"]) <= QUARANTINE_RAW_BYTES
        if "raw_bytes" in r:
            assert r["raw_bytes"] > QUARANTINE_RAW_BYTES
    assert per_reason == {k: min(v, QUARANTINE_SAMPLE) for k, v in res.rejected.items()}
    assert any("raw_bytes" in r for r in q)  # the 20 KB lines were cut, and say how long they were
    lines = [r["line"] for r in q if r["reason"] == "bad_json"]
    assert lines == sorted(lines) and lines[0] == 2  # the first ones, in file order
    assert (tmp_path / "out" / "cat" / "_quarantine.ndjson").stat().st_size < 2 << 20
    assert pq.read_table(tmp_path / "out" / "cat").num_rows == 400


def test_sampled_quarantine_resumes_byte_identical(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data, _ = hostile(3000, 3)  # bad_json passes its sample size within the first parts
    src = tmp_path / "src"
    src.mkdir()
    (src / "cat.ndjson").write_bytes(data)
    opts = FetchOptions(source=str(src), part_rows=400, chunk_bytes=32 << 10)
    fetch("cat", tmp_path / "clean", opts)
    want = dir_bytes(tmp_path / "clean")
    killed_at_part(3, tmp_path / "out", opts, monkeypatch)
    assert fetch("cat", tmp_path / "out", opts).classes[0].status == "resumed"
    assert dir_bytes(tmp_path / "out") == want


@pytest.mark.parametrize("cap", [None, 2000], ids=["aligned-read-ahead", "capped-reads"])
def test_overlong_lines_are_skipped_while_streaming(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    cap: int | None) -> None:
    """A line longer than the limit is quarantined as too_large without being buffered, and the run goes on
    (before: a 500 MB line without a newline was read whole, 86 s and 2.2 GB, before the limit was checked)."""
    monkeypatch.setattr(fetch_mod, "MAX_LINE_BYTES", 256 << 10)  # the real limit is 4 MiB; same code path
    good = synthetic_ndjson(3000).splitlines(keepends=True)
    long_line = b'{"word": "cat", "drawing": [' + b"1," * (1 << 20)  # 2 MiB, no newline until the end
    data = b"".join(good[:1000]) + long_line + b"\n" + b"".join(good[1000:]) + long_line  # the last one at EOF
    src = tmp_path / "src"
    src.mkdir()
    (src / "cat.ndjson").write_bytes(data)
    opts = FetchOptions(source=str(src), chunk_bytes=64 << 10, part_rows=400, max_per_class=cap)
    res = fetch("cat", tmp_path / "clean", opts).classes[0]
    assert res.status == "fetched", res.error
    if cap is None:
        assert res.accepted == 3000 and res.rejected == {"too_large": 2} and res.read == 3002
    else:
        assert res.accepted == cap and res.rejected == {"too_large": 1}
    q = [json.loads(x) for x in (tmp_path / "clean" / "cat" / "_quarantine.ndjson").read_text().splitlines()]
    assert q[0]["line"] == 1001 and q[0]["reason"] == "too_large"
    assert q[0]["raw_bytes"] == len(long_line) + 1 and len(q[0]["raw"]) <= QUARANTINE_RAW_BYTES
    keys = pq.read_table(tmp_path / "clean" / "cat").column("key_id").to_pylist()
    want_keys = [json.loads(g)["key_id"] for g in good][: cap or 3000]
    assert keys == [int(k) for k in want_keys]  # every good neighbour kept, in order
    # a kill after the long line resumes to the same bytes
    want = dir_bytes(tmp_path / "clean")
    killed_at_part(3, tmp_path / "out", opts, monkeypatch)
    fetch("cat", tmp_path / "out", opts)
    assert dir_bytes(tmp_path / "out") == want
