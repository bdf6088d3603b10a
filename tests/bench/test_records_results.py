"""Records, the checkpoint and results.json: schema round trips and scores recomputed from records."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from gas.bench.records import (
    Checkpoint,
    CheckpointError,
    SampleRecord,
    read_records,
    record_key,
    records_schema,
    records_to_table,
    write_records_parquet,
)
from gas.bench.results import (
    BenchResults,
    Counts,
    Environment,
    PackageInfo,
    Scores,
    Timings,
    exam_result,
    scores_from_records,
)
from gas.scoring import binary_metrics


def rec(i: int, *, y: int, p: float, status: str = "ok", dataset: str = "d1", aug: str | None = None,
        hotkey: str | None = None, logits: list[float] | None = None) -> SampleRecord:
    if status != "ok":
        p = 1.0 - y  # maximally wrong, as the runner writes them
    pred = int(p > 0.5)
    return SampleRecord(
        sample_id=f"s{i:03d}", dataset=dataset, modality="image", label="real" if y == 0 else "synthetic", y=y,
        sha256="ab" * 32, source="src", generator_hotkey=hotkey, generator_model=None, status=status,
        error=None if status == "ok" else f"{status} happened", logits=logits if logits is not None else [0.1, -0.2],
        p_synthetic=p, predicted=pred, correct=pred == y, decode_s=0.01, infer_s=0.002, batch_index=i // 4,
        plan_index=i, aug=aug,
    )


def sample_records() -> list[SampleRecord]:
    rng = np.random.default_rng(0)
    out = []
    statuses = ["ok"] * 6 + ["decode_error", "inference_error", "invalid_output"]
    for i in range(40):
        y = i % 2
        status = statuses[i % len(statuses)]
        ds = "d1" if i < 25 else "d2"
        hk = "5Hot" if (y == 1 and i % 3 == 0) else None
        logits = [float("nan"), 1.0] if status == "invalid_output" else [float(rng.normal()), float(rng.normal())]
        out.append(rec(i, y=y, p=float(rng.uniform()), status=status, dataset=ds, hotkey=hk, logits=logits))
    for i in range(10):  # robustness pass rows for some of the same samples
        out.append(rec(i, y=i % 2, p=float(rng.uniform()), aug="aug-s0", dataset="d1"))
    return out


def test_records_parquet_round_trip_keeps_every_row_and_value(tmp_path):
    records = sample_records()
    path = write_records_parquet(records, tmp_path / "records.parquet")
    table = read_records(path)
    assert table.schema.equals(records_schema())
    assert table.num_rows == len(records)
    rows = table.to_pylist()
    by_key = {record_key(r): r for r in rows}
    for r in records:
        got = by_key[record_key(r)]
        want = r.to_dict()
        for k, v in want.items():
            if k == "logits":
                assert len(got[k]) == len(v)
                assert all((math.isnan(a) and math.isnan(b)) or a == b for a, b in zip(got[k], v, strict=True))
            else:
                assert got[k] == v, k
    # plan order, base pass first
    assert [r["aug"] is not None for r in rows] == sorted(r["aug"] is not None for r in rows)
    assert not list(tmp_path.glob(".*tmp*"))  # the atomic write left no temp file


def test_failed_rows_are_present_and_maximally_wrong():
    records = sample_records()
    table = records_to_table(records)
    rows = [r for r in table.to_pylist() if r["aug"] is None]
    failed = [r for r in rows if r["status"] != "ok"]
    assert {r["status"] for r in failed} == {"decode_error", "inference_error", "invalid_output"}
    for r in failed:
        assert r["p_synthetic"] == 1 - r["y"] and r["predicted"] != r["y"] and r["correct"] is False
    scores = scores_from_records(table)
    assert scores.overall.n == 40  # nothing dropped
    expected = binary_metrics([r["y"] for r in rows], [r["p_synthetic"] for r in rows])
    assert scores.overall.sn34 == expected.sn34 and scores.overall.brier == expected.brier
    assert scores.overall.statuses == {"ok": 28, "decode_error": 4, "inference_error": 4, "invalid_output": 4}
    # dropping the failed rows (the reference's behaviour) would score better: they count here
    ok_only = binary_metrics([r["y"] for r in rows if r["status"] == "ok"],
                             [r["p_synthetic"] for r in rows if r["status"] == "ok"])
    assert scores.overall.brier > ok_only.brier


def test_scores_from_records_per_dataset_generator_and_robustness():
    records = sample_records()
    scores = scores_from_records(records_to_table(records), aug_weight=0.25)
    assert set(scores.per_dataset) == {"d1", "d2"}
    assert sum(m.n for m in scores.per_dataset.values()) == scores.overall.n
    gen = scores.per_generator["5Hot"]
    hot = [r for r in records if r.generator_hotkey == "5Hot" and r.aug is None]
    assert gen.n == len(hot) and gen.correct == sum(r.correct for r in hot)
    rob = scores.robustness
    assert rob is not None and rob.n == 10 and rob.weight == 0.25
    assert rob.final_sn34 == pytest.approx(0.75 * scores.overall.sn34 + 0.25 * rob.aug_sn34)
    assert scores.score == rob.final_sn34
    assert rob.mean_prob_degradation is not None
    # rows, dicts and the parquet table give the same scores
    assert scores_from_records(records, aug_weight=0.25) == scores
    assert scores_from_records([r.to_dict() for r in records], aug_weight=0.25) == scores
    no_aug = scores_from_records([r for r in records if r.aug is None])
    assert no_aug.robustness is None and no_aug.score == no_aug.overall.sn34


def test_empty_records_score_zero():
    scores = scores_from_records([])
    assert scores.overall.n == 0 and scores.overall.sn34 == 0.0 and scores.overall.brier == 0.25


def make_results(scores: Scores, **over) -> BenchResults:
    fields = dict(
        gas_node_version="0.1.0", complete=True, mode="small", modality="image", seed=0, batch_size=4,
        plan_hash="f" * 64,
        package=PackageInfo(name="m", sha256="a" * 64, modality="image", source="/p"),
        environment=Environment(isolation="bwrap", device="cpu", torch_version="2.13.0"),
        datasets=["d1", "d2"], **scores.model_dump(),
        exam=exam_result(scores.overall, complete=True),
        counts=Counts(planned=40, planned_aug=10, recorded=40, recorded_aug=10, remaining=0, ok=38,
                      decode_error=4, inference_error=4, invalid_output=4, sandbox_restarts=0),
        timings=Timings(startup_s=1.0, decode_s=0.5, infer_s=0.1, wall_s=2.0, loop_s=0.8, samples_per_s=25.0,
                        samples_this_session=50, sessions=1),
        started_at="2026-01-01T00:00:00+00:00", finished_at="2026-01-01T00:00:02+00:00",
        wall_limit_s=None, wall_limit_hit=False, resumed=False, errors=[],
    )
    fields.update(over)
    return BenchResults(**fields)


def test_results_json_round_trip_and_agreement_with_records(tmp_path):
    records = sample_records()
    write_records_parquet(records, tmp_path / "records.parquet")
    scores = scores_from_records(records_to_table(records), aug_weight=0.2)
    res = make_results(scores)
    res.write(tmp_path / "results.json")
    text = (tmp_path / "results.json").read_text()
    data = json.loads(text)  # strict JSON: no NaN anywhere
    assert "NaN" not in text and data["schema_version"] == 1
    loaded = BenchResults.load(tmp_path / "results.json")
    assert loaded == res
    again = scores_from_records(pq.read_table(tmp_path / "records.parquet"),
                                aug_weight=loaded.robustness.weight)
    assert again == loaded.scores  # exactly, not approximately
    with pytest.raises(ValidationError):
        BenchResults.model_validate({**data, "schema_version": 2})
    with pytest.raises(ValidationError):
        BenchResults.model_validate({**data, "surprise": 1})


def test_exam_rule():
    scores = scores_from_records([rec(i, y=i % 2, p=0.9 if i % 2 else 0.1) for i in range(10)])
    assert exam_result(scores.overall, complete=True).passed
    assert not exam_result(scores.overall, complete=False).passed
    bad = scores_from_records([rec(i, y=i % 2, p=0.9 if i < 3 else 0.2) for i in range(10)])
    assert bad.overall.accuracy < 0.8 and not exam_result(bad.overall, complete=True).passed


def test_checkpoint_append_read_and_torn_last_line(tmp_path):
    ck = Checkpoint(tmp_path)
    ck.start({"plan_hash": "p", "package_sha256": "s"})
    ck.append_session({"started_at": "now"})
    records = sample_records()
    ck.append_batch("base", 0, records[:4])
    ck.append_batch("base", 1, records[4:9])
    header, got, sessions = ck.read()
    assert header["plan_hash"] == "p" and sessions == 1
    assert [r["sample_id"] for r in got] == [r.sample_id for r in records[:9]]
    assert any(math.isnan(x) for r in got for x in r["logits"])  # NaN logits survive the JSON lines
    size = ck.path.stat().st_size
    # a crash in the middle of writing batch 2: a torn line without its newline
    with open(ck.path, "ab") as fh:
        fh.write(b'{"kind":"batch","pass":"base","batch_index":2,"records":[{"sample_id":"s0')
    header, got2, _ = ck.read()
    assert len(got2) == 9 and ck.path.stat().st_size == size  # the torn batch never counted, and was cut
    ck.append_batch("base", 2, records[9:12])
    assert len(ck.read()[1]) == 12
    ck.remove()
    assert not ck.exists() and ck.read() == (None, [], 0)


def test_checkpoint_damage_in_the_middle_is_an_error(tmp_path):
    ck = Checkpoint(tmp_path)
    ck.start({"plan_hash": "p", "package_sha256": "s"})
    with open(ck.path, "ab") as fh:
        fh.write(b"garbage\n")
    with pytest.raises(CheckpointError):
        ck.read()
    (tmp_path / "records.partial.jsonl").write_text('{"kind": "other"}\n')
    with pytest.raises(CheckpointError):
        ck.read()
