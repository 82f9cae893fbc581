"""The witness's HTTP server (c2sp.org/tlog-witness): `POST /add-checkpoint` around the pure
state machine (ledger/witness/state.py), the state file, the fork evidence, and the lock that
keeps a second process off the same state. `lotledger witness serve` (cli/witness_cmd.py)
starts it.

Durability is the point of a witness, so the new state is written to a temporary file, fsynced,
renamed over state.json and the directory fsynced (signing/files.py) BEFORE the cosignature is
sent: after a crash the witness restarts from a state at least as new as any cosignature it
gave out, and can never be walked into cosigning a fork of something it already cosigned.

State directory layout:
    state.json              lotledger-witness-state/1: per origin, the latest cosigned size,
                            root and the log's signed note
    forks/fork-<hash>.json  lotledger-fork-evidence/1, one per refused contradicting checkpoint
                            (both signed notes and the proof); <hash> is of the refused note
    lock                    held (flock) while a witness process serves this state
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from lotledger.ledger.errors import RequestError, StorageError
from lotledger.ledger.witness.state import Cosigned, ForkEvidence, Witness, WitnessError, state_from_json, state_to_json
from lotledger.signing.errors import SigningError
from lotledger.signing.files import ExclusiveLock, LockHeld, atomic_write, exclusive_lock

MAX_REQUEST_BYTES = 1 << 16  # a checkpoint, up to 100 signature lines and 63 proof hashes fit easily
SIZE_CONTENT_TYPE = "text/x.tlog.size"
STATE_FILE = "state.json"
_FILE_MODE = 0o644  # the state and the evidence are public: signed notes and a proof

_log = logging.getLogger(__name__)


def lock_state_dir(state_dir: Path) -> ExclusiveLock:
    """Hold DIR/lock for the life of the process (close it to let go), so that two witnesses
    never serve, and write, the same state.

    Raises RequestError (usage) when another witness process serves DIR; OSError when the lock
    file cannot be opened."""
    try:
        return exclusive_lock(state_dir / "lock", mode=0o666)
    except LockHeld as e:
        raise RequestError(f"another witness process is serving {state_dir}") from e


class WitnessService:
    """The witness's state on disk and the add-checkpoint call, serialized by one lock (the
    check, the durable write and the commit happen as one step). `report` hears one line per
    outcome (cosigned, refused, a state that cannot be written); by default they are logged."""

    def __init__(self, witness: Witness, state_dir: Path, *, report: Callable[[str], None] | None = None):
        self.witness = witness
        self.state_dir = state_dir
        self.state_file = state_dir / STATE_FILE
        self.forks = state_dir / "forks"
        self.report = report if report is not None else _log.info
        self.lock = threading.Lock()

    @staticmethod
    def load_state(state_dir: Path) -> dict[str, Cosigned]:
        """Raises StorageError if the state file exists but cannot be read or trusted."""
        path = state_dir / STATE_FILE
        if not path.exists():
            return {}
        try:
            return state_from_json(json.loads(path.read_bytes()))
        except (OSError, ValueError, KeyError, TypeError, SigningError) as e:
            raise StorageError(f"cannot read the witness state {path}: {e}") from e

    def add_checkpoint(self, body: bytes, now: int | None = None) -> tuple[int, bytes, str]:
        """(HTTP status, response body, content type) for one add-checkpoint request. Refusals
        are answers, not errors. Raises OSError when the new state cannot be made durable
        (then no cosignature is given and the state in memory is unchanged)."""
        now = int(time.time()) if now is None else now
        with self.lock:
            try:
                accepted = self.witness.handle(body, now)
            except WitnessError as e:
                if e.evidence is not None:
                    self._keep_evidence(e.evidence)
                if e.status == 409 and e.latest_size is not None:
                    if e.reason != "OLD_SIZE_MISMATCH":  # a routine 409 just tells a log where we are
                        self.report(f"refused (HTTP 409): {e.message}")
                    return 409, f"{e.latest_size}\n".encode(), SIZE_CONTENT_TYPE
                self.report(f"refused (HTTP {e.status}): {e.message}")
                return e.status, f"{e.message}\n".encode(), "text/plain; charset=utf-8"
            data = json.dumps(state_to_json(self.witness.applied(accepted)), indent=1, sort_keys=True)
            # durable BEFORE anyone sees the cosignature
            atomic_write(self.state_file, data.encode() + b"\n", mode=_FILE_MODE)
            self.witness.commit(accepted)
        self.report(f"cosigned {accepted.state.origin} at size {accepted.state.size}")
        return 200, accepted.cosignature.encode(), "text/plain; charset=utf-8"

    def _keep_evidence(self, evidence: ForkEvidence) -> None:
        """One file per contradicting checkpoint, written atomically. Raises OSError."""
        name = f"fork-{hashlib.sha256(evidence.refused_note).hexdigest()[:16]}.json"
        path = self.forks / name
        if path.exists():
            return  # the log retries: one file per contradicting checkpoint is enough
        self.forks.mkdir(exist_ok=True)
        atomic_write(path, json.dumps(evidence.to_json(), indent=1).encode() + b"\n", mode=_FILE_MODE)
        self.report(
            f"REFUSED {evidence.origin}: {evidence.message} (HTTP {evidence.status}); both signed notes kept in {path}"
        )


class _Handler(BaseHTTPRequestHandler):
    server: WitnessServer
    protocol_version = "HTTP/1.1"  # keep-alive, as the spec recommends

    def _send(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        if self.path != "/add-checkpoint":
            self._send(404, b"not found\n")
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.close_connection = True
            self._send(411, b"a Content-Length is required\n")
            return
        if not 0 <= length <= MAX_REQUEST_BYTES:
            self.close_connection = True
            self._send(413, b"request too large\n")
            return
        body = self.rfile.read(length)
        service = self.server.service
        try:
            status, payload, content_type = service.add_checkpoint(body)
        except OSError as e:  # the state could not be made durable: no cosignature
            service.report(f"error: cannot write the witness state: {e}")
            status, payload, content_type = 500, b"the witness cannot persist its state\n", "text/plain"
        self._send(status, payload, content_type)

    def do_GET(self) -> None:  # noqa: N802
        self._send(405 if self.path == "/add-checkpoint" else 404, b"use POST /add-checkpoint\n")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        pass  # WitnessService reports one line per outcome instead


class WitnessServer(ThreadingHTTPServer):
    """The HTTP server of one WitnessService; run it with serve_forever() on a thread of its own.
    Raises OSError (from the constructor) when the address cannot be bound."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], service: WitnessService):
        super().__init__(address, _Handler)
        self.service = service
