"""``cache gc`` deletes only what quickdraw provably wrote (issue 12).

Before: ``gc --root R`` removed every ``R/*/<16 hex>/`` folder and every ``R/*/.tmp-<hex>-<dead pid>/`` folder,
whatever they held: pointed at a folder of the user's, it deleted the user's files.
"""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from quickdraw.cache import build_cache, gc, list_versions
from quickdraw.cli.app import app
from tests.security._cache_helpers import small_cache

runner = CliRunner()
ROOT_MARKER = ".quickdraw-cache"


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _user_folders(root: Path) -> None:
    (root / "x" / "0123456789abcdef").mkdir(parents=True)
    (root / "x" / "0123456789abcdef" / "thesis.tex").write_text("years of work")
    (root / "x" / ".tmp-foo").mkdir()
    (root / "x" / ".tmp-foo" / "notes.txt").write_text("notes")
    (root / "x" / ".tmp-0123456789abcdef-999999999").mkdir()  # looks like a dead build's temp dir
    (root / "x" / ".tmp-0123456789abcdef-999999999" / "photo.jpg").write_bytes(b"\xff\xd8")


def test_gc_on_a_folder_that_is_not_a_cache_removes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "Documents"
    _user_folders(root)
    before = _files(root)
    res = runner.invoke(app, ["cache", "gc", "--root", str(root)])
    assert res.exit_code == 2 and "not a quickdraw cache root" in res.output and "Traceback" not in res.output
    assert _files(root) == before
    res = runner.invoke(app, ["cache", "gc", "--root", str(root), "--name", "x", "--dry-run", "--json"])
    assert res.exit_code == 2 and _files(root) == before


def test_in_a_real_cache_a_look_alike_folder_is_left_and_reported(tmp_path: Path) -> None:
    cv_old = small_cache(tmp_path, seed=1)
    cv_new = small_cache(tmp_path, seed=2)
    root = tmp_path / "cache"
    assert (root / ROOT_MARKER).is_file()  # build_cache marks the root it writes into
    mine = root / "mini" / "fedcba9876543210"
    mine.mkdir()
    (mine / "data.csv").write_text("a,b\n")
    fake_tmp = root / "mini" / ".tmp-0123456789abcdef-999999999"
    fake_tmp.mkdir()
    (fake_tmp / "keep.txt").write_text("mine")
    res = runner.invoke(app, ["cache", "gc", "--root", str(root), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["removed"] == [str(cv_old.path)]
    skipped = {d["path"]: d["reason"] for d in doc["skipped"]}
    assert str(mine) in skipped and "manifest" in skipped[str(mine)]
    assert str(fake_tmp) in skipped
    assert (mine / "data.csv").read_text() == "a,b\n" and (fake_tmp / "keep.txt").read_text() == "mine"
    assert [v.version for v in list_versions("mini", root)] == [cv_new.version]
    human = runner.invoke(app, ["cache", "gc", "--root", str(root)], env={"COLUMNS": "200"})
    assert human.exit_code == 0 and f"left alone: {mine}" in human.output


def test_a_version_whose_manifest_names_another_folder_is_not_collected(tmp_path: Path) -> None:
    small_cache(tmp_path, seed=1)
    small_cache(tmp_path, seed=2)
    root = tmp_path / "cache"
    # A valid manifest copied into a folder of another name: not provably the version it claims to be.
    old = next(p for p in (root / "mini").iterdir() if p.name != (root / "mini" / "LATEST").read_text().strip()
               and len(p.name) == 16)
    impostor = root / "mini" / "00000000000000aa"
    impostor.mkdir()
    (impostor / "manifest.json").write_bytes((old / "manifest.json").read_bytes())
    report = gc(root)
    assert impostor.is_dir() and any(p == impostor for p, _ in report.skipped)
    assert old in report.removed


def test_a_cache_from_before_the_marker_is_still_collected_when_everything_in_it_is_valid(tmp_path: Path) -> None:
    cv_old = small_cache(tmp_path, seed=1)
    small_cache(tmp_path, seed=2)
    root = tmp_path / "cache"
    (root / ROOT_MARKER).unlink()  # as built by an older quickdraw
    assert [p for p in gc(root, dry_run=True).removed] == [cv_old.path]
    (root / "photos" / "0123456789abcdef").mkdir(parents=True)  # one folder gc cannot vouch for
    res = runner.invoke(app, ["cache", "gc", "--root", str(root)])
    assert res.exit_code == 2 and "not a quickdraw cache root" in res.output
    assert cv_old.path.is_dir() and (root / "photos" / "0123456789abcdef").is_dir()


def test_a_killed_builds_temp_dir_carries_the_marker_and_is_collected(tmp_path: Path) -> None:
    cv = small_cache(tmp_path)
    root = tmp_path / "cache"
    assert not (cv.path / ".quickdraw-build").exists()  # removed before the rename: not part of the version
    dead = root / "mini" / f".tmp-{cv.version}-999999999"
    dead.mkdir()
    (dead / ".quickdraw-build").write_text(dead.name + "\n")
    (dead / "half.npy").write_bytes(b"\0" * 10)
    report = gc(root)
    assert report.removed == [dead] and not dead.exists() and cv.path.is_dir()
    assert build_cache(tmp_path / "strokes-1", root, "mini").version == cv.version
