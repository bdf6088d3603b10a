"""The :class:`~gas.chain.base.Chain` protocol over the bittensor 11 SDK.

This is the only module in GAS that imports ``bittensor`` (lazily: ``import bittensor`` costs
about half a second, so it happens on first use, not on import).

How it drives the SDK
---------------------
* It owns an async :class:`bittensor.Client` running on a private event-loop thread, and runs
  every SDK coroutine there under ``asyncio.wait_for``. (The SDK's blocking ``Subtensor`` facade
  has no per-call timeout; a stalled node would block its caller for minutes.)
* Reads go through the SDK's typed namespaces (``subnets.metagraph``,
  ``hyperparameters.weights_rate_limit``, ``epochs.blocks_since_last_update``, ``neurons.uid``)
  and, for commitments, one ``query_map`` of ``Commitments.CommitmentOf`` decoded here.
* Writes go through the SDK's intents (``SetWeights``, ``ServeAxon``, ``BurnedRegister``) and
  ``submit_call(calls.Commitments.set_commitment(...))`` for the commitment, which has no intent.
* ``substrate=`` is handed to ``bittensor.Client(network, substrate=...)``: the SDK's own seam for
  swapping the chain-access backend (tests pass an in-memory fake).

Errors, retries, timeouts
-------------------------
* Connection failures and timeouts become :class:`ChainUnavailable` (endpoint in the message).
  Reads retry them ``retries`` times with exponential backoff (``backoff * 2**attempt``),
  reconnecting in between. Writes retry only while (re)connecting: once a write has started, a
  lost connection is reported, never resubmitted, because the extrinsic may already be in a block.
* Connecting is bounded by ``connect_timeout`` overall (retries included). A refused connection
  (nothing listens on the port) fails at once without retrying.
* Chain rule violations (rate limit, not registered, no permit, old version key, ...) map to the
  typed errors of :mod:`gas.chain.base` and are never retried. Anything else is a ChainError.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import ipaddress
import logging
import math
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from gas.chain.base import (
    AlreadyRegistered,
    ChainError,
    ChainUnavailable,
    Commitment,
    CommitmentTooLarge,
    Identity,
    InsufficientBalance,
    InvalidWeights,
    Metagraph,
    Neuron,
    NotRegistered,
    NoValidatorPermit,
    NoWallet,
    RateLimited,
    SubnetFull,
    SubnetNotFound,
    VersionKeyTooLow,
    WeightsResult,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds per block on the real networks (the SDK reads Aura.SlotDuration; we do not need to).
BLOCK_TIME = 12.0
#: pallet_commitments on the live runtime: ``MaxFields`` = 3 and a ``Raw`` field holds <= 128 bytes.
MAX_COMMIT_FIELDS = 3
MAX_RAW_FIELD_BYTES = 128
MAX_COMMITMENT_BYTES = MAX_COMMIT_FIELDS * MAX_RAW_FIELD_BYTES
#: Network names the SDK resolves itself (``local`` honours ``BT_CHAIN_ENDPOINT``).
SDK_NETWORKS = ("finney", "test", "local", "archive", "devnet")

_NETWORK_ERRNOS = {
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.ECONNABORTED,
    errno.ETIMEDOUT,
    errno.ENETUNREACH,
    errno.ENETDOWN,
    errno.EHOSTUNREACH,
    errno.EHOSTDOWN,
    errno.EPIPE,
}
_REFUSED_TEXT = ("connection refused", "connect call failed", "errno 111")
_SDK_RATE_LIMIT_RE = re.compile(
    r"last set (\d+) blocks ago; the rate limit is (\d+) blocks\. Retry in ~(\d+) blocks"
)
_INVALID_WEIGHT_ERRORS = {
    "WeightVecNotEqualSize",
    "DuplicateUids",
    "UidVecContainInvalidOne",
    "WeightVecLengthIsLow",
    "MaxWeightExceeded",
    "UidsLengthExceedUidsInSubNet",
    "InvalidUid",
    "CanNotSetRootNetworkWeights",
    "CommitRevealEnabled",
    "CommitRevealDisabled",
}


def _check_network(network: str) -> str:
    if network in SDK_NETWORKS or network.startswith(("ws://", "wss://")):
        return network
    if network == "dev":
        raise ValueError("network 'dev' is the embedded dev chain (gas.chain.devchain), not the SDK")
    raise ValueError(f"unknown network {network!r}: use one of {', '.join(SDK_NETWORKS)} or a ws(s):// URL")


# --------------------------------------------------------------------------------------------
# a private event loop on a daemon thread
# --------------------------------------------------------------------------------------------
class _LoopThread:
    """One asyncio loop on a daemon thread; ``run`` blocks the caller with a hard timeout."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name="gas-chain-sdk", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            # Cancel whatever is left (a stuck handshake, a dropped subscription) so no socket
            # or task outlives the loop.
            tasks = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
            for task in tasks:
                task.cancel()
            if tasks:
                with contextlib.suppress(Exception):
                    self.loop.run_until_complete(asyncio.wait(tasks, timeout=2.0))
            with contextlib.suppress(Exception):
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    def run(self, coro: Awaitable[T], timeout: float) -> T:
        """Run ``coro`` on the loop; ``TimeoutError`` after ``timeout`` seconds."""
        timeout = max(0.01, float(timeout))

        async def bounded() -> T:
            try:
                return await asyncio.wait_for(coro, timeout)
            except TimeoutError as exc:
                if str(exc):
                    raise
                raise TimeoutError(f"no answer within {timeout:.1f}s") from None

        future = asyncio.run_coroutine_threadsafe(bounded(), self.loop)
        try:
            # The inner wait_for fires first; this guard only matters if cancellation hangs.
            return future.result(timeout + 5.0)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"no answer within {timeout:.1f}s") from None
        except concurrent.futures.CancelledError:
            raise ConnectionResetError("the chain connection was reset while the call ran") from None

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.loop.stop)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5.0)


# --------------------------------------------------------------------------------------------
# error classification
# --------------------------------------------------------------------------------------------
def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and its causes/contexts, outermost first (bounded, cycle-safe)."""
    out: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in out and len(out) < 8:
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


def _is_connection_error(exc: BaseException) -> bool:
    from bittensor.result import ConnectionNotReady, RpcConnectionError

    for e in _chain(exc):
        if isinstance(e, (RpcConnectionError, ConnectionNotReady, ConnectionError, TimeoutError)):
            return True
        if isinstance(e, asyncio.TimeoutError | socket.gaierror | socket.herror):
            return True
        if isinstance(e, OSError) and e.errno in _NETWORK_ERRNOS:
            return True
        if type(e).__module__.startswith("websockets"):
            return True
    return False


def _is_refused(exc: BaseException) -> bool:
    for e in _chain(exc):
        if isinstance(e, ConnectionRefusedError):
            return True
        text = str(e).lower()
        if any(needle in text for needle in _REFUSED_TEXT):
            return True
    return False


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _code(err: Any) -> str:
    code = getattr(err, "code", None)
    return str(getattr(code, "value", code) or "")


# --------------------------------------------------------------------------------------------
# value helpers
# --------------------------------------------------------------------------------------------
def commitment_fields(data: bytes) -> list[dict[str, bytes]]:
    """``CommitmentInfo.fields`` for ``data``: ``Raw<N>`` fields of at most 128 bytes, at most 3.

    ``Data::Raw<N>`` is a fixed ``[u8; N]`` variant (index N+1) of pallet_commitments; readers
    (the SDK's and ours) concatenate the Raw fields in order. Empty data is one ``Raw0`` field.
    """
    data = bytes(data)
    if len(data) > MAX_COMMITMENT_BYTES:
        raise CommitmentTooLarge(
            len(data),
            MAX_COMMITMENT_BYTES,
            f"the chain stores at most {MAX_COMMIT_FIELDS} Raw fields of {MAX_RAW_FIELD_BYTES} bytes",
        )
    chunks = [data[i : i + MAX_RAW_FIELD_BYTES] for i in range(0, len(data), MAX_RAW_FIELD_BYTES)] or [b""]
    return [{f"Raw{len(chunk)}": chunk} for chunk in chunks]


def _field_bytes(value: Any) -> bytes | None:
    """The bytes of one decoded ``Raw<N>`` payload (0x-hex, bytes or a list of ints), else None."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        try:
            return bytes.fromhex(value.removeprefix("0x"))
        except ValueError:
            return None
    if isinstance(value, list | tuple):
        try:
            return bytes(int(b) for b in value)
        except (TypeError, ValueError):
            return None
    return None


def raw_commitment_bytes(fields: Any) -> bytes | None:
    """Concatenated ``Raw*`` bytes of decoded commitment fields; None when there are none.

    Hash and timelock variants carry no plain data and are ignored. Never raises: a field that
    cannot be read is skipped.
    """
    if not isinstance(fields, list | tuple):
        return None
    found = False
    data = b""
    for entry in fields:
        if isinstance(entry, list | tuple) and len(entry) == 1:  # tolerate the newtype-wrapped shape
            entry = entry[0]
        if not isinstance(entry, dict):
            continue
        for variant, value in entry.items():
            if not (isinstance(variant, str) and variant.startswith("Raw")):
                continue
            chunk = _field_bytes(value)
            if chunk is None:
                continue
            found = True
            data += chunk
    return data if found else None


def parse_axon(axon: Any) -> tuple[str | None, int | None]:
    """``(ip, port)`` from the SDK's ``ip:port`` / ``[ipv6]:port`` string; (None, None) if unserved."""
    if not isinstance(axon, str) or ":" not in axon:
        return None, None
    host, _, port_text = axon.rpartition(":")
    host = host.strip("[]")
    try:
        port = int(port_text)
        ipaddress.ip_address(host)
    except ValueError:
        return None, None
    if not host or port <= 0:
        return None, None
    return host, port


def _block_of(result: Any) -> int | None:
    extrinsic_id = getattr(result, "extrinsic_id", None)
    if not extrinsic_id:
        return None
    head, _, _ = str(extrinsic_id).partition("-")
    try:
        return int(head)
    except ValueError:
        return None


def _to_neuron(n: Any) -> Neuron:
    ip, port = parse_axon(getattr(n, "axon", None))
    return Neuron(
        uid=int(n.uid),
        hotkey=str(n.hotkey),
        coldkey=str(n.coldkey),
        stake=float(n.total_stake.amount),  # the subnet's alpha units (dTAO stake weight)
        validator_permit=bool(n.validator_permit),
        axon_ip=ip,
        axon_port=port,
        last_update=int(n.last_update or 0),
        incentive=float(n.incentive or 0.0),
        emission=float(n.emission.amount),
        registered_at=int(n.block_at_registration or 0),
    )


# --------------------------------------------------------------------------------------------
# the backend
# --------------------------------------------------------------------------------------------
class BittensorChain:
    """A :class:`~gas.chain.base.Chain` on finney, test, local or any ``ws(s)://`` endpoint."""

    def __init__(
        self,
        network: str,
        netuid: int,
        *,
        identity: Identity | None = None,
        substrate: object | None = None,
        connect_timeout: float = 15.0,
        retries: int = 3,
        backoff: float = 1.0,
        read_timeout: float = 60.0,
        write_timeout: float = 300.0,
        wait_for_finalization: bool = False,
    ) -> None:
        self.network = _check_network(network)
        self.netuid = int(netuid)
        self.identity = identity
        self.connect_timeout = float(connect_timeout)
        self.retries = max(0, int(retries))
        self.backoff = max(0.0, float(backoff))
        self.read_timeout = float(read_timeout)
        self.write_timeout = float(write_timeout)
        self.wait_for_finalization = bool(wait_for_finalization)
        self._substrate = substrate
        self._endpoint: str | None = None
        self._client: Any = None
        self._loop: _LoopThread | None = None
        self._lock = threading.RLock()
        # Remembered for error messages only (the chain's errors do not echo them).
        self._last_commitment_size = 0
        self._last_version_key = 0

    def __repr__(self) -> str:
        return f"BittensorChain(network={self.network!r}, netuid={self.netuid})"

    @property
    def endpoint(self) -> str:
        """The websocket URL the network name resolves to."""
        if self._endpoint is None:
            from bittensor.settings import resolve_endpoint

            self._endpoint = resolve_endpoint(self.network)[1]
        return self._endpoint

    # ---------------------------------------------------------------------------- plumbing
    def _new_client(self) -> Any:
        import bittensor as bt

        return bt.Client(self.network, substrate=self._substrate)

    def _connected(self) -> tuple[Any, _LoopThread]:
        """The live client, connecting first if needed (bounded by ``connect_timeout``)."""
        with self._lock:
            if self._client is not None and self._loop is not None:
                return self._client, self._loop
            start = time.monotonic()
            # Keep a little margin so the whole connect phase ends within connect_timeout.
            deadline = start + max(0.5, self.connect_timeout - 1.0)
            attempt = 0
            while True:
                loop = _LoopThread()
                client = self._new_client()
                try:
                    loop.run(client.connect(), deadline - time.monotonic())
                except Exception as exc:
                    loop.stop()
                    if not _is_connection_error(exc):
                        raise ChainError(f"connecting to {self.endpoint} failed: {_describe(exc)}") from exc
                    attempt += 1
                    delay = self.backoff * 2 ** (attempt - 1)
                    left = deadline - time.monotonic() - delay
                    if _is_refused(exc) or attempt > self.retries or left < 1.0:
                        elapsed = time.monotonic() - start
                        raise ChainUnavailable(
                            self.endpoint,
                            f"could not connect ({attempt} attempt(s) in {elapsed:.1f}s): {_describe(exc)}",
                        ) from exc
                    log.warning(
                        "chain %s: connect failed (%s); retrying in %.1fs",
                        self.endpoint,
                        _describe(exc),
                        delay,
                    )
                    time.sleep(delay)
                    continue
                self._client, self._loop = client, loop
                return client, loop

    def _drop(self) -> None:
        """Forget the connection (closing it best-effort); the next call reconnects."""
        with self._lock:
            client, loop = self._client, self._loop
            self._client = self._loop = None
        if loop is not None:
            if client is not None:
                with contextlib.suppress(Exception):
                    loop.run(client.close(), 5.0)
            loop.stop()

    def _call(
        self,
        action: str,
        fn: Callable[[Any], Awaitable[T]],
        *,
        netuid: int,
        write: bool = False,
    ) -> T:
        """Run ``fn(client)`` on the SDK loop; map errors; retry transient read failures."""
        timeout = self.write_timeout if write else self.read_timeout
        attempts = 1 + self.retries
        for attempt in range(attempts):
            client, loop = self._connected()
            try:
                return loop.run(fn(client), timeout)
            except Exception as exc:
                err = self._translate(exc, action, netuid)
                if isinstance(err, ChainUnavailable):
                    self._drop()  # never keep a connection that just failed
                if not isinstance(err, ChainUnavailable) or write or attempt == attempts - 1:
                    if write and isinstance(err, ChainUnavailable):
                        err = ChainUnavailable(
                            self.endpoint,
                            f"{action}: {_describe(exc)} (the extrinsic may or may not have been included)",
                        )
                    raise err from exc
                delay = self.backoff * 2**attempt
                log.warning(
                    "chain %s: %s failed (%s); retry %d/%d in %.1fs",
                    self.endpoint,
                    action,
                    _describe(exc),
                    attempt + 1,
                    self.retries,
                    delay,
                )
                time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _netuid(self, netuid: int | None) -> int:
        return self.netuid if netuid is None else int(netuid)

    def _wallet(self, action: str) -> Any:
        """The identity's wallet; refuses one whose hotkey is not the identity's hotkey."""
        wallet = getattr(self.identity, "wallet", None)
        if wallet is None or self.identity is None:
            raise NoWallet(action)
        try:
            from bittensor.signing import public_view

            signer = public_view(wallet, "hotkey").ss58_address  # public file only, never unlocks
        except Exception:
            signer = None
        if signer and signer != self.identity.hotkey:
            raise ChainError(
                f"{action}: the wallet's hotkey {signer} is not the identity's hotkey {self.identity.hotkey}"
            )
        return wallet

    @property
    def _hotkey(self) -> str:
        return self.identity.hotkey if self.identity is not None else "?"

    @property
    def _coldkey(self) -> str:
        return self.identity.coldkey if self.identity is not None else "?"

    def _best_effort(self, fn: Callable[[Any], Awaitable[T]], default: T) -> T:
        """A read used only to enrich an error message: no retries, short timeout, never raises."""
        try:
            client, loop = self._connected()
            return loop.run(fn(client), min(10.0, self.read_timeout))
        except Exception:
            return default

    # ---------------------------------------------------------------------------- error mapping
    def _translate(self, exc: BaseException, action: str, netuid: int) -> ChainError:
        from bittensor.result import BittensorError
        from bittensor.result import ChainError as SdkChainError

        if isinstance(exc, ChainError):
            return exc
        if isinstance(exc, SdkChainError) and getattr(exc, "name", None):
            return self._translate_chain_error(exc, action, netuid)
        if _is_connection_error(exc):
            return ChainUnavailable(self.endpoint, f"{action}: {_describe(exc)}")
        if isinstance(exc, SdkChainError):
            return self._translate_chain_error(exc, action, netuid)
        if isinstance(exc, BittensorError) and action == "set_weights":
            return InvalidWeights(f"set_weights: {exc}")
        return ChainError(f"{action} failed on {self.network}: {_describe(exc)}")

    def _translate_chain_error(self, err: Any, action: str, netuid: int) -> ChainError:
        name = getattr(err, "name", None) or ""
        code = _code(err)
        message = getattr(err, "message", None) or str(err)
        detail = f"{message} [{name}]" if name and name not in message else message
        if name == "HotKeyAlreadyRegisteredInSubNet":
            uid = self._best_effort(lambda c: c.neurons.uid(self._hotkey, netuid), None)
            return AlreadyRegistered(self._hotkey, netuid, -1 if uid is None else int(uid))
        if name == "NeuronNoValidatorPermit":
            return NoValidatorPermit(self._hotkey, netuid)
        if name == "IncorrectWeightVersionKey":
            return self._version_key_error(netuid)
        if name == "NoNeuronIdAvailable":
            return SubnetFull(f"subnet {netuid} is full: every uid is taken and still immune ({detail})")
        if name == "AccountNotAllowedCommit" or code == "not_registered":
            return NotRegistered(self._hotkey, netuid)
        if code == "subnet_not_exists":
            return SubnetNotFound(netuid, detail)
        if code == "rate_limited":
            left, limit = self._rate_limit_numbers(action, netuid, message)
            return RateLimited(action, left, limit)
        if name in ("TooManyFieldsInCommitmentInfo", "SpaceLimitExceeded") and action == "set_commitment":
            return CommitmentTooLarge(self._last_commitment_size, MAX_COMMITMENT_BYTES, detail)
        if action == "set_weights" and (name in _INVALID_WEIGHT_ERRORS or code == "invalid_argument"):
            return InvalidWeights(f"set_weights rejected: {detail}")
        if code == "insufficient_balance" and action == "register":
            return self._balance_error(netuid)
        return ChainError(f"{action} failed on {self.network}: {detail}")

    def _rate_limit_numbers(self, action: str, netuid: int, message: str) -> tuple[int, int]:
        """(blocks left, limit) for a rate-limit error; 0 where the chain does not say."""
        match = _SDK_RATE_LIMIT_RE.search(message or "")
        if match:  # the SDK's own preflight says it exactly
            return int(match.group(3)), int(match.group(2))
        if action == "set_weights":

            async def numbers(client: Any) -> tuple[int, int]:
                limit = int(await client.hyperparameters.weights_rate_limit(netuid))
                uid = await client.neurons.uid(self._hotkey, netuid)
                since = (
                    None if uid is None else await client.epochs.blocks_since_last_update(netuid, int(uid))
                )
                return (max(0, limit - int(since)) if since is not None else 0), limit

            return self._best_effort(numbers, (0, 0))
        if action == "serve_axon":

            async def serving(client: Any) -> tuple[int, int]:
                limit = int(await client.query(("SubtensorModule", "ServingRateLimit"), [netuid]) or 0)
                return limit, limit

            return self._best_effort(serving, (0, 0))
        return 0, 0

    def _version_key_error(self, netuid: int) -> VersionKeyTooLow:
        given = self._last_version_key

        async def minimum(client: Any) -> int:
            return int(await client.query(("SubtensorModule", "WeightsVersionKey"), [netuid]) or 0)

        return VersionKeyTooLow(given, self._best_effort(minimum, given + 1))

    def _balance_error(self, netuid: int) -> InsufficientBalance:
        async def amounts(client: Any) -> tuple[float, float]:
            burn = await client.subnets.burn(netuid)
            free = await client.balances.get(self._coldkey)
            return float(burn.tao), float(free.tao)

        needed, available = self._best_effort(amounts, (0.0, 0.0))
        return InsufficientBalance(self._coldkey, needed, available, f"registering on subnet {netuid}")

    def _check(self, result: Any, action: str, netuid: int) -> Any:
        """Raise the mapped error of a failed ExtrinsicResult; return it otherwise."""
        if getattr(result, "success", False):
            return result
        from bittensor.result import ChainError as SdkChainError

        err = getattr(result, "error", None) or SdkChainError(
            getattr(result, "message", "") or "extrinsic failed"
        )
        raise self._translate(err, action, netuid)

    # ---------------------------------------------------------------------------- reads
    def block(self) -> int:
        return int(self._call("block", lambda c: c.block(), netuid=self.netuid))

    def block_time(self) -> float:
        return BLOCK_TIME

    def metagraph(self, netuid: int | None = None) -> Metagraph:
        netuid = self._netuid(netuid)
        mg = self._call("metagraph", lambda c: c.subnets.metagraph(netuid, commitments=False), netuid=netuid)
        if mg is None:
            raise SubnetNotFound(netuid, f"not on {self.network}")
        neurons = tuple(sorted((_to_neuron(n) for n in mg.neurons), key=lambda n: n.uid))
        return Metagraph(netuid=netuid, block=int(mg.block), neurons=neurons, tempo=int(mg.tempo))

    def commitments(self, netuid: int | None = None) -> dict[str, Commitment]:
        netuid = self._netuid(netuid)
        # One storage-map read of CommitmentOf, decoded here rather than by the SDK's
        # ``subnets.commitments``: that helper also reads RevealedCommitments and Uids, and one
        # undecodable field would fail the whole read there.
        rows = self._call(
            "commitments", lambda c: c.query_map(("Commitments", "CommitmentOf"), [netuid]), netuid=netuid
        )
        out: dict[str, Commitment] = {}
        for hotkey, record in rows or []:
            try:
                if isinstance(hotkey, list | tuple) and len(hotkey) == 1:
                    hotkey = hotkey[0]
                if not isinstance(record, dict):
                    continue
                data = raw_commitment_bytes((record.get("info") or {}).get("fields"))
                if data is None:
                    continue  # hash-only or still-sealed timelock: no plain bytes to hand out
                out[str(hotkey)] = Commitment(block=int(record.get("block") or 0), data=data)
            except Exception as exc:  # one odd record must not hide the others
                log.warning("skipping unreadable commitment of %s: %s", hotkey, _describe(exc))
        return out

    def weights(self, netuid: int | None = None) -> dict[int, dict[int, float]]:
        """Current weight rows ``{setter_uid: {uid: fraction}}`` (each row sums to 1)."""
        netuid = self._netuid(netuid)
        rows = self._call("weights", lambda c: c.weights.weights(netuid), netuid=netuid)
        return {int(u): {int(k): float(v) for k, v in row.items()} for u, row in (rows or {}).items() if row}

    def weights_rate_limit(self, netuid: int | None = None) -> int:
        netuid = self._netuid(netuid)
        return int(
            self._call(
                "weights_rate_limit", lambda c: c.hyperparameters.weights_rate_limit(netuid), netuid=netuid
            )
        )

    def blocks_since_last_update(self, uid: int, netuid: int | None = None) -> int | None:
        netuid = self._netuid(netuid)
        value = self._call(
            "blocks_since_last_update",
            lambda c: c.epochs.blocks_since_last_update(netuid, int(uid)),
            netuid=netuid,
        )
        return None if value is None else int(value)

    def uid_of(self, hotkey: str, netuid: int | None = None) -> int | None:
        """The uid of ``hotkey`` on the subnet, or None (one storage read)."""
        netuid = self._netuid(netuid)
        value = self._call("uid", lambda c: c.neurons.uid(hotkey, netuid), netuid=netuid)
        return None if value is None else int(value)

    # ---------------------------------------------------------------------------- writes
    def register(self, netuid: int | None = None) -> int:
        """Burned registration of the identity's hotkey, paid by its coldkey; returns the uid.

        The SDK submits ``BurnedRegister`` MEV-shielded (it refuses it in the clear). Raises
        AlreadyRegistered when the hotkey already holds a uid (nothing is spent then).
        """
        netuid = self._netuid(netuid)
        wallet = self._wallet("register")
        hotkey = self._hotkey
        existing = self.uid_of(hotkey, netuid)
        if existing is not None:
            raise AlreadyRegistered(hotkey, netuid, existing)

        import bittensor as bt

        intent = bt.BurnedRegister(netuid=netuid, hotkey_ss58=hotkey)
        result = self._call(
            "register",
            lambda c: c.execute(
                intent, wallet, wait_for_inclusion=True, wait_for_finalization=self.wait_for_finalization
            ),
            netuid=netuid,
            write=True,
        )
        self._check(result, "register", netuid)
        uid = self.uid_of(hotkey, netuid)
        if uid is None:
            raise ChainError(
                f"register: the extrinsic succeeded but {hotkey} has no uid on subnet {netuid} yet"
            )
        return uid

    def serve_axon(self, ip: str, port: int, netuid: int | None = None) -> None:
        netuid = self._netuid(netuid)
        wallet = self._wallet("serve_axon")
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise ChainError(f"serve_axon: {ip!r} is not an IP address") from None
        if not 0 < int(port) < 65536:
            raise ChainError(f"serve_axon: port {port} is out of range 1..65535")

        import bittensor as bt

        intent = bt.ServeAxon(netuid=netuid, ip=str(ip), port=int(port))
        result = self._call(
            "serve_axon",
            lambda c: c.execute(
                intent, wallet, wait_for_inclusion=True, wait_for_finalization=self.wait_for_finalization
            ),
            netuid=netuid,
            write=True,
        )
        self._check(result, "serve_axon", netuid)

    def set_commitment(self, data: bytes | str, netuid: int | None = None) -> None:
        netuid = self._netuid(netuid)
        payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        fields = commitment_fields(payload)  # CommitmentTooLarge before anything touches the network
        wallet = self._wallet("set_commitment")
        self._last_commitment_size = len(payload)

        import bittensor as bt

        call = bt.calls.Commitments.set_commitment(netuid=netuid, info={"fields": fields})
        result = self._call(
            "set_commitment",
            lambda c: c.submit_call(
                call,
                wallet,
                signer="hotkey",
                wait_for_inclusion=True,
                wait_for_finalization=self.wait_for_finalization,
            ),
            netuid=netuid,
            write=True,
        )
        self._check(result, "set_commitment", netuid)

    def set_weights(
        self, uids: Sequence[int], weights: Sequence[float], version_key: int, netuid: int | None = None
    ) -> WeightsResult:
        """Set (or, on commit-reveal subnets, timelock-commit) weights; raises on any failure.

        The SDK normalises to u16 (max -> 65535, round half to even, zeros dropped), clips to the
        subnet's max_weight_limit, checks registration and the rate limit before signing, and
        picks plain ``set_mechanism_weights`` or ``commit_timelocked_mechanism_weights``.
        """
        netuid = self._netuid(netuid)
        uid_list = [int(u) for u in uids]
        weight_list = [float(w) for w in weights]
        if len(uid_list) != len(weight_list):
            raise InvalidWeights(f"{len(uid_list)} uids but {len(weight_list)} weights")
        if any(not math.isfinite(w) or w < 0 for w in weight_list):
            raise InvalidWeights("weights must be finite and non-negative")
        if not any(w > 0 for w in weight_list):
            raise InvalidWeights("all weights are zero; nothing to set")
        wallet = self._wallet("set_weights")
        self._last_version_key = int(version_key)

        import bittensor as bt
        from bittensor.result import BittensorError

        try:
            intent = bt.SetWeights(
                netuid=netuid, uids=uid_list, weights=weight_list, version_key=int(version_key)
            )
        except BittensorError as exc:
            raise InvalidWeights(f"set_weights: {exc}") from exc
        result = self._call(
            "set_weights",
            lambda c: c.execute(
                intent,
                wallet,
                wait_for_inclusion=True,
                wait_for_finalization=self.wait_for_finalization,
                retries=2,  # the SDK resubmits only transient pool rejections (nonce races)
            ),
            netuid=netuid,
            write=True,
        )
        self._check(result, "set_weights", netuid)
        reveal_round = (getattr(result, "data", None) or {}).get("reveal_round")
        message = (
            f"weights committed (timelocked; the chain reveals them at drand round {reveal_round})"
            if reveal_round is not None
            else "weights set"
        )
        return WeightsResult(success=True, message=message, block=_block_of(result))

    # ---------------------------------------------------------------------------- lifecycle
    def reconnect(self) -> None:
        """Close the SDK client and open a new one (raises ChainUnavailable if that fails)."""
        self._drop()
        self._connected()

    def close(self) -> None:
        self._drop()

    def __enter__(self) -> BittensorChain:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
