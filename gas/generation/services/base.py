"""The one interface every generation service implements (local diffusers, OpenAI, OpenRouter, ...).

A service turns a prompt into media bytes. It never re-encodes what a provider returns, so any
C2PA manifest the provider embedded survives byte for byte. Long provider jobs report a checkpoint
(a small JSON-able dict, e.g. the provider's job id) through ``checkpoint``; the task engine stores
it durably, and after a restart passes it back in ``GenerationRequest.checkpoint`` so the service
resumes polling the same job instead of paying for a new one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

MODALITIES = ("image", "video")

#: Called with the service's resume state (JSON-able dict) or None to clear it. Awaited: when it
#: returns, the checkpoint is durable.
CheckpointFn = Callable[[dict[str, Any] | None], Awaitable[None]]


class ServiceError(Exception):
    """Base class for generation failures. The message is sent to the validator in the failure webhook."""


class ServiceUnavailable(ServiceError):
    """The service cannot run at all (missing API key, missing certificate, model not loadable)."""


class GenerationFailed(ServiceError):
    """This request failed: the provider refused or errored, the job failed, or the output is unusable."""


class InvalidParameters(GenerationFailed):
    """The request's parameters make no sense for this service (unknown model, bad size)."""


@dataclass(frozen=True)
class GenerationRequest:
    task_id: str
    modality: str  # "image" | "video"
    prompt: str
    parameters: Mapping[str, Any] = field(default_factory=dict)
    checkpoint: Mapping[str, Any] | None = None  # resume state from an earlier run of this task


@dataclass(frozen=True)
class GenerationResult:
    data: bytes  # the media exactly as produced (or as the provider sent it)
    mime: str | None = None  # when known; the webhook sniffs magic bytes anyway
    metadata: Mapping[str, str | int | float | bool] = field(default_factory=dict)  # model, provider, job_id...


@runtime_checkable
class GenerationService(Protocol):
    name: str  # "diffusers", "openai", "openrouter", "stabilityai", "runway"
    modalities: frozenset[str]  # subset of MODALITIES

    def unavailable_reason(self) -> str | None:
        """None when the service can take work; otherwise why not (shown in /miner_info and gascli)."""

    def info(self) -> dict[str, Any]:
        """JSON-able description for /miner_info: name, available, reason, supported_tasks, models."""

    async def generate(self, request: GenerationRequest, checkpoint: CheckpointFn) -> GenerationResult:
        """Produce media for ``request``. Raises :class:`ServiceError` subclasses on failure.

        Must be cancellable (the engine enforces the task timeout with cancellation); blocking
        work (model inference) runs in a thread.
        """

    async def aclose(self) -> None:
        """Release clients, models and threads."""
