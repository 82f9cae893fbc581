"""The state directory of `lotledger verify --state DIR` and `lotledger monitor --state DIR`:
all the file I/O for ledger/verify_state.py (which is pure) lives here.

    DIR/verifier.state   the saved verifier state, replaced atomically (written beside, synced,
                         renamed over, the directory synced): a crash leaves the old one or the
                         new one, never half of either
    DIR/lock             locked (flock) while a command uses DIR, so two never interleave
    DIR/forks/           fork evidence written by `monitor` (cli/monitor_cmd.py)
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from lotledger.cli.output import ExitCode, fail
from lotledger.ledger.verify.state import VerifierState, decode_state, encode_state
from lotledger.signing.note import NoteVerifier

STATE_FILE = "verifier.state"


class StateDir:
    """An open, locked state directory (created if missing). Use as a context manager."""

    def __init__(self, path: Path):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self._lock = os.open(path / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock)
            fail(f"{path} is in use by another lotledger verify or monitor", ExitCode.USAGE)

    def __enter__(self) -> StateDir:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._lock >= 0:
            os.close(self._lock)  # releases the flock
            self._lock = -1

    @property
    def state_file(self) -> Path:
        return self.path / STATE_FILE

    def load(self, log_key: NoteVerifier) -> VerifierState | None:
        """The saved state, or None if there is none yet. Raises VerificationFailed (a damaged
        state, or one of another log: see decode_state); the file is left as it is."""
        try:
            blob = self.state_file.read_bytes()
        except FileNotFoundError:
            return None
        return decode_state(blob, log_key)

    def save(self, state: VerifierState) -> int:
        """Replace the saved state atomically and durably; returns the bytes written."""
        tmp = self.path / (STATE_FILE + ".tmp")
        written = 0
        with tmp.open("wb") as f:
            for chunk in encode_state(state):
                f.write(chunk)
                written += len(chunk)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.state_file)
        sync_dir(self.path)
        return written


def sync_dir(path: Path) -> None:
    """fsync a directory, so that a rename or a new file in it survives a crash."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
