"""OpenRouterService against a local fake of OpenRouter's chat-completions and Videos HTTP APIs."""

from __future__ import annotations

from typing import Any

import pytest
from fake_providers import (
    FAST,
    TEST_KEY,
    CheckpointRecorder,
    FakeOpenRouter,
    SimulatedCrash,
    fake_settings,
    generate,
    json_reply,
    make_service,
    mp4_bytes,
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
from gas.generation.services.openrouter_service import VIDEO_MODELS, OpenRouterService

PROMPT = "Slow dolly shot of a lighthouse on a cliff during a thunderstorm, waves crashing below"

fake = serving(FakeOpenRouter)


def make(fake: FakeOpenRouter, **kw: Any) -> OpenRouterService:
    return make_service(OpenRouterService, fake, **kw)


def test_image_data_url_decoded_byte_for_byte(fake: FakeOpenRouter) -> None:
    svc = make(fake)
    assert isinstance(svc, GenerationService)
    res = run(generate(svc, GenerationRequest("i1", "image", PROMPT, {"resolution": "2K"})))
    assert res.data == png_bytes() and res.mime == "image/png"
    (req,) = fake.requests
    assert req.path == "/api/v1/chat/completions"
    assert req.headers["authorization"] == f"Bearer {TEST_KEY}"
    body = req.json()
    assert body["model"] == "google/gemini-3-pro-image-preview"
    assert body["modalities"] == ["image", "text"]
    assert body["messages"] == [{"role": "user", "content": PROMPT}]
    assert body["image_config"] == {"image_size": "2K"}  # the requested tier is passed on
    assert res.metadata["provider"] == "openrouter" and res.metadata["job_id"] == "gen-1"


def test_image_without_resolution_sends_no_image_config(fake: FakeOpenRouter) -> None:
    run(generate(make(fake), GenerationRequest("i2", "image", PROMPT, {"model": "openai/gpt-5-image"})))
    body = fake.requests[0].json()
    assert body["model"] == "openai/gpt-5-image" and "image_config" not in body


def test_image_refusal_is_a_failure_with_the_model_text(fake: FakeOpenRouter) -> None:
    fake.refuse_images = True
    with pytest.raises(GenerationFailed, match="returned no image.*can't create"):
        run(generate(make(fake), GenerationRequest("i3", "image", PROMPT)))


def test_image_bad_parameters(fake: FakeOpenRouter) -> None:
    with pytest.raises(InvalidParameters, match="resolution"):
        run(generate(make(fake), GenerationRequest("i4", "image", PROMPT, {"resolution": "8K"})))
    with pytest.raises(InvalidParameters, match="aspect_ratio"):
        run(generate(make(fake), GenerationRequest("i4", "image", PROMPT, {"aspect_ratio": "7:3"})))
    assert fake.requests == []


def test_video_is_reachable_and_snapped_to_the_model(fake: FakeOpenRouter) -> None:
    cp = CheckpointRecorder(fake)
    params = {"resolution": "480p", "duration": 5}  # veo-3.1-lite: no 480p -> 720p; 5 s -> 6 s
    res = run(generate(make(fake), GenerationRequest("v1", "video", PROMPT, params), cp))
    assert res.data == mp4_bytes() and res.mime == "video/mp4"
    create = fake.requests[0]
    assert create.path == "/api/v1/videos" and create.headers["authorization"] == f"Bearer {TEST_KEY}"
    assert create.json() == {"model": "google/veo-3.1-lite", "prompt": PROMPT, "duration": 6,
                             "aspect_ratio": "16:9", "resolution": "720p"}
    job_id = res.metadata["job_id"]
    assert cp.calls == [{"kind": "openrouter_video", "job_id": job_id, "model": "google/veo-3.1-lite",
                         "create_kwargs": {"model": "google/veo-3.1-lite", "duration": 6,
                                           "aspect_ratio": "16:9", "resolution": "720p"}}]
    assert cp.requests_seen == [1]
    assert len(fake.requests_to("GET", rf"^/api/v1/videos/{job_id}$")) == 2
    (content,) = fake.requests_to("GET", "/content$")
    assert content.headers["authorization"] == f"Bearer {TEST_KEY}"
    assert res.metadata["resolution"] == "720p" and res.metadata["generation_id"] == f"gen-{job_id}"


def test_video_seedance_snapping_and_options(fake: FakeOpenRouter) -> None:
    params = {"model": "bytedance/seedance-2.0-fast", "resolution": "1080p", "duration": 30,
              "aspect_ratio": "1:1", "generate_audio": "false", "seed": 7}
    run(generate(make(fake), GenerationRequest("v2", "video", PROMPT, params)))
    body = fake.requests[0].json()
    assert body["resolution"] == "720p" and body["duration"] == 15 and body["aspect_ratio"] == "1:1"
    assert body["generate_audio"] is False and body["seed"] == 7


def test_video_whitelist_and_ratio_validation(fake: FakeOpenRouter) -> None:
    with pytest.raises(InvalidParameters, match="video model must be one of"):
        run(generate(make(fake), GenerationRequest("v3", "video", PROMPT, {"model": "acme/video-1"})))
    with pytest.raises(InvalidParameters, match="aspect ratios 16:9, 9:16"):
        run(generate(make(fake), GenerationRequest("v3", "video", PROMPT, {"aspect_ratio": "1:1"})))
    with pytest.raises(InvalidParameters, match="seed"):
        run(generate(make(fake), GenerationRequest("v3", "video", PROMPT, {"seed": "lucky"})))
    assert fake.requests == []
    assert set(VIDEO_MODELS) == {"google/veo-3.1", "google/veo-3.1-fast", "google/veo-3.1-lite",
                                 "bytedance/seedance-2.0", "bytedance/seedance-2.0-fast"}


def test_video_job_failure_carries_the_provider_error(fake: FakeOpenRouter) -> None:
    fake.plan_jobs([("failed", "Content policy violation: the prompt was flagged")])
    with pytest.raises(GenerationFailed, match="ended failed: Content policy violation"):
        run(generate(make(fake), GenerationRequest("v4", "video", PROMPT)))
    assert fake.requests_to("GET", "/content$") == []


def test_video_create_error_is_passed_on(fake: FakeOpenRouter) -> None:
    fake.inject("POST", "^/api/v1/videos$", json_reply({"error": {"code": 402, "message": "Insufficient credits"}}, 402))
    with pytest.raises(GenerationFailed, match=r"HTTP 402, 402\): Insufficient credits"):
        run(generate(make(fake), GenerationRequest("v5", "video", PROMPT)))


def test_resume_after_restart_reuses_the_job(fake: FakeOpenRouter) -> None:
    crash = CheckpointRecorder(fake, crash=True)
    with pytest.raises(SimulatedCrash):
        run(generate(make(fake), GenerationRequest("v6", "video", PROMPT, {"duration": 8}), crash))
    checkpoint = crash.last
    assert len(fake.requests) == 1  # only the create: the crash came right after the checkpoint

    res = run(generate(make(fake), GenerationRequest("v6", "video", PROMPT, checkpoint=checkpoint)))
    assert res.data == mp4_bytes() and res.metadata["job_id"] == checkpoint["job_id"]
    assert res.metadata["duration"] == 8  # from the checkpoint, not re-derived
    assert len(fake.requests_to("POST", "^/api/v1/videos$")) == 1


def test_resume_of_an_expired_job_starts_a_new_one(fake: FakeOpenRouter) -> None:
    stale = {"kind": "openrouter_video", "job_id": "vgen_expired", "model": "google/veo-3.1-lite",
             "create_kwargs": {"model": "google/veo-3.1-lite", "duration": 4, "aspect_ratio": "16:9",
                               "resolution": "720p"}}
    cp = CheckpointRecorder(fake)
    res = run(generate(make(fake), GenerationRequest("v7", "video", PROMPT, checkpoint=stale), cp))
    assert res.data == mp4_bytes()
    assert fake.requests_to("POST", "^/api/v1/videos$")[0].json()["prompt"] == PROMPT
    assert cp.last["job_id"] == res.metadata["job_id"] != "vgen_expired"


def test_foreign_checkpoint_is_ignored(fake: FakeOpenRouter) -> None:
    req = GenerationRequest("v8", "video", PROMPT, checkpoint={"kind": "runway", "job_id": "x"})
    res = run(generate(make(fake), req))
    assert res.data == mp4_bytes()
    assert len(fake.requests_to("POST", "^/api/v1/videos$")) == 1


def test_missing_and_invalid_key(fake: FakeOpenRouter, monkeypatch) -> None:
    svc = OpenRouterService(api_key=None, base_url=fake.base_url)
    assert "OPEN_ROUTER_API_KEY" in svc.unavailable_reason()
    assert svc.info()["available"] is False
    with pytest.raises(ServiceUnavailable):
        run(generate(svc, GenerationRequest("k1", "video", PROMPT)))
    bad = OpenRouterService(api_key="sk-or-bad-123456", base_url=fake.base_url, **FAST)
    with pytest.raises(GenerationFailed, match="rejected the API key .*OPEN_ROUTER_API_KEY"):
        run(generate(bad, GenerationRequest("k2", "image", PROMPT)))
    monkeypatch.setenv("OPEN_ROUTER_API_KEY", TEST_KEY)
    ok = OpenRouterService.from_settings(fake_settings(openrouter_base_url=fake.base_url))
    assert ok.unavailable_reason() is None
    info = ok.info()
    assert info["supported_tasks"] == ["text_to_image", "text_to_video"]
    assert info["default_models"] == {"image": "google/gemini-3-pro-image-preview", "video": "google/veo-3.1-lite"}
