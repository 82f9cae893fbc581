"""The ledger: admission, the single group-commit writer, checkpoints, entries and proofs.

One writer thread owns every write. Request threads precheck records (parse, validate, verify
the signature: pure work, and Ed25519 verification releases the GIL so both cores help), then
queue them; the writer takes everything queued, authorizes each record against the key
registry, appends the entries and tree nodes in ONE LMDB write transaction, commits it
durably, and only then resolves the callers' futures. Checkpoints are signed by the writer on
a fixed cadence while the log grows, inside the same transaction as the entries they cover.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from lotledger.ledger import fsck
from lotledger.ledger.core import rules
from lotledger.ledger.core.admission import Admitted, DuplicateRecordId, Seen, admit, precheck, record_key
from lotledger.ledger.core.policy import ADMIN_KINDS
from lotledger.ledger.core.records import sign
from lotledger.ledger.core.registry import Registry
from lotledger.ledger.core.validation import DEFAULT_MAX_SKEW, decode_record, refuse_unknown_fields
from lotledger.ledger.errors import (
    Conflict,
    LedgerError,
    NotFound,
    OutOfRange,
    ResourceExhausted,
    StorageError,
    Unavailable,
)
from lotledger.ledger.store import DEFAULT_MAP_SIZE, Store, cosignature_key, from_u64, tree_key, u64
from lotledger.ledger.tlog import merkle
from lotledger.ledger.tlog.entries import ZERO_HASH, AppendResult, build_entry
from lotledger.signing.files import ExclusiveLock, LockHeld, exclusive_lock
from lotledger.signing.keys import SigningKey
from lotledger.signing.note import Checkpoint, NoteSigner, parse_note, sign_note
from lotledger.v1 import records_pb2

log = logging.getLogger("lotledger.ledger")


@dataclass(frozen=True)
class SignedCheckpoint:
    size: int
    root_hash: bytes
    note: bytes


@dataclass
class LedgerConfig:
    checkpoint_interval: float = 1.0
    max_batch: int = 2000
    max_skew: timedelta = DEFAULT_MAX_SKEW
    map_size: int | None = None
    # The admission window into the past for created_at (None: only the validation floor).
    # The server sets it from its limits; a Ledger opened directly (init, demo, tests) has none.
    max_age: timedelta | None = None


@dataclass
class _Pending:
    admitted: Admitted
    future: Future[AppendResult] = field(default_factory=Future)


@dataclass
class _Group:
    """Records queued together (one AppendStream message): one future for all of them, so the
    writer resolves one future per message and not one per record."""

    admitted: list[Admitted]
    future: Future[list[AppendResult | LedgerError]] = field(default_factory=Future)


_STOP = object()


class Ledger:
    """A live ledger over one data directory. Thread-safe; one per data directory per process."""

    def __init__(self, data_dir: str | Path, log_key: SigningKey, config: LedgerConfig | None = None):
        """Open the ledger `initialize` made in `data_dir`. Creates nothing: a directory with no
        ledger, one without its genesis entry (an init that did not finish), one whose indexes
        the start check finds damaged (ledger/fsck.py quick_check) and a log key other than the
        ledger's are refused, so a client can never write entry 0.

        Raises StorageError (LockHeld's message when another process holds the directory)."""
        self.config = config or LedgerConfig()
        self.data_dir = Path(data_dir)
        if not (self.data_dir / "ledger" / "data.mdb").exists():
            raise StorageError(f"{self.data_dir} holds no ledger (run lotledger init)")
        self.store = Store(self.data_dir / "ledger", map_size=self.config.map_size or DEFAULT_MAP_SIZE, create=False)
        try:
            self._writer_lock = _lock_writer(self.data_dir / "ledger")
        except BaseException:
            self.store.close()
            raise
        try:
            with self.store.read() as txn:
                origin = self.store.get(txn, "meta", b"origin")
                if origin is None:
                    raise StorageError(f"{self.data_dir} is not an initialized ledger (run lotledger init)")
                self.origin = origin.decode()
                stored_pub = self.store.get(txn, "meta", b"log_public_key")
            if stored_pub is not None and stored_pub != log_key.public.raw:
                raise StorageError("the log key does not match the key this ledger was initialized with")
            self._signer = NoteSigner(self.origin, log_key)
            self.reader = LogReader(self.store, lambda: self.registry)
            self._load_state()
        except BaseException:
            self._writer_lock.close()
            self.store.close()
            raise
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        # Guards `_closed` against enqueue: nothing may be queued after _STOP, or it would
        # never be answered.
        self._closing = threading.Lock()
        self._closed = False
        self._listeners: list[Callable[[list[tuple[int, records_pb2.Record]]], None]] = []
        self._writer = threading.Thread(target=self._run_writer, name="lotledger-writer", daemon=True)
        self._writer.start()

    # ---- creation ------------------------------------------------------------------------

    @classmethod
    def initialize(
        cls,
        data_dir: str | Path,
        origin: str,
        log_key: SigningKey,
        admin_key: SigningKey,
        *,
        admin_id: str = "admin",
        config: LedgerConfig | None = None,
        log_rules: int = rules.CURRENT,
    ) -> Ledger:
        """Create the store and, in ONE durable write transaction, the whole ledger: its settings
        (origin, log key), entry 0 (the self-signed registration of the first admin, which
        states the rules the log follows for ever: `log_rules`, older versions only for tests of
        logs written before) with its index entries, and the checkpoint of size 1. A failure
        commits nothing. This is the only writer of entry 0: a Ledger opens only a store that
        has it, so no client's self-signed admin registration is ever admitted.

        The directory's other files (keys, log.vkey) are the caller's; `lotledger init` builds
        it all beside the target and renames it into place (ledger/datadir.py).

        Raises StorageError (the directory holds a ledger or the start of one),
        ResourceExhausted (DISK_FULL: no room; nothing was committed)."""
        record = records_pb2.Record(record_id="genesis", submitter=admin_id)
        record.created_at.GetCurrentTime()
        record.participant_registered.participant_id = admin_id
        record.participant_registered.role = records_pb2.ROLE_ADMIN
        if log_rules != rules.RULES_1:  # a rules-1 genesis states none, as those logs were written
            record.participant_registered.rules_version = log_rules
        record.participant_registered.public_key = admin_key.public.raw
        record.participant_registered.business_name = "lotledger administrator"
        signed = sign(record, admin_key)
        # The one admission step, as every verifier will run it on entry 0 (the genesis rule).
        admission = admit(precheck(signed, datetime.now(UTC), lambda _: None), 0, Registry(), lambda _: None)
        entry = build_entry(0, ZERO_HASH, time.time_ns(), signed)
        leaf = merkle.leaf_hash(entry)
        note = sign_note(Checkpoint(origin, 1, leaf).body(), NoteSigner(origin, log_key))
        store = Store(Path(data_dir) / "ledger", map_size=(config and config.map_size) or DEFAULT_MAP_SIZE)
        try:
            with store.write() as txn:
                if store.get(txn, "meta", b"origin") is not None:
                    if store.count(txn, "entries"):
                        raise StorageError(f"{data_dir} already holds a ledger")
                    raise StorageError(
                        f"{data_dir} holds the start of a ledger whose initialization stopped before its genesis "
                        "entry (nothing in it was ever acknowledged): remove it and initialize again"
                    )
                store.put(txn, "meta", b"origin", origin.encode())
                store.put(txn, "meta", b"log_public_key", log_key.public.raw)
                _put_entry(store, txn, 0, entry, merkle.append_leaf([], 0, leaf)[1], admission.claims, admin=True)
                store.put(txn, "meta", b"size", u64(1))
                store.put_new(txn, "checkpoints", u64(1), note, append=True)
        finally:
            store.close()
        return cls(data_dir, log_key, config)

    # ---- state --------------------------------------------------------------------------

    def _load_state(self) -> None:
        """Size, frontier, head and registry from the store; the registry by replaying the
        admin entries through the same pure code a verifier runs. First the store must have
        its genesis entry, and pass the start check (ledger/fsck.py quick_check).

        Raises StorageError: no genesis entry, or damage found (the message says to run
        `lotledger verify --data-dir`, which names it all)."""

        def damaged(found: Sequence[str]) -> StorageError:
            return StorageError(
                f"{self.data_dir} is damaged: {'; '.join(found)}. Its entries may be intact: run "
                f"`lotledger verify --data-dir {self.data_dir} --log-key LOG_VKEY` to see all that is damaged, and "
                "restore the directory from a copy; the ledger does not open it as it is"
            )

        with self.store.read() as txn:
            if not self.store.count(txn, "entries"):
                raise StorageError(
                    f"{self.data_dir} has no genesis entry: the `lotledger init` that made it did not finish, and "
                    "nothing in it was ever acknowledged. Remove it and run `lotledger init` again"
                )
            found = fsck.quick_check(self.store, txn, record_id_key)
            if found:
                raise damaged(found)
            size_raw = self.store.get(txn, "meta", b"size")
            self.size = from_u64(size_raw) if size_raw else 0
            self.frontier = merkle.frontier_from_perfect(self.size, self._perfect_in(txn))
            self.head = self._perfect_in(txn)(0, self.size - 1) if self.size else ZERO_HASH
            last = self.store.last(txn, "checkpoints")
            self.latest_checkpoint: SignedCheckpoint | None = None
            if last is not None:
                self.latest_checkpoint = self._checkpoint_from_note(last[1])
            self.last_received_ns = 0
            if self.size:
                entry = records_pb2.Entry.FromString(self.store.get(txn, "entries", u64(self.size - 1)) or b"")
                self.last_received_ns = entry.received_at.ToNanoseconds()
            self.registry = Registry()
            for key, _ in self.store.iterate(txn, "admin_seqs"):
                seq = from_u64(key)
                entry = records_pb2.Entry.FromString(self.store.get(txn, "entries", key) or b"")
                try:
                    if not self.registry.check_and_apply(decode_record(entry.signed_record.record_bytes), seq):
                        raise damaged([f"admin_seqs: lists entry {seq}, which does not change the key history"])
                except LedgerError as e:
                    raise damaged([f"admin_seqs: entry {seq} does not apply to the key history ({e})"]) from e
        self._last_checkpoint_time = 0.0

    def _checkpoint_from_note(self, note: bytes) -> SignedCheckpoint:
        cp = Checkpoint.from_body(parse_note(note)[0])
        return SignedCheckpoint(cp.size, cp.root_hash, note)

    def _perfect_in(self, txn: Any) -> Callable[[int, int], bytes]:
        def perfect(level: int, index: int) -> bytes:
            value = self.store.get(txn, "tree", tree_key(level, index))
            if value is None:
                raise StorageError(f"tree node ({level}, {index}) is missing: the store is damaged")
            return value

        return perfect

    def add_commit_listener(self, listener: Callable[[list[tuple[int, records_pb2.Record]]], None]) -> int:
        """Call `listener` from the writer after each durable commit with the (seq, record)
        pairs it added, in order. It must be quick (hand off to a queue). Returns the log
        size at registration: entries below it were committed before and are not announced."""
        with self._closing:
            self._listeners.append(listener)
            return self.size

    @property
    def closed(self) -> bool:
        """True once `close` has begun: nothing more is taken for appending."""
        return self._closed

    @property
    def log_verifier_key(self) -> str:
        return self._signer.verifier_key

    # ---- appending ----------------------------------------------------------------------

    def precheck(self, signed: records_pb2.SignedRecord) -> Admitted:
        """Parse, validate and (when the key is known) verify: pure, safe on any thread.
        Raises LedgerError."""
        if self._closed:
            raise Unavailable("the ledger is shutting down; retry against a running server")
        refuse_unknown_fields(signed, "signed_record")  # only signed bytes are stored
        now = datetime.now(UTC)
        registry = self.registry
        return precheck(
            signed,
            now,
            registry.public_key,
            max_skew=self.config.max_skew,
            max_age=self.config.max_age,
            log_rules=registry.rules,
        )

    def enqueue(self, admitted: Admitted) -> Future[AppendResult]:
        """Queue a prechecked record for the writer; records queued from one thread are
        committed in that order. The future resolves after the durable commit, or fails with
        a LedgerError (refused) or StorageError (nothing written). Cancelling the future
        before the writer takes it into a transaction means it is never written; once taken,
        `cancel()` returns False and the record is committed (a retry is then a duplicate)."""
        pending = _Pending(admitted)
        with self._closing:
            if self._closed:
                raise Unavailable("the ledger is shutting down; retry against a running server")
            self._queue.put(pending)
        return pending.future

    def enqueue_many(self, admitted: list[Admitted]) -> Future[list[AppendResult | LedgerError]]:
        """Queue prechecked records for the writer, in order, as one item: the future resolves
        after the durable commit of them all (in one transaction) to one outcome per record,
        its result or its refusal, or fails with a StorageError (nothing of it written).
        Cancelling it before the writer takes it means none of them is written. Raises
        Unavailable (closed)."""
        group = _Group(admitted)
        with self._closing:
            if self._closed:
                raise Unavailable("the ledger is shutting down; retry against a running server")
            self._queue.put(group)
        return group.future

    def submit(self, signed: records_pb2.SignedRecord) -> Future[AppendResult]:
        """precheck + enqueue. Raises the precheck's LedgerError synchronously."""
        return self.enqueue(self.precheck(signed))

    def append(self, signed: records_pb2.SignedRecord, timeout: float | None = 30.0) -> AppendResult:
        """submit and wait. On timeout the record is withdrawn if the writer has not taken it
        yet (see enqueue). Raises LedgerError, StorageError, TimeoutError."""
        future = self.submit(signed)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def sign_checkpoint_now(self) -> SignedCheckpoint:
        """Ask the writer for a checkpoint of the current size (if it has none yet) and wait."""
        done: Future[SignedCheckpoint] = Future()
        with self._closing:
            if self._closed:
                raise Unavailable("the ledger is closed")
            self._queue.put(("checkpoint", done))
        return done.result(30)

    def close(self) -> None:
        """Stop taking appends, let the writer finish what is queued (and checkpoint it)."""
        with self._closing:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        self._writer.join()
        self.store.close()
        self._writer_lock.close()

    def _run_writer(self) -> None:
        stop = False
        disk_full = False  # said once per spell of failed writes, not once per attempt
        while not stop:
            timeout = self._checkpoint_wait()
            try:
                first = self._queue.get(timeout=timeout)
            except queue.Empty:
                first = None
            batch: list[_Pending | _Group] = []
            records = 0
            forced: list[Future[SignedCheckpoint]] = []
            cosigs: list[tuple[bytes, bytes, Future[None]]] = []
            item = first
            while item is not None:
                if item is _STOP:
                    stop = True
                elif isinstance(item, tuple) and item[0] == "cosignature":
                    cosigs.append(item[1:])
                elif isinstance(item, tuple):
                    forced.append(item[1])
                elif item.future.set_running_or_notify_cancel():
                    batch.append(item)  # (a cancelled one - its caller gave up - is never written)
                    records += len(item.admitted) if isinstance(item, _Group) else 1
                if records >= self.config.max_batch:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    item = None
            checkpoint_before = self.latest_checkpoint
            try:
                self._commit(batch, force_checkpoint=bool(forced) or stop, cosignatures=[c[:2] for c in cosigs])
            except BaseException as e:  # noqa: BLE001 - every waiter must hear about it
                if isinstance(e, ResourceExhausted):  # no room: nothing was written; it can pass later
                    if not disk_full:
                        log.error("appends refused until there is room: %s", e)
                    disk_full = True
                else:
                    log.exception("write transaction failed")
                # A checkpoint due now is tried again after an interval, not at once, for ever.
                self._last_checkpoint_time = time.monotonic()
                err = e if isinstance(e, (StorageError, LedgerError)) else StorageError(f"write failed: {e}")
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(err)
                for f in forced:
                    f.set_exception(err)
                for *_, done in cosigs:
                    done.set_exception(err)
                continue
            if disk_full and (batch or cosigs or self.latest_checkpoint is not checkpoint_before):
                log.warning("writes succeed again")
                disk_full = False
            for *_, done in cosigs:
                done.set_result(None)
            for f in forced:
                if self.latest_checkpoint is None:
                    f.set_exception(StorageError("no checkpoint: the log is empty"))
                else:
                    f.set_result(self.latest_checkpoint)

    def _checkpoint_wait(self) -> float | None:
        cp_size = self.latest_checkpoint.size if self.latest_checkpoint else 0
        if self.size <= cp_size:
            return None
        return max(0.0, self._last_checkpoint_time + self.config.checkpoint_interval - time.monotonic())

    def _commit(
        self,
        batch: list[_Pending | _Group],
        *,
        force_checkpoint: bool,
        cosignatures: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        size, frontier, head = self.size, list(self.frontier), self.head
        admitted = [a for p in batch for a in (p.admitted if isinstance(p, _Group) else (p.admitted,))]
        needs_registry_copy = any(a.kind in ADMIN_KINDS for a in admitted)
        registry = self.registry.copy() if needs_registry_copy else self.registry
        received_ns = max(time.time_ns(), self.last_received_ns)
        outcomes: list[AppendResult | LedgerError] = []
        batch_ids: dict[str, tuple[bytes, AppendResult, Seen]] = {}
        new_checkpoint: SignedCheckpoint | None = None
        with self.store.write() as txn:
            for a in admitted:
                try:
                    result = self._append_one(txn, a, registry, size, head, received_ns, frontier, batch_ids)
                except LedgerError as e:
                    outcomes.append(e)
                    continue
                if not result.duplicate:
                    size += 1
                    head = result.leaf_hash
                outcomes.append(result)
            if size != self.size:
                self.store.put(txn, "meta", b"size", u64(size))
            cp_size = self.latest_checkpoint.size if self.latest_checkpoint else 0
            due = time.monotonic() - self._last_checkpoint_time >= self.config.checkpoint_interval
            if size > cp_size and (due or force_checkpoint):
                new_checkpoint = self._sign_checkpoint(size, merkle.root_from_frontier(frontier, size))
                self.store.put_new(txn, "checkpoints", u64(size), new_checkpoint.note, append=True)
            for key, line in cosignatures:
                self.store.put(txn, "cosignatures", key, line)  # a newer cosignature replaces the older
        # Committed and durable: publish the new state, then answer.
        self.size, self.frontier, self.head = size, frontier, head
        self.last_received_ns = received_ns
        if needs_registry_copy:
            self.registry = registry
        if new_checkpoint is not None:
            self.latest_checkpoint = new_checkpoint
            self._last_checkpoint_time = time.monotonic()
        at = 0
        for p in batch:
            if isinstance(p, _Group):
                p.future.set_result(outcomes[at : at + len(p.admitted)])
                at += len(p.admitted)
                continue
            outcome = outcomes[at]
            at += 1
            if isinstance(outcome, AppendResult):
                p.future.set_result(outcome)
            else:
                p.future.set_exception(outcome)
        if self._listeners:
            added = [
                (o.seq, a.record)
                for a, o in zip(admitted, outcomes, strict=True)
                if isinstance(o, AppendResult) and not o.duplicate
            ]
            if added:
                for listener in self._listeners:
                    listener(added)

    def _append_one(
        self,
        txn: Any,
        admitted: Admitted,
        registry: Registry,
        seq: int,
        prev_hash: bytes,
        received_ns: int,
        frontier: list[bytes],
        batch_ids: dict[str, tuple[bytes, AppendResult, Seen]],
    ) -> AppendResult:
        """Admit (ledger/core/admission.py, as every verifier does) and append one record inside
        the open transaction. `frontier` is updated in place. Raises LedgerError and writes
        nothing for a refused record."""
        record, signed = admitted.record, admitted.signed
        rid = record.record_id

        def earlier(key: str) -> Seen | None:
            in_batch = batch_ids.get(key)
            if in_batch is not None:  # what admission claimed this transaction: no decoding again
                return in_batch[2]
            found = self._existing(txn, key)
            return None if found is None else claim_of(key, found[0], registry.rules)

        try:
            admission = admit(admitted, seq, registry, earlier)
        except DuplicateRecordId:
            key = record_key(registry.rules, record.submitter, rid)
            in_batch = batch_ids.get(key)
            first_bytes, first = in_batch[:2] if in_batch else self._existing(txn, key) or (b"", None)
            if first is None:
                raise
            if first_bytes == signed.record_bytes:  # a client's retry: answered as the first time
                return AppendResult(first.seq, first.leaf_hash, first.received_at_ns, True)
            raise Conflict(
                f"record_id {rid!r} is already used by entry {first.seq} with different content; "
                "use a new record_id, or a Correction to amend that record",
                reason="RECORD_ID_CONFLICT",
                field="record.record_id",
            ) from None
        entry_bytes = build_entry(seq, prev_hash, received_ns, signed)
        leaf = merkle.leaf_hash(entry_bytes)
        new_frontier, nodes = merkle.append_leaf(frontier, seq, leaf)
        _put_entry(self.store, txn, seq, entry_bytes, nodes, admission.claims, admitted.kind in ADMIN_KINDS)
        frontier[:] = new_frontier
        result = AppendResult(seq, leaf, received_ns)
        for key, seen in admission.claims.items():
            batch_ids[key] = (signed.record_bytes, result, seen)
        return result

    def _existing(self, txn: Any, key: str) -> tuple[bytes, AppendResult] | None:
        """The record bytes and result of the entry a `record_ids` key names (a record key or,
        under rules 2, a shipment's claims: ledger/core/admission.py), or None."""
        seq_raw = self.store.get(txn, "record_ids", key.encode())
        if seq_raw is None:
            return None
        seq = from_u64(seq_raw)
        entry = records_pb2.Entry.FromString(self.store.get(txn, "entries", seq_raw) or b"")
        leaf = self.store.get(txn, "tree", tree_key(0, seq)) or b""
        return entry.signed_record.record_bytes, AppendResult(seq, leaf, entry.received_at.ToNanoseconds())

    def _sign_checkpoint(self, size: int, root_hash: bytes) -> SignedCheckpoint:
        body = Checkpoint(self.origin, size, root_hash).body()
        return SignedCheckpoint(size, root_hash, sign_note(body, self._signer))

    # ---- reading ------------------------------------------------------------------------

    def entry(self, seq: int) -> tuple[bytes, bytes]:
        """(entry bytes, leaf hash) of a committed entry. Raises OutOfRange."""
        if seq >= self.size:
            raise OutOfRange(f"entry {seq} does not exist; the log has {self.size} entries", field="seq")
        with self.store.read() as txn:
            entry = self.store.get(txn, "entries", u64(seq))
            leaf = self.store.get(txn, "tree", tree_key(0, seq))
        if entry is None or leaf is None:
            raise StorageError(f"entry {seq} is missing from the store")
        return entry, leaf

    def seq_of(self, record_id: str, submitter: str = "") -> int:
        """The seq of `submitter`'s record `record_id`. Under rules 2 record ids are scoped by
        their submitter; without one, the only registered participant's record with that id.
        Raises NotFound (also for an id several participants use: name the submitter)."""
        seq = self.reader.seq_of(record_id, submitter)
        if seq is None:
            whose = f" of {submitter!r}" if submitter else ""
            raise NotFound(f"no record with record_id {record_id!r}{whose}", field="record_id")
        return seq

    def entries(self, start: int, end: int, batch_bytes: int = 1 << 20) -> Iterator[tuple[int, list[bytes]]]:
        """Entries [start, end) in batches of about `batch_bytes`, each one read transaction
        so a slow reader never pins old pages for the whole download. Raises OutOfRange."""
        if end > self.size or start > end:
            raise OutOfRange(f"range [{start}, {end}) is outside the log of {self.size} entries", field="end_seq")
        seq = start
        while seq < end:
            chunk: list[bytes] = []
            total = 0
            with self.store.read() as txn:
                for key, value in self.store.iterate(txn, "entries", u64(seq)):
                    if from_u64(key) >= end or total >= batch_bytes:
                        break
                    chunk.append(value)
                    total += len(value)
            if not chunk:
                raise StorageError(f"entry {seq} is missing from the store")
            yield seq, chunk
            seq += len(chunk)

    def admin_entries(self, start: int, end: int, batch: int = 256) -> Iterator[list[tuple[int, bytes]]]:
        """(seq, entry bytes) of the entries in [start, end) that change the key history, from
        the admin index, in batches of up to `batch`, each one read transaction (as `entries`).
        Raises OutOfRange."""
        if end > self.size or start > end:
            raise OutOfRange(f"range [{start}, {end}) is outside the log of {self.size} entries", field="end_seq")
        seq = start
        while True:
            chunk: list[tuple[int, bytes]] = []
            with self.store.read() as txn:
                for key, _ in self.store.iterate(txn, "admin_seqs", u64(seq)):
                    if from_u64(key) >= end or len(chunk) >= batch:
                        break
                    entry = self.store.get(txn, "entries", key)
                    if entry is None:
                        raise StorageError(f"entry {from_u64(key)} is missing from the store")
                    chunk.append((from_u64(key), entry))
            if not chunk:
                return
            yield chunk
            seq = chunk[-1][0] + 1

    def checkpoint(self, size: int = 0) -> SignedCheckpoint:
        """The latest checkpoint (size 0) or the one issued at exactly `size`. Raises NotFound."""
        if size == 0:
            if self.latest_checkpoint is None:
                raise NotFound("no checkpoint has been signed yet")
            return self.latest_checkpoint
        with self.store.read() as txn:
            note = self.store.get(txn, "checkpoints", u64(size))
        if note is None:
            raise NotFound(f"no checkpoint was issued at tree size {size}", field="tree_size")
        return self._checkpoint_from_note(note)

    def checkpoints(self) -> list[SignedCheckpoint]:
        with self.store.read() as txn:
            return [self._checkpoint_from_note(v) for _, v in self.store.iterate(txn, "checkpoints")]

    # ---- witness cosignatures (c2sp.org/tlog-cosignature) -----------------------------------

    def store_cosignature(self, size: int, key_hash: bytes, name: str, line: bytes, timeout: float = 30.0) -> None:
        """Keep a witness's cosignature line of the checkpoint issued at `size`, durably (through
        the writer, in its next transaction), replacing an older one by the same witness. The
        caller has verified it; nothing is checked here. Raises NotFound (no checkpoint at that
        size), Unavailable (closed) or StorageError."""
        self.checkpoint(size)
        done: Future[None] = Future()
        with self._closing:
            if self._closed:
                raise Unavailable("the ledger is closed")
            self._queue.put(("cosignature", cosignature_key(size, key_hash, name), line, done))
        done.result(timeout)

    def cosignatures(self, size: int) -> list[bytes]:
        """The stored cosignature lines of the checkpoint issued at `size`, by witness key."""
        with self.store.read() as txn:
            return self.store.cosignature_lines(txn, size)

    def cosigned_checkpoint(self, size: int = 0, *, min_cosignatures: int = 0) -> SignedCheckpoint:
        """checkpoint(size) with its stored cosignature lines appended to the note. With
        `min_cosignatures` and size 0: the latest checkpoint that has at least that many.
        Raises NotFound."""
        if min_cosignatures > 0 and size == 0:
            with self.store.read() as txn:
                found = self.store.latest_cosigned_size(txn, min_cosignatures)
            if found is None:
                raise NotFound(
                    f"no checkpoint carries {min_cosignatures} witness cosignatures yet", field="min_cosignatures"
                )
            size = found
        cp = self.checkpoint(size)
        lines = self.cosignatures(cp.size)
        return SignedCheckpoint(cp.size, cp.root_hash, cp.note + b"".join(lines)) if lines else cp

    def _proof_size(self, size: int) -> int:
        if size == 0:
            return self.checkpoint().size
        if size > self.size:
            raise OutOfRange(f"tree size {size} is beyond the log's {self.size} entries", field="tree_size")
        return size

    def inclusion_proof(self, seq: int, tree_size: int = 0) -> tuple[int, bytes, list[bytes]]:
        """(tree size, leaf hash, proof) for entry `seq`; O(log n) reads. Raises OutOfRange."""
        size = self._proof_size(tree_size)
        if seq >= size:
            raise OutOfRange(f"entry {seq} is not in the tree of size {size}", field="seq")
        with self.store.read() as txn:
            perfect = self._perfect_in(txn)
            return size, perfect(0, seq), merkle.inclusion_proof(seq, size, perfect)

    def consistency_proof(self, old_size: int, new_size: int = 0) -> tuple[int, list[bytes]]:
        """(new size, proof) that the tree of old_size is a prefix of new_size. Raises OutOfRange."""
        size = self._proof_size(new_size)
        if not 0 < old_size <= size:
            raise OutOfRange(f"old_size must be between 1 and {size}", field="old_size")
        with self.store.read() as txn:
            return size, merkle.consistency_proof(old_size, size, self._perfect_in(txn))

    def root(self, size: int) -> bytes:
        with self.store.read() as txn:
            return merkle.root(size, self._perfect_in(txn))


def _put_entry(
    store: Store,
    txn: Any,
    seq: int,
    entry_bytes: bytes,
    nodes: Iterable[tuple[int, int, bytes]],
    claims: Iterable[str],
    admin: bool,
) -> None:
    """The writes of one entry: the entry, the `record_ids` keys admission claimed, the new tree
    nodes and, for an admin record, its place in `admin_seqs` (what ledger/fsck.py checks). One
    place for the writer and for `initialize`, which writes entry 0 without a running writer."""
    store.put_new(txn, "entries", u64(seq), entry_bytes, append=True)
    for key in claims:
        store.put_new(txn, "record_ids", key.encode(), u64(seq))
    for level, index, node in nodes:
        store.put_new(txn, "tree", tree_key(level, index), node)
    if admin:
        store.put_new(txn, "admin_seqs", u64(seq), b"", append=True)


class LogReader:
    """Reads committed records for the trace index, which keeps only topology and seqs and
    reads everything else from the entries, where it is the truth (trace/records.py). Safe on
    any thread; each call is one read transaction."""

    def __init__(self, store: Store, registry: Callable[[], Registry]):
        self.store = store
        self._registry = registry  # the writer's current key history: its rules and participants

    def records(self, seqs: Iterable[int]) -> dict[int, records_pb2.Record]:
        """The records of the committed entries `seqs`, as signed. Committed entries were
        validated on the way in, so they are decoded without checking again. Raises NotFound."""
        out = {}
        with self.store.read() as txn:
            for seq in seqs:
                raw = self.store.get(txn, "entries", u64(seq))
                if raw is None:
                    raise NotFound(f"entry {seq} is not in the log", field="seq")
                entry = records_pb2.Entry.FromString(raw)
                out[seq] = records_pb2.Record.FromString(entry.signed_record.record_bytes)
        return out

    def seq_of(self, record_id: str, submitter: str = "") -> int | None:
        """The seq of the entry that holds `submitter`'s `record_id`, or None. Under rules 2
        without a submitter: the one registered participant's record with that id, None if
        none or several have one."""
        registry = self._registry()
        if registry.rules < rules.RULES_2:
            keys = [record_id]
        elif submitter:
            keys = [record_key(registry.rules, submitter, record_id)]
        else:
            keys = [record_key(registry.rules, p, record_id) for p in registry.participants]
        with self.store.read() as txn:
            found = {raw for raw in (self.store.get(txn, "record_ids", k.encode()) for k in keys) if raw is not None}
        return from_u64(found.pop()) if len(found) == 1 else None


def claim_of(key: str, record_bytes: bytes, log_rules: int) -> Seen:
    """What the rules keep under a `record_ids` key, read back from the record that made it
    (under rules 1 every key is a record id, whatever it starts with)."""
    record = decode_record(record_bytes)
    if log_rules < rules.RULES_2:
        return Seen(record.submitter, record.WhichOneof("body") or "")
    if key.startswith("#to/"):
        return Seen(record.shipment.to_participant, "consignee")
    if key.startswith("#shipment/"):
        return Seen(record.submitter, "shipment")
    return Seen(record.submitter, record.WhichOneof("body") or "")


def record_id_key(record: records_pb2.Record, log_rules: int) -> bytes:
    """The `record_ids` key of `record`'s own id in a log of `log_rules`, as the writer stores
    it (ledger/core/admission.py record_key: the id under rules 1, `<submitter>/<id>` under
    rules 2). The start check looks the last entry up by it (ledger/fsck.py quick_check)."""
    return record_key(log_rules, record.submitter, record.record_id).encode()


def _lock_writer(directory: Path) -> ExclusiveLock:
    """One writer per data directory, across processes: a second server (or `demo`) on the same
    directory would keep its own idea of the head and misnumber or refuse appends. The lock
    goes with the process (kill -9 included). Raises StorageError."""
    try:
        return exclusive_lock(directory / "writer.lock", mode=0o600)
    except LockHeld:
        raise StorageError(
            f"{directory.parent} is in use by another lotledger process (a running server?): "
            "stop it first, or work on a copy"
        ) from None
