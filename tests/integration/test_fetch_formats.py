"""fetch --format binary|raw through the GCS emulator (default bucket paths) and binary resume after a crash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import quickdraw.pipeline.fetch as fetch_mod
from quickdraw.cli.app import app
from quickdraw.pipeline.fetch import FetchOptions, fetch
from quickdraw.sources.binary import encode_record
from quickdraw.sources.synthetic import synthetic_records, to_ndjson


def _rows(out: Path, word: str) -> pa.Table:
    return pa.concat_tables(pq.read_table(p) for p in sorted((out / word).glob("part-*.parquet"))).replace_schema_metadata(None)


def _dir_bytes(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_formats_from_the_emulated_bucket(bucket_factory: Any, shared_data: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    recs = synthetic_records(200, word="cat", seed=5)
    raw = (shared_data / "full" / "raw" / "cat.ndjson").read_bytes()
    emu = bucket_factory({
        "full/simplified/cat.ndjson": to_ndjson(recs),
        "full/binary/cat.bin": b"".join(encode_record(r) for r in recs),
        "full/raw/cat.ndjson": raw,
    })
    monkeypatch.setenv("QUICKDRAW_GCS_ENDPOINT", emu.url)
    runner = CliRunner()
    for fmt, extra in (("ndjson", []), ("binary", []), ("raw", []), ("raw", ["--simplify"])):
        out = tmp_path / f"{fmt}{''.join(extra)}"
        r = runner.invoke(app, ["fetch", "--classes", "cat", "--format", fmt, *extra, "--out", str(out), "--json"])
        assert r.exit_code == 0, r.output
    nd, bn = _rows(tmp_path / "ndjson", "cat"), _rows(tmp_path / "binary", "cat")
    ts = pc.floor_temporal(nd.column("timestamp"), unit="second")
    assert bn.equals(nd.set_column(nd.schema.get_field_index("timestamp"), "timestamp", ts))
    assert _rows(tmp_path / "raw", "cat").num_rows == _rows(tmp_path / "raw--simplify", "cat").num_rows == raw.count(b"\n")
    bad = runner.invoke(app, ["fetch", "--classes", "cat", "--format", "png", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "png" in bad.output


def test_binary_resume_after_crash_is_byte_identical(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "cat.bin").write_bytes(b"".join(encode_record(r) for r in synthetic_records(1500, seed=2)))
    opts = FetchOptions(source=str(src), format="binary", part_rows=200, chunk_bytes=16 << 10)
    clean = tmp_path / "clean"
    fetch("cat", clean, opts)
    want = _dir_bytes(clean)
    assert len([k for k in want if k.startswith("cat/part-")]) >= 5
    real_write = fetch_mod._write_part
    calls = {"n": 0}

    def crashing(*a: Any, **k: Any) -> None:
        calls["n"] += 1
        if calls["n"] > 2:
            raise KeyboardInterrupt("simulated kill")
        real_write(*a, **k)

    out = tmp_path / "crash"
    monkeypatch.setattr(fetch_mod, "_write_part", crashing)
    with pytest.raises(KeyboardInterrupt):
        fetch("cat", out, opts)
    monkeypatch.setattr(fetch_mod, "_write_part", real_write)
    assert fetch("cat", out, opts).classes[0].status == "resumed"
    assert _dir_bytes(out) == want
