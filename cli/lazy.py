"""A click group that imports a command's module only when that command is run, or its own
help asked for (click's documented LazyGroup pattern).

Why: a command that imported every other command's module started in about a second (the
server, the trace index, numpy), `--help` included. The group keeps a table of (name, where
the command is, its short help), so `lotledger --help` lists the commands from the table
without importing any of them. tests/cli/test_startup.py checks the table against the real
commands, and that the help paths and client commands import nothing they do not run.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from gettext import gettext
from typing import Any, NamedTuple

import click


class LazyCommand(NamedTuple):
    """A command by import path: `target` is "module:attribute"; `short_help` is what click
    shows for it in its group's listing (the first sentence of its docstring)."""

    name: str
    target: str
    short_help: str

    def load(self) -> click.Command:
        """Import the command. Raises ImportError, or TypeError if the target is not one."""
        module, _, attribute = self.target.partition(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.target} is not a click command")
        return command


class LazyGroup(click.Group):
    """A group whose commands (besides any added the usual way) are LazyCommands."""

    def __init__(self, *args: Any, lazy_commands: Iterable[LazyCommand] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = {c.name: c for c in lazy_commands}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy_commands:
            self.add_command(self.lazy_commands[cmd_name].load(), cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's own listing (what Group.format_commands does), with the table's short
        help standing in for each command not imported yet, shortened to fit as click does."""
        commands: list[tuple[str, click.Command]] = []
        for name in self.list_commands(ctx):
            command = self.commands.get(name)
            if command is None and name in self.lazy_commands:
                command = click.Command(name, help=self.lazy_commands[name].short_help)
            if command is None or command.hidden:
                continue
            commands.append((name, command))
        if commands:
            limit = formatter.width - 6 - max(len(name) for name, _ in commands)
            rows = [(name, command.get_short_help_str(limit)) for name, command in commands]
            with formatter.section(gettext("Commands")):
                formatter.write_dl(rows)
