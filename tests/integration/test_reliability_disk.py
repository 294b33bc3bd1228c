"""A full disk (RLIMIT_FSIZE in a subprocess) and unwritable outputs: one clear line, exit 2, nothing half-written.

Tests run as root, so chmod cannot make a directory read-only here; an output path *under a regular file*
fails for root too (ENOTDIR), and RLIMIT_FSIZE makes every write past the limit fail with EFBIG, which is
how ENOSPC looks to the code (a failed write with no file name attached).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from quickdraw.cache import list_versions
from tests.integration.test_fetch import synthetic_ndjson

WORDS = ("cat", "dog")


def dir_bytes(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def cli(*args: str, fsize: int | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return subprocess.run([sys.executable, "-m", "quickdraw.cli.app", *args], preexec_fn=limit, capture_output=True,
                          text=True, timeout=120, cwd=cwd, env={**os.environ, "COLUMNS": "400"})


def visible_files(d: Path) -> list[str]:
    """Files a reader could pick up: anything not hidden and not a temp file."""
    return sorted(p.relative_to(d).as_posix() for p in d.rglob("*")
                  if p.is_file() and not p.name.endswith(".incomplete") and not any(x.startswith(".") for x in p.relative_to(d).parts))


def assert_clean_failure(res: subprocess.CompletedProcess[str], path: Path) -> None:
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    assert "cannot write" in res.stderr and str(path) in res.stderr, res.stderr


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for i, w in enumerate(WORDS):
        (src / f"{w}.ndjson").write_bytes(synthetic_ndjson(1500, word=w, seed=i))
    return src


@pytest.fixture(scope="module")
def clean(source: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clean")
    assert cli("fetch", "--classes", ",".join(WORDS), "--source", str(source), "--out", str(d / "raw")).returncode == 0
    assert cli("prepare", "--in", str(d / "raw"), "--out", str(d / "strokes")).returncode == 0
    assert cli("cache", "build", "--in", str(d / "strokes"), "--name", "mini", "--root", str(d / "cache")).returncode == 0
    return {"raw": d / "raw", "strokes": d / "strokes", "cache": d / "cache"}


def test_fetch_disk_full_then_resume(source: Path, clean: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "raw"
    res = cli("fetch", "--classes", ",".join(WORDS), "--source", str(source), "--out", str(out), "-j", "1", fsize=40_000)
    assert_clean_failure(res, out)
    assert "File too large" in res.stderr
    assert not list(out.rglob("*.incomplete")), "a half-written temp file was left behind"
    complete = [d.name for d in out.iterdir() if (d / "_manifest.json").exists()]
    assert set(complete) < set(WORDS)
    res = cli("fetch", "--classes", ",".join(WORDS), "--source", str(source), "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert dir_bytes(out) == dir_bytes(clean["raw"])


def test_prepare_disk_full_leaves_no_complete_looking_output(clean: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "strokes"
    res = cli("prepare", "--in", str(clean["raw"]), "--out", str(out), fsize=30_000)
    assert_clean_failure(res, out)
    assert not (out / "_manifest.json").exists()
    assert not [f for f in visible_files(out) if f.endswith(".parquet")], visible_files(out)
    stats = cli("stats", str(out))
    assert stats.returncode == 2 and "Traceback" not in stats.stderr
    build = cli("cache", "build", "--in", str(out), "--name", "mini", "--root", str(tmp_path / "c"))
    assert build.returncode == 2 and "_manifest.json" in build.stderr
    assert cli("prepare", "--in", str(clean["raw"]), "--out", str(out)).returncode == 0
    assert dir_bytes(out) == dir_bytes(clean["strokes"])


def test_cache_build_disk_full_leaves_no_version(clean: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "cache"
    res = cli("cache", "build", "--in", str(clean["strokes"]), "--name", "mini", "--root", str(root), fsize=20_000)
    assert_clean_failure(res, root / "mini")
    assert list_versions("mini", root) == []
    assert not list((root / "mini").glob(".tmp-*")) and not (root / "mini" / "LATEST").exists()
    ls = cli("cache", "ls", "--root", str(root), "--json")
    assert ls.returncode == 0 and '"datasets": []' in ls.stdout
    assert cli("cache", "build", "--in", str(clean["strokes"]), "--name", "mini", "--root", str(root)).returncode == 0
    assert dir_bytes(root / "mini") == dir_bytes(clean["cache"] / "mini")


def test_output_under_a_file_is_a_clear_error(source: Path, clean: dict[str, Path], tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    for args, path in [
        (("fetch", "--classes", "cat", "--source", str(source), "--out", str(blocker / "raw")), blocker / "raw"),
        (("prepare", "--in", str(clean["raw"]), "--out", str(blocker / "strokes")), blocker / "strokes"),
        (("cache", "build", "--in", str(clean["strokes"]), "--name", "mini", "--root", str(blocker / "c")), blocker / "c"),
    ]:
        res = cli(*args)
        assert res.returncode == 2, (args, res.stderr)
        assert "Traceback" not in res.stderr and "Not a directory" in res.stderr
        assert str(blocker) in res.stderr, res.stderr
