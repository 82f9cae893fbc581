"""`serve --config FILE` and `serve --print-config`: the limits file, read and shown.

The limits themselves (keys, defaults, checks) live in lotledger.rpc.limits; this module
only reads the file and prints the effective values as TOML on stdout.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from lotledger.cli.output import ExitCode, fail

if TYPE_CHECKING:
    from lotledger.rpc.limits import Limits

F = TypeVar("F", bound=Callable[..., Any])


def limits_options(fn: F) -> F:
    fn = click.option(
        "--print-config",
        is_flag=True,
        help="Print the effective limits (defaults, then --config) as TOML on stdout and exit.",
    )(fn)
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        envvar="LOTLEDGER_CONFIG",
        metavar="FILE",
        help="A TOML file of limits ([transport], [append], [time]); unset keys keep their defaults.",
    )(fn)


def load_limits(path: Path | None) -> Limits:
    """The defaults, overridden by the file at `path`. A bad file exits with USAGE (2)."""
    from lotledger.ledger.errors import ConfigError
    from lotledger.rpc.limits import Limits, parse_limits

    if path is None:
        return Limits()
    try:
        return parse_limits(path.read_text(encoding="utf-8"))
    except ConfigError as e:
        fail(f"{path}: {e.message}", ExitCode.USAGE)
    except UnicodeDecodeError as e:
        fail(f"{path}: not UTF-8 text ({e})", ExitCode.USAGE)


def print_limits(limits: Limits) -> None:
    from lotledger.rpc.limits import limits_toml

    click.echo(limits_toml(limits), nl=False)
