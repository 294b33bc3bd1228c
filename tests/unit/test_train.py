"""Training loop, checkpoints, evaluation outputs, prediction and the three CLI commands, on tiny data.

The data come from a small in-test stand-in with the ``SequenceDataset`` attributes training uses
(``lengths``, ``labels``, ``classes``, ``ds[i]``, ``batch(indices)``) and three easily separable classes.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from quickdraw.cli.app import app
from quickdraw.models import load_checkpoint
from quickdraw import strokes
from quickdraw.errors import CacheError, QuickDrawError
from quickdraw.pipeline import evaluate as evaluate_mod
from quickdraw.pipeline import predict as predict_mod
from quickdraw.pipeline import train as train_mod
from quickdraw.pipeline.evaluate import evaluate_on, locate_cache
from quickdraw.pipeline.predict import LengthRules, predict_records, read_ndjson
from quickdraw.pipeline.train import TrainParams, load_params, train_on

# Tiny models gain nothing from threads and the machine is shared (fixture in tests/conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")

CLASSES = ["circle", "line", "zigzag"]


class StandIn:
    """A split of stroke-3 sequences in CSR form (what ``quickdraw.load`` returns, minus the files)."""

    def __init__(self, n_per_class: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        seqs, labels = [], []
        for c in range(len(CLASSES)):
            for _ in range(n_per_class):
                seqs.append(_shape(c, int(rng.integers(6, 40)), rng))
                labels.append(c)
        self.classes = list(CLASSES)
        self.lengths = np.array([len(s) for s in seqs], np.int32)
        self.labels = np.array(labels, np.int32)
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)]).astype(np.int64)
        self.steps = np.concatenate(seqs)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return self.steps[self.offsets[i] : self.offsets[i + 1]], int(self.labels[i])

    def batch(self, indices: Any) -> dict[str, np.ndarray]:
        idx = np.asarray(indices)
        lengths = self.lengths[idx].astype(np.int64)
        x = np.zeros((len(idx), int(lengths.max()), 3), np.float32)
        for r, i in enumerate(idx):
            x[r, : lengths[r]] = self[i][0]
        return {"x": x, "lengths": lengths, "labels": self.labels[idx].astype(np.int64)}


def _shape(c: int, n: int, rng: np.random.Generator) -> np.ndarray:
    s = np.zeros((n, 3), np.int16)
    t = np.linspace(0, 2 * np.pi, n)
    if c == 0:
        s[:, 0], s[:, 1] = np.round(10 * np.cos(t)), np.round(10 * np.sin(t))
    elif c == 1:
        s[:, 0] = 5
    else:
        s[:, 0], s[:, 1] = 4, np.where(np.arange(n) % 2, 8, -8)
    s[:, :2] += rng.integers(-2, 3, (n, 2)).astype(np.int16)
    s[-1, 2] = 1
    return s


def _drawing(seq: np.ndarray) -> list[list[list[int]]]:
    """Absolute-coordinate drawing (the ndjson form) of a stroke-3 sequence, shifted into 0..255."""
    pts = np.cumsum(seq[:, :2].astype(np.int64), axis=0)
    pts -= pts.min(axis=0) - 10
    strokes, cur = [], [[], []]
    for (x, y), lift in zip(pts, seq[:, 2], strict=True):
        cur[0].append(int(x))
        cur[1].append(int(y))
        if lift:
            strokes.append(cur)
            cur = [[], []]
    return strokes


# min_steps=0: these runs are sized by hand (no stretching of epochs on tiny data).
TINY = TrainParams(hidden=24, epochs=8, batch_size=16, warmup_steps=4, lr=1e-2, patience=3, dropout=0.1, seed=7,
                  min_steps=0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    out = tmp_path_factory.mktemp("run")
    result = train_on(StandIn(30, 0), StandIn(8, 1), out / "models", params=TINY, live_dir=out / "dvclive",
                      cache_info={"name": "standin", "version": "abc123", "max_len": 250})
    return out, result


def test_train_writes_checkpoints_metrics_and_learns(trained: tuple[Path, Any]) -> None:
    out, result = trained
    assert result.best_path.is_file() and result.last_path.is_file()
    assert 1 <= result.best_epoch <= result.epochs_run <= TINY.epochs
    assert result.best_metrics["val_top1"] > 0.8  # three trivially separable shapes
    for row in result.history:
        assert set(row) >= {"train_loss", "val_loss", "val_top1", "val_top3", "lr", "seconds"}
    # warm-up: first epoch's lr (after 4 warm-up steps of 6/epoch) has reached the base lr
    assert result.history[0]["lr"] == pytest.approx(TINY.lr)
    live = json.loads((out / "dvclive" / "metrics.json").read_text())
    assert {"train", "val", "lr", "best"} <= set(live)
    assert live["best"]["epoch"] == result.best_epoch
    tsv = (out / "dvclive" / "plots" / "metrics" / "val" / "top1.tsv").read_text().splitlines()
    assert len(tsv) == result.epochs_run + 1  # header + one row per epoch
    assert yaml.safe_load((out / "dvclive" / "params.yaml").read_text())["hidden"] == 24


def test_checkpoint_round_trip(trained: tuple[Path, Any]) -> None:
    _, result = trained
    model, info = load_checkpoint(result.best_path)
    assert info["classes"] == CLASSES
    assert info["cache"]["version"] == "abc123"
    assert info["params"]["hidden"] == 24 and info["epoch"] == result.best_epoch
    assert info["input_scaling"]["xy_scale"] == pytest.approx(model.config.xy_scale) and model.config.xy_scale > 1
    assert not model.training
    # the saved weights reproduce the saved validation metric
    val = StandIn(8, 1)
    b = val.batch(np.arange(len(val)))
    with torch.no_grad():
        logits = model(torch.from_numpy(b["x"]), torch.from_numpy(b["lengths"]))
    acc = float((logits.argmax(1).numpy() == b["labels"]).mean())
    assert acc == pytest.approx(info["metrics"]["val_top1"])
    # and a reloaded model gives identical logits
    again, _ = load_checkpoint(result.best_path)
    with torch.no_grad():
        assert torch.equal(again(torch.from_numpy(b["x"]), torch.from_numpy(b["lengths"])), logits)


def test_training_is_seeded(tmp_path: Path) -> None:
    p = TrainParams(hidden=8, epochs=1, batch_size=16, max_steps_per_epoch=3, max_train_per_class=10, seed=3)
    runs = [train_on(StandIn(15, 0), StandIn(4, 1), tmp_path / f"r{i}", params=p).history[0] for i in range(2)]
    assert runs[0]["train_loss"] == runs[1]["train_loss"] and runs[0]["val_loss"] == runs[1]["val_loss"]


def test_early_stopping_and_caps(tmp_path: Path) -> None:
    # lr ~ 0 after warm-up: val loss cannot improve, so training stops after `patience` epochs
    p = TrainParams(hidden=8, epochs=10, patience=2, lr=1e-9, batch_size=8, warmup_steps=0,
                    max_train_per_class=4, max_steps_per_epoch=1, seed=1)
    events: list[Any] = []
    r = train_on(StandIn(20, 0), StandIn(4, 1), tmp_path, params=p, progress=events.append)
    assert r.stopped_early and r.epochs_run == 3 and r.best_epoch == 1
    steps = [e for e in events if e.kind == "step"]
    assert len(steps) == 3 and all(e.steps == 1 for e in steps)
    assert [e.kind for e in events[:3]] == ["epoch_start", "step", "epoch_end"]


def test_load_params_sections_seed_and_overrides(tmp_path: Path) -> None:
    f = tmp_path / "params.yaml"
    f.write_text("seed: 11\nprepare: {max_len: 250}\ntrain:\n  hidden: 64\n  epochs: 3\n")
    p = load_params(f, ["train.hidden=128", "dropout=0.2", "train.max_steps_per_epoch=null"])
    assert (p.hidden, p.epochs, p.dropout, p.seed, p.max_steps_per_epoch) == (128, 3, 0.2, 11, None)
    assert load_params(None) == TrainParams()
    with pytest.raises(ValueError, match="did you mean 'hidden'"):
        load_params(f, ["train.hiden=3"])
    with pytest.raises(ValueError, match="dropout"):
        load_params(f, ["train.dropout=1.5"])
    with pytest.raises(ValueError, match="key=value"):
        load_params(f, ["train.hidden"])


def test_evaluate_outputs(trained: tuple[Path, Any], tmp_path: Path) -> None:
    _, result = trained
    model, info = load_checkpoint(result.best_path)
    test = StandIn(10, 2)
    doc = evaluate_on(model, info, test, tmp_path, split="test")
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved == doc
    assert doc["n"] == 30 and 0.8 < doc["top1"] <= doc["top3"] == 1.0
    assert 0 <= doc["ece"] <= 1 and set(doc["per_class"]) == set(CLASSES)
    plots = tmp_path / "plots"
    for name in ("confusion.png", "per_class_accuracy.png", "reliability.png", "confidence_hist.png"):
        assert (plots / name).stat().st_size > 1000
    rows = list(csv.DictReader(open(plots / "confusion.csv")))
    assert len(rows) == 30 and {r["actual"] for r in rows} == set(CLASSES)
    rel = json.loads((plots / "reliability.json").read_text())
    assert len(rel) == 15 and sum(b["count"] for b in rel) == 30
    per = json.loads((plots / "per_class.json").read_text())
    assert [r["accuracy"] for r in per] == sorted(r["accuracy"] for r in per)
    conf = json.loads((plots / "confidence.json").read_text())
    assert sum(b["correct"] + b["wrong"] for b in conf) == 30


def test_evaluate_rejects_other_classes(trained: tuple[Path, Any], tmp_path: Path) -> None:
    model, info = load_checkpoint(trained[1].best_path)
    other = StandIn(2, 2)
    other.classes = ["a", "b", "c"]
    with pytest.raises(QuickDrawError, match="class list"):
        evaluate_on(model, info, other, tmp_path)


def test_predict_records_from_ndjson(trained: tuple[Path, Any]) -> None:
    model, info = load_checkpoint(trained[1].best_path)
    ds = StandIn(3, 5)
    lines = [json.dumps({"word": CLASSES[lab], "drawing": _drawing(seq)}) for seq, lab in ds] + [""]
    preds = predict_records(model, info, read_ndjson(io.StringIO("\n".join(lines))), top_k=2)
    assert len(preds) == 9 and all(len(p.top) == 2 for p in preds)
    assert all(p.top[0][1] >= p.top[1][1] for p in preds)
    hits = sum(p.top[0][0] == p.record["word"] for p in preds)
    assert hits >= 7
    assert preds[0].to_dict()["top"][0]["class"] in CLASSES


def test_cli_train_evaluate_predict(trained: tuple[Path, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    splits = {"train": StandIn(10, 0), "val": StandIn(4, 1), "test": StandIn(4, 2)}
    monkeypatch.setattr(train_mod, "_open_split", lambda cache, split, root, fmt="stroke3": splits[split])
    monkeypatch.setattr(evaluate_mod, "_open_split", lambda cache, split, root, fmt="stroke3": splits[split])
    monkeypatch.setattr(evaluate_mod, "locate_cache", lambda info, cache, root, **kw: cache)
    params = tmp_path / "params.yaml"
    params.write_text("seed: 2\ntrain:\n  hidden: 8\n  epochs: 1\n  batch_size: 16\n  min_steps: 0\n")
    runner = CliRunner()
    res = runner.invoke(app, ["train", "--cache", "fake", "--out", str(tmp_path / "m"), "--params", str(params),
                              "--set", "train.warmup_steps=1", "--live-dir", str(tmp_path / "live"), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["epochs_run"] == 1 and Path(doc["best_path"]).is_file()

    res = runner.invoke(app, ["evaluate", "--checkpoint", doc["best_path"], "--cache", "fake",
                              "--out", str(tmp_path / "eval"), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["n"] == 12

    seq, lab = splits["test"][0]
    src = tmp_path / "in.ndjson"
    src.write_text(json.dumps({"key_id": "1", "drawing": _drawing(seq)}) + "\n")
    res = runner.invoke(app, ["predict", "--checkpoint", str(trained[1].best_path), str(src), "--top-k", "3", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out[0]["key_id"] == "1" and len(out[0]["top"]) == 3
    assert sum(t["prob"] for t in out[0]["top"]) == pytest.approx(1.0, abs=1e-5)

    res = runner.invoke(app, ["predict", "--checkpoint", str(trained[1].best_path), "-"], input="{not json\n")
    assert res.exit_code == 2 and "malformed JSON" in res.output
    res = runner.invoke(app, ["train", "--cache", "fake", "--set", "train.bogus=1"])
    assert res.exit_code == 2 and "bogus" in res.output
    for cmd in ("train", "evaluate", "predict"):
        res = runner.invoke(app, [cmd, "--help"])
        assert res.exit_code == 0 and "Example: quickdraw" in res.output


def test_train_evaluate_on_real_cache(tmp_path: Path) -> None:
    """End to end on a cache built by quickdraw.cache from synthetic prepare shards (random strokes)."""
    from quickdraw.cache.build import build_cache
    from quickdraw.cache.synthetic import write_synthetic_strokes
    from quickdraw.datasets import load
    from quickdraw.pipeline.evaluate import evaluate
    from quickdraw.pipeline.train import make_batch, train

    strokes = write_synthetic_strokes(tmp_path / "strokes", ["cat", "dog", "apple", "bee"], 25, seed=4,
                                      formats=("stroke3",), max_len=120)
    root = tmp_path / "cache"
    cv = build_cache(strokes, root, "mini", formats=("stroke3",))

    # the fast batch path yields exactly the raw int16 rows, padded with zeros
    ds = load("mini", split="train", root=root)
    b = make_batch(ds, [0, 5, 3])
    for r, i in enumerate([0, 5, 3]):
        seq, lab = ds[i]
        assert torch.equal(b["x"][r, : len(seq)], torch.from_numpy(seq.astype(np.float32)))
        assert b["lengths"][r] == len(seq) and b["labels"][r] == lab

    p = TrainParams(hidden=8, epochs=2, batch_size=16, warmup_steps=2, max_steps_per_epoch=3, seed=0)
    r = train("mini", tmp_path / "m", params=p, root=root, live_dir=tmp_path / "live")
    _, info = load_checkpoint(r.best_path)
    assert info["cache"]["version"] == cv.version and info["cache"]["name"] == "mini"
    assert info["cache"]["max_len"] == 120
    # all three length rules reach the checkpoint (predict applies them), from manifest["params"]["prepare"]
    assert (info["cache"]["min_len"], info["cache"]["on_long"]) == (6, "truncate")
    assert info["classes"] == ["cat", "dog", "apple", "bee"]
    norm = cv.manifest["formats"]["stroke3"].get("norm_scale")
    if norm:
        assert info["input_scaling"]["xy_scale"] == pytest.approx(norm)
    # cache=None: evaluate the cache version recorded in the checkpoint
    doc = evaluate(r.best_path, None, tmp_path / "eval", split="test")
    assert doc["n"] == len(load("mini", split="test", root=root)) and doc["cache_version"] == cv.version

    # the DVC stage's call after the cache root moved (the stored absolute path is gone): --cache-root decides
    moved = tmp_path / "moved"
    shutil.move(root, moved)
    res = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(r.best_path), "--cache-root", str(moved),
                                   "--split", "test", "--out", str(tmp_path / "eval2"), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["cache_version"] == cv.version


# ------------------------------------------------------------------------ predict: prepare's length rules


def _fed_sequences(monkeypatch: pytest.MonkeyPatch) -> list[np.ndarray]:
    """Record the sequences predict hands to the model (uniform probabilities come back)."""
    fed: list[np.ndarray] = []

    def fake_classify(model: Any, seqs: list[np.ndarray], batch_size: int = 256) -> np.ndarray:
        fed.extend(np.array(s) for s in seqs)
        return np.full((len(seqs), len(CLASSES)), 1 / len(CLASSES), np.float32)

    monkeypatch.setattr(predict_mod, "classify", fake_classify)
    return fed


def _records(*drawings: Any) -> list[tuple[int, dict[str, Any]]]:
    return [(i + 1, {"key_id": str(i), "drawing": d}) for i, d in enumerate(drawings)]


def _line(n: int, x0: int = 0) -> list[list[int]]:
    """One stroke of ``n`` points (no pen lift before its last point)."""
    return [list(range(x0, x0 + n)), [7] * n]


def test_predict_applies_prepare_length_rules(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    fed = _fed_sequences(monkeypatch)
    info = {"classes": CLASSES, "cache": {"min_len": 6, "max_len": 10, "on_long": "truncate"}}
    long_drawing = [_line(8), _line(8, 50)]  # 16 points, the cut at 10 falls inside the second stroke
    short_drawing = [_line(3)]
    with caplog.at_level(logging.WARNING, logger=predict_mod.__name__):
        preds = predict_records(None, info, _records(long_drawing, short_drawing, [_line(7)]))  # type: ignore[arg-type]
    # truncation is exactly prepare's: first max_len steps, pen_lift = 1 on the last kept one
    want = strokes.apply_length_rules(
        strokes.Stroke3Batch(strokes.drawing_to_stroke3(long_drawing), np.array([0, 16])), 6, 10, "truncate"
    ).batch[0]
    assert len(fed) == 2 and fed[0].shape == (10, 3) and fed[0][-1, 2] == 1
    np.testing.assert_array_equal(fed[0], want)
    np.testing.assert_array_equal(fed[1], strokes.drawing_to_stroke3([_line(7)]))
    # the too-short drawing is reported, not classified and not a crash; order and lines are kept
    assert [p.line for p in preds] == [1, 2, 3]
    assert preds[1].top == [] and preds[1].skipped is not None and "too_short" in preds[1].skipped
    assert preds[1].to_dict()["skipped"] == preds[1].skipped and preds[1].to_dict()["key_id"] == "1"
    assert preds[0].skipped is None and len(preds[0].top) == 3 and "skipped" not in preds[0].to_dict()
    assert "too_short" in caplog.text and ":2:" in caplog.text


def test_predict_on_long_drop_and_all_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    fed = _fed_sequences(monkeypatch)
    info = {"classes": CLASSES, "cache": {"min_len": 2, "max_len": 10, "on_long": "drop"}}
    preds = predict_records(None, info, _records([_line(11)]))  # type: ignore[arg-type]
    assert fed == [] and preds[0].top == [] and "too_long_dropped" in (preds[0].skipped or "")


def test_predict_rules_fall_back_for_old_checkpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    assert LengthRules.from_info({"cache": {}}) == LengthRules(6, 250, "truncate")
    assert LengthRules.from_info({}) == LengthRules(6, 250, "truncate")
    assert LengthRules.from_info({"cache": {"max_len": 120}}) == LengthRules(6, 120, "truncate")
    fed = _fed_sequences(monkeypatch)
    preds = predict_records(None, {"classes": CLASSES}, _records([_line(5)], [_line(300)]))  # type: ignore[arg-type]
    assert preds[0].skipped is not None  # 5 < default min_len 6
    assert len(fed) == 1 and len(fed[0]) == 250 and fed[0][-1, 2] == 1


def test_predict_cli_reports_dropped_drawing(trained: tuple[Path, Any], tmp_path: Path) -> None:
    src = tmp_path / "in.ndjson"
    src.write_text(json.dumps({"key_id": "9", "word": "line", "drawing": [_line(2)]}) + "\n")
    runner = CliRunner()
    res = runner.invoke(app, ["predict", "--checkpoint", str(trained[1].best_path), str(src), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out[0]["top"] == [] and "too_short" in out[0]["skipped"]
    res = runner.invoke(app, ["predict", "--checkpoint", str(trained[1].best_path), str(src)])
    assert res.exit_code == 0 and "not classified" in res.output


def test_dead_fallbacks_are_gone() -> None:
    # the stand-ins duplicated quickdraw.strokes; the real functions are used directly
    assert predict_mod.drawing_to_stroke3 is strokes.drawing_to_stroke3
    assert train_mod.normalizing_scale is strokes.normalizing_scale


def test_public_methods_have_docstrings() -> None:
    for fn in (TrainParams.to_dict, train_mod.TrainResult.to_dict, predict_mod.Prediction.to_dict):
        assert fn.__doc__, fn.__qualname__


# ------------------------------------------------------------------ evaluate: which cache version to open


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, Any]:
    """Cache root with name ``mini`` holding two versions; LATEST is the second one."""
    from quickdraw.cache.build import build_cache
    from quickdraw.cache.synthetic import write_synthetic_strokes

    tmp = tmp_path_factory.mktemp("versions")
    root = tmp / "cache"
    built = []
    for seed in (1, 2):
        s = write_synthetic_strokes(tmp / f"s{seed}", ["cat", "dog"], 6, seed=seed, formats=("stroke3",))
        built.append(build_cache(s, root, "mini", formats=("stroke3",)))
    assert built[0].version != built[1].version
    return root, built[0], built[1]


def _trained_on(cv: Any) -> dict[str, Any]:
    return {"cache": {"name": cv.name, "version": cv.version, "path": str(cv.path)}}


def test_evaluate_opens_the_trained_version_not_latest(two_versions: tuple[Path, Any, Any]) -> None:
    root, v1, v2 = two_versions
    assert (root / "mini" / "LATEST").read_text().strip() == v2.version
    info = _trained_on(v1)
    assert locate_cache(info, None, root) == v1.path
    # --cache NAME used to open LATEST (v2): it must still be the version the model was trained on
    assert locate_cache(info, "mini", root) == v1.path
    assert locate_cache(info, str(root / "mini"), None) == v1.path


def test_evaluate_cache_root_wins_over_stored_path(two_versions: tuple[Path, Any, Any], tmp_path: Path) -> None:
    root, v1, _ = two_versions
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    info = _trained_on(v1)
    assert locate_cache(info, None, copy) == copy / "mini" / v1.version
    # a stale stored path (cache moved or gc'd) is no problem when the root has it ...
    info["cache"]["path"] = str(tmp_path / "gone" / "mini" / v1.version)
    assert locate_cache(info, None, copy) == copy / "mini" / v1.version
    # ... and the stored path is the fallback when the root does not
    assert locate_cache(_trained_on(v1), None, tmp_path / "empty-root") == v1.path


def test_evaluate_missing_trained_version(two_versions: tuple[Path, Any, Any], tmp_path: Path,
                                          caplog: pytest.LogCaptureFixture) -> None:
    root, v1, v2 = two_versions
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    shutil.rmtree(copy / "mini" / v1.version)  # gc'd
    info = _trained_on(v1)
    info["cache"]["path"] = str(copy / "mini" / v1.version)
    # the checkpoint's own cache: no silent switch to another version
    with pytest.raises(CacheError, match=f"{v1.version}.*--cache NAME"):
        locate_cache(info, None, copy)
    # an explicitly named cache: its latest version, with a warning naming both versions
    with caplog.at_level(logging.WARNING, logger=evaluate_mod.__name__):
        assert locate_cache(info, "mini", copy) == copy / "mini" / v2.version
    assert v1.version in caplog.text and v2.version in caplog.text
    with pytest.raises(CacheError, match="no cached dataset 'other'"):
        locate_cache(info, "other", copy)


def test_evaluate_explicit_other_cache_is_not_swapped_for_stored_path(
    two_versions: tuple[Path, Any, Any], tmp_path: Path
) -> None:
    root, v1, v2 = two_versions
    other = tmp_path / "root2"
    (other / "renamed").mkdir(parents=True)
    shutil.copytree(root / "mini" / v2.version, other / "renamed" / v2.version)
    # the stored path (mini/v1) still exists but belongs to another cache than the one asked for
    assert locate_cache(_trained_on(v1), "renamed", other) == other / "renamed" / v2.version
    with pytest.raises(QuickDrawError, match="no cache recorded"):
        locate_cache({"cache": {}}, None, root)


# ------------------------------------------------------------------------------------ mixed precision


def test_bf16_autocast_on_cpu_trains(tmp_path: Path) -> None:
    p = TrainParams(**{**TINY.to_dict(), "epochs": 2, "max_steps_per_epoch": 3, "precision": "bf16"})
    r = train_on(StandIn(10, 0), StandIn(4, 1), tmp_path / "m", params=p, live_dir=tmp_path / "live")
    assert r.epochs_run == 2 and np.isfinite(r.history[-1]["val_loss"])
    model, info = load_checkpoint(r.last_path)
    assert info["params"]["precision"] == "bf16" and info["world_size"] == 1
    assert all(t.dtype == torch.float32 for t in model.state_dict().values())  # autocast: fp32 master weights


def test_fp16_on_cpu_is_refused_in_one_line(tmp_path: Path) -> None:
    p = TrainParams(**{**TINY.to_dict(), "precision": "fp16"})
    with pytest.raises(train_mod.ParamError, match=r"fp16 autocast needs CUDA; use bf16 or fp32"):
        train_on(StandIn(4, 0), None, tmp_path / "m", params=p, live_dir=tmp_path / "live")
    with pytest.raises(train_mod.ParamError, match="expected one of fp32, bf16, fp16"):
        load_params(None, ["train.precision=half"])
