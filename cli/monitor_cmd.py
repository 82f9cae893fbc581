"""`lotledger monitor`: follows a live log and checks everything new against what it verified
before, kept in a state directory (cli/state_dir.py, ledger/verify_state.py).

Each round: fetch the latest signed checkpoint and check its signature; if the log grew,
check the consistency proof from the checkpoint held in the state, then fetch and verify every
new entry from the state's verifier (signatures, chain, key history, record ids), check the new
root against the signed one, and save the state. The first round, with an empty state, verifies
the whole log.

A checkpoint that does not extend the held one (a smaller tree, another root at the same size,
a consistency proof that does not hold, new entries that do not give the signed root) is a
fork: both signed notes and the proof as served are written to DIR/forks/<time>.txt, an alert
line goes to stderr, and the state stays at the held checkpoint. Any other failed check (a bad
signature on the checkpoint or an entry, a broken chain) is alerted the same way, without
evidence file. With --once or by default the command then exits 1; with --keep-running it
alerts once per distinct checkpoint and goes on watching. An unreachable server exits 3 with
--once, and is retried at the next interval otherwise.

All I/O is here; the checks are the pure ones `verify` uses.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from lotledger.audit.state_dir import StateDir, sync_dir
from lotledger.audit.verify import LiveSource, verify_log
from lotledger.cli.options import connect, log_key_option, server_option, verifier_key_arg
from lotledger.cli.output import ExitCode, Progress, fail, handles_errors, note
from lotledger.ledger.errors import LedgerError, StorageError, VerificationFailed
from lotledger.ledger.verify.state import FORK_REASONS, VerifierState, check_extends
from lotledger.ledger.verify.verifier import open_signed_checkpoint
from lotledger.rpc.client import LedgerClient
from lotledger.signing.note import NoteVerifier

EVIDENCE_HEADER = "lotledger fork evidence"


@dataclass
class Round:
    """The outcome of one round: "verified" (new entries checked, state saved), "unchanged",
    "fork", "failed" (another check failed) or "unreachable"."""

    outcome: str
    message: str
    held_size: int | None = None
    tree_size: int | None = None
    entries_checked: int = 0
    reason: str | None = None
    evidence: Path | None = None
    served_note: bytes | None = None

    def json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "message": self.message,
            "reason": self.reason,
            "held_size": self.held_size,
            "tree_size": self.tree_size,
            "entries_checked": self.entries_checked,
            "evidence": str(self.evidence) if self.evidence else None,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
        }


class Monitor:
    """One log, one state directory; `round()` runs one check and keeps the verified state."""

    def __init__(self, server: str, log_key: NoteVerifier, states: StateDir, *, progress: Progress):
        self.server = server
        self.log_key = log_key
        self.states = states
        self.progress = progress
        self.state = states.load(log_key)
        self._evidence_written: dict[bytes, Path] = {}

    def round(self) -> Round:
        held = self.state.size if self.state else None
        try:
            client = connect(self.server)
        except StorageError as e:
            return Round("unreachable", str(e), held)
        try:
            return self._round(client)
        except StorageError as e:
            return Round("unreachable", str(e), held)
        finally:
            client.close()

    def _round(self, client: LedgerClient) -> Round:
        state = self.state
        held = state.size if state else None
        try:
            served = client.checkpoint().note
        except LedgerError as e:
            return Round("failed", f"the server gave no checkpoint: {e.message}", held, reason=e.reason)
        proof: list[bytes] | None = None
        size: int | None = None
        try:
            checkpoint = open_signed_checkpoint(served, self.log_key)
            size = checkpoint.size
            if state is not None:
                if checkpoint.size == state.size and checkpoint.root_hash == state.checkpoint.root_hash:
                    return Round("unchanged", f"still {state.size} entries", held, size)
                if checkpoint.size > state.size:
                    proof = list(client.consistency_proof(state.size, checkpoint.size).proof)
                check_extends(state.checkpoint, checkpoint, proof)
            try:
                report = verify_log(LiveSource(client, served), self.log_key, state=state, progress=self.progress)
            except BaseException:
                self.state = self.states.load(self.log_key)  # the verifier fed entries into it in memory
                raise
        except VerificationFailed as e:
            if e.reason in FORK_REASONS and state is not None:
                path = self._evidence(state, served, proof, e)
                return Round("fork", str(e), held, size, reason=e.reason, evidence=path, served_note=served)
            return Round("failed", str(e), held, size, reason=e.reason, served_note=served)
        except LedgerError as e:
            return Round("failed", f"the server refused: {e.message}", held, size, reason=e.reason, served_note=served)
        assert report.state is not None  # a live verification with signatures is always complete
        self.states.save(report.state)
        self.state = report.state
        return Round(
            "verified",
            f"entries {report.from_size} to {report.size - 1} verified; root {report.root_hash.hex()}",
            held,
            report.size,
            report.entries_checked,
        )

    def _evidence(
        self, state: VerifierState, served: bytes, proof: list[bytes] | None, error: VerificationFailed
    ) -> Path:
        """Both signed notes and the proof, in a file of their own. Each note sits verbatim
        between BEGIN/END lines, so that anyone can cut it out and check it with the log key."""
        key = hashlib.sha256(state.note + b"\0" + served).digest()
        if key in self._evidence_written:
            return self._evidence_written[key]
        forks = self.states.path / "forks"
        forks.mkdir(exist_ok=True)
        now = datetime.now(UTC)
        path = forks / f"{now.strftime('%Y%m%dT%H%M%S.%fZ')}.txt"
        proof_lines = "".join(h.hex() + "\n" for h in proof or [])
        text = (
            f"{EVIDENCE_HEADER}\n"
            f"detected: {now.isoformat()}\n"
            f"server: {self.server}\n"
            f"log key: {self.log_key.verifier_key}\n"
            f"what: {error} [{error.reason}]\n\n"
            f"-----BEGIN HELD CHECKPOINT (verified before; {state.size} entries)-----\n"
            f"{state.note.decode()}"
            "-----END HELD CHECKPOINT-----\n"
            "-----BEGIN SERVED CHECKPOINT-----\n"
            f"{served.decode(errors='replace')}"
            "-----END SERVED CHECKPOINT-----\n"
            f"-----BEGIN CONSISTENCY PROOF (as served, one hash per line; {'none asked' if proof is None else len(proof)})-----\n"
            f"{proof_lines}"
            "-----END CONSISTENCY PROOF-----\n"
        )
        tmp = path.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
        sync_dir(forks)
        self._evidence_written[key] = path
        return path


@click.command()
@server_option
@log_key_option
@click.option(
    "--state",
    "state_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the verified state and fork evidence are kept (created if missing).",
)
@click.option(
    "--interval", default=30.0, show_default=True, type=click.FloatRange(min=0.01), help="Seconds between rounds."
)
@click.option("--once", is_flag=True, help="One round, then exit: 0 ok, 1 fork or failed check, 3 unreachable.")
@click.option(
    "--keep-running", is_flag=True, help="On a fork or failed check, alert and keep watching instead of exiting 1."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON line per round on stdout.")
@click.option("--quiet", is_flag=True, help="No progress lines.")
@handles_errors
def monitor(
    server: str,
    log_key: str,
    state_dir: Path,
    interval: float,
    once: bool,
    keep_running: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Follow a live log: verify every new checkpoint and entry against the state kept in
    --state DIR, and keep both signed checkpoints as evidence if the log forks."""
    verifier = verifier_key_arg(log_key, "--log-key")
    if once and keep_running:
        fail("--once and --keep-running exclude each other", ExitCode.USAGE)
    stopping = threading.Event()
    previous: dict[signal.Signals, Any] = {}
    if not once:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda _s, _f: stopping.set())
    try:
        with StateDir(state_dir) as states:
            watcher = Monitor(server, verifier, states, progress=Progress("verified", None, enabled=not quiet))
            code, last = _watch(
                watcher, interval=interval, once=once, keep_running=keep_running, as_json=as_json, stopping=stopping
            )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if code != ExitCode.OK:
        fail(f"the log forked: evidence in {last.evidence}" if last.evidence else last.message, code)


def _watch(
    watcher: Monitor, *, interval: float, once: bool, keep_running: bool, as_json: bool, stopping: threading.Event
) -> tuple[ExitCode, Round]:
    """Rounds until one ends the watch: the exit code and that round."""
    alerted: set[bytes] = set()
    while True:
        result = watcher.round()
        _report(result, as_json, alerted, retrying=not once)
        if result.outcome == "unreachable" and once:
            return ExitCode.UNREACHABLE, result
        if result.outcome in ("fork", "failed") and not keep_running:
            return ExitCode.FAILED, result
        if once or stopping.wait(interval):
            return ExitCode.OK, result


def _report(result: Round, as_json: bool, alerted: set[bytes], *, retrying: bool) -> None:
    """One line per round on stdout; alerts on stderr, once per distinct served checkpoint."""
    if as_json:
        click.echo(json.dumps(result.json()))
    else:
        size = f" ({result.tree_size} entries)" if result.tree_size is not None else ""
        click.echo(f"{result.outcome}{size}: {result.message}")
    if result.outcome in ("fork", "failed"):
        key = hashlib.sha256((result.served_note or b"") + result.outcome.encode() + result.message.encode()).digest()
        if key not in alerted:
            alerted.add(key)
            kind = "FORK" if result.outcome == "fork" else "VERIFICATION FAILED"
            where = f"; evidence in {result.evidence}" if result.evidence else ""
            note(f"ALERT: {kind}: {result.message}{where}")
    elif result.outcome == "unreachable" and retrying:
        note(f"unreachable: {result.message}; retrying")
