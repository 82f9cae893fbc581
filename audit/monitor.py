"""The monitor behind `lotledger monitor`: follows a live log and checks everything new against
what it verified before, kept in a state directory (audit/state_dir.py, ledger/verify/state.py).

Each round: fetch the latest signed checkpoint and check its signature; if the log grew,
check the consistency proof from the checkpoint held in the state, then fetch and verify every
new entry from the state's verifier (signatures, chain, key history, record ids), check the new
root against the signed one, and save the state. The first round, with an empty state, verifies
the whole log.

A checkpoint that does not extend the held one (a smaller tree, another root at the same size,
a consistency proof that does not hold, new entries that do not give the signed root) is a
fork: both signed notes and the proof as served are written to DIR/forks/<time>.txt, and the
state stays at the held checkpoint. Any other failed check (a bad signature on the checkpoint
or an entry, a broken chain) is a failed round, without evidence file. `watch` runs rounds and
hands each to its caller; it ends with an error on a fork or failed check (unless told to keep
running) and on an unreachable server when running once.

All I/O is here; the checks are the pure ones `verify` uses. Nothing here prints or exits.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from lotledger.audit.state_dir import StateDir
from lotledger.audit.tiles_http import TilesSource, TileStore
from lotledger.audit.verify import EntrySource, LiveSource, VerifyReport, verify_log
from lotledger.ledger.errors import LedgerError, ResourceExhausted, StorageError, Unavailable, VerificationFailed
from lotledger.ledger.verify.state import FORK_REASONS, VerifierState, check_extends
from lotledger.ledger.verify.verifier import open_signed_checkpoint
from lotledger.rpc.client import LedgerClient
from lotledger.signing.files import atomic_write
from lotledger.signing.note import NoteVerifier

EVIDENCE_HEADER = "lotledger fork evidence"


class LogAccess(Protocol):
    """What a round reads: the latest signed checkpoint, a consistency proof as the source
    serves (or computes) it, and the entries up to a pinned checkpoint."""

    def latest_note(self) -> bytes: ...

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes] | None: ...

    def source(self, note: bytes) -> EntrySource: ...

    def close(self) -> None: ...


class ServerLog:
    """A live server, through a client opened for the round."""

    def __init__(self, client: LedgerClient) -> None:
        self.client = client

    def latest_note(self) -> bytes:
        return self.client.checkpoint().note

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes] | None:
        return list(self.client.consistency_proof(old_size, new_size).proof)

    def source(self, note: bytes) -> EntrySource:
        return LiveSource(self.client, note)

    def close(self) -> None:
        self.client.close()


class TilesLog:
    """A tiled log (audit/tiles_http.py) over HTTP(S) or in a directory. The store outlives the
    rounds (its connection pool, and the checkpoint's validators for conditional requests), so
    `close` leaves it open; whoever opened it closes it."""

    def __init__(self, store: TileStore) -> None:
        self.store = store
        self._sources: list[TilesSource] = []

    def latest_note(self) -> bytes:
        return self.store.checkpoint()

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes] | None:
        return None  # the new entries must give the new root from the held state (TilesSource)

    def source(self, note: bytes) -> EntrySource:
        source = TilesSource(self.store, note)
        self._sources.append(source)
        return source

    def close(self) -> None:
        for s in self._sources:
            s.close()
        self._sources.clear()


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

    def __init__(
        self,
        server: str,
        log_key: NoteVerifier,
        states: StateDir,
        *,
        connect: Callable[[], LedgerClient | LogAccess],
        progress: Callable[[int], None] | None = None,
        on_verified: Callable[[VerifyReport, bytes], None] | None = None,
    ):
        """`server` names the log in fork evidence; `connect` opens a client to it (one per
        round, so a server that went away is found again), or a LogAccess (TilesLog). Raises VerificationFailed when the
        saved state is damaged or of another log (StateDir.load)."""
        self.server = server
        self.log_key = log_key
        self.states = states
        self.connect = connect
        self.progress = progress
        # Called with the report and the note once a round's entries verified, before the state
        # is saved (a mirror stores what it verified there first); what it raises fails the round.
        self.on_verified = on_verified
        self.state = states.load(log_key)
        self._evidence_written: dict[bytes, Path] = {}

    def round(self) -> Round:
        """One check of the log. Its failures are outcomes, not errors: a fork, a failed check
        or an unreachable server is a Round that says so. Raises OSError when the state or the
        evidence cannot be written."""
        held = self.state.size if self.state else None
        try:
            opened = self.connect()
        except StorageError as e:
            return Round("unreachable", str(e), held)
        access = ServerLog(opened) if isinstance(opened, LedgerClient) else opened
        try:
            return self._round(access)
        except StorageError as e:
            return Round("unreachable", str(e), held)
        finally:
            access.close()

    def _round(self, access: LogAccess) -> Round:
        state = self.state
        held = state.size if state else None
        try:
            served = access.latest_note()
        except VerificationFailed as e:
            return Round("failed", f"the source gave no checkpoint: {e.message}", held, reason=e.reason)
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
                    proof = access.consistency_proof(state.size, checkpoint.size)
                check_extends(state.checkpoint, checkpoint, proof)
            try:
                report = verify_log(access.source(served), self.log_key, state=state, progress=self.progress)
                if self.on_verified is not None:
                    self.on_verified(report, served)
            except BaseException:
                self.state = self.states.load(self.log_key)  # the verifier fed entries into it in memory
                raise
        except VerificationFailed as e:
            if e.reason in FORK_REASONS and state is not None:
                path = self._evidence(state, served, proof, e)
                return Round("fork", str(e), held, size, reason=e.reason, evidence=path, served_note=served)
            return Round("failed", str(e), held, size, reason=e.reason, served_note=served)
        except ResourceExhausted as e:  # our own disk (a mirror's store), not the source
            return Round("failed", e.message, held, size, reason=e.reason, served_note=served)
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
        """Both signed notes and the proof, in a file of their own, written atomically. Each note
        sits verbatim between BEGIN/END lines, so that anyone can cut it out and check it with
        the log key. Raises OSError."""
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
        atomic_write(path, text.encode("utf-8"), temp=path.with_suffix(".tmp"))
        self._evidence_written[key] = path
        return path


def watch(
    monitor: Monitor,
    *,
    interval: float,
    once: bool,
    keep_running: bool,
    stopping: threading.Event,
    on_round: Callable[[Round], None],
) -> Round:
    """Rounds every `interval` seconds, each handed to `on_round`, until one ends the watch:
    `once` after the first round, or when `stopping` is set. Returns the last round.

    Raises VerificationFailed after a fork or a failed check (unless `keep_running`: then the
    watch goes on) and Unavailable when the server is unreachable with `once` (otherwise it is
    tried again at the next round); OSError when the state cannot be saved.
    """
    while True:
        result = monitor.round()
        on_round(result)
        if result.outcome == "unreachable" and once:
            raise Unavailable(result.message)
        if result.outcome in ("fork", "failed") and not keep_running:
            message = f"the log forked: evidence in {result.evidence}" if result.evidence else result.message
            raise VerificationFailed(message, reason=result.reason)
        if once or stopping.wait(interval):
            return result
