"""The embedded dev chain (network ``dev``): one SQLite file that several processes share.

It models the parts of subtensor that GAS depends on, with the chain's own rules and error types
(see docs/devchain.md for what is modelled, where every constant comes from, and what is not):

* block height from the wall clock: ``floor((clock() - genesis) / block_time)``, genesis in the file;
* subnets with hyperparameters (tempo, max uids, immunity period, burn, weights rate limit, weights
  version key, max weight limit, max validators, commitment rate limit);
* burned registration with turnover: a full subnet replaces its lowest-incentive non-immune neuron;
* a faucet, coldkey balances and per-subnet hotkey stake; validator permits for the top stake holders;
* axons, commitments (Raw fields, size and rate limits) and u16-quantised weights;
* per-tempo incentive and emission from stake-weighted weights (a simplification of Yuma consensus).

Concurrency: every write is one ``BEGIN IMMEDIATE`` transaction that reads, checks and writes, so
concurrent processes never lose an update; the file is in WAL mode with a 30 s busy timeout. Each
:class:`DevChain` holds one connection, guarded by a lock, so one instance may be shared by threads
(calls are serialised); a forked child re-opens its own connection.

Epochs are computed lazily: block height follows the clock, so nothing runs at a boundary. Instead
every read or write first catches up, inside a write transaction, on the epoch boundary it crossed.
Since every write catches up before it changes anything, an epoch always sees exactly the state at
its boundary; several skipped epochs collapse into one (with unchanged inputs they are identical).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, NamedTuple, TypeVar
from urllib.parse import quote

from gas.chain.base import (
    U16_MAX,
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
T = TypeVar("T")

SCHEMA_VERSION = 1
RAO_PER_TAO = 10**9
BUSY_TIMEOUT_S = 30.0
INIT_HINT = "run 'gascli chain init'"

# ---- commitments pallet ----------------------------------------------------------------------
# A commitment is a CommitmentInfo { fields: BoundedVec<Data, MaxFields> }; Data::Raw holds at most
# 128 bytes (variants Raw0..Raw128). bittensor 11.3 names the MaxFields constant
# (bittensor/_generated/constants.py: Commitments.MaxFields) and reads back by concatenating every
# Raw* field (bittensor/metagraph.py: _decode_fields); the values 3 and 128 are subtensor's runtime
# (MaxCommitFieldsInner = 3, Data::Raw BoundedVec<u8, ConstU32<128>>): assumed, not checked here.
COMMITMENT_MAX_FIELDS = 3
COMMITMENT_FIELD_BYTES = 128
COMMITMENT_MAX_BYTES = COMMITMENT_MAX_FIELDS * COMMITMENT_FIELD_BYTES

# ---- subnet defaults (see docs/devchain.md for provenance) -------------------------------------
DEFAULT_NETUID = 34
DEFAULT_BLOCK_TIME = 12.0  # seconds; the real networks' target block time
DEFAULT_TEMPO = 360  # subtensor default tempo; the SDK documents owner bounds 360..50,400 (hyperparams.py)
DEFAULT_MAX_UIDS = 256  # MaxAllowedUids of a standard subnet (assumed)
DEFAULT_IMMUNITY_PERIOD = 4096  # subtensor DefaultImmunityPeriod (assumed)
DEFAULT_BURN_COST = 1.0  # TAO; a fixed dev price (the real burn floats between MinBurn and MaxBurn)
DEFAULT_WEIGHTS_RATE_LIMIT = 100  # blocks; subtensor DefaultWeightsSetRateLimit (assumed)
DEFAULT_WEIGHTS_VERSION = 0
DEFAULT_MAX_WEIGHT_LIMIT = U16_MAX  # u16::MAX = no cap
DEFAULT_MAX_VALIDATORS = 64  # MaxAllowedValidators (assumed)
DEFAULT_COMMITMENT_RATE_LIMIT = 100  # blocks; commitments pallet CommitmentRateLimit (assumed, ~20 min)
DEFAULT_EMISSION_PER_BLOCK = 1.0  # TAO per block for the subnet; a dev value, not a chain constant

#: Hyperparameters stored per subnet; ``set_hyperparameters`` accepts exactly these names.
HYPERPARAMETERS = (
    "tempo", "max_uids", "immunity_period", "burn_cost", "weights_rate_limit", "weights_version",
    "max_weight_limit", "max_validators", "commitment_rate_limit", "emission_per_tempo",
)


# --------------------------------------------------------------------------------------------
# errors specific to the dev chain
# --------------------------------------------------------------------------------------------
class InvalidAxon(ChainError):
    """``serve_axon`` got an address the chain would not accept (or nobody could reach)."""


class SubnetExists(ChainError):
    def __init__(self, netuid: int, path: Path) -> None:
        self.netuid = netuid
        super().__init__(f"subnet {netuid} already exists in {path} (pass exist_ok to keep it)")


class HotkeyOwnedElsewhere(ChainError):
    """A hotkey belongs to the coldkey that first registered it; another coldkey cannot use it."""

    def __init__(self, hotkey: str, owner: str, coldkey: str) -> None:
        self.hotkey, self.owner, self.coldkey = hotkey, owner, coldkey
        super().__init__(f"hotkey {hotkey} belongs to coldkey {owner}, not {coldkey}")


class SchemaMismatch(ChainError):
    """The file is not a dev chain database, or was written by a newer GAS."""


# --------------------------------------------------------------------------------------------
# value types
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SubnetInfo:
    """A subnet's hyperparameters (amounts in TAO, periods in blocks) and a little state."""

    netuid: int
    tempo: int
    block_time: float
    max_uids: int
    immunity_period: int
    burn_cost: float
    weights_rate_limit: int
    weights_version: int
    max_weight_limit: int
    max_validators: int
    commitment_rate_limit: int
    emission_per_tempo: float
    n: int  # neurons registered now
    created_block: int
    last_epoch_block: int | None  # block of the last computed epoch boundary (None: none yet)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class WeightsRecord(NamedTuple):
    """One accepted ``set_weights``: weights are {uid: sum-1 float}, or u16 values when ``raw``."""

    block: int
    uid: int
    hotkey: str
    weights: dict[int, float]


class CommitmentRecord(NamedTuple):
    block: int
    hotkey: str
    data: bytes


class RegistrationRecord(NamedTuple):
    """One registration; ``replaced`` is the hotkey it deregistered (None when a uid was free)."""

    block: int
    uid: int
    hotkey: str
    coldkey: str
    replaced: str | None


def default_path(cache_dir: Path | str, name: str = "default") -> Path:
    """Where the dev chain called ``name`` lives: ``<cache_dir>/devchain/<name>.db``."""
    return Path(cache_dir).expanduser() / "devchain" / f"{name}.db"


def commitment_fields(data: bytes | str) -> list[bytes]:
    """Split commitment bytes into Raw fields (≤128 bytes each, ≤3 fields), as they go on chain.

    Empty data is one empty field (Raw0). Raises :class:`CommitmentTooLarge` beyond 384 bytes.
    """
    raw = _as_bytes(data)
    if len(raw) > COMMITMENT_MAX_BYTES:
        raise CommitmentTooLarge(
            len(raw),
            COMMITMENT_MAX_BYTES,
            f"a commitment holds at most {COMMITMENT_MAX_FIELDS} Raw fields of {COMMITMENT_FIELD_BYTES} bytes",
        )
    if not raw:
        return [b""]
    return [raw[i : i + COMMITMENT_FIELD_BYTES] for i in range(0, len(raw), COMMITMENT_FIELD_BYTES)]


def _as_bytes(data: bytes | str) -> bytes:
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"commitment data must be bytes or str, got {type(data).__name__}")


def _to_rao(amount: float, what: str) -> int:
    if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not math.isfinite(amount):
        raise ValueError(f"{what} must be a finite number of TAO, got {amount!r}")
    if amount < 0:
        raise ValueError(f"{what} must not be negative, got {amount!r}")
    return round(amount * RAO_PER_TAO)


def _tao(rao: int) -> float:
    return rao / RAO_PER_TAO


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS subnets (
    netuid INTEGER PRIMARY KEY,
    tempo INTEGER NOT NULL,
    max_uids INTEGER NOT NULL,
    immunity_period INTEGER NOT NULL,
    burn_rao INTEGER NOT NULL,
    weights_rate_limit INTEGER NOT NULL,
    weights_version INTEGER NOT NULL,
    max_weight_limit INTEGER NOT NULL,
    max_validators INTEGER NOT NULL,
    commitment_rate_limit INTEGER NOT NULL,
    emission_per_tempo REAL NOT NULL,
    created_block INTEGER NOT NULL,
    last_epoch INTEGER NOT NULL,
    last_epoch_block INTEGER
);
CREATE TABLE IF NOT EXISTS neurons (
    netuid INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    hotkey TEXT NOT NULL,
    coldkey TEXT NOT NULL,
    registered_at INTEGER NOT NULL,
    last_update INTEGER NOT NULL,
    axon_ip TEXT,
    axon_port INTEGER,
    axon_block INTEGER,
    incentive REAL NOT NULL DEFAULT 0,
    emission REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (netuid, uid),
    UNIQUE (netuid, hotkey)
);
CREATE TABLE IF NOT EXISTS owners (hotkey TEXT PRIMARY KEY, coldkey TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS balances (coldkey TEXT PRIMARY KEY, rao INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS stakes (
    netuid INTEGER NOT NULL, hotkey TEXT NOT NULL, rao INTEGER NOT NULL, PRIMARY KEY (netuid, hotkey)
);
CREATE TABLE IF NOT EXISTS weights (
    netuid INTEGER NOT NULL, uid INTEGER NOT NULL, dest INTEGER NOT NULL, value INTEGER NOT NULL,
    PRIMARY KEY (netuid, uid, dest)
);
CREATE TABLE IF NOT EXISTS weights_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    netuid INTEGER NOT NULL, block INTEGER NOT NULL, uid INTEGER NOT NULL, hotkey TEXT NOT NULL,
    weights TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS weights_history_block ON weights_history (netuid, block);
CREATE TABLE IF NOT EXISTS commitments (
    netuid INTEGER NOT NULL, hotkey TEXT NOT NULL, block INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (netuid, hotkey)
);
CREATE TABLE IF NOT EXISTS commitment_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    netuid INTEGER NOT NULL, block INTEGER NOT NULL, hotkey TEXT NOT NULL, data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS registrations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    netuid INTEGER NOT NULL, block INTEGER NOT NULL, uid INTEGER NOT NULL, hotkey TEXT NOT NULL,
    coldkey TEXT NOT NULL, replaced TEXT
);
"""


def _check_int(name: str, value: object, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
    return value


def _check_params(params: dict[str, Any]) -> dict[str, Any]:
    """Validate hyperparameters; returns them with ``burn_cost`` converted to ``burn_rao``."""
    limits = {
        "tempo": (1, 65535),
        "max_uids": (1, 65535),
        "immunity_period": (0, 2**31),
        "weights_rate_limit": (0, 2**31),
        "weights_version": (0, 2**63 - 1),
        "max_weight_limit": (1, U16_MAX),
        "max_validators": (1, 65535),
        "commitment_rate_limit": (0, 2**31),
    }
    out: dict[str, Any] = {}
    for name, value in params.items():
        if name in limits:
            out[name] = _check_int(name, value, *limits[name])
        elif name == "burn_cost":
            out["burn_rao"] = _to_rao(value, "burn_cost")
        elif name == "emission_per_tempo":
            out[name] = _tao(_to_rao(value, "emission_per_tempo"))
        else:
            raise ValueError(f"unknown subnet hyperparameter {name!r} (known: {', '.join(HYPERPARAMETERS)})")
    return out


# --------------------------------------------------------------------------------------------
# the chain
# --------------------------------------------------------------------------------------------
class DevChain:
    """The dev chain in the SQLite file ``path``, seen from subnet ``netuid`` as ``identity``.

    The file must exist (create it with :meth:`init`); every call raises :class:`SubnetNotFound`
    with a hint when the file or the subnet is missing. ``clock`` gives seconds (tests inject one).
    Rule violations raise the typed :mod:`gas.chain.base` errors; ``set_weights`` returns a
    successful :class:`WeightsResult` or raises, never a failed result. Amounts are TAO.
    """

    network = "dev"

    def __init__(
        self,
        path: Path | str,
        *,
        netuid: int = DEFAULT_NETUID,
        identity: Identity | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path).expanduser()
        self.netuid = netuid
        self.identity = identity
        self._clock = clock
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        self._pid = 0
        self._genesis = 0.0
        self._block_time = DEFAULT_BLOCK_TIME

    default_path = staticmethod(default_path)

    def __repr__(self) -> str:
        who = self.identity.hotkey if self.identity else None
        return f"DevChain(path={str(self.path)!r}, netuid={self.netuid}, hotkey={who!r})"

    def __enter__(self) -> DevChain:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------ admin
    @classmethod
    def init(
        cls,
        path: Path | str,
        *,
        netuid: int = DEFAULT_NETUID,
        tempo: int = DEFAULT_TEMPO,
        block_time: float | None = None,
        max_uids: int = DEFAULT_MAX_UIDS,
        immunity_period: int = DEFAULT_IMMUNITY_PERIOD,
        burn_cost: float = DEFAULT_BURN_COST,
        weights_rate_limit: int = DEFAULT_WEIGHTS_RATE_LIMIT,
        weights_version: int = DEFAULT_WEIGHTS_VERSION,
        max_weight_limit: int = DEFAULT_MAX_WEIGHT_LIMIT,
        max_validators: int = DEFAULT_MAX_VALIDATORS,
        commitment_rate_limit: int = DEFAULT_COMMITMENT_RATE_LIMIT,
        emission_per_tempo: float | None = None,
        exist_ok: bool = False,
        identity: Identity | None = None,
        clock: Callable[[], float] = time.time,
    ) -> DevChain:
        """Create the chain file (and parents) if needed, add subnet ``netuid``, return a client.

        ``block_time`` is chain-wide: it is fixed when the file is created (default 12 s); on an
        existing file None keeps it and any other value must match (else :class:`ChainError`); bad
        values raise ValueError. Genesis is ``clock()`` at
        creation. An existing subnet raises :class:`SubnetExists` unless ``exist_ok``, in which case
        it is left unchanged. ``emission_per_tempo`` defaults to ``tempo`` × 1 TAO.
        """
        _check_int("netuid", netuid, 0, 65535)
        if emission_per_tempo is None:
            emission_per_tempo = tempo * DEFAULT_EMISSION_PER_BLOCK if isinstance(tempo, int) else 0.0
        params = _check_params(
            {
                "tempo": tempo, "max_uids": max_uids, "immunity_period": immunity_period,
                "burn_cost": burn_cost, "weights_rate_limit": weights_rate_limit,
                "weights_version": weights_version, "max_weight_limit": max_weight_limit,
                "max_validators": max_validators, "commitment_rate_limit": commitment_rate_limit,
                "emission_per_tempo": emission_per_tempo,
            }
        )
        if block_time is not None and (
            isinstance(block_time, bool) or not isinstance(block_time, (int, float))
            or not math.isfinite(block_time) or block_time <= 0
        ):
            raise ValueError(f"block_time must be a positive number of seconds, got {block_time!r}")
        path = Path(path).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = sqlite3.connect(str(path), isolation_level=None, timeout=BUSY_TIMEOUT_S)
        except sqlite3.Error as e:
            raise ChainUnavailable(str(path), str(e)) from e
        try:
            db.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("BEGIN IMMEDIATE")
            try:
                tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                if tables and "meta" not in tables:
                    raise SchemaMismatch(f"{path} is not a GAS dev chain database (no meta table)")
                if "meta" in tables:
                    _check_schema(db, path)
                for statement in _SCHEMA.split(";"):  # not executescript: it would COMMIT first
                    if statement.strip():
                        db.execute(statement)
                meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
                if "schema_version" not in meta:
                    genesis = float(clock())
                    bt = float(block_time if block_time is not None else DEFAULT_BLOCK_TIME)
                    db.executemany(
                        "INSERT INTO meta (key, value) VALUES (?, ?)",
                        [("schema_version", str(SCHEMA_VERSION)), ("genesis_time", repr(genesis)),
                         ("block_time", repr(bt))],
                    )
                else:
                    genesis, bt = float(meta["genesis_time"]), float(meta["block_time"])
                    if block_time is not None and float(block_time) != bt:
                        raise ChainError(
                            f"{path} already runs at a block time of {bt} s (block time is chain-wide); "
                            f"got {block_time}: omit the block time, or use another dev chain file"
                        )
                exists = db.execute("SELECT 1 FROM subnets WHERE netuid=?", (netuid,)).fetchone()
                if exists and not exist_ok:
                    raise SubnetExists(netuid, path)
                if not exists:
                    block = _block_at(clock(), genesis, bt)
                    cols = ", ".join(params)
                    marks = ", ".join("?" for _ in params)
                    db.execute(
                        f"INSERT INTO subnets (netuid, {cols}, created_block, last_epoch, last_epoch_block)"
                        f" VALUES (?, {marks}, ?, ?, NULL)",
                        (netuid, *params.values(), block, block // params["tempo"]),
                    )
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            raise ChainUnavailable(str(path), str(e)) from e
        finally:
            db.close()
        return cls(path, netuid=netuid, identity=identity, clock=clock)

    def fund(self, coldkey: str, amount: float) -> float:
        """Faucet: add ``amount`` TAO to ``coldkey``'s dev balance; returns the new balance."""
        rao = _to_rao(amount, "amount")
        if not coldkey:
            raise ValueError("coldkey must be a non-empty address")

        def fn(db: sqlite3.Connection) -> float:
            db.execute(
                "INSERT INTO balances (coldkey, rao) VALUES (?, ?) "
                "ON CONFLICT(coldkey) DO UPDATE SET rao = rao + excluded.rao",
                (coldkey, rao),
            )
            return _tao(_balance_rao(db, coldkey))

        return self._chain_write(fn)

    def balance(self, coldkey: str | None = None) -> float:
        """Free TAO of ``coldkey`` (default: the identity's coldkey)."""
        if coldkey is None:
            coldkey = self._need_identity("balance without a coldkey").coldkey
        with self._tx(write=False) as db:
            return _tao(_balance_rao(db, coldkey))

    def add_stake(
        self, hotkey: str, amount: float, *, netuid: int | None = None, coldkey: str | None = None
    ) -> float:
        """Move ``amount`` TAO from ``coldkey`` (default: the hotkey's owner) to the hotkey's stake.

        The hotkey must be registered on the subnet. Stake is per (subnet, hotkey) and stays with
        the hotkey if it is deregistered. Returns the hotkey's new stake.
        """
        rao = _to_rao(amount, "amount")
        if rao == 0:
            raise ValueError("amount must be positive")
        net = self._net(netuid)

        def fn(db: sqlite3.Connection, sub: sqlite3.Row, block: int) -> float:
            row = db.execute(
                "SELECT coldkey FROM neurons WHERE netuid=? AND hotkey=?", (net, hotkey)
            ).fetchone()
            if row is None:
                raise NotRegistered(hotkey, net)
            payer = coldkey or row["coldkey"]
            available = _balance_rao(db, payer)
            if available < rao:
                raise InsufficientBalance(payer, _tao(rao), _tao(available), f"staking to {hotkey}")
            db.execute("UPDATE balances SET rao = rao - ? WHERE coldkey=?", (rao, payer))
            db.execute(
                "INSERT INTO stakes (netuid, hotkey, rao) VALUES (?, ?, ?) "
                "ON CONFLICT(netuid, hotkey) DO UPDATE SET rao = rao + excluded.rao",
                (net, hotkey, rao),
            )
            return _tao(_stake_rao(db, net, hotkey))

        return self._write(net, fn)

    def stake(self, hotkey: str, netuid: int | None = None) -> float:
        """A hotkey's stake on the subnet in TAO (kept after deregistration; 0 if none)."""
        net = self._net(netuid)
        return self._read(net, lambda db, sub, block: _tao(_stake_rao(db, net, hotkey)))

    def set_hyperparameters(self, netuid: int | None = None, **values: Any) -> SubnetInfo:
        """Admin: change hyperparameters (names in :data:`HYPERPARAMETERS`); returns the new info.

        Changing ``tempo`` restarts epoch counting at the current block.
        """
        params = _check_params(values)
        net = self._net(netuid)

        def fn(db: sqlite3.Connection, sub: sqlite3.Row, block: int) -> SubnetInfo:
            if params:
                sets = ", ".join(f"{k}=?" for k in params)
                db.execute(f"UPDATE subnets SET {sets} WHERE netuid=?", (*params.values(), net))
            if "tempo" in params:
                db.execute(
                    "UPDATE subnets SET last_epoch=? WHERE netuid=?", (block // params["tempo"], net)
                )
            return self._info(db, net)

        return self._write(net, fn)

    # ------------------------------------------------------------------------------ reads
    def block(self) -> int:
        with self._tx(write=False):
            return self._block_now()

    def block_time(self) -> float:
        with self._lock:
            self._conn()
            return self._block_time

    def netuids(self) -> list[int]:
        """Every subnet in the file."""
        with self._tx(write=False) as db:
            return [r[0] for r in db.execute("SELECT netuid FROM subnets ORDER BY netuid")]

    def subnet_info(self, netuid: int | None = None) -> SubnetInfo:
        net = self._net(netuid)
        return self._read(net, lambda db, sub, block: self._info(db, net))

    def metagraph(self, netuid: int | None = None) -> Metagraph:
        net = self._net(netuid)

        def fn(db: sqlite3.Connection, sub: sqlite3.Row, block: int) -> Metagraph:
            stakes, permits = _stakes_and_permits(db, net, sub["max_validators"])
            neurons = tuple(
                Neuron(
                    uid=r["uid"],
                    hotkey=r["hotkey"],
                    coldkey=r["coldkey"],
                    stake=_tao(stakes.get(r["uid"], 0)),
                    validator_permit=r["uid"] in permits,
                    axon_ip=r["axon_ip"],
                    axon_port=r["axon_port"],
                    last_update=r["last_update"],
                    incentive=r["incentive"],
                    emission=r["emission"],
                    registered_at=r["registered_at"],
                )
                for r in db.execute("SELECT * FROM neurons WHERE netuid=? ORDER BY uid", (net,))
            )
            return Metagraph(netuid=net, block=block, neurons=neurons, tempo=sub["tempo"])

        return self._read(net, fn)

    def commitments(self, netuid: int | None = None) -> dict[str, Commitment]:
        """{hotkey: Commitment(block, raw bytes)} for the hotkeys registered now."""
        net = self._net(netuid)

        def fn(db: sqlite3.Connection, sub: sqlite3.Row, block: int) -> dict[str, Commitment]:
            rows = db.execute(
                "SELECT c.hotkey, c.block, c.data FROM commitments c JOIN neurons n "
                "ON n.netuid = c.netuid AND n.hotkey = c.hotkey WHERE c.netuid=? ORDER BY n.uid",
                (net,),
            )
            return {r["hotkey"]: Commitment(block=r["block"], data=bytes(r["data"])) for r in rows}

        return self._read(net, fn)

    def weights_rate_limit(self, netuid: int | None = None) -> int:
        net = self._net(netuid)
        return self._read(net, lambda db, sub, block: int(sub["weights_rate_limit"]))

    def blocks_since_last_update(self, uid: int, netuid: int | None = None) -> int | None:
        """Blocks since the uid last set weights (or registered); None if the uid is not registered."""
        net = self._net(netuid)

        def fn(db: sqlite3.Connection, sub: sqlite3.Row, block: int) -> int | None:
            row = db.execute(
                "SELECT last_update FROM neurons WHERE netuid=? AND uid=?", (net, uid)
            ).fetchone()
            return None if row is None else block - row["last_update"]

        return self._read(net, fn)

    def weights(self, netuid: int | None = None, *, raw: bool = False) -> dict[int, dict[int, float]]:
        """Current weight rows {setter uid: {uid: weight}}: sum-1 floats, or stored u16 when ``raw``."""
        net = self._net(netuid)

        def fn(db: sqlite3.Connection, sub: sqlite3.Row, block: int) -> dict[int, dict[int, float]]:
            rows: dict[int, dict[int, int]] = {}
            for r in db.execute("SELECT uid, dest, value FROM weights WHERE netuid=? ORDER BY uid, dest", (net,)):
                rows.setdefault(r["uid"], {})[r["dest"]] = r["value"]
            return {uid: _present(row, raw) for uid, row in rows.items()}

        return self._read(net, fn)

    def weights_history(
        self, netuid: int | None = None, since_block: int | None = None, *, raw: bool = False
    ) -> list[WeightsRecord]:
        """Every accepted ``set_weights`` (oldest first), optionally from ``since_block`` on."""
        net = self._net(netuid)

        def fn(db: sqlite3.Connection, sub: sqlite3.Row, block: int) -> list[WeightsRecord]:
            rows = db.execute(
                "SELECT block, uid, hotkey, weights FROM weights_history WHERE netuid=? AND block >= ? "
                "ORDER BY id",
                (net, since_block if since_block is not None else -1),
            )
            out = []
            for r in rows:
                values = {int(k): int(v) for k, v in json.loads(r["weights"]).items()}
                out.append(WeightsRecord(r["block"], r["uid"], r["hotkey"], _present(values, raw)))
            return out

        return self._read(net, fn)

    def commitment_history(
        self, netuid: int | None = None, since_block: int | None = None, *, hotkey: str | None = None
    ) -> list[CommitmentRecord]:
        """Every accepted commitment (oldest first), including those of deregistered hotkeys."""
        net = self._net(netuid)

        def fn(db: sqlite3.Connection, sub: sqlite3.Row, block: int) -> list[CommitmentRecord]:
            sql = "SELECT block, hotkey, data FROM commitment_history WHERE netuid=? AND block >= ?"
            args: list[Any] = [net, since_block if since_block is not None else -1]
            if hotkey is not None:
                sql += " AND hotkey=?"
                args.append(hotkey)
            rows = db.execute(sql + " ORDER BY id", args)
            return [CommitmentRecord(r["block"], r["hotkey"], bytes(r["data"])) for r in rows]

        return self._read(net, fn)

    def registration_history(self, netuid: int | None = None) -> list[RegistrationRecord]:
        """Every registration (oldest first), with the hotkey each one replaced."""
        net = self._net(netuid)

        def fn(db: sqlite3.Connection, sub: sqlite3.Row, block: int) -> list[RegistrationRecord]:
            rows = db.execute(
                "SELECT block, uid, hotkey, coldkey, replaced FROM registrations WHERE netuid=? ORDER BY id",
                (net,),
            )
            return [RegistrationRecord(*tuple(r)) for r in rows]

        return self._read(net, fn)

    # ------------------------------------------------------------------------------ writes
    def register(self, netuid: int | None = None) -> int:
        """Burned registration of the identity's hotkey, paid by its coldkey; returns the uid.

        On a full subnet the non-immune neuron with the lowest incentive is replaced (ties: lowest
        emission, then oldest registration, then lowest uid); its weights row, commitment, axon and
        last_update go with it, its stake stays with its hotkey. All immune → :class:`SubnetFull`.
        """
        ident = self._need_identity("register")
        net = self._net(netuid)

        def fn(db: sqlite3.Connection, sub: sqlite3.Row, block: int) -> int:
            row = db.execute(
                "SELECT uid FROM neurons WHERE netuid=? AND hotkey=?", (net, ident.hotkey)
            ).fetchone()
            if row is not None:
                raise AlreadyRegistered(ident.hotkey, net, row["uid"])
            owner = db.execute("SELECT coldkey FROM owners WHERE hotkey=?", (ident.hotkey,)).fetchone()
            if owner is not None and owner["coldkey"] != ident.coldkey:
                raise HotkeyOwnedElsewhere(ident.hotkey, owner["coldkey"], ident.coldkey)
            burn = sub["burn_rao"]
            available = _balance_rao(db, ident.coldkey)
            if available < burn:
                raise InsufficientBalance(
                    ident.coldkey, _tao(burn), _tao(available),
                    f"registering on subnet {net} (burn cost; fund it with 'gascli chain fund')",
                )
            n = db.execute("SELECT COUNT(*) FROM neurons WHERE netuid=?", (net,)).fetchone()[0]
            replaced: str | None = None
            if n < sub["max_uids"]:
                uid = n
            else:
                uid, replaced = self._prune(db, sub, block)
            db.execute("UPDATE balances SET rao = rao - ? WHERE coldkey=?", (burn, ident.coldkey))
            db.execute(
                "INSERT INTO neurons (netuid, uid, hotkey, coldkey, registered_at, last_update) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (net, uid, ident.hotkey, ident.coldkey, block, block),
            )
            db.execute(
                "INSERT OR IGNORE INTO owners (hotkey, coldkey) VALUES (?, ?)", (ident.hotkey, ident.coldkey)
            )
            db.execute(
                "INSERT INTO registrations (netuid, block, uid, hotkey, coldkey, replaced) VALUES (?, ?, ?, ?, ?, ?)",
                (net, block, uid, ident.hotkey, ident.coldkey, replaced),
            )
            return uid

        return self._write(net, fn)

    def serve_axon(self, ip: str, port: int, netuid: int | None = None) -> None:
        """Publish the identity's axon ``ip:port`` (a routable, specified IPv4/IPv6 address)."""
        ident = self._need_identity("serve_axon")
        try:
            addr = ipaddress.ip_address(str(ip).strip())
        except ValueError as e:
            raise InvalidAxon(f"axon ip {ip!r} is not an IPv4 or IPv6 address") from e
        if addr.is_unspecified:
            raise InvalidAxon(
                f"axon ip {addr} is the unspecified address: publish an address others can reach "
                "(set external_ip)"
            )
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise InvalidAxon(f"axon port must be an integer in [1, 65535], got {port!r}")
        net = self._net(netuid)

        def fn(db: sqlite3.Connection, sub: sqlite3.Row, block: int) -> None:
            cur = db.execute(
                "UPDATE neurons SET axon_ip=?, axon_port=?, axon_block=? WHERE netuid=? AND hotkey=?",
                (str(addr), port, block, net, ident.hotkey),
            )
            if cur.rowcount == 0:
                raise NotRegistered(ident.hotkey, net)

        self._write(net, fn)

    def set_commitment(self, data: bytes | str, netuid: int | None = None) -> None:
        """Commit ``data`` (str is UTF-8 encoded; at most 384 bytes) as the identity's hotkey."""
        ident = self._need_identity("set_commitment")
        raw = b"".join(commitment_fields(data))
        net = self._net(netuid)

        def fn(db: sqlite3.Connection, sub: sqlite3.Row, block: int) -> None:
            if db.execute(
                "SELECT 1 FROM neurons WHERE netuid=? AND hotkey=?", (net, ident.hotkey)
            ).fetchone() is None:
                raise NotRegistered(ident.hotkey, net)
            last = db.execute(
                "SELECT block FROM commitments WHERE netuid=? AND hotkey=?", (net, ident.hotkey)
            ).fetchone()
            limit = sub["commitment_rate_limit"]
            if last is not None and block - last["block"] < limit:
                raise RateLimited("set_commitment", limit - (block - last["block"]), limit)
            db.execute(
                "INSERT INTO commitments (netuid, hotkey, block, data) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(netuid, hotkey) DO UPDATE SET block=excluded.block, data=excluded.data",
                (net, ident.hotkey, block, raw),
            )
            db.execute(
                "INSERT INTO commitment_history (netuid, block, hotkey, data) VALUES (?, ?, ?, ?)",
                (net, block, ident.hotkey, raw),
            )

        self._write(net, fn)

    def set_weights(
        self, uids: Sequence[int], weights: Sequence[float], version_key: int, netuid: int | None = None
    ) -> WeightsResult:
        """Set the identity's weight row, quantised to u16 like the SDK (max → 65535).

        Checks, in order: input shape (InvalidWeights), registration (NotRegistered), version key
        (VersionKeyTooLow), unknown uids / all-zero (InvalidWeights), validator permit
        (NoValidatorPermit), rate limit (RateLimited), max weight limit (InvalidWeights). A row that
        is only a self-weight is exempt from the permit and max-weight checks, as on chain.
        Returns ``WeightsResult(True, message, block)``; every violation raises.
        """
        ident = self._need_identity("set_weights")
        uid_list, weight_list = _check_weight_input(uids, weights)
        net = self._net(netuid)

        def fn(db: sqlite3.Connection, sub: sqlite3.Row, block: int) -> WeightsResult:
            me = db.execute(
                "SELECT uid, last_update FROM neurons WHERE netuid=? AND hotkey=?", (net, ident.hotkey)
            ).fetchone()
            if me is None:
                raise NotRegistered(ident.hotkey, net)
            if version_key < sub["weights_version"]:
                raise VersionKeyTooLow(version_key, sub["weights_version"])
            registered = {r[0] for r in db.execute("SELECT uid FROM neurons WHERE netuid=?", (net,))}
            unknown = sorted(set(uid_list) - registered)
            if unknown:
                raise InvalidWeights(
                    f"uid(s) {unknown} are not registered on subnet {net} ({len(registered)} neurons)"
                )
            from gas.scoring.weights import to_u16  # the SDK's quantiser, shared with the validator

            q_uids, q_vals = to_u16(uid_list, weight_list)
            if not q_uids:
                raise InvalidWeights("all weights are zero after u16 quantisation: nothing to set")
            self_only = q_uids == [me["uid"]]
            if not self_only:
                _, permits = _stakes_and_permits(db, net, sub["max_validators"])
                if me["uid"] not in permits:
                    raise NoValidatorPermit(ident.hotkey, net)
            limit = sub["weights_rate_limit"]
            since = block - me["last_update"]
            if limit and me["last_update"] > 0 and since < limit:
                raise RateLimited("set_weights", limit - since, limit)
            cap = sub["max_weight_limit"]
            if not self_only and cap < U16_MAX and max(q_vals) * U16_MAX > cap * sum(q_vals):
                raise InvalidWeights(
                    f"largest weight {max(q_vals) / sum(q_vals):.6f} (normalised) exceeds the subnet's "
                    f"max weight limit {cap}/65535 = {cap / U16_MAX:.6f}"
                )
            db.execute("DELETE FROM weights WHERE netuid=? AND uid=?", (net, me["uid"]))
            db.executemany(
                "INSERT INTO weights (netuid, uid, dest, value) VALUES (?, ?, ?, ?)",
                [(net, me["uid"], u, v) for u, v in zip(q_uids, q_vals, strict=True)],
            )
            db.execute("UPDATE neurons SET last_update=? WHERE netuid=? AND uid=?", (block, net, me["uid"]))
            db.execute(
                "INSERT INTO weights_history (netuid, block, uid, hotkey, weights) VALUES (?, ?, ?, ?, ?)",
                (net, block, me["uid"], ident.hotkey, json.dumps(dict(zip(q_uids, q_vals, strict=True)))),
            )
            return WeightsResult(
                True, f"set {len(q_uids)} weight(s) as uid {me['uid']} on subnet {net} at block {block}", block
            )

        return self._write(net, fn)

    # ------------------------------------------------------------------------------ lifecycle
    def reconnect(self) -> None:
        """Close the connection; the next call opens a fresh one."""
        self.close()

    def close(self) -> None:
        with self._lock:
            db, self._db = self._db, None
            if db is not None and self._pid == os.getpid():
                with contextlib.suppress(sqlite3.Error):
                    db.close()

    # ------------------------------------------------------------------------------ internals
    def _net(self, netuid: int | None) -> int:
        return self.netuid if netuid is None else netuid

    def _need_identity(self, action: str) -> Identity:
        if self.identity is None:
            raise NoWallet(action)
        return self.identity

    def _conn(self) -> sqlite3.Connection:
        if self._db is not None and self._pid == os.getpid():
            return self._db
        self._db = None  # a connection inherited through fork is never used
        if not self.path.is_file():
            raise SubnetNotFound(self.netuid, hint=f"no dev chain at {self.path}; {INIT_HINT}")
        try:
            db = sqlite3.connect(
                f"file:{quote(str(self.path))}?mode=rw",
                uri=True,
                isolation_level=None,
                timeout=BUSY_TIMEOUT_S,
                check_same_thread=False,  # guarded by self._lock
            )
        except sqlite3.Error as e:
            raise ChainUnavailable(str(self.path), str(e)) from e
        try:
            db.row_factory = sqlite3.Row
            db.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            _check_schema(db, self.path)
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            self._genesis, self._block_time = float(meta["genesis_time"]), float(meta["block_time"])
        except BaseException as e:
            db.close()
            if isinstance(e, sqlite3.Error):
                raise SchemaMismatch(f"{self.path} is not a readable GAS dev chain database: {e}") from e
            raise
        self._db, self._pid = db, os.getpid()
        return db

    @contextlib.contextmanager
    def _tx(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        with self._lock:
            db = self._conn()
            try:
                db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield db
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            except sqlite3.Error as e:
                with contextlib.suppress(sqlite3.Error):
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                raise ChainUnavailable(str(self.path), str(e)) from e

    def _block_now(self) -> int:
        return _block_at(self._clock(), self._genesis, self._block_time)

    def _subnet(self, db: sqlite3.Connection, netuid: int) -> sqlite3.Row:
        row = db.execute("SELECT * FROM subnets WHERE netuid=?", (netuid,)).fetchone()
        if row is None:
            have = [r[0] for r in db.execute("SELECT netuid FROM subnets ORDER BY netuid")]
            raise SubnetNotFound(
                netuid, hint=f"{self.path} has subnet(s) {have or 'none'}; {INIT_HINT} --netuid {netuid}"
            )
        return row

    def _chain_write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """A write that touches no subnet (balances)."""
        with self._tx(write=True) as db:
            return fn(db)

    def _write(self, netuid: int, fn: Callable[[sqlite3.Connection, sqlite3.Row, int], T]) -> T:
        with self._tx(write=True) as db:
            block = self._block_now()  # after the write lock: commit order follows block order
            sub = self._subnet(db, netuid)
            if self._epoch_due(sub, block):
                self._run_epoch(db, sub, block)
                sub = self._subnet(db, netuid)
            return fn(db, sub, block)

    def _read(self, netuid: int, fn: Callable[[sqlite3.Connection, sqlite3.Row, int], T]) -> T:
        with self._lock:
            with self._tx(write=False) as db:
                block = self._block_now()
                sub = self._subnet(db, netuid)
                if not self._epoch_due(sub, block):
                    return fn(db, sub, block)
            return self._write(netuid, fn)  # an epoch boundary passed: catch up first

    @staticmethod
    def _epoch_due(sub: sqlite3.Row, block: int) -> bool:
        return block // sub["tempo"] > sub["last_epoch"]

    def _run_epoch(self, db: sqlite3.Connection, sub: sqlite3.Row, block: int) -> None:
        """Incentive and emission at the last tempo boundary (a simplification of Yuma consensus).

        Each permit holder's row is masked like Yuma does (no self-weight; no weight on a uid that
        registered at or after the setter's last update), then sum-normalised; incentive is the
        stake-weighted sum of those rows, normalised to 1; emission = incentive × emission_per_tempo.
        No consensus clipping (kappa), bonds, dividends, trust or activity cutoff.
        """
        net, tempo = sub["netuid"], sub["tempo"]
        epoch = block // tempo
        neurons = {
            r["uid"]: (r["registered_at"], r["last_update"])
            for r in db.execute("SELECT uid, registered_at, last_update FROM neurons WHERE netuid=?", (net,))
        }
        stakes, permits = _stakes_and_permits(db, net, sub["max_validators"])
        rows: dict[int, dict[int, int]] = {}
        for r in db.execute("SELECT uid, dest, value FROM weights WHERE netuid=?", (net,)):
            rows.setdefault(r["uid"], {})[r["dest"]] = r["value"]
        incentive = dict.fromkeys(neurons, 0.0)
        for setter in sorted(rows):
            if setter not in permits or setter not in neurons:
                continue
            last_update = neurons[setter][1]
            row = {
                dest: v for dest, v in rows[setter].items()
                if dest != setter and dest in neurons and last_update > neurons[dest][0]
            }
            total = sum(row.values())
            if total <= 0:
                continue
            for dest, v in row.items():
                incentive[dest] += stakes[setter] * (v / total)
        norm = math.fsum(incentive.values())
        emission_total = sub["emission_per_tempo"]
        db.executemany(
            "UPDATE neurons SET incentive=?, emission=? WHERE netuid=? AND uid=?",
            [
                (inc / norm if norm > 0 else 0.0, (inc / norm) * emission_total if norm > 0 else 0.0, net, uid)
                for uid, inc in incentive.items()
            ],
        )
        db.execute(
            "UPDATE subnets SET last_epoch=?, last_epoch_block=? WHERE netuid=?", (epoch, epoch * tempo, net)
        )

    def _prune(self, db: sqlite3.Connection, sub: sqlite3.Row, block: int) -> tuple[int, str]:
        """Deregister the neuron a new registration replaces; returns (its uid, its hotkey)."""
        net, period = sub["netuid"], sub["immunity_period"]
        rows = db.execute(
            "SELECT uid, hotkey, incentive, emission, registered_at FROM neurons WHERE netuid=?", (net,)
        ).fetchall()
        candidates = [r for r in rows if block - r["registered_at"] >= period]
        if not candidates:
            wait = min(period - (block - r["registered_at"]) for r in rows)
            raise SubnetFull(
                f"subnet {net} is full ({sub['max_uids']} uids) and every neuron is still immune "
                f"(immunity period {period} blocks); the next immunity ends in {wait} block(s)"
            )
        victim = min(candidates, key=lambda r: (r["incentive"], r["emission"], r["registered_at"], r["uid"]))
        uid, hotkey = victim["uid"], victim["hotkey"]
        db.execute("DELETE FROM neurons WHERE netuid=? AND uid=?", (net, uid))
        db.execute("DELETE FROM weights WHERE netuid=? AND uid=?", (net, uid))
        db.execute("DELETE FROM commitments WHERE netuid=? AND hotkey=?", (net, hotkey))
        return uid, hotkey

    def _info(self, db: sqlite3.Connection, netuid: int) -> SubnetInfo:
        sub = self._subnet(db, netuid)
        n = db.execute("SELECT COUNT(*) FROM neurons WHERE netuid=?", (netuid,)).fetchone()[0]
        return SubnetInfo(
            netuid=netuid,
            tempo=sub["tempo"],
            block_time=self._block_time,
            max_uids=sub["max_uids"],
            immunity_period=sub["immunity_period"],
            burn_cost=_tao(sub["burn_rao"]),
            weights_rate_limit=sub["weights_rate_limit"],
            weights_version=sub["weights_version"],
            max_weight_limit=sub["max_weight_limit"],
            max_validators=sub["max_validators"],
            commitment_rate_limit=sub["commitment_rate_limit"],
            emission_per_tempo=sub["emission_per_tempo"],
            n=n,
            created_block=sub["created_block"],
            last_epoch_block=sub["last_epoch_block"],
        )


# --------------------------------------------------------------------------------------------
# helpers on an open connection
# --------------------------------------------------------------------------------------------
def _block_at(now: float, genesis: float, block_time: float) -> int:
    # the epsilon keeps exact multiples of block_time from flooring one block short
    return max(0, math.floor((now - genesis) / block_time + 1e-9))


def _check_schema(db: sqlite3.Connection, path: Path) -> None:
    try:
        row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    except sqlite3.Error as e:
        raise SchemaMismatch(f"{path} is not a GAS dev chain database ({e})") from e
    if row is None:
        raise SchemaMismatch(f"{path} is not a GAS dev chain database (no schema_version)")
    version = int(row[0])
    if version > SCHEMA_VERSION:
        raise SchemaMismatch(
            f"{path} has dev chain schema version {version}, newer than this GAS understands "
            f"({SCHEMA_VERSION}): upgrade GAS, or use another dev chain (--devchain NAME)"
        )


def _balance_rao(db: sqlite3.Connection, coldkey: str) -> int:
    row = db.execute("SELECT rao FROM balances WHERE coldkey=?", (coldkey,)).fetchone()
    return 0 if row is None else int(row[0])


def _stake_rao(db: sqlite3.Connection, netuid: int, hotkey: str) -> int:
    row = db.execute("SELECT rao FROM stakes WHERE netuid=? AND hotkey=?", (netuid, hotkey)).fetchone()
    return 0 if row is None else int(row[0])


def _stakes_and_permits(db: sqlite3.Connection, netuid: int, max_validators: int) -> tuple[dict[int, int], set[int]]:
    """({uid: stake rao}, permit uids): the top ``max_validators`` by stake, stake > 0, ties → lower uid."""
    rows = db.execute(
        "SELECT n.uid, COALESCE(s.rao, 0) FROM neurons n LEFT JOIN stakes s "
        "ON s.netuid = n.netuid AND s.hotkey = n.hotkey WHERE n.netuid=?",
        (netuid,),
    ).fetchall()
    stakes = {int(uid): int(rao) for uid, rao in rows}
    ranked = sorted((uid for uid, rao in stakes.items() if rao > 0), key=lambda u: (-stakes[u], u))
    return stakes, set(ranked[:max_validators])


def _present(values: dict[int, int], raw: bool) -> dict[int, float]:
    if raw:
        return dict(values)  # type: ignore[arg-type]
    total = sum(values.values())
    return {uid: (v / total if total else 0.0) for uid, v in values.items()}


def _check_weight_input(uids: Sequence[int], weights: Sequence[float]) -> tuple[list[int], list[float]]:
    uid_list, weight_list = list(uids), list(weights)
    if len(uid_list) != len(weight_list):
        raise InvalidWeights(f"{len(uid_list)} uids but {len(weight_list)} weights: lengths must match")
    if not uid_list:
        raise InvalidWeights("no weights given")
    out_uids: list[int] = []
    for u in uid_list:
        if isinstance(u, bool) or not hasattr(u, "__index__"):
            raise InvalidWeights(f"uid {u!r} is not an integer")
        u = int(u.__index__())
        if not 0 <= u <= U16_MAX:
            raise InvalidWeights(f"uid {u} is out of the u16 range")
        out_uids.append(u)
    dupes = sorted({u for u in out_uids if out_uids.count(u) > 1})
    if dupes:
        raise InvalidWeights(f"duplicate uid(s) {dupes}: each uid may appear once")
    out_weights: list[float] = []
    for u, w in zip(out_uids, weight_list, strict=True):
        try:
            x = float(w)
        except (TypeError, ValueError):
            raise InvalidWeights(f"weight for uid {u} is not a number: {w!r}") from None
        if not math.isfinite(x) or x < 0:
            raise InvalidWeights(f"weight for uid {u} must be finite and non-negative, got {w!r}")
        out_weights.append(x)
    return out_uids, out_weights
