"""``gascli wallet create|list``: offline, never overwrites, no prompt without a TTY, btcli layout.

The sub-app is tested directly (gascli.commands.wallet.app); wallets live in tmp dirs only.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import bittensor as bt
import pytest
from bittensor.keyfiles import Keyfile
from typer.testing import CliRunner

import gas.chain.wallets as wallets_mod
from gascli.commands import wallet as wallet_cli

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # rich would otherwise squeeze addresses to 80 columns


def cli(*args: str, input: str | None = None):
    return runner.invoke(wallet_cli.app, list(args), input=input)


def create(tmp_path: Path, *extra: str, name: str = "w", hotkey: str = "hk", input: str | None = None):
    return cli("create", "--name", name, "--hotkey", hotkey, "--wallet-path", str(tmp_path), *extra, input=input)


def test_create_no_password_prints_addresses_and_mnemonics(tmp_path):
    r = create(tmp_path, "--no-password")
    assert r.exit_code == 0, r.output
    w = bt.Wallet("w", "hk", str(tmp_path))  # btcli's reader
    assert w.coldkeypub.ss58_address in r.stdout and w.hotkey.ss58_address in r.stdout
    assert "recovery phrases" in r.stdout and w.hotkey_file.get_keypair().ss58_address
    assert not Keyfile(tmp_path / "w" / "coldkey").is_encrypted()
    r = create(tmp_path, "--no-password", "--hide-mnemonic", hotkey="hk2")
    assert r.exit_code == 0 and "recovery" not in r.stdout


def test_refuses_to_overwrite_then_overwrite_replaces(tmp_path):
    assert create(tmp_path, "--no-password").exit_code == 0
    before = bt.Wallet("w", "hk", str(tmp_path)).hotkey.ss58_address
    r = create(tmp_path, "--no-password")
    assert r.exit_code == 1
    assert str(tmp_path / "w" / "hotkeys" / "hk") in r.stderr and "--overwrite" in r.stderr
    assert bt.Wallet("w", "hk", str(tmp_path)).hotkey.ss58_address == before
    r = create(tmp_path, "--no-password", "--overwrite")
    assert r.exit_code == 0, r.output
    assert bt.Wallet("w", "hk", str(tmp_path)).hotkey.ss58_address != before


def test_hotkey_only_keeps_the_coldkey_and_needs_no_password(tmp_path):
    assert create(tmp_path, "--no-password").exit_code == 0
    coldkey = (tmp_path / "w" / "coldkey").read_bytes()
    r = create(tmp_path, hotkey="hk2")  # no --no-password, no TTY: fine, no coldkey to encrypt
    assert r.exit_code == 0, r.output
    assert "kept" in r.stdout
    assert (tmp_path / "w" / "coldkey").read_bytes() == coldkey
    assert (tmp_path / "w" / "hotkeys" / "hk2").is_file()


def test_no_tty_without_password_option_is_a_usage_error(tmp_path):
    r = create(tmp_path)
    assert r.exit_code == 2
    assert "--no-password" in r.stderr and "--password-env" in r.stderr
    assert not (tmp_path / "w").exists()


def test_password_options_are_validated(tmp_path, monkeypatch):
    monkeypatch.delenv("GAS_TEST_PW", raising=False)
    r = create(tmp_path, "--password-env", "GAS_TEST_PW")
    assert r.exit_code == 2 and "GAS_TEST_PW" in r.stderr
    monkeypatch.setenv("GAS_TEST_PW", "pw")
    r = create(tmp_path, "--password-env", "GAS_TEST_PW", "--no-password")
    assert r.exit_code == 2 and "not both" in r.stderr
    assert not (tmp_path / "w").exists()


def test_password_env_encrypts_the_coldkey(tmp_path, monkeypatch):
    monkeypatch.setenv("GAS_TEST_PW", "s3cret")
    r = create(tmp_path, "--password-env", "GAS_TEST_PW")  # ~2.5 s: real encryption
    assert r.exit_code == 0, r.output
    assert "encrypted" in r.stdout and "unencrypted" not in r.stdout
    kf = Keyfile(tmp_path / "w" / "coldkey")
    assert kf.is_encrypted()
    assert not (tmp_path / "w" / "coldkey").read_bytes().startswith(b"{")
    r = cli("list", "--wallet-path", str(tmp_path), "--json")
    [entry] = json.loads(r.stdout)["wallets"]
    assert entry["coldkey_encrypted"] is True


def test_prompts_twice_on_a_tty(tmp_path, monkeypatch):
    seen = {}

    def fake_create(name, hotkey, *, path, password, overwrite, on_mnemonic):
        seen.update(name=name, hotkey=hotkey, path=path, password=password, overwrite=overwrite)
        return wallets_mod.WalletInfo(name, hotkey, "5Cold", "5Hot", Path(path) / name, True)

    monkeypatch.setattr(wallet_cli, "_stdin_is_tty", lambda: True)
    monkeypatch.setattr(wallets_mod, "create_wallet", fake_create)
    r = create(tmp_path, input="pw1\npw1\n")
    assert r.exit_code == 0, r.output
    assert seen == {"name": "w", "hotkey": "hk", "path": tmp_path, "password": "pw1", "overwrite": False}
    assert "pw1" not in r.stdout  # hidden input
    seen.clear()
    r = create(tmp_path, input="a\nb\na\na\n")  # a mismatch is asked again
    assert r.exit_code == 0 and seen["password"] == "a"


def test_bad_name_is_a_usage_error(tmp_path):
    r = create(tmp_path, "--no-password", name="a/b")
    assert r.exit_code == 2 and "invalid wallet name" in r.stderr


def test_list_table_and_json(tmp_path):
    assert create(tmp_path, "--no-password", name="alice", hotkey="hk1").exit_code == 0
    assert create(tmp_path, "--no-password", name="bob", hotkey="hk2").exit_code == 0
    alice, bob = bt.Wallet("alice", "hk1", str(tmp_path)), bt.Wallet("bob", "hk2", str(tmp_path))
    r = cli("list", "--wallet-path", str(tmp_path))
    assert r.exit_code == 0, r.output
    for s in ("alice", "bob", "hotkey hk1", "hotkey hk2", alice.coldkeypub.ss58_address,
              alice.hotkey.ss58_address, bob.coldkeypub.ss58_address, bob.hotkey.ss58_address):
        assert s in r.stdout
    r = cli("list", "--wallet-path", str(tmp_path), "--json")
    data = json.loads(r.stdout)
    assert data["wallet_path"] == str(tmp_path)
    assert [(w["name"], w["coldkey_ss58"], [(h["name"], h["ss58"]) for h in w["hotkeys"]])
            for w in data["wallets"]] == [
        ("alice", alice.coldkeypub.ss58_address, [("hk1", alice.hotkey.ss58_address)]),
        ("bob", bob.coldkeypub.ss58_address, [("hk2", bob.hotkey.ss58_address)]),
    ]


def test_list_reports_a_malformed_wallet(tmp_path):
    assert create(tmp_path, "--no-password").exit_code == 0
    (tmp_path / "w" / "hotkeys" / "hkpub.txt").write_text("{broken")
    (tmp_path / "junk").mkdir()
    r = cli("list", "--wallet-path", str(tmp_path))
    assert r.exit_code == 0, r.output
    assert "problem" in r.stdout and "hkpub.txt" in r.stdout and "coldkeypub.txt is missing" in r.stdout
    data = json.loads(cli("list", "--wallet-path", str(tmp_path), "--json").stdout)
    by_name = {w["name"]: w for w in data["wallets"]}
    assert by_name["junk"]["error"] and by_name["w"]["hotkeys"][0]["error"]


def test_list_empty_and_env_var_default(tmp_path, monkeypatch):
    r = cli("list", "--wallet-path", str(tmp_path / "none"))
    assert r.exit_code == 0 and "no wallets" in r.stdout
    monkeypatch.setenv("GAS_WALLET_PATH", str(tmp_path))
    assert cli("create", "--name", "envw", "--hotkey", "hk", "--no-password").exit_code == 0
    assert (tmp_path / "envw" / "coldkeypub.txt").is_file()
    assert "envw" in cli("list").stdout


def test_help_and_lazy_imports():
    r = cli("--help")
    assert r.exit_code == 0 and "create" in r.stdout and "list" in r.stdout
    code = "import sys, gascli.commands.wallet; sys.exit('bittensor' in sys.modules or 'rich' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0
