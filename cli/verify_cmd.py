"""The driver of `lotledger verify`: fetches entries and checkpoints from a live server or a
copy of a data directory, and feeds them to the pure LogVerifier. All I/O lives here."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from lotledger.ledger.bundle import BundleReader
from lotledger.ledger.client import LedgerClient
from lotledger.ledger.errors import StorageError, VerificationFailed
from lotledger.ledger.store import Store, u64
from lotledger.ledger.verify import LogVerifier, check_consistency, open_signed_checkpoint
from lotledger.ledger.verify_hashes import HashVerifier
from lotledger.ledger.verify_pipeline import PARALLEL_MIN_ENTRIES, default_workers, feed_all_parallel
from lotledger.signing.note import NoteVerifier


class EntrySource(Protocol):
    def checkpoint_note(self) -> bytes: ...
    def entries(self, start: int, end: int) -> Iterator[bytes]: ...
    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes] | None: ...


class LiveSource:
    """A running server, through the same client partners use."""

    def __init__(self, client: LedgerClient):
        self.client = client

    def checkpoint_note(self) -> bytes:
        return self.client.checkpoint().note

    def entries(self, start: int, end: int) -> Iterator[bytes]:
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

    def close(self) -> None:
        self.client.close()


class DataDirSource:
    """A copy of a data directory, opened read-only with no server. Only the entries and the
    signed checkpoints are used; the stored tree nodes are ignored and recomputed."""

    def __init__(self, data_dir: Path):
        path = data_dir / "ledger" if (data_dir / "ledger" / "data.mdb").exists() else data_dir
        self.store = Store(path, readonly=True)

    def checkpoint_note(self) -> bytes:
        with self.store.read() as txn:
            last = self.store.last(txn, "checkpoints")
        if last is None:
            raise StorageError("the data directory holds no signed checkpoint")
        return last[1]

    def entries(self, start: int, end: int) -> Iterator[bytes]:
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

    def close(self) -> None:
        self.store.close()


class BundleSource:
    """An export bundle (ledger/bundle.py), read once, front to back, in constant memory.
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

    def entries(self, start: int, end: int) -> Iterator[bytes]:
        seq = 0
        for entry in self.reader.entries():
            if seq >= end:
                raise VerificationFailed(
                    f"the bundle holds more entries than its checkpoint's {end}", seq=seq, reason="EXTRA_ENTRIES"
                )
            if seq >= start:
                yield entry
            seq += 1
        if seq != end:
            raise VerificationFailed(
                f"the bundle holds {seq} entries but its checkpoint covers {end}", seq=seq, reason="TRUNCATED"
            )

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes] | None:
        return None  # the old root is recomputed from the entries themselves

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


def verify_log(
    source: EntrySource,
    log_key: NoteVerifier,
    *,
    since_note: bytes | None = None,
    check_signatures: bool = True,
    progress: Callable[[int], None] | None = None,
    workers: int | None = None,
) -> VerifyReport:
    """Full verification (ledger/verify.py), on `workers` processes (default: one per core
    for logs of PARALLEL_MIN_ENTRIES or more); or, with check_signatures=False, hash-only
    verification (ledger/verify_hashes.py: the chain and the tree, nothing inside the records).
    Raises VerificationFailed (naming the entry when there is one) on the first failure."""
    started = time.monotonic()
    checkpoint = open_signed_checkpoint(source.checkpoint_note(), log_key)
    verifier: LogVerifier | HashVerifier = LogVerifier() if check_signatures else HashVerifier()
    old = None
    if since_note is not None:
        old = open_signed_checkpoint(since_note, log_key)
        if old.size > checkpoint.size:
            raise VerificationFailed(
                f"the log's checkpoint ({checkpoint.size} entries) is older than --since ({old.size}): "
                "the log was rolled back or forked",
                reason="ROLLBACK",
            )
        proof = source.consistency_proof(old.size, checkpoint.size)
        if proof is not None:
            check_consistency(old, checkpoint, proof)
        verifier.want_root_at(old.size)
    entries = source.entries(0, checkpoint.size)
    if isinstance(verifier, HashVerifier):
        verifier.feed_all(entries, progress)
    else:
        if workers is None:
            workers = default_workers() if checkpoint.size >= PARALLEL_MIN_ENTRIES else 1
        feed_all_parallel(verifier, entries, progress, workers=workers)
    verifier.check_checkpoint(checkpoint)
    if old is not None and verifier.root_at(old.size) != old.root_hash:
        raise VerificationFailed(
            f"the first {old.size} entries do not give the root of the --since checkpoint: history was rewritten",
            reason="NOT_CONSISTENT",
        )
    return VerifyReport(
        checkpoint.size,
        checkpoint.root_hash,
        checkpoint.origin,
        old.size if old else None,
        time.monotonic() - started,
        check_signatures,
    )
