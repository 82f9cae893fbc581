"""Saved verifier states and increment starts, on logs built entry by entry (no server): a
resumed verifier ends exactly where a full one does, a damaged or foreign state is refused,
and the frontier an increment starts from is the one the tree has."""

from __future__ import annotations

import time

import pytest
from forged_log import ORIGIN, correction_of
from forged_log import ForgedLog as Log
from helpers import registration, revocation, shipment, signed

from lotledger.ledger.errors import ProofError, VerificationFailed
from lotledger.ledger.tlog import merkle
from lotledger.ledger.verify.increment import frontier_from_last_leaf
from lotledger.ledger.verify.state import VerifierState, check_extends, decode_state, encode_state
from lotledger.ledger.verify.verifier import LogVerifier
from lotledger.signing.keys import SigningKey
from lotledger.signing.note import Checkpoint, open_checkpoint, sign_note
from lotledger.v1 import records_pb2


def verified(entries: list[bytes], verifier: LogVerifier | None = None) -> LogVerifier:
    verifier = verifier or LogVerifier()
    for entry in entries:
        verifier.feed(entry)
    return verifier


@pytest.mark.parametrize("size", range(1, 131))
def test_the_last_leafs_proof_gives_the_frontier(size: int) -> None:
    tree = merkle.MemoryTree()
    frontier: list[bytes] = []
    for i in range(size):
        leaf = merkle.leaf_hash(i.to_bytes(4, "big"))
        frontier, _ = merkle.append_leaf(frontier, i, leaf)
        tree.append(leaf)
    proof = tree.inclusion_proof(size - 1, size)
    assert frontier_from_last_leaf(size, tree.perfect(0, size - 1), proof) == frontier
    with pytest.raises(ProofError):
        frontier_from_last_leaf(size, tree.perfect(0, size - 1), [*proof, proof[0] if proof else bytes(32)])
    if proof:
        with pytest.raises(ProofError):
            frontier_from_last_leaf(size, tree.perfect(0, size - 1), proof[:-1])


def test_a_resumed_verifier_ends_where_a_full_one_does() -> None:
    log = Log()
    log.shipments(20, "a")
    log.add(signed(correction_of("a-3"), log.acme))
    first = len(log.entries)
    note = log.note()
    state = VerifierState.capture(verified(log.entries), note, log.vkey)
    blob = b"".join(encode_state(state))
    # more entries, among them a correction of a record from before the state and a revocation
    log.add(signed(correction_of("a-5"), log.acme))
    log.shipments(7, "b")
    log.add(signed(revocation("admin", log.acme.key_id), log.admin))
    resumed = decode_state(blob, log.vkey).resume()
    verified(log.entries[first:], resumed)
    full = verified(log.entries)
    assert (resumed.size, resumed.head, resumed.root()) == (full.size, full.head, full.root())
    assert resumed.records() == full.records() and list(resumed.records()) == list(full.records())
    assert resumed.registry.keys == full.registry.keys
    assert resumed.registry.participants == full.registry.participants
    later = log.note()
    assert b"".join(encode_state(VerifierState.capture(resumed, later, log.vkey))) == b"".join(
        encode_state(VerifierState.capture(full, later, log.vkey))
    )


def test_a_resumed_verifier_still_sees_duplicates_of_records_before_it() -> None:
    log = Log()
    log.shipments(5, "a")
    blob = b"".join(encode_state(VerifierState.capture(verified(log.entries), log.note(), log.vkey)))
    log.add(signed(shipment(record_id="a-2"), log.acme))
    with pytest.raises(VerificationFailed) as info:
        verified(log.entries[7:], decode_state(blob, log.vkey).resume())
    assert (info.value.reason, info.value.seq) == ("DUPLICATE_RECORD_ID", 7)


def test_a_damaged_or_foreign_state_is_refused() -> None:
    log = Log()
    log.shipments(5, "a")
    blob = b"".join(encode_state(VerifierState.capture(verified(log.entries), log.note(), log.vkey)))
    assert decode_state(blob, log.vkey).size == 7
    for at in range(len(blob)):
        damaged = bytearray(blob)
        damaged[at] ^= 0x01
        with pytest.raises(VerificationFailed) as info:
            decode_state(bytes(damaged), log.vkey)
        assert info.value.reason == "BAD_STATE", at
    for cut in (0, 10, len(blob) // 2, len(blob) - 1):
        with pytest.raises(VerificationFailed, match="cut short|not a lotledger"):
            decode_state(blob[:cut], log.vkey)
    other = Log()
    with pytest.raises(VerificationFailed) as info:
        decode_state(blob, other.vkey)
    assert info.value.reason == "WRONG_LOG"
    # Rewritten with a valid checksum (it has no key) but another chain head: the 7-entry
    # tree's last subtree is its last leaf, which the head must be.
    state = VerifierState.capture(verified(log.entries), log.note(), log.vkey)
    state.head = bytes(32)
    with pytest.raises(VerificationFailed, match="chain head") as info:
        decode_state(b"".join(encode_state(state)), log.vkey)
    assert info.value.reason == "BAD_STATE"


def test_capture_needs_the_signed_checkpoint_of_its_tree_and_every_record() -> None:
    log = Log()
    log.shipments(4, "a")
    full = verified(log.entries)
    with pytest.raises(VerificationFailed) as info:
        VerifierState.capture(full, log.note(3), log.vkey)
    assert info.value.reason == "SIZE_MISMATCH"
    with pytest.raises(VerificationFailed) as info:
        VerifierState.capture(full, sign_note(Checkpoint(ORIGIN, 6, bytes(32)).body(), log.signer), log.vkey)
    assert info.value.reason == "ROOT_MISMATCH"
    partial = LogVerifier.resume(
        size=full.size,
        head=full.head,
        frontier=full.frontier,
        registry=full.registry,
        records={},
        records_complete=False,
    )
    log.add(signed(correction_of("a-1"), log.acme))
    partial.feed(log.entries[-1])  # a correction of a record it never saw: listed, not failed
    assert partial.unchecked_corrections == [6]
    with pytest.raises(VerificationFailed) as info:
        VerifierState.capture(partial, log.note(), log.vkey)
    assert info.value.reason == "INCOMPLETE_STATE"


def test_check_extends_names_rollbacks_and_forks() -> None:
    log = Log()
    log.shipments(6, "a")
    held = open_checkpoint(log.note(5), log.vkey)
    newer = open_checkpoint(log.note(8), log.vkey)
    check_extends(held, newer, log.tree.consistency_proof(5, 8))
    check_extends(held, held, None)
    with pytest.raises(VerificationFailed) as info:
        check_extends(newer, held, None)
    assert info.value.reason == "ROLLBACK"
    forked = Checkpoint(ORIGIN, 5, bytes(32))
    with pytest.raises(VerificationFailed) as info:
        check_extends(held, forked, None)
    assert info.value.reason == "NOT_CONSISTENT" and "forked" in info.value.message
    with pytest.raises(VerificationFailed) as info:
        check_extends(held, newer, log.tree.consistency_proof(4, 8))
    assert info.value.reason == "NOT_CONSISTENT"


def test_an_increments_key_history_must_start_at_the_genesis_entry() -> None:
    """Only entry 0 may register an admin with that admin's own key. A key history that
    starts later (entry 0 left out) would otherwise let a self-signed admin in anywhere."""
    from lotledger.ledger.tlog.bundle import KeyHistoryEntry
    from lotledger.ledger.tlog.entries import build_entry
    from lotledger.ledger.verify.increment import KeyHistory

    admin, mallory = SigningKey.generate(), SigningKey.generate()
    tree = merkle.MemoryTree()
    entries = []
    for seq, (who, key) in enumerate((("admin", admin), ("mallory", mallory))):
        reg = signed(registration(who, who, records_pb2.ROLE_ADMIN, key), key)
        entries.append(build_entry(seq, tree.perfect(0, seq - 1) if seq else bytes(32), time.time_ns(), reg))
        tree.append(merkle.leaf_hash(entries[-1]))
    prior = Checkpoint("o.example/log", 2, tree.root(2))
    history = KeyHistory(prior)
    with pytest.raises(VerificationFailed) as info:
        history.feed(KeyHistoryEntry(1, entries[1], tree.inclusion_proof(1, 2)))
    assert info.value.seq == 1 and info.value.reason == "BAD_KEY_HISTORY"
    assert "genesis entry 0" in str(info.value)
