"""Pure helpers shared by the API services: snapping, parsing, data URLs, provider error shapes."""

from __future__ import annotations

import base64

import httpx
import pytest
from fake_providers import FakeOpenRouter, FakeRunway, generate, json_reply, make_service, png_bytes, run

from gas.generation.services.api_common import (
    IMAGE_TIERS,
    VIDEO_TIERS,
    ApiService,
    JobNotFound,
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
from gas.generation.services.base import GenerationFailed, GenerationRequest, InvalidParameters
from gas.generation.services.openai_service import OpenAIService
from gas.generation.services.openrouter_service import OpenRouterService
from gas.generation.services.runway_service import RunwayService
from gas.generation.services.stabilityai_service import StabilityAIService


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


# --- the base class's shared pieces ---------------------------------------------------------------------

_PROVIDER_DEFAULTS = {
    # (base_url, poll_interval, job_timeout, request_timeout, download_timeout, max_retries, retry_backoff)
    OpenAIService: ("https://api.openai.com/v1", 5.0, 600.0, 180.0, 600.0, 2, 5.0),
    OpenRouterService: ("https://openrouter.ai/api/v1", 10.0, 2400.0, 120.0, 600.0, 2, 2.0),
    StabilityAIService: ("https://api.stability.ai", 5.0, 600.0, 90.0, 600.0, 2, 2.0),
    RunwayService: ("https://api.dev.runwayml.com/v1", 5.0, 2400.0, 60.0, 600.0, 2, 2.0),
}


@pytest.mark.parametrize("cls", list(_PROVIDER_DEFAULTS), ids=lambda c: c.__name__)
def test_each_provider_keeps_its_own_defaults(cls: type[ApiService]) -> None:
    svc = cls(api_key="k")
    got = (svc.base_url, svc.poll_interval, svc.job_timeout, svc.request_timeout, svc.download_timeout,
           svc.max_retries, svc.retry_backoff)
    assert got == _PROVIDER_DEFAULTS[cls]
    assert svc.max_download_bytes == 512 * 1024 * 1024 and svc.max_poll_errors == 5


def test_explicit_tunables_win_and_are_checked() -> None:
    svc = RunwayService(api_key="k", base_url="http://x/v1/", job_timeout=7, max_retries=0, retry_backoff=0)
    assert (svc.base_url, svc.job_timeout, svc.max_retries, svc.retry_backoff) == ("http://x/v1", 7.0, 0, 0.0)
    with pytest.raises(ValueError, match="job_timeout must be positive"):
        OpenRouterService(api_key="k", job_timeout=0)
    with pytest.raises(ValueError, match="max_retries"):
        StabilityAIService(api_key="k", max_retries=-1)
    with pytest.raises(TypeError):
        OpenAIService(api_key="k", no_such_tunable=1)


@pytest.mark.parametrize("bad_id", [None, 42, "", "../../etc/passwd", "x" * 201])
def test_create_job_refuses_an_unusable_id(bad_id: object) -> None:
    with FakeRunway() as fake:
        fake.inject("POST", r"^/v1/text_to_video$", json_reply({"id": bad_id}))
        svc = make_service(RunwayService, fake)
        with pytest.raises(GenerationFailed, match="Runway task creation returned no usable id"):
            run(generate(svc, GenerationRequest("j1", "video", "a prompt")))
        assert fake.requests_to("GET", "^/v1/tasks/") == []  # nothing polled for it


def test_a_new_job_that_vanishes_is_not_replaced() -> None:
    # Only a resumed (checkpointed) job may be replaced after a 404; a job this call paid for may not.
    with FakeOpenRouter() as fake:
        gone = json_reply({"error": {"message": "gone"}}, 404)
        fake.inject("GET", r"^/api/v1/videos/[^/]+$", gone, times=5)
        with pytest.raises(JobNotFound):
            run(generate(make_service(OpenRouterService, fake), GenerationRequest("j2", "video", "a prompt")))
        assert len(fake.requests_to("POST", "^/api/v1/videos$")) == 1
