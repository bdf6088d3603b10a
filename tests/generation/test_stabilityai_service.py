"""StabilityAIService against a local fake of Stability's Stable Image v2beta HTTP API."""

from __future__ import annotations

from typing import Any

import pytest
from fake_providers import (
    TEST_KEY,
    FakeStability,
    Reply,
    fake_settings,
    generate,
    json_reply,
    make_service,
    png_bytes,
    run,
    serving,
)

from gas.generation.services.base import (
    GenerationFailed,
    GenerationRequest,
    GenerationService,
    InvalidParameters,
    ServiceUnavailable,
)
from gas.generation.services.stabilityai_service import StabilityAIService

PROMPT = "Macro photograph of dew drops on a spider web, morning backlight, shallow depth of field"

fake = serving(FakeStability)


def make(fake: FakeStability, **kw: Any) -> StabilityAIService:
    return make_service(StabilityAIService, fake, **kw)


def test_sd3_multipart_request_and_bytes_identical(fake: FakeStability) -> None:
    svc = make(fake)
    assert isinstance(svc, GenerationService)
    res = run(generate(svc, GenerationRequest("s1", "image", PROMPT)))
    assert res.data == png_bytes() and res.mime == "image/png"
    (req,) = fake.requests
    assert req.method == "POST" and req.path == "/v2beta/stable-image/generate/sd3"
    assert req.headers["authorization"] == f"Bearer {TEST_KEY}"
    assert req.headers["accept"] == "image/*"
    assert req.form() == {"prompt": PROMPT, "output_format": "png", "model": "sd3.5-medium"}
    assert res.metadata["provider"] == "stabilityai" and res.metadata["model"] == "sd3.5-medium"
    assert res.metadata["job_id"] == "req-1" and res.metadata["seed"] == 1234567


def test_ultra_endpoint_with_optional_fields(fake: FakeStability) -> None:
    params = {"model": "ultra", "width": 1920, "height": 1080, "negative_prompt": "blurry, text", "seed": 42,
              "format": "webp"}
    res = run(generate(make(fake), GenerationRequest("s2", "image", PROMPT, params)))
    (req,) = fake.requests
    assert req.path == "/v2beta/stable-image/generate/ultra"
    assert req.form() == {"prompt": PROMPT, "output_format": "webp", "aspect_ratio": "16:9",
                          "negative_prompt": "blurry, text", "seed": "42"}  # no model field for ultra
    assert res.metadata["seed"] == 42 and res.metadata["model"] == "ultra"


def test_core_and_explicit_aspect_ratio(fake: FakeStability) -> None:
    params = {"model": "core", "aspect_ratio": "9:21"}
    run(generate(make(fake), GenerationRequest("s3", "image", PROMPT, params)))
    assert fake.requests[0].path.endswith("/core") and fake.requests[0].form()["aspect_ratio"] == "9:21"


def test_invalid_parameters_send_nothing(fake: FakeStability) -> None:
    for params, match in (
        ({"model": "sdxl-1.0"}, "Stability model must be one of"),
        ({"aspect_ratio": "4:3"}, "aspect_ratio must be one of"),
        ({"format": "webp"}, "format must be one of png, jpeg"),  # sd3 has no webp
        ({"seed": -1}, "seed must be between"),
    ):
        with pytest.raises(InvalidParameters, match=match):
            run(generate(make(fake), GenerationRequest("s4", "image", PROMPT, params)))
    with pytest.raises(InvalidParameters, match="does not generate video"):
        run(generate(make(fake), GenerationRequest("s4", "video", PROMPT)))
    assert fake.requests == []


def test_provider_error_message_is_passed_on(fake: FakeStability) -> None:
    fake.inject("POST", "/generate/", FakeStability.error(
        400, "bad_request", "Your request was flagged by our content moderation system."))
    with pytest.raises(GenerationFailed) as ei:
        run(generate(make(fake), GenerationRequest("s5", "image", PROMPT)))
    assert "HTTP 400, bad_request" in str(ei.value) and "content moderation" in str(ei.value)
    assert len(fake.requests) == 1


def test_content_filtered_is_a_failure(fake: FakeStability) -> None:
    fake.content_filtered = True
    with pytest.raises(GenerationFailed, match="CONTENT_FILTERED"):
        run(generate(make(fake), GenerationRequest("s6", "image", PROMPT)))


def test_rate_limit_is_retried(fake: FakeStability) -> None:
    fake.inject("POST", "/generate/", json_reply({"name": "rate_limit_exceeded", "errors": ["slow down"]}, 429,
                                                 headers={"Retry-After": "0"}), times=2)
    res = run(generate(make(fake, max_retries=2), GenerationRequest("s7", "image", PROMPT)))
    assert res.data == png_bytes() and len(fake.requests) == 3


def test_retries_are_bounded(fake: FakeStability) -> None:
    fake.inject("POST", "/generate/", json_reply({"name": "server_error", "errors": ["oops"]}, 500), times=10)
    with pytest.raises(GenerationFailed, match="HTTP 500"):
        run(generate(make(fake, max_retries=1), GenerationRequest("s8", "image", PROMPT)))
    assert len(fake.requests) == 2


def test_non_image_answer_is_rejected(fake: FakeStability) -> None:
    fake.inject("POST", "/generate/", Reply(200, b"<html>maintenance</html>", {"Content-Type": "text/html"}))
    with pytest.raises(GenerationFailed, match="not image media"):
        run(generate(make(fake), GenerationRequest("s9", "image", PROMPT)))


def test_missing_and_invalid_key(fake: FakeStability, monkeypatch) -> None:
    svc = StabilityAIService(api_key=None, base_url=fake.base_url)
    assert svc.unavailable_reason() == "STABILITY_API_KEY is not set"
    with pytest.raises(ServiceUnavailable):
        run(generate(svc, GenerationRequest("s10", "image", PROMPT)))
    bad = StabilityAIService(api_key="sk-bad", base_url=fake.base_url)
    with pytest.raises(GenerationFailed, match="rejected the API key .*STABILITY_API_KEY"):
        run(generate(bad, GenerationRequest("s10", "image", PROMPT)))
    monkeypatch.setenv("STABILITY_API_KEY", TEST_KEY)
    ok = StabilityAIService.from_settings(fake_settings(stability_base_url=fake.base_url))
    assert ok.info() == {"name": "stabilityai", "available": True, "reason": None, "supported_tasks": ["text_to_image"],
                         "modalities": ["image"], "models": {"image": ["sd3.5-large", "sd3.5-large-turbo",
                                                                        "sd3.5-medium", "sd3.5-flash", "ultra",
                                                                        "core"]},
                         "default_models": {"image": "sd3.5-medium"}}
    assert run(generate(ok, GenerationRequest("s11", "image", PROMPT))).data == png_bytes()
