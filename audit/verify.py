"""The driver of `lotledger verify`: fetches entries and checkpoints from a live server, a
copy of a data directory or a bundle, and feeds them to the pure LogVerifier, from the start or
from a saved state (ledger/verify/state.py). A data directory's derived indexes are then
checked against its entries (ledger/fsck.py). All I/O lives here."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from lotledger.ledger.errors import NotFound, StorageError, VerificationFailed
from lotledger.ledger.fsck import check_store
from lotledger.ledger.store import Store, from_u64, u64
from lotledger.ledger.tlog import merkle
from lotledger.ledger.tlog.bundle import BundleReader, Increment, KeyHistoryEntry
from lotledger.ledger.tlog.entries import ZERO_HASH, decode_entry
from lotledger.ledger.verify.hashes import HashVerifier
from lotledger.ledger.verify.increment import KeyHistory, open_increment, registry_difference
from lotledger.ledger.verify.pipeline import PARALLEL_MIN_ENTRIES, default_workers, feed_all_parallel
from lotledger.ledger.verify.state import VerifierState, check_extends
from lotledger.ledger.verify.verifier import LogVerifier, check_consistency, check_cosignatures, open_signed_checkpoint
from lotledger.rpc.client import LedgerClient
from lotledger.signing.cosignature import CosignatureVerifier
from lotledger.signing.note import Checkpoint, NoteVerifier


class EntrySource(Protocol):
    def checkpoint_note(self) -> bytes: ...

    def entries(self, start: int, end: int, prefix_root: bytes | None = None) -> Iterator[bytes]:
        """Entries [start, end). A source that must read the entries before `start` anyway (a
        full bundle) checks that they give `prefix_root`; the others never read them."""
        ...

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes] | None: ...

    def increment(self) -> Increment | None:
        """What an increment bundle states about the log before its first entry; None for the rest."""
        ...

    def key_history(self) -> Iterator[KeyHistoryEntry]: ...

    def check_store(self, log_key: NoteVerifier) -> None:
        """Whatever the source holds beside the log, checked against it once the log verifies
        (a data directory's derived indexes). Raises VerificationFailed."""
        ...


class LiveSource:
    """A running server, through the same client partners use. `note`: verify up to this
    checkpoint (the monitor pins the one it has just checked) instead of the latest. With
    `min_cosignatures`, the latest checkpoint carrying that many witness cosignatures (a newer
    one may not have them yet)."""

    def __init__(self, client: LedgerClient, note: bytes | None = None, *, min_cosignatures: int = 0):
        self.client = client
        self.note = note
        self.min_cosignatures = min_cosignatures

    def checkpoint_note(self) -> bytes:
        if self.note is not None:
            return self.note
        if self.min_cosignatures:
            try:
                return self.client.checkpoint(min_cosignatures=self.min_cosignatures).note
            except NotFound:
                pass  # none has that many yet: the latest, whose quorum check says how many it has
        return self.client.checkpoint().note

    def increment(self) -> Increment | None:
        return None

    def key_history(self) -> Iterator[KeyHistoryEntry]:
        return iter(())

    def entries(self, start: int, end: int, prefix_root: bytes | None = None) -> Iterator[bytes]:
        expected = start
        for seq, entry in self.client.list_entries(start, end):
            if seq != expected:
                raise VerificationFailed(f"server sent entry {seq} out of order", seq=expected, reason="WRONG_SEQ")
            expected += 1
            yield entry
        if expected != end:
            raise VerificationFailed(
                f"server stopped after {expected} of {end} entries", seq=expected, reason="TRUNCATED"
            )

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes] | None:
        return list(self.client.consistency_proof(old_size, new_size).proof)

    def check_store(self, log_key: NoteVerifier) -> None:
        pass  # a server's store is its own: what it serves is what was verified

    def close(self) -> None:
        self.client.close()


class DataDirSource:
    """A copy of a data directory, opened read-only with no server. The log is verified from
    the entries and the signed checkpoints (with the witness cosignatures stored for them)
    alone; then `check_store` checks the derived indexes (record ids, tree nodes, admin entries,
    size, every stored checkpoint) against those entries, since a server would trust them.

    Raises StorageError when the directory holds no ledger or its data.mdb is refused before
    it is mapped (truncated, not an LMDB file: ledger/store.py check_data_file)."""

    def __init__(self, data_dir: Path, *, min_cosignatures: int = 0):
        path = data_dir / "ledger" if (data_dir / "ledger" / "data.mdb").exists() else data_dir
        self.store = Store(path, readonly=True)
        self.min_cosignatures = min_cosignatures

    def checkpoint_note(self) -> bytes:
        with self.store.read() as txn:
            size = self.store.latest_cosigned_size(txn, self.min_cosignatures) if self.min_cosignatures else None
            if size is not None:
                note = self.store.get(txn, "checkpoints", u64(size))
            else:  # the latest, whose quorum check (if any) says how many cosignatures it has
                last = self.store.last(txn, "checkpoints")
                size, note = (from_u64(last[0]), last[1]) if last else (0, None)
            if note is None:
                raise StorageError("the data directory holds no signed checkpoint")
            return note + b"".join(self.store.cosignature_lines(txn, size))

    def increment(self) -> Increment | None:
        return None

    def key_history(self) -> Iterator[KeyHistoryEntry]:
        return iter(())

    def entries(self, start: int, end: int, prefix_root: bytes | None = None) -> Iterator[bytes]:
        with self.store.read() as txn:
            expected = start
            for key, value in self.store.iterate(txn, "entries", u64(start)):
                if expected >= end:
                    break
                if key != u64(expected):
                    raise VerificationFailed("entry is missing from the store", seq=expected, reason="MISSING_ENTRY")
                yield value
                expected += 1
        if expected != end:
            raise VerificationFailed(
                f"the store holds only {expected} of {end} entries", seq=expected, reason="TRUNCATED"
            )

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes] | None:
        return None  # we recompute the old root from the entries themselves

    def check_store(self, log_key: NoteVerifier) -> None:
        """Raises VerificationFailed (DAMAGED_INDEX) naming each damaged index."""
        check_store(self.store, log_key)

    def close(self) -> None:
        self.store.close()


class BundleSource:
    """An export bundle (ledger/tlog/bundle.py), read once, front to back, in constant memory.
    Nothing in it is trusted: verify_log checks it exactly as it checks a live server."""

    def __init__(self, path: Path):
        self.file = path.open("rb")
        try:
            self.reader = BundleReader(self.file)
        except BaseException:
            self.file.close()
            raise

    def checkpoint_note(self) -> bytes:
        return self.reader.note

    def increment(self) -> Increment | None:
        return self.reader.increment

    def key_history(self) -> Iterator[KeyHistoryEntry]:
        return self.reader.key_history()

    def entries(self, start: int, end: int, prefix_root: bytes | None = None) -> Iterator[bytes]:
        """The bundle's entries from `start`. Those before it (a full bundle read with a saved
        state) are not verified again, but their chain and tree must give `prefix_root`, so
        that no byte of the bundle goes unchecked."""
        seq = first = self.reader.from_size
        if start < first:
            raise VerificationFailed(f"the bundle starts at entry {first}, not {start}", reason="WRONG_START")
        if start > first and prefix_root is None:
            raise ValueError("skipping a bundle's first entries needs the root they must give")
        head, frontier = ZERO_HASH, list[bytes]()
        for entry in self.reader.entries():
            if seq >= end:
                raise VerificationFailed(
                    f"the bundle holds more entries than its checkpoint's {end}", seq=seq, reason="EXTRA_ENTRIES"
                )
            if seq < start:
                head = decode_entry(entry, seq, head).leaf_hash
                frontier, _ = merkle.append_leaf(frontier, seq, head)
                if seq + 1 == start and merkle.root_from_frontier(frontier, start) != prefix_root:
                    raise VerificationFailed(
                        f"the bundle's first {start} entries do not give the root of the checkpoint of size {start} "
                        "verified before: its history was rewritten",
                        reason="NOT_CONSISTENT",
                    )
            else:
                yield entry
            seq += 1
        if seq != end:
            raise VerificationFailed(
                f"the bundle holds {seq} entries but its checkpoint covers {end}", seq=seq, reason="TRUNCATED"
            )

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes] | None:
        return None  # a full bundle's old root is recomputed from its entries; an increment has its own proof

    def check_store(self, log_key: NoteVerifier) -> None:
        pass  # a bundle holds the log and its proofs, all of it verified

    def close(self) -> None:
        self.file.close()


@dataclass
class VerifyReport:
    size: int
    root_hash: bytes
    origin: str
    since_size: int | None
    seconds: float
    signatures_checked: bool
    cosigned_by: tuple[str, ...] = ()
    from_size: int = 0
    increment: bool = False
    not_checked: list[str] = field(default_factory=list)
    state: VerifierState | None = None  # what to save: None when the verification was partial

    @property
    def entries_checked(self) -> int:
        return self.size - self.from_size


def verify_log(
    source: EntrySource,
    log_key: NoteVerifier,
    *,
    since_note: bytes | None = None,
    state: VerifierState | None = None,
    check_signatures: bool = True,
    progress: Callable[[int], None] | None = None,
    witnesses: Sequence[CosignatureVerifier] = (),
    quorum: int = 0,
    workers: int | None = None,
) -> VerifyReport:
    """Verify the source's log up to its checkpoint, with no trust in the source.

    From the start by default. With `state` (a saved verification of this log up to size S),
    only what is new: the source's checkpoint must extend the state's (check_extends, with the
    source's consistency proof when it has one), and the entries from S on are fed to the
    state's verifier, whose final root must be the signed one. An increment bundle's start is
    proven from its own frames (ledger/verify/increment.py); with a state it must start exactly at the
    state's checkpoint, and its key history must be the state's; without one, what cannot be
    checked is listed in the report's `not_checked`. The report's `state` is what to save (None
    after an increment checked without a state, or without signatures).

    With `witnesses`, the checkpoint must also carry cosignatures from `quorum` of them.

    Once the log verifies, the source checks what it holds beside it (`check_store`: a data
    directory's derived indexes, every entry read again, whatever `state` skipped).

    Full verification (ledger/verify/verifier.py) runs on `workers` processes (default: one per core
    when PARALLEL_MIN_ENTRIES or more entries are to be checked). With check_signatures=False
    and neither a state nor an increment, it is hash-only (ledger/verify/hashes.py: the chain
    and the tree, nothing inside the records).

    Raises VerificationFailed (naming the entry when there is one) on the first failure.
    """
    started = time.monotonic()
    note = source.checkpoint_note()
    checkpoint = open_signed_checkpoint(note, log_key)
    cosigs = check_cosignatures(note, witnesses, quorum) if witnesses or quorum else []
    increment = source.increment()
    not_checked: list[str] = []
    prefix_root = None
    verifier: LogVerifier | HashVerifier
    if increment is not None:
        verifier = _start_increment(source, increment, checkpoint, log_key, state, check_signatures)
    elif state is not None:
        proof = source.consistency_proof(state.size, checkpoint.size) if checkpoint.size > state.size else None
        check_extends(state.checkpoint, checkpoint, proof)
        verifier = state.resume(check_signatures=check_signatures)
        prefix_root = state.checkpoint.root_hash
    elif check_signatures:
        verifier = LogVerifier()
    else:
        verifier = HashVerifier()
    start, start_root = verifier.size, verifier.root()
    old = None
    if since_note is not None:
        old = _since(source, since_note, log_key, checkpoint, start)
        verifier.want_root_at(old.size)
    entries = source.entries(start, checkpoint.size, prefix_root)
    if isinstance(verifier, HashVerifier) or not verifier.check_signatures:
        verifier.feed_all(entries, progress)
    else:
        if workers is None:
            workers = default_workers() if checkpoint.size - start >= PARALLEL_MIN_ENTRIES else 1
        feed_all_parallel(verifier, entries, progress, workers=workers)
    verifier.check_checkpoint(checkpoint)
    if old is not None and (start_root if old.size == start else verifier.root_at(old.size)) != old.root_hash:
        raise VerificationFailed(
            f"the first {old.size} entries do not give the root of the --since checkpoint: history was rewritten",
            reason="NOT_CONSISTENT",
        )
    source.check_store(log_key)
    saved = None
    if isinstance(verifier, LogVerifier) and not verifier.records_complete:
        not_checked = _not_checked(verifier, start)
    elif isinstance(verifier, LogVerifier) and check_signatures:
        saved = VerifierState.capture(verifier, note, log_key)
    return VerifyReport(
        checkpoint.size,
        checkpoint.root_hash,
        checkpoint.origin,
        old.size if old else None,
        time.monotonic() - started,
        check_signatures,
        cosigned_by=tuple(c.name for c in cosigs),
        from_size=start,
        increment=increment is not None,
        not_checked=not_checked,
        state=saved,
    )


def _since(
    source: EntrySource, since_note: bytes, log_key: NoteVerifier, checkpoint: Checkpoint, start: int
) -> Checkpoint:
    """The --since checkpoint, once the log is known to be at least as large. Raises VerificationFailed."""
    old = open_signed_checkpoint(since_note, log_key)
    if old.size > checkpoint.size:
        raise VerificationFailed(
            f"the log's checkpoint ({checkpoint.size} entries) is older than --since ({old.size}): "
            "the log was rolled back or forked",
            reason="ROLLBACK",
        )
    if old.size < start:
        raise VerificationFailed(
            f"--since (size {old.size}) is older than where this verification starts ({start}): "
            "verify that checkpoint with the full log",
            reason="CANNOT_CHECK",
        )
    proof = source.consistency_proof(old.size, checkpoint.size)
    if proof is not None:
        check_consistency(old, checkpoint, proof)
    return old


def _start_increment(
    source: EntrySource,
    increment: Increment,
    checkpoint: Checkpoint,
    log_key: NoteVerifier,
    state: VerifierState | None,
    check_signatures: bool,
) -> LogVerifier:
    """The verifier an increment bundle's entries are fed to (ledger/verify/increment.py)."""
    begin = open_increment(increment, checkpoint, log_key)
    prior = begin.prior
    if state is not None and prior.size != state.size:
        raise VerificationFailed(
            f"the bundle starts at the checkpoint of size {prior.size} but the state was verified up to "
            f"{state.size}: export an increment from {state.size} (lotledger export --from {state.size})",
            reason="WRONG_START",
        )
    if state is not None and (prior.root_hash, begin.head) != (state.checkpoint.root_hash, state.head):
        raise VerificationFailed(
            f"the bundle's prior checkpoint of size {prior.size} has another root ({prior.root_hash.hex()}) "
            f"than the one verified before ({state.checkpoint.root_hash.hex()}): the log forked",
            reason="NOT_CONSISTENT",
        )
    history = KeyHistory(prior)
    for item in source.key_history():
        history.feed(item)
    if state is not None:
        difference = registry_difference(history.registry, state.registry)
        if difference is not None:
            raise VerificationFailed(
                f"bundle: the key history does not match the one verified before: {difference}",
                reason="BAD_KEY_HISTORY",
            )
        return state.resume(check_signatures=check_signatures)
    return LogVerifier.resume(
        size=prior.size,
        head=begin.head,
        frontier=begin.frontier,
        registry=history.registry,
        records=history.records,
        records_complete=False,
        check_signatures=check_signatures,
    )


def _not_checked(verifier: LogVerifier, start: int) -> list[str]:
    """What an increment verified without a state could not check, in plain words."""
    out = [
        f"record ids against the {start} entries before the increment (only its key history entries are known): "
        "a record id used again there would not be seen",
        f"that the key history holds every key registration and revocation before entry {start}: each one it "
        "holds is proven to be in the log, but one left out cannot be seen without the entries themselves",
    ]
    corrections = verifier.unchecked_corrections
    if corrections:
        shown = ", ".join(map(str, corrections[:10])) + (", ..." if len(corrections) > 10 else "")
        out.append(
            f"{len(corrections)} corrections of records before entry {start} (entries {shown}): "
            "whether the record they correct exists, is of the same kind and was theirs to correct"
        )
    out.append(f"verify with --state DIR holding a verification up to {start} to check all of this")
    return out
