"""Attacks found by the adversarial review of the safety work, each a test that failed before its fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from quickdraw.cli.app import app
from quickdraw.pipeline.fetch import FetchOptions, fetch
from tests.conftest import copy_class_files

runner = CliRunner()


@pytest.fixture()
def source(tmp_path: Path, shared_data: Path) -> Path:
    return copy_class_files(shared_data, ["cat", "apple"], tmp_path / "mirror")


def test_folder_names_with_glob_characters_are_read_literally(tmp_path: Path, source: Path) -> None:
    """polars expanded '[...]' and '*' in paths: tracebacks, and stats counted a sibling folder's drawings."""
    literal = tmp_path / "data [copy]"
    fetch("cat", literal / "raw", FetchOptions(source=str(source), max_per_class=10))
    fetch("cat", tmp_path / "data c" / "raw", FetchOptions(source=str(source), max_per_class=7))  # matches the glob
    r = runner.invoke(app, ["stats", str(literal / "raw"), "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert [(row["word"], row["count"]) for row in doc["rows"]] == [("cat", 10)]  # not 17: no sibling folder read
    r = runner.invoke(app, ["show", str(literal / "raw"), "--out", str(tmp_path / "g.png")])
    assert r.exit_code == 0, r.output


def test_a_fifo_manifest_is_named_not_waited_on(tmp_path: Path, source: Path) -> None:
    out = tmp_path / "out"
    fetch("cat,apple", out, FetchOptions(source=str(source)))
    (out / "cat" / "_manifest.json").unlink()
    os.mkfifo(out / "cat" / "_manifest.json")
    p = subprocess.run([sys.executable, "-m", "quickdraw.cli.app", "fetch", "-c", "cat,apple", "--source", str(source),
                        "--out", str(out)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "FIFO" in p.stderr and "Traceback" not in p.stderr
    r = runner.invoke(app, ["prepare", "--in", str(out), "--out", str(tmp_path / "st")])
    assert r.exit_code == 2 and "not a regular file" in r.output  # not a silently dropped class


def test_fetch_refetches_a_class_whose_parts_are_gone(tmp_path: Path, source: Path) -> None:
    out = tmp_path / "out"
    fetch("cat", out, FetchOptions(source=str(source)))
    want = (out / "cat" / "part-00000.parquet").read_bytes()
    (out / "cat" / "part-00000.parquet").write_bytes(b"junk")
    assert fetch("cat", out, FetchOptions(source=str(source))).classes[0].status == "fetched"
    assert (out / "cat" / "part-00000.parquet").read_bytes() == want


def test_symlinked_lock_is_refused_in_one_line(tmp_path: Path, source: Path) -> None:
    out = tmp_path / "out"
    fetch("cat", out, FetchOptions(source=str(source)))
    victim = tmp_path / "victim"
    victim.write_text("v")
    (out / ".quickdraw.lock").unlink()
    (out / ".quickdraw.lock").symlink_to(victim)
    r = runner.invoke(app, ["fetch", "-c", "cat", "--source", str(source), "--out", str(out)])
    assert r.exit_code == 2 and "not a regular file" in r.output and victim.read_text() == "v"


@pytest.mark.parametrize("where", ["inside", "same", "around"])
def test_prepare_refuses_an_out_that_overlaps_its_in(tmp_path: Path, source: Path, where: str) -> None:
    raw = tmp_path / "raw"
    fetch("cat", raw, FetchOptions(source=str(source)))
    manifest = (raw / "cat" / "_manifest.json").read_bytes()
    out = {"inside": raw / "cat", "same": raw, "around": tmp_path}[where]
    r = runner.invoke(app, ["prepare", "--in", str(raw), "--out", str(out), "--overwrite"])
    assert r.exit_code == 2 and "overlap" in r.output
    assert (raw / "cat" / "_manifest.json").read_bytes() == manifest


def test_gc_keep_that_matches_nothing_removes_nothing(tmp_path: Path) -> None:
    from tests.security._cache_helpers import small_cache

    old = small_cache(tmp_path, seed=1)
    small_cache(tmp_path, seed=2)
    root = tmp_path / "cache"
    r = runner.invoke(app, ["cache", "gc", "--root", str(root), "--keep", f"mini/{old.version[:4]}x"])
    assert r.exit_code == 2 and "matches no version" in r.output and old.path.is_dir()
    r = runner.invoke(app, ["cache", "gc", "--root", str(root), "--keep", old.version[:6]])
    assert r.exit_code == 0 and old.path.is_dir()


def test_train_and_evaluate_write_only_into_folders_they_own(tmp_path: Path) -> None:
    """`train --live-dir <a user folder>` let dvclive delete the user's report.html and overwrote their
    metrics.json and best.pt; `evaluate --out` overwrote metrics.json."""
    from tests.security._cache_helpers import small_cache

    cv = small_cache(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    for name in ("report.html", "metrics.json", "best.pt"):
        (home / name).write_text("the user's")
    args = ["train", "--cache", str(cv.path), "--set", "train.epochs=1", "--set", "train.hidden=8", "--quiet"]
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "models"), "--live-dir", str(home)])
    assert r.exit_code == 2 and "not created by quickdraw" in r.output
    r = runner.invoke(app, [*args, "--out", str(home), "--live-dir", str(tmp_path / "live")])
    assert r.exit_code == 2 and "not created by quickdraw" in r.output
    assert all((home / n).read_text() == "the user's" for n in ("report.html", "metrics.json", "best.pt"))
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "models"), "--live-dir", str(tmp_path / "live")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["evaluate", "--checkpoint", str(tmp_path / "models" / "best.pt"), "--out", str(home)])
    assert r.exit_code == 2 and "not created by quickdraw" in r.output and (home / "metrics.json").read_text() == "the user's"
    r = runner.invoke(app, ["evaluate", "--checkpoint", str(tmp_path / "models" / "best.pt"), "--out", str(tmp_path / "eval")])
    assert r.exit_code == 0, r.output


def test_absurd_numbers_and_missing_plugins_are_one_line_errors(tmp_path: Path, source: Path) -> None:
    """`show --n 1e11` (MemoryError), `prepare --max-len 1e20` (OverflowError after claiming the folder) and an
    s3:// source without s3fs (ImportError) were tracebacks."""
    raw = tmp_path / "raw"
    fetch("cat", raw, FetchOptions(source=str(source)))
    r = runner.invoke(app, ["show", str(raw), "--n", "100000000000", "--out", str(tmp_path / "g.png")])
    assert r.exit_code == 2 and "Traceback" not in r.output
    r = runner.invoke(app, ["prepare", "--in", str(raw), "--out", str(tmp_path / "st"), "--max-len", "9" * 20])
    assert r.exit_code == 2 and not (tmp_path / "st").exists()
    p = subprocess.run([sys.executable, "-m", "quickdraw.cli.app", "fetch", "-c", "cat", "--source", "s3://b/x",
                        "--out", str(tmp_path / "s3")], capture_output=True, text=True, timeout=60)
    if "Install s3fs" in p.stderr:  # where s3fs is installed the URL is simply unreachable
        assert p.returncode == 2 and "Traceback" not in p.stderr and p.stderr.count("\n") == 1


def test_single_file_outputs_are_replaced_only_with_overwrite(tmp_path: Path) -> None:
    """`export --out` and `show --out` replaced a user's file silently and destroyed a `<out>.incomplete` of
    theirs; an --out that is a folder blamed the temp file."""
    from tests.security._cache_helpers import small_cache

    cv = small_cache(tmp_path)
    mine = tmp_path / "x.npz"
    mine.write_text("the user's")
    (tmp_path / "x.npz.incomplete").write_text("also the user's")
    base = ["export", "sketchrnn", "--cache", str(cv.path), "--out"]
    r = runner.invoke(app, [*base, str(mine)])
    assert r.exit_code == 2 and "--overwrite" in r.output and mine.read_text() == "the user's"
    (tmp_path / "dir.npz").mkdir()
    r = runner.invoke(app, [*base, str(tmp_path / "dir.npz")])
    assert r.exit_code == 2 and "is a folder" in r.output and not list(tmp_path.glob("*dir.npz*incomplete"))
    assert runner.invoke(app, [*base, str(mine), "--overwrite"]).exit_code == 0
    assert mine.read_bytes()[:2] == b"PK" and (tmp_path / "x.npz.incomplete").read_text() == "also the user's"
    png = tmp_path / "g.png"
    png.write_text("the user's")
    r = runner.invoke(app, ["show", str(cv.path), "--out", str(png)])
    assert r.exit_code == 2 and png.read_text() == "the user's"
    assert runner.invoke(app, ["show", str(cv.path), "--out", str(png), "--overwrite"]).exit_code == 0
    assert not list(tmp_path.glob(".*.incomplete"))


def test_gc_leaves_a_version_holding_files_the_build_did_not_write(tmp_path: Path) -> None:
    from tests.security._cache_helpers import small_cache

    old = small_cache(tmp_path, seed=1)
    small_cache(tmp_path, seed=2)
    (old.path / "thesis.tex").write_text("mine")
    r = runner.invoke(app, ["cache", "gc", "--root", str(tmp_path / "cache"), "--json"])
    assert r.exit_code == 0 and (old.path / "thesis.tex").read_text() == "mine"
    assert any("thesis.tex" in d["reason"] for d in json.loads(r.stdout)["skipped"])


@pytest.mark.parametrize("src,says", [
    ("", "--source is empty"),
    ("zip://x", "cannot open the source zip://x/"),  # cat or apple: whichever class fails first
    ("nope://x", "Protocol not known: nope"),
])
def test_a_source_fsspec_cannot_open_is_named_as_the_source(tmp_path: Path, src: str, says: str) -> None:
    """`--source ""` read `/cat.ndjson`; `zip://x` said "cannot write <cwd>: Is a directory" (fsspec opened the
    working folder as an archive): both blamed the wrong thing. One line, naming the source, exit 2."""
    out = tmp_path / "out"
    r = runner.invoke(app, ["fetch", "--classes", "cat,apple", "--source", src, "--out", str(out), "-n", "5"])
    assert r.exit_code == 2, r.output
    assert says in r.output and "--source" in r.output and "cannot write" not in r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1, r.output


def test_show_refuses_an_unknown_split_even_on_a_fetch_output(tmp_path: Path, source: Path) -> None:
    """`show data/raw --split nope` drew the fetch output as if the split were valid."""
    fetch("cat", tmp_path / "raw", FetchOptions(source=str(source), max_per_class=4))
    r = runner.invoke(app, ["show", str(tmp_path / "raw"), "--split", "nope", "--out", str(tmp_path / "g.png")])
    assert r.exit_code == 2 and "unknown split 'nope'" in r.output, r.output
    assert not (tmp_path / "g.png").exists()


@pytest.mark.parametrize("countries", ["[/]", "USA", "U1", "US,*"])
def test_countries_that_no_drawing_can_have_are_refused(tmp_path: Path, source: Path, countries: str) -> None:
    """`--countries "[/]"` was accepted and kept zero drawings of every class, without a word."""
    r = runner.invoke(app, ["fetch", "--classes", "cat", "--source", str(source), "--out", str(tmp_path / "o"),
                            "--countries", countries])
    assert r.exit_code == 2 and "two-letter country code" in r.output and "Traceback" not in r.output, r.output
    assert not (tmp_path / "o").exists()
    ok = runner.invoke(app, ["fetch", "--classes", "cat", "--source", str(source), "--out", str(tmp_path / "k"),
                             "--countries", "us, gb", "-n", "3"])
    assert ok.exit_code == 0, ok.output  # lower case and spaces are normalized by the CLI
