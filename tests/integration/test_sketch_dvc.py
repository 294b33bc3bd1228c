"""The optional `sketch` DVC stage, run for real with `dvc repro` on the repo's own dvc.yaml and tiny params:
off by default (cheap, writes only sketch/status.json), on when params.yaml enables it, off again cleanly."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.emulator import REPO
from tests.integration.test_dvc_repro import png_ok, ran_stages, run, unactivated_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> tuple[Path, dict[str, str]]:
    if not (REPO / ".venv" / "bin" / "dvc").exists():
        pytest.skip("no .venv in the repo: run `make venv` first")
    root = tmp_path_factory.mktemp("sketchproj")
    for name in ("dvc.yaml", "params.yaml", ".gitignore", ".dvcignore"):
        shutil.copy2(REPO / name, root / name)
    (root / ".dvc").mkdir()
    shutil.copy(REPO / ".dvc" / "config", root / ".dvc" / "config")
    shutil.copytree(REPO / "bin", root / "bin")
    shutil.copytree(REPO / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__"))
    (root / ".venv").symlink_to(REPO / ".venv")
    env = unactivated_env(root)
    params: dict[str, Any] = yaml.safe_load((root / "params.yaml").read_text())
    params["dataset"] = "tiny2"
    params["fetch"].update(source=str(shared_data / "full" / "simplified"), classes="monkey,cat", max_per_class=60)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init"]):
        run(cmd, root, env)
    return root, env


def _set_sketch(root: Path, **values: Any) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["sketch"].update(values)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if not p.name.startswith(".quickdraw")}


def test_sketch_stage_off_on_off(project: tuple[Path, dict[str, str]]) -> None:
    root, env = project
    dvc = str(root / ".venv" / "bin" / "dvc")
    # Off (the shipped params.yaml): the stage runs, writes only its status, and fails nothing.
    assert yaml.safe_load((root / "params.yaml").read_text())["sketch"]["enabled"] is False
    out = run([dvc, "repro", "sketch"], root, env)
    assert ran_stages(out) == {"fetch", "prepare", "cache", "sketch"}
    assert _files(root / "sketch") == {"status.json"}
    assert json.loads((root / "sketch/status.json").read_text())["enabled"] is False
    assert ran_stages(run([dvc, "repro", "sketch"], root, env)) == set()  # up to date: nothing re-runs

    # On, with tiny params: only the sketch stage re-runs, and it trains and draws a grid that is not blank.
    _set_sketch(root, enabled=True, classes="monkey", hidden=16, num_mixture=3, steps=12, eval_every=6,
                batch_size=16, sample_n=4, max_len=80)
    out = run([dvc, "repro", "sketch"], root, env)
    assert ran_stages(out) == {"sketch"}
    assert _files(root / "sketch") == {"status.json", "sketch.pt", "last.pt", "metrics.json", "samples.png"}
    status = json.loads((root / "sketch/status.json").read_text())
    assert status["enabled"] is True and status["classes"] == ["monkey"] and status["steps"] == 12
    png_ok(root / "sketch/samples.png")
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    assert lock["stages"]["sketch"]["params"]["params.yaml"]["sketch"]["enabled"] is True
    # DVC caches the output: it is git-ignored like data/ and models/.
    assert subprocess.run(["git", "check-ignore", "-q", "sketch"], cwd=root).returncode == 0

    # Off again: DVC removes the old outputs before the command, so only the status is left.
    _set_sketch(root, enabled=False)
    assert ran_stages(run([dvc, "repro", "sketch"], root, env)) == {"sketch"}
    assert _files(root / "sketch") == {"status.json"}
