"""Exit codes, output and error handling shared by every command.

stdout carries data only (one JSON document with --json); people's text and progress go to
stderr. Every failure ends with one line `error: <reason>` and an exit code from ExitCode,
never a traceback.
"""

from __future__ import annotations

import enum
import functools
import os
import sys
import time
from collections.abc import Callable
from typing import Any, NoReturn, ParamSpec, TypeVar

import click

P = ParamSpec("P")
R = TypeVar("R")


class ExitCode(enum.IntEnum):
    OK = 0
    FAILED = 1  # verification failed, or the server refused what we sent
    USAGE = 2  # bad arguments or input files
    UNREACHABLE = 3  # cannot reach the source (server down, data directory unreadable)


class CommandFailed(Exception):
    """A command's own check of its arguments or result failed (`fail`); only cli/ raises it."""

    def __init__(self, message: str, code: ExitCode = ExitCode.FAILED):
        super().__init__(message)
        self.code = code


def fail(message: str, code: ExitCode = ExitCode.FAILED) -> NoReturn:
    raise CommandFailed(message, code)


def note(message: str) -> None:
    """A line for people, on stderr."""
    click.echo(message, err=True)


def emit_json(data: Any) -> None:
    import json

    click.echo(json.dumps(data, indent=2, sort_keys=False))


def handles_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn our errors into one line on stderr and the right exit code: the one map from
    errors to exit codes. The drivers below the CLI (audit/, ledger/witness/http.py) raise
    lotledger errors and never exit; a RequestError says by its `usage` whether it is a bad
    argument (exit 2) or a sound request that cannot be done now (exit 1). CommandFailed
    (`fail`) is for the commands' own argument checks."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except BrokenPipeError:
            # The reader went away (`| head`): stop quietly, as Unix tools do.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(int(ExitCode.OK))
        except CommandFailed as e:
            _exit(str(e), e.code)
        except Exception as e:
            failure = _failure(e)
            if failure is None:
                raise
            _exit(*failure)

    return wrapper


def _failure(e: Exception) -> tuple[str, ExitCode] | None:
    """The message and exit code for one of our errors (or an OSError), None for anything else.
    The error modules are imported here, when something failed, and not while click builds the
    commands: `--help` imports none of them."""
    from lotledger.ledger.errors import LedgerError, RequestError, StorageError, Unavailable, VerificationFailed
    from lotledger.signing.errors import SigningError

    if isinstance(e, RequestError):
        return e.message, ExitCode.USAGE if e.usage else ExitCode.FAILED
    if isinstance(e, VerificationFailed):
        return str(e), ExitCode.FAILED
    if isinstance(e, Unavailable):
        return str(e), ExitCode.UNREACHABLE
    if isinstance(e, LedgerError):
        reason = f" [{e.reason}]" if e.reason else ""
        return f"{e.message}{reason}", ExitCode.FAILED
    if isinstance(e, SigningError):
        return str(e), ExitCode.USAGE
    if isinstance(e, StorageError):
        return str(e), ExitCode.UNREACHABLE
    if isinstance(e, OSError):
        return f"{e.filename or ''}: {e.strerror or e}".lstrip(": "), ExitCode.USAGE
    return None


def _exit(message: str, code: ExitCode) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(int(code))


class Progress:
    """Throttled progress on stderr: at most one line a second, and only on long runs."""

    def __init__(self, label: str, total: int | None, *, enabled: bool = True):
        self.label, self.total, self.enabled = label, total, enabled
        self.start = self.last = time.monotonic()

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if not self.enabled or now - self.last < 1.0:
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        of = f"/{self.total:,}" if self.total else ""
        click.echo(f"{self.label}: {done:,}{of} ({rate:,.0f}/s)", err=True)
