"""RunwayService against a local fake of Runway's REST API (text_to_video + tasks + signed CDN links)."""

from __future__ import annotations

from typing import Any

import pytest
from fake_providers import (
    TEST_KEY,
    CheckpointRecorder,
    FakeRunway,
    Reply,
    SimulatedCrash,
    fake_settings,
    generate,
    make_service,
    mp4_bytes,
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
from gas.generation.services.runway_service import RunwayService, fit_prompt

PROMPT = "Aerial tracking shot over a winding mountain road in autumn, a vintage car driving through fog"

fake = serving(FakeRunway)


def make(fake: FakeRunway, **kw: Any) -> RunwayService:
    return make_service(RunwayService, fake, **kw)


def test_text_to_video_happy_path(fake: FakeRunway) -> None:
    svc = make(fake)
    assert isinstance(svc, GenerationService)
    cp = CheckpointRecorder(fake)
    res = run(generate(svc, GenerationRequest("r1", "video", PROMPT), cp))
    assert res.data == mp4_bytes() and res.mime == "video/mp4"
    create = fake.requests[0]
    assert create.method == "POST" and create.path == "/v1/text_to_video"
    assert create.headers["authorization"] == f"Bearer {TEST_KEY}"
    assert create.headers["x-runway-version"] == "2024-11-06"
    assert create.json() == {"model": "veo3.1", "promptText": PROMPT, "ratio": "1280:720", "duration": 4}
    job_id = res.metadata["job_id"]
    assert cp.calls == [{"kind": "runway", "job_id": job_id, "model": "veo3.1", "ratio": "1280:720", "duration": 4}]
    assert cp.requests_seen == [1]
    polls = fake.requests_to("GET", f"^/v1/tasks/{job_id}$")
    assert len(polls) == 2 and all(p.headers["x-runway-version"] == "2024-11-06" for p in polls)
    (download,) = fake.requests_to("GET", "^/cdn/")
    assert "authorization" not in download.headers and download.query == {"sig": "s1gned"}
    assert res.metadata["provider"] == "runway" and res.metadata["model"] == "veo3.1"
    assert "prompt_truncated" not in res.metadata


def test_resolution_and_orientation_pick_the_ratio(fake: FakeRunway) -> None:
    params = {"resolution": "1080p", "aspect_ratio": "9:16", "duration": 7, "audio": True, "seed": 5}
    run(generate(make(fake), GenerationRequest("r2", "video", PROMPT, params)))
    body = fake.requests[0].json()
    assert body["ratio"] == "1080:1920" and body["duration"] == 8 and body["audio"] is True
    assert "seed" not in body  # veo3.1 takes no seed


def test_gen45_takes_a_seed_and_explicit_ratio(fake: FakeRunway) -> None:
    params = {"model": "gen4.5", "ratio": "720:1280", "seed": 99, "duration": 10, "audio": True}
    run(generate(make(fake), GenerationRequest("r3", "video", PROMPT, params)))
    body = fake.requests[0].json()
    assert body == {"model": "gen4.5", "promptText": PROMPT, "ratio": "720:1280", "duration": 10, "seed": 99}


def test_bad_parameters(fake: FakeRunway) -> None:
    with pytest.raises(InvalidParameters, match="Runway model must be one of"):
        run(generate(make(fake), GenerationRequest("r4", "video", PROMPT, {"model": "gen2"})))
    params = {"model": "gen4.5", "ratio": "1920:1080"}
    with pytest.raises(InvalidParameters, match="offers ratios"):
        run(generate(make(fake), GenerationRequest("r4", "video", PROMPT, params)))
    with pytest.raises(InvalidParameters, match="does not generate image"):
        run(generate(make(fake), GenerationRequest("r4", "image", PROMPT)))
    assert fake.requests == []


def test_long_prompt_is_shortened_to_the_model_limit(fake: FakeRunway) -> None:
    long_prompt = " ".join(["a cinematic sweeping shot of glowing jellyfish drifting"] * 40)  # ~2200 chars
    res = run(generate(make(fake), GenerationRequest("r5", "video", long_prompt)))
    sent = fake.requests[0].json()["promptText"]
    assert len(sent) <= 1000 and long_prompt.startswith(sent) and not sent.endswith(" ")
    assert res.metadata["prompt_truncated"] is True
    short, cut = fit_prompt("ünïcödé " * 10, 1000)
    assert not cut and short == "ünïcödé " * 10


def test_failed_task_reports_failure_and_code(fake: FakeRunway) -> None:
    fake.plan_jobs([("SAFETY.INPUT.TEXT", "Your prompt did not pass our content moderation.")])
    with pytest.raises(GenerationFailed) as ei:
        run(generate(make(fake), GenerationRequest("r6", "video", PROMPT)))
    assert "failed (SAFETY.INPUT.TEXT)" in str(ei.value) and "content moderation" in str(ei.value)
    assert fake.requests_to("GET", "^/cdn/") == []


def test_create_validation_error_is_passed_on(fake: FakeRunway) -> None:
    fake.inject("POST", "text_to_video", FakeRunway.error(400, "Validation of body failed", [{"path": ["ratio"]}]))
    with pytest.raises(GenerationFailed, match="HTTP 400.*Validation of body failed"):
        run(generate(make(fake), GenerationRequest("r7", "video", PROMPT)))


def test_download_is_retried_on_a_transient_cdn_error(fake: FakeRunway) -> None:
    fake.inject("GET", "^/cdn/", Reply(503, b"slow down", {"Content-Type": "text/plain"}))
    res = run(generate(make(fake), GenerationRequest("r8", "video", PROMPT)))
    assert res.data == mp4_bytes()
    assert len(fake.requests_to("GET", "^/cdn/")) == 2


def test_download_size_is_bounded(fake: FakeRunway) -> None:
    with pytest.raises(GenerationFailed, match="download limit|bytes, aborted"):
        run(generate(make(fake, max_download_bytes=1000), GenerationRequest("r9", "video", PROMPT)))


def test_resume_after_restart(fake: FakeRunway) -> None:
    crash = CheckpointRecorder(fake, crash=True)
    with pytest.raises(SimulatedCrash):
        run(generate(make(fake), GenerationRequest("r10", "video", PROMPT), crash))
    checkpoint = crash.last
    res = run(generate(make(fake), GenerationRequest("r10", "video", PROMPT, checkpoint=checkpoint)))
    assert res.data == mp4_bytes() and res.metadata["job_id"] == checkpoint["job_id"]
    assert len(fake.requests_to("POST", "text_to_video")) == 1


def test_resume_from_a_reference_miner_checkpoint(fake: FakeRunway) -> None:
    crash = CheckpointRecorder(fake, crash=True)
    with pytest.raises(SimulatedCrash):
        run(generate(make(fake), GenerationRequest("r11", "video", PROMPT), crash))
    legacy = {"runway_task_id": crash.last["job_id"]}  # what the reference miner stored
    res = run(generate(make(fake), GenerationRequest("r11", "video", PROMPT, checkpoint=legacy)))
    assert res.data == mp4_bytes()
    assert len(fake.requests_to("POST", "text_to_video")) == 1


def test_missing_and_invalid_key(fake: FakeRunway, monkeypatch) -> None:
    svc = RunwayService(api_key=None, base_url=fake.base_url)
    assert "RUNWAYML_API_SECRET" in svc.unavailable_reason()
    with pytest.raises(ServiceUnavailable):
        run(generate(svc, GenerationRequest("r12", "video", PROMPT)))
    bad = RunwayService(api_key="key_bad", base_url=fake.base_url)
    with pytest.raises(GenerationFailed, match="rejected the API key .*RUNWAYML_API_SECRET"):
        run(generate(bad, GenerationRequest("r12", "video", PROMPT)))
    monkeypatch.setenv("RUNWAYML_API_SECRET", TEST_KEY)
    ok = RunwayService.from_settings(fake_settings(runway_base_url=fake.base_url))
    info = ok.info()
    assert info["available"] is True and info["supported_tasks"] == ["text_to_video"]
    assert "veo3.1" in info["text_to_video_models"] and info["default_models"] == {"video": "veo3.1"}


def test_resume_of_a_vanished_task_starts_a_new_one(fake: FakeRunway) -> None:
    cp = CheckpointRecorder(fake)
    stale = {"kind": "runway", "job_id": "0b8c1e6e-gone", "model": "veo3.1", "ratio": "1280:720",
             "duration": 4}
    res = run(generate(make(fake), GenerationRequest("r9", "video", PROMPT, checkpoint=stale), cp))
    assert res.data == mp4_bytes()
    assert len(fake.requests_to("POST", "^/v1/text_to_video$")) == 1
    assert cp.last["job_id"] == res.metadata["job_id"] != "0b8c1e6e-gone"
    assert cp.last["model"] == "veo3.1" and res.metadata["ratio"] == "1280:720"
