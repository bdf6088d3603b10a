"""Stability AI: images from the Stable Image v2beta REST API (synchronous, no job to poll).

``POST {base}/v2beta/stable-image/generate/{sd3|ultra|core}`` as multipart form data with
``Accept: image/*``; the answer body is the image itself, returned byte for byte (Stability embeds
C2PA in its outputs; nothing here touches it). The model picks the endpoint: the SD 3.x models go to
``sd3`` with a ``model`` field, ``ultra`` and ``core`` have their own endpoints.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from gas.generation.services.api_common import (
    ApiService,
    aspect_hint,
    param_choice,
    param_int,
    param_str,
    parse_ratio,
)
from gas.generation.services.base import (
    GenerationFailed,
    GenerationRequest,
    GenerationResult,
    InvalidParameters,
)

if TYPE_CHECKING:
    from gas.config import GeneratorSettings

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "sd3.5-medium"
SD3_MODELS = ("sd3.5-large", "sd3.5-large-turbo", "sd3.5-medium", "sd3.5-flash")
#: model name -> (endpoint, value of the ``model`` form field or None)
_ENDPOINTS: dict[str, tuple[str, str | None]] = {
    **{m: ("sd3", m) for m in SD3_MODELS},
    "ultra": ("ultra", None),
    "stable-image-ultra": ("ultra", None),
    "core": ("core", None),
    "stable-image-core": ("core", None),
}
ASPECT_RATIOS = ("16:9", "1:1", "21:9", "2:3", "3:2", "4:5", "5:4", "9:16", "9:21")
_FORMATS = {"sd3": ("png", "jpeg"), "ultra": ("png", "jpeg", "webp"), "core": ("png", "jpeg", "webp")}


class StabilityAIService(ApiService):
    """Stable Diffusion 3.5 / Stable Image Ultra / Core text-to-image."""

    name = "stabilityai"
    modalities = frozenset({"image"})
    key_env = "STABILITY_API_KEY"
    label = "Stability AI"

    default_base_url = "https://api.stability.ai"
    #: Synchronous API: ``request_timeout`` bounds the one generation call (the reference's 90 s).
    tunable_defaults = {"request_timeout": 90.0}

    def __init__(self, *, model: str = DEFAULT_MODEL, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if model not in _ENDPOINTS:
            raise ValueError(f"unknown Stability model {model!r}")
        self.model = model

    @classmethod
    def from_settings(cls, settings: GeneratorSettings) -> StabilityAIService:
        return cls(api_key=settings.stability_api_key, base_url=settings.stability_base_url)

    def models(self) -> dict[str, list[str]]:
        return {"image": [*SD3_MODELS, "ultra", "core"]}

    def default_models(self) -> dict[str, str]:
        return {"image": self.model}

    def form_for(self, request: GenerationRequest) -> tuple[str, dict[str, str]]:
        """(endpoint, multipart fields) after validating the parameters."""
        p = request.parameters
        model = param_str(p, "model") or self.model
        if model not in _ENDPOINTS:
            raise InvalidParameters(
                f"Stability model must be one of {', '.join([*SD3_MODELS, 'ultra', 'core'])}; got {model!r}"
            )
        endpoint, model_field = _ENDPOINTS[model]
        fmt = param_choice(p, "format", "output_format", choices=_FORMATS[endpoint]) or "png"
        form: dict[str, str] = {"prompt": request.prompt, "output_format": fmt}
        if model_field:
            form["model"] = model_field
        ratio = param_str(p, "aspect_ratio")
        if ratio:
            if ratio not in ASPECT_RATIOS:
                raise InvalidParameters(f"aspect_ratio must be one of {', '.join(ASPECT_RATIOS)}; got {ratio!r}")
            form["aspect_ratio"] = ratio
        else:
            hint = aspect_hint(p)
            if hint:
                form["aspect_ratio"] = min(ASPECT_RATIOS, key=lambda r: abs(parse_ratio(r) - hint))
        negative = param_str(p, "negative_prompt")
        if negative:
            if len(negative) > 10000:
                raise InvalidParameters("negative_prompt is longer than 10000 characters")
            form["negative_prompt"] = negative
        seed = param_int(p, "seed", lo=0, hi=4294967294)
        if seed is not None:
            form["seed"] = str(seed)
        return endpoint, form

    async def _generate_image(self, request: GenerationRequest) -> GenerationResult:
        endpoint, form = self.form_for(request)
        model = form.get("model") or endpoint
        logger.info("stabilityai: image for task %s with %s (%s)", request.task_id, model, endpoint)
        resp = await self._request(
            "POST", self._url(f"v2beta/stable-image/generate/{endpoint}"), what=f"image generation with {model}",
            form=form, headers={"Accept": "image/*"}, creates_job=True,
        )
        finish = resp.headers.get("finish-reason", "")
        if finish.upper() == "CONTENT_FILTERED":
            raise GenerationFailed(f"Stability AI filtered the image for {model} (finish-reason CONTENT_FILTERED)")
        if "json" in resp.headers.get("content-type", ""):
            raise GenerationFailed(f"Stability AI sent JSON instead of an image ({resp.text[:160]!r})")
        seed = resp.headers.get("seed")
        return self._result(
            resp.content, modality="image", model=model,
            job_id=resp.headers.get("x-request-id") or resp.headers.get("request-id"),
            extra={"seed": int(seed) if seed and seed.isdigit() else None, "output_format": form["output_format"],
                   "aspect_ratio": form.get("aspect_ratio")},
        )
