"""The validator's weight vector: fixed lanes for discriminator winners and generators, plus burn.

Each lane owns a fixed share of the emission. Winner lanes go whole to one uid; the generator lane is
split pro rata over generator scores; a lane nobody can receive goes to ``burn_uid`` instead of being
renormalised onto the others, so an empty lane never inflates the rest. The result never contains
NaN or negatives, whatever the scores.

``WeightVector.to_u16`` reproduces the bittensor SDK's quantisation (``bittensor.intents.weights.
normalize`` in bittensor 11.3): ``round(w / max(w) * 65535)`` with Python's round-half-to-even, zeros
dropped. The SDK clips to the subnet's ``max_weight_limit`` *before* that when the limit is below
65535; we do not reproduce that clip (it would distort the lanes), so check the limit on chain.
"""

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

U16_MAX = 65535
LANES = ("image", "video", "audio", "generators", "burn")
WINNER_LANES = ("image", "video", "audio")


def _share(default: float) -> Any:
    """A lane share field: a finite number in [0, 1]."""
    return Field(default, ge=0, le=1, allow_inf_nan=False)


class WeightLanes(BaseModel):
    """Emission shares per lane (non-negative, summing to 1) and the uid that receives burn."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    image: float = _share(0.40)
    video: float = _share(0.40)
    audio: float = _share(0.04)
    generators: float = _share(0.16)
    burn: float = _share(0.0)
    burn_uid: int = Field(0, ge=0, le=U16_MAX)

    @model_validator(mode="after")
    def _sums_to_one(self) -> "WeightLanes":
        total = math.fsum(self.shares().values())
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"image + video + audio + generators + burn must sum to 1, got {total!r}")
        return self

    def shares(self) -> dict[str, float]:
        """Lane name → configured share."""
        return {lane: float(getattr(self, lane)) for lane in LANES}


@dataclass(frozen=True)
class WeightVector:
    """Weights over uids 0..n-1 (float, sum 1) and what each lane actually paid, for logging.

    ``lane_shares``: share each lane delivered; ``burn`` includes the shares of lanes without a
    recipient (listed in ``unassigned``). ``allocations``: lane → {uid: amount}; weights are their sum.
    """

    uids: np.ndarray
    weights: np.ndarray
    lane_shares: dict[str, float]
    allocations: dict[str, dict[int, float]]
    unassigned: tuple[str, ...] = field(default=())

    def to_u16(self) -> tuple[list[int], list[int]]:
        """(uids, u16 values) exactly as the SDK sends them: max → 65535, half-to-even, zeros dropped."""
        return to_u16(self.uids, self.weights)


def to_u16(
    uids: Sequence[int] | np.ndarray, weights: Sequence[float] | np.ndarray
) -> tuple[list[int], list[int]]:
    """Max-upscale and quantise to u16 like ``bittensor.intents.weights.normalize`` (11.3)."""
    u = np.asarray(uids, dtype=np.int64)
    w = np.asarray(weights, dtype=np.float64)
    if u.shape != w.shape or u.ndim != 1:
        raise ValueError(f"uids and weights must be equal-length 1-d, got {u.shape} and {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("weights must be finite and non-negative")
    if w.size == 0 or w.max() == 0:
        return [], []
    values = np.rint((w / w.max()) * U16_MAX)  # same operation order as the SDK; rint = half-even
    keep = values != 0
    return u[keep].tolist(), values[keep].astype(np.int64).tolist()


def from_u16(uids: Sequence[int], values: Sequence[int], n_uids: int) -> np.ndarray:
    """Recover sum-1 floats over uids 0..n_uids-1 from quantised (uids, values); all-zero → zeros."""
    u = np.asarray(uids, dtype=np.int64)
    v = np.asarray(values, dtype=np.float64)
    if u.shape != v.shape or u.ndim != 1:
        raise ValueError(f"uids and values must be equal-length 1-d, got {u.shape} and {v.shape}")
    if np.any((u < 0) | (u >= n_uids)) or len(set(u.tolist())) != u.size:
        raise ValueError(f"uids must be distinct and in [0, {n_uids})")
    if np.any((v < 0) | (v > U16_MAX)) or np.any(v != np.round(v)):
        raise ValueError("values must be integers in [0, 65535]")
    out = np.zeros(n_uids, dtype=np.float64)
    out[u] = v
    total = out.sum()
    return out / total if total > 0 else out


def scores_by_uid(scores: Mapping[str, float], hotkeys: Sequence[str]) -> dict[int, float]:
    """Hotkey-keyed scores → current uids (``hotkeys[uid]`` from the metagraph); unknown hotkeys drop."""
    return {uid: scores[hk] for uid, hk in enumerate(hotkeys) if hk in scores}


def _check_uid(name: str, uid: object, n_uids: int) -> int:
    if isinstance(uid, bool) or not isinstance(uid, (int, np.integer)):
        raise ValueError(f"{name}: uid must be an int, got {uid!r}")
    if not 0 <= int(uid) < n_uids:
        raise ValueError(f"{name}: uid {uid} out of range [0, {n_uids})")
    return int(uid)


def _clean_score(value: object) -> float:
    """NaN, inf, negatives and non-numbers count as 0: a broken score must never move weight."""
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
    return x if math.isfinite(x) and x > 0 else 0.0


def build_weights(
    n_uids: int,
    *,
    image_winner: int | None,
    video_winner: int | None,
    audio_winner: int | None,
    generator_scores: Mapping[int, float],
    special_uids: Iterable[int] = (),
    lanes: WeightLanes | None = None,
) -> WeightVector:
    """Build the lane-based weight vector over uids 0..n_uids-1.

    Special uids (escrow/burn/owner; ``lanes.burn_uid`` always counts as special) are excluded from
    the generator normalisation and never get generator share. One uid may win several lanes.
    """
    lanes = lanes or WeightLanes()
    if isinstance(n_uids, bool) or not isinstance(n_uids, (int, np.integer)):
        raise ValueError(f"n_uids must be an int, got {n_uids!r}")
    if not 1 <= n_uids <= U16_MAX + 1:
        raise ValueError(f"n_uids must be an int in [1, {U16_MAX + 1}], got {n_uids!r}")
    n_uids = int(n_uids)
    burn_uid = _check_uid("lanes.burn_uid", lanes.burn_uid, n_uids)
    winners = {
        "image": None if image_winner is None else _check_uid("image_winner", image_winner, n_uids),
        "video": None if video_winner is None else _check_uid("video_winner", video_winner, n_uids),
        "audio": None if audio_winner is None else _check_uid("audio_winner", audio_winner, n_uids),
    }
    special = {_check_uid("special_uids", u, n_uids) for u in special_uids} | {burn_uid}
    scores = {_check_uid("generator_scores", u, n_uids): _clean_score(s) for u, s in generator_scores.items()}

    configured = lanes.shares()
    total = math.fsum(configured.values())
    share = {lane: s / total for lane, s in configured.items()}  # exact sum 1 up to float rounding

    allocations: dict[str, dict[int, float]] = {lane: {} for lane in LANES}
    unassigned: list[str] = []
    burned = share["burn"]
    for lane in WINNER_LANES:
        if share[lane] <= 0:
            continue
        uid = winners[lane]
        if uid is None:
            unassigned.append(lane)
            burned += share[lane]
        else:
            allocations[lane][uid] = share[lane]

    eligible = sorted((u, s) for u, s in scores.items() if s > 0 and u not in special)
    if share["generators"] > 0:
        if eligible:
            arr = np.array([s for _, s in eligible], dtype=np.float64)
            arr = arr / arr.max()  # scale first: a sum of huge finite scores must not overflow to inf
            amounts = share["generators"] * (arr / arr.sum())
            pairs = zip(eligible, amounts, strict=True)
            allocations["generators"] = {u: float(a) for (u, _), a in pairs if a > 0}
        if not allocations["generators"]:
            unassigned.append("generators")
            burned += share["generators"]
    if burned > 0:
        allocations["burn"][burn_uid] = burned

    weights = np.zeros(n_uids, dtype=np.float64)
    for lane_alloc in allocations.values():
        for uid, amount in lane_alloc.items():
            weights[uid] += amount
    lane_shares = {lane: math.fsum(allocations[lane].values()) for lane in LANES}
    return WeightVector(
        uids=np.arange(n_uids, dtype=np.int64),
        weights=weights,
        lane_shares=lane_shares,
        allocations=allocations,
        unassigned=tuple(unassigned),
    )
