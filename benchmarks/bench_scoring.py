"""Time the detector metrics on 10^6 samples (a script, not a test).

    .venv/bin/python benchmarks/bench_scoring.py [--n 1000000] [--repeats 7]

Reports the best of N repeats (the least noisy estimate of the code's own cost) and the median.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np

from gas.scoring import binary_metrics, maximally_wrong, p_synthetic_from_logits
from machine import cpu_model  # benchmarks/machine.py (the script's own folder)




def timed(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def per_sample_baseline(labels: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """The reference harness's shape of work: accumulate one sample at a time in Python.

    Written here from the formulas (not the reference's code) to give a baseline for the ratio.
    """
    tp = tn = fp = fn = 0.0
    sq = 0.0
    for y, q in zip(labels.tolist(), p.tolist(), strict=True):
        pred = q > 0.5
        if y == 1:
            tp, fn = (tp + 1, fn) if pred else (tp, fn + 1)
        else:
            fp, tn = (fp + 1, tn) if pred else (fp, tn + 1)
        c = min(max(q, 1e-7), 1 - 1e-7)
        sq += (c - y) ** 2
    den = ((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)) ** 0.5
    return ((tp * tn - fp * fn) / den if den else 0.0), sq / len(labels)


def sklearn_baseline(labels: np.ndarray, p: np.ndarray, weights: np.ndarray | None = None) -> None:
    from sklearn.metrics import brier_score_loss, matthews_corrcoef

    matthews_corrcoef(labels, p > 0.5, sample_weight=weights)
    brier_score_loss(labels, np.clip(p, 1e-7, 1 - 1e-7), sample_weight=weights)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    n = args.n

    rng = np.random.default_rng(34)
    labels = rng.integers(0, 2, n).astype(np.int8)
    p = rng.random(n)
    weights = rng.gamma(2.0, 0.5, n)
    logits2 = rng.normal(size=(n, 2))
    logits3 = rng.normal(size=(n, 3))
    logits2[::1000, 0] = np.nan  # 0.1% invalid rows

    def logits_pipeline() -> None:
        q, valid = p_synthetic_from_logits(logits2, num_classes=2)
        binary_metrics(labels, maximally_wrong(q, valid, labels))

    cases: list[tuple[str, Callable[[], object]]] = [
        ("binary_metrics", lambda: binary_metrics(labels, p)),
        ("binary_metrics + weights", lambda: binary_metrics(labels, p, weights)),
        ("p_synthetic_from_logits [n,2]", lambda: p_synthetic_from_logits(logits2, num_classes=2)),
        ("p_synthetic_from_logits [n,3]", lambda: p_synthetic_from_logits(logits3, num_classes=3)),
        ("logits [n,2] -> metrics (0.1% NaN)", logits_pipeline),
        ("baseline: sklearn MCC + Brier", lambda: sklearn_baseline(labels, p)),
        ("baseline: sklearn MCC + Brier, weights", lambda: sklearn_baseline(labels, p, weights)),
        ("baseline: per-sample Python loop", lambda: per_sample_baseline(labels, p)),
    ]

    print(f"machine: {cpu_model()}, {os.cpu_count()} logical cores, {platform.system()} {platform.machine()}")
    print(
        f"python {platform.python_version()}, numpy {np.__version__}; n = {n:,}, best/median of {args.repeats}"
    )
    print()
    width = max(len(name) for name, _ in cases)
    print(f"{'case':<{width}}  {'best ms':>9}  {'median ms':>9}  {'Msamples/s':>10}")
    for name, fn in cases:
        best, median = timed(fn, args.repeats if not name.startswith("baseline: per-sample") else 2)
        print(f"{name:<{width}}  {best * 1e3:>9.2f}  {median * 1e3:>9.2f}  {n / best / 1e6:>10.1f}")
    ours = binary_metrics(labels, p)
    mcc_ref, brier_ref = per_sample_baseline(labels, p)
    agree = bool(np.isclose(ours.mcc, mcc_ref, atol=1e-12) and np.isclose(ours.brier, brier_ref, atol=1e-12))
    print(f"\nvectorised vs per-sample baseline agree (MCC, Brier within 1e-12): {agree}")


if __name__ == "__main__":
    main()
