"""Binary detector metrics: weighted confusion counts, accuracy, MCC, Brier and the sn34 score.

Everything here is plain, vectorised numpy so that a validator can score 10^6 samples in a few
milliseconds and so that the numbers can be cross-checked against scikit-learn in tests.

Conventions (see docs/scoring.md):
- label 1 = synthetic (positive class), label 0 = real;
- the prediction rule is ``p_synthetic > 0.5`` (strict), so a tie predicts real;
- a weight ``w`` makes a sample count ``w`` times in every metric;
- an empty run (no samples, or a weight sum of 0) scores accuracy 0, MCC 0, Brier 0.25, sn34 0;
- a NaN (or infinite) MCC or Brier handed to :func:`sn34_score` counts as the worst value, never as
  a good one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "AGGREGATIONS",
    "BRIER_CLIP",
    "DEFAULT_AGG",
    "DEFAULT_ALPHA",
    "DEFAULT_BETA",
    "EMPTY_BRIER",
    "BinaryMetrics",
    "Confusion",
    "ScoringInputError",
    "accuracy",
    "binary_metrics",
    "brier",
    "confusion_counts",
    "mcc",
    "predict_synthetic",
    "sn34_score",
]

Agg = Literal["geomean", "harmmean", "mean"]
AGGREGATIONS: tuple[str, ...] = ("geomean", "harmmean", "mean")
DEFAULT_ALPHA = 1.2
DEFAULT_BETA = 1.8
DEFAULT_AGG: Agg = "geomean"
#: Probabilities are clipped to [BRIER_CLIP, 1 - BRIER_CLIP] before the Brier score (reference rule).
BRIER_CLIP = 1e-7
#: Brier score of an empty run, and of the constant 0.5 predictor: the "no skill" baseline.
EMPTY_BRIER = 0.25
#: Floor under m*b in the geometric mean (reference rule), so geomean never goes below 1e-6.
_GEOMEAN_FLOOR = 1e-12


class ScoringInputError(ValueError):
    """Raised when labels, probabilities, weights or score parameters are not usable."""


@dataclass(frozen=True)
class Confusion:
    """Weighted confusion counts; the positive class is synthetic (label 1)."""

    tp: float
    tn: float
    fp: float
    fn: float

    @property
    def total(self) -> float:
        return self.tp + self.tn + self.fp + self.fn


# --------------------------------------------------------------------------------------------------
# input validation


def _as_1d(name: str, values: npt.ArrayLike) -> np.ndarray:
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError) as exc:
        raise ScoringInputError(f"{name}: cannot be read as an array ({exc})") from exc
    if arr.ndim != 1:
        raise ScoringInputError(f"{name}: expected a 1-D array, got shape {arr.shape}")
    if arr.dtype == np.bool_:
        return arr
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        if arr.size == 0:
            return arr.astype(np.float64)
        raise ScoringInputError(f"{name}: expected numbers, got dtype {arr.dtype}")
    return arr


def _binary(name: str, values: npt.ArrayLike) -> np.ndarray:
    """Return ``values`` as an int8 array of 0/1, or raise naming the first bad index."""
    arr = _as_1d(name, values)
    if arr.dtype == np.bool_:
        return arr.astype(np.int8)
    bad = ~((arr == 0) | (arr == 1))  # NaN compares unequal, so it is caught here too
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ScoringInputError(f"{name}: values must be 0 or 1; index {i} is {arr[i]!r}")
    return arr.astype(np.int8)


def _probabilities(name: str, values: npt.ArrayLike) -> np.ndarray:
    arr = _as_1d(name, values).astype(np.float64, copy=False)
    bad = ~((arr >= 0.0) & (arr <= 1.0))  # also catches NaN and +-inf
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ScoringInputError(f"{name}: values must be finite and in [0, 1]; index {i} is {arr[i]!r}")
    return arr


def _weights(values: npt.ArrayLike | None, n: int) -> np.ndarray | None:
    if values is None:
        return None
    arr = _as_1d("weights", values).astype(np.float64, copy=False)
    if arr.shape[0] != n:
        raise ScoringInputError(f"weights: length {arr.shape[0]} does not match {n} samples")
    bad = ~(np.isfinite(arr) & (arr >= 0.0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ScoringInputError(f"weights: values must be finite and >= 0; index {i} is {arr[i]!r}")
    return arr


def _same_length(a: np.ndarray, b: np.ndarray, a_name: str, b_name: str) -> None:
    if a.shape[0] != b.shape[0]:
        raise ScoringInputError(f"{a_name} has {a.shape[0]} values but {b_name} has {b.shape[0]}")


# --------------------------------------------------------------------------------------------------
# unchecked kernels (inputs already validated)


def _confusion(y: np.ndarray, pred: np.ndarray, w: np.ndarray | None) -> Confusion:
    # One pass: cell index 2*y + pred is 0=TN, 1=FP, 2=FN, 3=TP.
    cell = (y.astype(np.intp) << 1) | pred.astype(np.intp)
    counts = np.bincount(cell, weights=w, minlength=4).astype(np.float64)
    return Confusion(tp=float(counts[3]), tn=float(counts[0]), fp=float(counts[1]), fn=float(counts[2]))


def _brier(y: np.ndarray, p: np.ndarray, w: np.ndarray | None) -> float:
    if y.shape[0] == 0:
        return EMPTY_BRIER
    sq = (np.clip(p, BRIER_CLIP, 1.0 - BRIER_CLIP) - y) ** 2
    if w is None:
        return float(sq.mean())
    total = float(w.sum())
    if total <= 0.0:
        return EMPTY_BRIER
    return float(np.dot(sq, w) / total)


# --------------------------------------------------------------------------------------------------
# public API


def predict_synthetic(p_synthetic: npt.ArrayLike) -> np.ndarray:
    """The one prediction rule used everywhere: synthetic iff ``p > 0.5`` (a tie predicts real)."""
    return np.asarray(p_synthetic, dtype=np.float64) > 0.5


def confusion_counts(
    labels: npt.ArrayLike, predictions: npt.ArrayLike, weights: npt.ArrayLike | None = None
) -> Confusion:
    """Weighted TP/TN/FP/FN for 0/1 ``labels`` and 0/1 (or bool) ``predictions``."""
    y = _binary("labels", labels)
    pred = _binary("predictions", predictions)
    _same_length(y, pred, "labels", "predictions")
    return _confusion(y, pred, _weights(weights, y.shape[0]))


def mcc(conf: Confusion) -> float:
    """Matthews correlation coefficient of a (weighted) confusion; 0 when undefined.

    The denominator is 0 when a row or column of the confusion is empty (for example a run with a
    single class, or a detector that always answers the same); MCC is then 0, as in the reference
    and in scikit-learn. A NaN count also gives 0 rather than NaN.
    """
    tp, tn, fp, fn = conf.tp, conf.tn, conf.fp, conf.fn
    denom = math.sqrt((tp + fp) * (tp + fn)) * math.sqrt((tn + fp) * (tn + fn))
    if not denom > 0.0 or not math.isfinite(denom):
        return 0.0
    value = (tp * tn - fp * fn) / denom
    if not math.isfinite(value):
        return 0.0
    return min(1.0, max(-1.0, value))  # rounding can step a hair outside [-1, 1]


def brier(labels: npt.ArrayLike, p_synthetic: npt.ArrayLike, weights: npt.ArrayLike | None = None) -> float:
    """Weighted mean squared error of ``p_synthetic`` (clipped to [1e-7, 1-1e-7]); 0.25 when empty."""
    y = _binary("labels", labels)
    p = _probabilities("p_synthetic", p_synthetic)
    _same_length(y, p, "labels", "p_synthetic")
    return _brier(y, p, _weights(weights, y.shape[0]))


def accuracy(
    labels: npt.ArrayLike, predictions: npt.ArrayLike, weights: npt.ArrayLike | None = None
) -> float:
    """Weighted share of correct predictions; 0 when there is no sample (or no weight)."""
    conf = confusion_counts(labels, predictions, weights)
    return _accuracy(conf)


def _accuracy(conf: Confusion) -> float:
    total = conf.total
    return (conf.tp + conf.tn) / total if total > 0.0 else 0.0


def sn34_score(
    mcc: float,
    brier: float,
    alpha: float = DEFAULT_ALPHA,
    beta: float = DEFAULT_BETA,
    agg: str = DEFAULT_AGG,
) -> float:
    """Combine MCC and Brier into the subnet's detector score in [0, 1].

    ``m = clip((MCC+1)/2, 0, 1)^alpha`` and ``b = clip((0.25-Brier)/0.25, 0, 1)^beta``, then
    geomean ``clip(sqrt(max(1e-12, m*b)), 0, 1)``, harmmean ``2mb/(m+b)`` or mean ``(m+b)/2``.

    A NaN or infinite ``mcc`` counts as MCC = -1 (m = 0) and a NaN or infinite ``brier`` as a
    Brier >= 0.25 (b = 0): the reference lets ``max(0, NaN)`` turn a NaN Brier into a silent value,
    here bad input can only lower the score. The upper clip of b is a no-op for a real Brier.
    """
    if agg not in AGGREGATIONS:
        raise ScoringInputError(f"agg must be one of {', '.join(AGGREGATIONS)}; got {agg!r}")
    for name, value in (("alpha", alpha), ("beta", beta)):
        try:
            ok = math.isfinite(float(value)) and float(value) >= 0.0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ScoringInputError(f"{name} must be a finite number >= 0; got {value!r}")
    mcc = float(mcc)
    brier = float(brier)
    m_base = min(1.0, max(0.0, (mcc + 1.0) / 2.0)) if math.isfinite(mcc) else 0.0
    b_base = min(1.0, max(0.0, (EMPTY_BRIER - brier) / EMPTY_BRIER)) if math.isfinite(brier) else 0.0
    m = m_base**alpha
    b = b_base**beta
    if agg == "geomean":
        return min(1.0, max(0.0, math.sqrt(max(_GEOMEAN_FLOOR, m * b))))
    if agg == "harmmean":
        return 2.0 * m * b / (m + b) if m + b > 0.0 else 0.0
    return (m + b) / 2.0


@dataclass(frozen=True)
class BinaryMetrics:
    """All detector metrics of one run. ``tp``..``fn`` and ``weight_sum`` are weighted."""

    n: int
    weight_sum: float
    tp: float
    tn: float
    fp: float
    fn: float
    accuracy: float
    mcc: float
    brier: float
    sn34: float
    alpha: float
    beta: float
    agg: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (Python ints/floats/str only)."""
        return asdict(self)


def binary_metrics(
    labels: npt.ArrayLike,
    p_synthetic: npt.ArrayLike,
    weights: npt.ArrayLike | None = None,
    *,
    alpha: float = DEFAULT_ALPHA,
    beta: float = DEFAULT_BETA,
    agg: str = DEFAULT_AGG,
) -> BinaryMetrics:
    """Validate once, then compute every metric for a run of binary detector outputs.

    Predictions come from :func:`predict_synthetic`. Invalid model outputs must be replaced
    beforehand (see :func:`gas.scoring.probabilities.maximally_wrong`); NaN probabilities are
    rejected here rather than silently skewing the score.
    An empty run (no rows, or a weight sum of 0) gets accuracy 0, MCC 0, Brier 0.25 and sn34 0.
    """
    y = _binary("labels", labels)
    p = _probabilities("p_synthetic", p_synthetic)
    _same_length(y, p, "labels", "p_synthetic")
    w = _weights(weights, y.shape[0])
    # Validate the score parameters even for an empty run, so a typo never passes silently.
    sn34_score(0.0, EMPTY_BRIER, alpha=alpha, beta=beta, agg=agg)

    conf = _confusion(y, p > 0.5, w)
    weight_sum = float(y.shape[0]) if w is None else float(w.sum())
    if weight_sum <= 0.0:
        acc, m, b, score = 0.0, 0.0, EMPTY_BRIER, 0.0
    else:
        acc = _accuracy(conf)
        m = mcc(conf)
        b = _brier(y, p, w)
        score = sn34_score(m, b, alpha=alpha, beta=beta, agg=agg)
    return BinaryMetrics(
        n=int(y.shape[0]),
        weight_sum=weight_sum,
        tp=conf.tp,
        tn=conf.tn,
        fp=conf.fp,
        fn=conf.fn,
        accuracy=acc,
        mcc=m,
        brier=b,
        sn34=score,
        alpha=float(alpha),
        beta=float(beta),
        agg=agg,
    )
