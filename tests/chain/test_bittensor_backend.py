"""BittensorChain (the bittensor 11 SDK adapter) against an in-memory fake substrate.

What these tests prove
----------------------
``FakeSubstrate`` (tests/support/fake_substrate.py) is plugged in through the SDK's own seam,
``bittensor.Client(network, substrate=...)``. Everything above that interface is the real,
installed SDK: its read namespaces and metagraph/commitment decoders, the ``SetWeights`` intent
(registration and rate-limit preflight, u16 quantisation, the plain vs timelocked commit-reveal
choice and the real drand timelock encryption), ``ServeAxon``, ``BurnedRegister`` (which the SDK
insists on submitting MEV-shielded: the inner extrinsic is really ML-KEM encrypted), the
executor (plan, fee estimate, signer resolution from a real on-disk ``bittensor.Wallet``) and the
``ExtrinsicResult``/``ChainError`` classification. So the tests pin down:

* our mapping of the SDK's values to ``gas.chain.base`` types, and of its errors to ours;
* exactly which calls the SDK composes for each of our writes (pallet, function, params), with
  which key they are signed (the fake signs with the resolved signer and verifies the signature
  against its ss58 address) and with which wait flags;
* retry, reconnect and timeout behaviour, and that rule violations are never retried;
* with a real socket: an unreachable endpoint raises ChainUnavailable within 15 s.

``test_commitment_fields_encode_to_the_pallet_wire_format`` additionally runs our commitment
``info`` through the SDK's real Rust SCALE encoder (``bittensor_core.Runtime``) with a hand-built
metadata that reproduces pallet_commitments' TypeInfo, and compares the bytes with the pallet's
own ``Encode`` layout.

What they do not prove
----------------------
Real SCALE encoding against the live runtime metadata (other than that one hand-built slice),
extrinsic construction, signature payloads, nonces and eras, transaction-pool behaviour, the
chain's actual rules and error names at its current runtime version, MEV-shield decryption by a
block author, or anything about the network. The values the fake returns are shaped like the
SDK's decoder output as read from its source, not captured from a node.
"""

from __future__ import annotations

import math
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_substrate import (
    RAO,
    Disconnect,
    FakeSubstrate,
    ModuleError,
    PoolRejection,
    ipv4_int,
)

import bittensor as bt
from gas.chain.base import (
    AlreadyRegistered,
    Chain,
    ChainError,
    ChainUnavailable,
    CommitmentTooLarge,
    Identity,
    InsufficientBalance,
    InvalidWeights,
    NotRegistered,
    NoValidatorPermit,
    NoWallet,
    RateLimited,
    SubnetFull,
    SubnetNotFound,
    VersionKeyTooLow,
)
from gas.chain.bittensor_backend import (
    MAX_COMMITMENT_BYTES,
    BittensorChain,
    commitment_fields,
    parse_axon,
    raw_commitment_bytes,
)
from gas.scoring.weights import to_u16

NETUID = 34
MINER_HK = "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"
MINER_CK = "5FLSigC9HGRKVhB9FiEo4Y3koPsNmBmLJbpXg2mp1hXcS59Y"


def _wallet(root: Path, name: str) -> bt.Wallet:
    w = bt.Wallet(name=name, hotkey="hk", path=str(root))
    w.create_new_coldkey(use_password=False, overwrite=True, suppress=True)
    w.create_new_hotkey(use_password=False, overwrite=True, suppress=True)
    return w


@pytest.fixture(scope="module")
def wallets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bt.Wallet]:
    root = tmp_path_factory.mktemp("bt-wallets")
    return {"validator": _wallet(root, "validator"), "newcomer": _wallet(root, "newcomer")}


def _identity(w: bt.Wallet) -> Identity:
    return Identity(hotkey=w.hotkey.ss58_address, coldkey=w.coldkeypub.ss58_address, wallet=w)


@pytest.fixture(autouse=True)
def _sdk_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK caches token symbols on connect; keep that file out of the real home."""
    monkeypatch.setenv("BTCLI_TOKEN_SYMBOLS_CACHE", str(tmp_path / "token_symbols.json"))


@pytest.fixture()
def fake(wallets: dict[str, bt.Wallet]) -> FakeSubstrate:
    f = FakeSubstrate(netuid=NETUID, head=5_000)
    v = wallets["validator"]
    f.add_neuron(
        v.hotkey.ss58_address,
        v.coldkeypub.ss58_address,
        stake_rao=5 * RAO,
        validator_permit=True,
        incentive_u16=32768,
        emission_rao=RAO // 2,
        last_update=4_000,
        registered_at=120,
        axon={
            "block": 1,
            "version": 1,
            "ip": ipv4_int("1.2.3.4"),
            "port": 8091,
            "ip_type": 4,
            "protocol": 4,
            "placeholder1": 0,
            "placeholder2": 0,
        },
    )
    f.add_neuron(
        MINER_HK,
        MINER_CK,
        stake_rao=0,
        last_update=3_000,
        registered_at=300,
        axon={
            "block": 2,
            "version": 1,
            "ip": 1,
            "port": 9000,
            "ip_type": 6,
            "protocol": 4,
            "placeholder1": 0,
            "placeholder2": 0,
        },
    )
    return f


def _chain(fake: FakeSubstrate, identity: Identity | None = None, **kw) -> BittensorChain:
    kw.setdefault("backoff", 0.01)
    return BittensorChain("local", NETUID, identity=identity, substrate=fake, **kw)


@pytest.fixture()
def chain(fake: FakeSubstrate, wallets: dict[str, bt.Wallet]):
    c = _chain(fake, _identity(wallets["validator"]))
    yield c
    c.close()


# ------------------------------------------------------------------------------------ basics
def test_satisfies_protocol_and_is_lazy(fake: FakeSubstrate) -> None:
    c = _chain(fake)
    assert isinstance(c, Chain)
    assert fake.connects == 0 and c.block_time() == 12.0 and fake.connects == 0
    assert c.block() == 5_000 and c.block() == 5_000
    assert fake.connects == 1
    c.close()
    assert fake.closes == 1
    c.close()  # idempotent
    assert c.block() == 5_000 and fake.connects == 2  # reopens lazily after close


def test_importing_the_backend_does_not_import_the_sdk() -> None:
    code = "import sys, gas.chain.bittensor_backend; print('bittensor' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_unknown_network_is_rejected() -> None:
    with pytest.raises(ValueError, match="dev chain"):
        BittensorChain("dev", NETUID)
    with pytest.raises(ValueError, match="unknown network"):
        BittensorChain("mainnet", NETUID)
    assert BittensorChain("wss://example.invalid:443", 1).endpoint == "wss://example.invalid:443"


# ------------------------------------------------------------------------------------ reads
def test_metagraph_maps_sdk_neurons(chain: BittensorChain, fake: FakeSubstrate, wallets) -> None:
    mg = chain.metagraph()
    assert (mg.netuid, mg.block, mg.tempo, mg.n) == (NETUID, 5_000, 360, 2)
    v, m = mg.neurons
    assert v.uid == 0 and v.hotkey == wallets["validator"].hotkey.ss58_address
    assert v.coldkey == wallets["validator"].coldkeypub.ss58_address
    assert v.stake == 5.0 and v.emission == 0.5 and v.validator_permit
    assert math.isclose(v.incentive, 32768 / 65535)
    assert (v.axon_ip, v.axon_port, v.axon) == ("1.2.3.4", 8091, "1.2.3.4:8091")
    assert (v.last_update, v.registered_at) == (4_000, 120)
    assert (m.uid, m.hotkey, m.coldkey, m.stake, m.validator_permit) == (1, MINER_HK, MINER_CK, 0.0, False)
    assert (m.axon_ip, m.axon_port) == ("::1", 9000)
    assert mg.validators == [v] and mg.uid_of(MINER_HK) == 1
    # one runtime-API call; commitments are not fetched with the metagraph
    assert ("runtime_call", ("SubnetInfoRuntimeApi", "get_metagraph", (NETUID,))) in fake.log
    assert not any(kind == "query_map" and args[0] == "Commitments" for kind, args in fake.log)


def test_metagraph_of_missing_subnet(chain: BittensorChain, fake: FakeSubstrate) -> None:
    fake.subnet_exists = False
    with pytest.raises(SubnetNotFound, match="subnet 34 does not exist"):
        chain.metagraph()
    with pytest.raises(SubnetNotFound):
        chain.metagraph(99)


def test_parse_axon_edge_cases() -> None:
    assert parse_axon(None) == (None, None)
    assert parse_axon("0.0.0.0:0") == (None, None)
    assert parse_axon("[2001:db8::1]:443") == ("2001:db8::1", 443)
    assert parse_axon("not-an-ip:80") == (None, None)


def test_commitments_keep_raw_bytes(chain: BittensorChain, fake: FakeSubstrate) -> None:
    fake.put_commitment("hk-text", [{"Raw11": "0x" + b'{"key":"m"}'.hex()}], 4_100)
    fake.put_commitment("hk-binary", [{"Raw4": "0xff00fe80"}], 4_200)
    fake.put_commitment("hk-split", [{"Raw3": "0x616263"}, {"Raw2": "0x6465"}], 4_300)
    fake.put_commitment("hk-empty", [{"Raw0": "0x"}], 4_400)
    fake.put_commitment("hk-hash-only", [{"Sha256": "0x" + "11" * 32}], 4_500)
    fake.put_commitment("hk-malformed", [{"Raw2": "0xzz"}], 4_600)
    got = chain.commitments()
    assert set(got) == {"hk-text", "hk-binary", "hk-split", "hk-empty"}
    assert got["hk-text"].data == b'{"key":"m"}' and got["hk-text"].text == '{"key":"m"}'
    assert got["hk-text"].block == 4_100
    assert got["hk-binary"].data == b"\xff\x00\xfe\x80" and got["hk-binary"].text is None
    assert got["hk-split"].data == b"abcde"
    assert got["hk-empty"].data == b""


def test_raw_commitment_bytes_tolerates_odd_shapes() -> None:
    assert raw_commitment_bytes(None) is None
    assert raw_commitment_bytes([]) is None
    assert raw_commitment_bytes(["None", {"Sha256": "0x00"}]) is None
    assert raw_commitment_bytes([[{"Raw2": "0x6869"}]]) == b"hi"  # the newtype-wrapped shape
    assert raw_commitment_bytes([{"Raw2": [104, 105]}, {"Raw1": b"!"}]) == b"hi!"


def test_rate_limit_and_blocks_since_last_update(chain: BittensorChain, fake: FakeSubstrate) -> None:
    fake.set("SubtensorModule", "WeightsSetRateLimit", [NETUID], 360)
    assert chain.weights_rate_limit() == 360
    assert chain.blocks_since_last_update(0) == 1_000
    assert chain.blocks_since_last_update(1) == 2_000
    assert chain.blocks_since_last_update(7) is None
    assert chain.uid_of(MINER_HK) == 1 and chain.uid_of("nobody") is None


# ------------------------------------------------------------------------------------ set_weights
def test_set_weights_composes_set_mechanism_weights(
    chain: BittensorChain, fake: FakeSubstrate, wallets
) -> None:
    uids, weights = [0, 1, 5], [0.2, 0.7, 0.0]
    result = chain.set_weights(uids, weights, version_key=42)
    assert result.success and result.message == "weights set" and result.block == 5_001
    (sub,) = fake.submitted
    assert (sub.module, sub.function) == ("SubtensorModule", "set_mechanism_weights")
    exp_uids, exp_vals = to_u16(uids, weights)  # our helper matches the SDK's quantisation
    assert sub.params == {
        "netuid": NETUID,
        "mecid": 0,
        "dests": exp_uids,
        "weights": exp_vals,
        "version_key": 42,
    }
    assert exp_uids == [0, 1] and exp_vals == [18724, 65535]
    assert sub.signer == wallets["validator"].hotkey.ss58_address and sub.signature_ok
    assert (sub.wait_for_inclusion, sub.wait_for_finalization, sub.shielded) == (True, False, False)
    assert chain.blocks_since_last_update(0) == 0  # the fake applied it
    # read back through the SDK's Weights read: rows come back as fractions of the row
    assert chain.weights() == {0: {0: pytest.approx(18724 / (18724 + 65535)), 1: pytest.approx(65535 / (18724 + 65535))}}


def test_set_weights_uses_timelocked_commit_when_commit_reveal_is_on(chain: BittensorChain, fake) -> None:
    fake.set("SubtensorModule", "CommitRevealWeightsEnabled", [NETUID], True)
    result = chain.set_weights([0, 1], [1.0, 3.0], version_key=7)
    (sub,) = fake.submitted
    assert (sub.module, sub.function) == ("SubtensorModule", "commit_timelocked_mechanism_weights")
    assert sub.params["netuid"] == NETUID and sub.params["mecid"] == 0
    assert sub.params["commit_reveal_version"] == 4
    assert isinstance(sub.params["commit"], bytes) and len(sub.params["commit"]) > 64
    assert sub.params["reveal_round"] > 0
    assert result.success and f"drand round {sub.params['reveal_round']}" in result.message


@pytest.mark.parametrize(
    ("uids", "weights", "match"),
    [
        ([0, 1], [1.0], "2 uids but 1 weights"),
        ([0, 1], [1.0, -0.5], "non-negative"),
        ([0, 1], [1.0, float("nan")], "finite"),
        ([0, 1], [0.0, 0.0], "all weights are zero"),
        ([1, 1], [0.5, 0.5], "Duplicate UIDs"),
    ],
)
def test_set_weights_rejects_bad_vectors_before_the_chain(fake, wallets, uids, weights, match) -> None:
    c = _chain(fake, _identity(wallets["validator"]))
    with pytest.raises(InvalidWeights, match=match):
        c.set_weights(uids, weights, version_key=1)
    assert fake.connects == 0 and not fake.composed and not fake.submitted


def test_set_weights_rate_limit_preflight(chain: BittensorChain, fake: FakeSubstrate) -> None:
    fake.set("SubtensorModule", "WeightsSetRateLimit", [NETUID], 100)
    fake.neurons[0].last_update = 4_970  # 30 blocks ago
    with pytest.raises(RateLimited) as info:
        chain.set_weights([1], [1.0], version_key=1)
    assert (info.value.what, info.value.blocks_left, info.value.limit) == ("set_weights", 70, 100)
    assert not fake.submitted  # the SDK refused before signing; we did not retry


def test_set_weights_unregistered_hotkey(fake: FakeSubstrate, wallets) -> None:
    c = _chain(fake, _identity(wallets["newcomer"]))
    with pytest.raises(NotRegistered, match="not registered on subnet 34"):
        c.set_weights([0], [1.0], version_key=1)
    assert not fake.submitted


@pytest.mark.parametrize(
    ("outcome", "error", "match"),
    [
        (ModuleError("SettingWeightsTooFast"), RateLimited, "set_weights is rate limited"),
        (PoolRejection("Invalid Transaction: Custom error: 6"), RateLimited, "rate limited"),
        (ModuleError("NeuronNoValidatorPermit"), NoValidatorPermit, "no validator permit"),
        (ModuleError("IncorrectWeightVersionKey"), VersionKeyTooLow, "version key 3 is below .* 9"),
        (ModuleError("HotKeyNotRegisteredInSubNet"), NotRegistered, "not registered"),
        (ModuleError("MaxWeightExceeded"), InvalidWeights, "MaxWeightExceeded"),
        (ModuleError("SomethingNew"), ChainError, "set_weights failed on local: SomethingNew"),
    ],
)
def test_failed_weight_extrinsics_map_to_typed_errors(chain, fake, outcome, error, match) -> None:
    fake.set("SubtensorModule", "WeightsVersionKey", [NETUID], 9)
    fake.outcomes.append(outcome)
    with pytest.raises(error, match=match) as info:
        chain.set_weights([0, 1], [0.5, 0.5], version_key=3)
    if error is ChainError:
        assert type(info.value) is ChainError
    assert len(fake.submitted) == 1  # rule violations are never resubmitted


def test_writes_need_a_wallet(fake: FakeSubstrate) -> None:
    c = _chain(fake, identity=None)
    for call in (
        lambda: c.set_weights([0], [1.0], 1),
        lambda: c.set_commitment(b"x"),
        lambda: c.serve_axon("1.2.3.4", 1),
        lambda: c.register(),
    ):
        with pytest.raises(NoWallet):
            call()
    assert not fake.submitted


def test_wallet_must_match_the_identity(fake: FakeSubstrate, wallets) -> None:
    v, other = wallets["validator"], wallets["newcomer"]
    c = _chain(fake, Identity(hotkey=other.hotkey.ss58_address, coldkey=v.coldkeypub.ss58_address, wallet=v))
    with pytest.raises(ChainError, match="is not the identity's hotkey"):
        c.set_commitment(b"x")
    assert not fake.submitted


# ------------------------------------------------------------------------------------ commitments
def test_set_commitment_composes_raw_fields(chain: BittensorChain, fake: FakeSubstrate, wallets) -> None:
    chain.set_commitment(b"hello")
    (sub,) = fake.submitted
    assert (sub.module, sub.function) == ("Commitments", "set_commitment")
    assert sub.params == {"netuid": NETUID, "info": {"fields": [{"Raw5": b"hello"}]}}
    assert sub.signer == wallets["validator"].hotkey.ss58_address and sub.signature_ok
    # read back through the SDK's decoder
    assert chain.commitments()[sub.signer].data == b"hello"

    chain.set_commitment("ψ" * 150)  # 300 bytes of UTF-8: three Raw fields
    fields = fake.submitted[-1].params["info"]["fields"]
    assert [next(iter(f)) for f in fields] == ["Raw128", "Raw128", "Raw44"]
    assert chain.commitments()[sub.signer].text == "ψ" * 150


def test_set_commitment_too_large_never_touches_the_chain(fake: FakeSubstrate, wallets) -> None:
    c = _chain(fake, _identity(wallets["validator"]))
    c.set_commitment(b"x" * MAX_COMMITMENT_BYTES)  # exactly at the limit is fine
    fake.connects = 0
    fake.composed.clear()
    with pytest.raises(CommitmentTooLarge) as info:
        c.set_commitment(b"x" * (MAX_COMMITMENT_BYTES + 1))
    assert (info.value.size, info.value.limit) == (385, 384)
    assert not fake.composed and fake.connects == 0
    c.close()


def test_commitment_fields_encode_to_the_pallet_wire_format() -> None:
    import bittensor_core
    from commitments_metadata import build, pallet_encoding

    runtime = bittensor_core.Runtime(build(), 1, 1, 42)
    for payload in (b"", b"\x00\xffbinary", bytes(range(256)) + b"tail" * 20):
        chunks = [next(iter(f.values())) for f in commitment_fields(payload)]
        encoded = bytes(
            runtime.compose_call(
                "Commitments",
                "set_commitment",
                {"netuid": NETUID, "info": {"fields": commitment_fields(payload)}},
            )
        )
        assert encoded == pallet_encoding(NETUID, chunks)
        assert b"".join(chunks) == payload
    decoded = runtime.decode_call(encoded)
    assert decoded["call_module"] == "Commitments" and decoded["call_function"] == "set_commitment"


# ------------------------------------------------------------------------------------ serve_axon
def test_serve_axon_composes_serve_axon(chain: BittensorChain, fake: FakeSubstrate, wallets) -> None:
    chain.serve_axon("203.0.113.7", 8091)
    (sub,) = fake.submitted
    assert (sub.module, sub.function) == ("SubtensorModule", "serve_axon")
    assert sub.params == {
        "netuid": NETUID,
        "version": 1,
        "ip": ipv4_int("203.0.113.7"),
        "port": 8091,
        "ip_type": 4,
        "protocol": 4,
        "placeholder1": 0,
        "placeholder2": 0,
    }
    assert sub.signer == wallets["validator"].hotkey.ss58_address and sub.signature_ok
    assert chain.metagraph().by_uid(0).axon == "203.0.113.7:8091"

    chain.serve_axon("2001:db8::2", 443)
    assert fake.submitted[-1].params["ip_type"] == 6
    assert fake.submitted[-1].params["ip"] == int.from_bytes(
        bytes.fromhex("20010db8" + "0" * 23 + "2"), "big"
    )


def test_serve_axon_errors(chain: BittensorChain, fake: FakeSubstrate) -> None:
    with pytest.raises(ChainError, match="not an IP address"):
        chain.serve_axon("example.com", 80)
    with pytest.raises(ChainError, match="out of range"):
        chain.serve_axon("1.2.3.4", 70_000)
    assert not fake.submitted
    fake.outcomes.append(ModuleError("ServingRateLimitExceeded"))
    with pytest.raises(RateLimited, match="serve_axon is rate limited.*limit 50 blocks"):
        chain.serve_axon("1.2.3.4", 80)


# ------------------------------------------------------------------------------------ register
def test_register_submits_shielded_burned_register(fake: FakeSubstrate, wallets) -> None:
    newcomer = wallets["newcomer"]
    c = _chain(fake, _identity(newcomer))
    uid = c.register()
    assert uid == 2
    (sub,) = fake.submitted
    assert (sub.module, sub.function, sub.params) == (
        "SubtensorModule",
        "burned_register",
        {"netuid": NETUID, "hotkey": newcomer.hotkey.ss58_address},
    )
    assert sub.signer == newcomer.coldkeypub.ss58_address and sub.signature_ok  # the coldkey pays
    assert sub.shielded  # the SDK only submits BurnedRegister through the MEV shield
    (carrier,) = fake.carriers
    assert (carrier.module, carrier.function) == ("MevShield", "submit_encrypted")
    assert len(carrier.params["ciphertext"]) > 1_000  # a real ML-KEM-768 + XChaCha20 blob
    assert c.metagraph().by_uid(2).hotkey == newcomer.hotkey.ss58_address

    with pytest.raises(AlreadyRegistered, match="as uid 2"):
        c.register()
    assert len(fake.submitted) == 1
    c.close()


@pytest.mark.parametrize(
    ("outcome", "error", "match"),
    [
        (ModuleError("NotEnoughBalanceToStake"), InsufficientBalance, "has 0.5 TAO but .* needs 2 TAO"),
        (ModuleError("NoNeuronIdAvailable"), SubnetFull, "subnet 34 is full"),
        (ModuleError("TooManyRegistrationsThisInterval"), RateLimited, "register is rate limited"),
        (ModuleError("SubNetRegistrationDisabled"), ChainError, "SubNetRegistrationDisabled"),
    ],
)
def test_register_failures(fake: FakeSubstrate, wallets, outcome, error, match) -> None:
    newcomer = wallets["newcomer"]
    fake.set("System", "Account", [newcomer.coldkeypub.ss58_address], {"data": {"free": RAO // 2}})
    fake.outcomes.append(outcome)
    c = _chain(fake, _identity(newcomer))
    with pytest.raises(error, match=match):
        c.register()
    assert len(fake.submitted) == 1
    c.close()


# ------------------------------------------------------------------------------------ resilience
def test_transient_read_failures_are_retried_with_reconnect(
    chain: BittensorChain, fake: FakeSubstrate
) -> None:
    chain.block()
    fake.fail_reads = 2
    assert chain.block() == 5_000
    assert [kind for kind, _ in fake.log].count("block_number") == 4  # 1 + (2 failed + 1 ok)
    assert fake.connects == 3 and fake.closes == 2  # a fresh connection for each retry


def test_retries_exhausted_raise_chain_unavailable(fake: FakeSubstrate) -> None:
    c = _chain(fake, retries=2)
    fake.fail_reads, fake.fail_only = 10, "block_number"
    with pytest.raises(ChainUnavailable) as info:
        c.metagraph()  # pins the head block first
    assert c.endpoint in str(info.value) and info.value.endpoint == c.endpoint
    assert "TransientFailure" in str(info.value)
    assert [kind for kind, _ in fake.log].count("block_number") == 3  # 1 + 2 retries
    assert fake.fail_reads == 7
    c.close()


def test_connect_failure_is_retried(fake: FakeSubstrate) -> None:
    fake.fail_connects = 2
    c = _chain(fake)
    assert c.block() == 5_000 and fake.connects == 3
    c.close()


def test_stalled_read_times_out_and_is_retried(fake: FakeSubstrate) -> None:
    c = _chain(fake, read_timeout=0.2, retries=1)
    fake.stall_reads, fake.fail_only = 1, "block_number"
    t0 = time.monotonic()
    assert c.block() == 5_000
    assert time.monotonic() - t0 < 3
    fake.stall_reads = 5
    with pytest.raises(ChainUnavailable, match="no answer within 0.2s"):
        c.block()
    c.close()


def test_write_interrupted_mid_submission_is_not_resubmitted(
    chain: BittensorChain, fake: FakeSubstrate
) -> None:
    fake.outcomes.append(Disconnect())
    with pytest.raises(ChainUnavailable, match="may or may not have been included"):
        chain.set_commitment(b"abc")
    assert len(fake.submitted) == 1


def test_reconnect_replaces_the_client(chain: BittensorChain, fake: FakeSubstrate) -> None:
    chain.block()
    chain.reconnect()
    assert (fake.connects, fake.closes) == (2, 1)
    assert chain.block() == 5_000 and fake.connects == 2


# ------------------------------------------------------------------------------------ real sockets
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_refused_endpoint_fails_fast() -> None:
    url = f"ws://127.0.0.1:{_free_port()}"
    c = BittensorChain(url, NETUID)
    t0 = time.monotonic()
    with pytest.raises(ChainUnavailable) as info:
        c.block()
    assert time.monotonic() - t0 < 3
    assert url in str(info.value) and info.value.endpoint == url
    c.close()


@pytest.mark.slow
def test_silent_endpoint_fails_within_15_seconds() -> None:
    with socket.socket() as server:  # accepts TCP (kernel backlog) but never speaks WebSocket
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        url = f"ws://127.0.0.1:{server.getsockname()[1]}"
        c = BittensorChain(url, NETUID)
        t0 = time.monotonic()
        with pytest.raises(ChainUnavailable) as info:
            c.block()
        elapsed = time.monotonic() - t0
        c.close()
    assert elapsed < 15.0
    assert url in str(info.value)
