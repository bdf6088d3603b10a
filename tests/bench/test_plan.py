"""The sampling plan: seeded selection, one global shuffle, mixed-label batches, a stable hash."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from bench_run_fakes import FakeDataset
from hypothesis import given, settings
from hypothesis import strategies as st

from gas.bench.plan import DEFAULT_SMALL_CAP, Plan, PlanError, build_plan, plan_hash_of
from gas.bench.types import Sample
from gas.types import MediaLabel, Modality


def make_ds(name: str, label: str, n: int) -> FakeDataset:
    items = [
        Sample(
            sample_id=f"{name}-{i:04d}",
            dataset=name,
            modality=Modality.IMAGE,
            label=MediaLabel(label),
            path=Path(f"/nonexistent/{name}/{i}.png"),
            sha256=hashlib.sha256(f"{name}{i}".encode()).hexdigest(),
        )
        for i in range(n)
    ]
    return FakeDataset(name, Modality.IMAGE, items)


def standard() -> list[FakeDataset]:
    return [make_ds("real-a", "real", 40), make_ds("real-b", "real", 25), make_ds("fake-a", "synthetic", 30),
            make_ds("semi-a", "semisynthetic", 10)]


def test_same_seed_same_plan_and_hash():
    a = build_plan(standard(), mode="full", seed=3, batch_size=8)
    b = build_plan(list(reversed(standard())), mode="full", seed=3, batch_size=8)
    assert a.entries == b.entries  # dataset order and manifest order do not matter
    assert a.plan_hash == b.plan_hash == plan_hash_of(a)
    c = build_plan(standard(), mode="full", seed=4, batch_size=8)
    assert c.plan_hash != a.plan_hash and sorted(c.entries) == sorted(a.entries)
    assert build_plan(standard(), mode="full", seed=3, batch_size=16).plan_hash != a.plan_hash


def test_manifest_order_does_not_change_the_selection():
    ds = make_ds("real-a", "real", 200)
    shuffled = FakeDataset("real-a", Modality.IMAGE, list(reversed(ds.items)))
    a = build_plan([ds, make_ds("f", "synthetic", 5)], mode="small", caps=20, seed=1, batch_size=4)
    b = build_plan([shuffled, make_ds("f", "synthetic", 5)], mode="small", caps=20, seed=1, batch_size=4)
    assert a.entries == b.entries


def test_caps_per_mode_and_per_dataset():
    big = [make_ds("r", "real", 150), make_ds("s", "synthetic", 90)]
    small = build_plan(big, mode="small", seed=0, batch_size=32)
    assert small.counts() == {"r": DEFAULT_SMALL_CAP, "s": DEFAULT_SMALL_CAP}
    full = build_plan(big, mode="full", seed=0, batch_size=32)
    assert full.counts() == {"r": 150, "s": 90}
    mapped = build_plan(big, mode="full", caps={"r": 10}, seed=0, batch_size=32)
    assert mapped.counts() == {"r": 10, "s": 90}
    one = build_plan(big, mode="small", caps=7, seed=0, batch_size=32)
    assert one.counts() == {"r": 7, "s": 7}
    # the small selection is a subset of the full one, chosen by the seed
    assert {e[0] for e in small.entries} <= {e[0] for e in full.entries}
    other = build_plan(big, mode="small", seed=1, batch_size=32)
    assert {e[0] for e in other.entries} != {e[0] for e in small.entries}


def test_batches_match_entries_and_serialised_plan_round_trips():
    plan = build_plan(standard(), mode="full", seed=9, batch_size=7)
    flat = [s for b in plan.batches() for s in b]
    assert [(s.sample_id, s.dataset, s.label.value, s.sha256) for s in flat] == plan.entries
    assert all(len(b) == 7 for b in plan.batches()[:-1])
    again = Plan.model_validate_json(plan.model_dump_json())
    assert again.entries == plan.entries and plan_hash_of(again) == plan.plan_hash


def test_aug_subset_is_seeded_and_within_the_selection():
    plan = build_plan(standard(), mode="full", seed=2, batch_size=8, aug_per_dataset=4)
    assert len(plan.aug_entries) == 16
    assert set(plan.aug_entries) <= set(plan.entries)
    assert plan.aug_entries == build_plan(standard(), mode="full", seed=2, batch_size=8,
                                          aug_per_dataset=4).aug_entries
    assert build_plan(standard(), mode="full", seed=2, batch_size=8).plan_hash != plan.plan_hash


@pytest.mark.parametrize(
    "kwargs",
    [{"mode": "debug"}, {"batch_size": 0}, {"seed": "1"}, {"caps": -1}, {"caps": {"real-a": -2}},
     {"aug_per_dataset": -1}],
)
def test_bad_options_are_refused(kwargs):
    args = {"mode": "full", "seed": 0, "batch_size": 4, **kwargs}
    with pytest.raises(PlanError):
        build_plan(standard(), **args)


def test_duplicate_dataset_or_sample_is_refused():
    with pytest.raises(PlanError, match="twice"):
        build_plan([make_ds("a", "real", 3), make_ds("a", "real", 3)], mode="full", seed=0, batch_size=2)
    ds = make_ds("a", "real", 3)
    ds.items.append(ds.items[0])
    with pytest.raises(PlanError, match="duplicate sample_id"):
        build_plan([ds], mode="full", seed=0, batch_size=2)


def _single_label_batches_only_when_a_label_ran_out(plan: Plan) -> None:
    ys = [0 if e[2] == "real" else 1 for e in plan.entries]
    b = plan.batch_size
    for start in range(0, len(ys), b):
        if len(set(ys[start : start + b])) == 1:
            # single-label: the other label must not appear anywhere from here on
            assert len(set(ys[start:])) == 1, (start, ys)


@settings(max_examples=150, deadline=None)
@given(
    n_real=st.integers(0, 40),
    n_syn=st.integers(0, 40),
    n_semi=st.integers(0, 10),
    batch_size=st.integers(2, 12),
    seed=st.integers(0, 2**31),
)
def test_property_no_single_label_batch_unless_a_label_ran_out(n_real, n_syn, n_semi, batch_size, seed):
    datasets = [make_ds("r", "real", n_real), make_ds("s", "synthetic", n_syn), make_ds("m", "semisynthetic", n_semi)]
    plan = build_plan(datasets, mode="full", seed=seed, batch_size=batch_size)
    assert len(plan.entries) == n_real + n_syn + n_semi
    assert len(set(plan.entries)) == len(plan.entries)
    _single_label_batches_only_when_a_label_ran_out(plan)


def test_balanced_runs_have_every_batch_mixed():
    for seed in range(20):
        plan = build_plan([make_ds("r", "real", 64), make_ds("s", "synthetic", 64)], mode="full", seed=seed,
                          batch_size=4)
        for batch in plan.batches():
            assert {s.y for s in batch} == {0, 1}


def test_no_real_first_order_first_synthetic_position_varies_with_the_seed():
    datasets = [make_ds("real-a", "real", 50), make_ds("real-b", "real", 50), make_ds("fake", "synthetic", 50)]
    first_syn = set()
    first_dataset = set()
    first_label = set()
    for seed in range(30):
        plan = build_plan(datasets, mode="full", seed=seed, batch_size=16)
        labels = [e[2] for e in plan.entries]
        first_syn.add(labels.index("synthetic"))
        first_dataset.add(plan.entries[0][1])
        first_label.add(labels[0])
        # interleaved: the synthetic samples are spread over the whole run, not a block at the end
        positions = [i for i, lab in enumerate(labels) if lab == "synthetic"]
        assert positions[0] < len(labels) // 3 and positions[-1] > 2 * len(labels) // 3
    assert len(first_syn) >= 3  # random, not fixed
    assert first_label == {"real", "synthetic"}  # sometimes the very first sample is synthetic
    assert first_dataset == {"real-a", "real-b", "fake"}
