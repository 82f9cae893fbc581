"""Checking where an increment bundle starts, without the entries before it: pure, no I/O.

An increment (ledger/tlog/bundle.py, `lotledger-bundle/2`) holds the entries from tree size F to N.
To check them as the live verify would, a verifier needs what the first F entries would have
given it: the chain head (the leaf hash of entry F-1), the Merkle frontier at F, and the key
history (who held which key, and which keys were revoked, as of F). The steps, in order:

  1. the prior checkpoint P (size F) verifies with the log key, like the final one C;
  2. the consistency proof from P to C holds, so C's tree extends P's;
  3. the leaf hash of entry F-1 with its inclusion proof leads to P's root; the proof of the
     last leaf of a tree holds exactly the frontier's hashes, so the frontier comes from it;
  4. every key history entry is in the log at P (its inclusion proof leads to P's root), they
     come in log order, and each is an admin record admitted by the one admission step
     (ledger/core/admission.py `admit`, as the writer and LogVerifier.feed admit it) against the
     key history before it; replaying them gives the key history at F.

What no proof can show is that the key history leaves nothing out (a revocation dropped from
the bundle would go unseen): a verifier that holds its own state at F compares the replayed
key history with its own (`registry_difference`); one without a state says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from google.protobuf.message import DecodeError

from lotledger.ledger.core.admission import admit, precheck
from lotledger.ledger.core.policy import ADMIN_KINDS
from lotledger.ledger.core.registry import Registry
from lotledger.ledger.core.validation import DEFAULT_MAX_SKEW, timestamp_to_datetime
from lotledger.ledger.errors import LedgerError, ProofError, VerificationFailed
from lotledger.ledger.tlog import merkle
from lotledger.ledger.tlog.bundle import Increment, KeyHistoryEntry
from lotledger.ledger.verify.verifier import SeenRecord, check_consistency, open_signed_checkpoint
from lotledger.signing.note import Checkpoint, NoteVerifier
from lotledger.v1 import records_pb2


def frontier_from_last_leaf(size: int, leaf: bytes, proof: list[bytes]) -> list[bytes]:
    """The frontier of the tree of `size` (one perfect-subtree hash per set bit of size,
    largest first, as merkle.append_leaf keeps it) from the RFC 9162 inclusion proof of its
    last leaf. That proof is, leaf side first, the left siblings inside the rightmost perfect
    subtree, then the other frontier hashes from the smallest to the largest.

    Proves nothing by itself: the caller checks the frontier's root against a signed root.
    Raises ProofError (a size of 0, a proof of the wrong length, hashes not 32 bytes)."""
    if size < 1:
        raise ProofError("a tree of size 0 has no last leaf", reason="BAD_RANGE")
    inner = (size & -size).bit_length() - 1  # levels inside the rightmost perfect subtree
    if len(proof) != inner + size.bit_count() - 1:
        raise ProofError(
            f"the inclusion proof of the last leaf of a tree of size {size} has {inner + size.bit_count() - 1} "
            f"hashes, not {len(proof)}",
            reason="BAD_PROOF",
        )
    for i, h in enumerate([leaf, *proof]):
        if len(h) != merkle.HASH_SIZE:
            raise ProofError(f"hash {i} is {len(h)} bytes, not {merkle.HASH_SIZE}", reason="BAD_HASH")
    rightmost = leaf
    for sibling in proof[:inner]:
        rightmost = merkle.node_hash(sibling, rightmost)
    return [*reversed(proof[inner:]), rightmost]


@dataclass(frozen=True)
class IncrementStart:
    """Where a verified increment starts: the prior checkpoint, and the chain head and the
    frontier at its size, all proven against the prior checkpoint's signed root."""

    prior: Checkpoint
    head: bytes
    frontier: list[bytes]


def open_increment(increment: Increment, checkpoint: Checkpoint, log_key: NoteVerifier) -> IncrementStart:
    """Steps 1-3 of the module doc, for a bundle ending at `checkpoint` (already verified).

    Raises VerificationFailed: BAD_CHECKPOINT (the prior checkpoint's signature), BAD_PRIOR (an
    empty or larger prior checkpoint, or a last leaf that does not lead to its root),
    NOT_CONSISTENT (the consistency proof)."""
    try:
        prior = open_signed_checkpoint(increment.prior_note, log_key)
    except VerificationFailed as e:
        raise VerificationFailed(f"bundle: the prior checkpoint: {e.message}", reason=e.reason) from e
    if not 0 < prior.size <= checkpoint.size:
        raise VerificationFailed(
            f"bundle: the prior checkpoint is of size {prior.size}, not between 1 and the bundle's {checkpoint.size}",
            reason="BAD_PRIOR",
        )
    try:
        check_consistency(prior, checkpoint, increment.consistency)
    except VerificationFailed as e:
        raise VerificationFailed(
            f"bundle: the consistency proof from {prior.size} to {checkpoint.size} does not hold: {e.message}",
            reason=e.reason,
        ) from e
    last = prior.size - 1
    try:
        frontier = frontier_from_last_leaf(prior.size, increment.last_leaf, increment.last_leaf_proof)
        merkle.verify_inclusion(last, prior.size, increment.last_leaf, increment.last_leaf_proof, prior.root_hash)
    except ProofError as e:
        raise VerificationFailed(
            f"bundle: the last leaf (entry {last}) is not proven in the prior checkpoint of size {prior.size}: {e.message}",
            seq=last,
            reason="BAD_PRIOR",
        ) from e
    if merkle.root_from_frontier(frontier, prior.size) != prior.root_hash:  # implied by the proof; kept explicit
        raise VerificationFailed("bundle: the last leaf's proof does not give the prior root", reason="BAD_PRIOR")
    return IncrementStart(prior, increment.last_leaf, frontier)


class KeyHistory:
    """Step 4: replays an increment's key history entries, in order, into `registry`, and
    keeps their record ids in `records` (the only records before the increment it knows)."""

    def __init__(self, prior: Checkpoint, *, max_skew: timedelta = DEFAULT_MAX_SKEW):
        self.prior = prior
        self.max_skew = max_skew
        self.registry = Registry()
        self.records: dict[str, SeenRecord] = {}
        self.last_seq: int | None = None

    def _bad(self, seq: int, message: str) -> VerificationFailed:
        return VerificationFailed(f"bundle: key history entry {seq} {message}", seq=seq, reason="BAD_KEY_HISTORY")

    def feed(self, item: KeyHistoryEntry) -> None:
        """Admit the next key history entry. Raises VerificationFailed naming it."""
        seq, prior = item.seq, self.prior
        if self.last_seq is not None and seq <= self.last_seq:
            raise self._bad(seq, f"comes after entry {self.last_seq}: the key history must be in log order")
        if seq >= prior.size:
            raise self._bad(seq, f"is not before the prior checkpoint's {prior.size} entries")
        try:
            merkle.verify_inclusion(seq, prior.size, merkle.leaf_hash(item.entry), item.proof, prior.root_hash)
        except ProofError as e:
            raise self._bad(
                seq, f"is not in the log at the prior checkpoint ({prior.size} entries): {e.message}"
            ) from e
        try:
            entry = records_pb2.Entry.FromString(item.entry)
        except DecodeError as e:
            raise self._bad(seq, f"does not parse: {e}") from e
        if entry.seq != seq:
            raise self._bad(seq, f"claims seq {entry.seq}")
        if self.registry.is_empty and seq != 0:
            # Only entry 0 may register an admin with its own key (the genesis rule): a key
            # history that starts later would let a self-signed admin in anywhere.
            raise self._bad(seq, "comes first, but the key history must start with the genesis entry 0")
        signed = entry.signed_record
        try:
            now = timestamp_to_datetime(entry.received_at)
            admitted = precheck(
                signed, now, self.registry.public_key, max_skew=self.max_skew, log_rules=self.registry.rules
            )
            if admitted.kind not in ADMIN_KINDS:
                raise self._bad(seq, f"is a {admitted.kind} record, not a key registration, revocation or location")
            admission = admit(admitted, seq, self.registry, self.records.get, complete=False)
        except VerificationFailed:
            raise
        except LedgerError as e:
            raise VerificationFailed(f"key history: {e.message}", seq=seq, reason=e.reason) from e
        self.records.update(admission.claims)
        self.last_seq = seq


def registry_difference(replayed: Registry, held: Registry) -> str | None:
    """None when an increment's replayed key history is the one a saved state holds; otherwise
    what differs, for the message (a key history frame left out or added)."""
    tables: tuple[tuple[str, Mapping[str, object], Mapping[str, object]], ...] = (
        ("key", replayed.keys, held.keys),
        ("participant", replayed.participants, held.participants),
        ("location", replayed.locations, held.locations),
    )
    for what, mine, theirs in tables:
        for name, value in theirs.items():
            if name not in mine:
                return f"the {what} {name} of the state is missing from the bundle's key history"
            if mine[name] != value:
                return f"the {what} {name} differs: the state has {value}, the bundle's key history {mine[name]}"
        for name in mine:
            if name not in theirs:
                return f"the {what} {name} of the bundle's key history is not in the state"
    return None
