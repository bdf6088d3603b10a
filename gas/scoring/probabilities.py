"""Turn a detector's raw logits into P(synthetic), and mark the rows that cannot be trusted.

Rules (float64 throughout):
- 1 output: ``P(synthetic) = sigmoid(z)``;
- 2 outputs: max-subtracted softmax, ``P(synthetic) = p[1]``;
- 3 or more outputs: max-subtracted softmax, ``P(synthetic) = 1 - p[0]`` (every class other than
  "real" counts as synthetic; computed as ``sum(p[1:])`` to keep precision when p[0] is tiny).

A row with any NaN or infinite logit, or whose width differs from ``num_classes`` when that is
given, is *invalid*: its probability is NaN and ``valid`` is False. Invalid rows are never dropped;
:func:`maximally_wrong` turns them into the worst possible answer before scoring, so a model gains
nothing by emitting garbage.

Deliberate difference from the reference benchmark (gasbench): it predicts 3-class outputs by
argmax, which can disagree with the probability it scores with Brier (e.g. p = [0.4, 0.35, 0.25]
is "real" by argmax although P(synthetic) = 0.6), and for 4+ classes it uses p[0], i.e. P(real),
as P(AI), which is inverted. Here the prediction is always ``P(synthetic) > 0.5``
(:func:`gas.scoring.metrics.predict_synthetic`), for every width, so the confusion counts and the
Brier score always describe the same answer. For 1 and 2 outputs both rules agree.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from gas.scoring.metrics import ScoringInputError, _binary

__all__ = ["maximally_wrong", "p_synthetic_from_logits"]


def p_synthetic_from_logits(
    logits: npt.ArrayLike, num_classes: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(p_synthetic, valid)`` for a ``[B, C]`` logit array.

    ``p_synthetic`` is float64 ``[B]`` with NaN on invalid rows; ``valid`` is bool ``[B]``.
    """
    try:
        z = np.asarray(logits, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ScoringInputError(f"logits: expected a numeric [B, C] array ({exc})") from exc
    if z.ndim != 2:
        raise ScoringInputError(f"logits: expected shape [B, C], got {z.shape}")
    if num_classes is not None and num_classes < 1:
        raise ScoringInputError(f"num_classes must be >= 1; got {num_classes}")
    batch, width = z.shape
    if width == 0 or (num_classes is not None and width != num_classes):
        return np.full(batch, np.nan, dtype=np.float64), np.zeros(batch, dtype=bool)

    # Rows with NaN/inf are computed along with the rest (warnings silenced) and then overwritten
    # with NaN: cheaper than copying out the valid rows.
    with np.errstate(invalid="ignore", over="ignore"):
        if width == 1:
            p = _sigmoid(z[:, 0])
            valid = np.isfinite(z[:, 0])
        elif width <= _COLUMN_LOOP_MAX:
            p, valid = _softmax_p_synthetic_by_column(z)
        else:
            valid = np.isfinite(z).all(axis=1)
            e = np.exp(z - z.max(axis=1, keepdims=True))
            p = e[:, 1:].sum(axis=1) / e.sum(axis=1)
    p[~valid] = np.nan
    return p, valid


#: Up to this many classes, reductions run column by column: numpy reduces a short last axis of a
#: tall array several times slower than it combines whole columns.
_COLUMN_LOOP_MAX = 8


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """Stable sigmoid: exp(-|x|) never overflows, and small probabilities keep full precision."""
    e = np.exp(-np.abs(x))
    d = 1.0 + e
    return np.where(x >= 0.0, 1.0 / d, e / d)


def _softmax_p_synthetic_by_column(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cols = [z[:, j] for j in range(z.shape[1])]
    valid = np.isfinite(cols[0])
    top = cols[0].copy()
    for c in cols[1:]:
        valid &= np.isfinite(c)
        np.maximum(top, c, out=top)
    e_real = np.exp(cols[0] - top)
    e_synthetic = np.exp(cols[1] - top)
    for c in cols[2:]:
        e_synthetic += np.exp(c - top)
    return e_synthetic / (e_real + e_synthetic), valid


def maximally_wrong(p: npt.ArrayLike, valid: npt.ArrayLike, labels: npt.ArrayLike) -> np.ndarray:
    """Return a copy of ``p`` with every invalid row set to ``1 - label`` (the worst answer).

    Such a row is a confident miss: it counts as a wrong prediction and adds the largest Brier term.
    """
    out = np.array(p, dtype=np.float64, copy=True)
    ok = np.asarray(valid)
    y = _binary("labels", labels)
    if out.ndim != 1 or ok.shape != out.shape or y.shape != out.shape:
        raise ScoringInputError(
            f"p, valid and labels must be 1-D of one length; got {out.shape}, {ok.shape}, {y.shape}"
        )
    if ok.dtype != np.bool_:
        raise ScoringInputError(f"valid must be a bool array; got dtype {ok.dtype}")
    bad = ~ok
    out[bad] = 1.0 - y[bad]
    return out
