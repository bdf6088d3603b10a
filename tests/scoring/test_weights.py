"""Weight lanes, burn fallback, u16 quantisation, and hypothesis properties over arbitrary input."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from gas.scoring.weights import U16_MAX, WeightLanes, build_weights, from_u16, to_u16

try:  # the installed SDK's own quantiser, to check we match what it sends
    from bittensor.intents.weights import normalize as sdk_normalize
except ImportError:  # pragma: no cover - the SDK is a project dependency
    sdk_normalize = None


def test_lanes_defaults_and_validation():
    lanes = WeightLanes()
    assert lanes.shares() == {"image": 0.40, "video": 0.40, "audio": 0.04, "generators": 0.16, "burn": 0.0}
    assert lanes.burn_uid == 0
    assert WeightLanes(burn_uid=7).burn_uid == 7
    with pytest.raises(ValidationError, match="image \\+ video \\+ audio \\+ generators \\+ burn"):
        WeightLanes(burn=0.1)
    with pytest.raises(ValidationError, match="video"):
        WeightLanes(video=-0.1, burn=0.5)
    with pytest.raises(ValidationError, match="burn_uid"):
        WeightLanes(burn_uid=-1)
    WeightLanes(image=0.4 + 5e-10)  # within 1e-9 is accepted


def test_worked_example():
    # image -> uid 1, video -> uid 2, no audio winner (0.04 burns to uid 0), generators split 1:3
    # over uids 3 and 4; uid 0 (burn) and uid 2 (special) are excluded from the generator lane,
    # uid 5's NaN, uid 6's inf and uid 7's negative score count as 0.
    wv = build_weights(
        8, image_winner=1, video_winner=2, audio_winner=None,
        generator_scores={0: 5.0, 2: 9.0, 3: 1.0, 4: 3.0, 5: float("nan"), 6: float("inf"), 7: -2.0},
        special_uids={2},
    )
    np.testing.assert_allclose(wv.weights, [0.04, 0.40, 0.40, 0.04, 0.12, 0.0, 0.0, 0.0], atol=1e-15)
    assert wv.unassigned == ("audio",)
    assert wv.lane_shares == pytest.approx(
        {"image": 0.40, "video": 0.40, "audio": 0.0, "generators": 0.16, "burn": 0.04}
    )
    assert wv.allocations["generators"] == pytest.approx({3: 0.04, 4: 0.12})
    assert list(wv.uids) == list(range(8))


def test_same_uid_wins_several_lanes_and_empty_generators_burn():
    wv = build_weights(
        3, image_winner=1, video_winner=1, audio_winner=1, generator_scores={2: 0.0, 1: -4.0},
        lanes=WeightLanes(burn_uid=2),
    )
    np.testing.assert_allclose(wv.weights, [0.0, 0.84, 0.16])
    assert wv.unassigned == ("generators",)


def test_nothing_to_pay_burns_everything():
    wv = build_weights(4, image_winner=None, video_winner=None, audio_winner=None, generator_scores={})
    np.testing.assert_allclose(wv.weights, [1.0, 0, 0, 0])
    assert wv.to_u16() == ([0], [U16_MAX])


def test_huge_scores_do_not_overflow():
    wv = build_weights(3, image_winner=None, video_winner=None, audio_winner=None,
                       generator_scores={1: 1e308, 2: 1e308})
    np.testing.assert_allclose(wv.weights, [0.84, 0.08, 0.08])


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"image_winner": 5}, "image_winner: uid 5 out of range"),
        ({"audio_winner": -1}, "audio_winner"),
        ({"generator_scores": {9: 1.0}}, "generator_scores: uid 9"),
        ({"special_uids": {42}}, "special_uids: uid 42"),
        ({"lanes": WeightLanes(burn_uid=5)}, "lanes.burn_uid"),
        ({"video_winner": True}, "video_winner: uid must be an int"),
    ],
)
def test_out_of_range_uids_raise(kwargs, needle):
    args = {"image_winner": None, "video_winner": None, "audio_winner": None, "generator_scores": {}}
    with pytest.raises(ValueError, match=needle):
        build_weights(5, **(args | kwargs))


def test_to_u16_max_normalised_half_to_even():
    # 2.5 and 3.5 u16 steps: Python/SDK round-half-to-even gives 2 and 4 (half-up would give 3 and 4)
    uids, vals = to_u16([0, 1, 2, 3], [1.0, 2.5 / U16_MAX, 3.5 / U16_MAX, 0.0])
    assert (uids, vals) == ([0, 1, 2], [U16_MAX, 2, 4])  # zero weights are dropped, as the SDK does
    assert to_u16([0, 1], [0.0, 0.0]) == ([], [])
    uids, vals = to_u16([0, 1, 2], [0.4, 0.4, 0.2])
    assert vals == [U16_MAX, U16_MAX, 32768]  # 32767.5 -> even
    np.testing.assert_allclose(from_u16(uids, vals, 4), [0.4, 0.4, 0.2, 0.0], atol=1 / U16_MAX)
    with pytest.raises(ValueError, match="uids"):
        from_u16([0, 0], [1, 1], 3)


# --- properties -----------------------------------------------------------------------------------

scores_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0, max_value=1e6),
    st.just(0.0),
)


@st.composite
def lane_configs(draw, n_uids):
    raw = draw(st.lists(st.floats(0, 1), min_size=5, max_size=5).filter(lambda xs: sum(xs[:4]) > 0))
    total = sum(raw)
    image, video, audio, gens = (x / total for x in raw[:4])
    burn = max(0.0, 1.0 - (image + video + audio + gens))
    return WeightLanes(image=image, video=video, audio=audio, generators=gens, burn=burn,
                       burn_uid=draw(st.integers(0, n_uids - 1)))


@st.composite
def weight_inputs(draw):
    n = draw(st.integers(1, 40))
    uid = st.integers(0, n - 1)
    return dict(
        n_uids=n,
        image_winner=draw(st.none() | uid),
        video_winner=draw(st.none() | uid),
        audio_winner=draw(st.none() | uid),
        generator_scores=draw(st.dictionaries(uid, scores_values, max_size=n)),
        special_uids=draw(st.sets(uid, max_size=4)),
        lanes=draw(lane_configs(n)),
    )


def _expected(inp):
    """Independent recomputation of what each uid should get, lane by lane."""
    lanes, n = inp["lanes"], inp["n_uids"]
    special = set(inp["special_uids"]) | {lanes.burn_uid}
    exp = np.zeros(n)
    for lane in ("image", "video", "audio"):
        winner = inp[f"{lane}_winner"]
        exp[lanes.burn_uid if winner is None else winner] += getattr(lanes, lane)
    valid = {u: s for u, s in inp["generator_scores"].items()
             if u not in special and math.isfinite(s) and s > 0}
    if valid:
        top = max(valid.values())
        norm = {u: s / top for u, s in valid.items()}
        tot = sum(norm.values())
        for u, s in norm.items():
            exp[u] += lanes.generators * s / tot
    else:
        exp[lanes.burn_uid] += lanes.generators
    exp[lanes.burn_uid] += lanes.burn
    return exp, special, valid


@settings(max_examples=400, deadline=None)
@given(weight_inputs())
def test_weight_properties(inp):
    wv = build_weights(**inp)
    w = wv.weights
    assert w.shape == (inp["n_uids"],)
    assert not np.any(np.isnan(w)) and np.all(w >= 0)
    assert abs(w.sum() - 1.0) <= 1e-9
    exp, special, valid = _expected(inp)
    np.testing.assert_allclose(w, exp, atol=1e-9)
    # special uids never get generator share; only positive finite scores do
    assert not set(wv.allocations["generators"]) & special
    assert set(wv.allocations["generators"]) <= set(valid)
    # logged lane shares account for every unit of weight
    assert math.fsum(wv.lane_shares.values()) == pytest.approx(1.0, abs=1e-9)
    # quantisation: max -> 65535, each uid within half a u16 step (of the max) of its float weight
    uids, vals = wv.to_u16()
    assert max(vals) == U16_MAX and all(0 < v <= U16_MAX for v in vals)
    top = w.max()
    deq = np.zeros_like(w)
    deq[uids] = np.asarray(vals) * top / U16_MAX
    assert np.all(np.abs(deq - w) <= 0.5 * top / U16_MAX + 1e-15)
    assert abs(deq.sum() - 1.0) <= len(w) * top / U16_MAX
    rec = from_u16(uids, vals, inp["n_uids"])
    assert abs(rec.sum() - 1.0) <= 1e-9 and np.all(rec >= 0)


@pytest.mark.skipif(sdk_normalize is None, reason="bittensor SDK not installed")
@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.floats(0, 1e6), st.floats(0, 1e-300), st.just(0.0)), min_size=1, max_size=50))
def test_to_u16_matches_sdk(weights):
    uids = list(range(len(weights)))
    assert to_u16(uids, weights) == sdk_normalize(uids, weights)
