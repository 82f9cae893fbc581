"""Exit codes, output and error handling shared by every command.

stdout carries data only (one JSON document with --json); people's text and progress go to
stderr. Every failure ends with one line `error: <reason>` and an exit code from ExitCode,
never a traceback.
"""

from __future__ import annotations

import enum
import functools
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any, NoReturn, ParamSpec, TypeVar

import click

from lotledger.ledger.errors import LedgerError, RequestError, StorageError, Unavailable, VerificationFailed
from lotledger.signing.errors import SigningError

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
        except RequestError as e:
            _exit(e.message, ExitCode.USAGE if e.usage else ExitCode.FAILED)
        except VerificationFailed as e:
            _exit(str(e), ExitCode.FAILED)
        except Unavailable as e:
            _exit(str(e), ExitCode.UNREACHABLE)
        except LedgerError as e:
            reason = f" [{e.reason}]" if e.reason else ""
            _exit(f"{e.message}{reason}", ExitCode.FAILED)
        except SigningError as e:
            _exit(str(e), ExitCode.USAGE)
        except StorageError as e:
            _exit(str(e), ExitCode.UNREACHABLE)
        except OSError as e:
            _exit(f"{e.filename or ''}: {e.strerror or e}".lstrip(": "), ExitCode.USAGE)

    return wrapper


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
