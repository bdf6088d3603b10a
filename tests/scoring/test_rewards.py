"""Generator rewards: hand-worked formulas, properties, hotkey-keyed EMA and liveness."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from gas.scoring.pricing import Generation, load_price_table
from gas.scoring.rewards import (
    GeneratorRewardParams,
    GeneratorStats,
    apply_liveness,
    base_reward,
    combine,
    ema_update,
    fool_bonus,
    generator_rewards,
    pass_rate,
    retain_hotkeys,
    update_generator_scores,
    volume,
)
from gas.scoring.weights import build_weights, scores_by_uid

TABLE = load_price_table()
DAY = 86400.0


@pytest.mark.parametrize(
    ("n", "v"), [(0, 0), (1, 1), (9, 9), (10, 10), (11, 11), (13, 12), (17, 13), (25, 14), (41, 15)]
)
def test_volume_table(n, v):
    assert volume(n) == pytest.approx(v)


def test_volume_vectorised_and_validated():
    np.testing.assert_allclose(volume(np.array([10, 11, 13, 17, 25, 41])), [10, 11, 12, 13, 14, 15])
    assert volume(12) == pytest.approx(10 + math.log2(3))
    assert volume(20, GeneratorRewardParams(volume_cap=5)) == pytest.approx(5 + math.log2(16))
    with pytest.raises(ValueError, match="non-negative"):
        volume(-1)


def test_pass_rate_and_base_reward():
    assert pass_rate(0, 0) == 0.0
    assert pass_rate(3, 1) == 0.75
    with pytest.raises(ValueError, match="failed"):
        pass_rate(1, -1)
    # 13 verified, 3 failed, multiplier 2: 13/16 * volume(13)=12 * 2 = 19.5
    assert base_reward(13, 3, 2.0) == pytest.approx(19.5)
    assert base_reward(0, 5, 4.0) == 0.0
    with pytest.raises(ValueError, match="price_mult"):
        base_reward(1, 0, float("nan"))


@pytest.mark.parametrize(
    ("fooled", "not_fooled", "bonus"),
    [
        (0, 0, 0.0),  # no samples
        (0, 100, 0.0),  # never fooled
        (4, 0, 0.5),  # rate 1, s = max(0.5, 4/20)
        (5, 5, 0.25),  # rate 0.5, s = max(0.5, 10/20) = 0.5
        (15, 0, 0.75),  # rate 1, s = 15/20
        (10, 10, 0.5),  # c = 20: s = 1 + ln(1) = 1
        (30, 10, 0.75 * (1 + math.log(2))),  # c = 40: s = 1 + ln 2 = 1.693 -> 1.2699
        (100, 100, 1.0),  # c = 200: s = min(2, 1 + ln 10 = 3.30) = 2, rate 0.5
        (200, 0, 2.0),  # rate 1 * s 2 = clamp max
    ],
)
def test_fool_bonus_worked(fooled, not_fooled, bonus):
    assert fool_bonus(fooled, not_fooled) == pytest.approx(bonus)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 10_000), st.integers(0, 100))
def test_fool_bonus_bounded_and_monotone(fooled, not_fooled, extra):
    b = fool_bonus(fooled, not_fooled)
    assert 0.0 <= b <= 2.0
    # moving samples from not-fooled to fooled never lowers the bonus
    moved = min(extra, not_fooled)
    assert fool_bonus(fooled + moved, not_fooled - moved) >= b - 1e-12


def test_combine():
    assert combine(10.0, 20.0, 0.5) == pytest.approx((0.30 * 10 + 0.70 * 20) * 1.5)  # 25.5
    assert combine(0.0, 0.0, 2.0) == 0.0  # a bonus alone earns nothing
    with pytest.raises(ValueError, match="bonus"):
        combine(1.0, 1.0, -0.1)


def test_params_validation_names_field():
    with pytest.raises(ValidationError, match="image_weight"):
        GeneratorRewardParams(image_weight=1.5)
    with pytest.raises(ValidationError, match="ema_alpha"):
        GeneratorRewardParams(ema_alpha=0.0)
    with pytest.raises(ValidationError, match="fool_min_multiplier"):
        GeneratorRewardParams(fool_min_multiplier=3.0)
    with pytest.raises(ValidationError, match="volume_caps"):
        GeneratorRewardParams(volume_caps=5)
    with pytest.raises(ValidationError, match="video_weight"):
        GeneratorRewardParams(video_weight=float("inf"))
    p = GeneratorRewardParams()
    assert (p.volume_cap, p.image_weight, p.video_weight, p.fool_sample_size) == (10, 0.30, 0.70, 20)
    assert (p.ema_alpha, p.liveness_window_s, p.price_table_version) == (0.5, DAY, 1)


def test_table_version_mismatch_refused():
    with pytest.raises(ValueError, match="price_table_version"):
        generator_rewards({}, GeneratorRewardParams(price_table_version=2), TABLE)
    assert GeneratorRewardParams().load_price_table() == TABLE


def test_stats_counts_must_match_generations():
    with pytest.raises(ValidationError, match="image_generations"):
        GeneratorStats(image_verified=2, image_generations=(Generation(),))


def test_generator_rewards_worked_example():
    two_k = Generation(requested_resolution="2K", observed=(2048, 2048))
    veo_720 = Generation(requested_resolution="720p", observed=(1280, 720))
    stats = {
        "hkA": GeneratorStats(
            image_verified=13, image_failed=3, image_generations=(two_k,) * 13,
            video_verified=11, video_generations=(veo_720,) * 11,
            fooled=30, not_fooled=10,
        ),
        "hkBonusOnly": GeneratorStats(image_failed=4, fooled=20, not_fooled=0),
    }
    out = generator_rewards(stats, GeneratorRewardParams(), TABLE)
    a = out["hkA"]
    # image: 13/16 * volume(13)=12 * sqrt(2) = 13.78858
    assert a.base_image == pytest.approx(13.788582, rel=1e-6)
    # video: 11/11 * volume(11)=11 * sqrt(0.152/0.03) = 24.76018
    assert a.base_video == pytest.approx(24.760183, rel=1e-6)
    assert a.bonus == pytest.approx(1.269860, rel=1e-6)
    # (0.3 * 13.78858 + 0.7 * 24.76018) * 2.26986 = 48.73096
    assert a.reward == pytest.approx(48.730958, rel=1e-6)
    assert (a.image_volume, a.video_volume, a.image_pass_rate) == (12.0, 11.0, 0.8125)
    assert out["hkBonusOnly"].bonus == pytest.approx(1.0)
    assert out["hkBonusOnly"].reward == 0.0


def test_ema_update_decays_absent_and_keeps_on_empty():
    prev = {"a": 1.0, "b": 0.4}
    new = ema_update(prev, {"a": 0.0, "c": 2.0}, 0.5)
    assert new == pytest.approx({"a": 0.5, "b": 0.2, "c": 1.0})
    assert ema_update(prev, {}, 0.5) == prev  # no generator data this epoch: no decay
    with pytest.raises(ValueError, match="rewards\\['x'\\]"):
        ema_update(prev, {"x": float("nan")}, 0.5)
    with pytest.raises(ValueError, match="alpha"):
        ema_update(prev, {"a": 1.0}, 1.5)


def test_recycled_uid_new_hotkey_starts_at_zero():
    # uid 3 belonged to old_hk (score 8); it is recycled to new_hk, which earns 2 this epoch.
    scores = {"old_hk": 8.0, "other": 4.0}
    scores = ema_update(scores, {"new_hk": 2.0, "other": 4.0}, 0.5)
    assert scores["new_hk"] == pytest.approx(1.0)  # 0.5 * 2 + 0.5 * 0, not 0.5 * 2 + 0.5 * 8
    metagraph_hotkeys = ["burn", "v1", "other", "new_hk"]
    scores = retain_hotkeys(scores, set(metagraph_hotkeys))
    assert "old_hk" not in scores
    by_uid = scores_by_uid(scores, metagraph_hotkeys)
    assert by_uid == pytest.approx({2: 4.0, 3: 1.0})
    wv = build_weights(4, image_winner=None, video_winner=None, audio_winner=None, generator_scores=by_uid)
    assert wv.weights[3] == pytest.approx(0.16 * 1.0 / 5.0)


def test_apply_liveness():
    now = 1_000_000.0
    scores = {"fresh": 1.0, "edge": 1.0, "stale": 1.0, "never": 1.0}
    seen = {"fresh": now - 100, "edge": now - DAY, "stale": now - DAY - 1}
    assert apply_liveness(scores, seen, now, DAY) == {"fresh": 1.0, "edge": 1.0, "stale": 0.0, "never": 0.0}
    assert apply_liveness(scores, {}, now, DAY) == scores  # no liveness data at all: untouched


def test_update_generator_scores_one_epoch():
    stats = {"g1": GeneratorStats(video_verified=1, video_generations=(Generation(observed=(1920, 1080)),))}
    now = 5_000_000.0
    scores, breakdowns = update_generator_scores(
        {"g1": 2.0, "gone": 6.0}, stats, {"g1": now, "gone": now - 2 * DAY}, now, table=TABLE
    )
    # reward = 0.7 * 1 * volume(1)=1 * sqrt(0.40/0.03); EMA with 0.5
    expected = 0.5 * 0.7 * math.sqrt(0.40 / 0.03) + 0.5 * 2.0
    assert scores == pytest.approx({"g1": expected, "gone": 0.0})
    assert breakdowns["g1"].video_price_multiplier == pytest.approx(math.sqrt(0.40 / 0.03))
