"""build_services: which service serves which modality, instance reuse, cheapness, API service wiring."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import pytest

from gas.config import GeneratorSettings, SettingsError, load_settings
from gas.generation.services import (
    SERVICE_CLASSES,
    GenerationRequest,
    GenerationService,
    ServiceConfigError,
    ServiceUnavailable,
    build_services,
)
from gas.generation.services.diffusers_local import DiffusersService


def settings(**overrides: Any) -> GeneratorSettings:
    return load_settings(GeneratorSettings, env_file=False, overrides=overrides)


class FakeSigner:
    def sign(self, data: bytes, mime: str, **_: Any) -> bytes:
        return data


def test_default_is_one_diffusers_instance_for_both_modalities() -> None:
    ss = build_services(settings())
    image, video = ss.for_modality("image"), ss.for_modality("video")
    assert isinstance(image, DiffusersService) and image is video
    assert isinstance(image, GenerationService)
    assert ss.all() == [image]
    (entry,) = ss.info()
    assert entry["name"] == "diffusers" and entry["serves"] == ["image", "video"]
    assert entry["supported_tasks"] == ["text_to_image", "text_to_video"]
    json.dumps(ss.info())


def test_none_disables_a_modality() -> None:
    ss = build_services(settings(image_service="none"))
    assert ss.for_modality("image") is None
    video = ss.for_modality("video")
    assert isinstance(video, DiffusersService)
    assert video.modalities == frozenset({"video"})  # the image model is never configured or loaded
    assert ss.info()[0]["supported_tasks"] == ["text_to_video"]
    assert ss.for_modality("audio") is None

    empty = build_services(settings(image_service="none", video_service="none"))
    assert empty.all() == [] and empty.info() == []
    asyncio.run(empty.aclose())


def test_signer_argument_reaches_the_diffusers_service() -> None:
    without = build_services(settings()).for_modality("image")
    assert "init-c2pa" in (without.unavailable_reason() or "")  # no certificate in the test cache dir
    with_signer = build_services(settings(), signer=FakeSigner()).for_modality("image")
    assert with_signer.unavailable_reason() is None


def test_settings_refuse_unknown_or_mismatched_names() -> None:
    with pytest.raises(SettingsError, match="image_service"):
        settings(image_service="midjourney")
    with pytest.raises(SettingsError, match="image_service"):
        settings(image_service="runway")  # runway makes video only
    with pytest.raises(SettingsError, match="video_service"):
        settings(video_service="stabilityai")  # stability makes images only
    # names are normalised by the settings
    assert settings(image_service=" None ").image_service == "none"


def test_build_services_checks_names_itself_too() -> None:
    # settings built without validation (model_construct, tests, other callers) still cannot slip through
    with pytest.raises(ServiceConfigError, match="midjourney"):
        build_services(SimpleNamespace(image_service="midjourney", video_service="none"))
    with pytest.raises(ServiceConfigError, match="cannot make image"):
        build_services(SimpleNamespace(image_service="runway", video_service="none"))


def test_building_the_set_is_cheap() -> None:
    """gascli generator info builds the set just to show availability: no torch, no diffusers, no model."""
    code = (
        "import sys, time, json\n"
        "t = time.perf_counter()\n"
        "from gas.config import GeneratorSettings, load_settings\n"
        "from gas.generation.services import build_services\n"
        "ss = build_services(load_settings(GeneratorSettings, env_file=False))\n"
        "info = ss.info()\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'diffusers': 'diffusers' in sys.modules,"
        " 's': time.perf_counter() - t, 'loaded': info[0]['pipelines']['image']['loaded']}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["torch"] is False and got["diffusers"] is False and got["loaded"] is False
    assert got["s"] < 5.0


def test_a_missing_service_module_becomes_an_unavailable_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(SERVICE_CLASSES, "openai", ("no_such_module", "Nope", frozenset({"image", "video"})))
    ss = build_services(settings(image_service="openai", video_service="openai"))
    svc = ss.for_modality("image")
    assert svc is ss.for_modality("video")
    assert "no_such_module" in (svc.unavailable_reason() or "")
    assert ss.info()[0]["available"] is False
    with pytest.raises(ServiceUnavailable):
        asyncio.run(svc.generate(GenerationRequest("t", "image", "x"), None))


def test_aclose_closes_every_service() -> None:
    ss = build_services(settings(), signer=FakeSigner())
    asyncio.run(ss.aclose())
    assert "shut down" in (ss.for_modality("image").unavailable_reason() or "")


# --------------------------------------------------------------------------------------------
# API services
# --------------------------------------------------------------------------------------------
def test_openai_for_both_modalities_is_one_instance() -> None:
    from gas.generation.services.openai_service import OpenAIService

    ss = build_services(settings(image_service="openai", video_service="openai", openai_api_key="sk-test"))
    svc = ss.for_modality("image")
    assert isinstance(svc, OpenAIService) and svc is ss.for_modality("video")
    assert svc.name == "openai" and svc.unavailable_reason() is None
    assert len(ss.all()) == 1
    asyncio.run(ss.aclose())


def test_openrouter_images_and_runway_video() -> None:
    from gas.generation.services.openrouter_service import OpenRouterService
    from gas.generation.services.runway_service import RunwayService

    ss = build_services(settings(image_service="openrouter", video_service="runway"))
    image, video = ss.for_modality("image"), ss.for_modality("video")
    assert isinstance(image, OpenRouterService) and isinstance(video, RunwayService)
    assert [e["name"] for e in ss.info()] == ["openrouter", "runway"]
    assert [e["serves"] for e in ss.info()] == [["image"], ["video"]]
    # no API keys in the test environment: both say so, nothing crashes
    assert image.unavailable_reason() and video.unavailable_reason()
    asyncio.run(ss.aclose())


def test_stabilityai_images_with_local_video() -> None:
    from gas.generation.services.stabilityai_service import StabilityAIService

    ss = build_services(settings(image_service="stabilityai", video_service="diffusers", stability_api_key="k"))
    assert isinstance(ss.for_modality("image"), StabilityAIService)
    assert ss.for_modality("image").unavailable_reason() is None
    video = ss.for_modality("video")
    assert isinstance(video, DiffusersService) and video.modalities == frozenset({"video"})
    asyncio.run(ss.aclose())
