"""Generator rewards: per-epoch reward per hotkey, its EMA, and liveness.

reward = (w_img * base_image + w_vid * base_video) * (1 + fool_bonus), with
base_m = pass_rate_m * volume(verified_m) * price_multiplier_m. Scores are keyed by **hotkey**, never
by uid: a uid recycled to a new owner must not inherit the previous owner's score.

Pure numpy + pydantic; all constants live in :class:`GeneratorRewardParams`.
"""

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, model_validator

from gas.scoring.pricing import (
    Generation,
    PriceTable,
    image_price_multiplier,
    load_price_table,
    video_price_multiplier,
)

Hotkey = str


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _finite(default: float, **bounds: float) -> Any:
    """A float field that rejects NaN and inf."""
    return Field(default, allow_inf_nan=False, **bounds)


class GeneratorRewardParams(_Frozen):
    """Every constant of the generator reward, in one validated place (errors name the field)."""

    volume_cap: int = Field(10, ge=1, description="verified items counted linearly; beyond: log2")
    image_weight: float = _finite(0.30, ge=0, le=1)
    video_weight: float = _finite(0.70, ge=0, le=1)
    fool_sample_size: int = Field(20, ge=1, description="fool-bonus sample count with multiplier 1")
    fool_max_multiplier: float = _finite(2.0, ge=0)
    fool_min_multiplier: float = _finite(0.5, ge=0)
    bonus_min: float = _finite(0.0, ge=0)
    bonus_max: float = _finite(2.0, ge=0)
    ema_alpha: float = _finite(0.5, gt=0, le=1)
    liveness_window_s: float = _finite(24 * 3600.0, gt=0)
    price_table_version: int = Field(1, ge=1)
    price_table_path: Path | None = Field(None, description="None: the repo's configs/pricing/v1.yaml")

    @model_validator(mode="after")
    def _ordered(self) -> "GeneratorRewardParams":
        if self.fool_min_multiplier > self.fool_max_multiplier:
            raise ValueError("fool_min_multiplier must not exceed fool_max_multiplier")
        if self.bonus_min > self.bonus_max:
            raise ValueError("bonus_min must not exceed bonus_max")
        if self.image_weight + self.video_weight <= 0:
            raise ValueError("image_weight + video_weight must be positive")
        return self

    def load_price_table(self) -> PriceTable:
        """Load the configured table and refuse one whose version differs from the configured one."""
        table = load_price_table(self.price_table_path)
        check_table_version(table, self)
        return table


DEFAULT_PARAMS = GeneratorRewardParams()


def check_table_version(table: PriceTable, params: GeneratorRewardParams) -> None:
    """Validators must price with the same table version; a mismatch is a config error."""
    if table.version != params.price_table_version:
        raise ValueError(
            f"price_table_version: params expect version {params.price_table_version}, "
            f"the table is version {table.version}"
        )


def volume(n: ArrayLike, params: GeneratorRewardParams = DEFAULT_PARAMS) -> float | np.ndarray:
    """min(n, cap) + log2(max(1, n - cap + 1)): linear up to the cap, then each doubling adds 1,
    so spamming cheap media has diminishing returns. Vectorised; a scalar in gives a float out."""
    arr = np.asarray(n, dtype=np.float64)
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError("volume: counts must be finite and non-negative")
    cap = params.volume_cap
    out = np.minimum(arr, cap) + np.log2(np.maximum(1.0, arr - (cap - 1)))
    return float(out) if out.ndim == 0 else out


def _counts(**counts: int) -> None:
    for name, value in counts.items():
        if value < 0:
            raise ValueError(f"{name} must be non-negative, got {value}")


def pass_rate(verified: int, failed: int) -> float:
    """verified / (verified + failed); 0 when there are no outcomes (nothing earned)."""
    _counts(verified=verified, failed=failed)
    total = verified + failed
    return verified / total if total else 0.0


def base_reward(
    verified: int, failed: int, price_mult: float, params: GeneratorRewardParams = DEFAULT_PARAMS
) -> float:
    """pass_rate * volume(verified) * price multiplier for one modality."""
    if not math.isfinite(price_mult) or price_mult < 0:
        raise ValueError(f"price_mult must be finite and non-negative, got {price_mult}")
    return pass_rate(verified, failed) * float(volume(verified, params)) * price_mult


def fool_bonus(fooled: int, not_fooled: int, params: GeneratorRewardParams = DEFAULT_PARAMS) -> float:
    """Bonus for media that fooled discriminators, scaled by sample size so a handful of lucky
    samples counts for less: s = min(max, 1 + ln(c/N)) for c >= N, else max(min, c/N)."""
    _counts(fooled=fooled, not_fooled=not_fooled)
    c = fooled + not_fooled
    if c == 0:
        return 0.0
    n = params.fool_sample_size
    if c >= n:
        scale = min(params.fool_max_multiplier, 1.0 + math.log(c / n))
    else:
        scale = max(params.fool_min_multiplier, c / n)
    return float(np.clip(fooled / c * scale, params.bonus_min, params.bonus_max))


def combine(
    base_image: float, base_video: float, bonus: float, params: GeneratorRewardParams = DEFAULT_PARAMS
) -> float:
    """(w_img * base_image + w_vid * base_video) * (1 + bonus); a bonus without base gives 0."""
    for name, value in (("base_image", base_image), ("base_video", base_video), ("bonus", bonus)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be finite and non-negative, got {value}")
    return (params.image_weight * base_image + params.video_weight * base_video) * (1.0 + bonus)


def _check_scores(name: str, scores: Mapping[Hotkey, float]) -> None:
    for hotkey, value in scores.items():
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name}[{hotkey!r}] must be finite and non-negative, got {value}")


def ema_update(
    prev_scores: Mapping[Hotkey, float], rewards: Mapping[Hotkey, float], alpha: float
) -> dict[Hotkey, float]:
    """new = alpha * reward + (1 - alpha) * prev, for the union of hotkeys.

    Hotkeys without a reward this epoch decay as if rewarded 0 (the reference does the same for all
    uids). An empty ``rewards`` mapping means no generator data this epoch (e.g. our own outage):
    scores are returned unchanged rather than decayed, as the reference returns early there.
    Keyed by hotkey, so a new owner of a recycled uid starts from 0.
    """
    if not (0.0 < alpha <= 1.0):
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    _check_scores("prev_scores", prev_scores)
    _check_scores("rewards", rewards)
    if not rewards:
        return dict(prev_scores)
    hotkeys = dict.fromkeys([*prev_scores, *rewards])
    return {
        hk: alpha * rewards.get(hk, 0.0) + (1.0 - alpha) * prev_scores.get(hk, 0.0) for hk in hotkeys
    }


def apply_liveness(
    scores: Mapping[Hotkey, float], last_seen: Mapping[Hotkey, float], now: float, window: float
) -> dict[Hotkey, float]:
    """Zero hotkeys not seen within ``window`` seconds of ``now`` (unix seconds).

    Hotkeys missing from ``last_seen`` count as not seen. An empty ``last_seen`` means no liveness
    data at all (fresh state), and then nothing is zeroed, as in the reference.
    """
    if not math.isfinite(window) or window <= 0:
        raise ValueError(f"window must be positive, got {window}")
    if not last_seen:
        return dict(scores)
    cutoff = now - window
    return {hk: (s if last_seen.get(hk, -math.inf) >= cutoff else 0.0) for hk, s in scores.items()}


def retain_hotkeys(scores: Mapping[Hotkey, float], hotkeys: set[Hotkey] | frozenset[Hotkey]) -> dict:
    """Drop scores of hotkeys no longer registered, so the score map does not grow forever."""
    return {hk: s for hk, s in scores.items() if hk in hotkeys}


class GeneratorStats(_Frozen):
    """One hotkey's inputs for an epoch: verification outcomes, priced generations, fool counts.

    The generation lists hold exactly the verified generations of that modality, so their length
    must equal the verified count (an inconsistent aggregate is rejected, not silently priced).
    """

    image_verified: NonNegativeInt = 0
    image_failed: NonNegativeInt = 0
    video_verified: NonNegativeInt = 0
    video_failed: NonNegativeInt = 0
    image_generations: tuple[Generation, ...] = ()
    video_generations: tuple[Generation, ...] = ()
    fooled: NonNegativeInt = 0
    not_fooled: NonNegativeInt = 0

    @model_validator(mode="after")
    def _lists_match_counts(self) -> "GeneratorStats":
        for modality in ("image", "video"):
            n_gen = len(getattr(self, f"{modality}_generations"))
            n_ver = getattr(self, f"{modality}_verified")
            if n_gen != n_ver:
                raise ValueError(
                    f"{modality}_generations: {n_gen} generations but {modality}_verified = {n_ver}"
                )
        return self


class RewardBreakdown(_Frozen):
    """Every intermediate of one hotkey's reward, so a validator can log why it paid what it did."""

    image_pass_rate: float
    video_pass_rate: float
    image_volume: float
    video_volume: float
    image_price_multiplier: float
    video_price_multiplier: float
    base_image: float
    base_video: float
    bonus: float
    reward: float


def generator_reward(
    stats: GeneratorStats, params: GeneratorRewardParams, table: PriceTable
) -> RewardBreakdown:
    """Compose the reward of one hotkey (see module docstring)."""
    img_mult = image_price_multiplier(stats.image_generations, table)
    vid_mult = video_price_multiplier(stats.video_generations, table)
    base_image = base_reward(stats.image_verified, stats.image_failed, img_mult, params)
    base_video = base_reward(stats.video_verified, stats.video_failed, vid_mult, params)
    bonus = fool_bonus(stats.fooled, stats.not_fooled, params)
    return RewardBreakdown(
        image_pass_rate=pass_rate(stats.image_verified, stats.image_failed),
        video_pass_rate=pass_rate(stats.video_verified, stats.video_failed),
        image_volume=float(volume(stats.image_verified, params)),
        video_volume=float(volume(stats.video_verified, params)),
        image_price_multiplier=img_mult,
        video_price_multiplier=vid_mult,
        base_image=base_image,
        base_video=base_video,
        bonus=bonus,
        reward=combine(base_image, base_video, bonus, params),
    )


def generator_rewards(
    stats: Mapping[Hotkey, GeneratorStats],
    params: GeneratorRewardParams = DEFAULT_PARAMS,
    table: PriceTable | None = None,
) -> dict[Hotkey, RewardBreakdown]:
    """Reward breakdown per hotkey; ``table`` defaults to the one ``params`` names (version-checked)."""
    if table is None:
        table = params.load_price_table()
    else:
        check_table_version(table, params)
    return {hk: generator_reward(s, params, table) for hk, s in stats.items()}


def update_generator_scores(
    prev_scores: Mapping[Hotkey, float],
    stats: Mapping[Hotkey, GeneratorStats],
    last_seen: Mapping[Hotkey, float],
    now: float,
    params: GeneratorRewardParams = DEFAULT_PARAMS,
    table: PriceTable | None = None,
) -> tuple[dict[Hotkey, float], dict[Hotkey, RewardBreakdown]]:
    """One epoch: rewards → EMA → liveness. Returns (new scores, breakdowns for logging)."""
    breakdowns = generator_rewards(stats, params, table)
    rewards = {hk: b.reward for hk, b in breakdowns.items()}
    scores = ema_update(prev_scores, rewards, params.ema_alpha)
    return apply_liveness(scores, last_seen, now, params.liveness_window_s), breakdowns
