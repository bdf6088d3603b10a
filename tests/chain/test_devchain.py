"""The dev chain's rules, one process, driven by a fake clock."""

from __future__ import annotations

import math
import sqlite3

import numpy as np
import pytest

from gas.chain.base import (
    AlreadyRegistered,
    Chain,
    ChainError,
    CommitmentTooLarge,
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
from gas.chain.devchain import (
    COMMITMENT_MAX_BYTES,
    DevChain,
    HotkeyOwnedElsewhere,
    InvalidAxon,
    SchemaMismatch,
    SubnetExists,
    commitment_fields,
    default_path,
)
from gas.scoring.weights import from_u16, to_u16

try:  # the installed SDK's own quantiser: the dev chain must store what the SDK would send
    from bittensor.intents.weights import normalize as sdk_normalize
except ImportError:  # pragma: no cover - the SDK is a project dependency
    sdk_normalize = None


# ------------------------------------------------------------------------------ file and subnet
def test_default_path(tmp_path):
    assert default_path(tmp_path) == tmp_path / "devchain" / "default.db"
    assert DevChain.default_path(tmp_path, "demo") == tmp_path / "devchain" / "demo.db"


def test_missing_file_raises_subnet_not_found_with_hint_and_creates_nothing(tmp_path, identities):
    path = tmp_path / "devchain" / "nope.db"
    (me,) = identities(1)
    chain = DevChain(path, identity=me)
    for call in (chain.block, chain.metagraph, chain.commitments, chain.register, lambda: chain.set_commitment("x")):
        with pytest.raises(SubnetNotFound, match="gascli chain init") as info:
            call()
        assert info.value.netuid == 34
        assert str(path) in str(info.value)
    assert not path.exists()


def test_unknown_subnet_in_existing_file(devnet):
    net = devnet()
    with pytest.raises(SubnetNotFound, match=r"subnet 7 does not exist.*\[34\].*--netuid 7"):
        net.client(netuid=7).metagraph()
    with pytest.raises(SubnetNotFound):
        net.admin.metagraph(7)


def test_init_is_a_protocol_chain_and_records_hyperparameters(tmp_path):
    chain = DevChain.init(tmp_path / "a" / "b" / "c.db", netuid=5, tempo=10, max_uids=8, burn_cost=0.5)
    assert isinstance(chain, Chain)
    assert chain.network == "dev" and chain.netuid == 5 and chain.identity is None
    info = chain.subnet_info()
    assert (info.netuid, info.tempo, info.max_uids, info.burn_cost, info.n) == (5, 10, 8, 0.5, 0)
    assert info.block_time == 12.0 and info.weights_rate_limit == 100 and info.immunity_period == 4096
    assert info.emission_per_tempo == 10.0 and info.max_weight_limit == 65535 and info.max_validators == 64
    assert chain.weights_rate_limit() == 100
    assert chain.metagraph().tempo == 10
    chain.close()


def test_init_twice_needs_exist_ok_and_second_subnet_shares_the_file(tmp_path):
    path = tmp_path / "dev.db"
    DevChain.init(path, tempo=10, block_time=0.25).close()
    with pytest.raises(SubnetExists, match="subnet 34 already exists"):
        DevChain.init(path)
    kept = DevChain.init(path, tempo=99, exist_ok=True)
    assert kept.subnet_info().tempo == 10  # exist_ok leaves the subnet as it was
    other = DevChain.init(path, netuid=35, tempo=20)
    assert other.netuids() == [34, 35]
    assert other.block_time() == 0.25  # block time is chain-wide
    with pytest.raises(ChainError, match="block time is chain-wide"):
        DevChain.init(path, netuid=36, block_time=1.0)
    with pytest.raises(ValueError, match="tempo"):
        DevChain.init(path, netuid=37, tempo=0)


def test_block_height_follows_the_clock(devnet):
    net = devnet(block_time=0.25)
    assert net.admin.block() == 0
    net.clock.now += 0.2499
    assert net.admin.block() == 0
    net.clock.now += 0.0001
    assert net.admin.block() == 1
    net.clock.now += 0.25 * 1000
    assert net.admin.block() == 1001
    assert net.admin.block_time() == 0.25


def test_newer_schema_and_foreign_files_are_refused(tmp_path):
    path = tmp_path / "dev.db"
    DevChain.init(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    with pytest.raises(SchemaMismatch, match="schema version 99, newer"):
        DevChain(path).metagraph()
    with pytest.raises(SchemaMismatch):
        DevChain.init(path, netuid=1)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ChainError):
        DevChain(junk).block()


# ------------------------------------------------------------------------------ wallet and funds
def test_writes_without_identity_raise_no_wallet(devnet):
    chain = devnet().client()
    with pytest.raises(NoWallet, match="register needs a wallet"):
        chain.register()
    with pytest.raises(NoWallet):
        chain.serve_axon("127.0.0.1", 8091)
    with pytest.raises(NoWallet):
        chain.set_commitment(b"x")
    with pytest.raises(NoWallet):
        chain.set_weights([0], [1.0], 0)


def test_register_needs_funds_and_charges_the_burn(devnet, identities):
    net = devnet(burn_cost=2.5)
    me, other = identities(2)
    chain = net.client(me)
    with pytest.raises(InsufficientBalance, match=r"has 0 TAO but registering on subnet 34.*2\.5 TAO") as info:
        chain.register()
    assert info.value.needed == 2.5 and info.value.available == 0.0
    net.admin.fund(me.coldkey, 2.0)
    with pytest.raises(InsufficientBalance):
        chain.register()
    assert chain.balance() == 2.0 and chain.metagraph().n == 0  # nothing changed
    assert net.admin.fund(me.coldkey, 1.0) == 3.0
    assert chain.register() == 0
    assert net.admin.balance(me.coldkey) == pytest.approx(0.5)
    with pytest.raises(AlreadyRegistered, match="as uid 0") as dup:
        chain.register()
    assert dup.value.uid == 0
    assert net.admin.balance(me.coldkey) == pytest.approx(0.5)
    # a hotkey stays with the coldkey that registered it, on every subnet
    DevChain.init(net.path, netuid=35, clock=net.clock).close()
    thief = net.client(type(me)(hotkey=me.hotkey, coldkey=other.coldkey))
    net.admin.fund(other.coldkey, 10)
    with pytest.raises(HotkeyOwnedElsewhere, match=f"belongs to coldkey {me.coldkey}"):
        thief.register(netuid=35)
    assert net.admin.balance(other.coldkey) == 10
    with pytest.raises(ValueError):
        net.admin.fund(me.coldkey, -1)
    with pytest.raises(ValueError):
        net.admin.fund(me.coldkey, math.nan)


def test_uids_are_contiguous_and_neurons_ordered(devnet, identities):
    net = devnet()
    people = identities(5)
    uids = [net.join(p)[1] for p in people]
    assert uids == [0, 1, 2, 3, 4]
    mg = net.admin.metagraph()
    assert [n.uid for n in mg.neurons] == uids
    assert mg.hotkeys == [p.hotkey for p in people]
    assert [n.coldkey for n in mg.neurons] == [p.coldkey for p in people]
    assert all(n.registered_at == 0 and n.last_update == 0 for n in mg.neurons)
    assert [r.uid for r in net.admin.registration_history()] == uids


def test_add_stake_moves_balance_to_stake(devnet, identities):
    net = devnet()
    me, stranger = identities(2)
    with pytest.raises(NotRegistered):
        net.admin.add_stake(me.hotkey, 1.0)
    net.join(me, funds=1.0)  # burn 1.0 → balance 0
    with pytest.raises(InsufficientBalance, match="staking to"):
        net.admin.add_stake(me.hotkey, 1.0)
    net.admin.fund(me.coldkey, 5.0)
    assert net.admin.add_stake(me.hotkey, 3.0) == 3.0
    assert net.admin.balance(me.coldkey) == pytest.approx(2.0)
    # anyone may stake to a registered hotkey from their own coldkey
    net.admin.fund(stranger.coldkey, 4.0)
    assert net.admin.add_stake(me.hotkey, 4.0, coldkey=stranger.coldkey) == 7.0
    assert net.admin.balance(stranger.coldkey) == 0.0
    assert net.admin.metagraph().by_hotkey(me.hotkey).stake == 7.0


# ------------------------------------------------------------------------------ permits
def test_validator_permits_go_to_the_top_stake_holders(devnet, identities):
    net = devnet(max_validators=2, weights_rate_limit=0)
    people = identities(5)
    stakes = [3.0, 1.0, 2.0, 0.0, 1.0]
    clients = [net.join(p, stake=s)[0] for p, s in zip(people, stakes, strict=True)]
    mg = net.admin.metagraph()
    assert [n.stake for n in mg.neurons] == stakes
    assert [n.uid for n in mg.validators] == [0, 2]
    net.at(1)
    with pytest.raises(NoValidatorPermit, match="no validator permit"):
        clients[1].set_weights([0, 2], [0.5, 0.5], 0)
    # a self-weight alone needs no permit, as on chain
    assert clients[1].set_weights([1], [1.0], 0).success
    assert clients[0].set_weights([1, 2], [0.5, 0.5], 0).success
    # ties break towards the lower uid; zero stake never holds a permit
    net.admin.set_hyperparameters(max_validators=3)
    assert [n.uid for n in net.admin.metagraph().validators] == [0, 1, 2]
    net.admin.set_hyperparameters(max_validators=64)
    assert [n.uid for n in net.admin.metagraph().validators] == [0, 1, 2, 4]
    with pytest.raises(NoValidatorPermit):
        clients[3].set_weights([0], [1.0], 0)


# ------------------------------------------------------------------------------ weights
def test_weights_rate_limit_counts_from_registration_and_last_update(devnet, identities):
    net = devnet(weights_rate_limit=10)
    net.at(1)
    me, uid = net.join(identities(1)[0], stake=1.0)
    net.at(5)
    assert me.blocks_since_last_update(uid) == 4
    with pytest.raises(RateLimited, match="wait 6 more block") as info:
        me.set_weights([uid], [1.0], 0)
    assert (info.value.blocks_left, info.value.limit) == (6, 10)
    net.at(11)
    result = me.set_weights([uid], [1.0], 0)
    assert result.success and result.block == 11 and "block 11" in result.message
    assert me.metagraph().by_uid(uid).last_update == 11
    net.at(15)
    assert me.blocks_since_last_update(uid) == 4
    with pytest.raises(RateLimited) as info:
        me.set_weights([uid], [1.0], 0)
    assert info.value.blocks_left == 6
    net.at(21)
    assert me.set_weights([uid], [1.0], 0).success
    assert me.blocks_since_last_update(99) is None
    assert [(r.block, r.uid) for r in me.weights_history()] == [(11, uid), (21, uid)]
    assert [r.block for r in me.weights_history(since_block=12)] == [21]


def test_version_key(devnet, identities):
    net = devnet(weights_version=5, weights_rate_limit=0)
    me, uid = net.join(identities(1)[0], stake=1.0)
    net.at(1)
    with pytest.raises(VersionKeyTooLow, match="4 is below the subnet's minimum 5"):
        me.set_weights([uid], [1.0], 4)
    assert me.set_weights([uid], [1.0], 5).success
    net.admin.set_hyperparameters(weights_version=7)
    with pytest.raises(VersionKeyTooLow):
        me.set_weights([uid], [1.0], 6)


def test_max_weight_limit(devnet, identities):
    net = devnet(max_weight_limit=32768, weights_rate_limit=0)  # about half
    vali, vuid = net.join(identities(1, "v")[0], stake=1.0)
    for p in identities(2, "m"):
        net.join(p)
    net.at(1)
    with pytest.raises(InvalidWeights, match="exceeds the subnet's max weight limit 32768/65535"):
        vali.set_weights([1, 2], [0.6, 0.4], 0)
    assert vali.set_weights([1, 2], [0.5, 0.5], 0).success
    assert vali.set_weights([vuid], [1.0], 0).success  # a lone self-weight is exempt


def test_invalid_weights_are_rejected_with_reasons(devnet, identities):
    net = devnet(weights_rate_limit=0)
    vali, _ = net.join(identities(1, "v")[0], stake=1.0)
    net.join(identities(1, "m")[0])
    net.at(1)
    cases = [
        (([0, 1], [1.0]), "lengths must match"),
        (([], []), "no weights"),
        (([1, 1], [0.5, 0.5]), "duplicate uid"),
        (([1, 7], [0.5, 0.5]), r"uid\(s\) \[7\] are not registered"),
        (([1], [-0.1]), "non-negative"),
        (([1], [math.nan]), "finite"),
        (([1], [math.inf]), "finite"),
        (([1], [0.0]), "all weights are zero"),
        (([True], [1.0]), "not an integer"),
        (([1], ["x"]), "not a number"),
    ]
    for (uids, weights), message in cases:
        with pytest.raises(InvalidWeights, match=message):
            vali.set_weights(uids, weights, 0)
    assert vali.weights() == {} and vali.weights_history() == []


def test_weights_of_an_unregistered_hotkey(devnet, identities):
    net = devnet()
    net.join(identities(1)[0])
    stranger = net.client(identities(1, "x")[0])
    with pytest.raises(NotRegistered):
        stranger.set_weights([0], [1.0], 0)


def test_weights_are_quantised_to_u16_like_the_sdk(devnet, identities):
    net = devnet(weights_rate_limit=0)
    vali, vuid = net.join(identities(1, "v")[0], stake=1.0)
    miners = [net.join(p)[1] for p in identities(6, "m")]
    rng = np.random.default_rng(1234)
    vectors = [rng.random(6) ** 3 for _ in range(60)] + [
        np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.0]),
        np.array([0.0, 0.0, 1e-9, 0.0, 0.0, 1.0]),  # tiny weight quantises to 0 and is dropped
        np.array([1.0, 2.0, 3.0, 0.0, 0.0, 0.0]) * 1e12,
    ]
    expected_history = []
    for i, w in enumerate(vectors):
        net.at(i + 1)
        vali.set_weights(miners, w.tolist(), 0)
        q_uids, q_vals = to_u16(miners, w)
        if sdk_normalize is not None:
            assert (q_uids, q_vals) == sdk_normalize(miners, w.tolist())
        raw = vali.weights(raw=True)
        assert raw == {vuid: dict(zip(q_uids, q_vals, strict=True))}
        floats = vali.weights()[vuid]
        dense = from_u16(q_uids, q_vals, 8)
        assert floats == pytest.approx({u: dense[u] for u in q_uids})
        assert math.fsum(floats.values()) == pytest.approx(1.0)
        expected_history.append(dict(zip(q_uids, q_vals, strict=True)))
    history = vali.weights_history(raw=True)
    assert [h.weights for h in history] == expected_history
    assert all(h.hotkey == vali.identity.hotkey and h.uid == vuid for h in history)
    assert vali.weights_history()[-1].weights == pytest.approx({1: 1 / 6, 2: 2 / 6, 3: 3 / 6}, abs=1e-4)


# ------------------------------------------------------------------------------ tempo
def test_incentive_is_stake_weighted_and_computed_at_the_tempo_boundary(devnet, identities):
    net = devnet(tempo=10, weights_rate_limit=0, emission_per_tempo=50.0)
    big, ubig = net.join(identities(1, "big")[0], stake=3.0)
    small, usmall = net.join(identities(1, "small")[0], stake=1.0)
    unstaked, _ = net.join(identities(1, "nostake")[0])
    m1, m2 = (net.join(p)[1] for p in identities(2, "m"))
    net.at(3)
    big.set_weights([ubig, m1], [1.0, 1.0], 0)  # the self-weight is masked out, as in Yuma
    small.set_weights([m1, m2], [1.0, 1.0], 0)
    unstaked.set_weights([unstaked.metagraph().uid_of(unstaked.identity.hotkey)], [1.0], 0)  # self only
    net.at(9)
    assert all(n.incentive == 0 and n.emission == 0 for n in big.metagraph().neurons)
    net.at(10)
    mg = big.metagraph()
    # stake 3 on [m1] (its self-weight masked) and stake 1 on [m1/2, m2/2] → m1 = 3.5/4, m2 = 0.5/4
    assert mg.by_uid(m1).incentive == pytest.approx(0.875)
    assert mg.by_uid(m2).incentive == pytest.approx(0.125)
    assert mg.by_uid(m1).emission == pytest.approx(0.875 * 50)
    assert mg.by_uid(ubig).incentive == 0 and mg.by_uid(usmall).incentive == 0
    assert math.fsum(n.incentive for n in mg.neurons) == pytest.approx(1.0)
    assert big.subnet_info().last_epoch_block == 10
    # new weights change incentive only after the next boundary, even if many epochs were skipped
    net.at(11)
    big.set_weights([m2], [1.0], 0)
    assert big.metagraph().by_uid(m1).incentive == pytest.approx(0.875)
    net.at(55)
    mg = small.metagraph()
    assert mg.by_uid(m1).incentive == pytest.approx(0.125)
    assert mg.by_uid(m2).incentive == pytest.approx(0.875)
    assert small.subnet_info().last_epoch_block == 50


# ------------------------------------------------------------------------------ turnover
def test_full_subnet_replaces_lowest_incentive_non_immune_neuron(devnet, identities):
    net = devnet(max_uids=4, immunity_period=10, tempo=5, weights_rate_limit=0, commitment_rate_limit=0)
    a, b, c, d, e = identities(5)
    va, _ = net.join(a, stake=2.0)
    vb, _ = net.join(b, stake=2.0)
    net.join(c)
    net.join(d)
    net.at(1)
    va.set_weights([1, 2, 3], [1, 3, 2], 0)
    vb.set_weights([0, 2, 3], [2, 3, 1], 0)
    vb.set_commitment(b"b's model")
    vb.serve_axon("10.0.0.2", 8091)
    net.at(5)
    incentives = [n.incentive for n in net.admin.metagraph().neurons]
    assert incentives == pytest.approx([1 / 6, 1 / 12, 1 / 2, 1 / 4])  # uid 1 (b) is the lowest
    newcomer = net.client(e)
    net.admin.fund(e.coldkey, 5.0)
    with pytest.raises(SubnetFull, match=r"every neuron is still immune.*ends in 5 block"):
        newcomer.register()
    assert net.admin.balance(e.coldkey) == 5.0
    net.at(10)
    assert newcomer.register() == 1
    assert net.admin.balance(e.coldkey) == 4.0
    mg = net.admin.metagraph()
    assert mg.n == 4 and mg.hotkeys == [a.hotkey, e.hotkey, c.hotkey, d.hotkey]
    fresh = mg.by_uid(1)
    assert fresh.axon is None and fresh.incentive == 0 and fresh.emission == 0
    assert fresh.last_update == 10 and fresh.registered_at == 10 and fresh.stake == 0
    assert 1 not in net.admin.weights()  # b's weight row went with it
    assert b.hotkey not in net.admin.commitments() and e.hotkey not in net.admin.commitments()
    assert net.admin.stake(b.hotkey) == 2.0  # stake belongs to the hotkey
    assert net.admin.registration_history()[-1] == (10, 1, e.hotkey, e.coldkey, b.hotkey)
    assert [r.hotkey for r in net.admin.commitment_history()] == [b.hotkey]  # history keeps it
    with pytest.raises(NotRegistered):
        vb.set_commitment(b"again")
    # a's old weight on uid 1 was meant for b: it no longer counts for e
    net.at(15)
    assert net.admin.metagraph().by_uid(1).incentive == 0


def test_turnover_tie_breaks_on_oldest_registration(devnet, identities):
    net = devnet(max_uids=3, immunity_period=2)
    people = identities(4)
    for block, p in enumerate(people[:3]):
        net.at(block)
        net.join(p)
    net.at(10)
    newcomer, uid = net.join(people[3])
    assert uid == 0  # all at incentive 0: the oldest registration goes
    net.at(11)  # the newcomer is immune; the next oldest (uid 1) goes
    assert net.join(identities(1, "late")[0])[1] == 1


# ------------------------------------------------------------------------------ axons
def test_serve_axon_validates_and_publishes(devnet, identities):
    net = devnet()
    me = net.client(identities(1)[0])
    with pytest.raises(NotRegistered):
        me.serve_axon("127.0.0.1", 8091)
    net.join(me.identity)
    for ip, port, message in [
        ("0.0.0.0", 8091, "unspecified"),
        ("::", 8091, "unspecified"),
        ("example.com", 8091, "not an IPv4 or IPv6"),
        ("127.0.0.1", 0, "port"),
        ("127.0.0.1", 65536, "port"),
        ("127.0.0.1", True, "port"),
    ]:
        with pytest.raises(InvalidAxon, match=message):
            me.serve_axon(ip, port)
    assert me.metagraph().neurons[0].axon is None
    me.serve_axon(" 192.168.1.20 ", 8091)
    assert me.metagraph().neurons[0].axon == "192.168.1.20:8091"
    me.serve_axon("2001:db8::1", 443)
    assert (me.metagraph().neurons[0].axon_ip, me.metagraph().neurons[0].axon_port) == ("2001:db8::1", 443)


# ------------------------------------------------------------------------------ commitments
def test_commitment_rate_limit_and_history(devnet, identities):
    net = devnet(commitment_rate_limit=10)
    me, _ = net.join(identities(1)[0])
    me.set_commitment("v1")
    net.at(5)
    with pytest.raises(RateLimited, match="set_commitment is rate limited: wait 5 more") as info:
        me.set_commitment("v2")
    assert (info.value.blocks_left, info.value.limit) == (5, 10)
    net.at(10)
    me.set_commitment("v2")
    got = me.commitments()[me.identity.hotkey]
    assert (got.block, got.data, got.text) == (10, b"v2", "v2")
    assert me.commitment_history() == [(0, me.identity.hotkey, b"v1"), (10, me.identity.hotkey, b"v2")]
    assert me.commitment_history(since_block=1, hotkey=me.identity.hotkey) == [(10, me.identity.hotkey, b"v2")]


def test_commitment_size_limit_and_fields(devnet, identities):
    net = devnet(commitment_rate_limit=0)
    me = net.client(identities(1)[0])
    with pytest.raises(NotRegistered):
        me.set_commitment("hello")
    net.join(me.identity)
    assert [len(f) for f in commitment_fields(b"x" * 300)] == [128, 128, 44]
    assert commitment_fields(b"") == [b""]
    with pytest.raises(CommitmentTooLarge, match="385 bytes is too large \\(limit 384 bytes\\).*3 Raw fields"):
        me.set_commitment(b"x" * (COMMITMENT_MAX_BYTES + 1))
    with pytest.raises(CommitmentTooLarge):
        me.set_commitment("é" * 193)  # 386 bytes once UTF-8 encoded
    assert me.commitments() == {}
    me.set_commitment("ü" * 192)  # exactly 384 bytes
    assert me.commitments()[me.identity.hotkey].text == "ü" * 192
    with pytest.raises(TypeError):
        me.set_commitment(123)  # type: ignore[arg-type]


def test_malformed_commitment_bytes_read_back_raw(devnet, identities):
    net = devnet(commitment_rate_limit=0)
    me, _ = net.join(identities(1)[0])
    junk = b"\xff\xfe\x00{not json\x80"
    me.set_commitment(junk)
    got = net.admin.commitments()[me.identity.hotkey]
    assert got.data == junk and got.text is None
    assert net.admin.commitment_history()[0].data == junk


def test_commitments_only_for_registered_hotkeys_and_other_subnets_apart(devnet, identities):
    net = devnet(commitment_rate_limit=0)
    DevChain.init(net.path, netuid=35, clock=net.clock, commitment_rate_limit=0).close()
    path, clock = net.path, net.clock
    me = identities(1)[0]
    c34 = DevChain(path, netuid=34, identity=me, clock=clock)
    c34.fund(me.coldkey, 10)
    c34.register()
    c34.set_commitment("on 34")
    with pytest.raises(NotRegistered, match="subnet 35"):
        c34.set_commitment("on 35", netuid=35)
    assert c34.register(netuid=35) == 0
    c34.set_commitment("on 35", netuid=35)
    assert c34.commitments()[me.hotkey].data == b"on 34"
    assert c34.commitments(35)[me.hotkey].data == b"on 35"
    assert c34.balance() == 8.0


# ------------------------------------------------------------------------------ connections
def test_two_clients_see_each_other_and_reconnect(devnet, identities):
    net = devnet(commitment_rate_limit=0)
    me, _ = net.join(identities(1)[0])
    other = net.client()
    me.set_commitment("one")
    assert other.commitments()[me.identity.hotkey].data == b"one"
    other.reconnect()
    me.close()
    me.set_commitment("two")  # a closed client reopens on the next call
    assert other.commitments()[me.identity.hotkey].data == b"two"


def test_hyperparameters_are_validated(devnet):
    net = devnet()
    with pytest.raises(ValueError, match="unknown subnet hyperparameter 'tempoo'"):
        net.admin.set_hyperparameters(tempoo=5)
    with pytest.raises(ValueError, match="max_weight_limit"):
        net.admin.set_hyperparameters(max_weight_limit=70000)
    info = net.admin.set_hyperparameters(tempo=7, burn_cost=0.25)
    assert (info.tempo, info.burn_cost) == (7, 0.25)
    assert net.admin.subnet_info().as_dict()["tempo"] == 7
