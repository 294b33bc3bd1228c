"""stroke3t = (dx, dy, dt, pen_lift) from raw drawings: the encoder, then raw fetch -> prepare -> cache ->
loader -> a 1-epoch train. Reads the shared raw drawings directly (nothing of them is committed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import quickdraw as qd
from quickdraw.cache import build_cache
from quickdraw.pipeline.fetch import FetchOptions, fetch
from quickdraw.pipeline.prepare import PrepareError, prepare
from quickdraw.strokes import DT_CLIP_MS, apply_length_rules, stroke3t_from_points

CLASSES = ["stairs", "peanut", "hexagon", "octagon", "cat", "apple"]


def test_encoder_and_length_rules() -> None:
    b = stroke3t_from_points([10, 12, 0, 5], [5, 5, 0, 5], [100, 140, 30, 99_000.4], [2, 1, 1], [2, 1])
    assert b.steps.tolist() == [[10, 5, 0, 0], [2, 0, 40, 1], [-12, -5, 0, 1],  # a clock running backwards: 0
                                [5, 5, 0, 1]]  # a new drawing: relative to (0, 0), dt 0
    assert b.offsets.tolist() == [0, 3, 4]
    assert stroke3t_from_points([0, 1], [0, 0], [0, 50_000], [2], [1]).steps[1, 2] == DT_CLIP_MS
    # truncation lifts the pen in the last column, leaving dt alone
    r = apply_length_rules(b, min_len=1, max_len=2)
    assert r.batch.steps.tolist() == [[10, 5, 0, 0], [2, 0, 40, 1], [5, 5, 0, 1]] and r.n_truncated == 1
    r = apply_length_rules(stroke3t_from_points([0, 1, 2], [0, 0, 0], [0, 7, 9], [3], [1]), min_len=1, max_len=2)
    assert r.batch.steps.tolist() == [[0, 0, 0, 0], [1, 0, 7, 1]]


@pytest.fixture(scope="module")
def built(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("s3t")
    src = str(shared_data / "full" / "raw")
    fetch(CLASSES, base / "raw", FetchOptions(source=src, format="raw"))
    fetch(CLASSES, base / "simple", FetchOptions(source=src, format="raw", simplify=True))
    prepare(base / "raw", base / "strokes", classes=CLASSES, formats=["stroke3", "stroke3t"], max_len=400)
    prepare(base / "simple", base / "strokes_s", classes=CLASSES, formats=["stroke3"], max_len=400)
    build_cache(base / "strokes", base / "cache", "timed")
    return {"base": base, "cache": base / "cache" / "timed", "strokes": base / "strokes", "simple": base / "strokes_s"}


def test_prepare_and_cache_carry_time(built: dict[str, Path]) -> None:
    ds = qd.load(built["cache"], split="train", format="stroke3t")
    assert ds.channels == 4 and len(ds) > 10
    assert ds.cache.manifest["formats"]["stroke3t"]["channels"] == 4
    steps, offsets, _ = ds.to_numpy()
    assert steps.shape[1] == 4 and steps[:, 2].min() >= 0 and steps[:, 2].max() <= DT_CLIP_MS
    assert set(np.unique(steps[:, 3]).tolist()) == {0, 1}
    assert (steps[offsets[:-1], 2] == 0).all()  # every drawing starts at dt 0
    assert steps[:, 2].mean() > 5  # real timing, not zeros
    # stroke3 from raw input is stroke3t without dt, and the same as fetch --simplify's stroke3
    s3 = qd.load(built["cache"], split="train", format="stroke3")
    assert np.array_equal(np.asarray(s3.to_numpy()[0]), np.asarray(steps)[:, [0, 1, 3]])
    a = pq.read_table(built["strokes"] / "stroke3" / "train").sort_by("key_id")
    b = pq.read_table(built["simple"] / "stroke3" / "train").sort_by("key_id")
    assert a.column("key_id").equals(b.column("key_id"))
    # float32 coordinates (the raw variant) change a rare rounding or RDP choice: 3,114 against 3,131 of the
    # 3,132 shared pairs identical to Google's (sources.raw.drawings_to_steps)
    same = np.mean([u == v for u, v in zip(a.column("sequence").to_pylist(), b.column("sequence").to_pylist())])
    assert same >= 0.98
    x, label = ds[0]
    assert x.shape[1] == 4 and ds.classes[label] in CLASSES


def test_stroke3t_from_simplified_input_is_refused(built: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(PrepareError, match="--format raw"):
        prepare(built["base"] / "simple", tmp_path / "o", classes=CLASSES, formats=["stroke3t"])


def test_train_evaluate_on_stroke3t_through_the_cli(built: dict[str, Path], tmp_path: Path) -> None:
    """`train --set train.format=stroke3t` trains a 4-input model on the timed sequences (dt scaled by its own
    std), evaluate reads the same format back from the model, and predict/serve refuse it in one line
    (simplified ndjson has no timing to feed it)."""
    import json

    import torch
    from typer.testing import CliRunner

    from quickdraw.cli.app import app
    from quickdraw.models import load_checkpoint

    cache, root = built["cache"], built["cache"].parent
    out = tmp_path / "model"
    r = CliRunner().invoke(app, [
        "train", "--cache", "timed", "--cache-root", str(root), "--out", str(out), "--live-dir", str(tmp_path / "live"),
        "--quiet", "--set", "train.format=stroke3t", "--set", "hidden=8", "--set", "epochs=1", "--set", "min_steps=0",
        "--set", "batch_size=16", "--set", "max_steps_per_epoch=3", "--set", "seed=3"])
    assert r.exit_code == 0, r.output
    model, info = load_checkpoint(out / "best.pt")
    assert model.config.input_size == 4 and model.config.dt_scale > 1  # ms: a std of tens to hundreds
    steps = np.asarray(qd.load(cache, split="train", format="stroke3t").to_numpy()[0])
    assert abs(model.config.dt_scale - steps[:, 2].std()) / steps[:, 2].std() < 0.5  # from a sample of train
    assert model.input_scale.tolist()[2:] == [pytest.approx(model.config.dt_scale), 1.0]  # the pen stays 0/1
    # The model really reads the time column: changing only dt changes its output.
    x = torch.as_tensor(steps[:40][None].astype(np.float32))
    y = x.clone()
    y[..., 2] += 500
    lengths = torch.tensor([40])
    with torch.no_grad():
        assert not torch.allclose(model(x, lengths), model(y, lengths))
    r = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(out / "best.pt"), "--cache", str(cache),
                                 "--split", "test", "--out", str(tmp_path / "eval")])
    assert r.exit_code == 0, r.output
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["n"] == len(qd.load(cache, split="test", format="stroke3t"))
    line = json.dumps({"drawing": [[[0, 10, 20], [0, 5, 9]]]})
    r = CliRunner().invoke(app, ["predict", "--checkpoint", str(out / "best.pt"), "-"], input=line + "\n")
    assert r.exit_code == 2 and "stroke3t" in r.output and "quickdraw evaluate" in r.output, r.output
    # augmentation reads column 2 as the pen: refused with stroke3t rather than corrupting the time
    r = CliRunner().invoke(app, ["train", "--cache", "timed", "--cache-root", str(root), "--out", str(tmp_path / "m2"),
                                 "--set", "train.format=stroke3t", "--set", "aug_rotate=10"])
    assert r.exit_code == 2 and "augmentation applies to stroke3 only" in r.output, r.output
