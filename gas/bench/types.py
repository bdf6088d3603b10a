"""Value types the benchmark engine's parts share: a sample, and a preprocessing key."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gas.types import MediaLabel, Modality

AUDIO_SAMPLE_RATE = 16_000
AUDIO_SECONDS = 6.0
AUDIO_SAMPLES = 96_000  # AUDIO_SAMPLE_RATE * AUDIO_SECONDS
PREPROCESS_VERSION = 1  # bump when decode/preprocess output changes: it is part of every cache key


@dataclass(frozen=True)
class Sample:
    """One media file of a local dataset, as its manifest describes it."""

    sample_id: str
    dataset: str
    modality: Modality
    label: MediaLabel
    path: Path  # absolute path of the original bytes (never re-encoded)
    sha256: str
    source: str = ""
    generator_hotkey: str | None = None
    generator_model: str | None = None

    @property
    def y(self) -> int:
        """Binary label: 0 real, 1 synthetic or semisynthetic."""
        return self.label.binary


@dataclass(frozen=True)
class PreprocessKey:
    """Everything that decides the tensor a sample becomes; its ``id`` keys the tensor cache.

    image ``[3,H,W]`` uint8, video ``[T,3,H,W]`` uint8 (``num_frames``, optional ``frame_rate``),
    audio ``[96000]`` float32. ``aug`` names a robustness augmentation and its seed (None = base pass).
    """

    modality: Modality
    height: int = 224
    width: int = 224
    num_frames: int = 16
    frame_rate: float | None = None
    aug: str | None = None

    @property
    def id(self) -> str:
        m = self.modality
        if m is Modality.AUDIO:
            core = f"audio-{AUDIO_SAMPLE_RATE}hz-{AUDIO_SAMPLES}"
        elif m is Modality.IMAGE:
            core = f"image-{self.height}x{self.width}"
        else:
            fr = "native" if self.frame_rate is None else f"{self.frame_rate:g}fps"
            core = f"video-{self.num_frames}f-{fr}-{self.height}x{self.width}"
        return f"{core}-v{PREPROCESS_VERSION}" + (f"-{self.aug}" if self.aug else "")

    @property
    def shape(self) -> tuple[int, ...]:
        if self.modality is Modality.IMAGE:
            return (3, self.height, self.width)
        if self.modality is Modality.VIDEO:
            return (self.num_frames, 3, self.height, self.width)
        return (AUDIO_SAMPLES,)

    @property
    def dtype(self) -> str:
        return "float32" if self.modality is Modality.AUDIO else "uint8"

    @classmethod
    def from_config(cls, cfg, aug: str | None = None) -> PreprocessKey:
        """The key a detector's ``model_config.yaml`` asks for (gas.submissions.config.ModelConfig)."""
        h, w = cfg.preprocessing.resize
        return cls(
            modality=cfg.modality,
            height=int(h),
            width=int(w),
            num_frames=int(cfg.preprocessing.num_frames),
            frame_rate=cfg.preprocessing.frame_rate,
            aug=aug,
        )
