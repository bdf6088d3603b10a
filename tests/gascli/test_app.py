from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gascli.app import ROOT_ALIASES, app
from gascli.aliases import alias_group
from gascli.pm2 import _tail

runner = CliRunner()


def test_help_lists_groups_once_with_aliases() -> None:
    res = runner.invoke(app, ["--help"], terminal_width=200)
    assert res.exit_code == 0
    out = res.output
    assert "validator (vali, v)" in out
    assert "generator (gen, g)" in out
    assert "discriminator (d)" in out
    for cmd in ("bench", "status", "version"):
        assert f"│ {cmd} " in out
    # aliases are not listed as commands of their own
    for alias in ("vali", "gen", "d"):
        assert f"│ {alias} " not in out
    assert out.count("│ validator") == 1


@pytest.mark.parametrize(
    "name", ["validator", "vali", "v", "generator", "gen", "g", "discriminator", "d"]
)
def test_aliases_reach_the_same_group(name: str) -> None:
    res = runner.invoke(app, [name, "config", "--json"])
    assert res.exit_code == 0, res.output
    role = json.loads(res.output)["role"]
    canonical = next(c for c, aliases in ROOT_ALIASES.items() if name == c or name in aliases)
    assert role == canonical


def test_alias_usage_line_shows_canonical_name() -> None:
    res = runner.invoke(app, ["v", "--help"], terminal_width=200)
    assert res.exit_code == 0
    assert "Usage: gascli validator" in res.output


def test_unknown_command_fails() -> None:
    res = runner.invoke(app, ["valdator"])
    assert res.exit_code == 2


def test_alias_clash_rejected() -> None:
    with pytest.raises(ValueError, match="'v' is used twice"):
        alias_group({"validator": ("v",), "verify": ("v",)})


def test_no_pretend_daemon_commands() -> None:
    """start/stop arrive with the daemons; until then the groups must not offer them."""
    res = runner.invoke(app, ["validator", "start"])
    assert res.exit_code == 2
    assert "No such command" in res.output


def test_generator_has_daemon_commands() -> None:
    """The generative miner exists, so its group offers the pm2 commands (and the C2PA tools)."""
    res = runner.invoke(app, ["generator", "--help"], terminal_width=200)
    assert res.exit_code == 0, res.output
    for command in ("start", "stop", "restart", "status", "logs", "delete", "info", "init-c2pa", "verify-c2pa"):
        assert command in res.output
    res = runner.invoke(app, ["gen", "start", "--help"])
    assert res.exit_code == 0 and "--env-file" in res.output


def test_config_shows_sources_and_bad_settings_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / ".env.validator"
    env_file.write_text("GAS_CALLBACK_PORT=1234\n")
    monkeypatch.setenv("GAS_WALLET_NAME", "alice")
    res = runner.invoke(app, ["v", "config", "--json", "--env-file", str(env_file)])
    data = json.loads(res.output)
    assert data["settings"]["callback_port"] == 1234
    assert data["sources"]["callback_port"] == "file .env.validator"
    assert data["settings"]["wallet_name"] == "alice"
    assert data["sources"]["wallet_name"] == "env GAS_WALLET_NAME"
    env_file.write_text("GAS_CALLBACK_PORT=x\n")
    res = runner.invoke(app, ["v", "config", "--env-file", str(env_file)])
    assert res.exit_code == 2
    assert "GAS_CALLBACK_PORT / callback_port" in res.output


def test_version_json() -> None:
    res = runner.invoke(app, ["version", "--json"])
    info = json.loads(res.output)
    assert info["gas-node"] == "0.1.0"
    assert info["torch"].startswith("2.13.0")


def test_help_does_not_import_heavy_modules() -> None:
    """`gascli --help` must stay fast: no torch, numpy, pydantic or bittensor on the way."""
    code = (
        "import sys; from gascli.app import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'numpy', 'pydantic', 'bittensor', 'pyarrow', 'sklearn') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out


def test_tail_reads_last_lines(tmp_path: Path) -> None:
    f = tmp_path / "log"
    f.write_text("".join(f"line {i}\n" for i in range(20000)) + "partial")
    assert _tail(f, 3) == ["line 19998\n", "line 19999\n", "partial\n"]
    assert _tail(f, 0) == []
    assert _tail(tmp_path / "missing", 5) == []
