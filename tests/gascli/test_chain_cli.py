"""`gascli chain` against a dev chain file in a temp cache, with wallets made by gas.chain.wallets."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gas.chain.wallets import create_wallet
from gascli.app import app

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("GAS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("GAS_WALLET_PATH", str(tmp_path / "wallets"))
    for name in ("vali", "miner"):
        create_wallet(name, "default", path=tmp_path / "wallets")
    return {"cache": str(tmp_path / "cache")}


def run(*args: str, ok: bool = True):
    res = runner.invoke(app, list(args))
    if ok:
        assert res.exit_code == 0, res.output
    return res


def js(*args: str):
    return json.loads(run(*args, "--json").output)


def test_full_cycle_through_the_cli(env) -> None:
    run("chain", "init", "--block-time", "0.05", "--tempo", "10", "--weights-rate-limit", "1")
    run("chain", "fund", "100", "--wallet-name", "vali")
    run("chain", "fund", "5", "--wallet-name", "miner")
    assert "as uid 0" in run("chain", "register", "--wallet-name", "vali").output
    assert "as uid 1" in run("chain", "register", "--wallet-name", "miner").output
    run("chain", "stake", "10", "--wallet-name", "vali")
    run("chain", "commit", "--hex", "ff00fe", "--wallet-name", "miner")
    run("chain", "serve-axon", "--ip", "203.0.113.7", "--port", "8093", "--wallet-name", "miner")

    status = js("chain", "status")
    assert (status["network"], status["netuid"], status["neurons"], status["validators"]) == ("dev", 34, 2, 1)
    assert status["block_time_s"] == 0.05

    (c,) = js("chain", "commitments")
    assert c["text"] is None and c["hex"] == "ff00fe"  # non-UTF-8 bytes survive and print as hex
    assert "0xff00fe (not UTF-8)" in run("chain", "commitments").output
    (h,) = js("chain", "commitments", "--history")
    assert (h["hex"], h["block"]) == ("ff00fe", c["block"])

    mg = js("chain", "metagraph")["neurons"]
    assert mg[1]["axon_ip"] == "203.0.113.7" and mg[1]["axon_port"] == 8093

    time.sleep(0.15)  # past the 1-block weights rate limit
    out = run("chain", "set-weights", "--uids", "1", "--weights", "1", "--wallet-name", "vali").output
    assert "weights set at block" in out
    res = run("chain", "set-weights", "--uids", "0", "--weights", "1", "--wallet-name", "miner", ok=False)
    assert res.exit_code == 1 and "no validator permit" in res.output
    (row,) = js("chain", "weights")
    assert row["uid"] == 0 and row["weights"] == {"1": 1.0}
    assert len(js("chain", "weights", "--history")) == 1

    deadline = time.monotonic() + 10
    while js("chain", "metagraph")["neurons"][1]["incentive"] == 0.0:
        assert time.monotonic() < deadline, "incentive never moved after a tempo"
        time.sleep(0.1)
    assert js("chain", "metagraph")["neurons"][1]["incentive"] == pytest.approx(1.0)


def test_missing_chain_says_run_init(env) -> None:
    res = run("chain", "status", ok=False)
    assert res.exit_code == 1 and "gascli chain init" in res.output


def test_dev_only_commands_refuse_real_networks(env) -> None:
    for args in (["chain", "fund", "1", "--coldkey", "5xyz"], ["chain", "stake", "1"], ["chain", "init"]):
        res = run(*args, "--network", "finney", ok=False)
        assert res.exit_code == 2
        assert "exists only on the dev chain" in res.output and "'finney'" in res.output


def test_init_twice_needs_exist_ok(env) -> None:
    run("chain", "init", "--block-time", "0.05")
    res = run("chain", "init", ok=False)
    assert res.exit_code == 1 and "34" in res.output
    run("chain", "init", "--exist-ok")


def test_bad_arguments_are_usage_errors(env) -> None:
    run("chain", "init", "--block-time", "0.05")
    assert run("chain", "commit", "--hex", "zz", "--wallet-name", "miner", ok=False).exit_code == 2
    res = run("chain", "set-weights", "--uids", "a,b", "--weights", "1", "--wallet-name", "vali", ok=False)
    assert res.exit_code == 2 and "--uids" in res.output
    res = run("chain", "register", "--wallet-name", "nobody", ok=False)
    assert res.exit_code == 1 and "gascli wallet create" in res.output


def test_register_without_funds_names_the_balance(env) -> None:
    run("chain", "init", "--block-time", "0.05")
    res = run("chain", "register", "--wallet-name", "miner", ok=False)
    assert res.exit_code == 1 and "TAO" in res.output


def test_unreachable_real_network_fails_fast_with_endpoint(env) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"ws://127.0.0.1:{port}"
    t0 = time.monotonic()
    res = run("chain", "status", "--network", url, "--netuid", "1", ok=False)
    assert time.monotonic() - t0 < 15
    assert res.exit_code == 1 and url in res.output and "unavailable" in res.output


def test_reads_work_on_a_real_network_through_the_bittensor_backend(tmp_path: Path, monkeypatch) -> None:
    """`--network test` goes through BittensorChain; the SDK talks to an in-process fake substrate."""
    from bittensor_core import Keypair

    import gas.chain
    from gas.chain.bittensor_backend import BittensorChain
    from fake_substrate import FakeSubstrate

    monkeypatch.setenv("BTCLI_TOKEN_SYMBOLS_CACHE", str(tmp_path / "tokens.json"))
    fake = FakeSubstrate(netuid=379, head=7_000)
    hk = Keypair.create_from_uri("//Alice").ss58_address
    ck = Keypair.create_from_uri("//Bob").ss58_address
    fake.add_neuron(hk, ck, stake_rao=2 * 10**9, validator_permit=True, last_update=6_990, registered_at=10)
    fake.put_commitment(hk, [{"Raw8": "0x" + b"model:v1".hex()}], 6_000)
    fake.weight_rows[0] = [(0, 65535)]
    seen = {}

    def open_fake(settings, *, identity=None):
        seen["network"], seen["netuid"] = settings.network, settings.netuid
        return BittensorChain(settings.network, settings.netuid, identity=identity, substrate=fake)

    monkeypatch.setattr(gas.chain, "open_from_settings", open_fake)
    status = js("chain", "status", "--network", "test")
    assert seen == {"network": "test", "netuid": 379}
    assert (status["block"], status["neurons"], status["validators"], status["block_time_s"]) == (7_000, 1, 1, 12.0)
    (n,) = js("chain", "metagraph", "--network", "test")["neurons"]
    assert (n["hotkey"], n["coldkey"], n["validator_permit"], n["last_update"]) == (hk, ck, True, 6_990)
    assert js("chain", "commitments", "--network", "test") == [
        {"hotkey": hk, "block": 6_000, "text": "model:v1", "hex": b"model:v1".hex(), "models": {}}
    ]
    assert js("chain", "weights", "--network", "test") == [
        {"block": 6_990, "uid": 0, "hotkey": hk, "weights": {"0": 1.0}}
    ]
    res = run("chain", "weights", "--network", "test", "--history", ok=False)
    assert res.exit_code == 2 and "only by the dev chain" in res.output
