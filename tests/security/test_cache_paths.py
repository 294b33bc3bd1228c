"""Containment of the paths a cache manifest names, and cache names (issue 12).

Before: ``cache verify`` opened whatever a manifest's ``files`` named: ``../../../../dev/zero`` hashed zeros
forever, an absolute path was read and hashed from anywhere, a FIFO blocked forever, a symlink out of the
version was followed; ``build_cache(..., "foo\\n")`` was accepted (``$`` matches before a trailing newline).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import quickdraw
from quickdraw.cache import build_cache, resolve, verify
from quickdraw.cache.store import open_version
from quickdraw.cli.app import app
from quickdraw.errors import CacheError
from tests.security._cache_helpers import rewrite_manifest, run_cli, small_cache

runner = CliRunner()


def _add_entry(cv_path: Path, rel: str, size: int) -> None:
    rewrite_manifest(cv_path, lambda m: m["files"].__setitem__(rel, {"size": size, "xxh3_128": "0" * 32}))


@pytest.mark.parametrize("entry", ["../../../../../../../../dev/zero", "/dev/zero"])
def test_verify_refuses_a_device_entry_quickly(tmp_path: Path, entry: str) -> None:
    cv = small_cache(tmp_path)
    _add_entry(cv.path, entry, 0)  # size 0 matches what stat says of /dev/zero: the old code then read it forever
    t0 = time.monotonic()
    res = run_cli("cache", "verify", str(cv.path), timeout=60)
    assert time.monotonic() - t0 < 60
    assert res.returncode == 2, res.stdout + res.stderr
    err = res.stderr.replace("\n", "")
    assert "Traceback" not in err and "dev/zero" in err
    assert "outside its folder" in err or "absolute" in err


def test_verify_refuses_an_absolute_entry_instead_of_hashing_it(tmp_path: Path) -> None:
    cv = small_cache(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("the user's private file\n")
    _add_entry(cv.path, str(secret), secret.stat().st_size)
    res = runner.invoke(app, ["cache", "verify", str(cv.path)])
    assert res.exit_code == 2 and "absolute" in res.output and "Traceback" not in res.output
    with pytest.raises(CacheError, match="absolute"):
        quickdraw.load(cv.path)


def test_verify_never_opens_a_fifo_entry(tmp_path: Path) -> None:
    cv = small_cache(tmp_path)
    os.mkfifo(cv.path / "stroke3" / "pipe")
    _add_entry(cv.path, "stroke3/pipe", 0)
    res = run_cli("cache", "verify", str(cv.path), timeout=60)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "stroke3/pipe" in res.stderr and "FIFO" in res.stderr.replace("\n", "")


def test_a_symlink_out_of_the_version_is_refused(tmp_path: Path) -> None:
    cv = small_cache(tmp_path)
    target = cv.path / "stroke3" / "train" / "labels.npy"
    outside = tmp_path / "elsewhere.npy"
    outside.write_bytes(target.read_bytes())  # same bytes: size and checksum still match the manifest
    target.unlink()
    target.symlink_to(outside)
    report = verify(cv)
    assert [(p.file, p.reason) for p in report.problems] == [("stroke3/train/labels.npy", "unsafe")]
    with pytest.raises(CacheError, match="outside its folder"):
        quickdraw.load(cv.path, split="train")


def test_dotdot_entry_is_a_malformed_manifest_for_every_reader(tmp_path: Path) -> None:
    cv = small_cache(tmp_path)
    (tmp_path / "cache" / "victim.npy").write_bytes(b"x")
    _add_entry(cv.path, "../victim.npy", 1)
    for call in (lambda: open_version(cv.path), lambda: quickdraw.load(cv.path), lambda: verify(cv.path)):
        with pytest.raises(CacheError, match=r"'\.\./victim\.npy' is outside its folder"):
            call()


@pytest.mark.parametrize("name", ["foo\n", "foo\nbar", "../evil", "a/b", ".quickdraw-cache", "x" * 300])
def test_cache_names_are_matched_whole(tmp_path: Path, name: str) -> None:
    cv = small_cache(tmp_path)
    strokes = tmp_path / "strokes-1"
    with pytest.raises(CacheError, match="invalid cache name"):
        build_cache(strokes, tmp_path / "c2", name)
    assert not (tmp_path / "c2" / name).exists()
    with pytest.raises(CacheError):
        resolve(name, root=tmp_path / "cache")
    assert cv.path.is_dir()


@pytest.mark.parametrize("state", ["LATEST", "PINNED"])
def test_a_fifo_in_place_of_a_state_file_is_a_named_error_not_a_hang(tmp_path: Path, state: str) -> None:
    cv = small_cache(tmp_path)
    p = cv.path.parent / state
    p.unlink(missing_ok=True)
    os.mkfifo(p)
    cmd = ["cache", "gc", "--root", str(tmp_path / "cache")] if state == "PINNED" else ["cache", "ls", "--root",
                                                                                     str(tmp_path / "cache")]
    res = run_cli(*cmd, timeout=60)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "FIFO" in res.stderr and "Traceback" not in res.stderr
