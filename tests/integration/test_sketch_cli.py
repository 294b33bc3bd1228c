"""`quickdraw sketch` through the CLI: train a few steps on a synthetic cache, sample a PNG that is not blank."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from quickdraw.cache import build_cache
from quickdraw.cache.synthetic import write_synthetic_strokes
from quickdraw.cli.app import app

TINY = ["--set", "hidden=16", "--set", "num_mixture=3", "--set", "steps=8", "--set", "eval_every=4",
        "--set", "batch_size=8"]


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("sketchcli")
    strokes = write_synthetic_strokes(tmp / "strokes", ("cat", "dog"), 30, seed=5, max_len=30)
    build_cache(strokes, tmp / "cache", "syn")
    return tmp / "cache"


def invoke(args: list[str]) -> tuple[int, str, str]:
    r = CliRunner().invoke(app, args)
    return r.exit_code, r.stdout, r.stderr


def test_train_then_sample_a_png_that_is_not_blank(cache_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "models"
    code, stdout, stderr = invoke(["sketch", "train", "--cache", "syn", "--cache-root", str(cache_root),
                                   "--classes", "cat", "--out", str(out), "--json", *TINY])
    assert code == 0, stderr
    doc = json.loads(stdout)
    assert doc["steps"] == 8 and doc["classes"] == ["cat"]
    assert "━" not in stderr  # stderr is not a terminal here: no progress bar
    ckpt = out / "sketch.pt"
    assert ckpt.is_file()

    grid, gif = tmp_path / "grid.png", tmp_path / "grid.gif"
    code, stdout, stderr = invoke(["sketch", "sample", "--checkpoint", str(ckpt), "--n", "9", "--temperature", "0.4",
                                   "--out", str(grid), "--animate", str(gif), "--max-len", "60", "--json"])
    assert code == 0, stderr
    doc = json.loads(stdout)
    assert doc["n"] == 9 and doc["classes"] == ["cat"] and len(doc["steps"]) == 9
    img = np.asarray(Image.open(grid).convert("L"))
    assert img.shape == (3 * 128, 3 * 128)
    assert img.std() > 3 and (img < 128).sum() > 50, "the grid looks blank"
    assert Image.open(gif).n_frames > 2
    # The same seed draws the same grid; an existing file is not replaced without --overwrite.
    code, _, stderr = invoke(["sketch", "sample", "--checkpoint", str(ckpt), "--n", "9", "--out", str(grid),
                              "--max-len", "60"])
    assert code == 2 and "already exists" in stderr and "Traceback" not in stderr
    again = tmp_path / "again.png"
    assert invoke(["sketch", "sample", "--checkpoint", str(ckpt), "--n", "9", "--out", str(again), "--max-len", "60",
                   "--temperature", "0.4"])[0] == 0
    assert again.read_bytes() == grid.read_bytes()

    code, stdout, stderr = invoke(["sketch", "evaluate", "--checkpoint", str(ckpt), "--cache", "syn",
                                   "--cache-root", str(cache_root), "--json"])
    assert code == 0, stderr
    ev = json.loads(stdout)
    assert {"model", "untrained", "marginal"} <= set(ev)


@pytest.mark.parametrize("args, msg", [
    (["sketch", "train", "--cache", "syn", "--classes", "caat"], "class 'caat' is not in cache syn"),
    (["sketch", "train", "--cache", "syn", "--set", "steps=-1"], "invalid sketch.steps = -1"),
    (["sketch", "train", "--cache", "nope"], "nope"),
    (["sketch", "sample", "--checkpoint", "missing.pt", "--out", "x.png"], "checkpoint not found: missing.pt"),
    (["sketch", "sample", "--checkpoint", "x.pt", "--out", "x.jpg"], "x.jpg: expected .png or .svg"),
    (["sketch", "sample", "--checkpoint", "x.pt", "--out", "x.png", "--temperature", "-1"],
     "invalid sketch.temperature = -1.0 (--temperature)"),
    (["sketch", "sample", "--checkpoint", "x.pt", "--out", "x.png", "--n", "0"], "invalid sketch.sample_n = 0 (--n)"),
])
def test_bad_input_is_one_line_and_exit_2(args: list[str], msg: str, cache_root: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, stderr = invoke([*args, *(["--cache-root", str(cache_root), "--out", str(tmp_path / "o")]
                                       if args[1] == "train" else [])])
    assert code == 2, stderr
    assert msg in stderr and "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr


def test_a_classifier_checkpoint_is_refused_by_name(tmp_path: Path) -> None:
    import torch

    from quickdraw.models import GRUClassifier, ModelConfig, save_checkpoint

    p = save_checkpoint(tmp_path / "best.pt", GRUClassifier(ModelConfig(n_classes=2, hidden=4, layers=1)),
                        classes=["a", "b"])
    code, _, stderr = invoke(["sketch", "sample", "--checkpoint", str(p), "--out", str(tmp_path / "g.png")])
    assert code == 2 and "not a Sketch-RNN checkpoint" in stderr and "classifier" in stderr
    del torch


def test_stage_disabled_by_default(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("seed: 0\nsketch:\n  enabled: false\n  classes: cat\n")
    out = tmp_path / "sketch"
    code, stdout, stderr = invoke(["sketch", "stage", "--cache", "whatever", "--out", str(out), "--params", str(params),
                                   "--json"])
    assert code == 0, stderr
    assert json.loads(stdout)["enabled"] is False
    assert json.loads((out / "status.json").read_text())["enabled"] is False


def test_progress_bar_only_for_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from quickdraw.cli.sketch import _progress_wanted

    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    assert not _progress_wanted(False, False)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert _progress_wanted(False, False)
    assert not _progress_wanted(True, False) and not _progress_wanted(False, True)
