"""Local text-to-image and text-to-video with Hugging Face diffusers, C2PA-signed.

Unlike the API services, nobody else signs what a local model makes, and validators only accept
media carrying a verifiable C2PA manifest. So this service signs every output with the operator's
certificate (``gascli generator init-c2pa`` makes a development one) and reports itself unavailable
while no certificate is configured.

Model sources, per modality (``diffusers_image_model`` / ``diffusers_video_model``):

* ``builtin:tiny``: random-weight pipelines built in code (Stable Diffusion for images, AnimateDiff
  for video). No download, deterministic for a seed, output is noise: a demo and test model.
* a local directory holding a diffusers pipeline (``save_pretrained`` layout), loaded offline.
* a Hugging Face hub id, downloaded by ``from_pretrained`` on first use (production only).

Pipelines load lazily on first use, in a worker thread, under one lock per pipeline; inference
runs in the same thread under the same lock. The engine cancels a task on timeout, and a thread
cannot be killed, so a cancelled run is stopped at the next denoising step by a step callback.

Importing this module does not import torch or diffusers.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import inspect
import io
import logging
import math
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from gas.generation.services.base import (
    CheckpointFn,
    GenerationFailed,
    GenerationRequest,
    GenerationResult,
    InvalidParameters,
    ServiceUnavailable,
)

log = logging.getLogger(__name__)

BUILTIN_TINY = "builtin:tiny"
TASKS = {"image": "text_to_image", "video": "text_to_video"}
MIME = {"image": "image/png", "video": "video/mp4"}
INIT_C2PA_HINT = "run `gascli generator init-c2pa` to create a development certificate"

_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
_HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_SIZE_RE = re.compile(r"^\s*(\d{1,5})\s*[xX×*]\s*(\d{1,5})\s*$")
_TIER_P_RE = re.compile(r"^\s*(\d{3,4})\s*[pP]\s*$")
_TIER_K_RE = re.compile(r"^\s*([1248])\s*[kK]\s*$")
_DTYPES = {
    "float16": "float16", "fp16": "float16", "half": "float16",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "float32": "float32", "fp32": "float32", "float": "float32",
}
_DIVISIBLE_RE = re.compile(r"divisible by (\d+)")
_RATIO_RE = re.compile(r"^\s*(\d{1,3}(?:\.\d+)?)\s*[:/xX]\s*(\d{1,3}(?:\.\d+)?)\s*$")


class MediaSignerLike(Protocol):
    """What this service needs from :class:`gas.generation.c2pa_sign.MediaSigner`."""

    def sign(
        self, data: bytes, mime: str, *, claim_generator: str, model_name: str, prompt: str | None = None
    ) -> bytes: ...


@dataclass(frozen=True)
class ModelLimits:
    """Defaults and bounds for one pipeline. ``None`` defaults mean 'the pipeline's own default'."""

    width: int | None = None
    height: int | None = None
    steps: int | None = None
    num_frames: int | None = None
    fps: int = 8
    min_side: int = 64
    max_side: int = 2048
    max_steps: int = 200
    max_frames: int = 257
    max_guidance: float = 50.0
    max_prompt_chars: int = 4000


#: builtin:tiny is a CPU demo: small sizes keep it at a few seconds per request even for "1K" tiers.
TINY_IMAGE_LIMITS = ModelLimits(width=64, height=64, steps=4, max_side=128)
TINY_VIDEO_LIMITS = ModelLimits(width=64, height=64, steps=2, num_frames=8, max_side=128, max_frames=32)
HUB_LIMITS = ModelLimits()


@dataclass(frozen=True)
class Job:
    """One validated request, ready for the pipeline."""

    modality: str
    prompt: str
    seed: int
    width: int | None
    height: int | None
    steps: int | None
    guidance: float | None
    negative_prompt: str | None
    num_frames: int | None = None
    fps: int | None = None


# --------------------------------------------------------------------------------------------
# parameters
# --------------------------------------------------------------------------------------------
def seed_for_task(task_id: str) -> int:
    """Default seed: a hash of the task id, so a retried or resumed task draws the same image."""
    return int.from_bytes(hashlib.sha256(task_id.encode("utf-8")).digest()[:4], "big") & 0x7FFFFFFF


def _round_to(v: float, n: int) -> int:
    """Nearest multiple of ``n`` (halves round up), at least ``n``."""
    return max(n, int(math.floor(v / n + 0.5)) * n)


def _round8(v: float) -> int:
    """Nearest multiple of 8: latent sizes must divide evenly (8 suits SD, SDXL, AnimateDiff, CogVideoX)."""
    return _round_to(v, 8)


def _as_int(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool):
        raise InvalidParameters(f"{name} must be an integer, not a boolean")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    if not isinstance(value, int):
        raise InvalidParameters(f"{name} must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise InvalidParameters(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def _as_float(name: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool):
        raise InvalidParameters(f"{name} must be a number, not a boolean")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise InvalidParameters(f"{name} must be a number, got {value!r}") from None
    if not isinstance(value, int | float) or value != value:  # NaN
        raise InvalidParameters(f"{name} must be a number, got {value!r}")
    if not lo <= float(value) <= hi:
        raise InvalidParameters(f"{name} must be between {lo:g} and {hi:g}, got {value}")
    return float(value)


def _aspect(value: Any, modality: str) -> float:
    """Width / height from ``aspect_ratio`` ("16:9"); video defaults to landscape 16:9, images to 1:1."""
    if value is None:
        return 16 / 9 if modality == "video" else 1.0
    m = _RATIO_RE.match(str(value))
    if not m or float(m.group(1)) <= 0 or float(m.group(2)) <= 0:
        raise InvalidParameters(f"aspect_ratio must look like '16:9', got {value!r}")
    ratio = float(m.group(1)) / float(m.group(2))
    if not 0.2 <= ratio <= 5.0:
        raise InvalidParameters(f"aspect_ratio {value!r} is outside 1:5 .. 5:1")
    return ratio


def parse_resolution(value: Any, modality: str, limits: ModelLimits, aspect: Any = None) -> tuple[int, int]:
    """(width, height) for a ``resolution`` string: "WxH", a video tier ("480p", "720p", "1080p") or an
    image tier ("1K", "2K", "4K"; the short side). Validators send tiers; a tier larger than the model's
    ``max_side`` is scaled down to fit (keeping the aspect ratio) rather than failing the task.
    """
    text = str(value)
    if m := _SIZE_RE.match(text):
        w, h = float(m.group(1)), float(m.group(2))
        if aspect is not None:
            raise InvalidParameters("give aspect_ratio only with a tier resolution such as '720p', not with 'WxH'")
    else:
        if m := _TIER_P_RE.match(text):
            short = float(m.group(1))
        elif m := _TIER_K_RE.match(text):
            k = int(m.group(1))
            short = {1: 1024.0, 2: 2048.0, 4: 4096.0, 8: 8192.0}[k] if modality == "image" else 540.0 * k
        else:
            raise InvalidParameters(
                f"resolution must be 'WxH' (e.g. '512x512'), a video tier ('480p', '720p', '1080p') or an "
                f"image tier ('1K', '2K', '4K'); got {value!r}"
            )
        ratio = _aspect(aspect, modality)
        w, h = (short * ratio, short) if ratio >= 1 else (short, short / ratio)
    if min(w, h) <= 0:
        raise InvalidParameters(f"resolution {value!r} has a zero side")
    scale = min(1.0, limits.max_side / max(w, h))
    w, h = w * scale, h * scale
    if min(w, h) < limits.min_side:
        raise InvalidParameters(f"resolution {value!r} gives a side under {limits.min_side} px")
    return min(_round8(w), limits.max_side // 8 * 8), min(_round8(h), limits.max_side // 8 * 8)


def parse_parameters(request: GenerationRequest, limits: ModelLimits) -> Job:
    """Validate ``request.parameters`` for a diffusers pipeline. Unknown keys are ignored (validators and
    API-oriented clients send keys such as ``model`` or ``generate_audio`` that mean nothing here).
    Raises :class:`InvalidParameters` with the offending key named.
    """
    p: Mapping[str, Any] = request.parameters or {}
    if not isinstance(p, Mapping):
        raise InvalidParameters("parameters must be a JSON object")
    prompt = request.prompt
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidParameters("prompt must be a non-empty string")
    if len(prompt) > limits.max_prompt_chars:
        raise InvalidParameters(f"prompt is longer than {limits.max_prompt_chars} characters")

    def get(*names: str) -> Any:
        for n in names:
            if p.get(n) is not None:
                return p[n]
        return None

    seed_v = get("seed")
    seed = seed_for_task(request.task_id) if seed_v is None else _as_int("seed", seed_v, 0, 2**32 - 1)

    width, height = limits.width, limits.height
    w_v, h_v, res_v = get("width"), get("height"), get("resolution", "size")
    if res_v is not None and (w_v is not None or h_v is not None):
        raise InvalidParameters("give either resolution or width/height, not both")
    if res_v is not None:
        width, height = parse_resolution(res_v, request.modality, limits, get("aspect_ratio", "ratio"))
    else:
        if w_v is not None:
            width = _round8(_as_int("width", w_v, limits.min_side, limits.max_side))
        if h_v is not None:
            height = _round8(_as_int("height", h_v, limits.min_side, limits.max_side))

    steps_v = get("steps", "num_inference_steps")
    steps = limits.steps if steps_v is None else _as_int("steps", steps_v, 1, limits.max_steps)
    g_v = get("guidance", "guidance_scale", "cfg_scale")
    guidance = None if g_v is None else _as_float("guidance", g_v, 0.0, limits.max_guidance)
    neg = get("negative_prompt")
    if neg is not None and (not isinstance(neg, str) or len(neg) > limits.max_prompt_chars):
        raise InvalidParameters(f"negative_prompt must be a string of at most {limits.max_prompt_chars} characters")

    job = Job(request.modality, prompt, seed, width, height, steps, guidance, neg or None)
    if request.modality != "video":
        return job
    fps_v = get("fps", "frame_rate")
    fps = limits.fps if fps_v is None else _as_int("fps", fps_v, 1, 120)
    frames_v, dur_v = get("num_frames", "frames"), get("duration", "seconds")
    frames = limits.num_frames
    if frames_v is not None:
        frames = _as_int("num_frames", frames_v, 1, limits.max_frames)
    elif dur_v is not None:
        seconds = _as_float("duration", dur_v, 0.01, 3600.0)
        frames = max(1, round(seconds * fps))
        if frames > limits.max_frames:
            raise InvalidParameters(
                f"duration {seconds:g} s at {fps} fps needs {frames} frames; this model makes at most "
                f"{limits.max_frames}"
            )
    return replace(job, num_frames=frames, fps=fps)


# --------------------------------------------------------------------------------------------
# model sources
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelSource:
    kind: str  # "builtin" | "local" | "hub"
    spec: str  # as configured
    path: Path | None = None

    @property
    def display_name(self) -> str:
        """The name in metadata and the C2PA manifest: never a full local path."""
        if self.kind == "local" and self.path is not None:
            return self.path.name
        return self.spec


def resolve_source(spec: str) -> ModelSource:
    """Classify a configured model string. Raises ValueError with a readable reason."""
    s = (spec or "").strip()
    if not s:
        raise ValueError("no model configured")
    if s.lower() == BUILTIN_TINY:
        return ModelSource("builtin", BUILTIN_TINY)
    if s.lower().startswith("builtin:"):
        raise ValueError(f"unknown builtin model {s!r} (only {BUILTIN_TINY} exists)")
    path = Path(s).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise ValueError(f"{path} has no model_index.json (not a diffusers pipeline directory)")
        return ModelSource("local", s, path.resolve())
    if s.startswith(("/", ".", "~")) or path.exists():
        raise ValueError(f"model directory {path} does not exist")
    if not _HUB_ID_RE.match(s):
        raise ValueError(f"{s!r} is neither a local directory nor a hub id like 'org/name'")
    return ModelSource("hub", s)


def build_tiny_video_pipeline(seed: int = 0):
    """A random-weight AnimateDiff pipeline (tiny SD UNet + tiny motion adapter, about 2.8M parameters),
    built in code from the same parts as :func:`gas.bench.synth.build_tiny_pipeline`."""
    import torch

    from gas.bench.synth import _offline_hub, build_tiny_pipeline

    base = build_tiny_pipeline(seed)
    with _offline_hub():
        from diffusers import AnimateDiffPipeline, MotionAdapter
        from diffusers.utils import logging as df_logging

        old = df_logging.get_verbosity()
        df_logging.set_verbosity_error()
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed + 1)
                adapter = MotionAdapter(
                    block_out_channels=(32, 64),
                    motion_layers_per_block=2,
                    motion_norm_num_groups=2,
                    motion_num_attention_heads=4,
                    motion_max_seq_length=32,
                )
            pipe = AnimateDiffPipeline(
                vae=base.vae,
                text_encoder=base.text_encoder,
                tokenizer=base.tokenizer,
                unet=base.unet,
                motion_adapter=adapter,
                scheduler=base.scheduler,
            )
        finally:
            df_logging.set_verbosity(old)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _builtin_pipeline(modality: str):
    from gas.bench.synth import build_tiny_pipeline

    return build_tiny_pipeline(0) if modality == "image" else build_tiny_video_pipeline(0)


def resolve_device(spec: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``. Raises ServiceUnavailable for a GPU
    that is not there."""
    import torch

    spec = spec.strip().lower()
    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ServiceUnavailable(f"diffusers_device={spec} but torch sees no CUDA GPU")
        index = int(spec.split(":")[1]) if ":" in spec else 0
        if index >= torch.cuda.device_count():
            raise ServiceUnavailable(f"diffusers_device={spec} but only {torch.cuda.device_count()} GPU(s) exist")
    if spec == "mps" and not torch.backends.mps.is_available():
        raise ServiceUnavailable("diffusers_device=mps but MPS is not available")
    return spec


# --------------------------------------------------------------------------------------------
# encoding
# --------------------------------------------------------------------------------------------
def _to_uint8(a: Any):
    import numpy as np

    if hasattr(a, "detach"):  # torch tensor
        a = a.detach().float().cpu().numpy()
    if not isinstance(a, np.ndarray):  # PIL image
        return np.asarray(a.convert("RGB"), dtype=np.uint8)
    if a.dtype == np.uint8:
        return a
    return (np.clip(a.astype(np.float32), 0.0, 1.0) * 255.0).round().astype(np.uint8)


def _hwc(a):
    """An HxWx3 uint8 frame from HWC or CHW, gray or RGBA."""
    import numpy as np

    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[-1] not in (1, 3, 4):
        a = a.transpose(1, 2, 0)
    if a.ndim == 2:
        a = a[..., None]
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    return np.ascontiguousarray(a[..., :3])


def image_from_output(out: Any):
    images = out.images if hasattr(out, "images") else out[0]
    first = images[0]
    return _hwc(_to_uint8(first))


def frames_from_output(out: Any) -> list:
    frames = out.frames if hasattr(out, "frames") else out[0]
    video = frames[0]  # first (only) video of the batch
    if hasattr(video, "detach") or hasattr(video, "ndim"):
        arr = _to_uint8(video)
        if arr.ndim == 4 and arr.shape[-1] not in (1, 3, 4) and arr.shape[1] in (1, 3, 4):
            arr = arr.transpose(0, 2, 3, 1)  # F, C, H, W -> F, H, W, C
        return [_hwc(f) for f in arr]
    return [_hwc(_to_uint8(f)) for f in video]


def encode_png(rgb) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, "PNG", compress_level=6)
    return buf.getvalue()


def encode_mp4(frames: Sequence[Any], fps: int, *, crf: int = 18, preset: str = "medium") -> bytes:
    """H.264 (libx264, yuv420p) in MP4, what every validator's decoder reads."""
    import av

    h, w = frames[0].shape[:2]
    h2, w2 = h - h % 2, w - w % 2  # yuv420p needs even sides
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w2, h2, "yuv420p"
        stream.options = {"crf": str(crf), "preset": preset}
        for f in frames:
            frame = av.VideoFrame.from_ndarray(f[:h2, :w2], format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# the service
# --------------------------------------------------------------------------------------------
class _Cancelled(Exception):
    """Raised inside the pipeline's step callback to abandon a cancelled run."""


class _CancelledRun(GenerationFailed):
    """A run stopped because its task was cancelled (the awaiting coroutine is already gone)."""

    def __init__(self) -> None:
        super().__init__("generation cancelled")


@dataclass
class _Slot:
    """One pipeline: where it comes from, its lock, and (once loaded) the pipeline itself."""

    modality: str
    spec: str
    source: ModelSource | None
    error: str | None  # configuration problem found without loading anything
    limits: ModelLimits
    lock: threading.Lock = field(default_factory=threading.Lock)
    pipe: Any = None
    load_seconds: float | None = None
    load_error: str | None = None  # permanent failure of the last load (device, broken directory)
    runs: int = 0

    @property
    def model_name(self) -> str:
        if self.source is None:
            return self.spec
        if self.source.kind == "builtin":
            return "builtin:tiny-sd" if self.modality == "image" else "builtin:tiny-animatediff"
        return self.source.display_name


class DiffusersService:
    """Text-to-image and text-to-video on the miner's own GPU (or CPU), output C2PA-signed."""

    name = "diffusers"

    def __init__(
        self,
        *,
        image_model: str = BUILTIN_TINY,
        video_model: str = BUILTIN_TINY,
        device: str = "auto",
        modalities: Sequence[str] = ("image", "video"),
        signer: MediaSignerLike | None = None,
        cert_path: Path | None = None,
        key_path: Path | None = None,
        dtype: str | None = None,
        image_limits: ModelLimits | None = None,
        video_limits: ModelLimits | None = None,
        video_crf: int = 18,
        video_preset: str = "medium",
    ) -> None:
        self.modalities = frozenset(m for m in modalities if m in TASKS)
        if not self.modalities:
            raise ValueError(f"DiffusersService needs at least one of {sorted(TASKS)}, got {list(modalities)}")
        self._device_spec = device.strip().lower()
        self._device: str | None = None
        self._dtype_name = _DTYPES.get((dtype or "").strip().lower(), "?") if dtype else None
        self._dtype_given = dtype
        self._signer = signer
        self._cert_path = cert_path
        self._key_path = key_path
        self._signer_lock = threading.Lock()
        self._video_crf, self._video_preset = video_crf, video_preset
        self._closed = False
        self._active: set[threading.Event] = set()
        self._active_lock = threading.Lock()
        self._slots: dict[str, _Slot] = {}
        for modality, spec, custom in (("image", image_model, image_limits), ("video", video_model, video_limits)):
            if modality not in self.modalities:
                continue
            try:
                source, error = resolve_source(spec), None
            except ValueError as e:
                source, error = None, f"{modality} model: {e}"
            if custom is not None:
                limits = custom
            elif source is not None and source.kind == "builtin":
                limits = TINY_IMAGE_LIMITS if modality == "image" else TINY_VIDEO_LIMITS
            else:
                limits = HUB_LIMITS
            self._slots[modality] = _Slot(modality, spec, source, error, limits)

    @classmethod
    def from_settings(
        cls, settings: Any, *, signer: MediaSignerLike | None = None, modalities: Sequence[str] = ("image", "video")
    ) -> DiffusersService:
        """Build from :class:`gas.config.GeneratorSettings`; cheap (loads nothing)."""
        return cls(
            image_model=settings.diffusers_image_model,
            video_model=settings.diffusers_video_model,
            device=settings.diffusers_device,
            modalities=modalities,
            signer=signer,
            cert_path=settings.c2pa_cert_path,
            key_path=settings.c2pa_key_path,
            dtype=settings.diffusers_dtype,
        )

    # ---- availability ------------------------------------------------------------------------
    def _signer_or_reason(self) -> tuple[MediaSignerLike | None, str | None]:
        """The C2PA signer, loaded once from the certificate files; or why there is none."""
        with self._signer_lock:
            if self._signer is not None:
                return self._signer, None
            cert, key = self._cert_path, self._key_path
            if cert is None or key is None:
                return None, f"no C2PA certificate configured; {INIT_C2PA_HINT}"
            missing = [str(p) for p in (cert, key) if not Path(p).is_file()]
            if missing:
                return None, f"C2PA certificate/key not found ({', '.join(missing)}); {INIT_C2PA_HINT}"
            try:
                from gas.generation.c2pa_sign import MediaSigner
            except ImportError as e:
                return None, f"C2PA signing is not available: {e}"
            try:
                self._signer = MediaSigner.from_files(Path(cert), Path(key))
            except Exception as e:  # C2paSigningError and anything the c2pa library raises
                return None, f"C2PA signer could not be loaded from {cert}: {e}"
            return self._signer, None

    def unavailable_reason(self) -> str | None:
        if self._closed:
            return "service is shut down"
        if not _DEVICE_RE.match(self._device_spec):
            return f"diffusers_device={self._device_spec!r} is not auto, cpu, mps or cuda[:N]"
        if self._dtype_name == "?":
            return f"dtype {self._dtype_given!r} is not one of {', '.join(sorted(set(_DTYPES.values())))}"
        for mod in ("torch", "diffusers", "transformers", "av"):
            if importlib.util.find_spec(mod) is None:
                return f"python package {mod!r} is not installed (pip install diffusers transformers av)"
        problems = [s.error or f"{s.modality} model: {s.load_error}" for s in self._slots.values()
                    if s.error or s.load_error]
        if problems:
            return "; ".join(problems)
        return self._signer_or_reason()[1]

    def info(self) -> dict[str, Any]:
        """Availability, tasks and models (same keys as the API services), plus per-pipeline state."""
        reason = self.unavailable_reason()
        order = [m for m in ("image", "video") if m in self._slots]
        pipelines = {
            m: {
                "model": self._slots[m].model_name,
                "source": self._slots[m].source.kind if self._slots[m].source else None,
                "loaded": self._slots[m].pipe is not None,
                "load_seconds": None if self._slots[m].load_seconds is None else round(self._slots[m].load_seconds, 3),
                "runs": self._slots[m].runs,
            }
            for m in order
        }
        return {
            "name": self.name,
            "available": reason is None,
            "reason": reason,
            "supported_tasks": [TASKS[m] for m in order],
            "modalities": order,
            "models": {m: [self._slots[m].model_name] for m in order},
            "default_models": {m: self._slots[m].model_name for m in order},
            "device": self._device or self._device_spec,
            "pipelines": pipelines,
        }

    # ---- generation ---------------------------------------------------------------------------
    async def generate(self, request: GenerationRequest, checkpoint: CheckpointFn) -> GenerationResult:
        """Validate, then load (first time) and run the pipeline in a worker thread, encode, sign."""
        if request.modality not in self._slots:
            raise InvalidParameters(f"the diffusers service here does not make {request.modality!r}")
        slot = self._slots[request.modality]
        reason = self.unavailable_reason()
        if reason:
            raise ServiceUnavailable(f"diffusers: {reason}")
        job = parse_parameters(request, slot.limits)
        signer, reason = self._signer_or_reason()
        if signer is None:
            raise ServiceUnavailable(f"diffusers: {reason}")
        cancel = threading.Event()
        with self._active_lock:
            self._active.add(cancel)
        try:
            return await asyncio.to_thread(self._run, slot, job, signer, cancel, request.task_id)
        except asyncio.CancelledError:
            cancel.set()  # the thread stops at its next step; the pipeline lock stays consistent
            log.info("diffusers task %s cancelled; stopping its %s run", request.task_id, job.modality)
            raise
        finally:
            with self._active_lock:
                self._active.discard(cancel)

    def _run(
        self, slot: _Slot, job: Job, signer: MediaSignerLike, cancel: threading.Event, task_id: str
    ) -> GenerationResult:
        """Worker thread: everything that blocks."""
        while not slot.lock.acquire(timeout=0.05):
            if cancel.is_set():
                raise _CancelledRun()
        try:
            if cancel.is_set() or self._closed:
                raise _CancelledRun()
            pipe = self._ensure_loaded(slot, task_id)
            t0 = time.perf_counter()
            media, meta = self._infer(pipe, slot, job, cancel)
            slot.runs += 1
            infer_s = time.perf_counter() - t0
        finally:
            slot.lock.release()
        t1 = time.perf_counter()
        if job.modality == "image":
            data = encode_png(media)
        else:
            data = encode_mp4(media, job.fps or 8, crf=self._video_crf, preset=self._video_preset)
        encode_s = time.perf_counter() - t1
        if cancel.is_set():
            raise _CancelledRun()
        mime = MIME[job.modality]
        try:
            signed = signer.sign(
                data, mime, claim_generator=_claim_generator(), model_name=slot.model_name, prompt=job.prompt
            )
        except Exception as e:
            raise GenerationFailed(f"C2PA signing failed: {e}") from e
        log.info(
            "diffusers task %s: %s %sx%s%s in %.2f s (+%.2f s encode), %d bytes signed",
            task_id, job.modality, meta["width"], meta["height"],
            f"x{meta['frames']}" if "frames" in meta else "", infer_s, encode_s, len(signed),
        )
        return GenerationResult(data=signed, mime=mime, metadata=meta)

    def _ensure_loaded(self, slot: _Slot, task_id: str) -> Any:
        """Load the slot's pipeline (caller holds the slot lock)."""
        if slot.pipe is not None:
            return slot.pipe
        assert slot.source is not None  # unavailable_reason() rejected a bad spec before
        t0 = time.perf_counter()
        try:
            device = self._device or resolve_device(self._device_spec)
        except ServiceUnavailable as e:
            slot.load_error = str(e)
            raise
        try:
            pipe = self._load(slot, device)
        except ServiceUnavailable:
            raise
        except Exception as e:
            msg = f"could not load {slot.modality} model {slot.model_name!r}: {type(e).__name__}: {e}"
            if slot.source.kind == "local":
                slot.load_error = msg  # a broken directory will not fix itself; a hub download might
            raise ServiceUnavailable(msg) from e
        self._device = device
        slot.pipe, slot.load_seconds, slot.load_error = pipe, time.perf_counter() - t0, None
        log.info(
            "diffusers loaded %s model %s on %s in %.2f s (task %s)",
            slot.modality, slot.model_name, device, slot.load_seconds, task_id,
        )
        return pipe

    def _load(self, slot: _Slot, device: str) -> Any:
        import torch

        dtype = torch.float32
        if self._dtype_name:
            dtype = getattr(torch, self._dtype_name)
        elif device.startswith("cuda"):
            dtype = torch.float16
        source = slot.source
        assert source is not None
        if source.kind == "builtin":
            pipe = _builtin_pipeline(slot.modality)
            return pipe.to(device, dtype) if (device != "cpu" or dtype != torch.float32) else pipe
        from diffusers import DiffusionPipeline

        dtype_kw = {_dtype_keyword(): dtype}
        _quiet_progress_bars()
        if source.kind == "local":
            from gas.bench.synth import _offline_hub

            with _offline_hub():
                pipe = DiffusionPipeline.from_pretrained(str(source.path), local_files_only=True, **dtype_kw)
        else:
            pipe = DiffusionPipeline.from_pretrained(source.spec, **dtype_kw)
        pipe = pipe.to(device)
        if hasattr(pipe, "set_progress_bar_config"):
            pipe.set_progress_bar_config(disable=True)
        return pipe

    def _infer(self, pipe: Any, slot: _Slot, job: Job, cancel: threading.Event) -> tuple[Any, dict[str, Any]]:
        import torch

        params = inspect.signature(pipe.__call__).parameters

        def default(name: str) -> Any:
            p = params.get(name)
            return None if p is None or p.default is inspect.Parameter.empty else p.default

        kwargs: dict[str, Any] = {
            "prompt": job.prompt,
            "generator": torch.Generator("cpu").manual_seed(job.seed),
            "output_type": "np",
        }
        wanted = {
            "height": job.height,
            "width": job.width,
            "num_inference_steps": job.steps,
            "guidance_scale": job.guidance,
            "negative_prompt": job.negative_prompt,
        }
        if job.modality == "video":
            wanted["num_frames"] = job.num_frames
        for key, value in wanted.items():
            if value is None:
                continue
            if key not in params:
                raise InvalidParameters(f"model {slot.model_name} does not take {key}")
            kwargs[key] = value

        def on_step_end(_pipe: Any, _step: int, _timestep: Any, callback_kwargs: dict[str, Any]) -> dict[str, Any]:
            if cancel.is_set():
                raise _Cancelled()
            return callback_kwargs

        def on_step_legacy(_step: int, _timestep: Any, _latents: Any) -> None:
            if cancel.is_set():
                raise _Cancelled()

        if "callback_on_step_end" in params:
            kwargs["callback_on_step_end"] = on_step_end
        elif "callback" in params:
            kwargs["callback"], kwargs["callback_steps"] = on_step_legacy, 1
        try:
            out = self._call(pipe, kwargs)
        except _Cancelled:
            raise _CancelledRun() from None
        except ValueError as e:  # pipelines' check_inputs: sizes not divisible, frames too many...
            raise InvalidParameters(f"{slot.model_name} rejected the request: {e}") from e
        except Exception as e:
            if type(e).__name__ == "OutOfMemoryError":
                raise GenerationFailed(
                    f"out of GPU memory for {job.width}x{job.height}"
                    f"{'x' + str(job.num_frames) if job.num_frames else ''}; ask for a smaller resolution"
                ) from e
            raise GenerationFailed(f"{slot.model_name} failed: {type(e).__name__}: {e}") from e

        steps = kwargs.get("num_inference_steps", default("num_inference_steps"))
        guidance = kwargs.get("guidance_scale", default("guidance_scale"))
        meta: dict[str, Any] = {"model": slot.model_name, "provider": self.name, "seed": job.seed}
        if job.modality == "image":
            media = image_from_output(out)
            h, w = media.shape[:2]
        else:
            media = frames_from_output(out)
            h, w = media[0].shape[:2]
            meta["frames"] = len(media)
            meta["fps"] = job.fps or 8
        meta.update(width=int(w), height=int(h))
        if steps is not None:
            meta["steps"] = int(steps)
        if isinstance(guidance, int | float):
            meta["guidance"] = float(guidance)
        meta["device"] = self._device or "cpu"
        return media, meta

    @staticmethod
    def _call(pipe: Any, kwargs: dict[str, Any]) -> Any:
        """Run the pipeline. Sizes are multiples of 8; a model that needs 16 or 32 (Wan, LTX-Video) says
        "divisible by N" in its ValueError, and gets one retry with sizes rounded to N."""
        import torch

        try:
            with torch.inference_mode():
                return pipe(**kwargs)
        except ValueError as e:
            m = _DIVISIBLE_RE.search(str(e))
            if not m or "height" not in kwargs or "width" not in kwargs:
                raise
            n = int(m.group(1))
            if n <= 8 or n > 256:
                raise
            kwargs = {**kwargs, "height": _round_to(kwargs["height"], n), "width": _round_to(kwargs["width"], n)}
            log.info("diffusers: model wants sizes divisible by %d; using %dx%d", n, kwargs["width"], kwargs["height"])
            with torch.inference_mode():
                return pipe(**kwargs)

    async def aclose(self) -> None:
        """Stop running work at its next step and drop the pipelines (frees GPU memory)."""
        self._closed = True
        with self._active_lock:
            for ev in self._active:
                ev.set()
        await asyncio.to_thread(self._unload_all)

    def _unload_all(self, timeout: float = 60.0) -> None:
        freed = False
        for slot in self._slots.values():
            if not slot.lock.acquire(timeout=timeout):
                log.warning("diffusers: %s pipeline still busy after %.0f s; not unloading it", slot.modality, timeout)
                continue
            try:
                freed |= slot.pipe is not None
                slot.pipe = None
            finally:
                slot.lock.release()
        if freed and (self._device or "").startswith("cuda"):
            import torch

            torch.cuda.empty_cache()


def _quiet_progress_bars() -> None:
    """tqdm bars from loading are noise in a daemon's log (hub download progress is left alone)."""
    try:
        from diffusers.utils import logging as df_logging
        from transformers.utils import logging as tf_logging

        df_logging.disable_progress_bar()
        tf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - transformers-free pipelines
        pass


def _dtype_keyword() -> str:
    """diffusers 0.42 renamed from_pretrained's ``torch_dtype`` to ``dtype`` (the old name warns)."""
    try:
        from diffusers.utils.deprecation_utils import _resolve_dtype  # noqa: F401
    except ImportError:
        return "torch_dtype"
    return "dtype"


def _claim_generator() -> str:
    from gas import __version__

    try:
        import diffusers

        return f"gas-node/{__version__} diffusers/{diffusers.__version__}"
    except ImportError:  # pragma: no cover - diffusers is loaded by the time anything is signed
        return f"gas-node/{__version__}"


__all__ = [
    "BUILTIN_TINY",
    "DiffusersService",
    "Job",
    "MediaSignerLike",
    "ModelLimits",
    "ModelSource",
    "build_tiny_video_pipeline",
    "encode_mp4",
    "encode_png",
    "parse_parameters",
    "parse_resolution",
    "resolve_source",
    "seed_for_task",
]
