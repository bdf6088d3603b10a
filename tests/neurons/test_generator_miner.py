"""The miner process: external IP rules, axon on the dev chain, metagraph refresh, start-up failures.

In-process tests run the real miner wiring (TaskStore, TaskEngine, WebhookSender, the HTTP app,
Epistula with the metagraph authorizer) on a dev chain; only the generation service is the fake
one from tests/support (it returns a real PNG at once). Webhooks go over real HTTP to a local
receiver that checks their signatures. Subprocess tests run ``python -m neurons.generator`` and
``python neurons/generator/miner.py`` as an operator would.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from bittensor_core import Keypair
from devchain_helpers import DevNet, make_identity
from fake_generation import FakeService
from webhook_receiver import WebhookReceiver

from gas.chain.devchain import DevChain
from gas.chain.wallets import create_wallet
from gas.config import GeneratorSettings, load_settings
from gas.generation.services.registry import ServiceSet
from gas.protocol.epistula import sign_request
from neurons.generator import miner as miner_mod
from neurons.generator.miner import (
    ExternalIpError,
    GeneratorMiner,
    NotRegisteredError,
    outbound_address,
    resolve_external_ip,
)

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable


def _settings(tmp_path: Path, **overrides: Any) -> GeneratorSettings:
    base = {"cache_dir": tmp_path / "cache", "bind_host": "127.0.0.1", "axon_port": _free_port(),
            "metagraph_refresh_s": 0.05, "min_validator_stake": 0.0}
    return load_settings(GeneratorSettings, env_file=False, overrides={**base, **overrides})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keypair(name: str) -> Keypair:
    return Keypair.create_from_uri(f"//{name}-hot")  # the hotkey make_identity(name) derives


# --------------------------------------------------------------------------------------------
# external IP
# --------------------------------------------------------------------------------------------
class Probe:
    def __init__(self, answer: str | Exception) -> None:
        self.answer, self.calls = answer, []

    def __call__(self, host: str, port: int) -> str:
        self.calls.append((host, port))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


@pytest.mark.parametrize("bad", ["0.0.0.0", "::", "0:0:0:0:0:0:0:0", "miner.example.com", "224.0.0.1", "240.0.0.1", ""])
def test_explicit_ip_must_be_a_specified_host_address(tmp_path: Path, bad: str) -> None:
    if bad == "":
        # empty means "not set": the dev default applies
        assert resolve_external_ip(_settings(tmp_path, external_ip=bad)) == "127.0.0.1"
        return
    with pytest.raises(ExternalIpError, match="GAS_EXTERNAL_IP"):
        resolve_external_ip(_settings(tmp_path, external_ip=bad))


def test_explicit_ip_rules_per_network(tmp_path: Path) -> None:
    probe = Probe("198.51.100.9")
    assert resolve_external_ip(_settings(tmp_path, external_ip="203.0.113.7", network="finney"), probe=probe) == \
        "203.0.113.7"
    assert resolve_external_ip(_settings(tmp_path, external_ip="2001:db8::7", network="test"), probe=probe) == \
        "2001:db8::7"
    assert resolve_external_ip(_settings(tmp_path, external_ip="127.0.0.1"), probe=probe) == "127.0.0.1"  # dev
    with pytest.raises(ExternalIpError, match="loopback"):
        resolve_external_ip(_settings(tmp_path, external_ip="127.0.0.1", network="finney"), probe=probe)
    with pytest.raises(ExternalIpError, match="loopback/link-local"):
        resolve_external_ip(_settings(tmp_path, external_ip="169.254.1.1", network="test"), probe=probe)
    assert probe.calls == []  # an explicit address is never probed


def test_auto_ip(tmp_path: Path) -> None:
    dev_probe = Probe("10.1.1.1")
    assert resolve_external_ip(_settings(tmp_path), probe=dev_probe) == "127.0.0.1"
    assert dev_probe.calls == []

    probe = Probe("198.51.100.4")
    assert resolve_external_ip(_settings(tmp_path, network="finney"), probe=probe) == "198.51.100.4"
    assert probe.calls == [("entrypoint-finney.opentensor.ai", 443)]
    url_probe = Probe("192.0.2.10")
    settings = _settings(tmp_path, network="ws://192.0.2.1:9944", netuid=7)
    assert resolve_external_ip(settings, probe=url_probe) == "192.0.2.10"
    assert url_probe.calls == [("192.0.2.1", 9944)]
    # a local node: loopback is fine
    assert resolve_external_ip(_settings(tmp_path, network="local", netuid=2), probe=Probe("127.0.0.1")) == \
        "127.0.0.1"


@pytest.mark.parametrize(("answer", "match"), [("0.0.0.0", "unspecified"), ("127.0.0.1", "loopback"),
                                                (OSError("Network is unreachable"), "unreachable")])
def test_auto_ip_refuses_what_cannot_be_published(tmp_path: Path, answer, match: str) -> None:
    with pytest.raises(ExternalIpError, match=match) as err:
        resolve_external_ip(_settings(tmp_path, network="test"), probe=Probe(answer))
    assert "GAS_EXTERNAL_IP" in str(err.value)


def test_outbound_address_is_a_real_udp_route() -> None:
    assert outbound_address("127.0.0.1", 9) == "127.0.0.1"


# --------------------------------------------------------------------------------------------
# the miner on a dev chain
# --------------------------------------------------------------------------------------------
@pytest.fixture
def devnet(tmp_path: Path):
    net = DevNet.create(tmp_path / "chain.db", max_validators=4)
    yield net
    net.close()


def _signed(kp: Keypair, miner: GeneratorMiner, body: bytes = b"", webhook: str | None = None) -> dict[str, str]:
    headers = sign_request(body, kp, signed_for=miner.hotkey)
    if webhook:
        headers["X-Webhook-URL"] = webhook
    return headers


def _miner(devnet: DevNet, settings: GeneratorSettings, service: FakeService | None = None) -> GeneratorMiner:
    svc = service or FakeService()
    return GeneratorMiner(settings, identity=make_identity("miner"), keypair=_keypair("miner"),
                          chain=devnet.client(make_identity("miner")), services=ServiceSet({"image": svc, "video": svc}))


def test_start_publishes_axon_serves_and_admits_new_validators(devnet: DevNet, tmp_path: Path) -> None:
    devnet.join(make_identity("miner"))
    devnet.join(make_identity("vali"), stake=100.0)  # the most stake: a validator permit
    settings = _settings(tmp_path)
    miner = _miner(devnet, settings)
    vali, newcomer = _keypair("vali"), _keypair("newcomer")

    async def scenario(receiver: WebhookReceiver, receiver2: WebhookReceiver) -> None:
        await miner.start()
        try:
            # the axon is on chain, with the dev default address and our port
            neuron = devnet.admin.metagraph().by_hotkey(miner.hotkey)
            assert (neuron.axon_ip, neuron.axon_port) == ("127.0.0.1", settings.axon_port)
            assert miner.uid == neuron.uid

            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=miner.app), base_url="http://m") as c:
                body = json.dumps({"prompt": "a lighthouse at dusk", "parameters": {}}).encode()
                res = await c.post("/gen_image", content=body, headers=_signed(vali, miner, body, receiver.url()))
                assert res.status_code == 201, res.text
                task_id = res.json()["task_id"]
                (hook,) = await asyncio.to_thread(receiver.wait_for, 1, 20)
                assert (hook.task_id, hook.task_status, hook.signer) == (task_id, "completed", miner.hotkey)
                assert hook.body.startswith(b"\x89PNG") and hook.content_type == "image/png"
                res = await c.get(f"/status/{task_id}", headers=_signed(vali, miner))
                assert res.json()["status"] == "completed"

                # a validator registering after the start: refused until it holds a permit,
                # then accepted on the next refresh, without a restart
                devnet.join(make_identity("newcomer"))
                await _wait_refreshes(miner, 2)
                body2 = json.dumps({"prompt": "second", "parameters": {}}).encode()
                res = await c.post("/gen_image", content=body2, headers=_signed(newcomer, miner, body2, receiver2.url()))
                assert res.status_code == 403 and "no validator permit" in res.json()["error"]
                devnet.admin.fund(make_identity("newcomer").coldkey, 10.0)
                devnet.admin.add_stake(make_identity("newcomer").hotkey, 10.0)
                await _wait_refreshes(miner, 2)
                res = await c.post("/gen_image", content=body2, headers=_signed(newcomer, miner, body2, receiver2.url()))
                assert res.status_code == 201, res.text
                (hook2,) = await asyncio.to_thread(receiver2.wait_for, 1, 20)  # signed for the newcomer
                assert hook2.task_id == res.json()["task_id"]

            # someone changed our axon on chain (e.g. an old config elsewhere): it is published again
            devnet.client(make_identity("miner")).serve_axon("198.51.100.1", 1234)
            await _wait_refreshes(miner, 2)
            neuron = devnet.admin.metagraph().by_hotkey(miner.hotkey)
            assert (neuron.axon_ip, neuron.axon_port) == ("127.0.0.1", settings.axon_port)
        finally:
            await miner.stop()

    with WebhookReceiver(vali) as receiver, WebhookReceiver(newcomer) as receiver2:
        asyncio.run(scenario(receiver, receiver2))
    assert receiver.bad_signatures == [] and receiver2.bad_signatures == []
    # the store is where the settings say
    assert (settings.generator_dir / "tasks.db").is_file()


async def _wait_refreshes(miner: GeneratorMiner, n: int, timeout: float = 10.0) -> None:
    target = miner.refreshes + n
    deadline = time.monotonic() + timeout
    while miner.refreshes < target:
        assert time.monotonic() < deadline, "the metagraph was not refreshed"
        await asyncio.sleep(0.01)


def test_axon_already_published_is_not_served_again(devnet: DevNet, tmp_path: Path, monkeypatch) -> None:
    devnet.join(make_identity("miner"))
    settings = _settings(tmp_path)
    devnet.client(make_identity("miner")).serve_axon("127.0.0.1", settings.axon_port)
    miner = _miner(devnet, settings)
    calls = []
    monkeypatch.setattr(miner.chain, "serve_axon", lambda *a, **k: calls.append(a))

    async def scenario() -> None:
        await miner.start()
        await miner.stop()

    asyncio.run(scenario())
    assert calls == []


def test_not_registered_is_refused_clearly(devnet: DevNet, tmp_path: Path) -> None:
    miner = _miner(devnet, _settings(tmp_path))
    with pytest.raises(NotRegisteredError, match="is not registered on subnet 34") as err:
        asyncio.run(miner.start())
    assert "gascli chain register --wallet-name default" in str(err.value)
    assert err.value.exit_code == 3


def test_refresh_failure_keeps_the_last_view(devnet: DevNet, tmp_path: Path, caplog) -> None:
    devnet.join(make_identity("miner"))
    miner = _miner(devnet, _settings(tmp_path))

    async def scenario() -> None:
        await miner.start()
        try:
            before = miner.metagraph
            original = miner.chain.metagraph

            def broken(*a, **k):
                raise miner_mod.StartupError("chain went away")  # any exception

            miner.chain.metagraph = broken
            await asyncio.sleep(0.3)
            assert miner.metagraph is before
            miner.chain.metagraph = original
        finally:
            await miner.stop()

    asyncio.run(scenario())
    assert "metagraph refresh failed" in caplog.text


# --------------------------------------------------------------------------------------------
# as a process
# --------------------------------------------------------------------------------------------
def _process_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAS_")}
    env.update(GAS_CACHE_DIR=str(tmp_path / "cache"), GAS_WALLET_PATH=str(tmp_path / "wallets"),
               GAS_WALLET_NAME="miner", GAS_BIND_HOST="127.0.0.1", GAS_AXON_PORT=str(_free_port()),
               IMAGE_SERVICE="none", VIDEO_SERVICE="none", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def _dev_chain_with_wallet(tmp_path: Path, *, register: bool) -> str:
    info = create_wallet("miner", "default", path=tmp_path / "wallets")
    admin = DevChain.init(DevChain.default_path(tmp_path / "cache"), block_time=1.0)
    if register:
        admin.fund(info.coldkey_ss58, 10)
        from gas.chain.base import Identity

        DevChain(admin.path, identity=Identity(info.hotkey_ss58, info.coldkey_ss58)).register()
    admin.close()
    return info.hotkey_ss58


def test_script_exits_clearly_when_not_registered(tmp_path: Path) -> None:
    hotkey = _dev_chain_with_wallet(tmp_path, register=False)
    proc = subprocess.run([PY, str(REPO / "neurons" / "generator" / "miner.py")], env=_process_env(tmp_path),
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert f"error: hotkey {hotkey} (wallet miner/default) is not registered on subnet 34" in proc.stderr
    assert "gascli chain register" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_settings_and_missing_wallet_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run([PY, "-m", "neurons.generator"], env=_process_env(tmp_path, GAS_AXON_PORT="0"),
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 2 and "GAS_AXON_PORT" in proc.stderr
    proc = subprocess.run([PY, "-m", "neurons.generator"], env=_process_env(tmp_path),
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 2 and "gascli wallet create --name miner" in proc.stderr


def test_process_serves_then_stops_on_sigterm(tmp_path: Path) -> None:
    _dev_chain_with_wallet(tmp_path, register=True)
    env = _process_env(tmp_path)
    proc = subprocess.Popen([PY, "-m", "neurons.generator"], env=env, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        port = int(env["GAS_AXON_PORT"])
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the miner did not listen in time"
                time.sleep(0.1)
        # listening: an unsigned request gets a clear JSON error
        res = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
        assert res.status_code == 400 and res.json()["code"] == "missing_header"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "miner ready" in out and "task engine stopped" in out and "miner stopped" in out
    assert "axon=127.0.0.1:" in out


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    _dev_chain_with_wallet(tmp_path, register=True)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        env = _process_env(tmp_path, GAS_AXON_PORT=str(busy.getsockname()[1]))
        proc = subprocess.run([PY, "-m", "neurons.generator"], env=env, capture_output=True, text=True,
                              timeout=120, cwd=REPO)
    assert proc.returncode == 5, proc.stderr
    assert "cannot listen on 127.0.0.1" in proc.stderr
