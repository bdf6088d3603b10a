"""``gascli``: the command line for validators, generative miners and discriminative miners.

Imports stay light here (typer only); each command imports what it needs when it runs, so
``gascli --help`` starts fast.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from gascli.aliases import alias_group
from gascli.commands import bench, chain, data, discriminator, roles, wallet

ROOT_ALIASES: dict[str, tuple[str, ...]] = {
    "validator": ("vali", "v"),
    "generator": ("gen", "g"),
    "discriminator": ("d",),
}

app = typer.Typer(
    name="gascli",
    cls=alias_group(ROOT_ALIASES),
    help="GAS (Bittensor subnet 34) node software: validator, generative miner, discriminative miner.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)
app.add_typer(roles.validator, name="validator")
app.add_typer(roles.generator, name="generator")
app.add_typer(discriminator.app, name="discriminator")
app.add_typer(bench.app, name="bench")
app.add_typer(chain.app, name="chain")
app.add_typer(data.app, name="data")
app.add_typer(wallet.app, name="wallet")


def _pm2():
    from gascli.pm2 import PM2, PM2Error

    try:
        return PM2()
    except PM2Error as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None


@app.command()
def status(
    all_namespaces: Annotated[
        bool, typer.Option("--all", help="Show every pm2 process, not only the project's.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON only.")] = False,
) -> None:
    """List the project's pm2 processes (namespace 'gas'): status, pid, restarts, memory."""
    from gascli.pm2 import NAMESPACE, PM2Error

    pm2 = _pm2()
    try:
        procs = pm2.jlist() if all_namespaces else pm2.project_processes()
    except PM2Error as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps([{k: v for k, v in p.__dict__.items() if k != "raw"} for p in procs], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not procs:
        console.print(f"No GAS processes under pm2 (namespace '{NAMESPACE}', PM2_HOME {pm2.env.get('PM2_HOME', '~/.pm2')}).")
        return
    table = Table(title="GAS processes (pm2)")
    for col in ("name", "id", "status", "pid", "restarts", "memory", "cpu %"):
        table.add_column(col)
    colours = {"online": "green", "stopped": "yellow", "errored": "red"}
    for p in procs:
        mem = f"{p.memory / 2**20:.0f} MiB" if p.memory else "-"
        table.add_row(
            p.name, str(p.pm_id), f"[{colours.get(p.status, 'white')}]{p.status}[/]", str(p.pid or "-"),
            str(p.restarts), mem, f"{p.cpu:.0f}" if p.cpu is not None else "-",
        )
    console.print(table)


@app.command()
def logs(
    name: Annotated[str, typer.Argument(help="pm2 process name (see 'gascli status').")],
    lines: Annotated[int, typer.Option("--lines", "-n", min=0, help="How many recent lines.")] = 50,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep streaming new lines (Ctrl-C stops).")] = False,
) -> None:
    """Show a pm2 process's recent log lines, or follow them."""
    from gascli.pm2 import PM2Error

    pm2 = _pm2()
    try:
        out = pm2.logs(name, lines=lines, follow=follow)
    except PM2Error as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    if out:
        typer.echo(out, nl=not out.endswith("\n"))


@app.command()
def version(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON only.")] = False,
) -> None:
    """Print the versions of gas-node and the stack it runs on (without importing torch)."""
    import importlib.metadata as md
    import platform

    def ver(dist: str) -> str | None:
        try:
            return md.version(dist)
        except md.PackageNotFoundError:
            return None

    info = {
        "gas-node": ver("gas-node"),
        "python": platform.python_version(),
        "torch": ver("torch"),
        "bittensor": ver("bittensor"),
        "platform": platform.platform(),
    }
    if as_json:
        typer.echo(json.dumps(info))
    else:
        for k, v in info.items():
            typer.echo(f"{k:10s} {v or 'not installed'}")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
