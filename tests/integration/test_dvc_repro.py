"""The headline: the repo's own dvc.yaml and params.yaml, run for real with `dvc repro` on tiny params."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.emulator import REPO

pytestmark = pytest.mark.slow


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, f"{' '.join(cmd)} failed:\n{p.stdout}\n{p.stderr}"
    return p.stdout + p.stderr


def ran_stages(out: str) -> set[str]:
    return {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage '")}


def png_ok(path: Path) -> None:
    img = np.asarray(Image.open(path).convert("L"))
    assert img.shape[0] > 100 and img.shape[1] > 100, path
    assert img.std() > 5, f"{path} looks blank"


def unactivated_env(root: Path) -> dict[str, str]:
    """The environment of a new user's shell: nothing activated, so PATH holds no venv and no quickdraw."""
    venv_bin = str(REPO / ".venv" / "bin")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "QUICKDRAW_BIN")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p and Path(p).resolve() != Path(venv_bin).resolve()
                                  and not (Path(p) / "quickdraw").exists())
    env["DVC_NO_ANALYTICS"] = "1"
    env["QUICKDRAW_CACHE"] = str(root / "user-cache")  # never touch the real user cache
    return env


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the project as a fresh clone has it, its venv being the repo's own (a symlink)."""
    if not (REPO / ".venv" / "bin" / "dvc").exists():
        pytest.skip("no .venv in the repo: run `make venv` first (make test does)")
    root = tmp_path_factory.mktemp("proj")
    for name in ("dvc.yaml", "params.yaml", "Makefile", ".gitignore", ".dvcignore", "pyproject.toml"):
        shutil.copy2(REPO / name, root / name)  # copy2 keeps pyproject's mtime: make sees the venv as up to date
    (root / ".dvc").mkdir()
    shutil.copy(REPO / ".dvc" / "config", root / ".dvc" / "config")
    shutil.copy(REPO / ".dvc" / ".gitignore", root / ".dvc" / ".gitignore")
    shutil.copytree(REPO / "bin", root / "bin")
    # Stages list their own code as deps by path: give the copy the same source tree.
    shutil.copytree(REPO / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__"))
    (root / ".venv").symlink_to(REPO / ".venv")
    env = unactivated_env(root)
    # `make repro` must not reinstall into the shared venv from this copy (it would point it at the copy).
    if subprocess.run(["make", "-q", "venv"], cwd=root, env=env).returncode != 0:
        pytest.skip("the repo's .venv is older than pyproject.toml: run `make venv` first")
    params: dict[str, Any] = yaml.safe_load((root / "params.yaml").read_text())
    params["dataset"] = "tiny4"
    params["fetch"].update(source=str(shared_data / "full" / "simplified"), classes="monkey,cat,apple,banana", max_per_class=120)
    params["train"].update(epochs=2, hidden=16, batch_size=32, min_steps=0)  # tiny: no epoch stretching
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init"]):
        run(cmd, root, env)
    return root, env


def commit(root: Path, env: dict[str, str], msg: str) -> None:
    run(["git", "add", "-A"], root, env)
    run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", msg], root, env)


def exp_metrics(shown: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``dvc exp show --json`` -> {row name: {metrics file: data}} for the workspace, the commit and each experiment."""
    rows: dict[str, dict[str, Any]] = {}

    def take(name: str, data: dict[str, Any]) -> None:
        rows[name] = {f: (m or {}).get("data") for f, m in (data.get("metrics") or {}).items()}

    for r in shown:
        take(r.get("name") or r["rev"], r["data"])
        for e in r.get("experiments") or []:
            for rev in e.get("revs") or []:
                take(rev.get("name") or rev["rev"], rev["data"])
    return rows


def test_repro_end_to_end(project: tuple[Path, dict[str, str]]) -> None:
    root, env = project
    assert shutil.which("quickdraw", path=env["PATH"]) is None  # the README's shell: nothing activated
    out = run(["make", "repro"], root, env)
    # sketch: the optional Sketch-RNN stage runs too, but disabled it only writes sketch/status.json
    assert ran_stages(out) == {"fetch", "prepare", "cache", "stats", "train", "evaluate", "sketch"}
    for w in ("monkey", "cat", "apple", "banana"):
        assert (root / "data/raw" / w / "_manifest.json").exists()
    assert (root / "data/strokes/_manifest.json").exists()
    assert (root / "data/cache/tiny4/LATEST").exists()
    assert (root / "models/best.pt").exists() and (root / "models/last.pt").exists()
    stats = json.loads((root / "reports/stats.json").read_text())
    assert stats
    m = json.loads((root / "eval/metrics.json").read_text())
    assert 0 <= m["top1"] <= m["top3"] <= 1 and 0 <= m["ece"] <= 1 and m["n"] > 0
    assert set(m["per_class"]) == {"monkey", "cat", "apple", "banana"}
    for png in ("confusion", "per_class_accuracy", "reliability", "confidence_hist"):
        png_ok(root / "eval/plots" / f"{png}.png")
    live = json.loads((root / "dvclive/metrics.json").read_text())
    assert "val" in live or any(k.startswith("val") for k in live)
    # DVC-cached outputs are git-ignored; the small metrics and plots are not, so commits carry them
    ignored = run(["git", "status", "--porcelain", "--ignored"], root, env)
    assert "!! data/" in ignored or "!! data/raw/" in ignored
    for kept in ("eval/metrics.json", "dvclive/metrics.json", "eval/plots/confusion.png", "dvc.lock"):
        assert subprocess.run(["git", "check-ignore", "-q", kept], cwd=root).returncode == 1, kept
    commit(root, env, "repro")

    # a second repro does nothing
    again = run(["make", "repro"], root, env)
    assert ran_stages(again) == set() and "up to date" in again

    # a train param change re-runs only train and evaluate (the venv's dvc called directly, unactivated)
    dvc = str(root / ".venv" / "bin" / "dvc")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"]["hidden"] = 12
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    changed = run([dvc, "repro"], root, env)
    assert ran_stages(changed) == {"train", "evaluate"}
    commit(root, env, "hidden 12")

    # dvc exp run -S works, in the workspace and in a temp copy under .dvc/tmp/exps (bin/quickdraw walks up)
    exp = run([dvc, "exp", "run", "-n", "h8", "-S", "train.hidden=8"], root, env)
    assert ran_stages(exp) == {"train", "evaluate"}
    run([dvc, "exp", "run", "--temp", "-n", "h6", "-S", "train.hidden=6"], root, env)
    shown = subprocess.run([dvc, "exp", "show", "--json"], cwd=root, env=env, capture_output=True, text=True,
                           timeout=300, check=True).stdout
    rows = exp_metrics(json.loads(shown))
    for name in ("workspace", "master", "h8", "h6"):
        assert name in rows, (name, sorted(rows))
        ev, lv = rows[name].get("eval/metrics.json"), rows[name].get("dvclive/metrics.json")
        assert ev and 0 <= ev["top1"] <= ev["top3"] <= 1, (name, rows[name])  # not `!`: the commit holds them
        assert lv and "val" in lv, (name, rows[name])
    diff = run([dvc, "exp", "diff", "master", "h8", "--all"], root, env)  # --all: unchanged metrics too
    assert "eval/metrics.json" in diff and "top1" in diff
    mdiff = run([dvc, "metrics", "diff", "HEAD~1", "--json"], root, env)
    assert "eval/metrics.json" in mdiff
    run([dvc, "plots", "diff", "master", "h8", "-o", str(root / "plots-diff")], root, env)
    assert (root / "plots-diff" / "index.html").exists()


def test_wrapper_without_any_install_says_what_to_do(tmp_path: Path) -> None:
    """bin/quickdraw with no .venv above it and no quickdraw on PATH: one line saying how to install."""
    shutil.copytree(REPO / "bin", tmp_path / "bin")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    p = subprocess.run([str(tmp_path / "bin" / "quickdraw"), "--help"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 127
    assert p.stderr.count("\n") == 1 and "make venv" in p.stderr and "pip install -e ." in p.stderr
