"""The local diffusers service with the builtin tiny pipelines on CPU: real PNG/MP4 bytes, determinism,
parameter validation, C2PA signing and availability, local-directory models, cancellation."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gas.generation.services.base import (
    GenerationFailed,
    GenerationRequest,
    GenerationResult,
    InvalidParameters,
    ServiceUnavailable,
)
from gas.generation.services.diffusers_local import (
    HUB_LIMITS,
    TINY_VIDEO_LIMITS,
    DiffusersService,
    ModelLimits,
    parse_parameters,
    parse_resolution,
    resolve_source,
    seed_for_task,
)

PROMPT = "a red fox in the snow"


class RecordingSigner:
    """Stands in for MediaSigner where the test is about generation, not C2PA: records each call."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[dict[str, Any]] = []
        self.fail = fail

    def sign(self, data: bytes, mime: str, *, claim_generator: str, model_name: str, prompt: str | None = None) -> bytes:
        if self.fail:
            raise RuntimeError("certificate revoked")
        self.calls.append(
            {"mime": mime, "claim_generator": claim_generator, "model_name": model_name, "prompt": prompt, "n": len(data)}
        )
        return data


async def _no_checkpoint(_state: dict[str, Any] | None) -> None:
    return None


def generate(svc: DiffusersService, modality: str, params: dict[str, Any], task_id: str = "task-1") -> GenerationResult:
    return asyncio.run(svc.generate(GenerationRequest(task_id, modality, PROMPT, params), _no_checkpoint))


async def poll_until(predicate: Callable[[], bool], timeout: float) -> None:
    """Wait for a condition set by a worker thread (a threading lock has no awaitable form)."""
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"condition not met within {timeout} s")


def decode_png(data: bytes) -> np.ndarray:
    from PIL import Image

    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "PNG"
        return np.asarray(im.convert("RGB"))


def decode_mp4(data: bytes) -> tuple[list[np.ndarray], Any, str]:
    import av

    with av.open(io.BytesIO(data)) as c:
        stream = c.streams.video[0]
        codec, rate = stream.codec_context.name, stream.average_rate
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    return frames, rate, codec


@pytest.fixture(scope="module")
def signer() -> RecordingSigner:
    return RecordingSigner()


@pytest.fixture(scope="module")
def svc(signer: RecordingSigner) -> DiffusersService:
    """One service for the module: the tiny pipelines load once (about 4 s, mostly importing diffusers)."""
    return DiffusersService(device="cpu", signer=signer)


# --------------------------------------------------------------------------------------------
# generation: real media, metadata, determinism
# --------------------------------------------------------------------------------------------
def test_image_is_a_real_png_with_metadata(svc: DiffusersService, signer: RecordingSigner) -> None:
    signer.calls.clear()
    res = generate(svc, "image", {"seed": 7, "steps": 2})
    rgb = decode_png(res.data)
    assert rgb.shape == (64, 64, 3)
    assert rgb.std() > 1.0  # random weights: noise, but not a flat image
    assert res.mime == "image/png"
    md = dict(res.metadata)
    assert md["model"] == "builtin:tiny-sd" and md["provider"] == "diffusers"
    assert (md["seed"], md["steps"], md["width"], md["height"]) == (7, 2, 64, 64)
    assert md["device"] == "cpu"
    assert [c["mime"] for c in signer.calls] == ["image/png"]
    assert signer.calls[0]["model_name"] == "builtin:tiny-sd"
    assert signer.calls[0]["prompt"] == PROMPT
    assert signer.calls[0]["claim_generator"].startswith("gas-node/")
    assert signer.calls[0]["n"] == len(res.data)


def test_video_is_a_real_h264_mp4_with_metadata(svc: DiffusersService, signer: RecordingSigner) -> None:
    signer.calls.clear()
    res = generate(svc, "video", {"seed": 7, "steps": 2, "num_frames": 4, "fps": 12})
    frames, rate, codec = decode_mp4(res.data)
    assert codec == "h264"
    assert len(frames) == 4 and frames[0].shape == (64, 64, 3)
    assert rate == 12
    assert res.mime == "video/mp4"
    md = dict(res.metadata)
    assert md["model"] == "builtin:tiny-animatediff"
    assert (md["frames"], md["fps"], md["width"], md["height"], md["steps"], md["seed"]) == (4, 12, 64, 64, 2, 7)
    assert signer.calls[-1]["mime"] == "video/mp4"


def test_same_seed_same_pixels_different_seed_different(svc: DiffusersService) -> None:
    a = decode_png(generate(svc, "image", {"seed": 11, "steps": 1}).data)
    b = decode_png(generate(svc, "image", {"seed": 11, "steps": 1}, task_id="another-task").data)
    c = decode_png(generate(svc, "image", {"seed": 12, "steps": 1}).data)
    assert np.array_equal(a, b)
    assert np.abs(a.astype(int) - c.astype(int)).mean() > 5


def test_video_same_seed_same_frames_different_seed_different(svc: DiffusersService) -> None:
    params = {"steps": 1, "num_frames": 4}
    a, _, _ = decode_mp4(generate(svc, "video", {**params, "seed": 3}).data)
    b, _, _ = decode_mp4(generate(svc, "video", {**params, "seed": 3}).data)
    c, _, _ = decode_mp4(generate(svc, "video", {**params, "seed": 4}).data)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert np.mean([np.abs(x.astype(int) - y.astype(int)).mean() for x, y in zip(a, c, strict=True)]) > 5


def test_default_seed_comes_from_the_task_id(svc: DiffusersService) -> None:
    r1 = generate(svc, "image", {"steps": 1}, task_id="abc")
    r2 = generate(svc, "image", {"steps": 1}, task_id="abc")
    r3 = generate(svc, "image", {"steps": 1}, task_id="abd")
    assert r1.metadata["seed"] == seed_for_task("abc") != r3.metadata["seed"]
    assert np.array_equal(decode_png(r1.data), decode_png(r2.data))


def test_sizes_from_width_height_and_resolution(svc: DiffusersService) -> None:
    r = generate(svc, "image", {"steps": 1, "width": 70, "height": 100})  # rounded to multiples of 8
    assert decode_png(r.data).shape == (104, 72, 3)
    assert (r.metadata["width"], r.metadata["height"]) == (72, 104)
    # a validator's "1K" tier is scaled to what the demo model allows (128 px) instead of failing
    r = generate(svc, "image", {"steps": 1, "resolution": "1K"})
    assert decode_png(r.data).shape == (128, 128, 3)
    r = generate(svc, "video", {"steps": 1, "num_frames": 2, "resolution": "720p"})
    frames, _, _ = decode_mp4(r.data)
    assert frames[0].shape == (72, 128, 3) and len(frames) == 2


def test_concurrent_requests_share_one_pipeline(svc: DiffusersService) -> None:
    async def both() -> list[GenerationResult]:
        reqs = [GenerationRequest(f"t{i}", "image", PROMPT, {"seed": i, "steps": 1}) for i in (1, 2)]
        return await asyncio.gather(*(svc.generate(r, _no_checkpoint) for r in reqs))

    r1, r2 = asyncio.run(both())
    alone = generate(svc, "image", {"seed": 1, "steps": 1})
    assert np.array_equal(decode_png(r1.data), decode_png(alone.data))
    assert not np.array_equal(decode_png(r1.data), decode_png(r2.data))


def test_info_reports_tasks_models_and_load_state(svc: DiffusersService) -> None:
    generate(svc, "image", {"steps": 1})
    info = svc.info()
    assert info["name"] == "diffusers" and info["available"] is True and info["reason"] is None
    assert info["supported_tasks"] == ["text_to_image", "text_to_video"]
    assert info["models"] == {"image": ["builtin:tiny-sd"], "video": ["builtin:tiny-animatediff"]}
    assert info["device"] == "cpu"
    assert info["pipelines"]["image"]["loaded"] is True
    assert info["pipelines"]["image"]["load_seconds"] > 0
    import json

    json.dumps(info)


# --------------------------------------------------------------------------------------------
# parameters
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("modality", "params", "needle"),
    [
        ("image", {"steps": 0}, "steps"),
        ("image", {"steps": 10_000}, "steps"),
        ("image", {"steps": "many"}, "steps"),
        ("image", {"seed": -1}, "seed"),
        ("image", {"seed": True}, "seed"),
        ("image", {"seed": 1.5}, "seed"),
        ("image", {"width": 10}, "width"),
        ("image", {"height": 5000}, "height"),
        ("image", {"resolution": "huge"}, "resolution"),
        ("image", {"resolution": "720p", "width": 64}, "either"),
        ("image", {"guidance": -1}, "guidance"),
        ("image", {"guidance": "strong"}, "guidance"),
        ("image", {"negative_prompt": 5}, "negative_prompt"),
        ("video", {"num_frames": 1000}, "num_frames"),
        ("video", {"num_frames": 0}, "num_frames"),
        ("video", {"fps": 0}, "fps"),
        ("video", {"duration": 60}, "duration"),
        ("video", {"resolution": "720p", "aspect_ratio": "wide"}, "aspect_ratio"),
    ],
)
def test_bad_parameters_are_rejected_with_the_key_named(
    svc: DiffusersService, modality: str, params: dict[str, Any], needle: str
) -> None:
    with pytest.raises(InvalidParameters, match=needle):
        generate(svc, modality, params)


def test_empty_prompt_is_rejected(svc: DiffusersService) -> None:
    with pytest.raises(InvalidParameters, match="prompt"):
        asyncio.run(svc.generate(GenerationRequest("t", "image", "   ", {}), _no_checkpoint))


def test_parse_parameters_defaults_and_aliases() -> None:
    job = parse_parameters(GenerationRequest("t9", "video", PROMPT, {}), TINY_VIDEO_LIMITS)
    assert (job.width, job.height, job.steps, job.num_frames, job.fps) == (64, 64, 2, 8, 8)
    assert job.seed == seed_for_task("t9") and job.guidance is None
    job = parse_parameters(
        GenerationRequest("t", "video", PROMPT, {"guidance_scale": "3.5", "frames": 5, "seed": "42"}),
        TINY_VIDEO_LIMITS,
    )
    assert (job.guidance, job.num_frames, job.seed) == (3.5, 5, 42)
    job = parse_parameters(GenerationRequest("t", "video", PROMPT, {"duration": 2, "fps": 12}), TINY_VIDEO_LIMITS)
    assert job.num_frames == 24
    # hub models: unset values are left to the pipeline's own defaults; unknown keys are ignored
    job = parse_parameters(GenerationRequest("t", "image", PROMPT, {"model": "x", "quality": "hd"}), HUB_LIMITS)
    assert (job.width, job.height, job.steps, job.num_frames) == (None, None, None, None)


@pytest.mark.parametrize(
    ("value", "modality", "aspect", "limits", "expected"),
    [
        ("1080p", "video", None, HUB_LIMITS, (1920, 1080)),
        ("720p", "video", None, HUB_LIMITS, (1280, 720)),
        ("480p", "video", None, HUB_LIMITS, (856, 480)),
        ("720p", "video", "9:16", HUB_LIMITS, (720, 1280)),
        ("1K", "image", None, HUB_LIMITS, (1024, 1024)),
        ("2k", "image", "16:9", ModelLimits(max_side=4096), (3640, 2048)),
        ("4K", "image", None, HUB_LIMITS, (2048, 2048)),  # scaled down to max_side
        ("512x768", "image", None, HUB_LIMITS, (512, 768)),
        ("1080p", "video", None, TINY_VIDEO_LIMITS, (128, 72)),
    ],
)
def test_resolution_tiers(value: str, modality: str, aspect: str | None, limits: ModelLimits, expected) -> None:
    w, h = parse_resolution(value, modality, limits, aspect)
    assert (w, h) == expected
    assert w % 8 == 0 and h % 8 == 0


# --------------------------------------------------------------------------------------------
# C2PA: availability and real signatures
# --------------------------------------------------------------------------------------------
def test_missing_certificate_makes_the_service_unavailable(tmp_path: Path) -> None:
    svc = DiffusersService(device="cpu", cert_path=tmp_path / "signer.pem", key_path=tmp_path / "signer.key")
    reason = svc.unavailable_reason()
    assert reason is not None and "gascli generator init-c2pa" in reason and "signer.pem" in reason
    info = svc.info()
    assert info["available"] is False and info["reason"] == reason
    with pytest.raises(ServiceUnavailable, match="init-c2pa"):
        generate(svc, "image", {"steps": 1})


def test_from_settings_uses_the_default_certificate_location() -> None:
    from gas.config import GeneratorSettings, load_settings

    settings = load_settings(GeneratorSettings, env_file=False)
    svc = DiffusersService.from_settings(settings)
    assert str(settings.c2pa_cert_path) in (svc.unavailable_reason() or "")


def test_signing_failure_fails_the_task(svc: DiffusersService) -> None:
    bad = DiffusersService(device="cpu", signer=RecordingSigner(fail=True), modalities=("image",))
    with pytest.raises(GenerationFailed, match="C2PA signing failed: certificate revoked"):
        generate(bad, "image", {"steps": 1})


@pytest.fixture(scope="module")
def c2pa_dev_ca(tmp_path_factory: pytest.TempPathFactory):
    from gas.generation.c2pa_certs import init_c2pa

    return init_c2pa(tmp_path_factory.mktemp("c2pa"))


@pytest.mark.parametrize(("modality", "params"), [("image", {"steps": 1}), ("video", {"steps": 1, "num_frames": 4})])
def test_output_passes_c2pa_verification(c2pa_dev_ca, modality: str, params: dict[str, Any]) -> None:
    from gas.verification.c2pa import load_trust_anchors, verify_c2pa

    svc = DiffusersService(device="cpu", cert_path=c2pa_dev_ca.signer_cert, key_path=c2pa_dev_ca.signer_key)
    assert svc.unavailable_reason() is None
    res = generate(svc, modality, params)
    report = verify_c2pa(res.data, trust_anchors_pem=load_trust_anchors([c2pa_dev_ca.ca_cert]))
    assert report.passed, report.to_dict()
    assert report.ai_generated is True
    assert report.model_name == res.metadata["model"]
    # the signed bytes still decode as the media they claim to be
    if modality == "image":
        assert decode_png(res.data).shape == (64, 64, 3)
    else:
        assert len(decode_mp4(res.data)[0]) == 4
    # and a validator without our CA among its anchors does not trust it
    assert not verify_c2pa(res.data, trust_anchors_pem=load_trust_anchors()).passed


def test_unusable_certificate_is_reported_and_tampering_is_caught(tmp_path: Path, c2pa_dev_ca) -> None:
    import datetime as dt

    from c2pa_fixtures import flip_byte_after, make_ca

    from gas.verification.c2pa import load_trust_anchors, verify_c2pa

    ca = make_ca()
    now = dt.datetime.now(dt.timezone.utc)
    expired = ca.issue(not_before=now - dt.timedelta(days=30), not_after=now - dt.timedelta(days=1))
    cert, key = expired.write(tmp_path)
    svc = DiffusersService(device="cpu", cert_path=cert, key_path=key, modalities=("image",))
    reason = svc.unavailable_reason() or ""
    assert "C2PA signer could not be loaded" in reason and "expired" in reason.lower()

    good = DiffusersService(
        device="cpu", cert_path=c2pa_dev_ca.signer_cert, key_path=c2pa_dev_ca.signer_key, modalities=("image",)
    )
    data = generate(good, "image", {"steps": 1}).data
    report = verify_c2pa(flip_byte_after(data, b"IDAT", 16), trust_anchors_pem=load_trust_anchors([c2pa_dev_ca.ca_cert]))
    assert not report.passed


# --------------------------------------------------------------------------------------------
# model sources, devices
# --------------------------------------------------------------------------------------------
def test_local_directory_model_loads_offline_and_matches_the_builtin(tmp_path: Path, svc: DiffusersService) -> None:
    from gas.bench.synth import build_tiny_pipeline

    model_dir = tmp_path / "my-tiny-sd"
    build_tiny_pipeline(0).save_pretrained(model_dir, safe_serialization=True)
    local = DiffusersService(image_model=str(model_dir), device="cpu", signer=RecordingSigner(), modalities=("image",))
    assert local.unavailable_reason() is None
    assert local.info()["pipelines"]["image"]["source"] == "local"
    res = generate(local, "image", {"seed": 5, "steps": 1})
    assert res.metadata["model"] == "my-tiny-sd"  # the directory's name, never the full path
    builtin = generate(svc, "image", {"seed": 5, "steps": 1})
    assert np.array_equal(decode_png(res.data), decode_png(builtin.data))  # same weights, same pixels


def test_model_source_problems_are_reported(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    cases = {
        str(tmp_path / "nowhere"): "does not exist",
        str(tmp_path / "empty"): "model_index.json",
        "builtin:huge": "unknown builtin",
        "not a model id!": "neither a local directory nor a hub id",
    }
    for spec, needle in cases.items():
        svc = DiffusersService(image_model=spec, device="cpu", signer=RecordingSigner(), modalities=("image",))
        reason = svc.unavailable_reason()
        assert reason is not None and needle in reason, (spec, reason)
    assert resolve_source("stabilityai/sdxl-turbo").kind == "hub"
    assert resolve_source("builtin:tiny").kind == "builtin"
    hub = DiffusersService(image_model="org/model", video_model="org/video", signer=RecordingSigner())
    assert hub.unavailable_reason() is None  # nothing is downloaded until the first task
    assert hub.info()["models"] == {"image": ["org/model"], "video": ["org/video"]}


def test_bad_device_or_dtype_setting_is_reported() -> None:
    svc = DiffusersService(device="gpu0", signer=RecordingSigner())
    assert "gpu0" in (svc.unavailable_reason() or "")
    svc = DiffusersService(device="cpu", dtype="int8", signer=RecordingSigner())
    assert "int8" in (svc.unavailable_reason() or "")


def test_explicit_dtype_is_used() -> None:
    svc = DiffusersService(device="cpu", dtype="bf16", signer=RecordingSigner(), modalities=("image",))
    res = generate(svc, "image", {"steps": 1})
    assert decode_png(res.data).shape == (64, 64, 3)
    assert next(svc._slots["image"].pipe.unet.parameters()).dtype.__str__() == "torch.bfloat16"


def test_missing_gpu_fails_the_load_with_a_reason() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    svc = DiffusersService(device="cuda:0", signer=RecordingSigner(), modalities=("image",))
    with pytest.raises(ServiceUnavailable, match="CUDA"):
        generate(svc, "image", {"steps": 1})
    assert "CUDA" in (svc.unavailable_reason() or "")


def test_modalities_not_served_are_refused() -> None:
    svc = DiffusersService(device="cpu", signer=RecordingSigner(), modalities=("image",))
    assert svc.info()["supported_tasks"] == ["text_to_image"]
    with pytest.raises(InvalidParameters, match="video"):
        generate(svc, "video", {})


# --------------------------------------------------------------------------------------------
# cancellation and shutdown
# --------------------------------------------------------------------------------------------
def test_cancellation_stops_the_run_early_and_keeps_the_pipeline_usable(svc: DiffusersService) -> None:
    slot = svc._slots["image"]
    generate(svc, "image", {"steps": 1})  # loaded

    async def cancel_midway() -> float:
        req = GenerationRequest("long", "image", PROMPT, {"steps": 200, "width": 128, "height": 128})
        task = asyncio.create_task(svc.generate(req, _no_checkpoint))
        await poll_until(slot.lock.locked, 10.0)  # the worker thread is inside the pipeline
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        t0 = time.perf_counter()
        await poll_until(lambda: not slot.lock.locked(), 30.0)
        return time.perf_counter() - t0

    runs_before = slot.runs
    released_after = asyncio.run(cancel_midway())
    # 200 steps at 128x128 take about 40 s here; the step callback stops it within a step or two
    assert released_after < 3.0
    assert slot.runs == runs_before  # the cancelled run did not complete
    res = generate(svc, "image", {"seed": 7, "steps": 2})
    assert decode_png(res.data).shape == (64, 64, 3)


def test_aclose_unloads_and_refuses_new_work() -> None:
    svc = DiffusersService(device="cpu", signer=RecordingSigner(), modalities=("image",))
    generate(svc, "image", {"steps": 1})
    assert svc.info()["pipelines"]["image"]["loaded"] is True
    asyncio.run(svc.aclose())
    assert svc.info()["pipelines"]["image"]["loaded"] is False
    assert "shut down" in (svc.unavailable_reason() or "")
    with pytest.raises(ServiceUnavailable):
        generate(svc, "image", {"steps": 1})


def test_models_needing_coarser_sizes_get_one_rounded_retry() -> None:
    """Wan / LTX-Video reject sizes that are not multiples of 16 / 32 with 'divisible by N'."""
    calls: list[tuple[int, int]] = []

    def strict_pipe(**kw: Any) -> tuple[int, int]:
        calls.append((kw["width"], kw["height"]))
        if kw["width"] % 32 or kw["height"] % 32:
            raise ValueError(f"`height` and `width` have to be divisible by 32 but are {kw['height']} and {kw['width']}.")
        return kw["width"], kw["height"]

    assert DiffusersService._call(strict_pipe, {"width": 1280, "height": 720}) == (1280, 736)
    assert calls == [(1280, 720), (1280, 736)]

    def picky(**kw: Any) -> None:
        raise ValueError("num_frames must be odd")

    with pytest.raises(ValueError, match="odd"):
        DiffusersService._call(picky, {"width": 64, "height": 64})
