"""``gascli <role> config``: show the settings a role's daemon would run with, and where each came from.

One implementation serves every role, so the validator, the generative miner and the discriminator
commands read settings exactly as their daemons will (gas.config.load_settings).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def add_config_command(app: typer.Typer, role: str) -> None:
    """Register ``config`` on a role's sub-app."""

    @app.command("config")
    def show_config(
        env_file: Annotated[
            Path | None,
            typer.Option("--env-file", help="Env file to read instead of the role's default (.env.<role>)."),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON only.")] = False,
    ) -> None:
        """Show the resolved settings (flag > env var > env file > default) and each value's source."""
        from rich.console import Console
        from rich.table import Table

        from gas.config import ROLE_SETTINGS, SettingsError, default_env_file, env_var_name, load_settings
        from gas.config import setting_sources as sources_of

        cls = ROLE_SETTINGS[role]
        path = env_file if env_file is not None else default_env_file(cls)
        try:
            settings = load_settings(cls, env_file=path if path is not None else False)
        except SettingsError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None
        sources = sources_of(settings, env_file=path)
        values = settings.model_dump(mode="json")
        if as_json:
            typer.echo(json.dumps({"role": role, "env_file": str(path) if path else None,
                                   "settings": values, "sources": sources}, indent=2))
            return
        table = Table(title=f"{role} settings" + (f" (env file: {path})" if path else " (no env file)"))
        table.add_column("setting")
        table.add_column("variable", style="dim")
        table.add_column("value")
        table.add_column("source", style="dim")
        for name, value in values.items():
            table.add_row(name, env_var_name(name), json.dumps(value) if not isinstance(value, str) else value,
                          sources[name])
        Console().print(table)
