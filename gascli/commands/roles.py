"""The per-role command groups.

Each role's daemon commands (start/stop/restart/logs through pm2) arrive with the issue that builds
that daemon; until then a group only has what really works today, so nothing pretends. The
generative miner's are in :mod:`gascli.commands.generator` (plus ``init-c2pa``/``verify-c2pa`` from
:mod:`gascli.commands.c2pa`).
"""

from __future__ import annotations

import typer

from gascli.commands import generator as generator_commands
from gascli.commands.c2pa import register as register_c2pa
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

generator_commands.register(generator)
register_c2pa(generator)
