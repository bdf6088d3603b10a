"""An in-memory stand-in for the bittensor 11 SDK's ``Substrate`` (the ``substrate=`` seam).

``bittensor.Client(network, substrate=FakeSubstrate(...))`` runs the SDK's real read
namespaces, metagraph/commitment decoders, intents (SetWeights' preflight, u16 quantisation,
commit-reveal choice), executor (plan, policy, MEV-shielded submission, retries) and result
handling on top of this object. The fake answers the storage items, runtime API and chain
metadata those layers ask for, with values in the shapes the SDK's Rust SCALE decoder produces
(ss58 strings, ints, ``{"Raw4": "0x…"}`` commitment fields, axon dicts), and it records every
call the SDK composes and every extrinsic it submits instead of encoding, signing and sending
them. Successful dispatches are applied to the in-memory state (a registration assigns a uid,
a commitment is stored, weights bump LastUpdate, serve_axon sets the axon), so reads after
writes see them.

What it is not: a SCALE codec, a runtime (no chain rules beyond the few modelled explicitly),
a transaction pool, or a network peer.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
from collections import deque
from dataclasses import dataclass
from typing import Any

from bittensor.balance import Balance
from bittensor.result import ChainError, ExtrinsicResult, chain_error_from_substrate_request

RAO = 10**9
#: A syntactically valid ML-KEM-768 encapsulation key (all-zero coefficients + zero seed): the
#: SDK really encrypts the shielded extrinsic to it with bittensor_core.encrypt_mlkem768.
MLKEM768_TEST_KEY = bytes(1184)


@dataclass
class ComposedCall:
    """What ``compose`` returns: the call, unencoded (``module``/``function``/``params``)."""

    module: str
    function: str
    params: dict[str, Any]


@dataclass
class Submission:
    """One extrinsic that reached dispatch (for shielded ones: the decrypted inner call)."""

    module: str
    function: str
    params: dict[str, Any]
    signer: str
    signature_ok: bool
    shielded: bool
    wait_for_inclusion: bool
    wait_for_finalization: bool
    success: bool = True


# Outcomes a test can queue for the next dispatches -------------------------------------------
@dataclass(frozen=True)
class ModuleError:
    """The extrinsic is included but its dispatch fails with this pallet error name."""

    name: str
    docs: str = ""


@dataclass(frozen=True)
class PoolRejection:
    """The node refuses the extrinsic before inclusion with this RPC text (e.g. ``Custom error: 6``)."""

    message: str


@dataclass(frozen=True)
class Disconnect:
    """The websocket dies while the extrinsic is being submitted."""

    message: str = "connection reset by peer"


@dataclass
class FakeNeuron:
    hotkey: str
    coldkey: str
    stake_rao: int = 0
    validator_permit: bool = False
    active: bool = True
    last_update: int = 0
    registered_at: int = 0
    incentive_u16: int = 0
    emission_rao: int = 0
    axon: dict[str, int] | None = None


class TransientFailure(ConnectionResetError):
    """Raised by reads while ``fail_reads`` > 0: a dropped websocket, as the transport leaks it."""


class FakeSubstrate:
    """See the module docstring. One subnet (``netuid``) is modelled in detail."""

    def __init__(self, *, netuid: int = 34, head: int = 5_000, tempo: int = 360) -> None:
        self.netuid = netuid
        self.head = head
        self.tempo = tempo
        self.neurons: list[FakeNeuron] = []
        self.commitments: dict[str, dict[str, Any]] = {}  # hotkey -> CommitmentOf record
        self.weight_rows: dict[int, list[tuple[int, int]]] = {}  # setter uid -> [(dest uid, u16)]
        self.storage: dict[tuple[str, str, tuple], Any] = {}  # explicit overrides
        self.token_symbols: dict[int, str] = {}
        self.subnet_exists = True
        # recordings
        self.log: list[tuple[str, Any]] = []
        self.composed: list[ComposedCall] = []
        self.submitted: list[Submission] = []
        self.carriers: list[ComposedCall] = []
        self.connects = 0
        self.closes = 0
        # scripted behaviour
        self.outcomes: deque[ModuleError | PoolRejection | Disconnect | None] = deque()
        self.fail_reads = 0  # the next N reads raise TransientFailure (a dropped websocket)
        self.fail_only: str | None = None  # ... only reads of this kind ("block_number", "query", ...)
        self.stall_reads = 0  # the next N reads never answer (a node that stopped responding)
        self.fail_connects = 0
        self._nonces: dict[str, int] = {}
        self._pending_inner: dict[str, tuple[ComposedCall, Any, bool]] = {}
        self._inner_results: dict[str, ExtrinsicResult] = {}

    # ------------------------------------------------------------------ test setup helpers
    def add_neuron(self, hotkey: str, coldkey: str, **kw: Any) -> int:
        self.neurons.append(FakeNeuron(hotkey=hotkey, coldkey=coldkey, **kw))
        return len(self.neurons) - 1

    def put_commitment(self, hotkey: str, fields: list, block: int) -> None:
        """Store a CommitmentOf record exactly as the SDK's decoder returns it."""
        self.commitments[hotkey] = {"deposit": 0, "block": block, "info": {"fields": fields}}

    def set(self, module: str, item: str, params: list | tuple, value: Any) -> None:
        self.storage[(module, item, tuple(params))] = value

    def uid(self, hotkey: str) -> int | None:
        for uid, n in enumerate(self.neurons):
            if n.hotkey == hotkey:
                return uid
        return None

    def reads_of(self, module: str, item: str) -> list[Any]:
        return [args for kind, args in self.log if kind == "query" and args[:2] == (module, item)]

    # ------------------------------------------------------------------ Substrate: lifecycle
    def balance(self, rao: int, netuid: int = 0) -> Balance:
        return Balance(int(rao), netuid, self.token_symbols.get(netuid) if netuid else None)

    async def connect(self) -> None:
        self.connects += 1
        if self.fail_connects > 0:
            self.fail_connects -= 1
            raise TransientFailure("handshake failed")

    async def close(self) -> None:
        self.closes += 1

    # ------------------------------------------------------------------ Substrate: reads
    async def _read(self, kind: str, args: Any) -> None:
        self.log.append((kind, args))
        if self.stall_reads > 0 and self.fail_only in (None, kind):
            self.stall_reads -= 1
            await asyncio.sleep(3600)
        if self.fail_reads > 0 and self.fail_only in (None, kind):
            self.fail_reads -= 1
            raise TransientFailure(f"websocket closed during {kind}")

    async def block_hash(self, block: int | None = None) -> str | None:
        await self._read("block_hash", block)
        number = self.head if block is None else int(block)
        return None if number > self.head else f"0x{number:064x}"

    async def block_number(self) -> int:
        await self._read("block_number", None)
        return self.head

    async def finalized_block_number(self) -> int:
        await self._read("finalized_block_number", None)
        return self.head

    async def block_time(self) -> float:
        return 12.0

    async def spec_version(self) -> int:
        return 400

    async def get_block(self, block_number: int | None = None, block_hash: str | None = None) -> dict | None:
        raise NotImplementedError("get_block is not modelled")

    async def query(
        self, module: str, storage_function: str, params: list | None = None, block_hash: str | None = None
    ) -> Any:
        params = list(params or [])
        await self._read("query", (module, storage_function, tuple(params)))
        key = (module, storage_function, tuple(params))
        if key in self.storage:
            return self.storage[key]
        return self._state(module, storage_function, params)

    async def map_has_entries(
        self, module: str, storage_function: str, params: list, block_hash: str | None = None
    ) -> bool:
        return bool(await self.query_map(module, storage_function, params, block_hash))

    async def query_map(
        self, module: str, storage_function: str, params: list | None = None, block_hash: str | None = None
    ) -> list[tuple[Any, Any]]:
        params = list(params or [])
        await self._read("query_map", (module, storage_function, tuple(params)))
        if (module, storage_function) == ("Commitments", "CommitmentOf") and params == [self.netuid]:
            return list(self.commitments.items())
        if (module, storage_function) == ("SubtensorModule", "Uids") and params == [self.netuid]:
            return [(n.hotkey, uid) for uid, n in enumerate(self.neurons)]
        if (module, storage_function) == ("SubtensorModule", "Weights") and params == [self.netuid]:
            return sorted(self.weight_rows.items())
        return []

    async def query_batch(
        self, module: str, storage_function: str, param_sets: list[list], block_hash: str | None = None
    ) -> list[Any]:
        return [await self.query(module, storage_function, p, block_hash) for p in param_sets]

    async def runtime_call(self, api: str, method: str, params: list, block_hash: str | None = None) -> Any:
        await self._read("runtime_call", (api, method, tuple(params)))
        if (api, method) == ("SubnetInfoRuntimeApi", "get_metagraph"):
            return self._metagraph() if self.subnet_exists and list(params) == [self.netuid] else None
        raise NotImplementedError(f"runtime API {api}.{method} is not modelled")

    async def constant(self, module: str, name: str) -> Any:
        await self._read("constant", (module, name))
        if (module, name) == ("Aura", "SlotDuration"):
            return 12_000
        raise NotImplementedError(f"constant {module}.{name} is not modelled")

    async def decode_scale(self, type_string: str, data: Any) -> Any:
        raise NotImplementedError("decode_scale is not modelled")

    async def blocks(self, *, finalized: bool = False):  # pragma: no cover - not used
        raise NotImplementedError("block subscriptions are not modelled")
        yield {}

    async def events(self, block_hash: str | None = None) -> list[dict]:
        return []

    # ------------------------------------------------------------------ Substrate: calls and fees
    async def compose(self, call: Any) -> ComposedCall:
        module, function, params = call
        composed = ComposedCall(module, function, dict(params))
        self.composed.append(composed)
        return composed

    async def estimate_fee(self, call: Any, keypair: Any) -> Balance:
        return Balance.from_rao(12_345)

    async def estimate_weight(self, call: Any, keypair: Any) -> dict:
        return {"ref_time": 0, "proof_size": 0}

    async def account_next_index(self, address: str) -> int:
        return self._nonces.get(address, 0)

    # ------------------------------------------------------------------ Substrate: writes
    async def mev_next_key(self) -> bytes | None:
        return MLKEM768_TEST_KEY

    async def sign_extrinsic(self, call: Any, keypair: Any, *, nonce: int, period: int) -> tuple[bytes, str]:
        payload = repr((call.module, call.function, sorted(call.params.items(), key=str), nonce)).encode()
        ok = _signature_ok(keypair, payload)
        inner_hash = "0x" + hashlib.sha256(payload).hexdigest()
        self._pending_inner[inner_hash] = (call, keypair, ok)
        return b"signed-inner:" + payload, inner_hash

    async def find_extrinsic(self, extrinsic_hash: str, block_hash: str) -> ExtrinsicResult | None:
        if extrinsic_hash in self._inner_results:
            return self._inner_results[extrinsic_hash]
        pending = self._pending_inner.pop(extrinsic_hash, None)
        if pending is None:
            return None
        call, keypair, ok = pending
        result = self._dispatch(call, keypair, ok, shielded=True, inclusion=True, finalization=False)
        self._inner_results[extrinsic_hash] = result
        return result

    async def submit(
        self,
        call: Any,
        keypair: Any,
        *,
        nonce: int | None = None,
        period: int | None = 128,
        wait_for_inclusion: bool = True,
        wait_for_finalization: bool = True,
    ) -> ExtrinsicResult:
        self._nonces[keypair.ss58_address] = (
            nonce if nonce is not None else self._nonces.get(keypair.ss58_address, 0)
        ) + 1
        if (call.module, call.function) == ("MevShield", "submit_encrypted"):
            self.carriers.append(call)
            self.head += 1
            return ExtrinsicResult(
                success=True,
                message="Success",
                block_hash=f"0x{self.head:064x}",
                extrinsic_id=f"{self.head}-0001",
            )
        ok = _signature_ok(keypair, repr((call.module, call.function)).encode())
        return self._dispatch(
            call,
            keypair,
            ok,
            shielded=False,
            inclusion=wait_for_inclusion,
            finalization=wait_for_finalization,
        )

    async def submit_signed(self, extrinsic: Any, keypair: Any, **kw: Any) -> ExtrinsicResult:
        raise NotImplementedError("submit_signed is not modelled")

    async def prepare(self, call: Any, **kw: Any) -> Any:
        raise NotImplementedError("offline signing is not modelled")

    async def submit_signature(self, unsigned: Any, signature: Any, **kw: Any) -> ExtrinsicResult:
        raise NotImplementedError("offline signing is not modelled")

    def multisig_account(self, signatories: list[str], threshold: int) -> Any:
        raise NotImplementedError("multisig is not modelled")

    async def submit_multisig(
        self, call: Any, keypair: Any, multisig_account: Any, **kw: Any
    ) -> ExtrinsicResult:
        raise NotImplementedError("multisig is not modelled")

    # ------------------------------------------------------------------ internals
    def _dispatch(
        self,
        call: ComposedCall,
        keypair: Any,
        signature_ok: bool,
        *,
        shielded: bool,
        inclusion: bool,
        finalization: bool,
    ) -> ExtrinsicResult:
        outcome = self.outcomes.popleft() if self.outcomes else None
        record = Submission(
            call.module,
            call.function,
            dict(call.params),
            keypair.ss58_address,
            signature_ok,
            shielded,
            inclusion,
            finalization,
        )
        self.submitted.append(record)
        if isinstance(outcome, Disconnect):
            record.success = False
            # RpcSubstrate._failed_submit wraps non-RPC failures exactly like this.
            error = ConnectionResetError(outcome.message)
            raise ChainError(str(error)) from error
        if isinstance(outcome, PoolRejection):
            record.success = False
            error = chain_error_from_substrate_request(Exception(outcome.message))
            return ExtrinsicResult(success=False, message=error.message, error=error)
        self.head += 1
        block_hash = f"0x{self.head:064x}"
        extrinsic_id = f"{self.head}-0002"
        if isinstance(outcome, ModuleError):
            record.success = False
            text = outcome.docs or outcome.name
            return ExtrinsicResult(
                success=False,
                message=text,
                block_hash=block_hash,
                extrinsic_id=extrinsic_id,
                error=ChainError(text, outcome.name),
            )
        self._apply(call, keypair.ss58_address)
        return ExtrinsicResult(
            success=True,
            message="Success",
            block_hash=block_hash,
            extrinsic_id=extrinsic_id,
            fee=Balance.from_rao(12_345),
        )

    def _apply(self, call: ComposedCall, signer: str) -> None:
        """The state change a successful dispatch makes (only what the tests read back)."""
        p = call.params
        key = (call.module, call.function)
        if key == ("SubtensorModule", "burned_register"):
            self.add_neuron(p["hotkey"], signer, registered_at=self.head)
        elif key == ("Commitments", "set_commitment"):
            fields = []
            for entry in p["info"]["fields"]:
                ((variant, value),) = entry.items()
                fields.append({variant: "0x" + bytes(value).hex()})  # the decoder's read shape
            self.put_commitment(signer, fields, self.head)
        elif key in (
            ("SubtensorModule", "set_mechanism_weights"),
            ("SubtensorModule", "commit_timelocked_mechanism_weights"),
        ):
            uid = self.uid(signer)
            if uid is not None:
                self.neurons[uid].last_update = self.head
                if call.function == "set_mechanism_weights":
                    self.weight_rows[uid] = list(zip(p["dests"], p["weights"], strict=True))
        elif key == ("SubtensorModule", "serve_axon"):
            uid = self.uid(signer)
            if uid is not None:
                self.neurons[uid].axon = {
                    "block": self.head,
                    "version": p["version"],
                    "ip": p["ip"],
                    "port": p["port"],
                    "ip_type": p["ip_type"],
                    "protocol": p["protocol"],
                    "placeholder1": 0,
                    "placeholder2": 0,
                }

    def _state(self, module: str, item: str, params: list) -> Any:
        """Storage answers derived from the modelled subnet, else the chain's defaults."""
        if module == "SubtensorModule":
            if item == "Uids" and len(params) == 2 and params[0] == self.netuid:
                return self.uid(params[1])
            if item == "LastUpdate" and params == [self.netuid]:
                return [n.last_update for n in self.neurons]
            if item == "ValidatorPermit" and params == [self.netuid]:
                return [n.validator_permit for n in self.neurons]
            if item == "Tempo":
                return self.tempo
            defaults = {
                "CommitRevealWeightsEnabled": False,
                "WeightsSetRateLimit": 100,
                "MinAllowedWeights": 1,
                "MaxWeightsLimit": 65535,
                "SubnetEpochConsensus": "Yuma",
                "Burn": 2 * RAO,
                "CollateralLockShare": 0,
                "RevealPeriodEpochs": 1,
                "LastEpochBlock": self.head - 100,
                "PendingEpochAt": 0,
                "SubnetEpochIndex": 10,
                "BlocksSinceLastStep": 100,
                "WeightsVersionKey": 0,
                "ServingRateLimit": 50,
            }
            return defaults.get(item)
        if (module, item) == ("System", "Account"):
            return {"data": {"free": 100 * RAO}}
        return None

    def _metagraph(self) -> dict[str, Any]:
        """The decoded ``SubnetInfoRuntimeApi.get_metagraph`` record for the modelled subnet."""
        ns = self.neurons
        return {
            "netuid": self.netuid,
            "name": list(b"gas"),
            "symbol": list("ψ".encode()),
            "identity": None,
            "network_registered_at": 100,
            "owner_hotkey": ns[0].hotkey if ns else "",
            "owner_coldkey": ns[0].coldkey if ns else "",
            "block": self.head,
            "tempo": self.tempo,
            "last_step": self.head - 100,
            "blocks_since_last_step": 100,
            "num_uids": len(ns),
            "max_uids": 256,
            "tao_in": 1_000 * RAO,
            "alpha_in": 2_000 * RAO,
            "moving_price": {"bits": 2**31},
            "hotkeys": [n.hotkey for n in ns],
            "coldkeys": [n.coldkey for n in ns],
            "identities": [None for _ in ns],
            "axons": [
                n.axon
                or {
                    "block": 0,
                    "version": 0,
                    "ip": 0,
                    "port": 0,
                    "ip_type": 0,
                    "protocol": 0,
                    "placeholder1": 0,
                    "placeholder2": 0,
                }
                for n in ns
            ],
            "active": [n.active for n in ns],
            "validator_permit": [n.validator_permit for n in ns],
            "pruning_score": [0 for _ in ns],
            "last_update": [n.last_update for n in ns],
            "emission": [n.emission_rao for n in ns],
            "dividends": [0 for _ in ns],
            "incentives": [n.incentive_u16 for n in ns],
            "consensus": [0 for _ in ns],
            "trust": [0 for _ in ns],
            "rank": [0 for _ in ns],
            "block_at_registration": [n.registered_at for n in ns],
            "alpha_stake": [n.stake_rao for n in ns],
            "tao_stake": [0 for _ in ns],
            "total_stake": [n.stake_rao for n in ns],
        }


def _signature_ok(keypair: Any, payload: bytes) -> bool:
    """Sign with the signer the SDK resolved and verify against its public address."""
    import bittensor_core

    signature = keypair.sign(payload)
    return bool(bittensor_core.Keypair(ss58_address=keypair.ss58_address).verify(payload, signature))


def ipv4_int(ip: str) -> int:
    return int(ipaddress.IPv4Address(ip))


__all__ = [
    "ComposedCall",
    "Disconnect",
    "FakeNeuron",
    "FakeSubstrate",
    "MLKEM768_TEST_KEY",
    "ModuleError",
    "PoolRejection",
    "RAO",
    "Submission",
    "TransientFailure",
    "ipv4_int",
]
