"""``gascli generator``: checks before pm2 is asked, info without a daemon, and the pm2 life cycle.

The start/stop/status/delete path with a real image request is in tests/e2e/test_generator_e2e.py;
here the miner runs with no services (it starts in a second) to test restart under a real pm2.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gas.chain.base import Identity
from gas.chain.devchain import DevChain
from gas.chain.wallets import create_wallet
from gas.generation.task_store import TaskStore
from gascli.app import app
from gascli.pm2 import PM2, PM2Error, PM2NotFound, find_pm2

runner = CliRunner()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """A miner wallet, a dev chain, an env file, and a fake pm2 that records any call."""
    cache, wallets = tmp_path / "cache", tmp_path / "wallets"
    monkeypatch.delenv("GAS_CACHE_DIR")  # the environment beats the env file; let the file speak
    info = create_wallet("miner", "default", path=wallets)
    DevChain.init(DevChain.default_path(cache), block_time=1.0).close()
    env_file = tmp_path / "miner.env"
    env_file.write_text(f"GAS_CACHE_DIR={cache}\nGAS_WALLET_PATH={wallets}\nGAS_WALLET_NAME=miner\n"
                        f"GAS_AXON_PORT={_free_port()}\nGAS_BIND_HOST=127.0.0.1\n")
    calls = tmp_path / "pm2-calls"
    fake = tmp_path / "fake-pm2"
    fake.write_text(  # knows no process: jlist is empty, stop/delete/restart fail as pm2 does
        f"#!/bin/sh\necho \"$@\" >> {calls}\n"
        "case \"$1\" in stop|delete|restart) echo \"[PM2][ERROR] Process or Namespace $2 not found\" >&2; exit 1;; esac\n"
        "echo '[]'\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("GAS_PM2", str(fake))
    return {"cache": cache, "wallets": wallets, "env_file": env_file, "calls": calls, "info": info, "tmp": tmp_path}


def _register(setup: dict) -> None:
    info = setup["info"]
    admin = DevChain(DevChain.default_path(setup["cache"]))
    admin.fund(info.coldkey_ss58, 10)
    DevChain(admin.path, identity=Identity(info.hotkey_ss58, info.coldkey_ss58)).register()


def test_start_refuses_bad_settings_before_pm2(setup: dict) -> None:
    bad = setup["tmp"] / "bad.env"
    bad.write_text("GAS_AXON_PORT=eighty\nIMAGE_SERVICE=midjourney\n")
    res = runner.invoke(app, ["generator", "start", "--env-file", str(bad)])
    assert res.exit_code == 2
    assert "GAS_AXON_PORT / axon_port" in res.output and "IMAGE_SERVICE" in res.output
    res = runner.invoke(app, ["generator", "start", "--env-file", str(setup["tmp"] / "missing.env")])
    assert res.exit_code == 2 and "does not exist" in res.output
    assert not setup["calls"].exists()


def test_start_refuses_missing_wallet_unregistered_hotkey_and_bad_ip(setup: dict) -> None:
    env_file = setup["env_file"]
    other = setup["tmp"] / "other.env"
    other.write_text(env_file.read_text() + "GAS_WALLET_NAME=nobody\n")
    res = runner.invoke(app, ["generator", "start", "--env-file", str(other)])
    assert res.exit_code == 2 and "gascli wallet create --name nobody" in res.output

    res = runner.invoke(app, ["generator", "start", "--env-file", str(env_file)])
    assert res.exit_code == 2
    assert f"hotkey {setup['info'].hotkey_ss58} is not registered on subnet 34" in res.output
    assert "gascli chain register --wallet-name miner" in res.output

    _register(setup)
    ip = setup["tmp"] / "ip.env"
    ip.write_text(env_file.read_text() + "GAS_EXTERNAL_IP=0.0.0.0\n")
    res = runner.invoke(app, ["generator", "start", "--env-file", str(ip)])
    assert res.exit_code == 2 and "unspecified address" in res.output
    assert not setup["calls"].exists()


def test_start_passes_the_env_file_to_pm2(setup: dict) -> None:
    _register(setup)
    res = runner.invoke(app, ["generator", "start", "--env-file", str(setup["env_file"])])
    # the fake pm2 lists no process afterwards: start reports that clearly
    assert res.exit_code == 1 and "pm2 did not start gas-generator" in res.output
    # the services warning names its reason (no C2PA certificate yet)
    assert "warning: service diffusers is unavailable" in res.output and "init-c2pa" in res.output
    calls = setup["calls"].read_text().splitlines()
    start = next(c for c in calls if c.startswith("start "))
    assert start.endswith("gen_miner.config.js --only gas-generator")


def test_info_without_daemon(setup: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    res = runner.invoke(app, ["generator", "info", "--env-file", str(setup["env_file"]), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["settings"]["hotkey"] == setup["info"].hotkey_ss58
    assert info["settings"]["external_ip"] == "127.0.0.1 (dev)"
    (svc,) = info["services"]
    assert svc["name"] == "diffusers" and svc["available"] is False and "init-c2pa" in svc["reason"]
    assert info["stats"]["tasks"]["total"] == 0
    assert info["process"] == {"name": "gas-generator", "status": "absent"}
    assert not setup["calls"].exists()  # no pm2 daemon running: info does not start one

    # a task database with a delivered and a rejected webhook (written as the miner would)
    store = TaskStore(setup["cache"] / "generator" / "tasks.db")
    for prompt in ("one", "two"):
        rec = store.create("image", prompt, {}, "http://10.0.0.1:10525/cb", "5Vali")
        store.mark_processing(rec.task_id, "diffusers")
        store.save_result(rec.task_id, b"\x89PNG\r\n\x1a\n" + b"0" * 64, "image/png")
    store.record_webhook_attempt("5Vali", "10.0.0.1:10525", "http_5xx")
    store.record_webhook_attempt("5Vali", "10.0.0.1:10525", "delivered")
    store.record_webhook_outcome("5Vali", "10.0.0.1:10525", "delivered", 2)
    store.record_webhook_attempt("5Vali", "10.0.0.1:10525", "http_4xx")
    store.record_webhook_outcome("5Vali", "10.0.0.1:10525", "rejected", 1)
    store.close()
    info = json.loads(runner.invoke(app, ["generator", "info", "--env-file", str(setup["env_file"]), "--json"]).output)
    assert info["stats"]["tasks"]["completed"] == 2
    vali = info["stats"]["validators"]["5Vali"]
    assert (vali["delivered"], vali["rejected"], vali["retries"]) == (1, 1, 1)
    assert vali["attempts"]["http_5xx"] == 1 and vali["endpoint"] == "10.0.0.1:10525"

    text = runner.invoke(app, ["generator", "info", "--env-file", str(setup["env_file"])], terminal_width=200)
    assert text.exit_code == 0
    for fragment in ("diffusers", "init-c2pa", "completed 2", "5Vali", "http_5xx 1"):
        assert fragment in text.output


def test_daemon_commands_when_not_running(setup: dict) -> None:
    for cmd in ("stop", "delete", "restart"):
        res = runner.invoke(app, ["generator", cmd])
        assert res.exit_code == 1 and "gas-generator is not under pm2" in res.output, (cmd, res.output)
    res = runner.invoke(app, ["generator", "status"])
    assert res.exit_code == 1 and "start it with `gascli generator start`" in res.output
    res = runner.invoke(app, ["generator", "status", "--json"])
    assert res.exit_code == 1 and json.loads(res.output) == {"name": "gas-generator", "status": "absent"}


# --------------------------------------------------------------------------------------------
# a real pm2 daemon (private PM2_HOME)
# --------------------------------------------------------------------------------------------
def _pm2_or_skip() -> Path:
    try:
        return find_pm2({k: v for k, v in os.environ.items() if k != "GAS_PM2"})
    except PM2NotFound:
        if os.environ.get("CI"):
            pytest.fail("pm2 is missing under CI: install.sh should have installed it into .node/")
        pytest.skip("pm2 not installed (run ./install.sh)")


@pytest.mark.pm2
@pytest.mark.slow
def test_start_restart_logs_stop_delete_under_pm2(setup: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    binary = _pm2_or_skip()
    home = setup["tmp"] / "pm2home"
    monkeypatch.setenv("GAS_PM2", str(binary))
    monkeypatch.setenv("PM2_HOME", str(home))
    _register(setup)
    env_file = setup["env_file"]
    env_file.write_text(env_file.read_text() + "IMAGE_SERVICE=none\nVIDEO_SERVICE=none\n")
    port = int(next(line for line in env_file.read_text().splitlines() if line.startswith("GAS_AXON_PORT="))
               .split("=")[1])
    pm2 = PM2(binary, home=home)
    try:
        res = runner.invoke(app, ["generator", "start", "--env-file", str(env_file)])
        assert res.exit_code == 0, res.output
        assert "both 'none'" in res.output  # a warning, not an error
        _wait_port(port)
        first = json.loads(runner.invoke(app, ["generator", "status", "--json"]).output)
        assert first["status"] == "online"

        res = runner.invoke(app, ["generator", "restart", "--env-file", str(env_file)])
        assert res.exit_code == 0, res.output
        second = json.loads(runner.invoke(app, ["generator", "status", "--json"]).output)
        assert second["status"] == "online" and second["pid"] != first["pid"] and second["restarts"] >= 1
        _wait_port(port)
        deadline = time.monotonic() + 30
        while "miner ready" not in (logs := runner.invoke(app, ["generator", "logs", "-n", "200"]).output):
            assert time.monotonic() < deadline, logs
            time.sleep(0.5)
        assert "miner ready" in logs

        assert runner.invoke(app, ["generator", "stop"]).exit_code == 0
        assert json.loads(runner.invoke(app, ["generator", "status", "--json"]).output)["status"] == "stopped"
        assert runner.invoke(app, ["generator", "delete"]).exit_code == 0
        assert runner.invoke(app, ["generator", "status"]).exit_code == 1
    finally:
        try:
            pm2.kill()
        except PM2Error:
            pass


def _wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"nothing listens on {port}")
