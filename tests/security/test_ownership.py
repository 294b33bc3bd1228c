"""Ownership: fetch deletes or replaces only what it wrote, and one fetch writes a folder at a time.

Each test is an attack from issue 12 that used to succeed: fetch into a folder holding the user's files
deleted them (and any sub-folder); a class folder that was a symlink had its target's files deleted;
``fetch_class('../victim', ...)`` escaped ``out``; concurrent fetches into one ``--out`` corrupted each other.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from quickdraw._ownership import MARKER, output_lock
from quickdraw.cli.app import app
from quickdraw.errors import OwnershipError
from quickdraw.pipeline.fetch import FetchOptions, fetch, fetch_class
from tests.conftest import copy_class_files

runner = CliRunner()


@pytest.fixture()
def source(tmp_path: Path, shared_data: Path) -> Path:
    return copy_class_files(shared_data, ["book", "cat", "house"], tmp_path / "mirror")


def cli(*args: str) -> tuple[int, str]:
    r = runner.invoke(app, list(args))
    assert "Traceback" not in r.output, r.output
    return r.exit_code, r.output


def user_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_fetch_refuses_a_folder_it_did_not_create(tmp_path: Path, source: Path) -> None:
    d = tmp_path / "d"
    (d / "book" / "chapters").mkdir(parents=True)
    (d / "book" / "thesis.tex").write_text("x")
    (d / "book" / "chapters" / "one.tex").write_text("y")
    before = user_files(d)
    code, out = cli("fetch", "-c", "book", "--source", str(source), "--out", str(d))
    assert code == 2
    assert "not created by quickdraw" in out and "--overwrite" in out and str(d) in out.replace("\n", "")
    assert user_files(d) == before and not (d / MARKER).exists()


def test_overwrite_writes_but_still_leaves_foreign_files(tmp_path: Path, source: Path) -> None:
    d = tmp_path / "d"
    (d / "book" / "chapters").mkdir(parents=True)
    (d / "book" / "thesis.tex").write_text("x")
    (d / "book" / "chapters" / "one.tex").write_text("y")
    code, out = cli("fetch", "-c", "book", "--source", str(source), "--out", str(d), "--overwrite")
    assert code == 0, out
    assert (d / "book" / "_manifest.json").exists()
    assert (d / "book" / "thesis.tex").read_text() == "x"
    assert (d / "book" / "chapters" / "one.tex").read_text() == "y"
    # a refetch with other options clears what fetch wrote, and still nothing else
    code, out = cli("fetch", "-c", "book", "--source", str(source), "--out", str(d), "--max-per-class", "3")
    assert code == 0, out
    assert (d / "book" / "thesis.tex").read_text() == "x" and (d / "book" / "chapters" / "one.tex").exists()
    assert json.loads((d / "book" / "_manifest.json").read_text())["counts"]["accepted"] == 3


def test_symlinked_class_folder_is_never_followed(tmp_path: Path, source: Path) -> None:
    out = tmp_path / "out"
    assert cli("fetch", "-c", "cat", "--source", str(source), "--out", str(out))[0] == 0
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "part-00000.parquet").write_text("the user's, not ours")
    (victim / "_manifest.json").write_text("{}")
    for p in (out / "cat").iterdir():
        p.unlink()
    (out / "cat").rmdir()
    (out / "cat").symlink_to(victim, target_is_directory=True)
    code, msg = cli("fetch", "-c", "cat", "--source", str(source), "--out", str(out), "--max-per-class", "2")
    assert code == 1 and "symlink" in msg
    assert (victim / "part-00000.parquet").read_text() == "the user's, not ours"
    assert (victim / "_manifest.json").read_text() == "{}"


def test_library_fetch_class_validates_the_word(tmp_path: Path, source: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("k")
    out = tmp_path / "out"
    for word in ("../victim", "animals10", "cat/../../victim", ""):
        with pytest.raises(ValueError, match="unknown class|empty class spec"):
            fetch_class(word, out, FetchOptions(source=str(source)))
    assert (victim / "keep.txt").read_text() == "k"


def test_a_prepare_output_is_not_a_fetch_output(tmp_path: Path, source: Path) -> None:
    d = tmp_path / "strokes"
    d.mkdir()
    (d / MARKER).write_text(json.dumps({"created_by": "quickdraw", "kind": "prepare"}))
    (d / "stroke3").mkdir()
    code, out = cli("fetch", "-c", "cat", "--source", str(source), "--out", str(d))
    assert code == 2 and "prepare output" in out


def test_output_from_before_markers_is_adopted(tmp_path: Path, source: Path) -> None:
    out = tmp_path / "out"
    fetch("cat,house", out, FetchOptions(source=str(source)))
    (out / MARKER).unlink()
    (out / ".quickdraw.lock").unlink(missing_ok=True)
    res = fetch("cat,house", out, FetchOptions(source=str(source)))
    assert [c.status for c in res.classes] == ["unchanged", "unchanged"]
    assert (out / MARKER).exists()


def test_second_writer_fails_at_once_with_a_clear_message(tmp_path: Path, source: Path) -> None:
    out = tmp_path / "out"
    fetch("cat", out, FetchOptions(source=str(source)))
    with output_lock(out, "fetch"):
        p = subprocess.run([sys.executable, "-m", "quickdraw.cli.app", "fetch", "-c", "house", "--source",
                            str(source), "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    assert "another quickdraw fetch is writing into" in p.stderr and "Traceback" not in p.stderr
    assert not (out / "house").exists()


def test_concurrent_fetches_never_corrupt_each_other(tmp_path: Path, source: Path) -> None:
    out = tmp_path / "out"
    fetch("book", out, FetchOptions(source=str(source)))  # the folder exists; both runs race for its lock
    results: list[object] = []

    def run() -> None:
        try:
            results.append(fetch("cat,house", out, FetchOptions(source=str(source)), concurrency=2))
        except OwnershipError as exc:
            results.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    errors = [r for r in results if isinstance(r, OwnershipError)]
    assert len(results) == 2 and len(errors) <= 1
    assert all("another quickdraw fetch" in str(e) for e in errors)
    # whatever the interleaving, the folder holds two complete, consistent classes
    from quickdraw._io import sha256_file

    for w in ("cat", "house"):
        m = json.loads((out / w / "_manifest.json").read_text())
        for part in m["parts"]:
            assert sha256_file(out / w / part["file"]) == part["sha256"]
        assert not list((out / w).glob("*.incomplete"))


def test_prepare_refuses_a_folder_it_did_not_create(tmp_path: Path, source: Path) -> None:
    raw = tmp_path / "raw"
    fetch("cat,house", raw, FetchOptions(source=str(source)))
    out = tmp_path / "mine"
    (out / "stroke3" / "train").mkdir(parents=True)
    (out / "stroke3" / "train" / "part-00000.parquet").write_text("the user's file")
    (out / "_manifest.json").write_text("{}")
    code, msg = cli("prepare", "--in", str(raw), "--out", str(out))
    assert code == 2 and "not created by quickdraw" in msg
    assert (out / "stroke3" / "train" / "part-00000.parquet").read_text() == "the user's file"
    # a fetch output is not a prepare output either
    code, msg = cli("prepare", "--in", str(raw), "--out", str(raw))
    assert code == 2 and "overlap" in msg
    # its own output is rewritten freely, and a pre-marker one is adopted
    good = tmp_path / "strokes"
    assert cli("prepare", "--in", str(raw), "--out", str(good))[0] == 0
    (good / MARKER).unlink()
    assert cli("prepare", "--in", str(raw), "--out", str(good))[0] == 0
    with output_lock(good, "prepare"):
        code, msg = cli("prepare", "--in", str(raw), "--out", str(good))
    assert code == 2 and "another quickdraw prepare is writing" in msg


@pytest.mark.parametrize("mangle", [
    lambda s: {**s, "parts": [{"file": "../../victim/keep.txt", "rows": 1, "size": 1}]},
    lambda s: {**s, "parts": [{"file": "/etc/hostname", "rows": 1, "size": 1}]},
    lambda s: {**s, "offset": "12"},
    lambda s: {**s, "line": -3},
    lambda s: {**s, "rejected": {"bad_json": "many"}},
    lambda s: [s],
], ids=["dotdot-part", "absolute-part", "string-offset", "negative-line", "bad-counts", "not-an-object"])
def test_a_mangled_resume_state_is_discarded_never_followed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           mangle: Any) -> None:
    """The state file is data: its part names are never opened or deleted outside the class folder, and a
    state with wrong types means a refetch (same result as a clean run), not a traceback."""
    from tests.integration.test_fetch import synthetic_ndjson
    from tests.security.test_bounds import killed_at_part

    src = tmp_path / "src"
    src.mkdir()
    (src / "cat.ndjson").write_bytes(synthetic_ndjson(1200))
    opts = FetchOptions(source=str(src), part_rows=400, chunk_bytes=32 << 10)
    fetch("cat", tmp_path / "clean", opts)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("k")
    out = tmp_path / "out"
    killed_at_part(2, out, opts, monkeypatch)
    state_path = out / "cat" / ".fetch-state.json"
    state_path.write_text(json.dumps(mangle(json.loads(state_path.read_text()))))
    res = fetch("cat", out, opts).classes[0]
    assert res.status == "fetched"  # started over
    assert (victim / "keep.txt").read_text() == "k"
    clean = {p.name: p.read_bytes() for p in (tmp_path / "clean" / "cat").iterdir()}
    assert {p.name: p.read_bytes() for p in (out / "cat").iterdir()} == clean
