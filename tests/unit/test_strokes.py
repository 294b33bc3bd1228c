"""Stroke encodings: round trips, Sketch-RNN compatibility, the vectorised Arrow path, length rules."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quickdraw.sources.schema import DRAWING_TYPE
from quickdraw.strokes import (
    Stroke3Batch,
    apply_length_rules,
    arrow_drawings_to_stroke3,
    drawing_to_stroke3,
    normalizing_scale,
    pad_stroke5,
    stroke3_batch_to_stroke5,
    stroke3_to_points,
    stroke3_to_stroke5,
    stroke3_to_strokes,
    stroke5_to_stroke3,
)

coord = st.integers(0, 255)


@st.composite
def strokes_(draw: st.DrawFn, max_strokes: int = 6, max_points: int = 15) -> list[list[list[int]]]:
    out = []
    for _ in range(draw(st.integers(1, max_strokes))):
        n = draw(st.integers(1, max_points))
        out.append([draw(st.lists(coord, min_size=n, max_size=n)), draw(st.lists(coord, min_size=n, max_size=n))])
    return out


drawings_ = st.lists(st.one_of(strokes_(), st.just([])), min_size=0, max_size=12)  # [] : a drawing without points


def arrow_column(drawings: list[list[list[list[int]]]]) -> pa.Array:
    return pa.array(
        [{"x": [v for s in d for v in s[0]], "y": [v for s in d for v in s[1]], "stroke_len": [len(s[0]) for s in d]}
         for d in drawings],
        type=DRAWING_TYPE,
    )


# Sketch-RNN's own definitions (magenta/models/sketch_rnn/utils.py), restated as the reference.
def ref_to_big_strokes(stroke: np.ndarray, max_len: int) -> np.ndarray:
    result = np.zeros((max_len, 5), dtype=float)
    n = len(stroke)
    assert n <= max_len
    result[0:n, 0:2] = stroke[:, 0:2]
    result[0:n, 3] = stroke[:, 2]
    result[0:n, 2] = 1 - result[0:n, 3]
    result[n:, 4] = 1
    return result


def ref_to_normal_strokes(big: np.ndarray) -> np.ndarray:
    n = 0
    for i in range(len(big)):
        if big[i, 4] > 0:
            n = i
            break
    if n == 0:
        n = len(big)
    result = np.zeros((n, 3))
    result[:, 0:2] = big[0:n, 0:2]
    result[:, 2] = big[0:n, 3]
    return result


def test_example_encoding() -> None:
    s3 = drawing_to_stroke3([[[10, 12, 15], [5, 5, 7]], [[0, 1], [0, 255]]])
    assert s3.dtype == np.int16
    assert s3.tolist() == [[10, 5, 0], [2, 0, 0], [3, 2, 1], [-15, -7, 0], [1, 255, 1]]
    assert stroke3_to_stroke5(s3)[-1].tolist() == [0, 0, 0, 0, 1]
    assert stroke3_to_stroke5(s3)[0].tolist() == [10, 5, 1, 0, 0]


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])  # shared CI machines: timing is not what these properties test
@given(strokes_())
def test_stroke3_back_to_absolute_reproduces_input(drawing: list[list[list[int]]]) -> None:
    s3 = drawing_to_stroke3(drawing)
    assert len(s3) == sum(len(s[0]) for s in drawing)
    assert stroke3_to_strokes(s3) == drawing
    pts = stroke3_to_points(s3)
    assert pts[:, 0].tolist() == [v for s in drawing for v in s[0]]
    assert int(s3[:, 2].sum()) == len(drawing)  # one pen lift per stroke, on its last point


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(strokes_())
def test_stroke5_matches_sketch_rnn_and_round_trips(drawing: list[list[list[int]]]) -> None:
    s3 = drawing_to_stroke3(drawing)
    s5 = stroke3_to_stroke5(s3)
    assert s5.dtype == np.int16 and s5.shape == (len(s3) + 1, 5)
    # Unpadded stroke-5 is to_big_strokes with room for exactly the one end step...
    np.testing.assert_array_equal(s5, ref_to_big_strokes(s3, len(s3) + 1))
    # ...and padding gives to_big_strokes at any length.
    np.testing.assert_array_equal(pad_stroke5(s5, 250 + 1), ref_to_big_strokes(s3, 251))
    np.testing.assert_array_equal(stroke5_to_stroke3(s5), s3)
    np.testing.assert_array_equal(stroke5_to_stroke3(pad_stroke5(s5, 260)), ref_to_normal_strokes(ref_to_big_strokes(s3, 260)))
    assert (s5[:, 2:].sum(axis=1) == 1).all()  # one-hot pen state


def test_stroke5_edge_cases() -> None:
    with pytest.raises(ValueError):
        pad_stroke5(np.zeros((3, 5), np.int16), 2)
    assert stroke5_to_stroke3(np.array([[0, 0, 0, 0, 1]])).shape == (0, 3)
    assert drawing_to_stroke3([]).shape == (0, 3)
    assert drawing_to_stroke3([[[], []], [[3], [4]]]).tolist() == [[3, 4, 1]]  # empty strokes carry nothing


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(drawings_, st.integers(0, 5), st.integers(0, 5))
def test_arrow_batch_matches_per_drawing_reference(drawings: list, lo: int, trim: int) -> None:
    col = arrow_column(drawings)
    hi = max(lo, len(drawings) - trim)
    lo = min(lo, hi)
    sliced = col.slice(lo, hi - lo)  # slices have non-zero offsets into the child arrays
    for arr in (col, sliced, pa.chunked_array([col.slice(0, lo), col.slice(lo)], type=col.type)):
        batch = arrow_drawings_to_stroke3(arr)
        subset = drawings if arr is not sliced else drawings[lo:hi]
        assert len(batch) == len(subset)
        for i, d in enumerate(subset):
            np.testing.assert_array_equal(batch[i], drawing_to_stroke3(d))


def test_arrow_batch_rejects_mismatched_xy() -> None:
    col = pa.array([{"x": [1, 2], "y": [1], "stroke_len": [2]}], type=DRAWING_TYPE)
    with pytest.raises(ValueError, match="x and y"):
        arrow_drawings_to_stroke3(col)


def test_arrow_batch_rejects_stroke_len_not_adding_up() -> None:
    col = pa.array([{"x": [1, 2, 3], "y": [1, 2, 3], "stroke_len": [1, 1]}], type=DRAWING_TYPE)
    with pytest.raises(ValueError, match="stroke_len"):
        arrow_drawings_to_stroke3(col)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(drawings_)
def test_batch_stroke5_matches_single(drawings: list) -> None:
    batch = arrow_drawings_to_stroke3(arrow_column(drawings))
    steps5, off5 = stroke3_batch_to_stroke5(batch)
    assert off5[-1] == len(steps5) == len(batch.steps) + len(batch)
    for i in range(len(batch)):
        np.testing.assert_array_equal(steps5[off5[i] : off5[i + 1]], stroke3_to_stroke5(batch[i]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(drawings_, st.integers(0, 20), st.integers(1, 40), st.sampled_from(["truncate", "drop"]))
def test_length_rules(drawings: list, min_len: int, max_len: int, on_long: str) -> None:
    if min_len > max_len:
        min_len, max_len = max_len, min_len
    batch = arrow_drawings_to_stroke3(arrow_column(drawings))
    res = apply_length_rules(batch, min_len=min_len, max_len=max_len, on_long=on_long)  # type: ignore[arg-type]
    lengths = batch.lengths
    expect_kept = (lengths >= min_len) & ((lengths <= max_len) | (on_long == "truncate"))
    np.testing.assert_array_equal(res.kept, expect_kept)
    assert res.too_short == int((lengths < min_len).sum())
    assert res.too_long_dropped == (int(((lengths > max_len) & (lengths >= min_len)).sum()) if on_long == "drop" else 0)
    assert res.too_short + res.too_long_dropped + len(res.batch) == len(batch)
    for j, i in enumerate(np.flatnonzero(res.kept)):
        got, src = res.batch[j], batch[i]
        assert len(got) == min(len(src), max_len) >= min_len
        np.testing.assert_array_equal(got[:, :2], src[: len(got), :2])
        np.testing.assert_array_equal(got[:-1, 2], src[: len(got) - 1, 2])
        assert len(got) == 0 or got[-1, 2] == 1  # a truncated drawing still ends with a pen lift
        assert res.truncated[i] == (len(src) > max_len)


def test_length_rules_with_empty_drawings() -> None:
    drawings = [[], [[[1, 2], [3, 4]]], [], [[[5], [6]]]]
    res = apply_length_rules(arrow_drawings_to_stroke3(arrow_column(drawings)), min_len=0, max_len=1)
    assert res.kept.all() and res.n_truncated == 1
    assert [res.batch[i].tolist() for i in range(4)] == [[], [[1, 3, 1]], [], [[5, 6, 1]]]


def test_length_rules_reject_bad_params() -> None:
    batch = Stroke3Batch(np.zeros((0, 3), np.int16), np.zeros(1, np.int64))
    with pytest.raises(ValueError):
        apply_length_rules(batch, on_long="cut")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        apply_length_rules(batch, min_len=10, max_len=5)


def test_normalizing_scale_is_std_of_dx_dy() -> None:
    steps = np.array([[1, 2, 0], [3, -4, 1]], np.int16)
    assert normalizing_scale(steps) == pytest.approx(np.std([1, 2, 3, -4]))
