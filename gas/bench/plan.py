"""The sampling plan: which samples a run evaluates, in which order, in which batches.

``build_plan`` is a pure function of the datasets' samples and the seed:

1. per dataset, the samples are sorted by ``sample_id`` (so the manifest's row order does not
   matter) and a seeded random subset of ``cap`` samples is kept (``small``: the registry's
   ``caps.small`` or :data:`DEFAULT_SMALL_CAP`; ``full``: ``caps.full`` or every sample);
2. all kept samples, from every dataset, get ONE seeded shuffle, so batches mix datasets and labels
   and there is no "all real first" order a stateful model could exploit (reference flaw S4);
3. the shuffled samples are dealt into batches of ``batch_size`` so that every batch holds both labels
   while both are left: no batch is single-label unless one label has run out (reference flaw S5:
   label-homogeneous batches reward batch-level consensus).

The optional robustness subset (``aug_per_dataset``) is chosen and batched the same way from the kept
samples. ``plan_hash`` is the sha256 of the plan's canonical JSON; it is recorded in results.json
and in the resume checkpoint, so a run can only be resumed with the very same plan.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, PrivateAttr

from gas.bench.types import Sample

__all__ = [
    "DEFAULT_SMALL_CAP",
    "PLAN_VERSION",
    "Caps",
    "Mode",
    "Plan",
    "PlanError",
    "build_plan",
]

Mode = Literal["small", "full"]
#: Per-dataset cap in small mode when the registry gives none.
DEFAULT_SMALL_CAP = 64
#: Bump when the selection or ordering algorithm changes (it is part of the hash).
PLAN_VERSION = 1

#: ``caps``: one cap for every dataset, a per-dataset mapping (missing names get the mode's
#: default; ``None`` = no cap), or ``None`` for the mode's default everywhere.
Caps = int | Mapping[str, "int | None"] | None

Entry = tuple[str, str, str, str]  # (sample_id, dataset, label, sha256)


class PlanError(ValueError):
    """The datasets or the options cannot make a plan (bad mode, duplicate sample ids...)."""


class _DatasetLike(Protocol):
    name: str

    def samples(self) -> list[Sample]: ...


class Plan(BaseModel):
    """A seeded, ordered selection of samples, cut into batches.

    ``entries`` (base pass) and ``aug_entries`` (robustness pass) are in evaluation order; batch ``k``
    of a pass is ``entries[k*batch_size:(k+1)*batch_size]``. The :class:`Sample` objects behind the
    entries travel with the plan in memory (``samples``, ``aug_samples``) but are not serialised.
    """

    model_config = ConfigDict(frozen=True)

    version: int = PLAN_VERSION
    seed: int
    mode: Mode
    batch_size: int
    entries: list[Entry]
    aug_entries: list[Entry] = []
    plan_hash: str

    _samples: list[Sample] = PrivateAttr(default_factory=list)
    _aug_samples: list[Sample] = PrivateAttr(default_factory=list)

    @property
    def samples(self) -> list[Sample]:
        return self._samples

    @property
    def aug_samples(self) -> list[Sample]:
        return self._aug_samples

    @property
    def datasets(self) -> list[str]:
        return sorted({e[1] for e in self.entries})

    def batches(self, aug: bool = False) -> list[list[Sample]]:
        """The pass's samples cut into batches (the last one may be shorter)."""
        items = self._aug_samples if aug else self._samples
        b = self.batch_size
        return [items[i : i + b] for i in range(0, len(items), b)]

    def counts(self) -> dict[str, int]:
        """Planned samples per dataset (base pass)."""
        out: dict[str, int] = {}
        for e in self.entries:
            out[e[1]] = out.get(e[1], 0) + 1
        return dict(sorted(out.items()))


def _rng(seed: int, *parts: str) -> random.Random:
    """A generator seeded from the run seed and a purpose, stable across Python versions."""
    digest = hashlib.sha256(":".join(["gas-plan", str(seed), *parts]).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _cap_for(name: str, mode: Mode, caps: Caps) -> int | None:
    default = DEFAULT_SMALL_CAP if mode == "small" else None
    if caps is None:
        return default
    if isinstance(caps, bool):
        raise PlanError("caps must be an int, a mapping or None")
    if isinstance(caps, int):
        cap: int | None = caps
    elif isinstance(caps, Mapping):
        cap = caps.get(name, default)
    else:
        raise PlanError(f"caps must be an int, a mapping or None, got {type(caps).__name__}")
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 0):
        raise PlanError(f"cap for dataset {name!r} must be an int >= 0 or None, got {cap!r}")
    return cap


def _mix(samples: list[Sample], batch_size: int, rng: random.Random) -> list[Sample]:
    """One seeded shuffle, dealt into batches that hold both labels while both are available.

    Each batch, in order, first takes one real and one synthetic sample (while any is left), then
    its remaining slots are filled from the shuffled rest, and each batch is shuffled inside. So a
    batch is single-label only when one label has run out (then every later batch is single-label
    too); when the rarer label has at least one sample per batch, every batch is mixed.
    """
    order = list(samples)
    rng.shuffle(order)
    n = len(order)
    if batch_size < 2 or n == 0:
        return order
    nb = -(-n // batch_size)
    sizes = [batch_size] * (nb - 1) + [n - batch_size * (nb - 1)]
    real = [s for s in order if s.y == 0]
    synthetic = [s for s in order if s.y != 0]
    batches: list[list[Sample]] = [[] for _ in range(nb)]
    for k in range(nb):
        for pool in (real, synthetic) if rng.random() < 0.5 else (synthetic, real):
            if pool and len(batches[k]) < sizes[k]:
                batches[k].append(pool.pop())
    rest = real + synthetic
    rng.shuffle(rest)
    for k in range(nb):
        while len(batches[k]) < sizes[k]:
            batches[k].append(rest.pop())
        rng.shuffle(batches[k])
    return [s for b in batches for s in b]


def _entry(s: Sample) -> Entry:
    return (s.sample_id, s.dataset, s.label.value if hasattr(s.label, "value") else str(s.label), s.sha256)


def _canonical_hash(payload: dict) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def build_plan(
    datasets: Sequence[_DatasetLike] | Iterable[_DatasetLike],
    *,
    mode: Mode = "small",
    caps: Caps = None,
    seed: int = 0,
    batch_size: int = 32,
    aug_per_dataset: int = 0,
) -> Plan:
    """Select, shuffle and batch the samples of ``datasets`` (see the module docstring).

    ``aug_per_dataset``: how many of each dataset's selected samples the robustness pass re-runs
    with augmentation (0 = no robustness pass). Raises :class:`PlanError`.
    """
    if mode not in ("small", "full"):
        raise PlanError(f"mode must be 'small' or 'full', got {mode!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise PlanError(f"seed must be an int, got {seed!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise PlanError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if isinstance(aug_per_dataset, bool) or not isinstance(aug_per_dataset, int) or aug_per_dataset < 0:
        raise PlanError(f"aug_per_dataset must be an int >= 0, got {aug_per_dataset!r}")

    selected: list[Sample] = []
    aug_selected: list[Sample] = []
    seen_names: set[str] = set()
    for ds in datasets:
        name = ds.name
        if name in seen_names:
            raise PlanError(f"dataset {name!r} is listed twice")
        seen_names.add(name)
        samples = sorted(ds.samples(), key=lambda s: s.sample_id)
        ids = set()
        for s in samples:
            if s.sample_id in ids:
                raise PlanError(f"dataset {name!r}: duplicate sample_id {s.sample_id!r}")
            ids.add(s.sample_id)
            if s.dataset != name:
                raise PlanError(f"dataset {name!r}: sample {s.sample_id!r} says dataset {s.dataset!r}")
        cap = _cap_for(name, mode, caps)
        if cap is not None and cap < len(samples):
            # sample() keeps the sorted order's subset choice seeded; re-sort for a stable pre-shuffle order
            chosen = sorted(_rng(seed, "select", name).sample(samples, cap), key=lambda s: s.sample_id)
        else:
            chosen = samples
        selected.extend(chosen)
        if aug_per_dataset:
            k = min(aug_per_dataset, len(chosen))
            aug_selected.extend(sorted(_rng(seed, "aug-select", name).sample(chosen, k), key=lambda s: s.sample_id))

    # a canonical order before the shuffle: the datasets' order in the call does not matter
    selected.sort(key=lambda s: (s.dataset, s.sample_id))
    aug_selected.sort(key=lambda s: (s.dataset, s.sample_id))
    order = _mix(selected, batch_size, _rng(seed, "order"))
    aug_order = _mix(aug_selected, batch_size, _rng(seed, "aug-order"))
    entries = [_entry(s) for s in order]
    aug_entries = [_entry(s) for s in aug_order]
    payload = {
        "version": PLAN_VERSION,
        "seed": seed,
        "mode": mode,
        "batch_size": batch_size,
        "entries": entries,
        "aug_entries": aug_entries,
    }
    plan = Plan(
        seed=seed,
        mode=mode,
        batch_size=batch_size,
        entries=entries,
        aug_entries=aug_entries,
        plan_hash=_canonical_hash(payload),
    )
    plan._samples = order
    plan._aug_samples = aug_order
    return plan


def plan_hash_of(plan: Plan) -> str:
    """Recompute the hash of a (possibly deserialised) plan; equals ``plan.plan_hash`` when intact."""
    return _canonical_hash(
        {
            "version": plan.version,
            "seed": plan.seed,
            "mode": plan.mode,
            "batch_size": plan.batch_size,
            "entries": [list(e) for e in plan.entries],
            "aug_entries": [list(e) for e in plan.aug_entries],
        }
    )
