"""The chain seen by GAS: a narrow protocol, its value types and its errors.

Every process talks to the chain only through :class:`Chain`. Two backends implement it: the
embedded dev chain (``gas.chain.devchain``, a SQLite file) and the bittensor 11 SDK adapter
(``gas.chain.bittensor_backend``). Nothing outside ``gas.chain`` imports the SDK.

Amounts are in TAO (float); blocks are ints; weights cross this boundary as floats and are
quantised to u16 by the backend, as the chain does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

U16_MAX = 65535


# --------------------------------------------------------------------------------------------
# value types
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Neuron:
    """One registered hotkey on a subnet."""

    uid: int
    hotkey: str
    coldkey: str
    stake: float = 0.0
    validator_permit: bool = False
    axon_ip: str | None = None
    axon_port: int | None = None
    last_update: int = 0
    incentive: float = 0.0
    emission: float = 0.0
    registered_at: int = 0

    @property
    def axon(self) -> str | None:
        """``ip:port`` when the neuron has served an axon, else None."""
        if not self.axon_ip or not self.axon_port:
            return None
        return f"{self.axon_ip}:{self.axon_port}"


@dataclass(frozen=True)
class Metagraph:
    """A subnet's neurons at one block, ordered by uid."""

    netuid: int
    block: int
    neurons: tuple[Neuron, ...] = ()
    tempo: int | None = None

    @property
    def n(self) -> int:
        return len(self.neurons)

    @property
    def hotkeys(self) -> list[str]:
        return [n.hotkey for n in self.neurons]

    def by_hotkey(self, hotkey: str) -> Neuron | None:
        for n in self.neurons:
            if n.hotkey == hotkey:
                return n
        return None

    def uid_of(self, hotkey: str) -> int | None:
        n = self.by_hotkey(hotkey)
        return None if n is None else n.uid

    def by_uid(self, uid: int) -> Neuron | None:
        for n in self.neurons:
            if n.uid == uid:
                return n
        return None

    @property
    def validators(self) -> list[Neuron]:
        return [n for n in self.neurons if n.validator_permit]


@dataclass(frozen=True)
class Commitment:
    """What a hotkey committed, and at which block. ``data`` is the raw bytes, always readable."""

    block: int
    data: bytes

    @property
    def text(self) -> str | None:
        """The data as UTF-8, or None when it is not valid UTF-8 (never raises)."""
        try:
            return self.data.decode("utf-8")
        except UnicodeDecodeError:
            return None


@dataclass(frozen=True)
class WeightsResult:
    """Outcome of ``set_weights``: success plus a message a person can read."""

    success: bool
    message: str = ""
    block: int | None = None


@dataclass(frozen=True)
class Identity:
    """The keys a chain client writes as: a hotkey (signs) and its coldkey (owns and pays)."""

    hotkey: str
    coldkey: str
    wallet: object | None = field(default=None, repr=False, compare=False)  # bittensor Wallet, for signing


# --------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------
class ChainError(RuntimeError):
    """Base of every chain error. Messages are meant for the operator."""


class ChainUnavailable(ChainError):
    """The endpoint could not be reached (or stopped answering). Our side, never a miner's fault."""

    def __init__(self, endpoint: str, reason: str = "") -> None:
        self.endpoint = endpoint
        super().__init__(f"chain endpoint {endpoint} is unavailable" + (f": {reason}" if reason else ""))


class SubnetNotFound(ChainError):
    def __init__(self, netuid: int, hint: str = "") -> None:
        self.netuid = netuid
        super().__init__(f"subnet {netuid} does not exist" + (f" ({hint})" if hint else ""))


class NotRegistered(ChainError):
    def __init__(self, hotkey: str, netuid: int) -> None:
        self.hotkey, self.netuid = hotkey, netuid
        super().__init__(f"hotkey {hotkey} is not registered on subnet {netuid}")


class AlreadyRegistered(ChainError):
    def __init__(self, hotkey: str, netuid: int, uid: int) -> None:
        self.hotkey, self.netuid, self.uid = hotkey, netuid, uid
        super().__init__(f"hotkey {hotkey} is already registered on subnet {netuid} as uid {uid}")


class SubnetFull(ChainError):
    """Every slot is taken and every neuron is still immune, so nobody can be replaced."""


class InsufficientBalance(ChainError):
    def __init__(self, coldkey: str, needed: float, available: float, what: str) -> None:
        self.coldkey, self.needed, self.available = coldkey, needed, available
        super().__init__(
            f"coldkey {coldkey} has {available:.9g} TAO but {what} needs {needed:.9g} TAO"
        )


class RateLimited(ChainError):
    def __init__(self, what: str, blocks_left: int, limit: int) -> None:
        self.what, self.blocks_left, self.limit = what, blocks_left, limit
        super().__init__(f"{what} is rate limited: wait {blocks_left} more block(s) (limit {limit} blocks)")


class CommitmentTooLarge(ChainError):
    def __init__(self, size: int, limit: int, detail: str = "") -> None:
        self.size, self.limit = size, limit
        super().__init__(
            f"commitment of {size} bytes is too large (limit {limit} bytes)" + (f": {detail}" if detail else "")
        )


class NoValidatorPermit(ChainError):
    def __init__(self, hotkey: str, netuid: int) -> None:
        self.hotkey, self.netuid = hotkey, netuid
        super().__init__(
            f"hotkey {hotkey} has no validator permit on subnet {netuid}: only the top stake holders may set weights"
        )


class VersionKeyTooLow(ChainError):
    def __init__(self, given: int, minimum: int) -> None:
        self.given, self.minimum = given, minimum
        super().__init__(f"weights version key {given} is below the subnet's minimum {minimum}: upgrade the validator")


class InvalidWeights(ChainError):
    """The weights break a chain rule (length mismatch, unknown uid, max-weight limit, ...)."""


class NoWallet(ChainError):
    def __init__(self, action: str) -> None:
        super().__init__(f"{action} needs a wallet: open the chain with a hotkey (--wallet-name/--wallet-hotkey)")


class DevOnly(ChainError):
    def __init__(self, action: str, network: str) -> None:
        super().__init__(f"'{action}' exists only on the dev chain (network 'dev'), not on {network!r}")


# --------------------------------------------------------------------------------------------
# the protocol
# --------------------------------------------------------------------------------------------
@runtime_checkable
class Chain(Protocol):
    """What GAS needs from a chain. ``netuid=None`` means the subnet the client was opened for."""

    network: str
    netuid: int
    identity: Identity | None

    # reads
    def block(self) -> int: ...
    def block_time(self) -> float:
        """Seconds per block (12 on the real networks; configurable on the dev chain)."""
        ...
    def metagraph(self, netuid: int | None = None) -> Metagraph: ...
    def commitments(self, netuid: int | None = None) -> dict[str, Commitment]: ...
    def weights(self, netuid: int | None = None) -> dict[int, dict[int, float]]:
        """Current weight rows ``{setter_uid: {uid: fraction}}``, each row summing to 1."""
        ...
    def weights_rate_limit(self, netuid: int | None = None) -> int: ...
    def blocks_since_last_update(self, uid: int, netuid: int | None = None) -> int | None: ...

    # writes, as ``identity``
    def register(self, netuid: int | None = None) -> int:
        """Register the identity's hotkey (burned registration); returns its uid."""
        ...
    def serve_axon(self, ip: str, port: int, netuid: int | None = None) -> None: ...
    def set_commitment(self, data: bytes | str, netuid: int | None = None) -> None: ...
    def set_weights(
        self, uids: Sequence[int], weights: Sequence[float], version_key: int, netuid: int | None = None
    ) -> WeightsResult: ...

    # lifecycle
    def reconnect(self) -> None:
        """Drop and re-open the connection (used by the block watcher on a stall)."""
        ...
    def close(self) -> None: ...
