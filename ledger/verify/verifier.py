"""Verifying a log with no trust in whoever served it: a pure state machine, no I/O.

A driver (the CLI, over gRPC or a data directory) feeds entry bytes in order and finally the
signed checkpoint; this module admits each entry or raises VerificationFailed naming it. The
steps, per entry, mirror DESIGN sections 3-5:

  1. the bytes parse as an Entry with the next seq and prev_hash = the previous leaf hash;
  2. its record parses, is valid as of the entry's received_at, and its signature verifies
     over the record bytes exactly as stored;
  3. it is admitted by the one admission step the writer runs too (ledger/core/admission.py
     `admit`): its key was registered to the submitter and not revoked as of this entry, the
     submitter's role may submit that kind (the key history is rebuilt from the log itself),
     its record id is new, and a correction corrects an earlier record it may correct;
  4. its leaf hash extends the Merkle tree.
At the end the recomputed root must equal the root in a checkpoint whose signature verifies
with the log key the regulator holds. Tree sizes are only trustworthy because that signed
checkpoint binds them to the root: a size from anywhere else proves nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

from lotledger.ledger.core import rules
from lotledger.ledger.core.admission import Admitted, Seen, admit, check_signature, precheck
from lotledger.ledger.core.registry import Registry
from lotledger.ledger.core.validation import (
    DEFAULT_MAX_SKEW,
    decode_record,
    record_kind,
    refuse_unknown_fields,
    timestamp_to_datetime,
)
from lotledger.ledger.errors import LedgerError, ProofError, VerificationFailed
from lotledger.ledger.tlog import merkle
from lotledger.ledger.tlog.entries import ZERO_HASH, decode_entry
from lotledger.signing.cosignature import Cosignature, CosignatureVerifier, open_cosignatures
from lotledger.signing.errors import SigningError
from lotledger.signing.note import Checkpoint, NoteVerifier, open_checkpoint
from lotledger.v1 import records_pb2


class Prechecked(NamedTuple):
    """One entry's stateless checks, done ahead of its turn (in worker processes, by
    ledger/verify/pipeline.py) and applied by `feed` in order.

    `error`: what precheck raised before the signature step (size, key id, parse, validity),
    or None. `key`, `signature_ok`: the public key the signature was checked with and whether
    it verified (None, None: not checked). `feed` trusts the outcome only if `key` is the key
    registered for the record's key id as of this entry, and otherwise checks inline, so the
    verdict, and the first failure reported, are those of the one-thread verifier.
    """

    error: LedgerError | None
    key: bytes | None
    signature_ok: bool | None
    log_rules: int = rules.RULES_1  # the rules `error` was judged under; another verdict is redone


SeenRecord = Seen
"""What the verifier keeps of each record (its public name, for ledger/verify/state.py)."""


class LogVerifier:
    """Admits entries one by one, in order. After a failure the verifier is spent."""

    def __init__(self, *, check_signatures: bool = True, max_skew: timedelta = DEFAULT_MAX_SKEW):
        self.check_signatures = check_signatures
        self.max_skew = max_skew
        self.size = 0
        self.head = ZERO_HASH
        self.frontier: list[bytes] = []
        self.registry = Registry()
        self._records: dict[str, Seen] = {}
        self._roots: dict[int, bytes] = {}
        self._want_roots: set[int] = set()
        # False when resumed without the records before its start (an increment checked with
        # no saved state): corrections of those records are then listed, not checked.
        self.records_complete = True
        self.unchecked_corrections: list[int] = []

    @classmethod
    def resume(
        cls,
        *,
        size: int,
        head: bytes,
        frontier: list[bytes],
        registry: Registry,
        records: dict[str, Seen],
        records_complete: bool = True,
        check_signatures: bool = True,
        max_skew: timedelta = DEFAULT_MAX_SKEW,
    ) -> LogVerifier:
        """A verifier that goes on from entry `size` of a log checked before (a saved state,
        ledger/verify/state.py) or proven another way (an increment bundle, ledger/verify/increment.py).

        `records` maps the record ids before `size` to their submitter and kind; it is used as
        is, not copied. With `records_complete` False it holds only some of them: a duplicate of
        a missing one cannot be seen, and a correction of one is listed in
        `unchecked_corrections` instead of failing as UNKNOWN_RECORD.

        Raises ValueError if the frontier does not fit `size` (a caller's bug, not bad data).
        """
        if len(frontier) != size.bit_count() or len(head) != merkle.HASH_SIZE:
            raise ValueError(f"a frontier of {len(frontier)} hashes does not fit a tree of {size} entries")
        verifier = cls(check_signatures=check_signatures, max_skew=max_skew)
        verifier.size, verifier.head, verifier.frontier = size, head, list(frontier)
        verifier.registry, verifier._records = registry, records
        verifier.records_complete = records_complete
        return verifier

    def records(self) -> dict[str, Seen]:
        """The record ids admitted so far (the live dict, not a copy: to save a state)."""
        return self._records

    def want_root_at(self, size: int) -> None:
        """Remember the root when the tree reaches `size` (to check an older checkpoint)."""
        self._want_roots.add(size)

    def root_at(self, size: int) -> bytes:
        if size == self.size:
            return self.root()
        return self._roots[size]

    def root(self) -> bytes:
        return merkle.root_from_frontier(self.frontier, self.size)

    def feed(self, entry_bytes: bytes, prechecked: Prechecked | None = None) -> None:
        """Admit the next entry; `prechecked`: its stateless checks, done ahead (see Prechecked).
        Raises VerificationFailed with its seq."""
        seq = self.size
        link = decode_entry(entry_bytes, seq, self.head)
        signed = link.entry.signed_record
        try:
            if not link.entry.HasField("received_at"):
                raise VerificationFailed("entry has no received_at", seq=seq, reason="MALFORMED_ENTRY")
            if self.registry.rules >= rules.RULES_2:  # the writer stores canonical entries only
                refuse_unknown_fields(link.entry, "entry")
            now = timestamp_to_datetime(link.entry.received_at)
            if self.check_signatures:
                admitted = self._precheck(signed, now, prechecked)
            else:
                record = decode_record(signed.record_bytes)
                admitted = Admitted(signed, record, record.WhichOneof("body") or "", None)
            admission = admit(
                admitted,
                seq,
                self.registry,
                self._records.get,
                complete=self.records_complete,
                check_key=self.check_signatures,
            )
        except VerificationFailed:
            raise
        except LedgerError as e:
            raise VerificationFailed(e.message, seq=seq, reason=e.reason) from e
        if admission.correction_unchecked:
            self.unchecked_corrections.append(seq)
        self._records.update(admission.claims)
        self.frontier, _ = merkle.append_leaf(self.frontier, seq, link.leaf_hash)
        self.head = link.leaf_hash
        self.size = seq + 1
        if self.size in self._want_roots:
            self._roots[self.size] = self.root()

    def _precheck(self, signed: records_pb2.SignedRecord, now: datetime, done: Prechecked | None) -> Admitted:
        """precheck with the key history as of this entry; given `done`, only what needs it.
        Raises what precheck raises."""
        if done is None:
            return precheck(
                signed, now, self.registry.public_key, max_skew=self.max_skew, log_rules=self.registry.rules
            )
        if done.log_rules != self.registry.rules:
            return self._precheck(signed, now, None)
        if done.error is not None:
            raise done.error
        record = records_pb2.Record.FromString(signed.record_bytes)  # decode_record accepted these bytes
        key = self.registry.public_key(signed.key_id)
        if key is not None and (done.key != key or not done.signature_ok):
            check_signature(signed, key)  # not checked ahead with this key; or raise its failure here
        return Admitted(signed, record, record_kind(record), key)

    def feed_all(self, entries: Iterable[bytes], progress: Callable[[int], None] | None = None) -> None:
        for entry_bytes in entries:
            self.feed(entry_bytes)
            if progress is not None and self.size % 10_000 == 0:
                progress(self.size)

    def check_checkpoint(self, checkpoint: Checkpoint) -> None:
        """The tree we rebuilt must be the one the log signed. Raises VerificationFailed."""
        check_tree(checkpoint, self.size, self.root())


def check_tree(checkpoint: Checkpoint, size: int, root: bytes) -> None:
    """The recomputed tree (`size` leaves, `root`) must be the signed one. Raises VerificationFailed."""
    if checkpoint.size != size:
        raise VerificationFailed(
            f"checkpoint is for {checkpoint.size} entries but {size} were verified", reason="SIZE_MISMATCH"
        )
    if checkpoint.root_hash != root:
        raise VerificationFailed(
            f"root of the {size} entries ({root.hex()}) differs from the signed checkpoint's "
            f"({checkpoint.root_hash.hex()}): some entry was altered",
            reason="ROOT_MISMATCH",
        )


def open_signed_checkpoint(note: bytes, log_key: NoteVerifier) -> Checkpoint:
    """Check a checkpoint's signature with the log key. Raises VerificationFailed."""
    try:
        return open_checkpoint(note, log_key)
    except SigningError as e:
        raise VerificationFailed(f"checkpoint signature: {e}", reason="BAD_CHECKPOINT") from e


def check_cosignatures(note: bytes, witnesses: Sequence[CosignatureVerifier], quorum: int) -> list[Cosignature]:
    """The checkpoint note must carry valid cosignatures (c2sp.org/tlog-cosignature) from at
    least `quorum` distinct witnesses among `witnesses`: what makes a split view impossible
    unless that many witnesses collude. Checks the cosignatures only; the log's signature is
    open_signed_checkpoint's. Returns the valid cosignatures by the given witnesses.

    Fails closed: a quorum below 1 or above the number of distinct witnesses given (the same
    public key given twice, under any names, counts once), or a line by a given witness that
    does not verify.

    Raises VerificationFailed (reason BAD_QUORUM, BAD_COSIGNATURE or NO_QUORUM).
    """
    # Distinct by public key, not by (name, key): the cosigned message does not include the
    # name, so one witness's line verifies under any name given with its key.
    distinct = list({w.key.raw: w for w in witnesses}.values())
    if not 1 <= quorum <= len(distinct):
        raise VerificationFailed(
            f"a quorum of {quorum} cannot be met by {len(distinct)} distinct witness key(s)", reason="BAD_QUORUM"
        )
    try:
        _, cosigs = open_cosignatures(note, distinct)
    except SigningError as e:
        raise VerificationFailed(f"checkpoint cosignature: {e}", reason="BAD_COSIGNATURE") from e
    if len(cosigs) < quorum:
        names = ", ".join(c.name for c in cosigs) or "none"
        raise VerificationFailed(
            f"the checkpoint carries valid cosignatures from {len(cosigs)} of the {len(distinct)} given witnesses "
            f"({names}); the quorum is {quorum}",
            reason="NO_QUORUM",
        )
    return cosigs


def check_consistency(old: Checkpoint, new: Checkpoint, proof: list[bytes]) -> None:
    """Raises VerificationFailed unless `new` extends `old` (both already signature-checked)."""
    if old.size == new.size and old.root_hash == new.root_hash:
        return
    if old.size == 0:  # every tree extends the empty one (RFC 9162 defines no proof for it)
        if old.root_hash != merkle.EMPTY_ROOT:
            raise VerificationFailed("a checkpoint of size 0 must carry the empty tree's root", reason="NOT_CONSISTENT")
        return
    try:
        merkle.verify_consistency(old.size, new.size, old.root_hash, new.root_hash, proof)
    except ProofError as e:
        raise VerificationFailed(
            f"the log of size {new.size} is not an extension of the earlier checkpoint of size {old.size}: {e}",
            reason="NOT_CONSISTENT",
        ) from e
