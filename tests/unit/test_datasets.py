"""quickdraw.load and SequenceDataset: views over the memory-mapped cache, bulk views, batch(), rendering."""

from __future__ import annotations

import io
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import quickdraw as qd
from quickdraw.cache import build_cache
from quickdraw.cache.synthetic import write_synthetic_strokes
from quickdraw.datasets import Drawing, SequenceDataset, plot_grid, strokes_from_sequence
from quickdraw.errors import CacheError

CLASSES = ("cat", "dog", "apple", "bee")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("ds")
    strokes = write_synthetic_strokes(base / "strokes", CLASSES, 40, seed=11)
    build_cache(strokes, base / "cache", "animals")
    return base / "cache"


@pytest.fixture(scope="module")
def ds(root: Path) -> SequenceDataset:
    return qd.load("animals", root=root)


def _rows(root: Path, fmt: str, split: str) -> list[dict]:
    strokes = root.parent / "strokes" / fmt / split
    return [r for p in sorted(strokes.glob("part-*.parquet")) for r in pq.read_table(p).to_pylist()]


def test_load_finds_by_name_env_and_paths(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUICKDRAW_CACHE", str(root))
    a = qd.load("animals")
    assert qd.list_datasets() == ["animals"] and qd.list_datasets(root) == ["animals"]
    assert qd.load(root / "animals", split="val").version == a.version
    assert qd.load(str(a.cache.path), split="test", format="stroke5").version == a.version
    assert qd.load("animals", version=a.version[:5]).version == a.version
    with pytest.raises(CacheError, match="no split 'dev'"):
        qd.load("animals", split="dev")
    with pytest.raises(CacheError, match="no 'stroke7'"):
        qd.load("animals", format="stroke7")


def test_items_are_int16_views_matching_the_shards(root: Path, ds: SequenceDataset) -> None:
    rows = _rows(root, "stroke3", "train")
    assert len(ds) == len(rows) and ds.classes == list(CLASSES)
    for i in (0, 1, len(ds) // 2, len(ds) - 1):
        seq, label = ds[i]
        assert seq.dtype == np.int16 and seq.shape == (rows[i]["length"], 3)
        assert np.shares_memory(seq, ds.steps) and not seq.flags.owndata
        np.testing.assert_array_equal(seq, np.array(rows[i]["sequence"]))
        assert label == rows[i]["label"] and isinstance(label, int)
    np.testing.assert_array_equal(ds[-1][0], ds[len(ds) - 1][0])
    with pytest.raises(IndexError):
        ds[len(ds)]
    assert ds.key_ids.tolist() == [r["key_id"] for r in rows]
    assert ds.lengths.tolist() == [r["length"] for r in rows]
    assert ds.labels.tolist() == [r["label"] for r in rows]
    steps, offsets, labels = ds.to_numpy()
    assert steps.shape[1] == 3 and offsets[-1] == len(steps) and len(labels) == len(ds)


def test_to_polars(root: Path, ds: SequenceDataset) -> None:
    df = ds.to_polars()
    assert df.columns[:8] == ["key_id", "word", "label", "countrycode", "recognized", "timestamp", "n_strokes", "n_points"]
    assert df.columns[-2:] == ["length", "sequence"] and df.height == len(ds)
    rows = _rows(root, "stroke3", "train")
    assert df["word"].to_list() == [r["word"] for r in rows]
    assert df["countrycode"].to_list() == [r["countrycode"] for r in rows]
    assert df["timestamp"].to_list() == [r["timestamp"] for r in rows]
    assert df["sequence"][3].to_list() == [list(s) for s in rows[3]["sequence"]]


def test_normalize_and_stroke5(root: Path) -> None:
    raw = qd.load("animals", root=root, format="stroke5")
    norm = qd.load("animals", root=root, format="stroke5", normalize=True)
    assert raw[0][0].shape[1] == 5 and raw[0][0][-1].tolist() == [0, 0, 0, 0, 1]
    x = norm[0][0]
    assert x.dtype == np.float32 and norm.scale > 1
    np.testing.assert_allclose(x[:, :2], raw[0][0][:, :2] / norm.scale, rtol=1e-6)
    np.testing.assert_array_equal(x[:, 2:], raw[0][0][:, 2:])


def test_batch_matches_items(ds: SequenceDataset, root: Path) -> None:
    idx = [5, 0, 17, 3, len(ds) - 1]
    b = ds.batch(idx)
    lengths = [len(ds[i][0]) for i in idx]
    assert b["x"].dtype.__str__() == "torch.float32" and tuple(b["x"].shape) == (5, max(lengths), 3)
    assert b["lengths"].tolist() == lengths and b["labels"].tolist() == [ds[i][1] for i in idx]
    for r, i in enumerate(idx):
        np.testing.assert_array_equal(b["x"][r, : lengths[r]].numpy(), ds[i][0].astype(np.float32))
        assert not b["x"][r, lengths[r] :].any() and b["mask"][r].sum() == lengths[r]
    s5 = qd.load("animals", root=root, format="stroke5")
    b5 = s5.batch(np.array(idx), as_torch=False)
    pad = ~b5["mask"]
    assert (b5["x"][pad] == [0, 0, 0, 0, 1]).all()


def test_batch_is_fast(ds: SequenceDataset) -> None:
    rng = np.random.default_rng(0)
    batches = [rng.integers(0, len(ds), 256) for _ in range(20)]
    ds.batch(batches[0])
    t = time.perf_counter()
    for b in batches:
        ds.batch(b)
    rate = 20 * 256 / (time.perf_counter() - t)
    assert rate > 20_000, f"{rate:.0f} sequences/s"  # loose: CI machines are shared; the report measures it


def test_open_is_cheap_and_pickles_small(root: Path, ds: SequenceDataset) -> None:
    qd.load("animals", root=root)
    t = time.perf_counter()
    for _ in range(10):
        qd.load("animals", root=root)
    assert (time.perf_counter() - t) / 10 < 0.05
    blob = pickle.dumps(ds)
    assert len(blob) < 1000  # the path, not the arrays
    back = pickle.loads(blob)
    np.testing.assert_array_equal(back[7][0], ds[7][0])


def test_open_checks_sizes_and_names_the_file(tmp_path: Path) -> None:
    strokes = write_synthetic_strokes(tmp_path / "s", ("cat", "dog"), 6, seed=3)
    cv = build_cache(strokes, tmp_path / "c", "tiny")
    offsets = cv.path / "stroke3" / "train" / "offsets.npy"
    offsets.write_bytes(offsets.read_bytes()[:-8])
    with pytest.raises(CacheError, match="stroke3/train/offsets.npy: size"):
        qd.load("tiny", root=tmp_path / "c")
    qd.load("tiny", root=tmp_path / "c", format="stroke5")  # other files are fine
    (cv.path / "stroke5" / "val" / "labels.npy").unlink()
    with pytest.raises(CacheError, match="labels.npy: missing"):
        qd.load("tiny", root=tmp_path / "c", format="stroke5", split="val")


def test_import_stays_light(root: Path) -> None:
    code = (
        "import sys, quickdraw as qd; ds = qd.load('animals', root=sys.argv[1]); ds[0]; "
        "bad = [m for m in ('torch', 'pyarrow', 'polars', 'matplotlib') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code, str(root)], check=True)


def test_strokes_respect_pen_lifts() -> None:
    seq = np.array([[0, 0, 0], [10, 0, 1], [0, 10, 0], [5, 0, 1]], dtype=np.int16)
    strokes = strokes_from_sequence(seq)
    assert [s.tolist() for s in strokes] == [[[0, 0], [10, 0]], [[10, 10], [15, 10]]]
    s5 = np.array([[0, 0, 1, 0, 0], [10, 0, 0, 1, 0], [0, 10, 1, 0, 0], [5, 0, 0, 1, 0], [0, 0, 0, 0, 1]], np.int16)
    assert [s.tolist() for s in strokes_from_sequence(s5, "stroke5")] == [s.tolist() for s in strokes]
    svg = Drawing(seq, word="line")._repr_svg_()
    assert svg.count("<polyline") == 2 and svg.startswith("<svg")


def test_drawing_png_is_not_blank(ds: SequenceDataset) -> None:
    from PIL import Image

    d = ds.drawing(0)
    img = np.asarray(Image.open(io.BytesIO(d._repr_png_())))
    assert img.shape == (256, 256) and (img < 128).mean() > 0.01 and (img > 128).mean() > 0.5
    assert d.word == ds.classes[ds[0][1]] and "strokes" in repr(d)


def test_plot_grid_renders(ds: SequenceDataset) -> None:
    from PIL import Image

    fig = plot_grid(ds, per_class=3, classes=["dog", "cat"])
    assert len(fig.axes) == 6
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    img = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("L"))
    assert (img < 128).mean() > 0.005
    with pytest.raises(ValueError, match="unknown class"):
        plot_grid(ds, classes=["zebra"])
