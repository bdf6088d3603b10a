"""Pure helpers shared by the API services: snapping, parsing, data URLs, provider error shapes."""

from __future__ import annotations

import base64

import httpx
import pytest
from fake_providers import png_bytes

from gas.generation.services.api_common import (
    IMAGE_TIERS,
    VIDEO_TIERS,
    decode_data_url,
    nearest_number,
    normalize_tier,
    param_bool,
    param_int,
    param_number,
    pick_video_size,
    provider_error_details,
    secret_value,
    snap_tier,
    video_tier_of,
)
from gas.generation.services.base import GenerationFailed, InvalidParameters


def test_snap_tier_prefers_exact_then_nearest_then_higher() -> None:
    order = ("480p", "720p", "1080p", "4K")
    assert snap_tier("1080p", ("720p", "1080p"), order, "720p") == "1080p"
    assert snap_tier("480p", ("720p", "1080p"), order, "720p") == "720p"
    assert snap_tier("4K", ("480p", "720p", "1080p"), order, "720p") == "1080p"
    assert snap_tier("720p", ("480p", "1080p"), order, "480p") == "1080p"  # tie -> higher (no undershoot)
    assert snap_tier(None, ("480p", "720p"), order, "720p") == "720p"


def test_tiers_and_sizes() -> None:
    assert normalize_tier("720P", VIDEO_TIERS) == "720p" and normalize_tier("1080", VIDEO_TIERS) == "1080p"
    assert normalize_tier("2k", IMAGE_TIERS) == "2K" and normalize_tier(None, IMAGE_TIERS) is None
    with pytest.raises(InvalidParameters, match="resolution must be one of"):
        normalize_tier("8K", IMAGE_TIERS)
    assert video_tier_of(1920, 1080) == "1080p" and video_tier_of(1280, 720) == "720p"
    assert video_tier_of(864, 496) == "480p" and video_tier_of(1792, 1024) == "1080p"
    sizes = [(1280, 720), (720, 1280), (1920, 1080), (1080, 1920)]
    assert pick_video_size(sizes, None, None) == (1280, 720)
    assert pick_video_size(sizes, "480p", 9 / 16) == (720, 1280)
    assert pick_video_size(sizes, "4K", None) == (1920, 1080)
    assert nearest_number(5, (4, 6, 8)) == 6 and nearest_number(100, range(4, 16)) == 15


def test_parameter_parsing() -> None:
    assert param_int({"seed": "12"}, "seed") == 12 and param_int({}, "seed") is None
    for bad in (True, "x", 1.5):
        with pytest.raises(InvalidParameters):
            param_int({"seed": bad}, "seed")
    assert param_number({"duration": "8s"}, "duration") == 8.0
    with pytest.raises(InvalidParameters):
        param_number({"duration": -1}, "duration")
    assert param_bool({"audio": "yes"}, "audio") is True and param_bool({"audio": False}, "audio") is False
    with pytest.raises(InvalidParameters):
        param_bool({"audio": "maybe"}, "audio")


def test_data_url_is_base64_decoded_only() -> None:
    url = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
    assert decode_data_url(url) == ("image/png", png_bytes())
    with pytest.raises(GenerationFailed, match="data URL"):
        decode_data_url("https://example.com/a.png")
    with pytest.raises(GenerationFailed, match="corrupt"):
        decode_data_url("data:image/png;base64,@@@@")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"error": {"message": "Rate limit", "type": "requests", "code": "rate_limit_exceeded"}},
         ("rate_limit_exceeded", "Rate limit")),
        ({"error": {"code": 402, "message": "Insufficient credits"}}, ("402", "Insufficient credits")),
        ({"error": "Invalid API key"}, (None, "Invalid API key")),
        ({"id": "x", "name": "bad_request", "errors": ["prompt: cannot be empty"]},
         ("bad_request", "prompt: cannot be empty")),
    ],
)
def test_provider_error_shapes(body: dict, expected: tuple) -> None:
    assert provider_error_details(httpx.Response(400, json=body)) == expected


def test_non_json_error_and_secret_value() -> None:
    assert provider_error_details(httpx.Response(502, text="<html>Bad gateway</html>")) == (
        None, "<html>Bad gateway</html>")
    assert secret_value(None) is None and secret_value("  ") is None and secret_value(" k ") == "k"
