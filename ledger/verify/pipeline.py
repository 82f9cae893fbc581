"""Full verification on every core, with exactly the one-thread LogVerifier's verdict.

The split. What needs no log state, and is nearly all the cost, runs ahead in worker
processes on chunks of entries: parsing the entry and its record, validating the record as of
the entry's received_at, and the Ed25519 signature (about 110-160 us of the 150-190 us an
entry costs). What needs the log's state runs here, in order, in the LogVerifier: seq and
chain, the key's registration and revocation as of the entry, roles, record-id uniqueness,
corrections, the key history, the tree. Each entry's worker outcome (a `Prechecked`) is
applied at the entry's own turn, so the first failure reported is the one the sequential
verifier reports, with the same message and reason.

Which key a worker checks a signature with. The key id names the key (its SHA-256), so
"does this signature verify with this key" is a fact whatever the key's status; whether the
key may sign at that entry is decided by the LogVerifier, in order. So each chunk is sent
with, per entry, the key that any registration signed by an admin key sent before it carries
(a _Directory: a few chunks ahead of the key history, and a superset of it). The LogVerifier
uses a worker's outcome only if it was reached with the very key registered as of the entry,
and otherwise checks inline.

Why processes and not threads: pyca releases the GIL inside each verification, but the
parsing and validation around it (about 35 us an entry) do not, and a busy verifying thread
beside them pays the GIL convoy (STYLE.md) on every signature. Measured here on 30,000
entries (a quiet moment): two threads 9,000/s, two processes 12,000/s, beside 16,000-18,000
pure Ed25519 verifications/s on two threads.

Processes are started with "spawn" (safe beside gRPC's threads) and take 0.1-0.3 s to start,
so verify_log uses them only for logs of at least PARALLEL_MIN_ENTRIES.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import timedelta

from google.protobuf.message import DecodeError

from lotledger.ledger.core import rules
from lotledger.ledger.core.admission import check_signature, precheck
from lotledger.ledger.core.validation import timestamp_to_datetime
from lotledger.ledger.errors import LedgerError, StorageError
from lotledger.ledger.verify.verifier import LogVerifier, Prechecked
from lotledger.signing.errors import SigningError
from lotledger.signing.keys import key_id
from lotledger.v1 import records_pb2

CHUNK = 1024
"""Entries per worker task: the pool's per-task cost vanishes, and a chunk is ~350 KB."""

PARALLEL_MIN_ENTRIES = 20_000
"""Below this, starting the worker processes (0.1-0.3 s) is not worth it."""

SWITCH_INTERVAL = 0.001
"""Seconds. This thread is busy while the pool's own threads (sending chunks, receiving
outcomes) wait for the GIL: the default 5 ms would leave workers idle (the GIL convoy)."""


def default_workers() -> int:
    """One worker process per core this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _no_key(_key_id: str) -> bytes | None:
    return None


def genesis_rules(entry_bytes: bytes) -> int:
    """The rules a log states in its genesis entry, read ahead so the workers judge every entry
    as the verifier will. A guess only: for bytes that do not parse it says rules 1, and the
    verifier redoes any verdict made under other rules than the log's (Prechecked.log_rules)."""
    try:
        entry = records_pb2.Entry.FromString(entry_bytes)
        record = records_pb2.Record.FromString(entry.signed_record.record_bytes)
    except DecodeError:
        return rules.RULES_1
    return rules.of_genesis(record.participant_registered.rules_version)


def precheck_chunk(
    entries: list[bytes], keys: list[bytes | None], max_skew: timedelta, log_rules: int
) -> list[Prechecked | None]:
    """The stateless checks of each entry (runs in a worker; pure), under the log's rules.
    `keys[i]`: the public key to check entry i's signature with (the _Directory's), or None.

    None for an entry means "no outcome": the entry does not parse or has no received_at, or
    something other than a LedgerError was raised; its turn in LogVerifier.feed meets the same
    problem again and reports it exactly as the sequential verifier does. Raises nothing.
    """
    out: list[Prechecked | None] = []
    for entry_bytes, key in zip(entries, keys, strict=True):
        try:
            entry = records_pb2.Entry.FromString(entry_bytes)
            if not entry.HasField("received_at"):
                out.append(None)
                continue
            signed = entry.signed_record
            try:
                now = timestamp_to_datetime(entry.received_at)
                precheck(signed, now, _no_key, max_skew=max_skew, log_rules=log_rules if entry.seq else rules.RULES_1)
            except LedgerError as e:
                out.append(Prechecked(e, None, None, log_rules if entry.seq else rules.RULES_1))
                continue
            ok = None
            if key is not None:
                try:
                    check_signature(signed, key)
                    ok = True
                except LedgerError:
                    ok = False
            out.append(Prechecked(None, key, ok, log_rules if entry.seq else rules.RULES_1))
        except Exception:  # noqa: BLE001 - the entry's own turn reports it (see above)
            out.append(None)
    return out


class _Directory:
    """Key id -> public key, for every key that a registration signed by an admin key carries,
    learned as chunks are sent. A table of facts, not the key history: it never says whether a
    key may sign (the LogVerifier does, in order). It holds every key the history will hold,
    since a registration is only ever accepted if an admin key signed it, and every admin key
    was itself registered so, back to the genesis entry (learned while the table is empty).
    Only the records of admin keys are parsed here: the cost is one Entry parse per entry.
    """

    def __init__(self) -> None:
        self.keys: dict[str, bytes] = {}
        self.admins: set[str] = set()

    @classmethod
    def of(cls, verifier: LogVerifier) -> _Directory:
        """Seeded with the keys a resumed verifier already knows (a saved state, an increment's
        key history), so that entries signed by them are checked ahead too."""
        directory = cls()
        for kid, info in verifier.registry.keys.items():
            directory.keys[kid] = info.public_key
            if verifier.registry.participants[info.participant].role == "admin":
                directory.admins.add(kid)
        return directory

    def key_for(self, entry_bytes: bytes) -> bytes | None:
        """The key to check this entry's signature with, or None (unknown, or unparsable)."""
        try:
            signed = records_pb2.Entry.FromString(entry_bytes).signed_record
            if signed.key_id in self.admins or not self.keys:
                self._learn(records_pb2.Record.FromString(signed.record_bytes))
        except (DecodeError, SigningError):
            return None
        return self.keys.get(signed.key_id)

    def _learn(self, record: records_pb2.Record) -> None:
        if record.WhichOneof("body") != "participant_registered":
            return
        reg = record.participant_registered
        kid = key_id(reg.public_key)  # InvalidKey (a SigningError) unless 32 bytes
        self.keys.setdefault(kid, bytes(reg.public_key))
        if reg.role == records_pb2.ROLE_ADMIN:
            self.admins.add(kid)


def _take(source: Iterator[bytes], n: int, into: list[bytes]) -> bool:
    """Append up to n entries to `into`; False once the source is exhausted. If the source
    raises, `into` keeps what it yielded before."""
    for entry_bytes in source:
        into.append(entry_bytes)
        if len(into) == n:
            return True
    return False


def feed_all_parallel(
    verifier: LogVerifier,
    entries: Iterable[bytes],
    progress: Callable[[int], None] | None = None,
    *,
    workers: int | None = None,
) -> None:
    """verifier.feed_all(entries, progress) with the stateless checks on `workers` processes
    (default: one per core). The same outcome: returns once every entry verified, or raises
    what the sequential verifier raises first, be it a VerificationFailed or the source's own
    error (the entries the source yielded before failing are verified first). The verifier is
    spent after a failure.

    Raises VerificationFailed, StorageError if a worker process dies, or whatever iterating
    `entries` raises.
    """
    workers = default_workers() if workers is None else workers
    if workers <= 1 or not verifier.check_signatures:
        verifier.feed_all(entries, progress)
        return
    previous_interval = sys.getswitchinterval()
    sys.setswitchinterval(min(previous_interval, SWITCH_INTERVAL))
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    directory = _Directory.of(verifier)
    in_flight: deque[tuple[list[bytes], Future[list[Prechecked | None]]]] = deque()
    window = 3 * workers
    log_rules: int | None = None

    def admit_oldest() -> None:
        chunk, outcome = in_flight.popleft()
        for entry_bytes, done in zip(chunk, outcome.result(), strict=True):
            verifier.feed(entry_bytes, done)
            if progress is not None and verifier.size % 10_000 == 0:
                progress(verifier.size)

    try:
        source = iter(entries)
        source_error: Exception | None = None
        more = True
        while more:
            chunk: list[bytes] = []
            try:
                more = _take(source, CHUNK, chunk)
            except Exception as e:  # noqa: BLE001 - raised below, after the entries before it
                source_error, more = e, False
            if chunk:
                if log_rules is None:
                    log_rules = verifier.registry.rules if verifier.size else genesis_rules(chunk[0])
                keys = [directory.key_for(entry_bytes) for entry_bytes in chunk]
                in_flight.append((chunk, pool.submit(precheck_chunk, chunk, keys, verifier.max_skew, log_rules)))
            while len(in_flight) > (window if more else 0):
                admit_oldest()
        if source_error is not None:
            raise source_error
    except BrokenProcessPool as e:
        raise StorageError(f"a verification worker process died ({e}); nothing was concluded") from e
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        sys.setswitchinterval(previous_interval)
