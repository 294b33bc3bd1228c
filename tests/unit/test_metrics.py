"""metrics.py against hand-worked cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quickdraw.metrics import (
    confusion_matrix,
    expected_calibration_error,
    per_class_accuracy,
    reliability_bins,
    top_k_accuracy,
    top_k_correct,
)

SCORES = np.array([
    [0.1, 0.6, 0.3],  # label 1: top-1 hit
    [0.5, 0.2, 0.3],  # label 2: top-1 miss (0), top-2 hit (0, 2)
    [0.2, 0.3, 0.5],  # label 0: top-1 miss, top-2 miss (2, 1), top-3 hit
    [0.7, 0.2, 0.1],  # label 0: hit
])
LABELS = np.array([1, 2, 0, 0])


def test_top_k_hand_worked() -> None:
    assert top_k_correct(SCORES, LABELS, 1).tolist() == [True, False, False, True]
    assert top_k_accuracy(SCORES, LABELS, 1) == 0.5
    assert top_k_accuracy(SCORES, LABELS, 2) == 0.75
    assert top_k_accuracy(SCORES, LABELS, 3) == 1.0
    assert top_k_accuracy(SCORES, LABELS, 10) == 1.0  # k beyond the class count is clipped


def test_top_k_ties_go_to_lower_index_and_bad_shapes() -> None:
    assert top_k_correct([[0.5, 0.5]], [0], 1).tolist() == [True]
    assert top_k_correct([[0.5, 0.5]], [1], 1).tolist() == [False]
    assert math.isnan(top_k_accuracy(np.zeros((0, 3)), np.zeros(0), 1))
    with pytest.raises(ValueError):
        top_k_accuracy(SCORES, LABELS[:2], 1)
    with pytest.raises(ValueError):
        top_k_accuracy(SCORES, LABELS, 0)


def test_confusion_and_per_class() -> None:
    preds = SCORES.argmax(1)  # [1, 0, 2, 0]
    cm = confusion_matrix(LABELS, preds, 4)
    assert cm.tolist() == [[1, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    acc = per_class_accuracy(LABELS, preds, 4)
    assert acc[:3].tolist() == [0.5, 1.0, 0.0]
    assert math.isnan(acc[3])


def test_ece_hand_worked_two_bins() -> None:
    # 2 bins: (0, .5] and (.5, 1]
    conf = [0.2, 0.4, 0.9, 0.8, 0.7, 0.6]
    ok = [0, 1, 1, 1, 0, 1]
    # bin 0: acc 1/2, conf 0.3 -> |0.5 - 0.3| = 0.2, weight 2/6
    # bin 1: acc 3/4, conf 0.75 -> 0, weight 4/6
    assert expected_calibration_error(conf, ok, n_bins=2) == pytest.approx(0.2 * 2 / 6)


def test_ece_bin_edges_are_right_closed() -> None:
    bins = reliability_bins([0.0, 0.5, 0.5000001, 1.0], [1, 1, 0, 0], n_bins=2)
    assert [b["count"] for b in bins] == [2, 2]
    assert bins[0]["accuracy"] == 1.0 and bins[1]["accuracy"] == 0.0
    assert bins[0]["lo"] == 0.0 and bins[1]["hi"] == 1.0
    # 15 bins: 1/15 exactly lands in bin 0, a hair above in bin 1
    b15 = reliability_bins([1 / 15, 1 / 15 + 1e-9], [1, 1], n_bins=15)
    assert b15[0]["count"] == 1 and b15[1]["count"] == 1
    assert b15[2]["accuracy"] is None


def test_ece_perfect_and_worst_and_empty() -> None:
    assert expected_calibration_error([1.0, 1.0], [1, 1]) == 0.0
    assert expected_calibration_error([1.0, 1.0], [0, 0]) == 1.0
    assert expected_calibration_error([], []) == 0.0
    with pytest.raises(ValueError):
        expected_calibration_error([1.5], [1])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.booleans()), min_size=1, max_size=60))
def test_ece_bounds_and_counts(rows: list[tuple[float, bool]]) -> None:
    conf, ok = zip(*rows, strict=True)
    ece = expected_calibration_error(conf, ok)
    assert 0.0 <= ece <= 1.0 + 1e-12
    assert sum(b["count"] for b in reliability_bins(conf, ok)) == len(rows)
    # ECE is bounded by the mean |confidence - correctness| (triangle inequality per bin)
    assert ece <= float(np.mean(np.abs(np.array(conf) - np.array(ok, dtype=float)))) + 1e-9
