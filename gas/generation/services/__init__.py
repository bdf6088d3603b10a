"""Generation services (local diffusers, OpenAI, OpenRouter, Stability AI, Runway) and their registry.

Importing this package is cheap: service modules (and torch, diffusers, httpx) load when named.
"""

from gas.generation.services.base import (
    MODALITIES,
    CheckpointFn,
    GenerationFailed,
    GenerationRequest,
    GenerationResult,
    GenerationService,
    InvalidParameters,
    ServiceError,
    ServiceUnavailable,
)
from gas.generation.services.registry import (
    SERVICE_CLASSES,
    ServiceConfigError,
    ServiceSet,
    UnavailableService,
    build_services,
)

__all__ = [
    "MODALITIES",
    "SERVICE_CLASSES",
    "CheckpointFn",
    "GenerationFailed",
    "GenerationRequest",
    "GenerationResult",
    "GenerationService",
    "InvalidParameters",
    "ServiceConfigError",
    "ServiceError",
    "ServiceSet",
    "ServiceUnavailable",
    "UnavailableService",
    "build_services",
]
