"""``gascli wallet``: create and list bittensor wallets offline (the layout btcli reads).

The wallet directory is ``--wallet-path``, else ``$GAS_WALLET_PATH``, else ``~/.bittensor/wallets``
(the same default as GasSettings.wallet_path). The bittensor SDK and rich are imported inside the
commands so that ``gascli --help`` stays fast.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="wallet",
    help="Wallets: create coldkey/hotkey pairs offline and list the ones on disk (btcli layout).",
    no_args_is_help=True,
)

#: Exit code for bad usage (same as click's usage errors).
EXIT_USAGE = 2
#: Exit code when the command could not do its job (existing keys, unreadable files).
EXIT_FAILED = 1

WalletPath = Annotated[
    Path | None,
    typer.Option(
        "--wallet-path",
        envvar="GAS_WALLET_PATH",
        help="Directory holding wallets [default: $GAS_WALLET_PATH or ~/.bittensor/wallets].",
        show_default=False,
    ),
]


def _wallet_path(path: Path | None) -> Path:
    if path is None:
        return Path("~/.bittensor/wallets").expanduser()
    return Path(os.path.expandvars(str(path))).expanduser()


def _stdin_is_tty() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo("error: " + " ".join(message.split()), err=True)
    return typer.Exit(code)


@app.callback()
def _wallet() -> None:
    """Wallets: create coldkey/hotkey pairs offline and list the ones on disk (btcli layout)."""


@app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", "-n", help="Wallet (coldkey) name.")],
    hotkey: Annotated[str, typer.Option("--hotkey", "-k", help="Hotkey name.")],
    no_password: Annotated[
        bool, typer.Option("--no-password", help="Store the coldkey unencrypted (no prompt).")
    ] = False,
    password_env: Annotated[
        str | None,
        typer.Option("--password-env", metavar="VAR", help="Read the coldkey password from this env variable."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace existing key files (coldkey and hotkey).")
    ] = False,
    hide_mnemonic: Annotated[
        bool, typer.Option("--hide-mnemonic", help="Do not print the new keys' recovery phrases.")
    ] = False,
    wallet_path: WalletPath = None,
) -> None:
    """Create a wallet offline: a coldkey (unless it exists) and a hotkey.

    An existing hotkey is never replaced without --overwrite. When the coldkey exists but the
    hotkey does not, only the hotkey is created. The coldkey is encrypted with a password (asked
    twice, or read from --password-env) unless --no-password is given; hotkeys are never encrypted.
    """
    if no_password and password_env:
        raise _fail("give either --no-password or --password-env, not both", EXIT_USAGE)
    password: str | None = None
    if password_env:
        password = os.environ.get(password_env)
        if not password:
            raise _fail(f"environment variable {password_env} is unset or empty (it should hold the "
                        "coldkey password)", EXIT_USAGE)

    from gas.chain.wallets import InvalidWalletName, WalletError, create_wallet, plan_create

    path = _wallet_path(wallet_path)
    try:
        needs_coldkey = plan_create(name, hotkey, path=path, overwrite=overwrite)  # fail before prompting
    except InvalidWalletName as e:
        raise _fail(str(e), EXIT_USAGE) from None
    except WalletError as e:
        raise _fail(str(e), EXIT_FAILED) from None
    if not no_password and password is None and needs_coldkey:
        if not _stdin_is_tty():
            raise _fail("stdin is not a terminal, so the coldkey password cannot be asked: pass "
                        "--no-password or --password-env VAR", EXIT_USAGE)
        password = typer.prompt("Coldkey password", hide_input=True, confirmation_prompt=True)
        if not password:
            raise _fail("the password must not be empty (use --no-password for none)", EXIT_USAGE)

    mnemonics: list[tuple[str, str]] = []
    try:
        info = create_wallet(name, hotkey, path=path, password=password, overwrite=overwrite,
                             on_mnemonic=lambda kind, words: mnemonics.append((kind, words)))
    except WalletError as e:
        raise _fail(str(e), EXIT_FAILED) from None

    from rich.console import Console
    from rich.markup import escape
    from rich.panel import Panel
    from rich.table import Table

    console = Console()
    table = Table(title=f"wallet {escape(info.name)} ({escape(str(info.path))})", show_header=True)
    table.add_column("key", no_wrap=True)
    table.add_column("ss58 address", no_wrap=True, min_width=48)
    table.add_column("status")
    cold_status = ("new" if info.created_coldkey else "kept") + (
        ", encrypted" if info.coldkey_encrypted else ", unencrypted")
    table.add_row(f"coldkey {escape(info.name)}", info.coldkey_ss58, cold_status)
    table.add_row(f"hotkey {escape(info.hotkey)}", info.hotkey_ss58, "new")
    console.print(table)
    if mnemonics and not hide_mnemonic:
        lines = "\n".join(f"{kind}: {words}" for kind, words in mnemonics)
        console.print(Panel(lines, title="recovery phrases: write them down, keep them secret",
                            border_style="yellow"))


@app.command("list")
def list_(
    wallet_path: WalletPath = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON only.")] = False,
) -> None:
    """List the wallets on disk: coldkey address and hotkeys (never asks for a password)."""
    from gas.chain.wallets import list_wallets

    path = _wallet_path(wallet_path)
    entries = list_wallets(path)
    if as_json:
        typer.echo(json.dumps({"wallet_path": str(path), "wallets": [e.to_dict() for e in entries]}, indent=2))
        return

    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    if not entries:
        console.print(f"no wallets under {escape(str(path))} (create one with `gascli wallet create`)")
        return
    table = Table(title=f"wallets in {escape(str(path))}", show_header=True)
    table.add_column("wallet")
    table.add_column("key", no_wrap=True)
    table.add_column("ss58 address", no_wrap=True, min_width=48)
    table.add_column("note")
    problems: list[str] = []
    for i, e in enumerate(entries):
        last = i == len(entries) - 1
        if e.coldkey_encrypted is None:
            cold_note = "public key only" if e.coldkey_ss58 else ""
        else:
            cold_note = "encrypted" if e.coldkey_encrypted else "unencrypted"
        if e.error:
            problems.append(f"{e.name}: {e.error}")
            cold_note = "[red]problem[/red]" + (f", {cold_note}" if cold_note else "")
        table.add_row(escape(e.name), "coldkey", escape(e.coldkey_ss58 or "?"), cold_note,
                      end_section=not e.hotkeys and not last)
        for j, h in enumerate(e.hotkeys):
            if h.error:
                problems.append(f"{e.name}/hotkeys/{h.name}: {h.error}")
            table.add_row("", f"hotkey {escape(h.name)}", escape(h.ss58 or "?"),
                          "[red]problem[/red]" if h.error else "",
                          end_section=j == len(e.hotkeys) - 1 and not last)
    console.print(table)
    for line in problems:
        console.print(f"[red]problem[/red] {escape(line)}", soft_wrap=True)
