"""OpenAI: images from the Images API, videos from Sora (Videos API), over plain HTTP.

Images: ``POST {base}/images/generations``. The gpt-image models answer ``b64_json`` (decoded, nothing
else); dall-e models may answer a short-lived ``url``, downloaded without the API key.
Videos: ``POST {base}/videos`` (multipart form) starts a job; ``GET {base}/videos/{id}`` is polled
until ``completed`` or ``failed``; ``GET {base}/videos/{id}/content`` is the MP4. The job id is
checkpointed as soon as OpenAI returns it, so a restarted miner polls the same (paid) job. Failed
jobs whose error code is transient are retried as fresh jobs with exponential backoff, as the
reference does. OpenAI has announced the Videos API's shutdown (2026-09-24).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from gas.generation.services.api_common import (
    VIDEO_TIERS,
    ApiService,
    JobTimeout,
    aspect_hint,
    nearest_by_aspect,
    nearest_number,
    normalize_tier,
    param,
    param_choice,
    param_number,
    param_str,
    parse_size,
    pick_video_size,
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

CHECKPOINT_KIND = "openai_sora"

#: Image models listed in /miner_info; any gpt-image-* or dall-e-2/3 name is accepted.
IMAGE_MODELS = ("gpt-image-1", "gpt-image-1-mini", "gpt-image-1.5", "dall-e-3", "dall-e-2")
VIDEO_MODELS = ("sora-2", "sora-2-pro")

_GPT_IMAGE_SIZES = ((1024, 1024), (1536, 1024), (1024, 1536))
_DALLE3_SIZES = ((1024, 1024), (1792, 1024), (1024, 1792))
_DALLE2_SIZES = ((1024, 1024), (512, 512), (256, 256))
_GPT_IMAGE_QUALITY = ("low", "medium", "high", "auto")
_DALLE3_QUALITY = ("standard", "hd")

_SORA_SIZES = ((1280, 720), (720, 1280))
_SORA_PRO_SIZES = _SORA_SIZES + ((1792, 1024), (1024, 1792), (1920, 1080), (1080, 1920))
SORA_SECONDS = (4, 8, 12, 16, 20)

#: Sora error codes worth a fresh job (the reference's list).
RETRYABLE_VIDEO_CODES = frozenset(
    {"video_generation_failed", "server_error", "timeout", "rate_limit_exceeded", "overloaded"}
)


def _image_family(model: str) -> str:
    if model.startswith("gpt-image-"):
        return "gpt-image"
    if model in ("dall-e-3", "dall-e-2"):
        return model
    raise InvalidParameters(
        f"unknown OpenAI image model {model!r}; use a gpt-image-* model or dall-e-3 / dall-e-2"
    )


def _offered_size(text: str, sizes: Sequence[tuple[int, int]], model: str) -> tuple[int, int]:
    """An explicit ``WxH`` that ``model`` must offer as it is (no snapping)."""
    size = parse_size(text)
    if size not in sizes:
        raise InvalidParameters(
            f"size {text} is not offered by {model}; use one of " + ", ".join(f"{w}x{h}" for w, h in sizes)
        )
    return size


class OpenAIService(ApiService):
    """OpenAI images (gpt-image-1 family, DALL-E) and Sora videos."""

    name = "openai"
    modalities = frozenset({"image", "video"})
    key_env = "OPENAI_API_KEY"
    label = "OpenAI"

    default_base_url = "https://api.openai.com/v1"
    tunable_defaults = {"request_timeout": 180.0, "retry_backoff": 5.0}

    def __init__(
        self, *, image_model: str = "gpt-image-1", video_model: str = "sora-2", **kwargs: Any
    ) -> None:
        """Tunables as ``ApiService``: ``job_timeout`` bounds each Sora attempt; ``max_retries`` is both the
        HTTP retry count and the number of fresh Sora jobs after a transient job failure; ``retry_backoff``
        the first delay."""
        super().__init__(**kwargs)
        _image_family(image_model)
        if not video_model.startswith("sora-2"):
            raise ValueError(f"unknown Sora model {video_model!r}")
        self.image_model = image_model
        self.video_model = video_model

    @classmethod
    def from_settings(cls, settings: GeneratorSettings) -> OpenAIService:
        return cls(api_key=settings.openai_api_key, base_url=settings.openai_base_url)

    def models(self) -> dict[str, list[str]]:
        return {"image": list(IMAGE_MODELS), "video": list(VIDEO_MODELS)}

    def default_models(self) -> dict[str, str]:
        return {"image": self.image_model, "video": self.video_model}

    # --- images -----------------------------------------------------------------------------------------

    def image_body(self, request: GenerationRequest) -> dict[str, Any]:
        """The JSON body for /images/generations, after validating and snapping the parameters."""
        p = request.parameters
        model = param_str(p, "model") or self.image_model
        family = _image_family(model)
        sizes = {"gpt-image": _GPT_IMAGE_SIZES, "dall-e-3": _DALLE3_SIZES, "dall-e-2": _DALLE2_SIZES}[family]
        explicit = param_str(p, "size")
        if explicit and explicit != "auto":
            size = _offered_size(explicit, sizes, model)
        else:
            hint = aspect_hint(p)
            size = nearest_by_aspect(hint, sizes) if hint else sizes[0]
        body: dict[str, Any] = {"model": model, "prompt": request.prompt, "n": 1, "size": f"{size[0]}x{size[1]}"}
        if family == "gpt-image":
            quality = param_choice(p, "quality", choices=_GPT_IMAGE_QUALITY)
            fmt = param_choice(p, "format", "output_format", choices=("png", "jpeg", "webp"))
            if quality:
                body["quality"] = quality
            if fmt:
                body["output_format"] = fmt
        elif family == "dall-e-3":
            body["quality"] = param_choice(p, "quality", choices=_DALLE3_QUALITY) or "standard"
        return body

    async def _generate_image(self, request: GenerationRequest) -> GenerationResult:
        body = self.image_body(request)
        model = body["model"]
        logger.info("openai: image for task %s with %s %s", request.task_id, model, body["size"])
        resp = await self._request(
            "POST", self._url("images/generations"), what=f"image generation with {model}",
            json_body=body, creates_job=True,
        )
        payload = self._json(resp, "OpenAI image generation")
        items = payload.get("data")
        if not isinstance(items, list) or not items or not isinstance(items[0], dict):
            raise GenerationFailed(f"OpenAI image generation returned no image ({str(payload)[:200]})")
        item = items[0]
        if item.get("b64_json"):
            try:
                data = base64.b64decode(item["b64_json"], validate=True)
            except (binascii.Error, ValueError) as exc:
                raise GenerationFailed(f"OpenAI image b64_json is corrupt: {exc}") from None
        elif item.get("url"):
            data = await self._download(str(item["url"]), what="image download", auth=False)
        else:
            raise GenerationFailed("OpenAI image generation returned neither b64_json nor url")
        return self._result(
            data, modality="image", model=model, job_id=resp.headers.get("x-request-id"),
            extra={"size": body["size"], "quality": body.get("quality")},
        )

    # --- videos -----------------------------------------------------------------------------------------

    def video_spec(self, request: GenerationRequest) -> dict[str, str]:
        """Model, size and seconds for a Sora job, validated and snapped to what the model offers."""
        p = request.parameters
        model = param_str(p, "model") or self.video_model
        if not model.startswith("sora-2"):
            raise InvalidParameters(f"unknown Sora model {model!r}; use one of {', '.join(VIDEO_MODELS)}")
        sizes = _SORA_PRO_SIZES if model.startswith("sora-2-pro") else _SORA_SIZES
        explicit = param_str(p, "size")
        if explicit:
            size = _offered_size(explicit, sizes, model)
        else:
            tier = normalize_tier(param(p, "resolution"), VIDEO_TIERS)
            size = pick_video_size(sizes, tier, aspect_hint(p))
        seconds = param_number(p, "seconds", "duration")
        secs = nearest_number(seconds, SORA_SECONDS) if seconds else SORA_SECONDS[0]
        return {"model": model, "size": f"{size[0]}x{size[1]}", "seconds": str(secs)}

    async def _generate_video(self, request: GenerationRequest, checkpoint: CheckpointFn) -> GenerationResult:
        resumed = self._resume_state(request, CHECKPOINT_KIND)
        if resumed:
            spec = {k: str(resumed.get(k) or "") for k in ("model", "size", "seconds")}
            if not all(spec.values()):
                spec = self.video_spec(request)
            attempt = int(resumed.get("attempt") or 0)
            job_id: str | None = resumed["job_id"]
            logger.info("openai: task %s resumes Sora job %s (attempt %d)", request.task_id, job_id, attempt)
        else:
            spec = self.video_spec(request)
            attempt, job_id = 0, None

        async def start() -> str:
            nonlocal job_id  # a new job's id, for the failure message should it time out
            job_id = await self._create_video(request, spec)
            await checkpoint({"kind": CHECKPOINT_KIND, "job_id": job_id, **spec, "attempt": attempt})
            return job_id

        while True:
            try:
                job_id, job = await self._run_job(
                    job_id, start=start, poll=lambda j: self._poll_video(j, request.task_id), job="Sora job"
                )
            except JobTimeout as exc:
                code, message = "timeout", str(exc)
            else:
                if job.get("status") == "completed":
                    break
                err = job.get("error") if isinstance(job.get("error"), dict) else {}
                code = str(err.get("code") or "unknown")
                message = str(err.get("message") or "no error message")
            if code in RETRYABLE_VIDEO_CODES and attempt < self.max_retries:
                delay = self._backoff(attempt)
                logger.warning(
                    "openai: Sora job %s (task %s) failed with %s: %s; new job in %.1f s (retry %d/%d)",
                    job_id, request.task_id, code, message, delay, attempt + 1, self.max_retries,
                )
                attempt += 1
                job_id = None
                await asyncio.sleep(delay)
                continue
            raise GenerationFailed(f"OpenAI Sora job {job_id} failed ({code}): {self._redact(message)}")
        data = await self._download(self._url(f"videos/{job_id}/content"), what="Sora video download", auth=True)
        return self._result(
            data, modality="video", model=spec["model"], job_id=job_id,
            extra={"size": spec["size"], "seconds": int(spec["seconds"]), "attempts": attempt + 1},
        )

    async def _create_video(self, request: GenerationRequest, spec: dict[str, str]) -> str:
        form = {"model": spec["model"], "prompt": request.prompt, "size": spec["size"],
                "seconds": spec["seconds"]}
        job_id = await self._create_job("videos", job="Sora job", model=spec["model"], form=form)
        logger.info("openai: task %s started Sora job %s (%s)", request.task_id, job_id, spec)
        return job_id

    async def _poll_video(self, job_id: str, task_id: str) -> dict[str, Any]:
        return await self._poll_json(
            f"videos/{job_id}", job="Sora job", job_id=job_id, task_id=task_id,
            terminal=("completed", "failed"),
        )
