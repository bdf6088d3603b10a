"""Command aliases for typer apps (``gascli v`` = ``gascli vali`` = ``gascli validator``).

Click has no aliases, so :class:`AliasGroup` resolves them in ``get_command`` and, while help is
being rendered, shows each command once as ``validator (vali, v)`` instead of listing the aliases
as commands of their own.
"""

from __future__ import annotations

import copy

import click
from typer.core import TyperGroup


class AliasGroup(TyperGroup):
    #: canonical command name -> its aliases; set by :func:`alias_group`.
    aliases: dict[str, tuple[str, ...]] = {}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._rendering_help = False

    def resolve(self, name: str) -> str:
        for canonical, names in self.aliases.items():
            if name in names:
                return canonical
        return name

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, self.resolve(cmd_name))
        if cmd is not None and self._rendering_help and self.aliases.get(cmd.name or ""):
            shown = copy.copy(cmd)
            shown.name = f"{cmd.name} ({', '.join(self.aliases[cmd.name or ''])})"
            return shown
        return cmd

    def resolve_command(self, ctx: click.Context, args: list[str]):
        # Report the canonical name, so usage lines and ctx.info_name read "validator".
        name, cmd, rest = super().resolve_command(ctx, args)
        return (cmd.name if cmd is not None else name), cmd, rest

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self._rendering_help = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._rendering_help = False


def alias_group(aliases: dict[str, tuple[str, ...]]) -> type[AliasGroup]:
    """A group class with these aliases, for ``typer.Typer(cls=alias_group({...}))``."""
    taken: set[str] = set()
    for canonical, names in aliases.items():
        clash = taken.intersection((canonical, *names))
        if clash:
            raise ValueError(f"alias {sorted(clash)[0]!r} is used twice")
        taken.update((canonical, *names))
    return type("AliasGroup", (AliasGroup,), {"aliases": dict(aliases)})
