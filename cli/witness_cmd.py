"""`lotledger witness`: run a witness that speaks c2sp.org/tlog-witness, so lotledger logs can
use existing witnesses and this witness can cosign other logs (any log whose checkpoints are
C2SP signed notes with an Ed25519 key).

The driver around the pure state machine (ledger/witness.py): an HTTP server for
`POST /add-checkpoint`, the state file, and the fork evidence. Durability is the point of a
witness, so the new state is written to a temporary file, fsynced, renamed over state.json and
the directory fsynced BEFORE the cosignature is sent: after a crash the witness restarts from a
state at least as new as any cosignature it gave out, and can never be walked into cosigning a
fork of something it already cosigned. A lock file keeps a second process off the same state.

State directory layout:
    state.json              lotledger-witness-state/1: per origin, the latest cosigned size,
                            root and the log's signed note
    forks/fork-<hash>.json  lotledger-fork-evidence/1, one per refused contradicting checkpoint
                            (both signed notes and the proof); <hash> is of the refused note
    lock                    held (flock) while a witness process serves this state
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO

import click

from lotledger.cli.options import verifier_key_arg
from lotledger.cli.output import ExitCode, emit_json, fail, handles_errors, note
from lotledger.ledger.errors import StorageError, WitnessError
from lotledger.ledger.witness.state import Cosigned, ForkEvidence, Witness, state_from_json, state_to_json
from lotledger.signing.cosignature import CosignatureSigner
from lotledger.signing.errors import SigningError
from lotledger.signing.keys import SigningKey

DEFAULT_LISTEN = "127.0.0.1:7380"
MAX_REQUEST_BYTES = 1 << 16  # a checkpoint, up to 100 signature lines and 63 proof hashes fit easily
SIZE_CONTENT_TYPE = "text/x.tlog.size"


def _write_atomic(path: Path, data: bytes) -> None:
    """New file next to `path`, fsync, rename over it, fsync the directory. Raises OSError."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class WitnessService:
    """The witness's state on disk and the add-checkpoint call, serialized by one lock (the
    check, the durable write and the commit happen as one step)."""

    def __init__(self, witness: Witness, state_dir: Path):
        self.witness = witness
        self.state_dir = state_dir
        self.state_file = state_dir / "state.json"
        self.forks = state_dir / "forks"
        self.lock = threading.Lock()

    @staticmethod
    def load_state(state_dir: Path) -> dict[str, Cosigned]:
        """Raises StorageError if the state file exists but cannot be read or trusted."""
        path = state_dir / "state.json"
        if not path.exists():
            return {}
        try:
            return state_from_json(json.loads(path.read_bytes()))
        except (OSError, ValueError, KeyError, TypeError, SigningError) as e:
            raise StorageError(f"cannot read the witness state {path}: {e}") from e

    def add_checkpoint(self, body: bytes, now: int | None = None) -> tuple[int, bytes, str]:
        """(HTTP status, response body, content type) for one add-checkpoint request."""
        now = int(time.time()) if now is None else now
        with self.lock:
            try:
                accepted = self.witness.handle(body, now)
            except WitnessError as e:
                if e.evidence is not None:
                    self._keep_evidence(e.evidence)
                if e.status == 409 and e.latest_size is not None:
                    if e.reason != "OLD_SIZE_MISMATCH":  # a routine 409 just tells a log where we are
                        note(f"refused (HTTP 409): {e.message}")
                    return 409, f"{e.latest_size}\n".encode(), SIZE_CONTENT_TYPE
                note(f"refused (HTTP {e.status}): {e.message}")
                return e.status, f"{e.message}\n".encode(), "text/plain; charset=utf-8"
            data = json.dumps(state_to_json(self.witness.applied(accepted)), indent=1, sort_keys=True)
            _write_atomic(self.state_file, data.encode() + b"\n")  # durable BEFORE anyone sees the cosignature
            self.witness.commit(accepted)
        note(f"cosigned {accepted.state.origin} at size {accepted.state.size}")
        return 200, accepted.cosignature.encode(), "text/plain; charset=utf-8"

    def _keep_evidence(self, evidence: ForkEvidence) -> None:
        name = f"fork-{hashlib.sha256(evidence.refused_note).hexdigest()[:16]}.json"
        path = self.forks / name
        if path.exists():
            return  # the log retries: one file per contradicting checkpoint is enough
        self.forks.mkdir(exist_ok=True)
        _write_atomic(path, json.dumps(evidence.to_json(), indent=1).encode() + b"\n")
        note(
            f"REFUSED {evidence.origin}: {evidence.message} (HTTP {evidence.status}); both signed notes kept in {path}"
        )


class _Handler(BaseHTTPRequestHandler):
    server: _Server
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
        try:
            status, payload, content_type = self.server.service.add_checkpoint(body)
        except OSError as e:  # the state could not be made durable: no cosignature
            note(f"error: cannot write the witness state: {e}")
            status, payload, content_type = 500, b"the witness cannot persist its state\n", "text/plain"
        self._send(status, payload, content_type)

    def do_GET(self) -> None:  # noqa: N802
        self._send(405 if self.path == "/add-checkpoint" else 404, b"use POST /add-checkpoint\n")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        pass  # WitnessService writes one line per outcome instead


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], service: WitnessService):
        super().__init__(address, _Handler)
        self.service = service


def _lock(state_dir: Path) -> BinaryIO:
    """Hold DIR/lock for the life of the process; a second witness on the same state fails."""
    f = (state_dir / "lock").open("ab")
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        fail(f"another witness process is serving {state_dir}", ExitCode.USAGE)
    return f


@click.group()
def witness() -> None:
    """Run a witness (c2sp.org/tlog-witness) that cosigns only consistent checkpoints."""


@witness.command("key")
@click.argument("key_path", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--name", required=True, help="The witness's name, e.g. witness.regulator.example.")
@click.option("--json", "as_json", is_flag=True)
@handles_errors
def witness_key(key_path: Path, name: str, as_json: bool) -> None:
    """Print the verifier key of the witness with private key KEY_PATH and name NAME: what logs
    (serve --witness URL=VKEY) and verifiers (verify --witness VKEY) are configured with."""
    signer = CosignatureSigner(name, SigningKey.load(key_path))
    if as_json:
        emit_json({"name": name, "verifier_key": signer.verifier_key})
    else:
        click.echo(signer.verifier_key)


@witness.command("serve")
@click.option(
    "--key",
    "key_path",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    metavar="PATH",
    help="The witness's private key (lotledger keys generate PATH).",
)
@click.option("--name", required=True, help="The witness's name (its cosignature lines carry it).")
@click.option(
    "--log", "logs", multiple=True, required=True, metavar="VKEY", help="A log to witness: its verifier key, or a file."
)
@click.option(
    "--state",
    "state_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Where the latest cosigned checkpoint of each log and the fork evidence are kept.",
)
@click.option("--listen", default=DEFAULT_LISTEN, show_default=True, metavar="HOST:PORT")
@handles_errors
def witness_serve(key_path: Path, name: str, logs: tuple[str, ...], state_dir: Path, listen: str) -> None:
    """Serve POST /add-checkpoint until SIGINT or SIGTERM, cosigning a log's checkpoint only
    if it is consistent with the last one cosigned for that log; refused contradictions are
    kept in DIR/forks."""
    signer = CosignatureSigner(name, SigningKey.load(key_path))
    log_keys = [verifier_key_arg(v, "--log") for v in logs]
    state_dir.mkdir(parents=True, exist_ok=True)
    lock = _lock(state_dir)
    service = WitnessService(Witness(signer, log_keys, WitnessService.load_state(state_dir)), state_dir)
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        fail(f"--listen: {listen!r} is not HOST:PORT", ExitCode.USAGE)
    httpd = _Server((host, int(port)), service)
    stopping = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    thread = threading.Thread(target=httpd.serve_forever, name="witness-http", daemon=True)
    thread.start()
    for origin in sorted(service.witness.logs):
        latest = service.witness.latest(origin)
        note(f"witnessing {origin}: last cosigned size {latest.size if latest else 0}")
    note(f"witness verifier key: {signer.verifier_key}")
    note(f"witness {name} listening on http://{host}:{httpd.server_address[1]}")
    try:
        stopping.wait()
    finally:
        note("stopping")
        httpd.shutdown()
        httpd.server_close()
        lock.close()
