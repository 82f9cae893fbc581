"""Every option of every command says what it is for.

Walks both click trees (`lotledger` through cli/main.py's lazy COMMANDS table, each command
loaded as it would be when run, and `lotledger-scan`), every group and subcommand, and asserts
that each option has non-empty help text and that each command has a docstring. A user who
types `lotledger verify --help` must not meet an option with no description (issue 20 found
`--server` and `--json` undescribed there).
"""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest

from lotledger.cli.main import COMMANDS
from lotledger.cli.main import main as lotledger_main
from lotledger.cli.scan import main as scan_main


def walk(command: click.Command, path: str) -> Iterator[tuple[str, click.Command]]:
    """(path, command) for `command` and every command under it, loading lazy ones."""
    yield path, command
    if isinstance(command, click.Group):
        ctx = click.Context(command, info_name=path)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None, f"{path} {name}: listed but cannot be loaded"
            yield from walk(sub, f"{path} {name}")


def all_commands() -> list[tuple[str, click.Command]]:
    return [*walk(lotledger_main, "lotledger"), *walk(scan_main, "lotledger-scan")]


def test_the_walk_reaches_every_command_of_the_table() -> None:
    paths = {path for path, _ in all_commands()}
    for lazy in COMMANDS:
        assert f"lotledger {lazy.name}" in paths
    # and the groups' subcommands (not in the table): the walk does descend
    assert {"lotledger keys generate", "lotledger proof inclusion", "lotledger witness serve"} <= paths
    assert "lotledger-scan run" in paths


@pytest.mark.parametrize("path,command", all_commands(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_option_has_help(path: str, command: click.Command) -> None:
    assert (command.help or "").strip(), f"`{path}` has no help text (its docstring)"
    missing = [
        "/".join(param.opts)
        for param in command.params
        if isinstance(param, click.Option) and not param.hidden and not (param.help or "").strip()
    ]
    assert not missing, f"`{path}`: options without help text: {', '.join(missing)}"


@pytest.mark.parametrize("path,command", all_commands(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_argument_is_named_in_its_commands_help(path: str, command: click.Command) -> None:
    """click arguments carry no help of their own: the command's help names each (FILE, SEQ)."""
    unnamed = [
        param.human_readable_name
        for param in command.params
        if isinstance(param, click.Argument) and param.human_readable_name.upper() not in (command.help or "")
    ]
    assert not unnamed, f"`{path}`: its help does not say what {', '.join(unnamed)} is"
