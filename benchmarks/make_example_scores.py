"""Regenerate configs/examples/scores.csv, the shipped example for ``gascli bench score``.

A plausible, imperfect detector: 200 samples (100 real, 100 synthetic) whose P(synthetic) is drawn
from Beta(5, 2) for synthetic samples and Beta(2, 5) for real ones, rounded to 4 decimals.
Deterministic for a given numpy (seed 34); the committed CSV is the source of truth.

    .venv/bin/python benchmarks/make_example_scores.py [OUTPUT]
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

SEED = 34
N_PER_CLASS = 100
DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "configs" / "examples" / "scores.csv"


def make_rows(seed: int = SEED, n_per_class: int = N_PER_CLASS) -> list[tuple[str, int, float]]:
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1], n_per_class)
    rng.shuffle(labels)
    p = np.where(labels == 1, rng.beta(5.0, 2.0, labels.size), rng.beta(2.0, 5.0, labels.size))
    p = np.round(p, 4)
    return [(f"s{i:03d}", int(y), float(q)) for i, (y, q) in enumerate(zip(labels, p, strict=True))]


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else DEFAULT_OUTPUT
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["sample_id", "label", "p_synthetic"])
        for sample_id, label, p in make_rows():
            writer.writerow([sample_id, label, f"{p:.4f}"])
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
