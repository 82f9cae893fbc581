"""A data directory written from another copy of a log's entries (a restore from tiles), in the
same layout the writer (ledger/log.py) keeps, so that a Ledger opens it and goes on appending.

Why not the Ledger's writer: it admits *records* and builds new entries (stamping received_at);
a replica must store the *entries* exactly as the log signed them. So this writes each entry's
bytes as received (STYLE rule 2) and derives the indexes the writer derives, with the same pure
code: the chain link (`decode_entry`), the tree nodes (`merkle.append_leaf`), the admission step
for the `record_ids` claims and the key history (`admit`, its key check left to the verifier
that checks every signature), through the writer's own `_put_entry`.

Nothing here verifies signatures or the checkpoint: the caller (audit/restore.py) feeds only
entries that its LogVerifier accepts, and keeps the directory only once the whole log verified.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from lotledger.ledger.core.admission import Admitted, Seen, admit
from lotledger.ledger.core.policy import ADMIN_KINDS
from lotledger.ledger.core.registry import Registry
from lotledger.ledger.core.validation import decode_record, record_kind
from lotledger.ledger.errors import StorageError
from lotledger.ledger.log import _put_entry, claim_of
from lotledger.ledger.store import DEFAULT_MAP_SIZE, Store, cosignature_key, from_u64, tree_key, u64
from lotledger.ledger.tlog import merkle
from lotledger.ledger.tlog.entries import ZERO_HASH, decode_entry
from lotledger.v1 import records_pb2


class ReplicaWriter:
    """Appends verified entries, in order from entry 0, to a new store in `ledger_dir`.

    Raises StorageError when `ledger_dir` already holds a ledger, and (from `add`) LedgerError
    or VerificationFailed for an entry that does not chain or is not admissible."""

    def __init__(
        self,
        ledger_dir: Path,
        origin: str,
        log_public_key: bytes,
        *,
        map_size: int | None = None,
        resume: bool = False,
    ):
        """A new store in `ledger_dir`; with `resume`, the replica of this log already there
        (a mirror's), at the size it holds. Raises StorageError (a ledger already there
        without `resume`; one of another log with it)."""
        self.store = Store(ledger_dir, map_size=map_size or DEFAULT_MAP_SIZE)
        self.size = 0
        self.head = ZERO_HASH
        self.frontier: list[bytes] = []
        self.registry = Registry()
        try:
            with self.store.write() as txn:
                stored = self.store.get(txn, "meta", b"origin")
                if stored is None:
                    self.store.put(txn, "meta", b"origin", origin.encode())
                    self.store.put(txn, "meta", b"log_public_key", log_public_key)
                    return
            if not resume:
                raise StorageError(f"{ledger_dir} already holds a ledger")
            if stored != origin.encode() or self._get("meta", b"log_public_key") != log_public_key:
                raise StorageError(f"{ledger_dir} holds a copy of another log than {origin!r}")
            self._load()
        except BaseException:
            self.store.close()
            raise

    def _get(self, db: str, key: bytes) -> bytes | None:
        with self.store.read() as txn:
            return self.store.get(txn, db, key)

    def _load(self) -> None:
        """Size, head, frontier and key history of the replica already in the store."""
        with self.store.read() as txn:
            raw = self.store.get(txn, "meta", b"size")
            size = from_u64(raw) if raw else 0

            def perfect(level: int, index: int) -> bytes:
                node = self.store.get(txn, "tree", tree_key(level, index))
                if node is None:
                    raise StorageError(f"tree node ({level}, {index}) is missing: the replica is damaged")
                return node

            self.frontier = merkle.frontier_from_perfect(size, perfect)
            self.head = perfect(0, size - 1) if size else ZERO_HASH
            for key, _ in self.store.iterate(txn, "admin_seqs"):
                entry = records_pb2.Entry.FromString(self.store.get(txn, "entries", key) or b"")
                self.registry.check_and_apply(decode_record(entry.signed_record.record_bytes), from_u64(key))
        self.size = size

    def entry(self, seq: int) -> bytes | None:
        return self._get("entries", u64(seq))

    def latest_checkpoint(self) -> tuple[int, bytes] | None:
        with self.store.read() as txn:
            last = self.store.last(txn, "checkpoints")
        return (from_u64(last[0]), last[1]) if last else None

    def add(self, entries: Iterable[bytes]) -> None:
        """Append `entries` (the next ones, in order) in one durable write transaction."""
        with self.store.write() as txn:

            def earlier(key: str) -> Seen | None:
                seq = self.store.get(txn, "record_ids", key.encode())
                if seq is None:
                    return None
                entry = records_pb2.Entry.FromString(self.store.get(txn, "entries", seq) or b"")
                return claim_of(key, entry.signed_record.record_bytes, self.registry.rules)

            size, head, frontier = self.size, self.head, self.frontier
            for value in entries:
                link = decode_entry(value, size, head)
                record = decode_record(link.entry.signed_record.record_bytes)
                kind = record_kind(record)
                admission = admit(
                    Admitted(link.entry.signed_record, record, kind, None),
                    size,
                    self.registry,
                    earlier,
                    check_key=False,
                )
                frontier, nodes = merkle.append_leaf(frontier, size, link.leaf_hash)
                _put_entry(self.store, txn, size, value, nodes, admission.claims, kind in ADMIN_KINDS)
                head, size = link.leaf_hash, size + 1
            self.store.put(txn, "meta", b"size", u64(size))
        self.size, self.head, self.frontier = size, head, frontier

    def add_checkpoint(self, size: int, note: bytes) -> None:
        """Keep a checkpoint note the log signed at `size` (verified by the caller)."""
        if size > self.size:
            raise StorageError(f"checkpoint {size} is beyond the {self.size} entries written")
        with self.store.write() as txn:
            self.store.put(txn, "checkpoints", u64(size), note)

    def add_cosignature(self, size: int, key_hash: bytes, name: str, line: bytes) -> None:
        """Keep a cosignature line of the checkpoint at `size` (a mirror's own, say)."""
        with self.store.write() as txn:
            self.store.put(txn, "cosignatures", cosignature_key(size, key_hash, name), line)

    def cosignatures(self, size: int) -> list[bytes]:
        with self.store.read() as txn:
            return self.store.cosignature_lines(txn, size)

    def stored_size(self) -> int:
        with self.store.read() as txn:
            raw = self.store.get(txn, "meta", b"size")
        return from_u64(raw) if raw else 0

    def close(self) -> None:
        self.store.close()
