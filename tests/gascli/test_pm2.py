"""The pm2 wrapper against a real pm2 daemon in a private PM2_HOME.

install.sh installs pm2 into .node/; CI runs it first, so there these tests must run (a missing
pm2 under CI=true fails instead of skipping).
"""

from __future__ import annotations

import json
import os
import textwrap
import time
from pathlib import Path

import pytest

from gascli.pm2 import PM2, PM2Error, PM2NotFound, ProcessNotFound, find_pm2

pytestmark = pytest.mark.pm2


def _pm2_or_skip(env: dict[str, str]) -> Path:
    try:
        return find_pm2(env)
    except PM2NotFound:
        if os.environ.get("CI"):
            pytest.fail("pm2 is missing under CI: install.sh should have installed it into .node/")
        pytest.skip("pm2 not installed (run ./install.sh)")


@pytest.fixture
def pm2(tmp_path: Path):
    home = tmp_path / "pm2home"
    client = PM2(_pm2_or_skip(dict(os.environ)), home=home, timeout=60)
    yield client
    try:
        client.kill()
    except PM2Error:
        pass


def _ecosystem(tmp_path: Path, python: str) -> Path:
    worker = tmp_path / "worker.py"
    worker.write_text(
        textwrap.dedent(
            """
            import os, sys, time
            print("hello from", os.environ.get("GREETING"), "args", sys.argv[1:], flush=True)
            print("to stderr", file=sys.stderr, flush=True)
            while True:
                time.sleep(0.2)
            """
        )
    )
    eco = tmp_path / "eco.config.js"
    eco.write_text(
        "module.exports = { apps: [{ name: 'gas-test-worker', namespace: 'gas', "
        f"script: {json.dumps(str(worker))}, interpreter: {json.dumps(python)}, args: ['--x', '1'], "
        "env: { GREETING: 'gas' }, autorestart: false }] };\n"
    )
    return eco


def _wait_for(pred, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def test_start_status_logs_restart_stop_delete(pm2: PM2, tmp_path: Path) -> None:
    import sys

    rows = pm2.start(_ecosystem(tmp_path, sys.executable))
    assert [r.name for r in rows] == ["gas-test-worker"]
    info = pm2.describe("gas-test-worker")
    assert info.status == "online" and info.pid and info.namespace == "gas"
    os.kill(info.pid, 0)  # the process really exists

    assert [p.name for p in pm2.project_processes()] == ["gas-test-worker"]
    out = _wait_for(
        lambda: (lambda s: s if "hello from gas" in s and "to stderr" in s else None)(
            pm2.logs("gas-test-worker", lines=20)
        )
    )
    assert "args ['--x', '1']" in out
    assert "\x1b[" not in out

    pm2.restart("gas-test-worker")
    after = pm2.describe("gas-test-worker")
    assert after.restarts == 1 and after.pid != info.pid

    pm2.stop("gas-test-worker")
    assert pm2.describe("gas-test-worker").status == "stopped"
    with pytest.raises(ProcessLookupError):
        _wait_for(lambda: os.kill(after.pid, 0) and False, timeout=5)

    pm2.delete("gas-test-worker")
    assert pm2.jlist() == []
    with pytest.raises(ProcessNotFound):
        pm2.describe("gas-test-worker")


def test_gascli_status_lists_project_processes(pm2: PM2, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from typer.testing import CliRunner

    from gascli.app import app

    pm2.start(_ecosystem(tmp_path, sys.executable))
    monkeypatch.setenv("PM2_HOME", pm2.env["PM2_HOME"])
    monkeypatch.setenv("GAS_PM2", str(pm2.binary))
    res = CliRunner().invoke(app, ["status", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert [(r["name"], r["status"]) for r in rows] == [("gas-test-worker", "online")]
    res = CliRunner().invoke(app, ["logs", "gas-test-worker", "--lines", "5"])
    assert res.exit_code == 0 and "hello from gas" in res.output


def test_unknown_process_errors(pm2: PM2) -> None:
    with pytest.raises(ProcessNotFound, match="no pm2 process named 'ghost'"):
        pm2.stop("ghost")
    with pytest.raises(ProcessNotFound):
        pm2.logs("ghost")


def test_missing_ecosystem_file(pm2: PM2, tmp_path: Path) -> None:
    with pytest.raises(PM2Error, match="does not exist"):
        pm2.start(tmp_path / "nope.config.js")
