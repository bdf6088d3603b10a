"""Scoring: detector metrics (accuracy, MCC, Brier, sn34) and logits -> P(synthetic).

Importing this package needs only numpy: no torch, pyarrow or scikit-learn. File reading lives in
:mod:`gas.scoring.score_file` (pyarrow is imported there only for parquet files).
Definitions and the deliberate differences from the reference benchmark: docs/scoring.md.
"""

from gas.scoring.metrics import (
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
from gas.scoring.probabilities import maximally_wrong, p_synthetic_from_logits

__all__ = [
    "BinaryMetrics",
    "Confusion",
    "ScoringInputError",
    "accuracy",
    "binary_metrics",
    "brier",
    "confusion_counts",
    "maximally_wrong",
    "mcc",
    "p_synthetic_from_logits",
    "predict_synthetic",
    "sn34_score",
]
