"""Detector metrics: hand-worked examples, scikit-learn cross-checks and properties."""

from __future__ import annotations

import math
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import brier_score_loss, matthews_corrcoef

from gas.scoring import (
    BinaryMetrics,
    Confusion,
    ScoringInputError,
    accuracy,
    binary_metrics,
    brier,
    confusion_counts,
    mcc,
    predict_synthetic,
    sn34_score,
)

AGGS = ("geomean", "harmmean", "mean")
FIELDS = ("n", "weight_sum", "tp", "tn", "fp", "fn", "accuracy", "mcc", "brier", "sn34")
FAST = settings(max_examples=60, deadline=None)


def sk_mcc(y, p, w=None) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "a single label was found" on one-class draws
        return float(matthews_corrcoef(y, (np.asarray(p) > 0.5).astype(int), sample_weight=w))


def sk_brier(y, p, w=None) -> float:
    return float(brier_score_loss(y, p, sample_weight=w, labels=[0, 1]))


# --------------------------------------------------------------------------------------------------
# worked examples


def test_confusion_and_mcc_by_hand():
    # 4 synthetic: 3 caught (TP), 1 missed (FN); 6 real: 5 passed (TN), 1 flagged (FP).
    labels = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    preds = [1, 1, 1, 0, 1, 0, 0, 0, 0, 0]
    conf = confusion_counts(labels, preds)
    assert conf == Confusion(tp=3, tn=5, fp=1, fn=1)
    assert conf.total == 10
    # MCC = (3*5 - 1*1) / sqrt((3+1)(3+1)(5+1)(5+1)) = 14 / sqrt(4*4*6*6) = 14/24
    assert mcc(conf) == pytest.approx(14 / 24, abs=1e-15)
    assert accuracy(labels, preds) == pytest.approx(0.8)


def test_weighted_confusion_by_hand():
    labels = [1, 1, 0, 0]
    preds = [1, 0, 1, 0]
    conf = confusion_counts(labels, preds, weights=[2.0, 0.5, 1.5, 4.0])
    assert conf == Confusion(tp=2.0, tn=4.0, fp=1.5, fn=0.5)
    # MCC = (2*4 - 1.5*0.5) / sqrt(3.5 * 2.5 * 5.5 * 4.5) = 7.25 / sqrt(216.5625) = 7.25 / 14.7161...
    assert mcc(conf) == pytest.approx(7.25 / math.sqrt(3.5 * 2.5 * 5.5 * 4.5), abs=1e-15)
    assert accuracy(labels, preds, [2.0, 0.5, 1.5, 4.0]) == pytest.approx(6.0 / 8.0)


def test_brier_by_hand():
    # (0.9-1)^2 = 0.01 and (0.2-0)^2 = 0.04 -> mean 0.025; weighted 3:1 -> (0.03+0.04)/4 = 0.0175
    assert brier([1, 0], [0.9, 0.2]) == pytest.approx(0.025)
    assert brier([1, 0], [0.9, 0.2], [3, 1]) == pytest.approx(0.0175)
    # Clipping: p=0 for a synthetic sample costs (1e-7 - 1)^2, not exactly 1.
    assert brier([1], [0.0]) == pytest.approx((1 - 1e-7) ** 2, abs=1e-16)
    assert brier([0], [0.0]) == pytest.approx(1e-14, abs=1e-20)


def test_sn34_worked_example_from_the_gasbench_readme():
    # gasbench's README shows MCC 0.7045 and Brier 0.1523 with sn34 0.7891, which the formula
    # cannot give (anchors.md 1b). By hand:
    #   m = ((0.7045 + 1) / 2)^1.2 = 0.85225^1.2 = exp(1.2 * ln 0.85225) = exp(-0.191845) = 0.825430
    #   b = ((0.25 - 0.1523) / 0.25)^1.8 = 0.3908^1.8 = exp(1.8 * ln 0.3908) = exp(-1.691203) = 0.184297
    #   geomean = sqrt(0.825430 * 0.184297) = sqrt(0.152124) = 0.390031
    #   harmmean = 2 * 0.152124 / (0.825430 + 0.184297) = 0.301318;  mean = 1.009727 / 2 = 0.504864
    assert sn34_score(0.7045, 0.1523) == pytest.approx(0.3900311607, abs=1e-9)
    assert sn34_score(0.7045, 0.1523, agg="harmmean") == pytest.approx(0.3013176116, abs=1e-9)
    assert sn34_score(0.7045, 0.1523, agg="mean") == pytest.approx(0.5048636405, abs=1e-9)
    assert abs(sn34_score(0.7045, 0.1523) - 0.7891) > 0.3


def test_sn34_extremes():
    assert sn34_score(1.0, 0.0) == pytest.approx(1.0)
    # Geomean has a floor of sqrt(1e-12) = 1e-6 (reference rule); the other two reach 0.
    assert sn34_score(-1.0, 0.0) == pytest.approx(1e-6)
    assert sn34_score(1.0, 0.25) == pytest.approx(1e-6)
    assert sn34_score(1.0, 0.9) == pytest.approx(1e-6)  # worse than chance is clamped, not negative
    assert sn34_score(-1.0, 0.0, agg="harmmean") == 0.0
    assert sn34_score(-1.0, 0.25, agg="mean") == 0.0
    assert sn34_score(0.0, 0.0, agg="mean") == pytest.approx((0.5**1.2 + 1.0) / 2)


@pytest.mark.parametrize("agg", AGGS)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_sn34_non_finite_inputs_count_as_worst(agg, bad):
    # NaN MCC behaves like MCC = -1 and NaN Brier like Brier = 0.25: never a good score.
    assert sn34_score(bad, 0.0, agg=agg) == sn34_score(-1.0, 0.0, agg=agg)
    assert sn34_score(1.0, bad, agg=agg) == sn34_score(1.0, 0.25, agg=agg)
    assert sn34_score(bad, bad, agg=agg) == sn34_score(-1.0, 0.25, agg=agg)
    assert not math.isnan(sn34_score(bad, bad, agg=agg))


def test_sn34_parameter_validation():
    with pytest.raises(ScoringInputError, match="agg"):
        sn34_score(0.5, 0.1, agg="max")
    with pytest.raises(ScoringInputError, match="alpha"):
        sn34_score(0.5, 0.1, alpha=-1)
    with pytest.raises(ScoringInputError, match="beta"):
        sn34_score(0.5, 0.1, beta=math.nan)
    with pytest.raises(ScoringInputError, match="agg"):
        binary_metrics([], [], agg="nope")  # checked even for an empty run


def test_mcc_zero_when_undefined():
    assert mcc(Confusion(tp=5, tn=0, fp=0, fn=0)) == 0.0  # one class only
    assert mcc(Confusion(tp=3, tn=0, fp=4, fn=0)) == 0.0  # always says synthetic
    assert mcc(Confusion(tp=0, tn=0, fp=0, fn=0)) == 0.0
    assert mcc(Confusion(tp=math.nan, tn=1, fp=1, fn=1)) == 0.0


def test_tie_predicts_real():
    assert predict_synthetic([0.5, 0.5000001, 0.4999999]).tolist() == [False, True, False]
    m = binary_metrics([1, 0], [0.5, 0.5])
    assert (m.tp, m.fn, m.tn, m.fp) == (0.0, 1.0, 1.0, 0.0)


def test_binary_metrics_all_fields():
    labels = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    p = [0.9, 0.8, 0.7, 0.3, 0.6, 0.1, 0.2, 0.0, 0.4, 0.5]
    m = binary_metrics(labels, p)
    assert isinstance(m, BinaryMetrics)
    assert (m.n, m.weight_sum, m.tp, m.tn, m.fp, m.fn) == (10, 10.0, 3.0, 5.0, 1.0, 1.0)
    assert m.accuracy == pytest.approx(0.8)
    assert m.mcc == pytest.approx(14 / 24)
    # squared errors: .01 .04 .09 .49 .36 .01 .04 0 .16 .25 -> 1.45 / 10 (plus the 1e-7 clip at p=0)
    assert m.brier == pytest.approx(0.145, abs=1e-12)
    assert m.sn34 == pytest.approx(sn34_score(14 / 24, 0.145))
    d = m.to_dict()
    assert d["agg"] == "geomean" and d["alpha"] == 1.2 and d["beta"] == 1.8
    assert set(d) == {
        "n",
        "weight_sum",
        "tp",
        "tn",
        "fp",
        "fn",
        "accuracy",
        "mcc",
        "brier",
        "sn34",
        "alpha",
        "beta",
        "agg",
    }
    with pytest.raises(AttributeError):
        m.sn34 = 1.0  # type: ignore[misc]


def test_empty_run_gets_reference_values():
    for m in (binary_metrics([], []), binary_metrics([1, 0], [0.9, 0.1], [0.0, 0.0])):
        assert (m.accuracy, m.mcc, m.brier, m.sn34) == (0.0, 0.0, 0.25, 0.0)
        assert m.weight_sum == 0.0
    assert brier([], []) == 0.25
    assert accuracy([], []) == 0.0


@pytest.mark.parametrize(
    ("labels", "p", "weights", "match"),
    [
        ([0, 1], [0.2], None, "labels has 2 values but p_synthetic has 1"),
        ([0, 2], [0.2, 0.3], None, "labels: values must be 0 or 1; index 1"),
        ([0, math.nan], [0.2, 0.3], None, "labels"),
        ([0, 1], [0.2, 1.5], None, "p_synthetic.*index 1"),
        ([0, 1], [-0.1, 0.5], None, "p_synthetic.*index 0"),
        ([0, 1], [0.2, math.nan], None, "p_synthetic.*nan"),
        ([0, 1], [0.2, math.inf], None, "p_synthetic.*inf"),
        ([0, 1], [0.2, 0.3], [1.0, -1.0], "weights.*index 1"),
        ([0, 1], [0.2, 0.3], [1.0, math.nan], "weights.*index 1"),
        ([0, 1], [0.2, 0.3], [1.0, math.inf], "weights"),
        ([0, 1], [0.2, 0.3], [1.0], "weights: length 1"),
        ([[0, 1]], [[0.2, 0.3]], None, "1-D"),
        (["a", "b"], [0.2, 0.3], None, "numbers"),
    ],
)
def test_invalid_inputs_raise(labels, p, weights, match):
    with pytest.raises(ScoringInputError, match=match):
        binary_metrics(labels, p, weights)


def test_scoring_input_error_is_a_value_error():
    assert issubclass(ScoringInputError, ValueError)


def test_bool_and_float_labels_accepted():
    a = binary_metrics(np.array([True, False]), [0.8, 0.3])
    assert a == binary_metrics([1, 0], [0.8, 0.3])
    b = binary_metrics(np.array([1.0, 0.0]), [0.8, 0.3])
    assert a == b and a.accuracy == 1.0


# --------------------------------------------------------------------------------------------------
# scikit-learn cross-checks


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("n", [1, 7, 100, 5000])
@pytest.mark.parametrize("weighted", [False, True])
def test_matches_sklearn_fixed_seeds(seed, n, weighted):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = rng.random(n)
    p[: n // 10] = np.round(p[: n // 10])  # some exact 0/1 to exercise the clip
    w = rng.gamma(2.0, 1.5, n) if weighted else None
    m = binary_metrics(y, p, w)
    assert m.mcc == pytest.approx(sk_mcc(y, p, w), abs=1e-9)
    assert m.brier == pytest.approx(sk_brier(y, p, w), abs=1e-6)  # 1e-7 clip, squared error < 2e-7
    expected_acc = np.average((p > 0.5) == y, weights=w)
    assert m.accuracy == pytest.approx(expected_acc, abs=1e-12)


rows = st.lists(
    st.tuples(
        st.integers(0, 1),
        st.floats(0.0, 1.0, allow_nan=False),
        # zero or a sane magnitude: with weights like 1e-81, sklearn's MCC underflows to 0
        st.one_of(st.just(0.0), st.floats(1e-3, 1000.0)),
    ),
    min_size=1,
    max_size=60,
)


@FAST
@given(rows)
def test_matches_sklearn_property(data):
    y, p, w = (np.array(c) for c in zip(*data, strict=True))
    if w.sum() <= 1e-9:
        w = w + 1.0
    m = binary_metrics(y, p, w)
    assert m.mcc == pytest.approx(sk_mcc(y, p, w), abs=1e-7)
    assert m.brier == pytest.approx(sk_brier(y, p, w), abs=1e-6)
    u = binary_metrics(y, p)
    assert u.mcc == pytest.approx(sk_mcc(y, p), abs=1e-9)
    assert u.brier == pytest.approx(sk_brier(y, p), abs=1e-6)


@FAST
@given(rows, st.floats(1e-3, 1e3))
def test_weights_of_one_equal_unweighted_and_scale_free(data, scale):
    y, p, w = (np.array(c) for c in zip(*data, strict=True))
    ones, plain = binary_metrics(y, p, np.ones(len(y))), binary_metrics(y, p)
    for field in FIELDS:
        # equal up to summation order (dot product vs. mean)
        assert getattr(ones, field) == pytest.approx(getattr(plain, field), rel=1e-12, abs=1e-15)
    if w.sum() <= 1e-6:
        return
    a = binary_metrics(y, p, w)
    b = binary_metrics(y, p, w * scale)
    for field in ("accuracy", "mcc", "brier", "sn34"):
        assert getattr(b, field) == pytest.approx(getattr(a, field), rel=1e-9, abs=1e-12)


@FAST
@given(st.lists(st.tuples(st.integers(0, 1), st.floats(0, 1), st.integers(0, 4)), min_size=1, max_size=40))
def test_integer_weight_equals_repeating_the_row(data):
    y, p, k = (np.array(c) for c in zip(*data, strict=True))
    if k.sum() == 0:
        return
    a = binary_metrics(y, p, k.astype(float))
    b = binary_metrics(np.repeat(y, k), np.repeat(p, k))
    for field in FIELDS[2:]:
        assert getattr(a, field) == pytest.approx(getattr(b, field), abs=1e-9)


# --------------------------------------------------------------------------------------------------
# sn34 properties

unit = st.floats(0.0, 1.0, allow_nan=False)
mcc_values = st.floats(-1.0, 1.0, allow_nan=False)
exponents = st.floats(0.05, 5.0)


@FAST
@given(mcc_values, unit, exponents, exponents, st.sampled_from(AGGS))
def test_sn34_in_unit_interval(m, b, alpha, beta, agg):
    s = sn34_score(m, b, alpha=alpha, beta=beta, agg=agg)
    assert 0.0 <= s <= 1.0


@FAST
@given(mcc_values, mcc_values, unit, unit, exponents, exponents, st.sampled_from(AGGS))
def test_sn34_monotone(m1, m2, b1, b2, alpha, beta, agg):
    lo_m, hi_m = sorted((m1, m2))
    good_b, bad_b = sorted((b1, b2))
    kw = {"alpha": alpha, "beta": beta, "agg": agg}
    # better Brier (lower) never lowers the score; better MCC (higher) never lowers it
    assert sn34_score(lo_m, good_b, **kw) >= sn34_score(lo_m, bad_b, **kw) - 1e-12
    assert sn34_score(hi_m, bad_b, **kw) >= sn34_score(lo_m, bad_b, **kw) - 1e-12
    # and a NaN in either input never beats the finite value
    assert sn34_score(math.nan, good_b, **kw) <= sn34_score(lo_m, good_b, **kw) + 1e-12
    assert sn34_score(hi_m, math.nan, **kw) <= sn34_score(hi_m, bad_b, **kw) + 1e-12


@FAST
@given(rows)
def test_binary_metrics_ranges(data):
    y, p, w = (np.array(c) for c in zip(*data, strict=True))
    m = binary_metrics(y, p, w)
    assert 0.0 <= m.accuracy <= 1.0
    assert -1.0 <= m.mcc <= 1.0
    assert 0.0 <= m.brier <= 1.0
    assert 0.0 <= m.sn34 <= 1.0
    assert m.tp + m.tn + m.fp + m.fn == pytest.approx(m.weight_sum)


def test_confidence_improves_score():
    # Same predictions, sharper probabilities: same MCC, lower Brier, higher sn34.
    y = [1, 1, 0, 0]
    soft = binary_metrics(y, [0.6, 0.6, 0.4, 0.4])
    sharp = binary_metrics(y, [0.95, 0.95, 0.05, 0.05])
    assert soft.mcc == sharp.mcc == 1.0
    assert sharp.brier < soft.brier
    assert sharp.sn34 > soft.sn34


# --------------------------------------------------------------------------------------------------
# scale and import weight


def test_million_samples_fast():
    rng = np.random.default_rng(34)
    n = 1_000_000
    y = rng.integers(0, 2, n)
    p = rng.random(n)
    w = rng.random(n)
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        m = binary_metrics(y, p, w)
        best = min(best, time.perf_counter() - t0)
    assert m.n == n
    assert best < 1.0, f"binary_metrics on 1e6 weighted samples took {best:.3f} s"


def test_package_import_is_light():
    code = (
        "import sys, gas.scoring, gas.scoring.score_file; "
        "heavy = [m for m in ('torch', 'pyarrow', 'sklearn', 'pandas') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
