"""``gascli chain``: inspect any GAS chain, and administer the embedded dev chain.

Reads (status, metagraph, commitments, weights) work on every network: the dev chain directly,
the real ones through the bittensor backend. Admin commands (init, fund, stake) exist only on the
dev chain and refuse other networks. Writes (register, commit, set-weights, serve-axon) sign with
the wallet given by --wallet-name/--wallet-hotkey.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from gas.config import GasSettings

app = typer.Typer(
    name="chain",
    help="Inspect the chain (any network) and run the embedded dev chain (network 'dev').",
    no_args_is_help=True,
)

# -- shared options -----------------------------------------------------------------------------
NetworkOpt = Annotated[
    str | None,
    typer.Option("--network", help="dev, local, test, finney or a ws(s):// URL [env GAS_NETWORK, default dev]."),
]
NetuidOpt = Annotated[int | None, typer.Option("--netuid", help="Subnet id [env GAS_NETUID, default from network].")]
DevNameOpt = Annotated[
    str | None, typer.Option("--devchain", help="Dev chain file name under <cache>/devchain [env GAS_DEVCHAIN].")
]
WalletNameOpt = Annotated[str | None, typer.Option("--wallet-name", help="Wallet (coldkey) name [env GAS_WALLET_NAME].")]
WalletHotkeyOpt = Annotated[str | None, typer.Option("--wallet-hotkey", help="Hotkey name [env GAS_WALLET_HOTKEY].")]
WalletPathOpt = Annotated[Path | None, typer.Option("--wallet-path", help="Wallet directory [env GAS_WALLET_PATH].")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON only.")]


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _settings(**overrides: Any) -> GasSettings:
    from gas.config import GasSettings, SettingsError, load_settings

    try:
        return load_settings(GasSettings, overrides=overrides)
    except SettingsError as e:
        raise _fail(str(e), 2) from None


@contextmanager
def _chain(settings: GasSettings, *, signer: bool = False):
    """Open the settings' chain (with the wallet as identity when ``signer``), mapping errors to exits."""
    from gas.chain import ChainError, open_from_settings

    identity = None
    if signer:
        from gas.chain.wallets import WalletError, load_identity

        try:
            identity = load_identity(settings.wallet_name, settings.wallet_hotkey, path=settings.wallet_path)
        except WalletError as e:
            raise _fail(str(e)) from None
    try:
        chain = open_from_settings(settings, identity=identity)
    except ChainError as e:
        raise _fail(str(e)) from None
    try:
        yield chain
    except ChainError as e:
        raise _fail(str(e)) from None
    except ValueError as e:  # a bad argument the backend refused before touching state
        raise _fail(str(e), 2) from None
    finally:
        chain.close()


def _dev_only(settings: GasSettings, action: str) -> None:
    if settings.network != "dev":
        from gas.chain import DevOnly

        raise _fail(str(DevOnly(action, settings.network)), 2)


def _dev_path(settings: GasSettings) -> Path:
    from gas.chain.devchain import DevChain

    return DevChain.default_path(settings.cache_dir, settings.devchain)


def _history(chain: Any, method: str, what: str, settings: GasSettings) -> list:
    """The dev chain's history records; other backends keep none, which is a usage error."""
    if not hasattr(chain, method):
        raise _fail(f"{what} history is kept only by the dev chain, not on {settings.network!r}", 2)
    return getattr(chain, method)()


def _print_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, default=str))


# -- dev chain admin ------------------------------------------------------------------------------
@app.command()
def init(
    network: NetworkOpt = None,
    netuid: NetuidOpt = None,
    devchain: DevNameOpt = None,
    tempo: Annotated[int, typer.Option(min=1, help="Blocks per tempo (incentive is computed once a tempo).")] = 360,
    block_time: Annotated[
        float | None,
        typer.Option("--block-time", min=0.01,
                     help="Seconds per block for a new chain file: 12 like the real chain (default), or e.g. 0.25 for demos."),
    ] = None,
    max_uids: Annotated[int, typer.Option("--max-uids", min=1, max=4096, help="Slots on the subnet.")] = 256,
    immunity_period: Annotated[
        int | None, typer.Option("--immunity-period", min=0, help="Blocks a new neuron cannot be deregistered.")
    ] = None,
    weights_rate_limit: Annotated[
        int | None, typer.Option("--weights-rate-limit", min=0, help="Blocks between two set_weights of a hotkey.")
    ] = None,
    exist_ok: Annotated[bool, typer.Option("--exist-ok", help="Succeed if the subnet already exists.")] = False,
) -> None:
    """Create a dev subnet (and its SQLite file) with the given tempo, block time and size."""
    from gas.chain import ChainError
    from gas.chain.devchain import DevChain

    settings = _settings(network=network, netuid=netuid, devchain=devchain)
    _dev_only(settings, "init")
    path = _dev_path(settings)
    extra = {k: v for k, v in {"immunity_period": immunity_period, "weights_rate_limit": weights_rate_limit,
                               "block_time": block_time}.items() if v is not None}
    try:
        chain = DevChain.init(path, netuid=settings.netuid, tempo=tempo, max_uids=max_uids, exist_ok=exist_ok, **extra)
    except ChainError as e:
        raise _fail(str(e)) from None
    except ValueError as e:
        raise _fail(str(e), 2) from None
    with chain:
        info = chain.subnet_info()
        seconds = chain.block_time()
    typer.echo(f"dev subnet {info.netuid} ready in {path} (tempo {info.tempo}, block time {seconds:g}s, "
               f"max_uids {info.max_uids})")


@app.command()
def fund(
    amount: Annotated[float, typer.Argument(min=0.0, help="TAO to mint into the coldkey's dev balance.")],
    coldkey: Annotated[str | None, typer.Option("--coldkey", help="ss58 address (default: the wallet's coldkey).")] = None,
    wallet_name: WalletNameOpt = None,
    wallet_path: WalletPathOpt = None,
    network: NetworkOpt = None,
    netuid: NetuidOpt = None,
    devchain: DevNameOpt = None,
) -> None:
    """Dev only: the faucet. Credit TAO to a coldkey."""
    settings = _settings(network=network, netuid=netuid, devchain=devchain, wallet_name=wallet_name,
                         wallet_path=wallet_path)
    _dev_only(settings, "fund")
    if coldkey is None:
        from gas.chain.wallets import WalletError, coldkey_address

        try:
            coldkey = coldkey_address(settings.wallet_name, path=settings.wallet_path)
        except WalletError as e:
            raise _fail(str(e)) from None
    with _chain(settings) as chain:
        balance = chain.fund(coldkey, amount)
    typer.echo(f"funded {coldkey} with {amount:g} TAO; balance {balance:g} TAO")


@app.command()
def stake(
    amount: Annotated[float, typer.Argument(min=0.0, help="TAO to move from the coldkey's balance to the hotkey.")],
    wallet_name: WalletNameOpt = None,
    wallet_hotkey: WalletHotkeyOpt = None,
    wallet_path: WalletPathOpt = None,
    network: NetworkOpt = None,
    netuid: NetuidOpt = None,
    devchain: DevNameOpt = None,
) -> None:
    """Dev only: stake TAO from the wallet's coldkey onto its hotkey (validator permits follow stake)."""
    settings = _settings(network=network, netuid=netuid, devchain=devchain, wallet_name=wallet_name,
                         wallet_hotkey=wallet_hotkey, wallet_path=wallet_path)
    _dev_only(settings, "stake")
    with _chain(settings, signer=True) as chain:
        total = chain.add_stake(chain.identity.hotkey, amount)
    typer.echo(f"staked {amount:g} TAO on {settings.wallet_name}/{settings.wallet_hotkey}; stake now {total:g} TAO")


# -- writes ---------------------------------------------------------------------------------------
@app.command()
def register(
    wallet_name: WalletNameOpt = None,
    wallet_hotkey: WalletHotkeyOpt = None,
    wallet_path: WalletPathOpt = None,
    network: NetworkOpt = None,
    netuid: NetuidOpt = None,
    devchain: DevNameOpt = None,
) -> None:
    """Register the wallet's hotkey on the subnet (burned registration, paid by the coldkey)."""
    settings = _settings(network=network, netuid=netuid, devchain=devchain, wallet_name=wallet_name,
                         wallet_hotkey=wallet_hotkey, wallet_path=wallet_path)
    with _chain(settings, signer=True) as chain:
        uid = chain.register()
        hotkey = chain.identity.hotkey
    typer.echo(f"registered {hotkey} on subnet {settings.netuid} as uid {uid}")


@app.command()
def commit(
    data: Annotated[str, typer.Argument(help="Text to commit (UTF-8); use --hex for raw bytes.")],
    hex_data: Annotated[bool, typer.Option("--hex", help="DATA is hex-encoded bytes.")] = False,
    wallet_name: WalletNameOpt = None,
    wallet_hotkey: WalletHotkeyOpt = None,
    wallet_path: WalletPathOpt = None,
    network: NetworkOpt = None,
    netuid: NetuidOpt = None,
    devchain: DevNameOpt = None,
) -> None:
    """Set the hotkey's commitment (the chain keeps one per hotkey; size and rate limited)."""
    settings = _settings(network=network, netuid=netuid, devchain=devchain, wallet_name=wallet_name,
                         wallet_hotkey=wallet_hotkey, wallet_path=wallet_path)
    try:
        payload = bytes.fromhex(data) if hex_data else data.encode("utf-8")
    except ValueError:
        raise _fail("DATA is not valid hex", 2) from None
    with _chain(settings, signer=True) as chain:
        chain.set_commitment(payload)
    typer.echo(f"committed {len(payload)} bytes for {settings.wallet_name}/{settings.wallet_hotkey}")


def _floats(text: str, what: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise _fail(f"{what} must be comma-separated numbers, got {text!r}", 2) from None


@app.command("set-weights")
def set_weights(
    uids: Annotated[str, typer.Option("--uids", help="Comma-separated uids, e.g. 0,1,2.")],
    weights: Annotated[str, typer.Option("--weights", help="Comma-separated weights (normalised by the chain).")],
    version_key: Annotated[int, typer.Option("--version-key", min=0, help="Weights version key.")] = 0,
    wallet_name: WalletNameOpt = None,
    wallet_hotkey: WalletHotkeyOpt = None,
    wallet_path: WalletPathOpt = None,
    network: NetworkOpt = None,
    netuid: NetuidOpt = None,
    devchain: DevNameOpt = None,
) -> None:
    """Set weights as the wallet's hotkey (needs a validator permit; rate limited)."""
    settings = _settings(network=network, netuid=netuid, devchain=devchain, wallet_name=wallet_name,
                         wallet_hotkey=wallet_hotkey, wallet_path=wallet_path)
    uid_list = [int(u) for u in _floats(uids, "--uids")]
    weight_list = _floats(weights, "--weights")
    with _chain(settings, signer=True) as chain:
        result = chain.set_weights(uid_list, weight_list, version_key)
    if not result.success:
        raise _fail(f"set_weights failed: {result.message}")
    typer.echo(f"weights set at block {result.block}: {result.message}".rstrip(": "))


@app.command("serve-axon")
def serve_axon(
    ip: Annotated[str, typer.Option("--ip", help="Routable IP address to publish (not 0.0.0.0).")],
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to publish.")],
    wallet_name: WalletNameOpt = None,
    wallet_hotkey: WalletHotkeyOpt = None,
    wallet_path: WalletPathOpt = None,
    network: NetworkOpt = None,
    netuid: NetuidOpt = None,
    devchain: DevNameOpt = None,
) -> None:
    """Publish the hotkey's axon (ip:port) on chain."""
    settings = _settings(network=network, netuid=netuid, devchain=devchain, wallet_name=wallet_name,
                         wallet_hotkey=wallet_hotkey, wallet_path=wallet_path)
    with _chain(settings, signer=True) as chain:
        chain.serve_axon(ip, port)
    typer.echo(f"axon {ip}:{port} published for {settings.wallet_name}/{settings.wallet_hotkey}")


# -- reads ----------------------------------------------------------------------------------------
@app.command()
def status(network: NetworkOpt = None, netuid: NetuidOpt = None, devchain: DevNameOpt = None, as_json: JsonOpt = False) -> None:
    """Network, current block, block time and neuron count."""
    settings = _settings(network=network, netuid=netuid, devchain=devchain)
    with _chain(settings) as chain:
        mg = chain.metagraph()
        info = {
            "network": settings.network,
            "netuid": settings.netuid,
            "block": chain.block(),
            "block_time_s": chain.block_time(),
            "neurons": mg.n,
            "validators": len(mg.validators),
            "tempo": mg.tempo,
        }
        if settings.network == "dev":
            info["file"] = str(_dev_path(settings))
    if as_json:
        _print_json(info)
        return
    for k, v in info.items():
        typer.echo(f"{k:13s} {v}")


@app.command()
def metagraph(network: NetworkOpt = None, netuid: NetuidOpt = None, devchain: DevNameOpt = None, as_json: JsonOpt = False) -> None:
    """The subnet's neurons: uid, hotkey, stake, permit, axon, incentive, last_update."""
    from dataclasses import asdict

    settings = _settings(network=network, netuid=netuid, devchain=devchain)
    with _chain(settings) as chain:
        mg = chain.metagraph()
    if as_json:
        _print_json({"netuid": mg.netuid, "block": mg.block, "neurons": [asdict(n) for n in mg.neurons]})
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"subnet {mg.netuid} at block {mg.block} ({mg.n} neurons)")
    for col, justify in (("uid", "right"), ("hotkey", "left"), ("stake τ", "right"), ("permit", "center"),
                         ("axon", "left"), ("incentive", "right"), ("emission", "right"), ("last_update", "right")):
        table.add_column(col, justify=justify)
    for n in mg.neurons:
        table.add_row(str(n.uid), n.hotkey, f"{n.stake:,.4f}", "✓" if n.validator_permit else "",
                      n.axon or "", f"{n.incentive:.4f}", f"{n.emission:.4f}", str(n.last_update))
    Console().print(table)


def _models(data: bytes, hotkey: str) -> dict[str, dict[str, str]]:
    """The detector packages a GAS commitment names (empty when it is not one)."""
    from gas.submissions.commitment import decode_commitment

    return {m.value: {"sha256": e.package_sha256, "store": e.store_uri, "ref": e.ref}
            for m, e in decode_commitment(data, hotkey, quiet=True).items()}


@app.command()
def commitments(
    network: NetworkOpt = None,
    netuid: NetuidOpt = None,
    devchain: DevNameOpt = None,
    history: Annotated[bool, typer.Option("--history", help="Every accepted commitment, oldest first (dev).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Each hotkey's current commitment: text (hex when not UTF-8) and the detector models it names."""
    from gas.chain.base import Commitment

    settings = _settings(network=network, netuid=netuid, devchain=devchain)
    with _chain(settings) as chain:
        if history:
            rows = [(r.hotkey, Commitment(r.block, r.data))
                    for r in _history(chain, "commitment_history", "commitment", settings)]
        else:
            rows = sorted(chain.commitments().items())
    out = [{"hotkey": hk, "block": c.block, "text": c.text, "hex": c.data.hex(), "models": _models(c.data, hk)}
           for hk, c in rows]
    if as_json:
        _print_json(out)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"commitments on subnet {settings.netuid}" + (" (history)" if history else "") + f" ({len(out)})")
    for col in ("hotkey", "block", "models", "data"):
        table.add_column(col, overflow="fold")
    for r in out:
        models = "\n".join(f"{m}: {e['sha256'][:16]}…" for m, e in r["models"].items())
        table.add_row(r["hotkey"], str(r["block"]), models,
                      r["text"] if r["text"] is not None else f"0x{r['hex']} (not UTF-8)")
    Console().print(table)


@app.command()
def weights(
    network: NetworkOpt = None,
    netuid: NetuidOpt = None,
    devchain: DevNameOpt = None,
    history: Annotated[bool, typer.Option("--history", help="Every accepted set_weights, not only the current rows.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Weights set by validators: each setter's current row (uid: weight, summing to 1), or the history."""
    settings = _settings(network=network, netuid=netuid, devchain=devchain)
    with _chain(settings) as chain:
        if history:
            rows = [{"block": r.block, "uid": r.uid, "hotkey": r.hotkey, "weights": r.weights}
                    for r in _history(chain, "weights_history", "weight", settings)]
        else:
            mg = chain.metagraph()
            rows = []
            for uid, row in sorted(chain.weights().items()):
                n = mg.by_uid(uid)
                rows.append({"block": n.last_update if n else None, "uid": uid, "hotkey": n.hotkey if n else None,
                             "weights": row})
    out = [{**r, "weights": {str(k): float(v) for k, v in sorted(r["weights"].items())}} for r in rows]
    if as_json:
        _print_json(out)
        return
    from rich.console import Console
    from rich.table import Table

    title = f"weights on subnet {settings.netuid}" + (" (history)" if history else "")
    table = Table(title=title)
    for col in ("block" if history else "last update", "uid", "hotkey", "weights (uid: w)"):
        table.add_column(col)
    for r in out:
        table.add_row(str(r["block"]), str(r["uid"]), r["hotkey"] or "?",
                      ", ".join(f"{k}: {v:.4f}" for k, v in r["weights"].items()))
    Console().print(table)
