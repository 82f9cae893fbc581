"""`lotledger witness`: run a witness that speaks c2sp.org/tlog-witness, so lotledger logs can
use existing witnesses and this witness can cosign other logs (any log whose checkpoints are
C2SP signed notes with an Ed25519 key). The server, its durable state and the fork evidence
are ledger/witness/http.py; the checks are ledger/witness/state.py.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import click

from lotledger.cli.options import verifier_key_arg
from lotledger.cli.output import ExitCode, emit_json, fail, handles_errors, note

DEFAULT_LISTEN = "127.0.0.1:7380"


@click.group()
def witness() -> None:
    """Run a witness (c2sp.org/tlog-witness) that cosigns only consistent checkpoints."""


@witness.command("key")
@click.argument("key_path", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--name", required=True, help="The witness's name, e.g. witness.regulator.example.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")
@handles_errors
def witness_key(key_path: Path, name: str, as_json: bool) -> None:
    """Print the verifier key of the witness with private key KEY_PATH and name NAME: what logs
    (serve --witness URL=VKEY) and verifiers (verify --witness VKEY) are configured with."""
    from lotledger.signing.cosignature import CosignatureSigner
    from lotledger.signing.keys import SigningKey

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
@click.option(
    "--listen",
    default=DEFAULT_LISTEN,
    show_default=True,
    metavar="HOST:PORT",
    help="Address to serve the add-checkpoint HTTP endpoint on.",
)
@handles_errors
def witness_serve(key_path: Path, name: str, logs: tuple[str, ...], state_dir: Path, listen: str) -> None:
    """Serve POST /add-checkpoint until SIGINT or SIGTERM, cosigning a log's checkpoint only
    if it is consistent with the last one cosigned for that log; refused contradictions are
    kept in DIR/forks."""
    from lotledger.ledger.witness.http import WitnessServer, WitnessService, lock_state_dir
    from lotledger.ledger.witness.state import Witness
    from lotledger.signing.cosignature import CosignatureSigner
    from lotledger.signing.keys import SigningKey

    signer = CosignatureSigner(name, SigningKey.load(key_path))
    log_keys = [verifier_key_arg(v, "--log") for v in logs]
    state_dir.mkdir(parents=True, exist_ok=True)
    lock = lock_state_dir(state_dir)
    service = WitnessService(Witness(signer, log_keys, WitnessService.load_state(state_dir)), state_dir, report=note)
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        fail(f"--listen: {listen!r} is not HOST:PORT", ExitCode.USAGE)
    httpd = WitnessServer((host, int(port)), service)
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
