"""Tests that fail when the numbers users see are wrong, through the stage users run.

Each test here was written against a bug the rest of the suite let pass (issue 11, item 9), with inputs chosen
so that the wrong wiring gives a different number:

* the cache version must follow shard *content*: two prepare outputs whose shards have the same sizes but
  different bytes get different versions (a fingerprint of sizes alone reuses the first cache for the second);
* ``fetch`` with ``max_per_class`` landing exactly at the end of a read stops there: it reads no further chunk
  and reports ``stopped_early`` (a ``>`` for ``>=`` reads on, and over a filtered tail says it did not stop);
* ``SequenceDataset.batch`` returns labels in the order of the indices asked for, unsorted ones included;
* top-3 in ``evaluate`` and in training validation is top-3, not top-1, with more than three classes and a
  model whose top-1 and top-3 differ.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

import quickdraw as qd
from quickdraw.cache import build_cache
from quickdraw.cache.synthetic import write_synthetic_strokes
from quickdraw.datasets import SequenceDataset, collate_padded
from quickdraw.models import GRUClassifier, ModelConfig
from quickdraw.pipeline import fetch as fetch_mod
from quickdraw.pipeline import train as train_mod
from quickdraw.pipeline.evaluate import evaluate_on
from quickdraw.pipeline.fetch import FetchOptions, fetch
from quickdraw.pipeline.prepare import prepare
from quickdraw.pipeline.train import TrainParams, make_batch, train_on

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FIVE = ("cat", "dog", "apple", "bee", "ant")


def real_lines(shared: Path, word: str) -> list[bytes]:
    lines = (shared / "full" / "simplified" / f"{word}.ndjson").read_bytes().splitlines()
    return [ln for ln in lines if ln.strip()]


# ------------------------------------------------------------------------------ (b) cache version = content


def _shard_files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.glob("stroke*/*/part-*.parquet"))}


def test_same_size_different_content_shards_get_a_new_cache_version(shared_data: Path, tmp_path: Path) -> None:
    """Two drawings of one class swap timestamps: every shard keeps its size (same values, same statistics),
    its bytes change. The second build must be a new version holding the second input's timestamps."""
    words = ["cat", "dog"]
    lines = {w: real_lines(shared_data, w) for w in words}

    def fetch_and_prepare(name: str, cat_lines: list[bytes]) -> Path:
        src = tmp_path / f"src-{name}"
        src.mkdir()
        (src / "cat.ndjson").write_bytes(b"\n".join(cat_lines) + b"\n")
        (src / "dog.ndjson").write_bytes(b"\n".join(lines["dog"]) + b"\n")
        fetch(words, tmp_path / f"raw-{name}", FetchOptions(source=str(src)))
        prepare(tmp_path / f"raw-{name}", tmp_path / f"prep-{name}", formats=("stroke3",))
        return tmp_path / f"prep-{name}"

    prep_a = fetch_and_prepare("a", lines["cat"])
    shards_a = _shard_files(prep_a)
    recs = [json.loads(x) for x in lines["cat"]]
    # Zstd sizes depend on the bytes, so look (deterministically) for a swap that keeps every shard's size.
    prep_b = None
    pairs = [(i, j) for i in range(len(recs)) for j in range(i + 1, len(recs)) if recs[i]["timestamp"] != recs[j]["timestamp"]]
    for n, (i, j) in enumerate(random.Random(0).sample(pairs, min(12, len(pairs)))):
        swapped = [dict(r) for r in recs]
        swapped[i]["timestamp"], swapped[j]["timestamp"] = recs[j]["timestamp"], recs[i]["timestamp"]
        cand = fetch_and_prepare(f"b{n}", [json.dumps(r, separators=(",", ":")).encode() for r in swapped])
        shards_b = _shard_files(cand)
        if shards_b.keys() == shards_a.keys() and all(len(shards_b[k]) == len(shards_a[k]) for k in shards_a):
            prep_b = cand
            break
    assert prep_b is not None, "no timestamp swap kept every shard's size; pick other drawings"
    assert shards_b != shards_a  # same sizes, different content

    root = tmp_path / "cache"
    va = build_cache(prep_a, root, "pets")
    vb = build_cache(prep_b, root, "pets")
    assert vb.version != va.version, "shards with other bytes (same sizes) were given the same cache version"
    # What a user loads is the second input, not the first one's cache.
    for split in ("train", "val", "test"):
        want = pq.read_table(prep_b / "stroke3" / split, columns=["key_id", "timestamp"]).to_pylist()
        got = qd.load("pets", split=split, root=root).to_polars().select("key_id", "timestamp").to_dicts()
        assert [(r["key_id"], r["timestamp"]) for r in got] == [(r["key_id"], r["timestamp"]) for r in want]


# ---------------------------------------------------------------------- (c) fetch cap on a chunk boundary


@pytest.mark.parametrize("tail", ["more-drawings", "filtered-tail"])
def test_cap_reached_exactly_at_the_end_of_a_read_stops_there(shared_data: Path, tmp_path: Path, tail: str) -> None:
    """The first read ends inside line N+1, so its chunk holds exactly the N drawings the cap asks for."""
    cap = 10
    recs = [json.loads(x) for x in real_lines(shared_data, "monkey")[:200]]
    if tail == "filtered-tail":  # the first N are kept, every later drawing is filtered out
        for i, r in enumerate(recs):
            r["recognized"] = i < cap
    lines = [json.dumps(r, separators=(",", ":")).encode() for r in recs]
    blob = b"\n".join(lines) + b"\n"
    first_n = sum(len(x) + 1 for x in lines[:cap])
    chunk = first_n + len(lines[cap]) // 2  # the read window ends in the middle of line N+1
    # A cap below MIN_CHUNK / BYTES_PER_DRAWING and a chunk below MIN_CHUNK: the first read is exactly `chunk` bytes.
    assert chunk < fetch_mod.MIN_CHUNK and cap * fetch_mod.BYTES_PER_DRAWING < fetch_mod.MIN_CHUNK
    assert len(blob) > 3 * chunk
    src = tmp_path / "src"
    src.mkdir()
    (src / "monkey.ndjson").write_bytes(blob)
    opts = FetchOptions(source=str(src), max_per_class=cap, chunk_bytes=chunk, recognized_only=(tail == "filtered-tail"))
    r = fetch("monkey", tmp_path / "raw", opts).classes[0]
    assert (r.accepted, r.read, r.stopped_early, r.bytes_read) == (cap, cap, True, chunk)
    man = json.loads((tmp_path / "raw" / "monkey" / "_manifest.json").read_text())
    assert man["counts"]["stopped_early"] is True and man["counts"]["read"] == cap and man["counts"]["accepted"] == cap
    got = pq.read_table(tmp_path / "raw" / "monkey").column("key_id").to_pylist()
    assert got == [int(x["key_id"]) for x in recs[:cap]]


# ------------------------------------------------------------------------- (d) batch() with unsorted indices


@pytest.fixture(scope="module")
def five_class_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("five")
    strokes = write_synthetic_strokes(base / "strokes", FIVE, 24, seed=21,
                                      fractions={"train": 0.5, "val": 0.25, "test": 0.25}, formats=("stroke3", "stroke5"))
    build_cache(strokes, base / "cache", "five")
    return base / "cache"


def _unsorted_indices(labels: np.ndarray) -> np.ndarray:
    """One index per class, classes in descending order, then two more: sorting them changes the labels."""
    per_class = [int(np.flatnonzero(labels == c)[-1]) for c in sorted(set(labels.tolist()), reverse=True)]
    idx = np.array(per_class + [per_class[-1], per_class[0] - 1], dtype=np.int64)
    assert labels[np.sort(idx)].tolist() != labels[idx].tolist()
    return idx


@pytest.mark.parametrize("fmt", ["stroke3", "stroke5"])
def test_batch_labels_follow_the_indices_asked_for(five_class_root: Path, fmt: str) -> None:
    ds = qd.load("five", split="train", format=fmt, root=five_class_root)
    labels = np.asarray(ds.labels)
    assert len(set(labels.tolist())) == len(FIVE) and (np.diff(labels) >= 0).all()  # rows are in label order
    idx = _unsorted_indices(labels)
    want = collate_padded([ds[int(i)] for i in idx])
    for b in (ds.batch(idx), make_batch(ds, idx)):
        assert b["labels"].tolist() == [ds[int(i)][1] for i in idx]
        assert b["lengths"].tolist() == [len(ds[int(i)][0]) for i in idx]
        assert torch.equal(b["x"], want["x"])
    assert torch.equal(ds.batch(idx)["labels"], want["labels"])


# --------------------------------------------------------------------------- (e) top-3 is top-3, not top-1


class Oracle(GRUClassifier):
    """A GRUClassifier whose logits are looked up by the sequence itself (bytes of its int16 steps).

    The batches come from the real code paths (length-bucketed order, ``SequenceDataset.batch``), so the
    lookup works whatever order the stage visits sequences in; unknown sequences (training batches) get zeros.
    """

    def __init__(self, config: ModelConfig, table: dict[bytes, np.ndarray]) -> None:
        super().__init__(config)
        self.table = table

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        k = self.config.n_classes
        rows = [self.table.get(x[b, : int(lengths[b])].detach().cpu().numpy().astype(np.int16).tobytes(), np.zeros(k))
                for b in range(x.shape[0])]
        out = torch.as_tensor(np.stack(rows), dtype=torch.float32, device=x.device)
        return out + 0.0 * sum(p.sum() for p in self.parameters())  # a gradient path for the training step


def ranked_logits(ds: SequenceDataset, k: int) -> tuple[dict[bytes, np.ndarray], float, float]:
    """Logits putting sequence i's true class at rank ``i % k``; returns the table and the true top-1, top-3."""
    table: dict[bytes, np.ndarray] = {}
    ranks = []
    for i in range(len(ds)):
        seq, y = ds[i]
        r = i % k
        others = [c for c in range(k) if c != y]
        random.Random(i).shuffle(others)
        order = others[:r] + [y] + others[r:]
        logits = np.zeros(k)
        logits[order] = np.arange(k, 0, -1, dtype=np.float64)  # order[0] highest
        key = np.asarray(seq, dtype=np.int16).tobytes()
        assert key not in table, "two sequences with the same steps: the oracle could not tell them apart"
        table[key] = logits
        ranks.append(r)
    ranks_a = np.array(ranks)
    return table, float((ranks_a == 0).mean()), float((ranks_a < 3).mean())


def test_evaluate_reports_top3_not_top1(five_class_root: Path, tmp_path: Path) -> None:
    ds = qd.load("five", split="test", root=five_class_root)
    table, top1, top3 = ranked_logits(ds, len(FIVE))
    assert len(ds) >= 15 and 0 < top1 < top3 < 1
    model = Oracle(ModelConfig(n_classes=len(FIVE), hidden=4, layers=1), table)
    doc = evaluate_on(model, {"classes": list(ds.classes)}, ds, tmp_path / "eval", batch_size=4)
    assert doc["top1"] == pytest.approx(top1) and doc["top3"] == pytest.approx(top3)
    on_disk = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert on_disk["top1"] == pytest.approx(top1) and on_disk["top3"] == pytest.approx(top3)


def test_training_validation_logs_top3_not_top1(five_class_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    train_ds = qd.load("five", split="train", root=five_class_root)
    val_ds = qd.load("five", split="val", root=five_class_root)
    table, top1, top3 = ranked_logits(val_ds, len(FIVE))
    assert len(val_ds) >= 15 and 0 < top1 < top3 < 1
    made: list[Oracle] = []

    def oracle(config: ModelConfig) -> Oracle:
        made.append(Oracle(config, table))
        return made[-1]

    monkeypatch.setattr(train_mod, "GRUClassifier", oracle)
    params = TrainParams(epochs=1, hidden=4, layers=1, batch_size=3, max_steps_per_epoch=1, warmup_steps=0,
                         device="cpu", scale_sample=50)
    res = train_on(train_ds, val_ds, tmp_path / "model", params=params, live_dir=tmp_path / "live")
    assert made, "train_on did not build its model through pipeline.train.GRUClassifier"
    row = res.history[0]
    assert row["val_top1"] == pytest.approx(top1) and row["val_top3"] == pytest.approx(top3)
    # What dvclive records for `dvc exp show` / `dvc plots`.
    live = json.loads((tmp_path / "live" / "metrics.json").read_text())
    assert live["val"]["top1"] == pytest.approx(top1) and live["val"]["top3"] == pytest.approx(top3)


def test_validate_computes_top3_over_more_than_three_classes(five_class_root: Path) -> None:
    val_ds = qd.load("five", split="val", root=five_class_root)
    table, top1, top3 = ranked_logits(val_ds, len(FIVE))
    model = Oracle(ModelConfig(n_classes=len(FIVE), hidden=4, layers=1), table)
    got: dict[str, Any] = train_mod._validate(model, val_ds, np.arange(len(val_ds)), 4, torch.device("cpu"))
    assert got["top1"] == pytest.approx(top1) and got["top3"] == pytest.approx(top3)
