"""show (grid PNG/SVG, GIF) from fetch/prepare/cache, export sketchrnn read as magenta does, stats --plots."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from quickdraw.cache import build_cache
from quickdraw.cache.synthetic import write_synthetic_strokes
from quickdraw.cli.app import app
from quickdraw.datasets import load
from quickdraw.pipeline.export import export_sketchrnn
from quickdraw.pipeline.fetch import FetchOptions, fetch
from quickdraw.pipeline.show import ShowError, load_sample, show
from quickdraw.sources.synthetic import synthetic_records, to_ndjson

CLASSES = ["cat", "dog", "apple"]
runner = CliRunner()


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("show")
    src = base / "src"
    src.mkdir()
    for i, w in enumerate(CLASSES):
        (src / f"{w}.ndjson").write_bytes(to_ndjson(synthetic_records(12, word=w, seed=i)))
    fetch(CLASSES, base / "raw", FetchOptions(source=str(src)))
    strokes = write_synthetic_strokes(base / "strokes", CLASSES, 40, seed=1)
    root = base / "cache"
    build_cache(strokes, root, "demo")
    return {"fetch": base / "raw", "prepare": strokes, "cache": root / "demo", "root": root}


def _check_png(path: Path, size: tuple[int, int]) -> None:
    im = Image.open(path)
    assert im.size == size
    px = np.asarray(im.convert("L"))
    assert px.min() < 100 and px.max() > 200  # dark strokes on a light background: not blank


@pytest.mark.parametrize("kind", ["fetch", "prepare", "cache"])
def test_show_grid_from_every_stage(dirs: dict[str, Path], tmp_path: Path, kind: str) -> None:
    doc = show(dirs[kind], tmp_path / "grid.png", classes=["dog", "cat"], n=5)
    assert doc["kind"] == kind and doc["classes"] == ["dog", "cat"] and doc["drawings"] == {"dog": 5, "cat": 5}
    _check_png(tmp_path / "grid.png", (5 * 96, 2 * 96))


def test_sample_respects_pen_lifts(dirs: dict[str, Path]) -> None:
    s = load_sample(dirs["fetch"], ["cat"], n=3)
    rec = synthetic_records(12, word="cat", seed=0)[0]
    strokes = s.drawing(0).strokes
    assert len(strokes) == len(rec["drawing"])
    for got, (xs, ys) in zip(strokes, rec["drawing"]):
        assert got.tolist() == [[float(x), float(y)] for x, y in zip(xs, ys)]


def test_svg_and_gif(dirs: dict[str, Path], tmp_path: Path) -> None:
    doc = show(dirs["cache"], tmp_path / "g.svg", animate_to=tmp_path / "g.gif", n=4)
    assert doc["classes"] == CLASSES
    root = ET.parse(tmp_path / "g.svg").getroot()
    assert root.tag.endswith("svg") and len(list(root.iter("{http://www.w3.org/2000/svg}path"))) > 10
    gif = Image.open(tmp_path / "g.gif")
    assert gif.format == "GIF" and gif.size == (4 * 96, 3 * 96) and gif.n_frames > 5
    gif.seek(0)
    first = np.asarray(gif.convert("L"))
    gif.seek(gif.n_frames - 1)
    last = np.asarray(gif.convert("L"))
    assert (last < 128).sum() > (first < 128).sum() > 0  # strokes appear over time


def test_show_errors(dirs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ShowError, match="zebra"):
        show(dirs["fetch"], tmp_path / "x.png", classes=["zebra"])
    with pytest.raises(ShowError):
        show(dirs["fetch"], tmp_path / "x.jpg")
    with pytest.raises(ShowError, match="not a fetch output"):
        show(tmp_path / "nowhere", tmp_path / "x.png")


def test_show_cli(dirs: dict[str, Path], tmp_path: Path) -> None:
    r = runner.invoke(app, ["show", str(dirs["prepare"]), "--classes", "apple", "--n", "3", "--split", "val",
                            "--out", str(tmp_path / "a.png"), "--animate", str(tmp_path / "a.gif"), "--json"])
    assert r.exit_code == 0, r.output
    _check_png(tmp_path / "a.png", (3 * 96, 96))
    assert Image.open(tmp_path / "a.gif").n_frames > 1
    bad = runner.invoke(app, ["show", str(dirs["prepare"]), "--classes", "zebra", "--out", str(tmp_path / "b.png")])
    assert bad.exit_code == 2 and "zebra" in bad.output
    assert "Example" in runner.invoke(app, ["show", "--help"]).output


def test_export_sketchrnn_loads_as_magenta(dirs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "demo.npz"
    doc = export_sketchrnn(dirs["cache"], out)
    data = np.load(out, encoding="latin1", allow_pickle=True)  # magenta's sketch_rnn_train.load_dataset
    assert sorted(data.files) == ["test", "train", "valid"]
    # the length rule the cache's sequences went through, and that it is not magenta's (which drops)
    assert doc["length_rule"] == {"min_len": 6, "max_len": 250, "on_long": "truncate", "matches_magenta": False}
    for key, split in (("train", "train"), ("valid", "val"), ("test", "test")):
        arr = data[key]
        ds = load(dirs["cache"], split=split)
        assert arr.dtype == object and arr.ndim == 1 and len(arr) == len(ds) == doc["counts"][key]
        for i in range(len(ds)):
            assert arr[i].dtype == np.int16 and arr[i].shape[1] == 3
            np.testing.assert_array_equal(arr[i], ds[i][0])
    # magenta's DataLoader.preprocess: clip, float32, scale by the std of dx, dy
    seqs = [np.minimum(np.maximum(s, -1000), 1000).astype(np.float32) for s in data["train"]]
    scale = np.std(np.concatenate([s[:, :2].ravel() for s in seqs]))
    assert np.isfinite(scale) and scale > 0
    one = tmp_path / "cat.npz"
    r = runner.invoke(app, ["export", "sketchrnn", "--cache", str(dirs["cache"]), "--classes", "cat", "--out", str(one), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["length_rule"]["on_long"] == "truncate"
    human = runner.invoke(app, ["export", "sketchrnn", "--cache", str(dirs["cache"]), "--out", str(tmp_path / "h.npz")])
    assert human.exit_code == 0 and "on_long=truncate" in human.output and "--on-long drop" in human.output
    cat = np.load(one, encoding="latin1", allow_pickle=True)
    ds = load(dirs["cache"], split="train")
    assert len(cat["train"]) == int((np.asarray(ds.labels) == ds.classes.index("cat")).sum())
    bad = runner.invoke(app, ["export", "sketchrnn", "--cache", str(dirs["cache"]), "--classes", "zebra", "--out", str(one)])
    assert bad.exit_code == 2 and "zebra" in bad.output


@pytest.mark.parametrize("kind", ["fetch", "prepare", "cache"])
def test_stats_plots(dirs: dict[str, Path], tmp_path: Path, kind: str) -> None:
    r = runner.invoke(app, ["stats", str(dirs[kind]), "--plots", str(tmp_path / "plots"), "--json"])
    assert r.exit_code == 0, r.output
    for name in ("points_per_class.png", "strokes_per_class.png"):
        im = Image.open(tmp_path / "plots" / name)
        assert im.size[0] > 200 and np.asarray(im.convert("L")).min() < 200
