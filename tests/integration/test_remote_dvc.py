"""Sharing a built cache through a DVC remote (real dvc, a local-folder remote), as README documents:
build on one machine, `dvc add` + `dvc push`; clone elsewhere, `dvc pull`, and the cache loads and verifies."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from quickdraw.cache import build_cache
from quickdraw.cache.store import open_version
from quickdraw.cache.synthetic import write_synthetic_strokes

DVC = Path(sys.executable).with_name("dvc")


def run(*args: str, cwd: Path) -> str:
    r = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"{args}: {r.stdout}\n{r.stderr}"
    return r.stdout


def files(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_cache_shared_through_a_dvc_remote(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    repo, store, clone = tmp_path / "repo", tmp_path / "store", tmp_path / "clone"
    repo.mkdir()
    run("git", "init", "-q", cwd=repo)
    run("git", "config", "user.email", "t@example.com", cwd=repo)
    run("git", "config", "user.name", "t", cwd=repo)
    run(str(DVC), "init", "-q", cwd=repo)
    run(str(DVC), "config", "core.analytics", "false", cwd=repo)
    strokes = write_synthetic_strokes(tmp_path / "strokes", ["cat", "dog", "apple"], 30, seed=3)
    built = build_cache(strokes, repo / "data" / "cache", "demo")
    # What README says: track the cache folder, add a remote, push.
    run(str(DVC), "add", "-q", "data/cache", cwd=repo)
    run(str(DVC), "remote", "add", "-d", "store", str(store), cwd=repo)
    run("git", "add", "-A", cwd=repo)
    run("git", "commit", "-q", "-m", "cache", cwd=repo)
    run(str(DVC), "push", "-q", cwd=repo)
    assert any(store.rglob("*")), "dvc push wrote nothing to the remote"

    run("git", "clone", "-q", str(repo), str(clone), cwd=tmp_path)
    assert not (clone / "data" / "cache").exists()
    run(str(DVC), "pull", "-q", cwd=clone)
    pulled = clone / "data" / "cache"
    assert files(pulled) == files(repo / "data" / "cache")
    cv = open_version(pulled / "demo" / built.version)
    assert cv.version == built.version
    out = subprocess.run([sys.executable, "-m", "quickdraw", "cache", "verify", "demo", "--root", str(pulled)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
