"""A generation service behind the real ``GenerationService`` interface, steered by the prompt.

The seam under test is the engine, so the service is fake; its output is a real PNG whose pixels
derive from the prompt (deterministic, so a test can recompute the exact bytes). Prompt words:

- ``fail``  -> raises GenerationFailed("provider refused: <prompt>")
- ``crash`` -> raises RuntimeError (an unexpected error)
- ``hang``  -> never returns (timeout tests)
- ``nocp``  -> never reports a checkpoint
- otherwise: reports ``{"job": "job-<task_id>", "step": 1}`` (unless resumed), waits ``delay``, returns.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from typing import Any

from gas.generation.services.base import GenerationFailed, GenerationRequest, GenerationResult


def fake_png(prompt: str, size: int = 16) -> bytes:
    """A real PNG image determined by ``prompt``."""
    from PIL import Image

    seed = hashlib.sha256(prompt.encode()).digest()
    pixels = bytes(seed[(i * 3 + c) % len(seed)] ^ (i & 0xFF) for i in range(size * size) for c in range(3))
    buf = io.BytesIO()
    Image.frombytes("RGB", (size, size), pixels).save(buf, format="PNG")
    return buf.getvalue()


class FakeService:
    def __init__(self, delay: float = 0.0, *, name: str = "fake", unavailable: str | None = None,
                 modalities: frozenset[str] = frozenset({"image", "video"})) -> None:
        self.name = name
        self.modalities = modalities
        self.delay = delay
        self.unavailable = unavailable
        self.active = 0
        self.peak = 0
        self.calls: list[GenerationRequest] = []
        self.cancelled: list[str] = []

    def unavailable_reason(self) -> str | None:
        return self.unavailable

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "available": self.unavailable is None, "reason": self.unavailable,
                "supported_tasks": sorted(self.modalities), "models": ["fake-1"]}

    async def generate(self, request: GenerationRequest, checkpoint) -> GenerationResult:
        self.calls.append(request)
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            prompt = request.prompt
            if "fail" in prompt:
                raise GenerationFailed(f"provider refused: {prompt}")
            if "crash" in prompt:
                raise RuntimeError("boom")
            if "nocp" not in prompt and request.checkpoint is None:
                await checkpoint({"job": f"job-{request.task_id}", "step": 1})
            await asyncio.sleep(3600 if "hang" in prompt else self.delay)
            return GenerationResult(
                data=fake_png(prompt),
                mime="image/png",
                metadata={"model": "fake-1", "resumed": request.checkpoint is not None,
                          "job_id": (request.checkpoint or {}).get("job", "")},
            )
        except asyncio.CancelledError:
            self.cancelled.append(request.task_id)
            raise
        finally:
            self.active -= 1

    async def aclose(self) -> None:
        pass


class FakeServices:
    """The ``for_modality`` part of the registry's ServiceSet."""

    def __init__(self, service: Any | None) -> None:
        self.service = service

    def for_modality(self, modality: str) -> Any | None:
        if self.service is None or modality not in self.service.modalities:
            return None
        return self.service
