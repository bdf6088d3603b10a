"""The per-role command groups.

Each role's daemon commands (start/stop/restart/logs through pm2) arrive with the issue that builds
that daemon; until then a group only has what really works today, so nothing pretends.
"""

from __future__ import annotations

import typer

from gascli.commands.settings_view import add_config_command

validator = typer.Typer(
    name="validator",
    help="Validator: challenge generators, verify media, benchmark detectors, set weights.",
    no_args_is_help=True,
)
generator = typer.Typer(
    name="generator",
    help="Generative miner: a signed HTTP server that generates media on request.",
    no_args_is_help=True,
)

for _app, _role in ((validator, "validator"), (generator, "generator")):
    add_config_command(_app, _role)
