"""Price tables: tier boundaries, hand-worked multipliers, fallbacks, and bad yaml naming the field."""

import math

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from gas.scoring.pricing import (
    DEFAULT_PRICE_TABLE_PATH,
    Generation,
    PriceTableError,
    image_price_multiplier,
    image_tier,
    load_price_table,
    video_generation_multiplier,
    video_price_multiplier,
    video_tier,
)

TABLE = load_price_table()
R2 = math.sqrt(2.0)


def vid(model, requested, observed):
    return video_generation_multiplier(
        Generation(model_name=model, requested_resolution=requested, observed=observed), TABLE
    )


def img(requested, observed):
    return image_price_multiplier([Generation(requested_resolution=requested, observed=observed)], TABLE)


def test_default_table_values():
    assert TABLE.version == 1
    assert TABLE.video.baseline == 0.03
    assert [t.name for t in TABLE.image.tiers] == ["1K", "2K", "4K"]
    assert TABLE.video.undershoot_discount == 0.6
    assert TABLE.video.named_model_tier_prices["dreamina-seedance-2-0"]["1080p"] == 0.48


@pytest.mark.parametrize(
    ("w", "h", "tier"),
    [(1024, 1024, "1K"), (1899, 4000, "1K"), (1900, 1900, "2K"), (4000, 3499, "2K"),
     (3500, 3500, "4K"), (1, 1, "1K")],
)
def test_image_tier_by_shorter_side(w, h, tier):
    assert image_tier(w, h, TABLE) == tier


@pytest.mark.parametrize(
    ("w", "h", "tier"),
    [(854, 480, "480p"), (1039, 750, "480p"), (1040, 750, "720p"), (1280, 720, "720p"),
     (720, 1280, "720p"), (1919, 917, "720p"), (1100, 1600, "1080p"), (1920, 1080, "1080p"),
     (3840, 2160, "1080p")],
)
def test_video_tier_by_pixel_count(w, h, tier):
    assert video_tier(w, h, TABLE) == tier


def test_non_positive_sizes_rejected():
    with pytest.raises(ValueError, match="positive"):
        image_tier(0, 100, TABLE)
    with pytest.raises(ValueError, match="positive"):
        video_tier(100, -1, TABLE)
    with pytest.raises(ValidationError, match="observed"):
        Generation(observed=(0, 720))


# BASELINE 0.03: sqrt(0.07/0.03)=1.53, sqrt(0.10/0.03)=1.83, sqrt(0.152/0.03)=2.25,
# sqrt(0.40/0.03)=3.65, sqrt(0.48/0.03)=4.0
@pytest.mark.parametrize(
    ("model", "res", "size", "expected"),
    [
        (None, "480p", (854, 480), 1.53),
        ("dreamina-seedance-2-0", "480p", (854, 480), 1.83),
        ("dreamina-seedance-2-0-fast", "720p", (1280, 720), 2.25),
        (None, "1080p", (1920, 1080), 3.65),
        ("dreamina-seedance-2-0", "720p", (1280, 720), 3.65),
        ("dreamina-seedance-2-0", "1080p", (1920, 1080), 4.0),
    ],
)
def test_video_multiplier_worked_examples(model, res, size, expected):
    assert vid(model, res, size) == pytest.approx(expected, abs=0.005)


def test_video_undershoot_and_overshoot():
    # asked 1080p, delivered 720p: priced at 720p and discounted once: 2.2509 * 0.6
    assert vid(None, "1080p", (1280, 720)) == pytest.approx(math.sqrt(0.152 / 0.03) * 0.6)
    # two tiers short: 480p price, 0.6 ** 2
    assert vid(None, "1080p", (854, 480)) == pytest.approx(math.sqrt(0.07 / 0.03) * 0.36)
    # delivered more than asked: priced at the requested tier, no bonus for overshoot
    assert vid(None, "480p", (1920, 1080)) == pytest.approx(math.sqrt(0.07 / 0.03))


def test_video_fallbacks():
    assert vid(None, "1080p", None) == 1.0  # unknown observed -> baseline, no shortfall
    assert vid(None, None, (1920, 1080)) == pytest.approx(math.sqrt(0.40 / 0.03))  # requested = observed
    assert vid(None, "8K", (1920, 1080)) == pytest.approx(math.sqrt(0.40 / 0.03))  # unknown request
    assert vid("   ", "720p", (1280, 720)) == pytest.approx(math.sqrt(0.152 / 0.03))  # blank = unnamed
    # tier missing from a named model's table -> its max (fast has no 1080p)
    assert vid("dreamina-seedance-2-0-fast", "1080p", (1920, 1080)) == pytest.approx(math.sqrt(0.152 / 0.03))
    # substring match picks the longest key: the fast model, 480p = 0.07 (not the full model's 0.10)
    assert vid("bytedance/dreamina-seedance-2-0-fast-251215", "480p", (854, 480)) == pytest.approx(
        math.sqrt(0.07 / 0.03)
    )
    assert vid("Dreamina-Seedance-2-0", "1080p", (1920, 1080)) == pytest.approx(4.0)  # case-insensitive
    # named but not tiered: flat price * scale, floored at baseline
    assert vid("google/veo-3.1-fast", "1080p", (1920, 1080)) == pytest.approx(math.sqrt(0.08 * 2.25 / 0.03))
    assert vid("google/veo-3.1-fast", "480p", (854, 480)) == pytest.approx(math.sqrt(0.08 * 0.44 / 0.03))
    assert vid("veo-3.1-lite", "480p", (854, 480)) == 1.0  # 0.03 * 0.44 floored to 0.03
    # unknown to every table: baseline * scale -> sqrt(2.25) = 1.5 at 1080p
    assert vid("mystery-model", "1080p", (1920, 1080)) == pytest.approx(1.5)


def test_video_mean_and_empty():
    gens = [
        Generation(model_name="dreamina-seedance-2-0", requested_resolution="1080p", observed=(1920, 1080)),
        Generation(requested_resolution="720p", observed=None),
    ]
    assert video_price_multiplier(gens, TABLE) == pytest.approx((4.0 + 1.0) / 2)
    assert video_price_multiplier([], TABLE) == 0.0


def test_image_multiplier_rules():
    assert img("4K", (4096, 4096)) == pytest.approx(2.0)  # sqrt(4 / 1)
    assert img("2K", (4096, 4096)) == pytest.approx(R2)  # effective = min(observed, requested)
    assert img("4K", (1024, 1024)) == 1.0  # delivered less: priced as delivered
    assert img("4K", None) == 1.0  # unknown observed -> 1K price
    assert img(None, (2048, 2048)) == pytest.approx(R2)  # missing requested -> observed
    assert img("4k", (4096, 4096)) == pytest.approx(2.0)  # tier names are case-insensitive
    two = [Generation(requested_resolution="4K", observed=(4096, 4096)), Generation(observed=(512, 512))]
    assert image_price_multiplier(two, TABLE) == pytest.approx(1.5)
    assert image_price_multiplier([], TABLE) == 0.0


sizes = st.tuples(st.integers(1, 5000), st.integers(1, 5000))
models = st.sampled_from(
    [None, "", "dreamina-seedance-2-0", "dreamina-seedance-2-0-fast", "google/veo-3.1", "veo-3.1-lite", "xyz"]
)
requests = st.sampled_from([None, "480p", "720p", "1080p", "4K", "bogus"])


@settings(max_examples=200, deadline=None)
@given(models, requests, sizes, sizes)
def test_video_multiplier_monotone_in_delivered_size(model, requested, a, b):
    small, large = sorted([a, b], key=lambda s: s[0] * s[1])
    m_small, m_large = vid(model, requested, small), vid(model, requested, large)
    assert math.isfinite(m_small) and m_small >= 0.6**2 - 1e-12
    assert m_small <= m_large + 1e-12
    assert m_large <= 4.0 + 1e-12  # the most expensive default price is 0.48 = 16 * baseline


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([None, "1K", "2K", "4K", "8K"]), sizes)
def test_image_multiplier_bounded(requested, size):
    assert 1.0 <= img(requested, size) <= 2.0


# --- bad yaml -> error naming the field ---------------------------------------------------------


def _write(tmp_path, mutate):
    data = yaml.safe_load(DEFAULT_PRICE_TABLE_PATH.read_text())
    mutate(data)
    path = tmp_path / "table.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda d: d.pop("version"), "version"),
        (lambda d: d["video"]["model_prices"].update({"veo-3.1-lite": -1}), "video.model_prices.veo-3.1-lite"),
        (lambda d: d["image"]["tiers"][2].update(min_side=1000), "tiers[2].min_side"),
        (lambda d: d["image"]["tiers"][0].update(min_side=5), "tiers[0].min_side"),
        (lambda d: d["video"]["named_model_tier_prices"]["dreamina-seedance-2-0"].update({"2K": 1.0}),
         "named_model_tier_prices.dreamina-seedance-2-0: unknown tier '2K'"),
        (lambda d: d["video"]["named_model_tier_scale"].pop("1080p"), "named_model_tier_scale: missing tiers 1080p"),
        (lambda d: d["video"].update(undershot_discount=0.5), "video.undershot_discount"),
        (lambda d: d["video"].update(undershoot_discount=1.5), "video.undershoot_discount"),
        (lambda d: d["video"]["unnamed_tier_prices"].update({"720p": float("nan")}),
         "video.unnamed_tier_prices.720p"),
    ],
)
def test_bad_table_names_field(tmp_path, mutate, needle):
    path = _write(tmp_path, mutate)
    with pytest.raises(PriceTableError) as info:
        load_price_table(path)
    assert needle in str(info.value)
    assert str(path) in str(info.value)


def test_unreadable_tables(tmp_path):
    with pytest.raises(PriceTableError, match="cannot read"):
        load_price_table(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: [1\n")
    with pytest.raises(PriceTableError, match="not valid YAML"):
        load_price_table(bad)
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(PriceTableError, match="must be a mapping"):
        load_price_table(bad)
