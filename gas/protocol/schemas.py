"""Wire schemas of the generative protocol (miner endpoints), shared by the miner and the validator.

The shapes follow the reference subnet so mixed networks interoperate:

* ``POST /gen_image`` / ``POST /gen_video`` take :class:`GenerationRequestBody` (JSON) plus the
  ``X-Webhook-URL`` header and answer ``201`` with :class:`TaskAccepted`;
* ``GET /miner_info`` answers :class:`MinerInfo`, ``GET /health`` :class:`Health`;
* every error is :class:`ErrorBody` (``{"error", "timestamp"}`` as in the reference, plus a
  machine-readable ``code`` that reference clients simply ignore).

Unknown fields in requests are ignored (as the reference does), so newer validators can add
parameters without breaking older miners.
"""

from __future__ import annotations

import time
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: Longest prompt a miner accepts (characters). Validators send 80-240 words.
MAX_PROMPT_CHARS = 4000
#: Longest webhook URL accepted in ``X-Webhook-URL``.
MAX_WEBHOOK_URL_CHARS = 2048
#: The header carrying the validator's callback URL.
WEBHOOK_HEADER = "X-Webhook-URL"
#: ``status`` in a 201 answer: the reference's value (the task itself starts ``pending``).
SUBMITTED = "submitted"
#: Prompts are echoed back shortened to this many characters plus "...".
PROMPT_ECHO_CHARS = 100


class GenerationRequestBody(BaseModel):
    """Body of ``POST /gen_image`` and ``POST /gen_video``."""

    model_config = ConfigDict(extra="ignore")

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    parameters: dict[str, Any] = Field(default_factory=dict)

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("prompt must not be blank")
        return v

    @field_validator("parameters", mode="before")
    @classmethod
    def _null_parameters(cls, v: Any) -> Any:
        return {} if v is None else v


def echo_prompt(prompt: str) -> str:
    """The prompt as the reference echoes it: at most 100 characters, then ``...``."""
    return prompt if len(prompt) <= PROMPT_ECHO_CHARS else prompt[:PROMPT_ECHO_CHARS] + "..."


class WebhookUrlError(ValueError):
    """``X-Webhook-URL`` is missing or not an absolute http(s) URL."""


def check_webhook_url(value: str | None) -> str:
    """Return ``value`` when it is an absolute ``http``/``https`` URL with a host; raise otherwise.

    Only the shape is checked (validators on a LAN or on loopback must work), never reachability.
    """
    if value is None or not value.strip():
        raise WebhookUrlError(f"missing header {WEBHOOK_HEADER}: the URL the media is delivered to")
    value = value.strip()
    if len(value) > MAX_WEBHOOK_URL_CHARS:
        raise WebhookUrlError(f"{WEBHOOK_HEADER} is longer than {MAX_WEBHOOK_URL_CHARS} characters")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise WebhookUrlError(f"{WEBHOOK_HEADER} contains whitespace or control characters")
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise WebhookUrlError(f"{WEBHOOK_HEADER} {value!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise WebhookUrlError(f"{WEBHOOK_HEADER} must be an http:// or https:// URL, got {value!r}")
    if not parts.hostname:
        raise WebhookUrlError(f"{WEBHOOK_HEADER} {value!r} has no host")
    if port == 0:
        raise WebhookUrlError(f"{WEBHOOK_HEADER} {value!r} has port 0")
    if parts.username or parts.password:
        raise WebhookUrlError(f"{WEBHOOK_HEADER} must not carry credentials")
    return value


class TaskAccepted(BaseModel):
    """``201`` answer to a generation request."""

    task_id: str
    status: str = SUBMITTED
    modality: Literal["image", "video"]
    prompt: str
    webhook_url: str
    created_at: float  # seconds since the epoch


class TaskStats(BaseModel):
    total: int = 0
    pending: int = 0
    processing: int = 0
    completed: int = 0
    failed: int = 0


class MinerInfo(BaseModel):
    """``GET /miner_info``: validators classify miners by ``miner_type``."""

    model_config = ConfigDict(extra="allow")

    uid: int | None
    hotkey: str
    miner_type: str = "GENERATOR"
    services: list[dict[str, Any]] = Field(default_factory=list)
    task_stats: TaskStats = Field(default_factory=TaskStats)
    config: dict[str, Any] = Field(default_factory=dict)
    version: str
    uptime: float  # seconds since the server started


class Health(BaseModel):
    """``GET /health``: ``healthy`` (200) when at least one service can take work, else 503."""

    status: Literal["healthy", "unhealthy"]
    services_available: int
    services_total: int
    timestamp: float


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer: the reference's ``{error, timestamp}`` plus a stable ``code``."""

    error: str
    timestamp: float = Field(default_factory=time.time)
    code: str = "error"


__all__ = [
    "MAX_PROMPT_CHARS", "MAX_WEBHOOK_URL_CHARS", "PROMPT_ECHO_CHARS", "SUBMITTED", "WEBHOOK_HEADER",
    "ErrorBody", "GenerationRequestBody", "Health", "MinerInfo", "TaskAccepted", "TaskStats",
    "WebhookUrlError", "check_webhook_url", "echo_prompt",
]
