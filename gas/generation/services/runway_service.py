"""Runway: text-to-video through Runway's REST API (no SDK).

``POST {base}/text_to_video`` with ``Authorization: Bearer`` and ``X-Runway-Version`` starts a task
(``{"id": ...}``); ``GET {base}/tasks/{id}`` is polled until SUCCEEDED / FAILED / CANCELLED (Runway
asks for no more than one poll per 5 s); the MP4 is ``output[0]``, a signed link downloaded without
the API key. The task id is checkpointed as soon as Runway returns it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gas.generation.services.api_common import (
    VIDEO_TIERS,
    ApiService,
    aspect_hint,
    nearest_number,
    normalize_tier,
    param,
    param_bool,
    param_int,
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

CHECKPOINT_KIND = "runway"
API_VERSION = "2024-11-06"
DEFAULT_MODEL = "veo3.1"
_TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")


@dataclass(frozen=True)
class RunwayModelSpec:
    ratios: tuple[str, ...]  # Runway's "W:H" pixel sizes; the first is the default
    durations: tuple[int, ...]
    prompt_limit: int  # UTF-16 code units
    audio: bool  # accepts the ``audio`` flag
    seed: bool  # accepts ``seed``


_VEO_RATIOS = ("1280:720", "720:1280", "1920:1080", "1080:1920")
_SEEDANCE_FAST_RATIOS = ("1280:720", "720:1280", "960:960", "864:496", "496:864", "640:640")
_SEEDANCE_RATIOS = _SEEDANCE_FAST_RATIOS + ("1920:1080", "1080:1920", "1440:1440")
_SEEDANCE_SECONDS = tuple(range(4, 16))

#: Models the reference allows, with the ratios and durations Runway documents for each.
MODELS: dict[str, RunwayModelSpec] = {
    "gen4.5": RunwayModelSpec(("1280:720", "720:1280"), tuple(range(2, 11)), 1000, audio=False, seed=True),
    "veo3.1": RunwayModelSpec(_VEO_RATIOS, (4, 6, 8), 1000, audio=True, seed=False),
    "veo3.1_fast": RunwayModelSpec(_VEO_RATIOS, (4, 6, 8), 1000, audio=True, seed=False),
    "veo3": RunwayModelSpec(_VEO_RATIOS, (8,), 1000, audio=False, seed=False),
    "seedance2": RunwayModelSpec(_SEEDANCE_RATIOS, _SEEDANCE_SECONDS, 3500, audio=True, seed=False),
    "seedance2_fast": RunwayModelSpec(_SEEDANCE_FAST_RATIOS, _SEEDANCE_SECONDS, 3500, audio=True, seed=False),
}


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def fit_prompt(prompt: str, limit: int) -> tuple[str, bool]:
    """The prompt cut at a word boundary to ``limit`` UTF-16 units (validator prompts can be longer)."""
    if _utf16_len(prompt) <= limit:
        return prompt, False
    cut = prompt
    while _utf16_len(cut) > limit:
        cut = cut[: max(1, int(len(cut) * limit / _utf16_len(cut)) - 1)]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(), True


class RunwayService(ApiService):
    """Runway text-to-video (gen4.5, Veo 3/3.1, Seedance 2)."""

    name = "runway"
    modalities = frozenset({"video"})
    key_env = "RUNWAYML_API_SECRET"
    label = "Runway"

    default_base_url = "https://api.dev.runwayml.com/v1"
    tunable_defaults = {"job_timeout": 2400.0}

    def __init__(self, *, model: str = DEFAULT_MODEL, api_version: str = API_VERSION, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if model not in MODELS:
            raise ValueError(f"unknown Runway model {model!r}")
        self.model = model
        self.api_version = api_version

    @classmethod
    def from_settings(cls, settings: GeneratorSettings) -> RunwayService:
        return cls(api_key=settings.runway_api_key, base_url=settings.runway_base_url)

    def unavailable_reason(self) -> str | None:
        return None if self._api_key else "RUNWAYML_API_SECRET (or RUNWAYML_API_KEY) is not set"

    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}", "X-Runway-Version": self.api_version}

    def models(self) -> dict[str, list[str]]:
        return {"video": list(MODELS)}

    def default_models(self) -> dict[str, str]:
        return {"video": self.model}

    def info(self) -> dict[str, Any]:
        out = super().info()
        out["text_to_video_models"] = list(MODELS)  # the reference's /miner_info field
        return out

    def task_body(self, request: GenerationRequest) -> tuple[dict[str, Any], bool]:
        """(body for POST /text_to_video, whether the prompt was shortened), validated and snapped."""
        p = request.parameters
        model = param_str(p, "model") or self.model
        spec = MODELS.get(model)
        if spec is None:
            raise InvalidParameters(f"Runway model must be one of {', '.join(MODELS)}; got {model!r}")
        sizes = [parse_size(r) for r in spec.ratios]
        explicit = param_str(p, "ratio")
        if explicit and re.fullmatch(r"\d{3,4}:\d{3,4}", explicit):
            if explicit not in spec.ratios:
                raise InvalidParameters(f"{model} offers ratios {', '.join(spec.ratios)}; got {explicit!r}")
            ratio = explicit
        else:
            tier = normalize_tier(param(p, "resolution"), VIDEO_TIERS)
            w, h = pick_video_size(sizes, tier, aspect_hint(p))
            ratio = f"{w}:{h}"
        seconds = param_number(p, "duration", "seconds")
        duration = nearest_number(seconds, spec.durations) if seconds else spec.durations[0]
        prompt, cut = fit_prompt(request.prompt, spec.prompt_limit)
        body: dict[str, Any] = {"model": model, "promptText": prompt, "ratio": ratio, "duration": duration}
        audio = param_bool(p, "audio", "generate_audio")
        if audio is not None and spec.audio:
            body["audio"] = audio
        seed = param_int(p, "seed", lo=0, hi=4294967295)
        if seed is not None and spec.seed:
            body["seed"] = seed
        return body, cut

    async def _generate_video(self, request: GenerationRequest, checkpoint: CheckpointFn) -> GenerationResult:
        resumed = self._resume_state(request, CHECKPOINT_KIND)
        if resumed is None and request.checkpoint and request.checkpoint.get("runway_task_id"):
            # checkpoints written by the reference miner
            resumed = {"job_id": str(request.checkpoint["runway_task_id"])}
        cut = False
        body: dict[str, Any] | None = None
        if resumed:
            job_id: str | None = resumed["job_id"]
            meta = {k: resumed.get(k) for k in ("model", "ratio", "duration")}
            logger.info("runway: task %s resumes Runway task %s", request.task_id, job_id)
        else:
            body, cut = self.task_body(request)  # validate before anything is paid for
            meta = {k: body[k] for k in ("model", "ratio", "duration")}
            job_id = None

        async def start() -> str:
            nonlocal body, cut, meta
            if body is None:
                body, cut = self.task_body(request)
                meta = {k: body[k] for k in ("model", "ratio", "duration")}
            new_id = await self._create_task(request, body, cut)
            await checkpoint({"kind": CHECKPOINT_KIND, "job_id": new_id, **meta})
            return new_id

        job_id, task = await self._run_job(
            job_id, start=start, poll=lambda j: self._poll_task(j, request.task_id), job="Runway task"
        )
        status = str(task.get("status"))
        if status != "SUCCEEDED":
            code = task.get("failureCode")
            reason = task.get("failure") or "no failure message"
            raise GenerationFailed(
                f"Runway task {job_id} {status.lower()}" + (f" ({code})" if code else "")
                + f": {self._redact(str(reason))}"
            )
        output = task.get("output")
        if not isinstance(output, list) or not output or not isinstance(output[0], str):
            raise GenerationFailed(f"Runway task {job_id} succeeded without an output URL")
        data = await self._download(output[0], what="video download", auth=False)
        return self._result(
            data, modality="video", model=str(meta.get("model") or self.model), job_id=job_id,
            extra={"ratio": meta.get("ratio"), "duration": meta.get("duration"), "prompt_truncated": cut or None},
        )

    async def _create_task(self, request: GenerationRequest, body: dict[str, Any], cut: bool) -> str:
        if cut:
            logger.warning(
                "runway: task %s prompt shortened to %d characters for %s", request.task_id,
                len(body["promptText"]), body["model"],
            )
        job_id = await self._create_job("text_to_video", job="task", model=body["model"], json_body=body)
        logger.info(
            "runway: task %s started Runway task %s (%s, %s, %ss)", request.task_id, job_id,
            body["model"], body["ratio"], body["duration"],
        )
        return job_id

    async def _poll_task(self, job_id: str, task_id: str) -> dict[str, Any]:
        return await self._poll_json(
            f"tasks/{job_id}", job="task", job_id=job_id, task_id=task_id, terminal=_TERMINAL
        )
