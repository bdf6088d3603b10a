"""Webhook delivery from the generative miner to the validator that asked (wire format of the reference).

Success: ``POST <webhook_url>`` with the raw media bytes as the body; headers ``Content-Type``
(from the magic bytes, :func:`gas.protocol.media_types.webhook_content_type`), ``task-id``,
``task-status: completed``, Epistula v2 headers signed for the requesting validator
(``signed_for = task.signed_by``) and ``x-meta-<key>`` for each scalar metadata value.

Failure: ``POST <webhook_url>`` with JSON ``{"task_id", "task_status": "failed", "error_message",
"modality"}``, ``Content-Type: application/json``, headers ``task-id``, ``task-status: failed`` and
``error-message`` (one line of printable ASCII, truncated), Epistula-signed the same way.

Retries: at most ``1 + max_retries`` attempts, waiting ``retry_delay * 2**k`` before retry ``k``
(2 s, 4 s, 8 s by default). Signature headers are made afresh for every attempt (the validator
only accepts recent timestamps). Success is a 2xx answer. 5xx, 408, 429, timeouts and connection
errors are retried. Any other answer (a 4xx such as the validator's 400 rejection, or a 3xx) is
final: the validator has seen the media and refused it, so it is recorded as *rejected* and not
retried. The reference retries it, gets ``200 "Task not found in current session"`` because the
validator already dropped the task, and counts that as a success; we also treat that particular
2xx answer as a rejection (category ``unknown_task``).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from gas.protocol.epistula import sign_request
from gas.protocol.media_types import webhook_content_type

log = logging.getLogger(__name__)

#: Longest ``error-message`` header we send (the JSON body carries up to MAX_ERROR_BODY characters).
MAX_ERROR_HEADER = 512
MAX_ERROR_BODY = 4096
MAX_META_VALUE = 256
RETRYABLE_4XX = frozenset({408, 429})
#: The reference validator answers 200 with this text for a task it no longer tracks.
_UNKNOWN_TASK_MARKER = b"Task not found"


#: Webhook deliveries in flight at once per validator endpoint (host:port).
DELIVERIES_PER_ENDPOINT = 8


class WebhookTask(Protocol):
    """What the sender needs from a task (``gas.generation.task_store.TaskRecord`` fits)."""

    task_id: str
    modality: str
    webhook_url: str
    signed_by: str | None


class DeliveryStats(Protocol):
    """Where per-validator delivery counts go (``gas.generation.task_store.TaskStore`` fits)."""

    def record_webhook_attempt(self, validator: str, endpoint: str, category: str) -> None: ...

    def record_webhook_outcome(self, validator: str, endpoint: str, outcome: str, attempts: int) -> None: ...


@dataclass(frozen=True)
class DeliveryResult:
    """How a delivery ended. ``category`` is that of the last attempt: delivered, http_4xx, http_5xx,
    http_other, timeout, connection_error, invalid_url or unknown_task."""

    ok: bool
    attempts: int
    status_code: int | None
    category: str
    error: str | None = None
    rejected: bool = False  # the validator refused it (not retried)

    @property
    def outcome(self) -> str:
        """``delivered``, ``rejected`` (the validator said no) or ``failed`` (we could not get it there)."""
        if self.ok:
            return "delivered"
        return "rejected" if self.rejected else "failed"


class InvalidWebhookURL(ValueError):
    pass


def validate_webhook_url(url: str) -> str:
    """``url`` if it is an absolute http(s) URL with a host and no credentials; else InvalidWebhookURL."""
    if not isinstance(url, str) or not url:
        raise InvalidWebhookURL("webhook URL is empty")
    if any(ord(c) < 0x21 or ord(c) > 0x7E for c in url):
        raise InvalidWebhookURL("webhook URL contains spaces, control or non-ASCII characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidWebhookURL(f"webhook URL {url!r} is malformed: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidWebhookURL(f"webhook URL must use http or https, not {parts.scheme or 'nothing'!r}")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise InvalidWebhookURL("webhook URL must not contain user credentials")
    if not parts.hostname:
        raise InvalidWebhookURL(f"webhook URL {url!r} has no host")
    if port == 0:
        raise InvalidWebhookURL(f"webhook URL {url!r} has port 0")
    return url


def endpoint_of(url: str) -> str:
    """``host:port`` of a webhook URL (for stats), or the URL itself when it cannot be parsed."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if parts.hostname:
            return f"{parts.hostname}:{port}"
    except ValueError:
        pass
    return url[:200]


_UNPRINTABLE = re.compile(r"[^\x20-\x7e]+")


def header_safe(text: str, limit: int) -> str:
    """One line of printable ASCII, at most ``limit`` characters (for header values)."""
    flat = _UNPRINTABLE.sub(" ", str(text)).strip()
    flat = re.sub(r" {2,}", " ", flat)
    if len(flat) > limit:
        flat = flat[: max(0, limit - 3)] + "..."
    return flat


def meta_headers(metadata: Mapping[str, Any] | None) -> dict[str, str]:
    """``x-meta-<key>`` headers for scalar metadata values (``_`` -> ``-``), as the reference sends."""
    out: dict[str, str] = {}
    for key, value in (metadata or {}).items():
        if value is None or not isinstance(value, (str, int, float, bool)):
            continue
        name = re.sub(r"[^a-z0-9-]", "", str(key).lower().replace("_", "-"))
        if not name:
            continue
        out[f"x-meta-{name}"] = header_safe(str(value), MAX_META_VALUE)
    return out


def _classify(status: int, body_head: bytes) -> tuple[bool, bool, str]:
    """(ok, retry, category) for an HTTP answer."""
    if 200 <= status < 300:
        if _UNKNOWN_TASK_MARKER in body_head:
            return False, False, "unknown_task"
        return True, False, "delivered"
    if status >= 500:
        return False, True, "http_5xx"
    if status in RETRYABLE_4XX:
        return False, True, "http_4xx"
    if 400 <= status < 500:
        return False, False, "http_4xx"
    return False, False, "http_other"


@functools.lru_cache(maxsize=1)
def _tls_context() -> ssl.SSLContext:
    """One CA bundle per process (httpx would load it again for every client)."""
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


class WebhookSender:
    """Delivers success and failure webhooks with retries; one instance serves the whole miner.

    ``client`` is injectable (tests, shared pools); when omitted one is created lazily and closed by
    :meth:`aclose`. ``sleep`` is injectable so tests can check the backoff without waiting.

    At most ``per_endpoint`` deliveries (retries and backoff included) are in flight per validator
    endpoint (host:port); the rest wait their turn. Without the bound a burst of finished tasks opens
    hundreds of connections to one validator, httpx's pool does work linear in its connections for
    every request, and delivery throughput collapses (benchmarks/bench_gen_server.py); a slow or dead
    validator only holds its own slots.
    """

    def __init__(
        self,
        keypair: Any,
        *,
        client: httpx.AsyncClient | None = None,
        max_retries: int = 3,
        retry_delay: float = 2.0,
        timeout: float = 30.0,
        stats: DeliveryStats | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        per_endpoint: int = DELIVERIES_PER_ENDPOINT,
    ) -> None:
        if max_retries < 0 or retry_delay < 0 or timeout <= 0:
            raise ValueError("max_retries and retry_delay must be >= 0 and timeout > 0")
        if per_endpoint < 1:
            raise ValueError("per_endpoint must be >= 1")
        self.per_endpoint = per_endpoint
        self._slots: dict[str, asyncio.Semaphore] = {}
        self.keypair = keypair
        self.max_retries = max_retries
        self.retry_delay = retry_delay
        self.timeout = timeout
        self.stats = stats
        self._sleep = sleep
        self._client = client
        self._owns_client = client is None
        self._http()  # now, not on the event loop at the first delivery (loading CA certificates takes ~0.1 s)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout),
                follow_redirects=False,
                verify=_tls_context(),
                limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
                headers={"User-Agent": "gas-generator"},
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None and self._owns_client:
            await self._client.aclose()
            self._client = None

    # ----------------------------------------------------------------------------- public API
    async def send_success(
        self, task: WebhookTask, data: bytes, metadata: Mapping[str, Any] | None = None
    ) -> DeliveryResult:
        """POST the media bytes (unmodified) to the task's webhook."""
        body = bytes(data)
        headers = {
            "Content-Type": webhook_content_type(body, task.modality),
            "task-id": task.task_id,
            "task-status": "completed",
            **meta_headers(metadata),
        }
        return await self._deliver(task, body, headers, kind="success")

    async def send_failure(self, task: WebhookTask, error_message: str) -> DeliveryResult:
        """POST the JSON failure report to the task's webhook."""
        message = str(error_message or "generation failed")
        if len(message) > MAX_ERROR_BODY:
            message = message[: MAX_ERROR_BODY - 3] + "..."
        body = json.dumps(
            {
                "task_id": task.task_id,
                "task_status": "failed",
                "error_message": message,
                "modality": task.modality,
            }
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "task-id": task.task_id,
            "task-status": "failed",
            "error-message": header_safe(message, MAX_ERROR_HEADER) or "generation failed",
        }
        return await self._deliver(task, body, headers, kind="failure")

    # ------------------------------------------------------------------------------- internals
    def _record_attempt(self, validator: str, endpoint: str, category: str) -> None:
        if self.stats is None:
            return
        try:
            self.stats.record_webhook_attempt(validator, endpoint, category)
        except Exception:  # stats must never break delivery
            log.exception("could not record webhook stats for %s", validator)

    def _record_outcome(self, validator: str, endpoint: str, result: DeliveryResult) -> None:
        if self.stats is None:
            return
        try:
            self.stats.record_webhook_outcome(validator, endpoint, result.outcome, result.attempts)
        except Exception:
            log.exception("could not record webhook stats for %s", validator)

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """Status and the first bytes of the answer (never the whole of a possibly huge answer)."""
        async with self._http().stream("POST", url, content=body, headers=headers) as resp:
            head = b""
            async for chunk in resp.aiter_bytes():
                head += chunk
                if len(head) >= 256:
                    break
            return resp.status_code, head[:256]

    async def _deliver(
        self, task: WebhookTask, body: bytes, headers: dict[str, str], *, kind: str
    ) -> DeliveryResult:
        endpoint = endpoint_of(task.webhook_url)
        slot = self._slots.get(endpoint)
        if slot is None:
            slot = self._slots[endpoint] = asyncio.Semaphore(self.per_endpoint)
        async with slot:
            return await self._deliver_now(task, body, headers, kind=kind, endpoint=endpoint)

    async def _deliver_now(
        self, task: WebhookTask, body: bytes, headers: dict[str, str], *, kind: str, endpoint: str
    ) -> DeliveryResult:
        validator = task.signed_by or endpoint
        try:
            url = validate_webhook_url(task.webhook_url)
        except InvalidWebhookURL as exc:
            log.warning("task %s: not delivering the %s webhook: %s", task.task_id, kind, exc)
            self._record_attempt(validator, endpoint, "invalid_url")
            result = DeliveryResult(False, 0, None, "invalid_url", str(exc), rejected=False)
            self._record_outcome(validator, endpoint, result)
            return result

        attempts = 0
        status: int | None = None
        category = "connection_error"
        error: str | None = None
        total = 1 + self.max_retries
        for attempt in range(total):
            if attempt:
                delay = self.retry_delay * 2 ** (attempt - 1)
                log.info("task %s: %s webhook retry %d/%d in %.1f s (%s)",
                         task.task_id, kind, attempt, self.max_retries, delay, error)
                await self._sleep(delay)
            attempts += 1
            signed = {**headers, **sign_request(body, self.keypair, signed_for=task.signed_by)}
            retry = True
            status = None
            started = time.monotonic()
            try:
                status, head = await asyncio.wait_for(self._post(url, body, signed), self.timeout)
                ok, retry, category = _classify(status, head)
                error = None if ok else f"HTTP {status}: {header_safe(head.decode('utf-8', 'replace'), 200)}"
            except (asyncio.TimeoutError, httpx.TimeoutException):
                category, error = "timeout", f"no answer within {self.timeout:g} s"
            except httpx.TransportError as exc:
                category, error = "connection_error", f"{type(exc).__name__}: {exc}"[:300]
            self._record_attempt(validator, endpoint, category)
            if category == "delivered":
                log.info("task %s: %s webhook delivered to %s (HTTP %s, attempt %d, %.0f ms)",
                         task.task_id, kind, endpoint, status, attempts, (time.monotonic() - started) * 1000)
                result = DeliveryResult(True, attempts, status, category, None)
                self._record_outcome(validator, endpoint, result)
                return result
            if not retry:
                log.warning("task %s: %s webhook rejected by %s (hotkey %s): %s",
                            task.task_id, kind, endpoint, task.signed_by, error)
                result = DeliveryResult(False, attempts, status, category, error, rejected=True)
                self._record_outcome(validator, endpoint, result)
                return result
        log.warning("task %s: %s webhook to %s failed after %d attempt(s): %s",
                    task.task_id, kind, endpoint, attempts, error)
        result = DeliveryResult(False, attempts, status, category, error)
        self._record_outcome(validator, endpoint, result)
        return result
