"""Shared plumbing of the HTTP API services (OpenAI, OpenRouter, Stability AI, Runway).

Why one base: every provider needs the same careful handling of the things that cost money or leak
secrets: the API key is sent only to the provider's own base URL (never to a CDN download link) and
never appears in a message or log; a job-creating POST is retried only when the request cannot
have created a job; polling tolerates transient errors but is bounded by a deadline; downloads are
bounded in time and size; and bytes come back exactly as the provider served them.

Only ``httpx`` is used (no vendor SDKs), so tests can put real local HTTP servers behind the
``base_url`` seam.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import math
import re
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any

import httpx
from pydantic import SecretStr

from gas.generation.services.base import (
    CheckpointFn,
    GenerationFailed,
    GenerationRequest,
    GenerationResult,
    InvalidParameters,
    ServiceUnavailable,
)
from gas.protocol.media_types import sniff_mime

logger = logging.getLogger(__name__)

#: HTTP statuses worth another try: the provider did not do the work and says it may later.
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})

#: Video resolution tiers as validators request them, lowest first (``4K`` also counts as video).
VIDEO_TIERS = ("480p", "720p", "1080p", "4K")
#: Image resolution tiers as validators request them.
IMAGE_TIERS = ("1K", "2K", "4K")

_DATA_URL_RE = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^;,]*)*?);base64,(?P<data>.*)$", re.S)


class ProviderError(GenerationFailed):
    """The provider answered with an error, or could not be reached.

    ``retryable`` says whether the same request may succeed later (429, 5xx, timeouts);
    ``sent`` is False only when the request certainly never reached the provider (connect errors),
    which is the one case where a job-creating POST may be repeated without risking a second job.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retryable: bool = False,
        sent: bool = True,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retryable = retryable
        self.sent = sent
        self.retry_after = retry_after


class InvalidApiKey(ProviderError):
    """HTTP 401/403: the key is wrong, revoked, or lacks access. Never retried."""


class JobNotFound(ProviderError):
    """HTTP 404 for a job id (expired, deleted, or from another account)."""


class JobTimeout(GenerationFailed):
    """The provider's job did not finish before the service's job timeout."""


def secret_value(key: SecretStr | str | None) -> str | None:
    """The plain key, or None when unset or blank."""
    if key is None:
        return None
    value = key.get_secret_value() if isinstance(key, SecretStr) else str(key)
    value = value.strip()
    return value or None


def provider_error_details(resp: httpx.Response) -> tuple[str | None, str]:
    """(code, message) from an error response in any of the providers' shapes.

    OpenAI/OpenRouter: ``{"error": {"message", "code"|"type"}}``; Runway: ``{"error": "..."}``;
    Stability: ``{"name": ..., "errors": [...]}``; otherwise the start of the body text.
    """
    try:
        body = resp.json()
    except ValueError:
        body = None
    code: str | None = None
    message: str | None = None
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            message = err.get("message") or err.get("msg")
            raw_code = err.get("code") or err.get("type")
            code = None if raw_code is None else str(raw_code)
        elif isinstance(err, str):
            message = err
        if message is None and isinstance(body.get("errors"), list):
            message = "; ".join(str(e) for e in body["errors"])
            code = code or (str(body["name"]) if body.get("name") else None)
        if message is None and isinstance(body.get("message"), str):
            message = body["message"]
        if message is None and isinstance(body.get("detail"), str):
            message = body["detail"]
        if body.get("issues") and message:
            message = f"{message} ({body['issues']})"
    if message is None:
        text = resp.text.strip() if resp.content else ""
        message = text[:300] or resp.reason_phrase or "no error message"
    message = str(message)
    return code, message if len(message) <= 500 else message[:500] + "..."


def retry_after_seconds(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def decode_data_url(url: str) -> tuple[str | None, bytes]:
    """(mime, bytes) of a ``data:<mime>;base64,<payload>`` URL. Base64 decode only, nothing else."""
    m = _DATA_URL_RE.match(url.strip())
    if not m:
        raise GenerationFailed(f"expected a base64 data URL, got {url[:40]!r}...")
    try:
        data = base64.b64decode(m.group("data"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise GenerationFailed(f"the data URL's base64 payload is corrupt: {exc}") from None
    return m.group("mime"), data


def has_c2pa_marker(data: bytes) -> bool:
    """Cheap hint that the bytes carry a C2PA manifest (JUMBF box labelled c2pa). Not a verification."""
    return b"jumb" in data and b"c2pa" in data


# --- parameter parsing -------------------------------------------------------------------------------


def param(params: Mapping[str, Any], *names: str) -> Any:
    """The first of ``names`` present (not None) in ``params``."""
    for n in names:
        if params.get(n) is not None:
            return params[n]
    return None


def param_int(params: Mapping[str, Any], *names: str, lo: int | None = None, hi: int | None = None) -> int | None:
    raw = param(params, *names)
    if raw is None:
        return None
    if isinstance(raw, bool):
        raise InvalidParameters(f"{names[0]} must be an integer, got {raw!r}")
    try:
        if isinstance(raw, float):
            if not raw.is_integer():
                raise ValueError
            value = int(raw)
        else:
            value = int(str(raw).strip())
    except (TypeError, ValueError):
        raise InvalidParameters(f"{names[0]} must be an integer, got {raw!r}") from None
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise InvalidParameters(f"{names[0]} must be between {lo} and {hi}, got {value}")
    return value


def param_number(params: Mapping[str, Any], *names: str) -> float | None:
    """A positive finite number; accepts ``"8"``, ``8``, ``"8s"``."""
    raw = param(params, *names)
    if raw is None:
        return None
    if isinstance(raw, bool):
        raise InvalidParameters(f"{names[0]} must be a number, got {raw!r}")
    text = str(raw).strip().lower().removesuffix("s")
    try:
        value = float(text)
    except ValueError:
        raise InvalidParameters(f"{names[0]} must be a number of seconds, got {raw!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise InvalidParameters(f"{names[0]} must be positive, got {raw!r}")
    return value


def param_bool(params: Mapping[str, Any], *names: str) -> bool | None:
    raw = param(params, *names)
    if raw is None or isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise InvalidParameters(f"{names[0]} must be true or false, got {raw!r}")


def param_str(params: Mapping[str, Any], *names: str) -> str | None:
    raw = param(params, *names)
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise InvalidParameters(f"{names[0]} must be a string, got {raw!r}")
    raw = raw.strip()
    return raw or None


def param_choice(params: Mapping[str, Any], *names: str, choices: Sequence[str]) -> str | None:
    value = param_str(params, *names)
    if value is not None and value not in choices:
        raise InvalidParameters(f"{names[0]} must be one of {', '.join(choices)}; got {value!r}")
    return value


def parse_size(text: str, name: str = "size") -> tuple[int, int]:
    """``"1280x720"`` (or ``1280:720``) -> (1280, 720)."""
    m = re.fullmatch(r"\s*(\d{2,5})\s*[x:X*]\s*(\d{2,5})\s*", text)
    if not m:
        raise InvalidParameters(f"{name} must look like 1280x720, got {text!r}")
    return int(m.group(1)), int(m.group(2))


def parse_ratio(text: str, name: str = "aspect_ratio") -> float:
    """``"16:9"``, ``"1280:720"`` or ``"1280x720"`` -> width / height."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*[:/xX]\s*(\d+(?:\.\d+)?)\s*", str(text))
    if not m or float(m.group(1)) <= 0 or float(m.group(2)) <= 0:
        raise InvalidParameters(f"{name} must look like 16:9, got {text!r}")
    return float(m.group(1)) / float(m.group(2))


def aspect_hint(params: Mapping[str, Any]) -> float | None:
    """Requested width/height ratio from ``width``+``height``, ``aspect_ratio`` or ``ratio``."""
    width = param_int(params, "width", lo=16, hi=16384)
    height = param_int(params, "height", lo=16, hi=16384)
    if width and height:
        return width / height
    ratio = param_str(params, "aspect_ratio", "ratio")
    if ratio:
        return parse_ratio(ratio)
    return None


def normalize_tier(raw: Any, tiers: Sequence[str], name: str = "resolution") -> str | None:
    """``"720P"``/``"720"`` -> ``"720p"``; ``"2k"`` -> ``"2K"``; None when absent; error when unknown."""
    if raw is None:
        return None
    text = str(raw).strip()
    if not text:
        return None
    by_key = {t.lower(): t for t in tiers}
    key = text.lower()
    if key not in by_key and key.isdigit():
        key += "p"
    if key in by_key:
        return by_key[key]
    raise InvalidParameters(f"{name} must be one of {', '.join(tiers)}; got {raw!r}")


def snap_tier(requested: str | None, supported: Sequence[str], order: Sequence[str], default: str) -> str:
    """The supported tier closest to ``requested``; a tie goes to the higher tier.

    Higher on a tie because validators pay an undershoot discount but nothing for overshoot.
    """
    if requested is None:
        return default
    if requested in supported:
        return requested
    rank = {t: i for i, t in enumerate(order)}
    want = rank[requested]
    return min(supported, key=lambda t: (abs(rank[t] - want), -rank[t]))


def nearest_number(value: float, allowed: Sequence[int]) -> int:
    """The allowed value nearest to ``value`` (ties to the larger)."""
    return min(allowed, key=lambda a: (abs(a - value), -a))


def nearest_by_aspect(target: float, sizes: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """The (w, h) whose aspect ratio is closest to ``target`` in log space (2:1 and 1:2 are equally far)."""
    return min(sizes, key=lambda s: abs(math.log(s[0] / s[1]) - math.log(target)))


def video_tier_of(width: int, height: int) -> str:
    """The tier validators assign a clip of this size (by pixel count, as the reference scores it)."""
    pixels = width * height
    if pixels >= 1_760_000:
        return "1080p"
    if pixels >= 780_000:
        return "720p"
    return "480p"


def pick_video_size(
    sizes: Sequence[tuple[int, int]], tier: str | None, aspect: float | None, default_tier: str = "720p"
) -> tuple[int, int]:
    """Choose among a model's sizes: first the tier (snapped), then the aspect ratio (default 16:9)."""
    tiers = {video_tier_of(w, h) for w, h in sizes}
    order = ("480p", "720p", "1080p")
    supported = [t for t in order if t in tiers]
    default = default_tier if default_tier in supported else supported[0]
    want = "1080p" if tier == "4K" else tier
    chosen = snap_tier(want, supported, order, default)
    candidates = [s for s in sizes if video_tier_of(*s) == chosen]
    return nearest_by_aspect(aspect or 16 / 9, candidates)


# --- the base class ------------------------------------------------------------------------------------


#: Tunables of every API service unless the provider's ``tunable_defaults`` say otherwise.
_TUNABLE_DEFAULTS: dict[str, float] = {
    "poll_interval": 5.0,
    "job_timeout": 600.0,
    "request_timeout": 60.0,
    "download_timeout": 600.0,
    "max_retries": 2,
    "retry_backoff": 2.0,
    "max_download_bytes": 512 * 1024 * 1024,
    "max_poll_errors": 5,
}

#: What a provider's job id may look like before it goes into URLs, logs and checkpoints.
_JOB_ID_RE = re.compile(r"[\w.:-]{1,200}")


class ApiService:
    """Base of the HTTP API services; subclasses implement ``_generate_image`` / ``_generate_video``.

    Tunables are constructor arguments (operator settings), never request parameters: a validator
    cannot make the miner poll faster, wait longer or retry more. A tunable left unset (None) takes
    the provider's ``tunable_defaults``, else the common default.
    """

    name: str = "api"
    modalities: frozenset[str] = frozenset()
    #: Environment variable named in "missing key" messages.
    key_env: str = "API_KEY"
    #: Human name in error messages.
    label: str = "provider"
    #: Task names for /miner_info, per modality.
    task_names: Mapping[str, str] = {"image": "text_to_image", "video": "text_to_video"}
    #: The provider's API root, used when ``base_url`` is not given.
    default_base_url: str = ""
    #: This provider's defaults for the tunables, where they differ from the common ones.
    tunable_defaults: Mapping[str, float] = {}

    def __init__(
        self,
        *,
        api_key: SecretStr | str | None,
        base_url: str | None = None,
        client: httpx.AsyncClient | None = None,
        poll_interval: float | None = None,
        job_timeout: float | None = None,
        request_timeout: float | None = None,
        download_timeout: float | None = None,
        max_retries: int | None = None,
        retry_backoff: float | None = None,
        max_download_bytes: int | None = None,
        max_poll_errors: int | None = None,
    ) -> None:
        given = {
            "poll_interval": poll_interval,
            "job_timeout": job_timeout,
            "request_timeout": request_timeout,
            "download_timeout": download_timeout,
            "max_retries": max_retries,
            "retry_backoff": retry_backoff,
            "max_download_bytes": max_download_bytes,
            "max_poll_errors": max_poll_errors,
        }
        t = {**_TUNABLE_DEFAULTS, **self.tunable_defaults}
        t.update((k, v) for k, v in given.items() if v is not None)
        for label in ("poll_interval", "job_timeout", "request_timeout", "download_timeout"):
            if not t[label] > 0:
                raise ValueError(f"{label} must be positive, got {t[label]!r}")
        if (
            t["max_retries"] < 0 or t["retry_backoff"] < 0 or t["max_poll_errors"] < 0
            or t["max_download_bytes"] <= 0
        ):
            raise ValueError("max_retries, retry_backoff and max_poll_errors must be >= 0")
        self._api_key = secret_value(api_key)
        self.base_url = (self.default_base_url if base_url is None else base_url).rstrip("/")
        self._client = client
        self._owns_client = client is None
        self.poll_interval = float(t["poll_interval"])
        self.job_timeout = float(t["job_timeout"])
        self.request_timeout = float(t["request_timeout"])
        self.download_timeout = float(t["download_timeout"])
        self.max_retries = int(t["max_retries"])
        self.retry_backoff = float(t["retry_backoff"])
        self.max_download_bytes = int(t["max_download_bytes"])
        self.max_poll_errors = int(t["max_poll_errors"])

    def __repr__(self) -> str:  # never shows the key
        return f"{type(self).__name__}(base_url={self.base_url!r}, key={'set' if self._api_key else 'unset'})"

    # --- GenerationService protocol (shared parts) ---------------------------------------------------

    def unavailable_reason(self) -> str | None:
        return None if self._api_key else f"{self.key_env} is not set"

    def models(self) -> dict[str, list[str]]:
        """Models per modality for info(); subclasses override."""
        return {}

    def default_models(self) -> dict[str, str]:
        return {}

    def info(self) -> dict[str, Any]:
        reason = self.unavailable_reason()
        return {
            "name": self.name,
            "available": reason is None,
            "reason": reason,
            "supported_tasks": [self.task_names[m] for m in sorted(self.modalities)],
            "modalities": sorted(self.modalities),
            "models": self.models(),
            "default_models": self.default_models(),
        }

    async def generate(self, request: GenerationRequest, checkpoint: CheckpointFn) -> GenerationResult:
        self._check_request(request)
        if request.modality == "image":
            return await self._generate_image(request)
        return await self._generate_video(request, checkpoint)

    async def _generate_image(self, request: GenerationRequest) -> GenerationResult:
        raise NotImplementedError  # only reached for a modality in ``modalities``

    async def _generate_video(self, request: GenerationRequest, checkpoint: CheckpointFn) -> GenerationResult:
        raise NotImplementedError

    async def aclose(self) -> None:
        if self._owns_client and self._client is not None:
            await self._client.aclose()
        self._client = None

    # --- helpers for subclasses ------------------------------------------------------------------------

    def _check_request(self, request: GenerationRequest) -> None:
        """Raise unless this service can take ``request`` at all (key set, modality, prompt)."""
        reason = self.unavailable_reason()
        if reason:
            raise ServiceUnavailable(f"{self.name}: {reason}")
        if request.modality not in self.modalities:
            raise InvalidParameters(
                f"{self.name} does not generate {request.modality} (it does {', '.join(sorted(self.modalities))})"
            )
        if not isinstance(request.prompt, str) or not request.prompt.strip():
            raise InvalidParameters("prompt is empty")

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.request_timeout, connect=min(15.0, self.request_timeout)),
                follow_redirects=True,
            )
            self._owns_client = True
        return self._client

    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"}

    def _url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def _redact(self, text: str) -> str:
        if self._api_key and self._api_key in text:
            text = text.replace(self._api_key, "***")
        return text

    def _error_from_response(self, resp: httpx.Response, what: str) -> ProviderError:
        code, message = provider_error_details(resp)
        message = self._redact(message)
        status = resp.status_code
        if status in (401, 403):
            return InvalidApiKey(
                f"{self.label} rejected the API key (HTTP {status}) during {what}: {message}. "
                f"Check that {self.key_env} holds a valid key with access to this model.",
                status=status,
                code=code,
            )
        tag = f"HTTP {status}" + (f", {code}" if code else "")
        cls = JobNotFound if status == 404 else ProviderError
        return cls(
            f"{self.label} {what} failed ({tag}): {message}",
            status=status,
            code=code,
            retryable=status in RETRYABLE_STATUS,
            retry_after=retry_after_seconds(resp),
        )

    def _error_from_transport(self, exc: httpx.HTTPError, what: str, limit_s: float) -> ProviderError:
        unsent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
        if isinstance(exc, httpx.TimeoutException):
            msg = f"{self.label} {what} timed out after {limit_s:g} s ({type(exc).__name__})"
        else:
            msg = f"{self.label} {what} failed: could not reach {self.label} ({type(exc).__name__}: {exc})"
        return ProviderError(self._redact(msg), retryable=True, sent=not unsent)

    async def _request(
        self,
        method: str,
        url: str,
        *,
        what: str,
        auth: bool = True,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        limit_s: float | None = None,
        retries: int | None = None,
        creates_job: bool = False,
    ) -> httpx.Response:
        """Send one request with retries on retryable failures; return a 2xx response or raise.

        ``creates_job``: the POST starts paid work, so a timeout after sending is NOT retried (the
        job may exist); connect failures and 429/5xx answers are.
        """
        limit = limit_s or self.request_timeout
        attempts = 1 + (self.max_retries if retries is None else retries)
        hdrs = dict(headers or {})
        if auth:
            hdrs.update(self._auth_headers())
        files = {k: (None, v) for k, v in form.items()} if form is not None else None
        for attempt in range(attempts):
            try:
                try:
                    resp = await self._http().request(
                        method, url, json=json_body, files=files, params=params, headers=hdrs,
                        timeout=httpx.Timeout(limit, connect=min(15.0, limit)),
                    )
                except httpx.HTTPError as exc:
                    raise self._error_from_transport(exc, what, limit) from None
                if resp.status_code >= 400:
                    raise self._error_from_response(resp, what)
                return resp
            except InvalidApiKey:
                raise
            except ProviderError as err:
                may_retry = err.retryable and (not creates_job or not err.sent or err.status is not None)
                if not may_retry or attempt + 1 >= attempts:
                    raise
                delay = self._backoff(attempt, err.retry_after)
                logger.warning("%s: %s; retry %d/%d in %.1f s", self.name, err, attempt + 1, attempts - 1, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _backoff(self, attempt: int, retry_after: float | None = None) -> float:
        delay = self.retry_backoff * (2**attempt)
        if retry_after is not None:
            delay = max(delay, min(retry_after, 60.0))
        return delay

    @staticmethod
    def _json(resp: httpx.Response, what: str) -> dict[str, Any]:
        try:
            body = resp.json()
        except ValueError:
            raise GenerationFailed(f"{what}: the provider sent a non-JSON answer ({resp.text[:120]!r})") from None
        if not isinstance(body, dict):
            raise GenerationFailed(f"{what}: expected a JSON object, got {type(body).__name__}")
        return body

    async def _download(self, url: str, *, what: str, auth: bool) -> bytes:
        """GET ``url`` into memory, exactly as served, bounded by download_timeout and max_download_bytes.

        ``auth=False`` for links outside the provider's API (signed CDN URLs): the key stays home.
        Retried on retryable failures (a GET is idempotent).
        """
        if not url.startswith(("http://", "https://")):
            raise GenerationFailed(f"{what}: refusing to download a non-HTTP URL {url[:60]!r}")
        hdrs = self._auth_headers() if auth else {}
        for attempt in range(1 + self.max_retries):
            try:
                return await asyncio.wait_for(self._download_once(url, hdrs, what), self.download_timeout)
            except asyncio.TimeoutError:
                err: ProviderError = ProviderError(
                    f"{self.label} {what} timed out after {self.download_timeout:g} s", retryable=True
                )
            except ProviderError as exc:
                err = exc
            if isinstance(err, InvalidApiKey) or not err.retryable or attempt >= self.max_retries:
                raise err
            delay = self._backoff(attempt, err.retry_after)
            logger.warning("%s: %s; retry %d/%d in %.1f s", self.name, err, attempt + 1, self.max_retries, delay)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _download_once(self, url: str, headers: Mapping[str, str], what: str) -> bytes:
        buf = bytearray()
        try:
            async with self._http().stream(
                "GET", url, headers=headers, follow_redirects=True,
                timeout=httpx.Timeout(self.download_timeout, connect=min(15.0, self.download_timeout)),
            ) as resp:
                if resp.status_code >= 400:
                    await resp.aread()
                    raise self._error_from_response(resp, what)
                declared = resp.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > self.max_download_bytes:
                    raise GenerationFailed(
                        f"{what}: {declared} bytes exceed the {self.max_download_bytes} byte download limit"
                    )
                async for chunk in resp.aiter_bytes():
                    buf += chunk
                    if len(buf) > self.max_download_bytes:
                        raise GenerationFailed(f"{what}: more than {self.max_download_bytes} bytes, aborted")
        except httpx.HTTPError as exc:
            raise self._error_from_transport(exc, what, self.download_timeout) from None
        return bytes(buf)

    async def _poll(
        self,
        fetch: Callable[[], Awaitable[dict[str, Any]]],
        *,
        state_of: Callable[[dict[str, Any]], str],
        terminal: Collection[str],
        job_id: str,
        task_id: str,
    ) -> dict[str, Any]:
        """Poll until ``state_of(job)`` is terminal; return that job. Bounded by ``job_timeout``.

        Transient errors (timeouts, 429, 5xx) are tolerated up to ``max_poll_errors`` in a row; a bad
        key or an unknown job ends the wait at once.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.job_timeout
        errors = 0
        last_state = None
        while True:
            try:
                job = await fetch()
                errors = 0
            except (InvalidApiKey, JobNotFound):
                raise
            except ProviderError as err:
                if not err.retryable or errors >= self.max_poll_errors:
                    raise
                errors += 1
                logger.warning("%s: polling job %s (task %s): %s; will retry", self.name, job_id, task_id, err)
                job = None
            if job is not None:
                state = state_of(job)
                if state != last_state:
                    logger.info("%s: job %s (task %s) is %s", self.name, job_id, task_id, state)
                    last_state = state
                if state in terminal:
                    return job
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise JobTimeout(
                    f"{self.label} job {job_id} did not finish within {self.job_timeout:g} s "
                    f"(last status {last_state or 'unknown'})"
                )
            await asyncio.sleep(min(self.poll_interval, remaining))

    async def _create_job(
        self,
        path: str,
        *,
        job: str,
        model: str,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
    ) -> str:
        """POST the request that starts a paid ``job`` (e.g. ``"video job"``); return its checked id."""
        resp = await self._request(
            "POST", self._url(path), what=f"{job} creation with {model}",
            json_body=json_body, form=form, creates_job=True,
        )
        created = self._json(resp, f"{self.label} {job} creation")
        job_id = created.get("id")
        if not isinstance(job_id, str) or not _JOB_ID_RE.fullmatch(job_id):
            raise GenerationFailed(
                f"{self.label} {job} creation returned no usable id ({str(created)[:200]})"
            )
        return job_id

    async def _poll_json(
        self, path: str, *, job: str, job_id: str, task_id: str, terminal: Collection[str]
    ) -> dict[str, Any]:
        """``_poll`` a JSON job resource at ``path`` (one try per poll) until its ``status`` is terminal."""
        url = self._url(path)
        noun = job.removesuffix(" job")  # "OpenAI Sora status", "Runway task status"

        async def fetch() -> dict[str, Any]:
            resp = await self._request("GET", url, what=f"{job} {job_id} status", retries=0)
            return self._json(resp, f"{self.label} {noun} status")

        return await self._poll(
            fetch, state_of=lambda j: str(j.get("status")), terminal=terminal, job_id=job_id, task_id=task_id,
        )

    async def _run_job(
        self,
        job_id: str | None,
        *,
        start: Callable[[], Awaitable[str]],
        poll: Callable[[str], Awaitable[dict[str, Any]]],
        job: str,
    ) -> tuple[str, dict[str, Any]]:
        """(job id, finished job): poll the resumed ``job_id``, or a job ``start()`` creates and checkpoints.

        A resumed job the provider no longer knows (404) is replaced by one new job; a job this call
        started that vanishes is an error.
        """
        resumed = job_id is not None
        while True:
            if job_id is None:
                job_id = await start()
            try:
                return job_id, await poll(job_id)
            except JobNotFound:
                if not resumed:
                    raise
                logger.warning(
                    "%s: resumed %s %s no longer exists; starting a new one", self.name, job, job_id
                )
                job_id, resumed = None, False

    def _resume_state(self, request: GenerationRequest, kind: str) -> dict[str, Any] | None:
        """The checkpoint to resume from, when it is this service's and names a job."""
        cp = request.checkpoint
        if not cp:
            return None
        if cp.get("kind") != kind or not isinstance(cp.get("job_id"), str) or not cp.get("job_id"):
            logger.warning(
                "%s: task %s has a checkpoint this service cannot resume (kind %r); starting a new job",
                self.name, request.task_id, cp.get("kind"),
            )
            return None
        return dict(cp)

    def _result(
        self,
        data: bytes,
        *,
        modality: str,
        model: str,
        job_id: str | None,
        extra: Mapping[str, str | int | float | bool | None] | None = None,
    ) -> GenerationResult:
        """Wrap the provider's bytes, untouched, after checking they are media of the right kind."""
        mime = sniff_mime(data)
        if mime is None or not mime.startswith(modality + "/"):
            raise GenerationFailed(
                f"{self.label} returned {len(data)} bytes that are not {modality} media "
                f"(sniffed {mime or 'unknown'}, starts with {bytes(data[:12])!r})"
            )
        meta: dict[str, str | int | float | bool] = {
            "provider": self.name,
            "model": model,
            "c2pa_marker": has_c2pa_marker(data),
        }
        if job_id:
            meta["job_id"] = job_id
        for k, v in (extra or {}).items():
            if v is not None:
                meta[k] = v
        return GenerationResult(data=data, mime=mime, metadata=meta)
