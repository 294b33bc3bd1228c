"""Bitmaps: the anti-aliased renderer against an independent rasterizer (Pillow), the numpy_bitmap export
(Google's layout plus key_ids and splits) and ``qd.load(..., format="bitmap")``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import orjson
import pytest
from PIL import Image, ImageDraw
from typer.testing import CliRunner

import quickdraw as qd
from quickdraw.cache import build_cache
from quickdraw.cache.synthetic import write_synthetic_strokes
from quickdraw.cli.app import app
from quickdraw.datasets.bitmap import BitmapDataset, render_bitmaps, stroke3_to_flat_strokes
from quickdraw.errors import QuickDrawError
from quickdraw.pipeline.export import export_bitmap
from quickdraw.strokes import drawing_to_stroke3, stroke3_to_strokes

runner = CliRunner()


def _csr(drawings: list) -> tuple[np.ndarray, np.ndarray]:
    seqs = [drawing_to_stroke3(d) for d in drawings]
    off = np.zeros(len(seqs) + 1, np.int64)
    off[1:] = np.cumsum([len(s) for s in seqs])
    return np.concatenate(seqs), off


def _pillow(drawing: list, size: int = 28, lw: float = 16, up: int = 1) -> np.ndarray:
    """The independent reference: Pillow draws lines and round caps at ``256 * up`` px (no anti-aliasing),
    then a box filter brings it down to ``size`` (pixel centres at the integer coordinates, as ours)."""
    s = 256 * up
    im = Image.new("L", (s, s), 0)
    draw = ImageDraw.Draw(im)
    r = lw * up / 2
    for xs, ys in drawing:
        pts = [((x + 0.5) * up - 0.5, (y + 0.5) * up - 0.5) for x, y in zip(xs, ys)]
        if len(pts) > 1:
            draw.line(pts, fill=255, width=round(lw * up))
        for x, y in pts:
            draw.ellipse([x - r, y - r, x + r, y + r], fill=255)
    return np.asarray(im.resize((size, size), Image.BOX))


def test_flat_strokes_roundtrip() -> None:
    drawings = [[[[0, 10, 20], [5, 5, 30]], [[7, 7], [9, 9]]], [[[255], [0]]], [[[1, 2], [3, 4]]]]
    steps, off = _csr(drawings)
    x, y, pts, ns = stroke3_to_flat_strokes(steps, off)
    assert ns.tolist() == [2, 1, 1] and pts.tolist() == [3, 2, 1, 2]
    assert x.tolist() == [0, 10, 20, 7, 7, 255, 1, 2] and y.tolist() == [5, 5, 30, 9, 9, 0, 3, 4]


def test_render_matches_pillow_on_real_drawings(shared_data: Path) -> None:
    files = sorted((shared_data / "full" / "simplified").glob("*.ndjson"))[:40]
    if not files:
        pytest.skip("no shared simplified files")
    drawings = [orjson.loads(line)["drawing"] for f in files for line in f.read_bytes().splitlines()]
    mine = render_bitmaps(*_csr(drawings), 28)
    assert mine.dtype == np.uint8 and mine.shape == (len(drawings), 28, 28)
    for up, mean_tol, p99_tol, img_tol in ((1, 3.5, 40, 9.0), (4, 1.6, 18, 4.5)):
        ref = np.stack([_pillow(d, up=up) for d in drawings])
        diff = np.abs(mine.astype(np.int16) - ref.astype(np.int16))
        print(f"Pillow x{up}: mean {diff.mean():.2f}, p99 {np.percentile(diff, 99):.0f}, max {diff.max()}, "
              f"worst image mean {diff.reshape(len(drawings), -1).mean(1).max():.2f}")
        # Measured on the shared sample (docs/FORMATS.md): x1 mean 2.7, p99 30, worst image 6.6;
        # x4 mean 1.1, p99 13, worst image 3.0 (the closer Pillow's sampling is to ours, the closer the images).
        assert diff.mean() <= mean_tol
        assert np.percentile(diff, 99) <= p99_tol
        assert diff.reshape(len(drawings), -1).mean(1).max() <= img_tol
        assert abs(float(mine.mean()) - float(ref.mean())) <= 1.0  # the same amount of ink


def test_render_details() -> None:
    # A dot (a one-point stroke written twice) is a disc; a horizontal line across the middle a band.
    dot = render_bitmaps(*_csr([[[[128, 128], [128, 128]]]]), 28)[0]
    # the ink of a disc of diameter 16 frame px: pi * 8^2 / (256 / 28)^2 = 2.41 bitmap pixels
    assert abs(dot.sum() / 255 - np.pi * 64 / (256 / 28) ** 2) < 0.1 and dot[:10].max() == 0 and (dot > 0).sum() <= 9
    line = render_bitmaps(*_csr([[[[0, 255], [128, 128]]]]), 28)[0]
    # every column away from the caps holds 16 frame px of ink: 16 / (256 / 28) = 1.75 bitmap pixels
    assert np.allclose(line[:, 2:-2].sum(0) / 255, 16 / (256 / 28), atol=0.05)
    assert line[:10].max() == 0 and line[18:].max() == 0
    assert render_bitmaps(*_csr([[[[0, 255], [128, 128]]]]), 64).shape == (1, 64, 64)
    with pytest.raises(ValueError):
        render_bitmaps(*_csr([[[[0], [0]]]]), 0)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("bitmap")
    strokes = write_synthetic_strokes(base / "strokes", ["cat", "dog", "apple"], 30, seed=3)
    build_cache(strokes, base / "cache", "demo")
    return base / "cache" / "demo"


def test_export_layout_and_load(cache_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "bm"
    res = runner.invoke(app, ["export", "bitmap", "--cache", str(cache_dir), "--size", "28", "--out", str(out),
                              "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    man = json.loads((out / "bitmaps.json").read_text())
    assert man["format"] == "numpy_bitmap" and man["size"] == 28 and man["line_width"] == 16.0
    assert man["classes"] == doc["classes"] == ["cat", "dog", "apple"]  # the cache's class order
    seq = qd.load(cache_dir, split="train")
    for label, word in enumerate(man["classes"]):
        img = np.load(out / f"{word}.npy")
        keys = np.load(out / f"{word}.key_ids.npy")
        codes = np.load(out / f"{word}.splits.npy")
        assert img.dtype == np.uint8 and img.ndim == 2 and img.shape[1] == 784  # Google's N x 784
        assert keys.dtype == np.uint64 and len(keys) == len(codes) == len(img)
        assert set(codes.tolist()) <= {0, 1, 2} and (np.diff(codes.astype(int)) >= 0).all()  # train, val, test
        n_train = int((np.asarray(seq.labels) == label).sum())
        assert int((codes == 0).sum()) == n_train == man["counts"][word]["train"]
        # the rows are the cache's drawings, in cache order, rendered by render_bitmaps
        idx = np.flatnonzero(np.asarray(seq.labels) == label)
        assert keys[codes == 0].tolist() == np.asarray(seq.key_ids)[idx].tolist()
        steps, offsets, _ = seq.to_numpy()
        s0 = np.asarray(steps[offsets[idx[0]]:offsets[idx[0] + 1]])
        assert np.array_equal(img[0].reshape(28, 28), render_bitmaps(s0, np.array([0, len(s0)]), 28)[0])
        assert stroke3_to_strokes(s0)  # a real drawing, not empty
    bm = qd.load(out, split="train", format="bitmap")
    assert isinstance(bm, BitmapDataset) and len(bm) == len(seq)
    x, label = bm[0]
    assert x.dtype == np.uint8 and x.shape == (28, 28) and isinstance(x.base, np.memmap | np.ndarray)
    assert bm.classes == seq.classes and label == int(seq.labels[0]) and int(bm.key_ids[0]) == int(seq.key_ids[0])
    assert isinstance(np.load(out / "cat.npy", mmap_mode="r"), np.memmap)
    imgs, labels = bm.to_numpy()
    assert imgs.shape == (len(bm), 28, 28) and np.array_equal(imgs[0], x) and labels.tolist() == bm.labels.tolist()
    assert len(qd.load(out, split="val", format="bitmap")) == len(qd.load(cache_dir, split="val"))
    # a second export into the same folder is fine (the folder is ours); another size is written over it
    export_bitmap(cache_dir, out, size=16, classes=["cat"])
    assert np.load(out / "cat.npy").shape[1] == 256 and json.loads((out / "bitmaps.json").read_text())["size"] == 16


def test_export_refuses_a_foreign_folder_and_bad_input(cache_dir: Path, tmp_path: Path) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(QuickDrawError, match="not created by quickdraw"):
        export_bitmap(cache_dir, foreign)
    assert (foreign / "notes.txt").read_text() == "mine" and not (foreign / "cat.npy").exists()
    with pytest.raises(QuickDrawError, match="size"):
        export_bitmap(cache_dir, tmp_path / "x", size=0)
    with pytest.raises(QuickDrawError, match="zebra"):
        export_bitmap(cache_dir, tmp_path / "y", classes=["zebra"])
    with pytest.raises(QuickDrawError, match="not a bitmap export"):
        qd.load(tmp_path, format="bitmap")
    res = runner.invoke(app, ["export", "bitmap", "--cache", str(cache_dir), "--out", str(foreign)])
    assert res.exit_code == 2 and "not created by quickdraw" in res.output
