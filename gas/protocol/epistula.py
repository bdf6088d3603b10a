"""Epistula v2: signed HTTP requests between validators and miners (wire-compatible, stricter checks).

Wire format (see ``docs/epistula.md``)::

    Epistula-Version:           "2"
    Epistula-Timestamp:         <milliseconds since the epoch, decimal int>
    Epistula-Uuid:              <uuid4, canonical lowercase form>
    Epistula-Signed-By:         <signer ss58>
    Epistula-Signed-For:        <receiver ss58>          (omitted when signing for nobody)
    Epistula-Request-Signature: "0x" + hex(sr25519 signature of the message below)

    message = f"{sha256(body).hexdigest()}.{uuid}.{timestamp}.{signed_for or ''}"

Signing produces exactly what the reference sends (minus the ``Epistula-Secret-Signature-*``
headers, which no receiver ever verifies). Verification (:class:`EpistulaVerifier`) adds what the
reference lacks: a body size cap checked before hashing, a replay cache, a tighter clock window
for future timestamps, strict header parsing and a pluggable authorisation step.
"""

from __future__ import annotations

import hashlib
import heapq
import re
import threading
import time
import uuid as uuid_mod
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gas.chain.base import Metagraph

VERSION = "2"

H_VERSION = "Epistula-Version"
H_TIMESTAMP = "Epistula-Timestamp"
H_UUID = "Epistula-Uuid"
H_SIGNED_BY = "Epistula-Signed-By"
H_SIGNED_FOR = "Epistula-Signed-For"
H_SIGNATURE = "Epistula-Request-Signature"

REQUIRED_HEADERS = (H_VERSION, H_TIMESTAMP, H_UUID, H_SIGNED_BY, H_SIGNED_FOR, H_SIGNATURE)

_TIMESTAMP_RE = re.compile(r"[0-9]{1,16}")
_SIGNATURE_RE = re.compile(r"0x[0-9a-fA-F]{128}")  # sr25519 signatures are 64 bytes


# --------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------
class EpistulaError(Exception):
    """A rejected request. ``status`` is the HTTP status the server should answer with."""

    status: int = 400

    def __init__(self, message: str, *, header: str | None = None) -> None:
        self.header = header
        super().__init__(message)


class MalformedRequest(EpistulaError):
    status = 400


class MissingHeader(MalformedRequest):
    def __init__(self, header: str) -> None:
        super().__init__(f"missing header {header}", header=header)


class UnsupportedVersion(MalformedRequest):
    pass


class BodyTooLarge(EpistulaError):
    status = 413


class AuthenticationError(EpistulaError):
    """The request is well formed but cannot be trusted (401)."""

    status = 401


class StaleRequest(AuthenticationError):
    pass


class FutureRequest(AuthenticationError):
    pass


class WrongRecipient(AuthenticationError):
    pass


class ReplayedRequest(AuthenticationError):
    pass


class BadSignature(AuthenticationError):
    pass


class NotAuthorized(EpistulaError):
    status = 403


class ReplayCacheFull(EpistulaError):
    """Too many live nonces to remember: refuse rather than forget one (which would allow replay)."""

    status = 503


# --------------------------------------------------------------------------------------------
# signing
# --------------------------------------------------------------------------------------------
def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def signing_message(body_sha256_hex: str, uuid: str, timestamp_ms: int | str, signed_for: str | None) -> str:
    """The exact string that is signed: ``"{sha256hex}.{uuid}.{timestamp}.{signed_for or ''}"``."""
    return f"{body_sha256_hex}.{uuid}.{timestamp_ms}.{signed_for or ''}"


def _canonical_uuid(value: str) -> str | None:
    try:
        parsed = uuid_mod.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return None
    return value if str(parsed) == value else None


def sign_request(
    body: bytes,
    keypair,
    *,
    signed_for: str | None,
    now_ms: int | None = None,
    uuid: str | None = None,
) -> dict[str, str]:
    """Epistula v2 headers for ``body`` signed by ``keypair`` (a ``bittensor_core.Keypair``).

    ``signed_for`` is the receiver's ss58 hotkey; ``None`` (or "") signs for nobody: the
    ``Epistula-Signed-For`` header is left out and the message ends in ``"."`` (as the reference
    does for server calls). Our verifier rejects such requests; they exist for compatibility.
    """
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise TypeError("body must be bytes")
    ts = int(time.time() * 1000) if now_ms is None else int(now_ms)
    if ts < 0:
        raise ValueError("timestamp must not be negative")
    nonce = str(uuid_mod.uuid4()) if uuid is None else uuid
    if _canonical_uuid(nonce) is None:
        raise ValueError(f"uuid {nonce!r} is not a canonical lowercase UUID string")
    message = signing_message(body_hash(bytes(body)), nonce, ts, signed_for)
    signature = keypair.sign(message.encode("utf-8"))
    headers = {
        H_VERSION: VERSION,
        H_TIMESTAMP: str(ts),
        H_UUID: nonce,
        H_SIGNED_BY: keypair.ss58_address,
        H_SIGNATURE: "0x" + bytes(signature).hex(),
    }
    if signed_for:
        headers[H_SIGNED_FOR] = signed_for
    return headers


# --------------------------------------------------------------------------------------------
# verification
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VerifiedRequest:
    hotkey: str
    uuid: str
    timestamp_ms: int


class _NonceCache:
    """Remembers (hotkey, uuid) pairs until they expire; thread-safe and bounded."""

    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        self._expiry: dict[tuple[str, str], int] = {}
        self._heap: list[tuple[int, tuple[str, str]]] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._expiry)

    def _evict(self, now_ms: int) -> None:
        while self._heap and self._heap[0][0] <= now_ms:
            exp, key = heapq.heappop(self._heap)
            if self._expiry.get(key) == exp:
                del self._expiry[key]

    def seen(self, key: tuple[str, str], now_ms: int) -> bool:
        with self._lock:
            self._evict(now_ms)
            return key in self._expiry

    def add(self, key: tuple[str, str], now_ms: int, expires_ms: int) -> bool:
        """Record ``key``; False when it is already live (a replay). Raises when full."""
        with self._lock:
            self._evict(now_ms)
            if key in self._expiry:
                return False
            if len(self._expiry) >= self._max:
                raise ReplayCacheFull(f"replay cache is full ({self._max} live nonces); try again shortly")
            self._expiry[key] = expires_ms
            heapq.heappush(self._heap, (expires_ms, key))
            return True


class EpistulaVerifier:
    """Checks incoming Epistula v2 requests addressed to ``self_hotkey``.

    Clock window: a request is accepted when ``now - max_age_s <= timestamp <= now + max_future_s``
    (defaults: 30 s into the past, to allow for upload time and queueing; 5 s into the future, for
    clock skew only). The reference accepts ±15 s.

    Replay: every accepted (signer, uuid) is remembered for ``nonce_ttl_s`` (default and minimum
    ``max_age_s + max_future_s``, i.e. as long as its timestamp could still be accepted); a second
    request with the same pair is rejected. At most ``max_nonces`` live entries; beyond that
    requests are refused with 503 rather than forgetting a nonce early.

    Order of checks: headers present (400) → version (400) → header formats (400) → body size (413,
    before hashing) → clock window (401) → signed-for is us (401) → replay (401) → signature (401)
    → ``authorize`` (403) → record nonce (401 if a concurrent twin won). A nonce is recorded only
    for requests that pass every check, so forged requests cannot fill the cache.

    ``now_ms`` should be captured when the request's headers arrive, so a slow upload of an
    allowed size does not turn stale.
    """

    def __init__(
        self,
        *,
        self_hotkey: str,
        max_age_s: float = 30.0,
        max_future_s: float = 5.0,
        max_body_bytes: int,
        nonce_ttl_s: float | None = None,
        max_nonces: int = 100_000,
        authorize: Callable[[str], str | None] | None = None,
    ) -> None:
        if not self_hotkey:
            raise ValueError("self_hotkey is required")
        if max_age_s <= 0 or max_future_s < 0:
            raise ValueError("max_age_s must be > 0 and max_future_s >= 0")
        if max_body_bytes < 0:
            raise ValueError("max_body_bytes must be >= 0")
        window_s = max_age_s + max_future_s
        if nonce_ttl_s is None:
            nonce_ttl_s = window_s
        if nonce_ttl_s < window_s:
            raise ValueError(
                f"nonce_ttl_s={nonce_ttl_s} is shorter than the clock window ({window_s} s): replays would pass"
            )
        self.self_hotkey = self_hotkey
        self.max_age_ms = int(max_age_s * 1000)
        self.max_future_ms = int(max_future_s * 1000)
        self.max_body_bytes = max_body_bytes
        self.nonce_ttl_ms = int(nonce_ttl_s * 1000)
        self.authorize = authorize
        self._nonces = _NonceCache(max_nonces)

    @staticmethod
    def _headers(headers: Mapping[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, value in headers.items():
            k = key.lower()
            if k in out and out[k] != value:
                raise MalformedRequest(f"header {key} is given twice with different values", header=key)
            out[k] = value
        return out

    def verify(self, headers: Mapping[str, str], body: bytes, *, now_ms: int | None = None) -> VerifiedRequest:
        now = int(time.time() * 1000) if now_ms is None else int(now_ms)
        h = self._headers(headers)
        for name in REQUIRED_HEADERS:
            if name.lower() not in h:
                raise MissingHeader(name)
        version = h[H_VERSION.lower()]
        ts_raw = h[H_TIMESTAMP.lower()]
        nonce = h[H_UUID.lower()]
        signed_by = h[H_SIGNED_BY.lower()]
        signed_for = h[H_SIGNED_FOR.lower()]
        sig_raw = h[H_SIGNATURE.lower()]

        if version != VERSION:
            raise UnsupportedVersion(f"unsupported {H_VERSION} {version!r} (expected {VERSION!r})", header=H_VERSION)
        if not _TIMESTAMP_RE.fullmatch(ts_raw):
            raise MalformedRequest(f"{H_TIMESTAMP} {ts_raw!r} is not an integer of milliseconds", header=H_TIMESTAMP)
        if _canonical_uuid(nonce) is None:
            raise MalformedRequest(f"{H_UUID} {nonce!r} is not a canonical UUID", header=H_UUID)
        if not _SIGNATURE_RE.fullmatch(sig_raw):
            raise MalformedRequest(f"{H_SIGNATURE} must be '0x' followed by 128 hex digits", header=H_SIGNATURE)
        try:
            from bittensor_core import Keypair

            signer = Keypair(ss58_address=signed_by)
        except (ValueError, TypeError) as exc:
            raise MalformedRequest(
                f"{H_SIGNED_BY} {signed_by!r} is not an ss58 address: {exc}", header=H_SIGNED_BY
            ) from None

        if len(body) > self.max_body_bytes:
            raise BodyTooLarge(f"body of {len(body)} bytes exceeds the limit of {self.max_body_bytes} bytes")

        ts = int(ts_raw)
        if ts < now - self.max_age_ms:
            raise StaleRequest(f"request timestamp {ts} is {now - ts} ms old (limit {self.max_age_ms} ms)")
        if ts > now + self.max_future_ms:
            raise FutureRequest(
                f"request timestamp {ts} is {ts - now} ms in the future (limit {self.max_future_ms} ms)"
            )
        if signed_for != self.self_hotkey:
            raise WrongRecipient(f"request is signed for {signed_for!r}, not for this hotkey {self.self_hotkey}")

        key = (signed_by, nonce)
        if self._nonces.seen(key, now):
            raise ReplayedRequest(f"uuid {nonce} from {signed_by} was already used")

        message = signing_message(body_hash(bytes(body)), nonce, ts_raw, signed_for)
        try:
            ok = signer.verify(message.encode("utf-8"), bytes.fromhex(sig_raw[2:]))
        except (ValueError, TypeError):
            ok = False
        if not ok:
            raise BadSignature(f"signature does not verify for {signed_by}")

        if self.authorize is not None:
            reason = self.authorize(signed_by)
            if reason is not None:
                raise NotAuthorized(reason)

        if not self._nonces.add(key, now, now + self.nonce_ttl_ms):
            raise ReplayedRequest(f"uuid {nonce} from {signed_by} was already used")
        return VerifiedRequest(hotkey=signed_by, uuid=nonce, timestamp_ms=ts)


# --------------------------------------------------------------------------------------------
# authorisation from the metagraph
# --------------------------------------------------------------------------------------------
def metagraph_authorizer(
    get_metagraph: Callable[[], Metagraph],
    *,
    require_permit: bool = True,
    min_stake: float = 0.0,
) -> Callable[[str], str | None]:
    """An ``authorize`` callback built on the metagraph (``get_metagraph`` is called per request;
    cache it on the caller's side). Exceptions from ``get_metagraph`` propagate (our fault, not
    the caller's: answer 5xx).

    Rule: the hotkey must be registered, and then

    * ``require_permit=False, min_stake<=0``: nothing more (any registered hotkey);
    * ``require_permit=True,  min_stake<=0``: it must hold a validator permit;
    * ``require_permit=False, min_stake>0``:  its stake must be ``>= min_stake``;
    * ``require_permit=True,  min_stake>0``:  a validator permit OR stake ``>= min_stake``.
    """

    def authorize(hotkey: str) -> str | None:
        mg = get_metagraph()
        neuron = mg.by_hotkey(hotkey)
        if neuron is None:
            return f"hotkey {hotkey} is not registered on subnet {mg.netuid}"
        stake_rule = min_stake > 0
        if not require_permit and not stake_rule:
            return None
        if require_permit and neuron.validator_permit:
            return None
        if stake_rule and neuron.stake >= min_stake:
            return None
        if require_permit and stake_rule:
            return (
                f"hotkey {hotkey} has no validator permit and stake {neuron.stake:.9g} "
                f"is below the minimum {min_stake:.9g}"
            )
        if require_permit:
            return f"hotkey {hotkey} has no validator permit on subnet {mg.netuid}"
        return f"hotkey {hotkey} has stake {neuron.stake:.9g}, below the minimum {min_stake:.9g}"

    return authorize
