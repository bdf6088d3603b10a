"""Small value types shared across the library."""

from __future__ import annotations

from enum import Enum


class Modality(str, Enum):
    """What a detector looks at. Each modality is scored, and won, on its own."""

    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"


class MediaLabel(str, Enum):
    """Ground truth of a sample. Semisynthetic counts as synthetic in every binary metric."""

    REAL = "real"
    SYNTHETIC = "synthetic"
    SEMISYNTHETIC = "semisynthetic"

    @property
    def binary(self) -> int:
        """0 for real, 1 for synthetic or semisynthetic (the positive class)."""
        return 0 if self is MediaLabel.REAL else 1
