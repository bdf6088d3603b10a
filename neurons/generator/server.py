"""The generative miner's HTTP API: Epistula-signed requests in, task ids out.

Endpoints (every one behind Epistula verification; wire shapes in :mod:`gas.protocol.schemas`):

* ``POST /gen_image``, ``POST /gen_video``: body ``{prompt, parameters}``, header ``X-Webhook-URL``;
  ``201`` :class:`~gas.protocol.schemas.TaskAccepted`. The media is delivered later to the webhook.
* ``GET /miner_info``: miner type, services, task stats, version.
* ``GET /health``: ``200`` when at least one service can take work, else ``503``.
* ``GET /status/{task_id}``: the task as JSON (never media bytes); ``404`` for an unknown task or
  a task another validator submitted.

Every error is JSON :class:`~gas.protocol.schemas.ErrorBody` with a stable ``code``. The accept path
is kept short on purpose (the load target is hundreds of accepted requests per second on two
cores): plain Starlette routes instead of FastAPI dependency injection, the body read once with a
size cap, one signature check, one durable insert.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from fastapi import FastAPI
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from gas import __version__
from gas.protocol.epistula import (
    H_SIGNED_BY,
    EpistulaError,
    EpistulaVerifier,
    MalformedRequest,
    VerifiedRequest,
    metagraph_authorizer,
)
from gas.protocol.schemas import (
    WEBHOOK_HEADER,
    ErrorBody,
    GenerationRequestBody,
    Health,
    MinerInfo,
    TaskAccepted,
    TaskStats,
    WebhookUrlError,
    check_webhook_url,
    echo_prompt,
)

log = logging.getLogger("gas.generator.server")

MAX_TASK_ID_CHARS = 128
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


# --------------------------------------------------------------------------------------------
# the seams: what the server needs from the task engine and the service set
# --------------------------------------------------------------------------------------------
class TaskEngineLike(Protocol):
    """The part of :class:`gas.generation.engine.TaskEngine` the server uses."""

    def submit(self, modality: str, prompt: str, parameters: dict[str, Any], webhook_url: str,
               signed_by: str) -> Any: ...
    def get(self, task_id: str) -> Any: ...
    def stats(self) -> dict[str, Any]: ...


class ServiceSetLike(Protocol):
    """The part of :class:`gas.generation.services.registry.ServiceSet` the server uses."""

    def for_modality(self, modality: str) -> Any: ...
    def all(self) -> list[Any]: ...
    def info(self) -> list[dict[str, Any]]: ...


class ApiError(Exception):
    """A request the server refuses; becomes an :class:`ErrorBody` with ``status``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status, self.code = status, code
        super().__init__(message)


def _error_response(status: int, code: str, message: str) -> Response:
    body = ErrorBody(error=message, code=code)
    return Response(body.model_dump_json(), status_code=status, media_type="application/json")


def _model_response(model: Any, status: int = 200) -> Response:
    return Response(model.model_dump_json(), status_code=status, media_type="application/json")


def _epistula_code(exc: EpistulaError) -> str:
    return _CAMEL.sub("_", type(exc).__name__).lower()


def build_verifier(settings: Any, *, hotkey: str, get_metagraph: Callable[[], Any]) -> EpistulaVerifier:
    """The Epistula verifier a miner with ``settings`` (GeneratorSettings) runs with.

    ``get_metagraph`` must be cheap (a cached metagraph): it is called for every request.
    """
    return EpistulaVerifier(
        self_hotkey=hotkey,
        max_age_s=settings.epistula_max_age_s,
        max_future_s=settings.epistula_max_future_s,
        max_body_bytes=settings.max_request_bytes,
        authorize=metagraph_authorizer(
            get_metagraph,
            require_permit=settings.require_validator_permit,
            min_stake=settings.min_validator_stake,
        ),
    )


def config_summary(settings: Any) -> dict[str, Any]:
    """The ``config`` block of ``/miner_info`` (the reference's four keys plus our auth rules)."""
    return {
        "max_concurrent_tasks": settings.max_concurrent_tasks,
        "task_timeout": settings.task_timeout,
        "max_task_age_hours": settings.max_task_age_hours,
        "cleanup_interval": settings.cleanup_interval,
        "image_service": settings.image_service,
        "video_service": settings.video_service,
        "max_request_bytes": settings.max_request_bytes,
        "require_validator_permit": settings.require_validator_permit,
        "min_validator_stake": settings.min_validator_stake,
    }


# --------------------------------------------------------------------------------------------
# the app
# --------------------------------------------------------------------------------------------
def create_app(
    *,
    engine: TaskEngineLike,
    services: ServiceSetLike,
    verifier: EpistulaVerifier,
    hotkey: str,
    uid: int | Callable[[], int | None] | None = None,
    max_body_bytes: int | None = None,
    config_info: Mapping[str, Any] | None = None,
    version: str = __version__,
    started_at: float | None = None,
) -> FastAPI:
    """Build the miner's ASGI app.

    ``engine`` and ``services`` are the task engine and the service set (see the two protocols
    above); ``verifier`` checks every request (its hotkey must be ``hotkey``); ``uid`` is the
    miner's uid or a callable giving the current one; ``max_body_bytes`` defaults to the
    verifier's cap.
    """
    if verifier.self_hotkey != hotkey:
        raise ValueError(f"the verifier checks requests for {verifier.self_hotkey}, not for {hotkey}")
    cap = verifier.max_body_bytes if max_body_bytes is None else int(max_body_bytes)
    started = time.time() if started_at is None else started_at
    config_block = dict(config_info or {})
    get_uid: Callable[[], int | None] = uid if callable(uid) else (lambda: uid)  # type: ignore[assignment]

    app = FastAPI(
        title="GAS generative miner",
        version=version,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # every endpoint needs a signature; nothing to browse
    )

    async def read_body(request: Request) -> bytes:
        """The whole body, refusing more than ``cap`` bytes without reading them."""
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                raise MalformedRequest(f"Content-Length {declared!r} is not a number")
            if int(declared) > cap:
                raise_too_large(int(declared))
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            if chunk:
                size += len(chunk)
                if size > cap:
                    raise_too_large(size, at_least=True)
                chunks.append(chunk)
        return b"".join(chunks)

    def raise_too_large(size: int, *, at_least: bool = False) -> None:
        from gas.protocol.epistula import BodyTooLarge

        more = "more than " if at_least else ""
        raise BodyTooLarge(f"body of {more}{size} bytes exceeds the limit of {cap} bytes")

    async def authenticate(request: Request) -> tuple[VerifiedRequest, bytes]:
        now_ms = int(time.time() * 1000)  # when the headers arrived: a slow upload does not go stale
        body = await read_body(request)
        return verifier.verify(request.headers, body, now_ms=now_ms), body

    async def guarded(request: Request, handler: Callable[[Request], Any]) -> Response:
        try:
            return await handler(request)
        except EpistulaError as exc:
            signer = request.headers.get(H_SIGNED_BY, "-")
            log.info("rejected %s %s from %s: %s (%d)", request.method, request.url.path, signer, exc, exc.status)
            return _error_response(exc.status, _epistula_code(exc), str(exc))
        except ApiError as exc:
            signer = request.headers.get(H_SIGNED_BY, "-")
            log.info("rejected %s %s from %s: %s (%d)", request.method, request.url.path, signer, exc, exc.status)
            return _error_response(exc.status, exc.code, str(exc))
        except Exception:
            log.exception("internal error on %s %s", request.method, request.url.path)
            return _error_response(500, "internal_error", "internal error in the miner; see its logs")

    def available_service(modality: str) -> Any:
        svc = services.for_modality(modality)
        if svc is None:
            raise ApiError(503, "no_service", f"this miner serves no {modality} generation (service 'none')")
        reason = svc.unavailable_reason()
        if reason:
            raise ApiError(503, "service_unavailable", f"the {modality} service {svc.name!r} is unavailable: {reason}")
        return svc

    def generation_endpoint(modality: str) -> Callable[[Request], Any]:
        async def handle(request: Request) -> Response:
            verified, body = await authenticate(request)
            try:
                payload = GenerationRequestBody.model_validate_json(body)
            except ValidationError as exc:
                raise ApiError(400, "invalid_body", _describe_validation(exc)) from None
            try:
                webhook_url = check_webhook_url(request.headers.get(WEBHOOK_HEADER))
            except WebhookUrlError as exc:
                raise ApiError(400, "invalid_webhook_url", str(exc)) from None
            available_service(modality)
            task = engine.submit(
                modality=modality,
                prompt=payload.prompt,
                parameters=payload.parameters,
                webhook_url=webhook_url,
                signed_by=verified.hotkey,
            )
            log.info("accepted %s task %s from %s webhook=%s", modality, task.task_id, verified.hotkey, webhook_url)
            accepted = TaskAccepted(
                task_id=task.task_id,
                modality=modality,
                prompt=echo_prompt(payload.prompt),
                webhook_url=webhook_url,
                created_at=_epoch(task.created_at),
            )
            return _model_response(accepted, 201)

        async def endpoint(request: Request) -> Response:
            return await guarded(request, handle)

        endpoint.__name__ = f"gen_{modality}"
        return endpoint

    async def miner_info(request: Request) -> Response:
        async def handle(request: Request) -> Response:
            await authenticate(request)
            info = MinerInfo(
                uid=get_uid(),
                hotkey=hotkey,
                services=services.info(),
                task_stats=_task_stats(engine.stats()),
                config=config_block,
                version=version,
                uptime=round(time.time() - started, 3),
            )
            return _model_response(info)

        return await guarded(request, handle)

    async def health(request: Request) -> Response:
        async def handle(request: Request) -> Response:
            await authenticate(request)
            every = list(services.all())
            available = sum(1 for s in every if not s.unavailable_reason())
            body = Health(
                status="healthy" if available else "unhealthy",
                services_available=available,
                services_total=len(every),
                timestamp=time.time(),
            )
            return _model_response(body, 200 if available else 503)

        return await guarded(request, handle)

    async def task_status(request: Request) -> Response:
        async def handle(request: Request) -> Response:
            verified, _ = await authenticate(request)
            task_id = request.path_params["task_id"]
            task = engine.get(task_id) if len(task_id) <= MAX_TASK_ID_CHARS else None
            # a validator sees only its own tasks: others' prompts and webhooks are not public
            if task is None or getattr(task, "signed_by", None) != verified.hotkey:
                raise ApiError(404, "task_not_found", f"no task {task_id} submitted by {verified.hotkey}")
            data = task.public_dict()
            return Response(json.dumps(data, default=str), media_type="application/json")

        return await guarded(request, handle)

    app.add_route("/gen_image", generation_endpoint("image"), methods=["POST"])
    app.add_route("/gen_video", generation_endpoint("video"), methods=["POST"])
    app.add_route("/miner_info", miner_info, methods=["GET"])
    app.add_route("/health", health, methods=["GET"])
    app.add_route("/status/{task_id}", task_status, methods=["GET"])

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        codes = {404: "not_found", 405: "method_not_allowed"}
        message = {404: f"no endpoint {request.url.path}",
                   405: f"{request.method} is not allowed on {request.url.path}"}.get(exc.status_code, str(exc.detail))
        return _error_response(exc.status_code, codes.get(exc.status_code, "http_error"), message)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> Response:
        log.error("internal error on %s %s: %r", request.method, request.url.path, exc)
        return _error_response(500, "internal_error", "internal error in the miner; see its logs")

    app.state.engine = engine
    app.state.services = services
    app.state.verifier = verifier
    return app


def _epoch(value: Any) -> float:
    """A timestamp as seconds since the epoch (TaskRecord may carry a float or a datetime)."""
    if isinstance(value, (int, float)):
        return float(value)
    if hasattr(value, "timestamp"):
        return float(value.timestamp())
    return time.time()


def _task_stats(stats: Mapping[str, Any] | None) -> TaskStats:
    stats = stats or {}
    source = stats.get("tasks", stats) if isinstance(stats.get("tasks"), Mapping) else stats
    fields = {k: int(source.get(k, 0) or 0) for k in TaskStats.model_fields}
    if not fields["total"]:
        fields["total"] = sum(v for k, v in fields.items() if k != "total")
    return TaskStats(**fields)


def _describe_validation(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ())) or "body"
        if err.get("type") == "json_invalid":
            parts.append(f"body is not valid JSON: {err.get('msg')}")
        elif err.get("type") == "model_type":
            parts.append("body must be a JSON object with 'prompt' (and optionally 'parameters')")
        else:
            parts.append(f"{loc}: {err.get('msg')}")
    return "; ".join(parts) or "invalid request body"


__all__ = [
    "ApiError", "ServiceSetLike", "TaskEngineLike", "build_verifier", "config_summary", "create_app",
]
