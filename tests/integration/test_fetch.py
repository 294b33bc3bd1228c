"""fetch through gcsfs against a real GCS emulator, checked against independent counts of the input."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from quickdraw.cli.app import app
from quickdraw.pipeline import fetch as fetch_mod
from quickdraw.pipeline.fetch import FetchOptions, fetch
from quickdraw.sources.schema import table_from_records
from tests.conftest import copy_class_files

runner = CliRunner()
WORDS = ["cat", "The Eiffel Tower", "monkey"]


def records(shared: Path, word: str) -> list[dict[str, Any]]:
    with open(shared / "full" / "simplified" / f"{word}.ndjson", "rb") as f:
        return [orjson.loads(line) for line in f if line.strip()]


def read_class(out: Path, word: str) -> Any:
    """All parts of a fetched class, in the manifest's (source) order."""
    man = json.loads((out / word / "_manifest.json").read_text())
    return pa.concat_tables([pq.read_table(out / word / p["file"]) for p in man["parts"]])


def dir_bytes(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def crash_at_part(index: int, real_write: Any) -> Any:
    """A stand-in for ``fetch._write_part`` that raises, as a kill would, when asked to write part ``index``.

    Keyed on the part's name, not on how many writes came before: parts are written by two threads, so the
    n-th call is not always the n-th part, and a count made the crash point (and so what the last checkpoint
    holds) differ from run to run. Every other part is written for real, including a later part that the
    other thread may be writing at that moment (the resume must drop it).
    """
    name = f"part-{index:05d}.parquet"

    def crashing(path: Path, *a: Any, **k: Any) -> None:
        if Path(path).name == name:
            raise KeyboardInterrupt(f"simulated kill while writing {name}")
        real_write(path, *a, **k)

    return crashing


def test_fetch_cli_matches_input(gcs_source: str, shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "raw"
    res = runner.invoke(app, ["fetch", "--classes", ",".join(WORDS), "--out", str(out), "--source", gcs_source, "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    by_word = {c["word"]: c for c in doc["classes"]}
    for w in WORDS:
        recs = records(shared_data, w)
        assert by_word[w]["accepted"] == len(recs) and by_word[w]["status"] == "fetched"
        got = pq.read_table(out / w / "part-00000.parquet")
        assert got.drop_columns([]).equals(table_from_records(recs).replace_schema_metadata(got.schema.metadata))
        man = json.loads((out / w / "_manifest.json").read_text())
        assert man["counts"]["read"] == len(recs)
        assert man["identity"]["source"]["size"] == (shared_data / "full" / "simplified" / f"{w}.ndjson").stat().st_size
        assert man["identity"]["source"]["etag"]


def test_filters_and_max_per_class(gcs_source: str, shared_data: Path, tmp_path: Path) -> None:
    recs = records(shared_data, "monkey")
    # recognized only
    r = fetch("monkey", tmp_path / "a", FetchOptions(source=gcs_source, recognized_only=True)).classes[0]
    want = [x for x in recs if x["recognized"]]
    assert r.accepted == len(want) and r.filtered["recognized"] == len(recs) - len(want)
    assert pq.read_table(tmp_path / "a" / "monkey").column("key_id").to_pylist() == [int(x["key_id"]) for x in want]
    # countries
    r = fetch("monkey", tmp_path / "b", FetchOptions(source=gcs_source, countries=("US", "GB"))).classes[0]
    want = [x for x in recs if x["countrycode"] in ("US", "GB")]
    assert 0 < r.accepted == len(want) and r.filtered["country"] == len(recs) - len(want)
    # max per class: the first N in file order, and reading stops early
    r = fetch("monkey", tmp_path / "c", FetchOptions(source=gcs_source, max_per_class=50)).classes[0]
    assert r.accepted == 50 and r.stopped_early
    assert pq.read_table(tmp_path / "c" / "monkey").column("key_id").to_pylist() == [int(x["key_id"]) for x in recs[:50]]
    size = (shared_data / "full" / "simplified" / "monkey.ndjson").stat().st_size
    assert r.bytes_read < size / 4, (r.bytes_read, size)


def test_rerun_is_noop_and_option_change_refetches(gcs_source: str, tmp_path: Path) -> None:
    out = tmp_path / "raw"
    opts = FetchOptions(source=gcs_source, max_per_class=10)
    fetch("cat,dog", out, opts)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    again = fetch("cat,dog", out, opts)
    assert [c.status for c in again.classes] == ["unchanged", "unchanged"]
    assert all(c.bytes_read == 0 for c in again.classes)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before
    changed = fetch("cat", out, FetchOptions(source=gcs_source, max_per_class=5))
    assert changed.classes[0].status == "fetched" and changed.classes[0].accepted == 5


def test_unknown_class_fails_before_download(tmp_path: Path) -> None:
    res = runner.invoke(app, ["fetch", "--classes", "cat,elefant", "--out", str(tmp_path / "o"), "--source", "/nonexistent"])
    assert res.exit_code == 2
    assert "elefant" in res.output and "elephant" in res.output
    assert not (tmp_path / "o").exists()


def test_missing_object_is_a_clear_error(gcs_source: str, tmp_path: Path) -> None:
    src = gcs_source.replace("full/simplified", "full/nothing-here")
    res = runner.invoke(app, ["fetch", "--classes", "cat", "--out", str(tmp_path / "o"), "--source", src])
    assert res.exit_code == 1
    assert "not found" in res.output and "full/nothing-here/cat.ndjson" in res.output
    assert "Traceback" not in res.output


def _corrupt_file(shared: Path) -> tuple[bytes, int]:
    good = (shared / "full" / "simplified" / "cat.ndjson").read_bytes().splitlines()
    lines = [good[0], b"{broken json", good[1], b'{"word":"cat"}', b"", good[2] + b"\r",
             good[3].replace(b'"recognized":true', b'"recognized":"yes"'), good[4], good[5][:40]]
    return b"\n".join(lines), 4  # good[0, 1, 2, 4]; good[3] is spoiled; the truncated tail has no newline


def test_corrupt_input_quarantined_and_strict(
    bucket_factory: Any, shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blob, n_good = _corrupt_file(shared_data)
    emu = bucket_factory({"full/simplified/cat.ndjson": blob})
    monkeypatch.setenv("QUICKDRAW_GCS_ENDPOINT", emu.url)
    src = "gs://quickdraw_dataset/full/simplified"
    out = tmp_path / "raw"
    r = fetch("cat", out, FetchOptions(source=src)).classes[0]
    assert r.accepted == n_good
    assert r.rejected == {"bad_json": 1, "missing_key": 1, "bad_type": 1, "truncated_last_line": 1}
    q = [json.loads(x) for x in (out / "cat" / "_quarantine.ndjson").read_text().splitlines()]
    assert [(x["line"], x["reason"]) for x in q] == [(2, "bad_json"), (4, "missing_key"), (7, "bad_type"), (9, "truncated_last_line")]
    assert all(x["source"].endswith("cat.ndjson") and x["raw"] for x in q)
    res = runner.invoke(app, ["fetch", "--classes", "cat", "--out", str(tmp_path / "s"), "--source", src, "--strict"])
    assert res.exit_code == 2
    assert "cat.ndjson:2" in res.output and "bad_json" in res.output


def synthetic_ndjson(n: int, word: str = "cat", seed: int = 0) -> bytes:
    import random

    rng = random.Random(seed)
    out = []
    for i in range(n):
        strokes = [[[rng.randrange(256) for _ in range(k)] for _ in range(2)] for k in [rng.randrange(1, 20) for _ in range(rng.randrange(1, 6))]]
        out.append(json.dumps({"word": word, "countrycode": rng.choice(["US", "GB", "DE"]),
                               "timestamp": f"2017-03-{1 + i % 28:02d} 10:00:{i % 60:02d}.{i % 99999:05d} UTC",
                               "recognized": rng.random() < 0.9, "key_id": str(10**15 + i),
                               "drawing": strokes}, separators=(",", ":")))
    return ("\n".join(out) + "\n").encode()


def clean_run(tmp_path: Path, **options: Any) -> tuple[FetchOptions, dict[str, bytes]]:
    """Fetch a 3,000-drawing synthetic class without faults: the options and the files a faulty run must match."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "cat.ndjson").write_bytes(synthetic_ndjson(3000))
    opts = FetchOptions(source=str(src), **options)
    fetch("cat", tmp_path / "clean", opts)
    return opts, dir_bytes(tmp_path / "clean")


@pytest.mark.parametrize("cap", [2500, None], ids=["capped-reads", "aligned-read-ahead"])
def test_resume_after_crash_is_byte_identical(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cap: int | None) -> None:
    opts, want = clean_run(tmp_path, part_rows=400, chunk_bytes=64 << 10, max_per_class=cap)
    assert len([k for k in want if k.startswith("cat/part-")]) >= 5

    real_write = fetch_mod._write_part
    for crash_at in (1, 3):
        out = tmp_path / f"crash{crash_at}"
        monkeypatch.setattr(fetch_mod, "_write_part", crash_at_part(crash_at, real_write))
        with pytest.raises(KeyboardInterrupt):
            fetch("cat", out, opts)
        monkeypatch.setattr(fetch_mod, "_write_part", real_write)
        assert not (out / "cat" / "_manifest.json").exists()
        # One part per checkpoint here: the last checkpoint holds exactly the parts before the crashed one.
        state = json.loads((out / "cat" / ".fetch-state.json").read_text())
        assert [p["file"] for p in state["parts"]] == [f"part-{i:05d}.parquet" for i in range(crash_at)]
        r = fetch("cat", out, opts).classes[0]
        assert r.status == "resumed"
        assert dir_bytes(out) == want


def test_last_part_is_split_in_two_and_resumed_as_one_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rows left at the end become two parts encoded side by side; a crash in either redoes both."""
    monkeypatch.setattr(fetch_mod, "MIN_SPLIT_ROWS", 1)  # the default (5,000) needs a bigger file than a test wants
    src = tmp_path / "src"
    src.mkdir()
    recs = [orjson.loads(x) for x in synthetic_ndjson(3000).splitlines()]
    (src / "cat.ndjson").write_bytes(synthetic_ndjson(3000))
    opts = FetchOptions(source=str(src), part_rows=400, chunk_bytes=64 << 10)
    clean = tmp_path / "clean"
    fetch("cat", clean, opts)
    want = dir_bytes(clean)
    rows = [p["rows"] for p in json.loads((clean / "cat" / "_manifest.json").read_text())["parts"]]
    assert sum(rows) == 3000 and len(rows) >= 4
    assert all(r >= 400 for r in rows[:-2])  # regular parts: cut at the first chunk end past part_rows
    left = rows[-2] + rows[-1]
    assert (rows[-2], rows[-1]) == (left // 2, left - left // 2)
    got = read_class(clean, "cat")
    assert got.equals(table_from_records(recs).replace_schema_metadata(got.schema.metadata))

    real_write = fetch_mod._write_part
    for crash_at in (len(rows) - 2, len(rows) - 1):  # a crash while the two halves are being written
        out = tmp_path / f"crash{crash_at}"
        monkeypatch.setattr(fetch_mod, "_write_part", crash_at_part(crash_at, real_write))
        with pytest.raises(KeyboardInterrupt):
            fetch("cat", out, opts)
        monkeypatch.setattr(fetch_mod, "_write_part", real_write)
        state = json.loads((out / "cat" / ".fetch-state.json").read_text())
        assert len(state["parts"]) == len(rows) - 2  # neither half is in the last checkpoint
        r = fetch("cat", out, opts).classes[0]
        assert r.status == "resumed"
        assert dir_bytes(out) == want


def test_sigkill_then_resume(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "cat.ndjson").write_bytes(synthetic_ndjson(20000, seed=1))
    code = (
        "import sys; from quickdraw.pipeline.fetch import fetch, FetchOptions\n"
        f"fetch('cat', sys.argv[1], FetchOptions(source={str(src)!r}, part_rows=500, chunk_bytes=32768))\n"
    )
    clean = tmp_path / "clean"
    subprocess.run([sys.executable, "-c", code, str(clean)], check=True)
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", code, str(out)])
    deadline = time.time() + 60
    while time.time() < deadline and not (out / "cat" / "part-00002.parquet").exists():
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if (out / "cat" / "_manifest.json").exists():
        pytest.skip("the run finished before it could be killed")
    subprocess.run([sys.executable, "-c", code, str(out)], check=True)
    assert dir_bytes(out) == dir_bytes(clean)


@pytest.mark.parametrize("concurrency", [1, 2])
def test_strict_stops_the_other_classes(tmp_path: Path, concurrency: int) -> None:
    from quickdraw.errors import BadRecordError

    src = tmp_path / "src"
    src.mkdir()
    (src / "cat.ndjson").write_bytes(b"{broken\n" + synthetic_ndjson(10))
    (src / "dog.ndjson").write_bytes(synthetic_ndjson(20000, word="dog"))
    opts = FetchOptions(source=str(src), strict=True, chunk_bytes=16 << 10, part_rows=500)
    t = time.monotonic()
    with pytest.raises(BadRecordError, match="cat.ndjson:1"):
        fetch("cat,dog", tmp_path / "out", opts, concurrency=concurrency)
    assert not (tmp_path / "out" / "dog" / "_manifest.json").exists()
    assert time.monotonic() - t < 30


def test_one_failed_write_among_successful_ones_resumes_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A part that fails (disk full) while a later part succeeds: the state must not skip the failed one."""
    opts, want = clean_run(tmp_path, part_rows=400, chunk_bytes=64 << 10)

    real_write = fetch_mod._write_part

    def second_fails_late(path: Path, *a: Any, **k: Any) -> None:
        if path.name == "part-00001.parquet":
            time.sleep(0.5)  # long enough for part-00002 to be written by the other writer thread
            raise OSError(28, "No space left on device (simulated)")
        real_write(path, *a, **k)

    out = tmp_path / "out"
    monkeypatch.setattr(fetch_mod, "_write_part", second_fails_late)
    with pytest.raises(OSError, match="No space left"):
        fetch_mod.fetch_class("cat", out, opts)
    monkeypatch.setattr(fetch_mod, "_write_part", real_write)
    state = json.loads((out / "cat" / ".fetch-state.json").read_text())
    assert [p["file"] for p in state["parts"]] == ["part-00000.parquet"]
    assert fetch("cat", out, opts).classes[0].status == "resumed"
    assert dir_bytes(out) == want


def test_resume_after_cap_reached_only_writes_the_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opts, want = clean_run(tmp_path, part_rows=400, chunk_bytes=64 << 10, max_per_class=2500)

    real_json = fetch_mod.write_json_atomic

    def killed_before_manifest(path: Path, doc: Any) -> None:
        if Path(path).name == "_manifest.json":
            raise KeyboardInterrupt("simulated kill after the last checkpoint")
        real_json(path, doc)

    out = tmp_path / "out"
    monkeypatch.setattr(fetch_mod, "write_json_atomic", killed_before_manifest)
    with pytest.raises(KeyboardInterrupt):
        fetch("cat", out, opts)
    monkeypatch.setattr(fetch_mod, "write_json_atomic", real_json)
    r = fetch("cat", out, opts).classes[0]
    assert (r.status, r.accepted, r.bytes_read) == ("resumed", 2500, 0)  # nothing read again
    assert dir_bytes(out) == want


def test_state_naming_a_missing_part_is_discarded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opts, want = clean_run(tmp_path, part_rows=400, chunk_bytes=64 << 10)

    real_write = fetch_mod._write_part
    out = tmp_path / "out"
    monkeypatch.setattr(fetch_mod, "_write_part", crash_at_part(3, real_write))
    with pytest.raises(KeyboardInterrupt):
        fetch("cat", out, opts)
    monkeypatch.setattr(fetch_mod, "_write_part", real_write)
    (out / "cat" / "part-00000.parquet").unlink()  # e.g. a rename lost in a power cut
    assert fetch("cat", out, opts).classes[0].status == "fetched"
    assert dir_bytes(out) == want


@pytest.mark.parametrize("cap", [None, 300], ids=["whole-files", "capped"])
def test_scanner_and_exact_path_write_the_same_bytes(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cap: int | None
) -> None:
    """Which ndjson path parses a chunk (the compiled scanner, or the exact one that small chunks take while
    numba is not loaded) never shows in the output: every file fetch writes is the same, byte for byte, on
    real drawings and on a corrupt file, through the stage users run."""
    from quickdraw.sources import ndjson

    src = copy_class_files(shared_data, WORDS, tmp_path / "mirror")
    blob, _ = _corrupt_file(shared_data)
    (src / "dog.ndjson").write_bytes(blob)
    opts = FetchOptions(source=str(src), max_per_class=cap, chunk_bytes=64 << 10)
    outs = {}
    for forced in (True, False):
        monkeypatch.setattr(ndjson, "_use_scanner", lambda n, forced=forced: forced)
        out = tmp_path / f"out-{forced}"
        res = fetch([*WORDS, "dog"], out, opts)
        assert not res.failed, res.to_dict()
        outs[forced] = dir_bytes(out)
    assert outs[True] == outs[False]
    assert "dog/_quarantine.ndjson" in outs[True] and any(k.startswith("monkey/part-") for k in outs[True])
