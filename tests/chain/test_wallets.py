"""Offline wallets: create (never overwrite), list (never crash), load, and btcli/SDK compatibility.

Everything happens in tmp dirs; the real ~/.bittensor is never touched. Encrypting a key costs the
SDK ~2.5 s, so only one module-scoped fixture makes an encrypted coldkey.
"""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import bittensor as bt
import pytest
from bittensor.keyfiles import Keyfile

from gas.chain.base import ChainError, Identity
from gas.chain.wallets import (
    InvalidWalletName,
    WalletError,
    WalletExists,
    WalletLocked,
    WalletNotFound,
    create_wallet,
    list_wallets,
    load_identity,
    plan_create,
)

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def encrypted_wallets(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("encrypted_wallets")
    create_wallet("enc", "hk", path=root, password=PASSWORD)
    return root


def files_of(root: Path, name: str = "w", hotkey: str = "hk") -> dict[str, Path]:
    d = root / name
    return {"coldkey": d / "coldkey", "coldkeypub": d / "coldkeypub.txt",
            "hotkey": d / "hotkeys" / hotkey, "hotkeypub": d / "hotkeys" / f"{hotkey}pub.txt"}


def test_create_writes_the_btcli_layout_mode_600(tmp_path):
    info = create_wallet("w", "hk", path=tmp_path)
    f = files_of(tmp_path)
    for p in f.values():
        assert p.is_file(), p
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    assert info.path == tmp_path / "w" and info.name == "w" and info.hotkey == "hk"
    assert info.created_coldkey and info.created_hotkey and not info.coldkey_encrypted
    assert json.loads(f["coldkeypub"].read_text())["ss58Address"] == info.coldkey_ss58
    assert json.loads(f["hotkeypub"].read_text())["ss58Address"] == info.hotkey_ss58
    assert info.coldkey_ss58 != info.hotkey_ss58
    assert info.to_dict()["path"] == str(tmp_path / "w")


def test_sdk_reads_our_wallet_back_and_signs(tmp_path):
    """bittensor.Wallet(name, hotkey, path) is what btcli uses: keys must match and sign."""
    info = create_wallet("w", "hk", path=tmp_path)
    w = bt.Wallet(name="w", hotkey="hk", path=str(tmp_path))
    assert w.hotkey.ss58_address == info.hotkey_ss58
    assert w.coldkeypub.ss58_address == info.coldkey_ss58
    assert w.coldkey.ss58_address == info.coldkey_ss58  # unencrypted: no prompt
    sig = w.hotkey.sign(b"gas")
    assert w.hotkey.verify(b"gas", sig)
    assert type(w.hotkey)(ss58_address=info.hotkey_ss58).verify(b"gas", sig)  # public key only
    assert not w.hotkey.verify(b"other", sig)
    assert bt.wallets.list_wallets(str(tmp_path)) == {"w": ["hk"]}  # the SDK's own listing


def test_existing_hotkey_is_never_overwritten(tmp_path):
    create_wallet("w", "hk", path=tmp_path)
    before = {k: p.read_bytes() for k, p in files_of(tmp_path).items()}
    with pytest.raises(WalletExists) as err:
        create_wallet("w", "hk", path=tmp_path)
    assert str(files_of(tmp_path)["hotkey"]) in str(err.value) and "--overwrite" in str(err.value)
    assert err.value.file == files_of(tmp_path)["hotkey"]
    assert isinstance(err.value, ChainError)
    assert {k: p.read_bytes() for k, p in files_of(tmp_path).items()} == before
    with pytest.raises(WalletExists):
        plan_create("w", "hk", path=tmp_path)
    # a lone pub file counts as an existing hotkey too
    files_of(tmp_path)["hotkey"].unlink()
    with pytest.raises(WalletExists):
        create_wallet("w", "hk", path=tmp_path)


def test_overwrite_replaces_both_keys(tmp_path):
    first = create_wallet("w", "hk", path=tmp_path)
    second = create_wallet("w", "hk", path=tmp_path, overwrite=True)
    assert second.created_coldkey and second.coldkey_ss58 != first.coldkey_ss58
    assert second.hotkey_ss58 != first.hotkey_ss58
    assert bt.Wallet("w", "hk", str(tmp_path)).hotkey.ss58_address == second.hotkey_ss58


def test_new_hotkey_keeps_the_existing_coldkey(tmp_path):
    first = create_wallet("w", "hk", path=tmp_path)
    coldkey_bytes = files_of(tmp_path)["coldkey"].read_bytes()
    assert plan_create("w", "hk2", path=tmp_path) is False
    second = create_wallet("w", "hk2", path=tmp_path)
    assert not second.created_coldkey and second.created_hotkey
    assert second.coldkey_ss58 == first.coldkey_ss58 and second.hotkey_ss58 != first.hotkey_ss58
    assert files_of(tmp_path)["coldkey"].read_bytes() == coldkey_bytes
    [entry] = list_wallets(tmp_path)
    assert [h.name for h in entry.hotkeys] == ["hk", "hk2"]


def test_hotkey_next_to_a_watch_only_coldkey(tmp_path):
    """A server holding only coldkeypub.txt (the coldkey lives elsewhere) can get a hotkey."""
    first = create_wallet("w", "hk", path=tmp_path)
    files_of(tmp_path)["coldkey"].unlink()
    second = create_wallet("w", "hk2", path=tmp_path)
    assert not second.created_coldkey and second.coldkey_ss58 == first.coldkey_ss58
    assert not files_of(tmp_path)["coldkey"].exists()
    [entry] = list_wallets(tmp_path)
    assert entry.coldkey_encrypted is None and entry.error is None
    ident = load_identity("w", "hk2", tmp_path)
    assert ident.coldkey == first.coldkey_ss58


def test_encrypted_coldkey(encrypted_wallets):
    f = files_of(encrypted_wallets, "enc")
    kf = Keyfile(f["coldkey"])
    assert kf.is_encrypted()
    assert not f["coldkey"].read_bytes().lstrip().startswith(b"{")
    assert not Keyfile(f["hotkey"]).is_encrypted()  # hotkeys sign unattended
    [entry] = list_wallets(encrypted_wallets)
    assert entry.coldkey_encrypted is True and entry.coldkey_ss58 and entry.error is None
    ident = load_identity("enc", "hk", encrypted_wallets)  # the coldkey stays locked: no password
    assert ident.coldkey == entry.coldkey_ss58
    assert ident.hotkey == entry.hotkeys[0].ss58


def test_empty_password_is_refused(tmp_path):
    with pytest.raises(WalletError, match="must not be empty"):
        create_wallet("w", "hk", path=tmp_path, password="")
    assert not (tmp_path / "w").exists()


def test_encrypted_hotkey_needs_a_password(encrypted_wallets, tmp_path):
    root = tmp_path / "wallets"
    shutil.copytree(encrypted_wallets, root)
    hk = files_of(root, "enc")["hotkey"]
    # make an encrypted hotkey cheaply: the encrypted coldkey file is a valid encrypted keyfile
    hk.write_bytes(files_of(root, "enc")["coldkey"].read_bytes())
    files_of(root, "enc")["hotkeypub"].unlink()
    with pytest.raises(WalletLocked, match="encrypted"):
        load_identity("enc", "hk", root)
    [entry] = list_wallets(root)
    assert entry.hotkeys[0].ss58 is None and "encrypted" in entry.hotkeys[0].error
    ident = load_identity("enc", "hk", root, hotkey_password=PASSWORD)  # ~2.5 s: real decryption
    assert ident.hotkey == entry.coldkey_ss58


def test_list_shows_every_wallet_and_hotkey(tmp_path):
    a = create_wallet("alice", "hk1", path=tmp_path)
    b = create_wallet("bob", "hk10", path=tmp_path)
    b2 = create_wallet("bob", "hk2", path=tmp_path)
    entries = list_wallets(tmp_path)
    assert [e.name for e in entries] == ["alice", "bob"]
    assert entries[0].coldkey_ss58 == a.coldkey_ss58 and entries[0].coldkey_encrypted is False
    assert [(h.name, h.ss58) for h in entries[0].hotkeys] == [("hk1", a.hotkey_ss58)]
    assert [(h.name, h.ss58) for h in entries[1].hotkeys] == [("hk2", b2.hotkey_ss58), ("hk10", b.hotkey_ss58)]
    assert all(e.error is None for e in entries)
    assert json.loads(json.dumps([e.to_dict() for e in entries]))[1]["hotkeys"][0]["name"] == "hk2"


def test_list_of_a_missing_dir_is_empty(tmp_path):
    assert list_wallets(tmp_path / "nope") == []


def test_list_reports_malformed_wallets_without_crashing(tmp_path):
    good = create_wallet("good", "hk", path=tmp_path)
    # broken coldkeypub.txt and a broken hotkey
    create_wallet("broken", "hk", path=tmp_path)
    create_wallet("broken", "bad", path=tmp_path)
    (tmp_path / "broken" / "coldkeypub.txt").write_text("{not json")
    (tmp_path / "broken" / "hotkeys" / "badpub.txt").write_text('{"ss58Address": "nope"}')
    (tmp_path / "broken" / "hotkeys" / "bad").write_bytes(b"\x00\x01garbage")
    # a directory that is no wallet, a stray file, a hidden dir
    (tmp_path / "empty").mkdir()
    (tmp_path / "README").write_text("not a wallet")
    (tmp_path / ".cache").mkdir()
    # a hotkey whose pub file is missing is read from the (unencrypted) hotkey file
    create_wallet("nopub", "hk", path=tmp_path)
    (tmp_path / "nopub" / "hotkeys" / "hkpub.txt").unlink()

    entries = {e.name: e for e in list_wallets(tmp_path)}
    assert set(entries) == {"good", "broken", "empty", "nopub"}
    assert entries["good"].error is None and entries["good"].coldkey_ss58 == good.coldkey_ss58
    broken = entries["broken"]
    assert broken.coldkey_ss58 is None and "coldkeypub.txt" in broken.error
    hks = {h.name: h for h in broken.hotkeys}
    assert hks["hk"].error is None and hks["hk"].ss58
    assert hks["bad"].ss58 is None and hks["bad"].error
    assert entries["empty"].error == "coldkeypub.txt is missing" and entries["empty"].hotkeys == ()
    assert entries["nopub"].hotkeys[0].ss58 and entries["nopub"].hotkeys[0].error is None


def test_load_identity(tmp_path):
    info = create_wallet("w", "hk", path=tmp_path)
    ident = load_identity("w", "hk", tmp_path)
    assert isinstance(ident, Identity)
    assert (ident.hotkey, ident.coldkey) == (info.hotkey_ss58, info.coldkey_ss58)
    assert isinstance(ident.wallet, bt.Wallet)
    sig = ident.wallet.hotkey.sign(b"x")
    assert type(ident.wallet.hotkey)(ss58_address=ident.hotkey).verify(b"x", sig)


def test_load_identity_names_the_missing_file(tmp_path):
    with pytest.raises(WalletNotFound) as err:
        load_identity("ghost", "hk", tmp_path)
    assert str(tmp_path / "ghost") in str(err.value)
    assert "gascli wallet create --name ghost --hotkey hk" in str(err.value)
    create_wallet("w", "hk", path=tmp_path)
    with pytest.raises(WalletNotFound) as err:
        load_identity("w", "other", tmp_path)
    assert str(tmp_path / "w" / "hotkeys" / "other") in str(err.value)
    (tmp_path / "w" / "coldkeypub.txt").unlink()
    (tmp_path / "w" / "coldkey").unlink()
    with pytest.raises(WalletNotFound, match="coldkeypub.txt"):
        load_identity("w", "hk", tmp_path)


def test_load_identity_with_a_corrupt_hotkey(tmp_path):
    create_wallet("w", "hk", path=tmp_path)
    (tmp_path / "w" / "hotkeys" / "hk").write_text("{oops")
    with pytest.raises(WalletError, match="cannot read hotkey file"):
        load_identity("w", "hk", tmp_path)


@pytest.mark.parametrize("name,hotkey", [("a/b", "hk"), ("..", "hk"), ("w", "x/y"), ("", "hk"),
                                         ("w", "hkpub.txt")])
def test_bad_names_are_refused(tmp_path, name, hotkey):
    with pytest.raises(InvalidWalletName):
        create_wallet(name, hotkey, path=tmp_path)
    assert list(tmp_path.iterdir()) == []
