"""OpenAIService against a local fake of the OpenAI Images and Videos (Sora) HTTP APIs."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest
from fake_providers import (
    FAST,
    TEST_KEY,
    CheckpointRecorder,
    FakeOpenAI,
    Reply,
    fake_settings,
    generate,
    jpeg_bytes,
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
from gas.generation.services.openai_service import OpenAIService

PROMPT = "A red fox crossing a snowy birch forest at dawn, soft light, 35mm photo"

fake = serving(FakeOpenAI)


def make(fake: FakeOpenAI, **kw: Any) -> OpenAIService:
    return make_service(OpenAIService, fake, **kw)


def test_image_gpt_image_b64_bytes_identical_and_request_shape(fake: FakeOpenAI) -> None:
    svc = make(fake)
    assert isinstance(svc, GenerationService)
    res = run(generate(svc, GenerationRequest("t1", "image", PROMPT, {"aspect_ratio": "3:2"})))
    assert res.data == png_bytes()  # b64 decode only: byte for byte what the provider served
    assert res.mime == "image/png"
    assert res.metadata["provider"] == "openai" and res.metadata["model"] == "gpt-image-1"
    assert res.metadata["job_id"] == "req_1"
    (req,) = fake.requests
    assert req.path == "/v1/images/generations"
    assert req.headers["authorization"] == f"Bearer {TEST_KEY}"
    body = req.json()
    assert body == {"model": "gpt-image-1", "prompt": PROMPT, "n": 1, "size": "1536x1024"}


def test_image_dalle3_url_downloaded_without_the_key(fake: FakeOpenAI) -> None:
    params = {"model": "dall-e-3", "width": 1920, "height": 1080}
    res = run(generate(make(fake), GenerationRequest("t2", "image", PROMPT, params)))
    assert res.data == jpeg_bytes() and res.mime == "image/jpeg"
    post, download = fake.requests
    assert post.json()["size"] == "1792x1024" and post.json()["quality"] == "standard"
    assert download.path.startswith("/cdn/")
    assert "authorization" not in download.headers  # the key never goes to a CDN link


def test_image_bad_size_is_invalid_before_any_request(fake: FakeOpenAI) -> None:
    with pytest.raises(InvalidParameters, match="1536x1024"):
        run(generate(make(fake), GenerationRequest("t3", "image", PROMPT, {"size": "1792x1024"})))
    with pytest.raises(InvalidParameters, match="unknown OpenAI image model"):
        run(generate(make(fake), GenerationRequest("t3", "image", PROMPT, {"model": "midjourney"})))
    with pytest.raises(InvalidParameters, match="prompt is empty"):
        run(generate(make(fake), GenerationRequest("t3", "image", "  ")))
    assert fake.requests == []


def test_image_retries_on_503_then_succeeds(fake: FakeOpenAI) -> None:
    fake.inject("POST", "/images/generations", FakeOpenAI.error(503, "The engine is overloaded", etype="server_error"))
    res = run(generate(make(fake), GenerationRequest("t4", "image", PROMPT)))
    assert res.data == png_bytes()
    assert len(fake.requests_to("POST", "/images/generations")) == 2


def test_image_provider_error_message_is_passed_on_and_not_retried(fake: FakeOpenAI) -> None:
    fake.inject("POST", "/images/generations", FakeOpenAI.error(
        400, "Your request was rejected as a result of our safety system.", "moderation_blocked"))
    with pytest.raises(GenerationFailed) as ei:
        run(generate(make(fake), GenerationRequest("t5", "image", PROMPT)))
    assert "safety system" in str(ei.value) and "moderation_blocked" in str(ei.value)
    assert len(fake.requests) == 1


def test_invalid_key_names_the_variable_and_never_leaks_the_key(fake: FakeOpenAI, caplog) -> None:
    wrong = "sk-wrong-8c1d0e5f3a9b"
    svc = OpenAIService(api_key=wrong, base_url=fake.base_url, **FAST)
    with pytest.raises(GenerationFailed) as ei:
        run(generate(svc, GenerationRequest("t6", "video", PROMPT)))
    msg = str(ei.value)
    assert "rejected the API key" in msg and "OPENAI_API_KEY" in msg and "401" in msg
    assert wrong not in msg and wrong not in caplog.text and wrong not in repr(svc)
    assert len(fake.requests) == 1  # a 401 is not retried


def test_missing_key_is_unavailable(fake: FakeOpenAI) -> None:
    svc = OpenAIService(api_key=None, base_url=fake.base_url)
    assert svc.unavailable_reason() == "OPENAI_API_KEY is not set"
    info = svc.info()
    assert info["available"] is False and info["reason"] == "OPENAI_API_KEY is not set"
    assert info["supported_tasks"] == ["text_to_image", "text_to_video"]
    assert "sora-2" in info["models"]["video"] and "gpt-image-1" in info["models"]["image"]
    with pytest.raises(ServiceUnavailable, match="OPENAI_API_KEY"):
        run(generate(svc, GenerationRequest("t7", "image", PROMPT)))
    assert OpenAIService(api_key="  ", base_url=fake.base_url).unavailable_reason() is not None
    assert fake.requests == []


def test_from_settings_reads_the_reference_env_name(fake: FakeOpenAI, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY)
    svc = OpenAIService.from_settings(fake_settings(openai_base_url=fake.base_url))
    assert svc.unavailable_reason() is None and svc.base_url == fake.base_url
    assert run(generate(svc, GenerationRequest("t8", "image", PROMPT))).data == png_bytes()


def test_video_creates_polls_downloads_with_checkpoint_first(fake: FakeOpenAI) -> None:
    cp = CheckpointRecorder(fake)
    params = {"resolution": "1080p", "duration": 7}  # sora-2 has no 1080p: snapped to 720p; 7 s -> 8 s
    res = run(generate(make(fake), GenerationRequest("v1", "video", PROMPT, params), cp))
    assert res.data == mp4_bytes() and res.mime == "video/mp4"
    create = fake.requests[0]
    assert create.method == "POST" and create.path == "/v1/videos"
    assert create.headers["authorization"] == f"Bearer {TEST_KEY}"
    assert create.form() == {"model": "sora-2", "prompt": PROMPT, "size": "1280x720", "seconds": "8"}
    job_id = res.metadata["job_id"]
    assert cp.calls == [{"kind": "openai_sora", "job_id": job_id, "model": "sora-2", "size": "1280x720",
                         "seconds": "8", "attempt": 0}]
    assert cp.requests_seen == [1]  # stored before the first poll
    polls = fake.requests_to("GET", rf"^/v1/videos/{job_id}$")
    assert len(polls) == 2  # queued (on create) -> in_progress -> completed
    content = fake.requests_to("GET", "/content$")
    assert len(content) == 1 and content[0].headers["authorization"] == f"Bearer {TEST_KEY}"
    assert res.metadata["provider"] == "openai" and res.metadata["model"] == "sora-2"
    assert res.metadata["seconds"] == 8 and res.metadata["attempts"] == 1


def test_video_pro_portrait_1080p(fake: FakeOpenAI) -> None:
    params = {"model": "sora-2-pro", "resolution": "1080p", "aspect_ratio": "9:16"}
    run(generate(make(fake), GenerationRequest("v2", "video", PROMPT, params)))
    assert fake.requests[0].form()["size"] == "1080x1920"


def test_video_failed_with_retryable_code_starts_a_fresh_job(fake: FakeOpenAI) -> None:
    fake.plan_jobs([("server_error", "The server had an error while processing your request.")])
    cp = CheckpointRecorder(fake)
    res = run(generate(make(fake), GenerationRequest("v3", "video", PROMPT), cp))
    assert res.data == mp4_bytes()
    creates = fake.requests_to("POST", "^/v1/videos$")
    assert len(creates) == 2
    assert [c["attempt"] for c in cp.calls] == [0, 1]
    assert cp.calls[0]["job_id"] != cp.calls[1]["job_id"] == res.metadata["job_id"]
    assert res.metadata["attempts"] == 2


def test_video_failed_with_permanent_code_fails_with_the_provider_message(fake: FakeOpenAI) -> None:
    fake.plan_jobs([("moderation_blocked", "Your prompt was blocked by our moderation system.")])
    with pytest.raises(GenerationFailed) as ei:
        run(generate(make(fake), GenerationRequest("v4", "video", PROMPT)))
    assert "moderation_blocked" in str(ei.value) and "blocked by our moderation" in str(ei.value)
    assert len(fake.requests_to("POST", "^/v1/videos$")) == 1


def test_video_retries_are_bounded(fake: FakeOpenAI) -> None:
    fake.plan_jobs([("overloaded", "busy")] * 5)
    with pytest.raises(GenerationFailed, match="overloaded"):
        run(generate(make(fake, max_retries=2), GenerationRequest("v5", "video", PROMPT)))
    assert len(fake.requests_to("POST", "^/v1/videos$")) == 3


def test_transient_poll_errors_are_tolerated(fake: FakeOpenAI) -> None:
    fake.inject("GET", r"^/v1/videos/[\w-]+$", json_reply({"error": {"message": "bad gateway"}}, 502), times=2)
    res = run(generate(make(fake), GenerationRequest("v6", "video", PROMPT)))
    assert res.data == mp4_bytes()


def test_job_timeout_is_bounded() -> None:
    with FakeOpenAI(polls_per_state=10_000) as fake:
        svc = make(fake, job_timeout=0.05, max_retries=0)
        with pytest.raises(GenerationFailed, match="did not finish within 0.05 s"):
            run(generate(svc, GenerationRequest("v7", "video", PROMPT)))


def test_request_timeout_is_bounded(fake: FakeOpenAI) -> None:
    fake.inject("POST", "/images/generations", Reply(200, b"{}", delay=1.0))
    svc = make(fake, request_timeout=0.1, max_retries=3)
    with pytest.raises(GenerationFailed, match="timed out after 0.1 s"):
        run(generate(svc, GenerationRequest("t9", "image", PROMPT)))
    # a job-creating POST that timed out after being sent is not repeated (it may have been billed)
    assert len(fake.requests_to("POST", "/images/generations")) == 1


def test_resume_after_restart_polls_the_same_job(fake: FakeOpenAI) -> None:
    """Kill the first service (cancel) after its checkpoint; a new instance resumes the job."""
    fake.polls_per_state = 3

    async def first_run() -> dict:
        cp = CheckpointRecorder(fake)
        stored = cp.arm()
        svc = make(fake)
        task = asyncio.create_task(svc.generate(GenerationRequest("v8", "video", PROMPT), cp))
        await asyncio.wait_for(stored.wait(), 5)
        task.cancel()  # the engine's timeout / a kill -9 as far as the service can tell
        with pytest.raises(asyncio.CancelledError):
            await task
        await svc.aclose()
        return cp.last

    checkpoint = run(first_run())
    job_id = checkpoint["job_id"]
    assert len(fake.requests_to("POST", "^/v1/videos$")) == 1
    assert not fake.jobs[job_id].terminal

    cp2 = CheckpointRecorder(fake)
    req = GenerationRequest("v8", "video", PROMPT, checkpoint=checkpoint)
    res = run(generate(make(fake), req, cp2))
    assert res.data == mp4_bytes() and res.metadata["job_id"] == job_id
    assert len(fake.requests_to("POST", "^/v1/videos$")) == 1  # no second (paid) job
    assert cp2.calls == []
    assert {r.path for r in fake.requests if r.method == "GET"} == {f"/v1/videos/{job_id}",
                                                                      f"/v1/videos/{job_id}/content"}


def test_resume_of_a_vanished_job_starts_a_new_one(fake: FakeOpenAI) -> None:
    cp = CheckpointRecorder(fake)
    stale = {"kind": "openai_sora", "job_id": "video_gone", "model": "sora-2", "size": "1280x720",
             "seconds": "4", "attempt": 0}
    res = run(generate(make(fake), GenerationRequest("v9", "video", PROMPT, checkpoint=stale), cp))
    assert res.data == mp4_bytes()
    assert len(fake.requests_to("POST", "^/v1/videos$")) == 1
    assert cp.last["job_id"] == res.metadata["job_id"] != "video_gone"


def test_b64_payload_is_not_reencoded_even_with_trailing_manifest_bytes() -> None:
    # A PNG followed by bytes a re-encoder would drop: the service must keep them all.
    data = png_bytes() + b"\x00\x00\x00\x10caBXjumbc2pa-fake-manifest"
    with FakeOpenAI(image=data) as fake:
        res = run(generate(make(fake), GenerationRequest("t10", "image", PROMPT)))
    assert res.data == data
    assert res.metadata["c2pa_marker"] is True
    assert base64.b64encode(res.data) == base64.b64encode(data)
