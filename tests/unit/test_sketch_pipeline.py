"""The Sketch-RNN stage library: params, normalisation, ownership of --out, the disabled stage, evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from quickdraw.cache import build_cache
from quickdraw.cache.synthetic import write_synthetic_strokes
from quickdraw.datasets import load
from quickdraw.errors import OwnershipError
from quickdraw.pipeline.sketch import (
    ParamError,
    SketchParams,
    evaluate,
    load_sketch_params,
    run_stage,
    select_classes,
    train,
    train_scale,
)

TINY = {"hidden": 16, "num_mixture": 3, "steps": 6, "eval_every": 3, "batch_size": 8}


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("sketch")
    strokes = write_synthetic_strokes(tmp / "strokes", ("cat", "dog"), 40, seed=3, max_len=30)
    build_cache(strokes, tmp / "cache", "syn")
    return tmp / "cache"


def test_params_from_yaml_and_set(tmp_path: Path) -> None:
    f = tmp_path / "params.yaml"
    f.write_text("seed: 7\nsketch:\n  enabled: true\n  classes: [cat, dog]\n  hidden: 64\n  lr: 1e-3\n")
    p = load_sketch_params(f, ["sketch.steps=12", "temperature=0.2"])
    assert (p.enabled, p.classes, p.hidden, p.lr, p.steps, p.temperature, p.seed) == \
        (True, "cat,dog", 64, 0.001, 12, 0.2, 7)
    assert load_sketch_params(None).enabled is False  # off unless enabled


@pytest.mark.parametrize("item, msg", [
    ("hiden=3", "unknown sketch param 'hiden' (from --set hiden=3); did you mean 'hidden'?"),
    ("hidden=0", "invalid sketch.hidden = 0 (from --set hidden=0): expected an integer with 1 <= value <= 4096"),
    ("enabled=yes please", "invalid sketch.enabled = 'yes please'"),
    ("temperature=0", "invalid sketch.temperature = 0"),
    ("lr_decay=1.5", "invalid sketch.lr_decay = 1.5"),
    ("classes=[]", "invalid sketch.classes = []"),
    ("device=tpu", "invalid sketch.device = 'tpu'"),
])
def test_bad_params_are_one_line_errors(item: str, msg: str) -> None:
    with pytest.raises(ParamError) as exc:
        load_sketch_params(None, [item])
    assert msg in str(exc.value) and "\n" not in str(exc.value)


def test_train_scale_is_the_std_of_real_offsets(cache_root: Path) -> None:
    ds = load("syn", split="train", format="stroke5", root=cache_root)
    idx = np.flatnonzero(np.asarray(ds.labels) == 0)
    rows = np.concatenate([np.asarray(ds[int(i)][0]) for i in idx])
    expect = rows[rows[:, 4] == 0, :2].astype(np.float64).std()
    assert train_scale(ds, idx, chunk=7) == pytest.approx(expect, rel=1e-12)


def test_select_classes(cache_root: Path) -> None:
    ds = load("syn", split="train", format="stroke5", root=cache_root)
    assert select_classes(ds, None) == ["cat", "dog"]
    assert select_classes(ds, "dog, cat") == ["dog", "cat"]
    with pytest.raises(ParamError, match="'dgo' is not in cache syn/.*did you mean dog"):
        select_classes(ds, "dgo")


def test_train_writes_checkpoints_metrics_and_refuses_foreign_folders(cache_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "sk"
    r = train("syn", out, params=SketchParams(**TINY), classes="cat", root=cache_root)
    assert r.steps == 6 and r.classes == ["cat"] and len(r.history) == 2
    assert {p.name for p in out.iterdir()} >= {"sketch.pt", "last.pt", "metrics.json"}
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["steps"] == 6 and doc["scale"] == pytest.approx(r.scale)
    # Re-running into its own folder is fine; a folder holding a user's file is refused.
    train("syn", out, params=SketchParams(**TINY), classes="cat", root=cache_root)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(OwnershipError, match="not created by quickdraw"):
        train("syn", mine, params=SketchParams(**TINY), root=cache_root)
    assert (mine / "notes.txt").read_text() == "keep me"
    # A bad class name is found before any output folder is made.
    with pytest.raises(ParamError, match="not in cache"):
        train("syn", tmp_path / "never", params=SketchParams(**TINY), classes="zebra", root=cache_root)
    assert not (tmp_path / "never").exists()


def test_evaluate_beats_the_untrained_model_after_training(cache_root: Path, tmp_path: Path) -> None:
    r = train("syn", tmp_path / "sk", params=SketchParams(**{**TINY, "steps": 60, "eval_every": 60, "lr": 0.01}),
              classes="cat", root=cache_root)
    doc = evaluate(r.checkpoint, "syn", split="test", root=cache_root)
    assert doc["classes"] == ["cat"] and doc["sequences"] > 0
    for key in ("model", "untrained", "marginal"):
        assert set(doc[key]) >= {"nll", "offset_nll", "pen_ce"}
        assert doc[key]["nll"] == pytest.approx(doc[key]["offset_nll"] + doc[key]["pen_ce"], rel=1e-6)
        assert doc[key]["steps"] == doc["model"]["steps"]
        # Noise on the integer offsets moves the number a little, not a lot (no spikes on integers to lose).
        assert doc[key]["nll_dequantized"] != doc[key]["nll"]
        assert abs(doc[key]["nll_dequantized"] - doc[key]["nll"]) < 0.5
    assert doc["model"]["nll"] < doc["untrained"]["nll"]


def test_disabled_stage_only_writes_its_status(tmp_path: Path) -> None:
    out = tmp_path / "stage"
    # No cache is read when disabled: the name need not even exist.
    status = run_stage("no-such-cache", out, params=SketchParams(), root=tmp_path / "nothing")
    assert status["enabled"] is False
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".quickdraw")) == ["status.json"]
    assert json.loads((out / "status.json").read_text())["enabled"] is False


def test_enabled_stage_trains_and_draws(cache_root: Path, tmp_path: Path) -> None:
    from PIL import Image

    out = tmp_path / "stage"
    status = run_stage("syn", out, params=SketchParams(enabled=True, sample_n=4, max_len=40, **TINY), root=cache_root)
    assert status["enabled"] is True and status["n"] == 4
    img = np.asarray(Image.open(out / "samples.png").convert("L"))
    assert img.std() > 3
