"""Network faults between gcsfs and the GCS emulator: retried, resumed at the right byte, bounded in time.

A :class:`tests.faultproxy.FaultProxy` sits between gcsfs and the emulator; every test compares the fetched
output byte for byte with a clean run through no proxy.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from quickdraw.cli.app import app
from quickdraw.pipeline.fetch import FetchOptions, fetch
from quickdraw.sources.fs import open_source, read_range, stat_object
from tests.emulator import BUCKET, Emulator
from tests.faultproxy import FaultProxy

runner = CliRunner()
SRC = f"gs://{BUCKET}/full/simplified"
WORDS = ["cat", "The Eiffel Tower"]
# Small chunks: each class takes several ranged reads, so faults land mid-class.
OPTS = FetchOptions(source=SRC, chunk_bytes=2048, part_rows=3)


def dir_bytes(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def clean(gcs: Emulator, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("clean")
    res = fetch(WORDS, out, OPTS)
    assert not res.failed
    return dir_bytes(out)


@pytest.fixture()
def proxy(gcs: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    with FaultProxy(gcs.url) as p:
        monkeypatch.setenv("QUICKDRAW_GCS_ENDPOINT", p.url)
        monkeypatch.setenv("QUICKDRAW_REQUEST_TIMEOUT", "0.5")
        monkeypatch.setenv("QUICKDRAW_READ_DEADLINE", "20")
        monkeypatch.setenv("QUICKDRAW_RETRY_BASE", "0.05")
        yield p


@pytest.mark.parametrize("status", [429, 500, 503])
def test_gcsfs_itself_retries_transient_status(proxy: FaultProxy, status: int) -> None:
    """gcsfs's own retry (not ours) absorbs one 429/5xx: one cat_file call, two HTTP requests."""
    fs, path = open_source(f"{SRC}/cat.ndjson")
    proxy.add("status", status=status)
    data = fs.cat_file(path, start=10, end=2000)
    assert len(data) == 1990
    assert [e.action for e in proxy.log] == ["status", "ok"]
    assert proxy.log[0].range == proxy.log[1].range == "bytes=10-1999"


def test_body_cut_without_length_resumes_at_the_missing_byte(proxy: FaultProxy, shared_data: Path) -> None:
    """gcsfs returns a silently short body; read_range keeps it and asks only for the rest."""
    want = (shared_data / "full" / "simplified" / "cat.ndjson").read_bytes()[100:5000]
    fs, path = open_source(f"{SRC}/cat.ndjson")
    proxy.add("drop_nolen", n_bytes=1234)
    assert read_range(fs, path, 100, 5000, "u") == want
    assert [(e.action, e.range) for e in proxy.log] == [("drop_nolen", "bytes=100-4999"), ("ok", "bytes=1334-4999")]


def test_stall_is_timed_out_and_retried(proxy: FaultProxy, shared_data: Path) -> None:
    """A silent server costs one request timeout, then a retry (gcsfs does not retry timeouts itself)."""
    want = (shared_data / "full" / "simplified" / "cat.ndjson").read_bytes()[:3000]
    fs, path = open_source(f"{SRC}/cat.ndjson")
    proxy.add("stall", delay=3)
    t = time.monotonic()
    assert read_range(fs, path, 0, 3000, "u") == want
    assert time.monotonic() - t < 2.5
    assert [e.action for e in proxy.log] == ["stall", "ok"]


def test_stat_retries(proxy: FaultProxy) -> None:
    proxy.add("status", match="meta", status=503)
    proxy.add("stall", match="meta", delay=3)
    info = stat_object(f"{SRC}/cat.ndjson")
    assert info.size > 0 and info.etag
    assert [e.action for e in proxy.log][:2] == ["status", "stall"] and proxy.log[-1].action == "ok"


@pytest.mark.parametrize(
    "kind,kw",
    [("drop", {"n_bytes": 700}), ("drop_nolen", {"n_bytes": 700}), ("reset", {}), ("status", {"status": 503}),
     ("status", {"status": 429}), ("stall", {"delay": 2})],
    ids=["drop", "drop_nolen", "reset", "503", "429", "stall"],
)
def test_fault_mid_class_gives_identical_output(
    proxy: FaultProxy, clean: dict[str, bytes], tmp_path: Path, kind: str, kw: dict
) -> None:
    # Two faults per class, on its 2nd and 4th ranged read.
    for w in WORDS:
        proxy.add(kind, path=f"{w}.ndjson", skip=1, **kw)
        proxy.add(kind, path=f"{w}.ndjson", skip=3, **kw)
    res = fetch(WORDS, tmp_path, OPTS, concurrency=2)
    assert not res.failed, [c.error for c in res.classes]
    assert len(proxy.faults()) == 4
    assert dir_bytes(tmp_path) == clean


def test_persistent_fault_fails_one_class_keeps_the_others(
    proxy: FaultProxy, clean: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUICKDRAW_READ_DEADLINE", "2")
    # cat's first two reads succeed (a part is written), then every read fails.
    proxy.add("status", path="cat.ndjson", skip=2, times=None, status=503)
    out = tmp_path / "raw"
    t = time.monotonic()
    res = fetch(WORDS, out, OPTS, concurrency=2)
    assert time.monotonic() - t < 10, "the deadline did not bound the retries"
    by = {c.word: c for c in res.classes}
    assert by["cat"].status == "failed"
    assert "gs://quickdraw_dataset/full/simplified/cat.ndjson" in (by["cat"].error or "")
    assert "giving up" in (by["cat"].error or "") and "at byte " in (by["cat"].error or "")
    assert by["The Eiffel Tower"].status == "fetched"
    assert (out / "The Eiffel Tower" / "_manifest.json").is_file() and not (out / "cat" / "_manifest.json").exists()
    assert list((out / "cat").glob("part-*.parquet")), "expected a partial, resumable class"
    want_eiffel = {k: v for k, v in clean.items() if k.startswith("The Eiffel Tower/")}
    assert {k: v for k, v in dir_bytes(out).items() if k.startswith("The Eiffel Tower/")} == want_eiffel
    # The CLI: exit 1, the class and URL named, no traceback; --json still one document.
    proxy.clear()
    proxy.add("status", path="cat.ndjson", times=None, status=500)
    for extra in ([], ["--json"]):
        res_cli = runner.invoke(app, ["fetch", "--classes", "cat,The Eiffel Tower", "--out", str(tmp_path / "h"), "--source", SRC, *extra])
        assert res_cli.exit_code == 1 and "Traceback" not in res_cli.output
        if extra:
            doc = json.loads(res_cli.stdout)
            assert [c["status"] for c in doc["classes"]] [0] == "failed" and doc["totals"]["failed"] == 1
        else:
            flat = " ".join(res_cli.output.split())
            assert "failed: cat:" in flat and "full/simplified/cat.ndjson" in flat.replace(" ", "")
    # The fault clears: the rerun resumes the failed class and ends byte-identical to a clean run.
    proxy.clear()
    res = fetch(WORDS, out, OPTS)
    assert [c.status for c in res.classes] == ["resumed", "unchanged"]
    assert dir_bytes(out) == clean


def test_persistent_stall_is_bounded(proxy: FaultProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUICKDRAW_READ_DEADLINE", "2")
    proxy.add("stall", match="any", times=None, delay=30)
    t = time.monotonic()
    res = fetch(["cat"], tmp_path, OPTS)
    assert time.monotonic() - t < 6
    assert res.classes[0].status == "failed" and "cat.ndjson" in (res.classes[0].error or "")


def test_forbidden_fails_at_once_not_after_the_deadline(proxy: FaultProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # 403 is permanent: retrying it until the deadline would only make the user wait.
    monkeypatch.setenv("QUICKDRAW_READ_DEADLINE", "60")
    proxy.add("status", path="cat.ndjson", times=None, status=403)
    t = time.monotonic()
    res = fetch("cat", tmp_path / "o", FetchOptions(source="gs://quickdraw_dataset/full/simplified"))
    assert res.classes[0].status == "failed" and "cat.ndjson" in (res.classes[0].error or "")
    assert time.monotonic() - t < 20
