"""``results.json``: the versioned summary of a benchmark run, and the scores computed from records.

Every number in the score sections (``overall``, ``per_dataset``, ``per_generator``, ``robustness``,
``score``) comes from :func:`scores_from_records`, which the runner calls on the very table it writes
to records.parquet. Anyone can therefore recompute them from records.parquet alone and get exactly
the same values (``scores_from_records(read_records(path)) == results.scores``).

Scoring rules (see docs/benchmark.md):

- metrics are :func:`gas.scoring.binary_metrics` over ALL base-pass records; failed records
  (decode_error, inference_error, invalid_output) are present with ``p_synthetic = 1 - y``
  (maximally wrong), never dropped;
- ``per_dataset``: the same metrics per dataset, plus record counts by status;
- ``per_generator``: accuracy per ``generator_hotkey`` (base pass, records that name one);
- ``robustness`` (when the augmented pass ran): ``final = (1 - w) * base_sn34 + w * aug_sn34``;
  ``score`` is that final value, else the base sn34;
- ``exam`` (small mode only): passed iff the run is complete and accuracy >= 0.80.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

__all__ = [
    "EXAM_THRESHOLD",
    "RESULTS_NAME",
    "SCHEMA_VERSION",
    "BenchResults",
    "Counts",
    "Environment",
    "Exam",
    "GeneratorStats",
    "Metrics",
    "PackageInfo",
    "Robustness",
    "Scores",
    "Timings",
    "exam_result",
    "gas_node_version",
    "scores_from_records",
]

SCHEMA_VERSION = 1
RESULTS_NAME = "results.json"
#: Entrance exam (small mode): minimum accuracy to pass.
EXAM_THRESHOLD = 0.80
STATUSES = ("ok", "decode_error", "inference_error", "invalid_output")

_MODEL = ConfigDict(extra="forbid")


class Metrics(BaseModel):
    """Binary metrics over a set of records (failed ones included as maximally wrong)."""

    model_config = _MODEL

    n: int
    n_real: int
    n_synthetic: int
    accuracy: float
    mcc: float
    brier: float
    sn34: float
    tp: int
    tn: int
    fp: int
    fn: int
    statuses: dict[str, int]


class GeneratorStats(BaseModel):
    model_config = _MODEL

    n: int
    correct: int
    accuracy: float
    failed: int


class Robustness(BaseModel):
    """The augmented pass: ``final_sn34 = (1 - weight) * base_sn34 + weight * aug_sn34``."""

    model_config = _MODEL

    weight: float
    n: int
    base_sn34: float
    aug_sn34: float
    final_sn34: float
    aug: Metrics
    #: mean over samples in both passes of P(correct label) base minus augmented (> 0: worse when augmented)
    mean_prob_degradation: float | None


class Scores(BaseModel):
    """The score sections of results.json, as :func:`scores_from_records` computes them."""

    model_config = _MODEL

    overall: Metrics
    per_dataset: dict[str, Metrics]
    per_generator: dict[str, GeneratorStats]
    robustness: Robustness | None
    score: float


class Exam(BaseModel):
    model_config = _MODEL

    threshold: float
    accuracy: float
    passed: bool
    reason: str


class PackageInfo(BaseModel):
    model_config = _MODEL

    name: str
    version: str | None = None
    sha256: str
    modality: str
    source: str


class Environment(BaseModel):
    model_config = _MODEL

    isolation: str
    device: str
    torch_version: str | None
    sandbox: dict[str, Any] = {}


class Counts(BaseModel):
    model_config = _MODEL

    planned: int
    planned_aug: int
    recorded: int
    recorded_aug: int
    remaining: int
    ok: int
    decode_error: int
    inference_error: int
    invalid_output: int
    sandbox_restarts: int


class Timings(BaseModel):
    """Seconds. ``decode_s``/``infer_s`` sum the per-sample times of every recorded sample (all
    sessions); the rest describe this session only: ``wall_s`` is the whole call (package checks and
    sandbox start-up included), ``loop_s`` the batch loop, ``samples_per_s`` = samples / ``wall_s``."""

    model_config = _MODEL

    startup_s: float
    decode_s: float
    infer_s: float
    wall_s: float
    loop_s: float
    samples_per_s: float
    samples_this_session: int
    sessions: int


class BenchResults(BaseModel):
    """results.json (schema_version 1)."""

    model_config = _MODEL

    schema_version: Literal[1] = SCHEMA_VERSION
    gas_node_version: str
    complete: bool
    mode: Literal["small", "full"]
    modality: str
    seed: int
    batch_size: int
    plan_hash: str
    package: PackageInfo
    environment: Environment
    datasets: list[str]
    overall: Metrics
    per_dataset: dict[str, Metrics]
    per_generator: dict[str, GeneratorStats]
    robustness: Robustness | None
    score: float
    exam: Exam | None
    counts: Counts
    timings: Timings
    started_at: str
    finished_at: str
    wall_limit_s: float | None
    wall_limit_hit: bool
    resumed: bool
    errors: list[str]
    records_file: str = "records.parquet"

    @property
    def scores(self) -> Scores:
        return Scores(
            overall=self.overall,
            per_dataset=self.per_dataset,
            per_generator=self.per_generator,
            robustness=self.robustness,
            score=self.score,
        )

    def to_json(self) -> str:
        # strict JSON: every float here is finite by construction; json.dumps refuses NaN anyway
        return json.dumps(self.model_dump(mode="json"), indent=2, allow_nan=False) + "\n"

    def write(self, path: Path) -> Path:
        from gas.storage.files import atomic_write

        atomic_write(Path(path), self.to_json().encode())
        return Path(path)

    @classmethod
    def load(cls, path: Path) -> BenchResults:
        return cls.model_validate_json(Path(path).read_bytes())


def gas_node_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gas-node")
    except PackageNotFoundError:
        return "0+unknown"


def exam_result(overall: Metrics, *, complete: bool, threshold: float = EXAM_THRESHOLD) -> Exam:
    """The entrance exam: passed iff the run is complete and its accuracy is >= ``threshold``."""
    if not complete:
        return Exam(threshold=threshold, accuracy=overall.accuracy, passed=False,
                    reason="the run did not complete (wall-clock limit)")
    passed = overall.accuracy >= threshold
    cmp = ">=" if passed else "<"
    return Exam(threshold=threshold, accuracy=overall.accuracy, passed=passed,
                reason=f"accuracy {overall.accuracy:.4f} {cmp} {threshold:.2f}")


# --------------------------------------------------------------------------------------------------
# scores from records


def _columns(records: Any) -> dict[str, list]:
    """Column lists from a pyarrow table, a list of record dicts or SampleRecords."""
    names = ("sample_id", "dataset", "y", "p_synthetic", "status", "generator_hotkey", "aug", "correct")
    if hasattr(records, "column_names"):  # a pyarrow table
        return {n: records.column(n).to_pylist() for n in names}
    rows = [r.to_dict() if hasattr(r, "to_dict") else r for r in records]
    return {n: [row.get(n) for row in rows] for n in names}


def _metrics(y, p, status) -> Metrics:
    import numpy as np

    from gas.scoring import binary_metrics

    y_arr = np.asarray(y, dtype=np.int8)
    m = binary_metrics(y_arr, np.asarray(p, dtype=np.float64))
    counts = dict.fromkeys(STATUSES, 0)
    for s in status:
        counts[s] = counts.get(s, 0) + 1
    n_syn = int(y_arr.sum())
    return Metrics(
        n=m.n,
        n_real=m.n - n_syn,
        n_synthetic=n_syn,
        accuracy=m.accuracy,
        mcc=m.mcc,
        brier=m.brier,
        sn34=m.sn34,
        tp=int(m.tp),
        tn=int(m.tn),
        fp=int(m.fp),
        fn=int(m.fn),
        statuses=counts,
    )


def scores_from_records(records: Any, *, aug_weight: float = 0.0) -> Scores:
    """Recompute every score section from per-sample records (a records.parquet table or rows).

    ``aug_weight`` is the robustness blend weight ``w`` (used only when augmented records exist).
    """
    if not 0.0 <= float(aug_weight) <= 1.0:
        raise ValueError(f"aug_weight must be in [0, 1], got {aug_weight!r}")
    cols = _columns(records)
    n = len(cols["y"])
    base = [i for i in range(n) if cols["aug"][i] is None]
    aug = [i for i in range(n) if cols["aug"][i] is not None]

    def pick(name: str, idx: list[int]) -> list:
        col = cols[name]
        return [col[i] for i in idx]

    overall = _metrics(pick("y", base), pick("p_synthetic", base), pick("status", base))

    by_ds: dict[str, list[int]] = {}
    for i in base:
        by_ds.setdefault(cols["dataset"][i], []).append(i)
    per_dataset = {
        name: _metrics(pick("y", idx), pick("p_synthetic", idx), pick("status", idx))
        for name, idx in sorted(by_ds.items())
    }

    by_gen: dict[str, list[int]] = {}
    for i in base:
        hk = cols["generator_hotkey"][i]
        if hk:
            by_gen.setdefault(hk, []).append(i)
    per_generator = {}
    for hk, idx in sorted(by_gen.items()):
        correct = sum(1 for i in idx if cols["correct"][i])
        failed = sum(1 for i in idx if cols["status"][i] != "ok")
        per_generator[hk] = GeneratorStats(n=len(idx), correct=correct, accuracy=correct / len(idx), failed=failed)

    robustness = None
    score = overall.sn34
    if aug:
        aug_m = _metrics(pick("y", aug), pick("p_synthetic", aug), pick("status", aug))
        w = float(aug_weight)
        final = (1.0 - w) * overall.sn34 + w * aug_m.sn34

        def p_correct(i: int) -> float:
            p = cols["p_synthetic"][i]
            return p if cols["y"][i] == 1 else 1.0 - p

        base_pc = {(cols["dataset"][i], cols["sample_id"][i]): p_correct(i) for i in base}
        diffs = [
            base_pc[k] - p_correct(i)
            for i in aug
            if (k := (cols["dataset"][i], cols["sample_id"][i])) in base_pc
        ]
        robustness = Robustness(
            weight=w,
            n=aug_m.n,
            base_sn34=overall.sn34,
            aug_sn34=aug_m.sn34,
            final_sn34=final,
            aug=aug_m,
            mean_prob_degradation=(sum(diffs) / len(diffs)) if diffs else None,
        )
        score = final
    return Scores(
        overall=overall,
        per_dataset=per_dataset,
        per_generator=per_generator,
        robustness=robustness,
        score=score,
    )
