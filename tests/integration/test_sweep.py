"""The tracked sweep for real: `scripts/sweep.py` queues 2 experiments with `dvc exp run --queue`, runs them
with `dvc queue start`, and both experiments' metrics come back from `dvc exp show --json` and into the report."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.emulator import REPO
from tests.integration.test_dvc_repro import commit, exp_metrics, png_ok, run, unactivated_env

pytestmark = pytest.mark.slow

SWEEP = REPO / "scripts" / "sweep.py"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the project (code, dvc.yaml, params.yaml; the repo's venv) on 4 tiny real classes, reproduced."""
    if not (REPO / ".venv" / "bin" / "dvc").exists():
        pytest.skip("no .venv in the repo: run `make venv` first")
    root = tmp_path_factory.mktemp("sweep")
    for name in ("dvc.yaml", "params.yaml", "Makefile", ".gitignore", ".dvcignore", "pyproject.toml"):
        shutil.copy2(REPO / name, root / name)
    (root / ".dvc").mkdir()
    shutil.copy(REPO / ".dvc" / "config", root / ".dvc" / "config")
    shutil.copy(REPO / ".dvc" / ".gitignore", root / ".dvc" / ".gitignore")
    shutil.copytree(REPO / "bin", root / "bin")
    shutil.copytree(REPO / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__"))
    (root / ".venv").symlink_to(REPO / ".venv")
    env = unactivated_env(root)
    params: dict[str, Any] = yaml.safe_load((root / "params.yaml").read_text())
    params["dataset"] = "tiny4"
    params["fetch"].update(source=str(shared_data / "full" / "simplified"), classes="monkey,cat,apple,banana",
                           max_per_class=60)
    params["train"].update(epochs=2, hidden=8, batch_size=32, min_steps=0, max_steps_per_epoch=3, num_threads=1)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init"]):
        run(cmd, root, env)
    run([str(root / ".venv" / "bin" / "dvc"), "repro"], root, env)
    commit(root, env, "baseline")
    return root, env


def test_two_experiment_sweep_round_trip(project: tuple[Path, dict[str, str]]) -> None:
    root, env = project
    py = str(REPO / ".venv" / "bin" / "python")
    queued = run([py, str(SWEEP), "queue", "--arch", "gru,conv-bigru", "--hidden", "6", "--aug", "on",
                  "--prefix", "t"], root, env)
    assert queued.count("dvc exp run --queue") == 2 and "-S train.arch=conv-bigru" in queued
    run([py, str(SWEEP), "run", "--jobs", "1", "--poll", "2"], root, env)

    # read back straight from dvc, not through the script
    shown = subprocess.run([str(root / ".venv" / "bin" / "dvc"), "exp", "show", "--json"], cwd=root, env=env,
                           capture_output=True, text=True, timeout=300, check=True).stdout
    rows = exp_metrics(json.loads(shown))
    names = ["t-gru-h6-augon", "t-conv-bigru-h6-augon"]
    sizes = {}
    for name in names:
        assert name in rows, (name, sorted(rows))
        ev, live = rows[name]["eval/metrics.json"], rows[name]["dvclive/metrics.json"]
        assert ev and 0 <= ev["top1"] <= ev["top3"] <= 1 and 0 <= ev["ece"] <= 1, rows[name]
        assert live["model"]["n_parameters"] > 0 and live["speed"]["train_seq_per_s"] > 0
        assert live["speed"]["wall_seconds"] > 0
        sizes[name] = live["model"]["n_parameters"]
    assert sizes["t-gru-h6-augon"] != sizes["t-conv-bigru-h6-augon"]  # really two different models

    out = run([py, str(SWEEP), "report", "--out", "reports"], root, env)
    records = json.loads((root / "reports" / "sweep.json").read_text())
    assert sorted(r["name"] for r in records) == sorted(names)
    for r in records:
        assert r["aug"] == "on" and r["hidden"] == 6 and r["n_parameters"] == sizes[r["name"]]
        assert r["top1"] == rows[r["name"]]["eval/metrics.json"]["top1"]
    table = (root / "reports" / "sweep.md").read_text()
    lines = [ln for ln in table.splitlines() if ln.startswith("| ")]
    assert len(lines) == 1 + 2 and "top-1" in lines[0] and "conv-bigru" in table  # header + 2 rows
    assert "sweep.png" in out
    png_ok(root / "reports" / "sweep.png")
