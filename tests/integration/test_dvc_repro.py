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


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("proj")
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(REPO / name, root / name)
    (root / ".dvc").mkdir()
    shutil.copy(REPO / ".dvc" / "config", root / ".dvc" / "config")
    shutil.copy(REPO / ".dvc" / ".gitignore", root / ".dvc" / ".gitignore")
    # Stages list their own code as deps by path: give the copy the same source tree.
    shutil.copytree(REPO / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__"))
    params: dict[str, Any] = yaml.safe_load((root / "params.yaml").read_text())
    params["dataset"] = "tiny4"
    params["fetch"].update(source=str(shared_data / "full" / "simplified"), classes="monkey,cat,apple,banana", max_per_class=120)
    params["train"].update(epochs=2, hidden=16, batch_size=32, warmup_steps=5, patience=2)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env["PATH"]
    env["DVC_NO_ANALYTICS"] = "1"
    env["QUICKDRAW_CACHE"] = str(root / "user-cache")  # never touch the real user cache
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init"]):
        run(cmd, root, env)
    return root, env


def test_repro_end_to_end(project: tuple[Path, dict[str, str]]) -> None:
    root, env = project
    out = run(["dvc", "repro"], root, env)
    assert ran_stages(out) == {"fetch", "prepare", "cache", "stats", "train", "evaluate"}
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
    # dvc-tracked outputs are git-ignored
    ignored = run(["git", "status", "--porcelain", "--ignored"], root, env)
    assert "!! data/" in ignored or "!! data/raw/" in ignored

    # a second repro does nothing
    again = run(["dvc", "repro"], root, env)
    assert ran_stages(again) == set() and "up to date" in again

    # a train param change re-runs only train and evaluate
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"]["hidden"] = 12
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    changed = run(["dvc", "repro"], root, env)
    assert ran_stages(changed) == {"train", "evaluate"}
    run(["git", "add", "-A"], root, env)
    run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "hidden 12"], root, env)

    # dvc exp run -S works
    exp = run(["dvc", "exp", "run", "-S", "train.hidden=8"], root, env)
    assert ran_stages(exp) == {"train", "evaluate"}
    shown = run(["dvc", "exp", "show", "--json"], root, env)
    assert "train.hidden" in shown or '"hidden": 8' in shown
