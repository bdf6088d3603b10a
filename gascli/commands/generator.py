"""``gascli generator start|stop|restart|status|logs|delete|info``: run the generative miner under pm2.

``start`` checks the settings (and the wallet, the registration on the dev chain, the services)
before pm2 is asked for anything, so a typo is reported here and not as a crash loop in pm2's
logs. pm2 runs ``gen_miner.config.js`` (process ``gas-generator``, namespace ``gas``), which reads
the same env file (passed through ``GAS_ENV_FILE``).

``info`` needs no daemon: it reads the settings, asks each configured service whether it could
run (cheap: no model is loaded) and reads the task database (task counts, webhook delivery and
retry stats per validator).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from gas.config import GeneratorSettings
    from gascli.pm2 import PM2

#: The pm2 process name (see gen_miner.config.js).
PROCESS = "gas-generator"
ECOSYSTEM = "gen_miner.config.js"

EnvFileOpt = Annotated[
    Path | None,
    typer.Option("--env-file", help="Env file for the miner [default: GAS_ENV_FILE, else .env.gen_miner]."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON only.")]


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _env_file(explicit: Path | None) -> Path | None:
    from gas.config import GeneratorSettings, default_env_file

    if explicit is not None:
        return explicit.expanduser().resolve()
    found = default_env_file(GeneratorSettings)
    return found.resolve() if found is not None else None


def _settings(env_file: Path | None) -> GeneratorSettings:
    from gas.config import GeneratorSettings, SettingsError, load_settings

    try:
        return load_settings(GeneratorSettings, env_file=env_file if env_file is not None else False)
    except SettingsError as e:
        raise _fail(str(e), 2) from None


def _pm2() -> PM2:
    from gascli.pm2 import PM2, PM2Error

    try:
        return PM2()
    except PM2Error as e:
        raise _fail(str(e)) from None


def _ecosystem() -> Path:
    from gascli.pm2 import project_root

    return project_root() / ECOSYSTEM


# --------------------------------------------------------------------------------------------
# checks before start
# --------------------------------------------------------------------------------------------
def preflight(settings: GeneratorSettings, *, check_chain: bool = True) -> tuple[list[str], list[str]]:
    """Problems that would stop the miner (errors) or make it useless (warnings), found cheaply."""
    errors: list[str] = []
    warnings: list[str] = []
    from gas.chain.wallets import WalletError, load_identity

    identity = None
    try:
        identity = load_identity(settings.wallet_name, settings.wallet_hotkey, settings.wallet_path)
    except WalletError as e:
        errors.append(str(e))
    if settings.external_ip:
        from neurons.generator.miner import ExternalIpError, check_advertisable

        try:
            check_advertisable(settings.external_ip, network=settings.network)
        except ExternalIpError as e:
            errors.append(str(e))
    if identity is not None and check_chain and settings.network == "dev":
        from gas.chain import ChainError, open_from_settings

        try:
            chain = open_from_settings(settings)
            try:
                if chain.metagraph().by_hotkey(identity.hotkey) is None:
                    errors.append(
                        f"hotkey {identity.hotkey} is not registered on subnet {settings.netuid} (dev chain "
                        f"{settings.devchain}): register it with `gascli chain register --wallet-name "
                        f"{settings.wallet_name} --wallet-hotkey {settings.wallet_hotkey}`"
                    )
            finally:
                chain.close()
        except ChainError as e:
            errors.append(f"dev chain: {e}")
    services = _services_info(settings)
    if isinstance(services, str):
        warnings.append(f"cannot build the services: {services}")
    else:
        for svc in services:
            if not svc.get("available"):
                warnings.append(f"service {svc.get('name')} is unavailable: {svc.get('reason')}")
        if services and not any(s.get("available") for s in services):
            warnings.append("no service is available: the miner will answer 503 to every generation request")
        if not services:
            warnings.append("IMAGE_SERVICE and VIDEO_SERVICE are both 'none': the miner cannot generate anything")
    return errors, warnings


def _services_info(settings: GeneratorSettings) -> list[dict[str, Any]] | str:
    """Each configured service's ``info()`` (available, reason, ...), or the error building them."""
    import asyncio

    try:
        from gas.generation.services.registry import build_services

        services = build_services(settings)
    except Exception as e:  # a broken optional dependency must not hide the rest of `info`
        return f"{type(e).__name__}: {e}"
    try:
        return list(services.info())
    finally:
        asyncio.run(services.aclose())


# --------------------------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------------------------
def start(
    env_file: EnvFileOpt = None,
    skip_checks: Annotated[bool, typer.Option("--skip-checks", help="Do not check wallet/chain/services.")] = False,
) -> None:
    """Start the generative miner under pm2 (restarts it with fresh settings if it is running)."""
    path = _env_file(env_file)
    if path is not None and not path.is_file():
        raise _fail(f"env file {path} does not exist", 2)
    settings = _settings(path)
    if not skip_checks:
        errors, warnings = preflight(settings)
        for w in warnings:
            typer.echo(f"warning: {w}", err=True)
        if errors:
            for e in errors:
                typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2)
    _start_pm2(path)


def _start_pm2(path: Path | None) -> None:
    from gascli.pm2 import PM2Error

    pm2 = _pm2()
    env = {"GAS_ENV_FILE": str(path)} if path is not None else {}
    try:
        rows = pm2.start(_ecosystem(), only=[PROCESS], env=env)
    except PM2Error as e:
        raise _fail(str(e)) from None
    row = next((r for r in rows if r.name == PROCESS), None)
    if row is None:
        raise _fail(f"pm2 did not start {PROCESS}; see `gascli generator logs`")
    source = f"env file {path}" if path else "environment and defaults (no env file)"
    typer.echo(f"{PROCESS}: {row.status} (pid {row.pid or '-'}), settings from {source}")
    typer.echo("follow its start-up with `gascli generator logs -f`; check it with `gascli generator status`")


def stop() -> None:
    """Stop the miner (pm2 keeps it listed; `start` or `restart` brings it back)."""
    _pm2_action("stop", "stopped")


def restart(
    env_file: EnvFileOpt = None,
    skip_checks: Annotated[bool, typer.Option("--skip-checks", help="Do not check wallet/chain/services.")] = False,
) -> None:
    """Restart the miner, re-reading the env file (same checks as `start`)."""
    from gascli.pm2 import ProcessNotFound

    pm2 = _pm2()
    try:
        pm2.describe(PROCESS)
    except ProcessNotFound:
        raise _fail(f"{PROCESS} is not under pm2: start it with `gascli generator start`") from None
    start(env_file=env_file, skip_checks=skip_checks)


def delete() -> None:
    """Stop the miner and remove it from pm2's list."""
    _pm2_action("delete", "deleted")


def _pm2_action(action: str, done: str) -> None:
    from gascli.pm2 import PM2Error, ProcessNotFound

    pm2 = _pm2()
    try:
        getattr(pm2, action)(PROCESS)
    except ProcessNotFound:
        raise _fail(f"{PROCESS} is not under pm2 (nothing to {action})") from None
    except PM2Error as e:
        raise _fail(str(e)) from None
    typer.echo(f"{PROCESS}: {done}")


def status(as_json: JsonOpt = False) -> None:
    """Show the miner's pm2 state: status, pid, uptime, restarts, memory. Exit 1 when it is not under pm2."""
    from gascli.pm2 import PM2Error, ProcessNotFound

    pm2 = _pm2()
    try:
        info = pm2.describe(PROCESS)
    except ProcessNotFound:
        if as_json:
            typer.echo(json.dumps({"name": PROCESS, "status": "absent"}))
        else:
            typer.echo(f"{PROCESS} is not under pm2: start it with `gascli generator start`")
        raise typer.Exit(1) from None
    except PM2Error as e:
        raise _fail(str(e)) from None
    row = _process_row(info)
    if as_json:
        typer.echo(json.dumps(row, indent=2))
        return
    for key, value in row.items():
        typer.echo(f"{key:10s} {value if value is not None else '-'}")


def _process_row(info: Any) -> dict[str, Any]:
    uptime = None
    if info.status == "online" and info.uptime_ms:
        uptime = round(max(0.0, time.time() - info.uptime_ms / 1000), 1)
    return {
        "name": info.name,
        "status": info.status,
        "pid": info.pid,
        "uptime_s": uptime,
        "restarts": info.restarts,
        "memory": info.memory,
        "cpu": info.cpu,
        "out_log": info.out_log,
        "err_log": info.err_log,
    }


def logs(
    lines: Annotated[int, typer.Option("--lines", "-n", min=0, help="How many recent lines.")] = 50,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep streaming new lines (Ctrl-C stops).")] = False,
) -> None:
    """Show the miner's recent log lines (stdout then stderr), or follow them."""
    from gascli.pm2 import PM2Error

    pm2 = _pm2()
    try:
        out = pm2.logs(PROCESS, lines=lines, follow=follow)
    except PM2Error as e:
        raise _fail(str(e)) from None
    if out:
        typer.echo(out, nl=not out.endswith("\n"))


def info(env_file: EnvFileOpt = None, as_json: JsonOpt = False) -> None:
    """Settings summary, service availability (with reasons), task stats and webhook delivery stats.

    Works without the daemon: it reads the settings and the task database directly.
    """
    path = _env_file(env_file)
    if path is not None and not path.is_file():
        raise _fail(f"env file {path} does not exist", 2)
    settings = _settings(path)
    report = gather_info(settings, path)
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=str))
        return
    _print_info(report)


def gather_info(settings: GeneratorSettings, env_file: Path | None) -> dict[str, Any]:
    """What `info` shows, as a JSON-able dict."""
    from gas.generation.task_store import TaskStoreError, read_stats

    db = settings.generator_dir / "tasks.db"
    hotkey = None
    try:
        from gas.chain.wallets import WalletError, load_identity

        hotkey = load_identity(settings.wallet_name, settings.wallet_hotkey, settings.wallet_path).hotkey
    except WalletError as e:
        hotkey = f"(unreadable: {e})"
    try:
        stats: dict[str, Any] = read_stats(db)
        stats_error = None
    except TaskStoreError as e:
        stats, stats_error = {}, str(e)
    services = _services_info(settings)
    return {
        "env_file": str(env_file) if env_file else None,
        "settings": _settings_summary(settings, hotkey, db),
        "services": services if isinstance(services, list) else [],
        "services_error": services if isinstance(services, str) else None,
        "stats": stats,
        "stats_error": stats_error,
        "process": _pm2_state(),
    }


def _pm2_state() -> dict[str, Any] | None:
    """The miner's pm2 row, without starting a pm2 daemon when none runs (None when pm2 is unusable)."""
    import os

    home = Path(os.environ.get("PM2_HOME") or Path.home() / ".pm2")
    if not (home / "pm2.pid").is_file():  # any pm2 command would spawn a daemon: don't
        return {"name": PROCESS, "status": "absent"}
    try:
        from gascli.pm2 import PM2, PM2Error, ProcessNotFound

        try:
            return _process_row(PM2().describe(PROCESS))
        except ProcessNotFound:
            return {"name": PROCESS, "status": "absent"}
        except PM2Error:
            return None
    except Exception:  # pm2 missing or broken: info still works
        return None


def _settings_summary(settings: GeneratorSettings, hotkey: str | None, db: Path) -> dict[str, Any]:
    return {
        "network": settings.network,
        "netuid": settings.netuid,
        "wallet": f"{settings.wallet_name}/{settings.wallet_hotkey}",
        "hotkey": hotkey,
        "axon_port": settings.axon_port,
        "bind_host": settings.bind_host,
        "external_ip": settings.external_ip or ("127.0.0.1 (dev)" if settings.network == "dev" else "auto"),
        "image_service": settings.image_service,
        "video_service": settings.video_service,
        "max_concurrent_tasks": settings.max_concurrent_tasks,
        "task_timeout": settings.task_timeout,
        "require_validator_permit": settings.require_validator_permit,
        "min_validator_stake": settings.min_validator_stake,
        "c2pa_cert": str(settings.c2pa_cert_path),
        "c2pa_cert_exists": settings.c2pa_cert_path.is_file(),
        "task_db": str(db),
    }


def _print_info(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    s = report["settings"]
    console.print(f"[bold]Generative miner[/] ({'env file ' + report['env_file'] if report['env_file'] else 'no env file'})")
    for key, value in s.items():
        console.print(f"  {key:24s} {value}")
    proc = report.get("process")
    if proc:
        console.print(f"  {'pm2 process':24s} {proc.get('status')} (pid {proc.get('pid') or '-'})")

    table = Table(title="services")
    for col in ("name", "available", "tasks", "reason"):
        table.add_column(col)
    for svc in report["services"]:
        ok = bool(svc.get("available"))
        table.add_row(str(svc.get("name")), "[green]yes[/]" if ok else "[red]no[/]",
                      ", ".join(map(str, svc.get("supported_tasks") or svc.get("modalities") or [])),
                      str(svc.get("reason") or ""))
    console.print(table)
    if report.get("services_error"):
        console.print(f"[red]services: {report['services_error']}[/]")

    stats = report.get("stats") or {}
    if report.get("stats_error"):
        console.print(f"[red]task database: {report['stats_error']}[/]")
    tasks = stats.get("tasks") or {}
    console.print("tasks: " + ", ".join(f"{k} {v}" for k, v in tasks.items()) if tasks else "tasks: none yet")
    hooks = stats.get("webhooks") or {}
    if hooks:
        console.print("webhooks: " + ", ".join(f"{k} {v}" for k, v in hooks.items()))
    validators = stats.get("validators") or {}
    if validators:
        vt = Table(title="webhook delivery per validator")
        for col in ("validator", "endpoint", "delivered", "rejected", "failed", "retries", "attempts", "last"):
            vt.add_column(col)
        for hotkey, v in validators.items():
            attempts = ", ".join(f"{k} {n}" for k, n in (v.get("attempts") or {}).items() if n)
            vt.add_row(hotkey, str(v.get("endpoint") or "-"), str(v.get("delivered", 0)), str(v.get("rejected", 0)),
                       str(v.get("failed", 0)), str(v.get("retries", 0)), attempts or "-",
                       str(v.get("last_category") or "-"))
        console.print(vt)


def register(app: typer.Typer) -> None:
    """Add the daemon commands to the ``generator`` group."""
    app.command("start")(start)
    app.command("stop")(stop)
    app.command("restart")(restart)
    app.command("status")(status)
    app.command("logs")(logs)
    app.command("delete")(delete)
    app.command("info")(info)
