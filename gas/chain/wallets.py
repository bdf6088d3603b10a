"""Offline wallets in the standard bittensor layout (the one btcli reads).

A wallet is a directory ``<path>/<name>/`` holding::

    coldkey              the coldkey keypair (encrypted with a password, or plain JSON)
    coldkeypub.txt       its public half (JSON with ss58Address), readable without a password
    hotkeys/<hotkey>     a hotkey keypair (plain JSON: daemons sign unattended)
    hotkeys/<hotkey>pub.txt  its public half

Every file is mode 600 (written by the bittensor SDK). Nothing here talks to a chain.

Rules:

- an existing key file is never replaced unless ``overwrite=True`` (:class:`WalletExists` names it);
- when the coldkey exists (``coldkey`` or only ``coldkeypub.txt``) but the hotkey does not, only the
  hotkey is created and the coldkey files are not touched;
- listing never needs a password and never fails as a whole: a broken entry carries an ``error``.

The bittensor SDK is imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gas.chain.base import ChainError, Identity

#: Where wallets live unless configured otherwise (``GAS_WALLET_PATH`` / GasSettings.wallet_path).
DEFAULT_WALLET_PATH = Path("~/.bittensor/wallets").expanduser()

_COMPANION_SUFFIXES = ("pub.txt", ".lock", ".tmp")


class WalletError(ChainError):
    """Base of the wallet errors. Messages are meant for the operator."""


class WalletExists(WalletError):
    def __init__(self, files: list[Path]) -> None:
        self.files = list(files)
        names = ", ".join(str(f) for f in self.files)
        super().__init__(f"refusing to overwrite existing key file(s): {names} (pass --overwrite to replace them)")

    @property
    def file(self) -> Path:
        return self.files[0]


class WalletNotFound(WalletError):
    def __init__(self, missing: Path, name: str, hotkey: str, what: str = "key file") -> None:
        self.missing = missing
        super().__init__(
            f"{what} {missing} does not exist; create the wallet with "
            f"`gascli wallet create --name {name} --hotkey {hotkey}`"
        )


class InvalidWalletName(WalletError):
    """A wallet or hotkey name that is not a plain file name."""


class WalletLocked(WalletError):
    """The hotkey file is encrypted and no password was given."""


@dataclass(frozen=True)
class WalletInfo:
    """A wallet with one hotkey, as created by :func:`create_wallet`."""

    name: str
    hotkey: str
    coldkey_ss58: str
    hotkey_ss58: str
    path: Path
    coldkey_encrypted: bool
    created_coldkey: bool = True
    created_hotkey: bool = True

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        return d


@dataclass(frozen=True)
class HotkeyEntry:
    name: str
    ss58: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class WalletEntry:
    """One wallet directory as :func:`list_wallets` found it."""

    name: str
    path: Path
    coldkey_ss58: str | None = None
    coldkey_encrypted: bool | None = None  # None when there is no private coldkey file (watch-only)
    hotkeys: tuple[HotkeyEntry, ...] = ()
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "coldkey_ss58": self.coldkey_ss58,
            "coldkey_encrypted": self.coldkey_encrypted,
            "hotkeys": [asdict(h) for h in self.hotkeys],
            "error": self.error,
        }


@dataclass(frozen=True)
class _Files:
    wallet_dir: Path
    coldkey: Path
    coldkeypub: Path
    hotkey: Path
    hotkeypub: Path


def _files(name: str, hotkey: str, path: Path | str) -> _Files:
    _check_name(name, "wallet name")
    _check_name(hotkey, "hotkey name", hotkey=True)
    wallet_dir = Path(path).expanduser() / name
    return _Files(
        wallet_dir=wallet_dir,
        coldkey=wallet_dir / "coldkey",
        coldkeypub=wallet_dir / "coldkeypub.txt",
        hotkey=wallet_dir / "hotkeys" / hotkey,
        hotkeypub=wallet_dir / "hotkeys" / f"{hotkey}pub.txt",
    )


def _check_name(value: str, what: str, *, hotkey: bool = False) -> None:
    if not value or value in {".", ".."} or "/" in value or os.sep in value or "\0" in value:
        raise InvalidWalletName(f"invalid {what} {value!r}: use a plain name without '/'")
    if hotkey and value.endswith(_COMPANION_SUFFIXES):  # they would read as a hotkey's companion files
        raise InvalidWalletName(f"invalid {what} {value!r}: it must not end with {', '.join(_COMPANION_SUFFIXES)}")


def _pub_ss58(pub_file: Path) -> str:
    """The ss58 address in a public keyfile (raises on a missing or malformed file)."""
    from bittensor.sp_core import deserialize_keypair_from_keyfile_data

    return deserialize_keypair_from_keyfile_data(pub_file.read_bytes()).ss58_address


def _is_encrypted(key_file: Path) -> bool:
    from bittensor.sp_core import keyfile_data_is_encrypted

    return bool(keyfile_data_is_encrypted(key_file.read_bytes()))


def _coldkey_ss58(f: _Files) -> str:
    """The coldkey address: from coldkeypub.txt, else from an unencrypted coldkey file."""
    try:
        if f.coldkeypub.exists():
            return _pub_ss58(f.coldkeypub)
        if f.coldkey.exists() and not _is_encrypted(f.coldkey):
            return _pub_ss58(f.coldkey)
    except Exception as exc:
        raise WalletError(f"cannot read the coldkey address of {f.wallet_dir}: {_describe(exc)}") from exc
    raise WalletError(
        f"{f.coldkeypub} is missing and the coldkey is encrypted: restore it with "
        "`btcli wallet regen-coldkeypub`"
    )


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --------------------------------------------------------------------------------------------
# create
# --------------------------------------------------------------------------------------------
def plan_create(name: str, hotkey: str, *, path: Path | str = DEFAULT_WALLET_PATH, overwrite: bool = False) -> bool:
    """Check what :func:`create_wallet` would do, writing nothing: True when it would (re)create the
    coldkey, False when it would keep the existing coldkey and add only the hotkey. Raises
    :class:`WalletExists` when the hotkey exists and ``overwrite`` is false (and WalletError on a
    bad name)."""
    f = _files(name, hotkey, path)
    if not overwrite:
        existing = [p for p in (f.hotkey, f.hotkeypub) if p.exists()]
        if existing:
            raise WalletExists(existing)
    return overwrite or not (f.coldkey.exists() or f.coldkeypub.exists())


def create_wallet(
    name: str,
    hotkey: str,
    *,
    path: Path | str = DEFAULT_WALLET_PATH,
    password: str | None = None,
    overwrite: bool = False,
    on_mnemonic: Callable[[str, str], None] | None = None,
) -> WalletInfo:
    """Create the wallet ``name`` with hotkey ``hotkey`` under ``path``, offline, without prompts.

    ``password``: encrypt the coldkey with it (None: plain coldkey). Hotkeys are never encrypted.
    ``overwrite``: replace existing key files (coldkey AND hotkey); without it an existing hotkey
    raises :class:`WalletExists`, and an existing coldkey is kept (only the hotkey is created).
    ``on_mnemonic(kind, mnemonic)`` receives each new key's mnemonic (kind 'coldkey'/'hotkey'), the
    only way to recover the key later; it is not stored anywhere else.
    """
    import bittensor as bt

    if password is not None and password == "":
        raise WalletError("the coldkey password must not be empty (omit it for an unencrypted coldkey)")
    f = _files(name, hotkey, path)
    create_coldkey = plan_create(name, hotkey, path=path, overwrite=overwrite)
    if not create_coldkey:
        _coldkey_ss58(f)  # the kept coldkey must be readable before anything is written
    wallet = bt.Wallet(name=name, hotkey=hotkey, path=str(Path(path).expanduser()))

    def tell(kind: str) -> Callable[[str], None] | None:
        if on_mnemonic is None:
            return None
        return lambda mnemonic: on_mnemonic(kind, mnemonic)

    if create_coldkey:
        # the SDK asks "overwrite? (y/N)" on a TTY when overwrite=False and the file exists; we have
        # already decided, so pass overwrite=True only when replacing is intended or nothing is there
        wallet.create_new_coldkey(
            use_password=password is not None,
            coldkey_password=password,
            overwrite=True,
            suppress=True,
            on_mnemonic=tell("coldkey"),
        )
    wallet.create_new_hotkey(use_password=False, overwrite=True, suppress=True, on_mnemonic=tell("hotkey"))

    return WalletInfo(
        name=name,
        hotkey=hotkey,
        coldkey_ss58=_coldkey_ss58(f),
        hotkey_ss58=wallet.hotkey.ss58_address,
        path=f.wallet_dir,
        coldkey_encrypted=f.coldkey.exists() and _is_encrypted(f.coldkey),
        created_coldkey=create_coldkey,
        created_hotkey=True,
    )


# --------------------------------------------------------------------------------------------
# list
# --------------------------------------------------------------------------------------------
def _hotkey_names(hotkeys_dir: Path) -> list[str]:
    names: set[str] = set()
    for entry in hotkeys_dir.iterdir():
        if not entry.is_file() or entry.name.startswith("."):
            continue
        if entry.name.endswith("pub.txt"):
            names.add(entry.name[: -len("pub.txt")])
        elif not entry.name.endswith((".lock", ".tmp")):
            names.add(entry.name)
    names.discard("")
    return sorted(names, key=_natural_key)


def _natural_key(name: str) -> tuple:
    import re

    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p.casefold())
                 for p in re.split(r"(\d+)", name) if p)


def _read_hotkey(hotkeys_dir: Path, hk: str) -> HotkeyEntry:
    pub, key = hotkeys_dir / f"{hk}pub.txt", hotkeys_dir / hk
    source = pub if pub.exists() else key
    try:
        if source is key and _is_encrypted(key):
            return HotkeyEntry(hk, None, f"{key.name} is encrypted and {pub.name} is missing")
        return HotkeyEntry(hk, _pub_ss58(source))
    except Exception as exc:  # a broken file is reported, never fatal
        return HotkeyEntry(hk, None, f"{source.name}: {_describe(exc)}")


def _read_wallet(wallet_dir: Path) -> WalletEntry:
    coldkey, coldkeypub, hotkeys_dir = wallet_dir / "coldkey", wallet_dir / "coldkeypub.txt", wallet_dir / "hotkeys"
    errors: list[str] = []
    ss58: str | None = None
    encrypted: bool | None = None
    try:
        if coldkey.exists():
            encrypted = _is_encrypted(coldkey)
    except Exception as exc:
        errors.append(f"coldkey: {_describe(exc)}")
    try:
        if coldkeypub.exists():
            ss58 = _pub_ss58(coldkeypub)
        elif coldkey.exists() and encrypted is False:
            ss58 = _pub_ss58(coldkey)
            errors.append("coldkeypub.txt is missing (address read from the unencrypted coldkey)")
        else:
            errors.append("coldkeypub.txt is missing")
    except Exception as exc:
        errors.append(f"coldkeypub.txt: {_describe(exc)}")
    hotkeys: list[HotkeyEntry] = []
    try:
        if hotkeys_dir.is_dir():
            hotkeys = [_read_hotkey(hotkeys_dir, hk) for hk in _hotkey_names(hotkeys_dir)]
    except Exception as exc:
        errors.append(f"hotkeys/: {_describe(exc)}")
    return WalletEntry(
        name=wallet_dir.name,
        path=wallet_dir,
        coldkey_ss58=ss58,
        coldkey_encrypted=encrypted,
        hotkeys=tuple(hotkeys),
        error="; ".join(errors) or None,
    )


def list_wallets(path: Path | str = DEFAULT_WALLET_PATH) -> list[WalletEntry]:
    """Every wallet directory under ``path`` (sorted by name), read without any password.

    A missing ``path`` gives ``[]``. Malformed or unreadable files are reported in the entry's
    ``error`` (or a hotkey's), never raised.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        return []
    out: list[WalletEntry] = []
    for wallet_dir in sorted(root.iterdir(), key=lambda p: _natural_key(p.name)):
        if wallet_dir.name.startswith(".") or not wallet_dir.is_dir():
            continue
        try:
            out.append(_read_wallet(wallet_dir))
        except Exception as exc:
            out.append(WalletEntry(name=wallet_dir.name, path=wallet_dir, error=_describe(exc)))
    return out


# --------------------------------------------------------------------------------------------
# load
# --------------------------------------------------------------------------------------------
def load_identity(
    name: str, hotkey: str, path: Path | str = DEFAULT_WALLET_PATH, *, hotkey_password: str | None = None
) -> Identity:
    """The :class:`~gas.chain.base.Identity` of wallet ``name``/``hotkey``, ready to sign.

    The hotkey is loaded now (so a broken file fails here, not at the first signature). The
    coldkey's address comes from ``coldkeypub.txt``; the coldkey itself stays locked. An encrypted
    hotkey needs ``hotkey_password`` or the SDK's ``BT_PW_<path>`` environment variable; it never
    prompts.
    """
    import bittensor as bt

    f = _files(name, hotkey, path)
    if not f.wallet_dir.is_dir():
        raise WalletNotFound(f.wallet_dir, name, hotkey, "wallet directory")
    if not f.hotkey.exists():
        raise WalletNotFound(f.hotkey, name, hotkey, "hotkey file")
    if not f.coldkeypub.exists() and not f.coldkey.exists():
        raise WalletNotFound(f.coldkeypub, name, hotkey, "coldkey public file")
    wallet = bt.Wallet(name=name, hotkey=hotkey, path=str(Path(path).expanduser()))
    coldkey_ss58 = _coldkey_ss58(f)
    try:
        if _is_encrypted(f.hotkey):
            from bittensor.sp_core import get_password_from_environment

            env_var = wallet.hotkey_file.env_var_name()
            password = hotkey_password or get_password_from_environment(env_var)
            if not password:
                raise WalletLocked(f"hotkey file {f.hotkey} is encrypted: give its password (or set {env_var})")
            keypair = wallet.get_hotkey(password)
        else:
            keypair = wallet.hotkey
    except WalletError:
        raise
    except Exception as exc:
        raise WalletError(f"cannot read hotkey file {f.hotkey}: {_describe(exc)}") from exc
    return Identity(hotkey=keypair.ss58_address, coldkey=coldkey_ss58, wallet=wallet)


__all__ = [
    "DEFAULT_WALLET_PATH", "HotkeyEntry", "InvalidWalletName", "WalletEntry", "WalletError", "WalletExists",
    "WalletInfo", "WalletLocked", "WalletNotFound", "create_wallet", "list_wallets", "load_identity",
    "plan_create",
]


def coldkey_address(name: str, path: Path | str = DEFAULT_WALLET_PATH) -> str:
    """The ss58 address of a wallet's coldkey, without unlocking it (used by the dev faucet)."""
    f = _files(name, "default", path)
    if not f.wallet_dir.is_dir():
        raise WalletNotFound(f.wallet_dir, name, "default", what="wallet directory")
    return _coldkey_ss58(f)
