"""The state directory of `lotledger verify --state DIR` and `lotledger monitor --state DIR`:
all the file I/O for ledger/verify/state.py (which is pure) lives here.

    DIR/verifier.state   the saved verifier state, replaced atomically (written beside, synced,
                         renamed over, the directory synced: signing/files.py): a crash leaves
                         the old one or the new one, never half of either
    DIR/lock             locked (flock) while a command uses DIR, so two never interleave
    DIR/forks/           fork evidence written by `monitor` (audit/monitor.py)
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

from lotledger.ledger.errors import RequestError
from lotledger.ledger.verify.state import VerifierState, decode_state, encode_state
from lotledger.signing.files import LockHeld, atomic_file, exclusive_lock
from lotledger.signing.note import NoteVerifier

STATE_FILE = "verifier.state"


class StateDir:
    """An open, locked state directory (created if missing). Use as a context manager.

    Raises RequestError (usage) when another verify or monitor holds DIR; OSError when DIR
    cannot be created or its lock file opened."""

    def __init__(self, path: Path):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        try:
            self._lock = exclusive_lock(path / "lock", mode=0o644)
        except LockHeld as e:
            raise RequestError(f"{path} is in use by another lotledger verify or monitor") from e

    def __enter__(self) -> StateDir:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._lock.close()  # releases the flock

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
        """Replace the saved state atomically and durably; returns the bytes written.
        Raises OSError (the old state is then untouched)."""
        written = 0
        with atomic_file(self.state_file, temp=self.path / (STATE_FILE + ".tmp")) as f:
            for chunk in encode_state(state):
                f.write(chunk)
                written += len(chunk)
        return written
