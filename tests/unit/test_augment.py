"""Augmentation keeps drawings valid stroke-3, does what each knob says, is seeded, and touches only training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from quickdraw.datasets import augment as aug_mod
from quickdraw.datasets.augment import Augment, augment_batch, augment_stroke3


@st.composite
def stroke3(draw: Any) -> np.ndarray:
    """A random valid stroke-3 drawing: int16 deltas, 0/1 pen lifts, the last point ending its stroke."""
    n = draw(st.integers(1, 80))
    xy = draw(arrays(np.int16, (n, 2), elements=st.integers(-60, 60)))
    pen = draw(arrays(np.int16, (n,), elements=st.integers(0, 1)))
    pen[-1] = 1
    return np.column_stack([xy, pen]).astype(np.int16)


def assert_valid(out: np.ndarray, src: np.ndarray) -> None:
    assert out.dtype == np.int16 and out.ndim == 2 and out.shape[1] == 3
    assert 1 <= len(out) <= len(src)
    assert set(np.unique(out[:, 2]).tolist()) <= {0, 1}
    assert out[-1, 2] == 1  # the last point still ends a stroke


def absolute(seq: np.ndarray) -> np.ndarray:
    return np.cumsum(seq[:, :2].astype(np.int64), axis=0)


KNOBS = {
    "scale": Augment(scale=0.3),
    "rotate": Augment(rotate=15),
    "stroke_dropout": Augment(stroke_dropout=0.4),
    "jitter": Augment(jitter=2.0),
    "all": Augment(scale=0.2, rotate=10, stroke_dropout=0.3, jitter=1.5),
}


@pytest.mark.parametrize("name", list(KNOBS))
@settings(max_examples=80, deadline=None)
@given(seq=stroke3(), seed=st.integers(0, 2**31))
def test_output_is_valid_stroke3(name: str, seq: np.ndarray, seed: int) -> None:
    aug = KNOBS[name]
    out = augment_stroke3(seq, np.random.default_rng(seed), aug)
    assert_valid(out, seq)
    if not aug.stroke_dropout:  # geometry only: same points, same pen lifts
        assert len(out) == len(seq) and np.array_equal(out[:, 2], seq[:, 2])


@settings(max_examples=80, deadline=None)
@given(seq=stroke3(), seed=st.integers(0, 2**31))
def test_stroke_dropout_drops_whole_strokes_in_place(seq: np.ndarray, seed: int) -> None:
    """The output is whole original strokes, in order, at their original absolute positions."""
    out = augment_stroke3(seq, np.random.default_rng(seed), Augment(stroke_dropout=0.5))
    src_abs, out_abs = absolute(seq), absolute(out)
    strokes = np.split(np.arange(len(seq)), np.flatnonzero(seq[:, 2])[:-1] + 1)
    at, kept = 0, 0
    for s in strokes:  # greedy: identical strokes are interchangeable, so taking the first match is safe
        n = len(s)
        if np.array_equal(out_abs[at : at + n], src_abs[s]) and np.array_equal(out[at : at + n, 2], seq[s, 2]):
            at, kept = at + n, kept + 1
    assert at == len(out) and kept >= 1
    assert int(out[:, 2].sum()) == kept


def test_stroke_dropout_exact_example() -> None:
    # three strokes: (0..1), (2..3), (4); drop the middle one by seeding until it is the only one dropped
    seq = np.array([[10, 10, 0], [5, 0, 1], [0, 20, 0], [5, 5, 1], [-30, 0, 1]], np.int16)
    for seed in range(200):
        out = augment_stroke3(seq, np.random.default_rng(seed), Augment(stroke_dropout=0.34))
        if len(out) == 3 and out[:, 2].tolist() == [0, 1, 1] and absolute(out)[1].tolist() == [15, 10]:
            if absolute(out)[2].tolist() == [-10, 35]:
                break
    else:
        pytest.fail("no seed dropped exactly the middle stroke")
    # the last stroke stays where it was: its delta now spans the dropped stroke
    assert out.tolist() == [[10, 10, 0], [5, 0, 1], [-25, 25, 1]]


def test_scale_and_rotation_do_what_they_say() -> None:
    t = np.linspace(0, 2 * np.pi, 60, endpoint=False)
    pts = np.round(np.column_stack([100 + 80 * np.cos(t), 100 + 40 * np.sin(t)])).astype(np.int64)
    seq = np.column_stack([np.diff(pts, axis=0, prepend=np.zeros((1, 2), np.int64)), np.zeros(60)]).astype(np.int16)
    seq[-1, 2] = 1
    w0, h0 = np.ptp(absolute(seq), axis=0)
    ratios = []
    for seed in range(30):
        out = augment_stroke3(seq, np.random.default_rng(seed), Augment(scale=0.25))
        w, h = np.ptp(absolute(out), axis=0)
        assert 0.75 * w0 - 2 <= w <= 1.25 * w0 + 2 and 0.75 * h0 - 2 <= h <= 1.25 * h0 + 2
        ratios.append((w / w0) / (h / h0))
    assert np.ptp(ratios) > 0.1  # anisotropic: x and y get different factors
    # rotation keeps distances from the centre (up to rounding) and moves points
    c0 = absolute(seq) - (absolute(seq).min(0) + absolute(seq).max(0)) / 2
    moved = 0
    for seed in range(10):
        out = augment_stroke3(seq, np.random.default_rng(seed), Augment(rotate=10))
        c1 = absolute(out) - (absolute(seq).min(0) + absolute(seq).max(0)) / 2
        assert np.allclose(np.hypot(*c0.T), np.hypot(*c1.T), atol=1.5)
        angle = np.degrees(np.arctan2(c1[:, 1], c1[:, 0]) - np.arctan2(c0[:, 1], c0[:, 0]))
        angle = (angle + 180) % 360 - 180
        assert np.abs(np.median(angle)) <= 10.5
        moved += not np.array_equal(out, seq)
    assert moved >= 8


def test_seeded_per_drawing_and_off_is_identity() -> None:
    rng = np.random.default_rng(0)
    seqs = []
    for n in (12, 30, 7):
        s = np.column_stack([rng.integers(-20, 21, (n, 2)), rng.random(n) < 0.2]).astype(np.int16)
        s[-1, 2] = 1
        seqs.append(s)
    a = KNOBS["all"]
    one = augment_batch(seqs, [4, 9, 2], a, seed=3, epoch=1)
    again = augment_batch(seqs, [4, 9, 2], a, seed=3, epoch=1)
    assert all(np.array_equal(x, y) for x, y in zip(one, again, strict=True))
    # a drawing's augmentation depends on its key, not on its batch neighbours or position (DDP shards)
    alone = augment_batch(seqs[1:2], [9], a, seed=3, epoch=1)
    assert np.array_equal(alone[0], one[1])
    other_epoch = augment_batch(seqs, [4, 9, 2], a, seed=3, epoch=2)
    assert any(not np.array_equal(x, y) for x, y in zip(one, other_epoch, strict=True))
    off = augment_batch(seqs, [4, 9, 2], Augment(), seed=3, epoch=1)
    assert all(np.array_equal(x, y) for x, y in zip(off, seqs, strict=True))
    with pytest.raises(ValueError, match="rotate"):
        Augment(rotate=-1)


def test_trainer_augments_training_batches_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.unit.test_train import TINY, StandIn

    from quickdraw.pipeline import train as train_mod

    calls: list[int] = []
    real = aug_mod.augment_batch

    def spy(seqs: Any, keys: Any, aug: Augment, seed: int, epoch: int) -> list[np.ndarray]:
        calls.append(len(seqs))
        return real(seqs, keys, aug, seed, epoch)

    monkeypatch.setattr(train_mod, "augment_batch", spy)
    p = train_mod.TrainParams(**{**TINY.to_dict(), "epochs": 2, "max_steps_per_epoch": 3, "aug_scale": 0.2,
                                 "aug_stroke_dropout": 0.2, "aug_jitter": 1.0, "aug_rotate": 5.0})
    train_ds, val_ds = StandIn(10, 0), StandIn(4, 1)
    r = train_mod.train_on(train_ds, val_ds, tmp_path / "m", params=p, live_dir=tmp_path / "live")
    plan = train_mod.plan_schedule(len(train_ds), p)
    assert len(calls) == 2 * plan.steps_per_epoch  # one call per training step, none for validation
    assert sum(calls) == 2 * len(train_ds) and np.isfinite(r.history[-1]["val_loss"])  # every drawing, each epoch
    calls.clear()
    train_mod.train_on(train_ds, val_ds, tmp_path / "m0", params=train_mod.TrainParams(**{**p.to_dict(), "aug_scale": 0,
                       "aug_stroke_dropout": 0, "aug_jitter": 0, "aug_rotate": 0}), live_dir=tmp_path / "live0")
    assert calls == []  # off by default: no augmentation work at all
