"""Logits -> P(synthetic), validity of rows, and the maximally-wrong replacement."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gas.scoring import (
    ScoringInputError,
    binary_metrics,
    maximally_wrong,
    p_synthetic_from_logits,
    predict_synthetic,
)

FAST = settings(max_examples=60, deadline=None)


def test_one_logit_is_a_sigmoid():
    p, valid = p_synthetic_from_logits(np.array([[0.0], [2.0], [-2.0], [1000.0], [-1000.0]]))
    assert valid.all()
    assert p[0] == 0.5  # exactly 0.5 -> predicts real
    assert p[1] == pytest.approx(1 / (1 + math.exp(-2.0)))
    assert p[2] == pytest.approx(1 / (1 + math.exp(2.0)))
    assert p[3] == 1.0 and p[4] == 0.0  # no overflow for huge logits
    assert predict_synthetic(p).tolist() == [False, True, False, True, False]


def test_two_classes_softmax_and_tie_predicts_real():
    # softmax([0, ln 3]) = [1/4, 3/4]
    z = np.array([[0.0, math.log(3.0)], [1.5, 1.5], [1000.0, 0.0], [0.0, 1000.0], [-7.0, -7.0]])
    p, valid = p_synthetic_from_logits(z, num_classes=2)
    assert valid.all()
    assert p[0] == pytest.approx(0.75)
    assert p[1] == 0.5 and p[4] == 0.5  # ties
    assert p[2] == pytest.approx(0.0, abs=1e-300) and p[3] == 1.0
    assert predict_synthetic(p).tolist() == [True, False, False, True, False]


def test_three_classes_use_one_minus_p_real():
    # p = [0.4, 0.35, 0.25]: argmax says real (the reference's prediction), but
    # P(synthetic) = 1 - 0.4 = 0.6, so our one rule predicts synthetic, consistent with Brier.
    z = np.log(np.array([[0.4, 0.35, 0.25], [0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]))
    p, valid = p_synthetic_from_logits(z, num_classes=3)
    assert valid.all()
    np.testing.assert_allclose(p, [0.6, 0.3, 0.9], atol=1e-12)
    assert predict_synthetic(p).tolist() == [True, False, True]


def test_four_classes_not_inverted():
    # The reference uses p[0] (= P(real)) as P(AI) for 4+ classes; we use 1 - p[0].
    z = np.log(np.array([[0.9, 0.05, 0.03, 0.02], [0.1, 0.3, 0.3, 0.3]]))
    p, _ = p_synthetic_from_logits(z, num_classes=4)
    np.testing.assert_allclose(p, [0.1, 0.9], atol=1e-12)


def test_precision_kept_when_p_real_is_tiny():
    # 1 - p[0] would round to 1.0 - 1e-20 == 1.0; summing p[1:] keeps the small tail right.
    z = np.array([[0.0, 50.0, 50.0], [50.0, 0.0, 0.0]])
    p, _ = p_synthetic_from_logits(z)
    assert p[1] == pytest.approx(2 * math.exp(-50.0) / (1 + 2 * math.exp(-50.0)), rel=1e-12)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("width", [1, 2, 3, 12])
def test_non_finite_rows_are_invalid(bad, width):
    z = np.zeros((3, width))
    z[1, -1] = bad
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning leaks out
        p, valid = p_synthetic_from_logits(z)
    assert valid.tolist() == [True, False, True]
    assert np.isnan(p[1])
    assert np.isfinite(p[[0, 2]]).all()


def test_wrong_width_is_invalid():
    p, valid = p_synthetic_from_logits(np.zeros((4, 3)), num_classes=2)
    assert not valid.any() and np.isnan(p).all()
    p, valid = p_synthetic_from_logits(np.zeros((4, 0)))
    assert not valid.any() and p.shape == (4,)
    p, valid = p_synthetic_from_logits(np.zeros((0, 2)), num_classes=2)
    assert p.shape == valid.shape == (0,)


@pytest.mark.parametrize("bad", [np.zeros(3), np.zeros((2, 2, 2)), [["a", "b"]]])
def test_bad_logit_arrays_raise(bad):
    with pytest.raises(ScoringInputError):
        p_synthetic_from_logits(bad)


def test_bad_num_classes_raises():
    with pytest.raises(ScoringInputError, match="num_classes"):
        p_synthetic_from_logits(np.zeros((1, 2)), num_classes=0)


def test_invalid_rows_count_as_maximally_wrong():
    labels = np.array([1, 0, 1, 0])
    z = np.array([[0.0, 5.0], [math.nan, 0.0], [math.inf, 1.0], [5.0, 0.0]])
    p, valid = p_synthetic_from_logits(z, num_classes=2)
    fixed = maximally_wrong(p, valid, labels)
    assert np.isnan(p[1])  # input untouched
    assert fixed[1] == 1.0 and fixed[2] == 0.0  # real -> "synthetic", synthetic -> "real"
    assert fixed[0] == p[0] and fixed[3] == p[3]
    m = binary_metrics(labels, fixed)
    # rows 1 and 2 are wrong (FP and FN), rows 0 and 3 right; each bad row adds (1 - 1e-7)^2 to Brier
    assert (m.tp, m.tn, m.fp, m.fn) == (1.0, 1.0, 1.0, 1.0)
    good = (1 - p[0]) ** 2 + p[3] ** 2
    assert m.brier == pytest.approx((good + 2 * (1 - 1e-7) ** 2) / 4)


def test_nan_probabilities_are_rejected_not_scored():
    p, _ = p_synthetic_from_logits(np.array([[math.nan, 0.0]]))
    with pytest.raises(ScoringInputError):
        binary_metrics([1], p)


def test_maximally_wrong_checks_shapes():
    with pytest.raises(ScoringInputError):
        maximally_wrong([0.5, 0.5], np.array([True]), [0, 1])
    with pytest.raises(ScoringInputError):
        maximally_wrong([0.5], np.array([1]), [0])
    with pytest.raises(ScoringInputError):
        maximally_wrong([0.5], np.array([False]), [3])


finite_logits = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False)


@FAST
@given(
    hnp.arrays(np.float64, st.tuples(st.integers(1, 20), st.integers(1, 5)), elements=finite_logits),
    st.floats(-100, 100),
)
def test_probabilities_in_range_and_shift_invariant(z, shift):
    p, valid = p_synthetic_from_logits(z)
    assert valid.all()
    assert ((p >= 0) & (p <= 1)).all()
    if z.shape[1] >= 2:
        q, _ = p_synthetic_from_logits(z + shift)
        np.testing.assert_allclose(q, p, atol=1e-9)


@FAST
@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 20), st.just(2)), elements=finite_logits))
def test_two_class_softmax_equals_sigmoid_of_difference(z):
    p2, _ = p_synthetic_from_logits(z)
    p1, _ = p_synthetic_from_logits((z[:, 1] - z[:, 0])[:, None])
    np.testing.assert_allclose(p2, p1, atol=1e-12)


@FAST
@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 20), st.integers(3, 24)), elements=finite_logits))
def test_many_classes_match_direct_softmax(z):
    # widths up to 8 take the column-by-column path, wider ones the axis reductions
    e = np.exp(z - z.max(axis=1, keepdims=True))
    expected = 1.0 - e[:, 0] / e.sum(axis=1)
    p, _ = p_synthetic_from_logits(z)
    np.testing.assert_allclose(p, expected, atol=1e-12)
