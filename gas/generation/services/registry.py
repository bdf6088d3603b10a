"""Which service makes which modality, from the miner's settings.

``image_service`` / ``video_service`` each name one service (``none`` disables the modality). Naming
the same service for both gives one shared instance, so a local model's GPU memory and an API
client's connection pool exist once. Building the set is cheap: no model loading, no network, no
torch import (``gascli generator info`` builds it just to show availability). Service modules are
imported only when named, so a missing optional module makes that one service unavailable rather
than breaking the miner.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from typing import Any

from gas.generation.services.base import MODALITIES, GenerationRequest, GenerationResult, GenerationService

log = logging.getLogger(__name__)

#: service name -> (module under gas.generation.services, class, modalities it can serve)
SERVICE_CLASSES: dict[str, tuple[str, str, frozenset[str]]] = {
    "diffusers": ("diffusers_local", "DiffusersService", frozenset({"image", "video"})),
    "openai": ("openai_service", "OpenAIService", frozenset({"image", "video"})),
    "openrouter": ("openrouter_service", "OpenRouterService", frozenset({"image", "video"})),
    "stabilityai": ("stabilityai_service", "StabilityAIService", frozenset({"image"})),
    "runway": ("runway_service", "RunwayService", frozenset({"video"})),
}
NONE = "none"


class ServiceConfigError(ValueError):
    """The settings name a service that does not exist or cannot make the modality asked of it."""


class UnavailableService:
    """Stands in for a service whose module could not be imported; says why, refuses work."""

    def __init__(self, name: str, modalities: frozenset[str], reason: str) -> None:
        self.name = name
        self.modalities = modalities
        self._reason = reason

    def unavailable_reason(self) -> str | None:
        return self._reason

    def info(self) -> dict[str, Any]:
        tasks = [f"text_to_{m}" for m in MODALITIES if m in self.modalities]
        return {"name": self.name, "available": False, "reason": self._reason, "supported_tasks": tasks, "models": {}}

    async def generate(self, request: GenerationRequest, checkpoint: Any) -> GenerationResult:
        from gas.generation.services.base import ServiceUnavailable

        raise ServiceUnavailable(f"{self.name}: {self._reason}")

    async def aclose(self) -> None:
        return None


class ServiceSet:
    """The services of one miner, by modality."""

    def __init__(self, by_modality: Mapping[str, GenerationService | None]) -> None:
        self._by_modality = {m: by_modality.get(m) for m in MODALITIES}

    def for_modality(self, modality: str) -> GenerationService | None:
        """The service that makes ``modality``, or None when it is disabled (or not a modality)."""
        return self._by_modality.get(modality)

    def all(self) -> list[GenerationService]:
        """Distinct instances, image's first."""
        out: list[GenerationService] = []
        for svc in self._by_modality.values():
            if svc is not None and not any(svc is o for o in out):
                out.append(svc)
        return out

    def modalities_of(self, service: GenerationService) -> list[str]:
        return [m for m, s in self._by_modality.items() if s is service]

    def info(self) -> list[dict[str, Any]]:
        """One JSON-able entry per distinct service, with ``serves`` = the modalities routed to it."""
        out = []
        for svc in self.all():
            try:
                entry = dict(svc.info())
            except Exception as e:  # a broken info() must not take /miner_info down with it
                log.exception("info() of service %s failed", getattr(svc, "name", svc))
                entry = {"name": getattr(svc, "name", "?"), "available": False, "reason": f"info() failed: {e}"}
            entry["serves"] = self.modalities_of(svc)
            out.append(entry)
        return out

    async def aclose(self) -> None:
        for svc in self.all():
            try:
                await svc.aclose()
            except Exception:
                log.exception("closing service %s failed", getattr(svc, "name", svc))


def _construct(name: str, modalities: frozenset[str], settings: Any, signer: Any) -> GenerationService:
    module_name, class_name, _ = SERVICE_CLASSES[name]
    qualified = f"gas.generation.services.{module_name}"
    try:
        module = importlib.import_module(qualified)
    except ImportError as e:
        log.warning("service %s unavailable: cannot import %s: %s", name, qualified, e)
        return UnavailableService(name, modalities, f"cannot import {qualified}: {e}")
    cls = getattr(module, class_name)
    if name == "diffusers":
        return cls.from_settings(settings, signer=signer, modalities=sorted(modalities))
    return cls.from_settings(settings)


def build_services(settings: Any, *, signer: Any = None) -> ServiceSet:
    """Services for ``settings.image_service`` / ``settings.video_service`` (a GeneratorSettings).

    ``signer`` (a C2PA MediaSigner) is handed to the local diffusers service; without it that service
    loads one from ``settings.c2pa_cert_path``/``c2pa_key_path`` when first needed.
    """
    wanted: dict[str, str] = {}
    for modality in MODALITIES:
        name = str(getattr(settings, f"{modality}_service")).strip().lower()
        if name == NONE:
            continue
        if name not in SERVICE_CLASSES:
            raise ServiceConfigError(
                f"{modality}_service={name!r} is not a service; choose one of {', '.join([*SERVICE_CLASSES, NONE])}"
            )
        if modality not in SERVICE_CLASSES[name][2]:
            raise ServiceConfigError(f"service {name!r} cannot make {modality}")
        wanted[modality] = name
    instances: dict[str, GenerationService] = {}
    for name in dict.fromkeys(wanted.values()):
        served = frozenset(m for m, n in wanted.items() if n == name)
        instances[name] = _construct(name, served, settings, signer)
    return ServiceSet({m: instances[n] for m, n in wanted.items()})
