"""OpenRouter: images through chat completions, videos through the asynchronous Videos API.

Images: ``POST {base}/chat/completions`` with ``modalities: ["image", "text"]``; the image comes back
as a base64 data URL in ``choices[0].message.images[0].image_url.url`` and is only base64-decoded, so
the provider's C2PA manifest survives. A requested ``resolution`` (1K/2K/4K) and ``aspect_ratio`` go
out as ``image_config`` (the reference ignored resolution for images).
Videos: ``POST {base}/videos`` answers 202 ``{id, status, polling_url}``; ``GET {base}/videos/{id}`` is
polled until completed / failed / cancelled / expired; ``GET {base}/videos/{id}/content`` is the
MP4. Models are whitelisted with their durations, ratios and resolutions, and requests are snapped
to them as the reference does. Unlike the reference (whose dispatch never reached it), video works.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gas.generation.services.api_common import (
    IMAGE_TIERS,
    VIDEO_TIERS,
    ApiService,
    decode_data_url,
    nearest_number,
    normalize_tier,
    param,
    param_bool,
    param_int,
    param_number,
    param_str,
    parse_size,
    snap_tier,
)
from gas.generation.services.base import (
    CheckpointFn,
    GenerationFailed,
    GenerationRequest,
    GenerationResult,
    InvalidParameters,
)

if TYPE_CHECKING:
    from gas.config import GeneratorSettings

logger = logging.getLogger(__name__)

CHECKPOINT_KIND = "openrouter_video"
DEFAULT_IMAGE_MODEL = "google/gemini-3-pro-image-preview"
DEFAULT_VIDEO_MODEL = "google/veo-3.1-lite"
IMAGE_ASPECT_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
#: The reference's preference when the requested resolution is not offered.
RESOLUTION_PRIORITY = ("720p", "480p", "1080p", "1K", "2K", "4K")
_RESOLUTION_ORDER = ("480p", "720p", "1080p", "4K")
_TERMINAL = ("completed", "failed", "cancelled", "expired")
_MODEL_RE = re.compile(r"^[\w.-]+/[\w.:-]+$")


@dataclass(frozen=True)
class VideoModelSpec:
    resolutions: tuple[str, ...]
    durations: tuple[int, ...]
    aspect_ratios: tuple[str, ...]  # the first is the default

    @property
    def default_resolution(self) -> str:
        return next(r for r in RESOLUTION_PRIORITY if r in self.resolutions)


_VEO_RATIOS = ("16:9", "9:16")
_SEEDANCE_RATIOS = ("16:9", "9:16", "1:1", "4:3", "3:4", "21:9", "9:21")
_SEEDANCE_SECONDS = tuple(range(4, 16))

#: The reference's whitelist of OpenRouter video models.
VIDEO_MODELS: dict[str, VideoModelSpec] = {
    "google/veo-3.1": VideoModelSpec(("720p", "1080p", "4K"), (4, 6, 8), _VEO_RATIOS),
    "google/veo-3.1-fast": VideoModelSpec(("720p", "1080p", "4K"), (4, 6, 8), _VEO_RATIOS),
    "google/veo-3.1-lite": VideoModelSpec(("720p", "1080p"), (4, 6, 8), _VEO_RATIOS),
    "bytedance/seedance-2.0": VideoModelSpec(("480p", "720p", "1080p"), _SEEDANCE_SECONDS, _SEEDANCE_RATIOS),
    "bytedance/seedance-2.0-fast": VideoModelSpec(("480p", "720p"), _SEEDANCE_SECONDS, _SEEDANCE_RATIOS),
}


class OpenRouterService(ApiService):
    """OpenRouter images (any image-output model) and videos (whitelisted models)."""

    name = "openrouter"
    modalities = frozenset({"image", "video"})
    key_env = "OPEN_ROUTER_API_KEY"
    label = "OpenRouter"

    default_base_url = "https://openrouter.ai/api/v1"
    tunable_defaults = {"poll_interval": 10.0, "job_timeout": 2400.0, "request_timeout": 120.0}

    def __init__(
        self, *, image_model: str = DEFAULT_IMAGE_MODEL, video_model: str = DEFAULT_VIDEO_MODEL, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if video_model not in VIDEO_MODELS:
            raise ValueError(f"unknown OpenRouter video model {video_model!r}")
        if not _MODEL_RE.match(image_model):
            raise ValueError(f"bad OpenRouter model id {image_model!r}")
        self.image_model = image_model
        self.video_model = video_model

    @classmethod
    def from_settings(cls, settings: GeneratorSettings) -> OpenRouterService:
        return cls(api_key=settings.openrouter_api_key, base_url=settings.openrouter_base_url)

    def unavailable_reason(self) -> str | None:
        return None if self._api_key else "OPEN_ROUTER_API_KEY (or OPENROUTER_API_KEY) is not set"

    def _auth_headers(self) -> dict[str, str]:
        # OpenRouter's optional attribution header; harmless elsewhere.
        return {"Authorization": f"Bearer {self._api_key}", "X-Title": "GAS generative miner"}

    def models(self) -> dict[str, list[str]]:
        return {"image": [self.image_model], "video": list(VIDEO_MODELS)}

    def default_models(self) -> dict[str, str]:
        return {"image": self.image_model, "video": self.video_model}

    # --- images -----------------------------------------------------------------------------------------

    def image_body(self, request: GenerationRequest) -> dict[str, Any]:
        p = request.parameters
        model = param_str(p, "model") or self.image_model
        if not _MODEL_RE.match(model):
            raise InvalidParameters(f"model must be an OpenRouter model id like {DEFAULT_IMAGE_MODEL}, got {model!r}")
        body: dict[str, Any] = {
            "model": model,
            "messages": [{"role": "user", "content": request.prompt}],
            "modalities": ["image", "text"],
        }
        config: dict[str, str] = {}
        ratio = param_str(p, "aspect_ratio", "ratio")
        if ratio:
            if ratio not in IMAGE_ASPECT_RATIOS:
                raise InvalidParameters(f"aspect_ratio must be one of {', '.join(IMAGE_ASPECT_RATIOS)}; got {ratio!r}")
            config["aspect_ratio"] = ratio
        tier = normalize_tier(param(p, "resolution", "image_size"), IMAGE_TIERS)
        if tier:
            config["image_size"] = tier
        if config:
            body["image_config"] = config
        return body

    async def _generate_image(self, request: GenerationRequest) -> GenerationResult:
        body = self.image_body(request)
        model = body["model"]
        logger.info("openrouter: image for task %s with %s", request.task_id, model)
        resp = await self._request(
            "POST", self._url("chat/completions"), what=f"image generation with {model}",
            json_body=body, creates_job=True,
        )
        payload = self._json(resp, "OpenRouter image generation")
        if isinstance(payload.get("error"), dict):
            err = payload["error"]
            raise GenerationFailed(
                f"OpenRouter image generation with {model} failed ({err.get('code')}): "
                f"{self._redact(str(err.get('message')))}"
            )
        try:
            message = payload["choices"][0]["message"]
        except (KeyError, IndexError, TypeError):
            raise GenerationFailed(f"OpenRouter answered without choices ({str(payload)[:200]})") from None
        images = message.get("images") if isinstance(message, dict) else None
        if not images:
            said = str(message.get("content") or "")[:200] if isinstance(message, dict) else ""
            raise GenerationFailed(f"OpenRouter model {model} returned no image" + (f": {said!r}" if said else ""))
        try:
            url = images[0]["image_url"]["url"]
        except (KeyError, IndexError, TypeError):
            raise GenerationFailed("OpenRouter image entry has no image_url.url") from None
        _, data = decode_data_url(str(url))
        return self._result(
            data, modality="image", model=model, job_id=str(payload.get("id") or "") or None,
            extra={"image_size": body.get("image_config", {}).get("image_size"),
                   "aspect_ratio": body.get("image_config", {}).get("aspect_ratio")},
        )

    # --- videos -----------------------------------------------------------------------------------------

    def video_body(self, request: GenerationRequest) -> dict[str, Any]:
        """The body for POST /videos: model from the whitelist, values snapped to what it offers."""
        p = request.parameters
        model = param_str(p, "model") or self.video_model
        spec = VIDEO_MODELS.get(model)
        if spec is None:
            raise InvalidParameters(f"OpenRouter video model must be one of {', '.join(VIDEO_MODELS)}; got {model!r}")
        seconds = param_number(p, "duration", "seconds")
        duration = nearest_number(seconds, spec.durations) if seconds else spec.durations[0]
        ratio = param_str(p, "aspect_ratio", "ratio") or spec.aspect_ratios[0]
        if ratio not in spec.aspect_ratios:
            raise InvalidParameters(f"{model} offers aspect ratios {', '.join(spec.aspect_ratios)}; got {ratio!r}")
        tier = normalize_tier(param(p, "resolution"), VIDEO_TIERS)
        resolution = snap_tier(tier, spec.resolutions, _RESOLUTION_ORDER, spec.default_resolution)
        body: dict[str, Any] = {
            "model": model,
            "prompt": request.prompt,
            "duration": duration,
            "aspect_ratio": ratio,
            "resolution": resolution,
        }
        audio = param_bool(p, "generate_audio", "audio")
        if audio is not None:
            body["generate_audio"] = audio
        seed = param_int(p, "seed", lo=0, hi=2**32 - 1)
        if seed is not None:
            body["seed"] = seed
        size = param_str(p, "size")
        if size:
            w, h = parse_size(size)
            body["size"] = f"{w}x{h}"
        return body

    async def _generate_video(self, request: GenerationRequest, checkpoint: CheckpointFn) -> GenerationResult:
        resumed = self._resume_state(request, CHECKPOINT_KIND)
        if resumed and isinstance(resumed.get("create_kwargs"), dict):
            body = dict(resumed["create_kwargs"])
            body.setdefault("prompt", request.prompt)
            job_id: str | None = resumed["job_id"]
            logger.info("openrouter: task %s resumes video job %s", request.task_id, job_id)
        else:
            body = self.video_body(request)
            job_id = None

        async def start() -> str:
            new_id = await self._create_video(request, body)
            # The prompt is in the task record already; keep the checkpoint small.
            kwargs = {k: v for k, v in body.items() if k != "prompt"}
            await checkpoint({"kind": CHECKPOINT_KIND, "job_id": new_id, "model": body["model"],
                              "create_kwargs": kwargs})
            return new_id

        job_id, job = await self._run_job(
            job_id, start=start, poll=lambda j: self._poll_video(j, request.task_id), job="video job"
        )
        status = str(job.get("status"))
        if status != "completed":
            error = job.get("error")
            if isinstance(error, dict):
                error = error.get("message") or error
            raise GenerationFailed(
                f"OpenRouter video job {job_id} ended {status}: {self._redact(str(error or 'no error message'))}"
            )
        data = await self._download(
            self._url(f"videos/{job_id}/content?index=0"), what="video download", auth=True
        )
        return self._result(
            data, modality="video", model=body["model"], job_id=job_id,
            extra={"duration": body.get("duration"), "resolution": body.get("resolution"),
                   "aspect_ratio": body.get("aspect_ratio"), "generation_id": job.get("generation_id")},
        )

    async def _create_video(self, request: GenerationRequest, body: dict[str, Any]) -> str:
        job_id = await self._create_job("videos", job="video job", model=body["model"], json_body=body)
        logger.info(
            "openrouter: task %s started video job %s (%s, %s, %ss)", request.task_id, job_id,
            body["model"], body["resolution"], body["duration"],
        )
        return job_id

    async def _poll_video(self, job_id: str, task_id: str) -> dict[str, Any]:
        return await self._poll_json(
            f"videos/{job_id}", job="video job", job_id=job_id, task_id=task_id, terminal=_TERMINAL
        )
