"""The regulator's verifier on logs a dishonest server could serve: built entry by entry
(no server involved), each forgery must fail and name its entry."""

from __future__ import annotations

import time

import pytest
from helpers import registration, revocation, shipment, signed

from lotledger.ledger.errors import VerificationFailed
from lotledger.ledger.tlog import merkle
from lotledger.ledger.tlog.entries import ZERO_HASH, build_entry
from lotledger.ledger.verify.verifier import LogVerifier, check_consistency
from lotledger.signing.keys import SigningKey
from lotledger.signing.note import Checkpoint
from lotledger.v1 import records_pb2


class Forger:
    """Writes entries the way the server does, but with no checks at all."""

    def __init__(self) -> None:
        self.entries: list[bytes] = []
        self.head = ZERO_HASH

    def add(self, signed_record: records_pb2.SignedRecord) -> int:
        seq = len(self.entries)
        entry = build_entry(seq, self.head, time.time_ns(), signed_record)
        self.entries.append(entry)
        self.head = merkle.leaf_hash(entry)
        return seq


@pytest.fixture
def log() -> tuple[Forger, SigningKey, SigningKey]:
    admin, acme = SigningKey.generate(), SigningKey.generate()
    forger = Forger()
    genesis = registration("admin", "admin", records_pb2.ROLE_ADMIN, admin)
    forger.add(signed(genesis, admin))
    forger.add(signed(registration("admin", "acme", records_pb2.ROLE_SUPPLIER, acme), admin))
    for _ in range(3):
        forger.add(signed(shipment(), acme))
    return forger, admin, acme


def run(entries: list[bytes]) -> LogVerifier:
    verifier = LogVerifier()
    for e in entries:
        verifier.feed(e)
    return verifier


def failure(entries: list[bytes]) -> VerificationFailed:
    with pytest.raises(VerificationFailed) as info:
        run(entries)
    return info.value


def test_honest_log_verifies(log: tuple[Forger, SigningKey, SigningKey]) -> None:
    forger, _, _ = log
    verifier = run(forger.entries)
    tree = merkle.MemoryTree()
    for e in forger.entries:
        tree.append(merkle.leaf_hash(e))
    verifier.check_checkpoint(Checkpoint("o", tree.size, tree.root()))


def test_key_used_after_its_revocation_fails(log: tuple[Forger, SigningKey, SigningKey]) -> None:
    forger, admin, acme = log
    forger.add(signed(revocation("admin", acme.key_id), admin))
    bad = forger.add(signed(shipment(), acme))
    err = failure(forger.entries)
    assert err.seq == bad and err.reason == "KEY_REVOKED"


def test_records_signed_before_revocation_stay_valid(log: tuple[Forger, SigningKey, SigningKey]) -> None:
    forger, admin, acme = log
    forger.add(signed(revocation("admin", acme.key_id), admin))
    assert run(forger.entries).size == 6


def test_unregistered_signer_and_forged_genesis(log: tuple[Forger, SigningKey, SigningKey]) -> None:
    forger, _, _ = log
    seq = forger.add(signed(shipment(), SigningKey.generate()))
    assert failure(forger.entries).seq == seq
    impostor = Forger()
    impostor.add(signed(shipment(), SigningKey.generate()))
    assert failure(impostor.entries).reason == "GENESIS_REQUIRED"


def test_altered_reordered_or_dropped_entries_fail(log: tuple[Forger, SigningKey, SigningKey]) -> None:
    forger, _, _ = log
    entries = forger.entries
    swapped = [*entries[:2], entries[3], entries[2], *entries[4:]]
    assert failure(swapped).seq == 2
    assert failure(entries[:2] + entries[3:]).seq == 2
    altered = list(entries)
    altered[3] = altered[3][:-3] + bytes([altered[3][-3] ^ 0x40]) + altered[3][-2:]
    assert failure(altered).seq in (3, 4)


def test_duplicate_record_id_fails(log: tuple[Forger, SigningKey, SigningKey]) -> None:
    forger, _, acme = log
    first = shipment(record_id="same-id")
    forger.add(signed(first, acme))
    seq = forger.add(signed(shipment(record_id="same-id", amount="3"), acme))
    err = failure(forger.entries)
    assert (err.seq, err.reason) == (seq, "DUPLICATE_RECORD_ID")


def test_root_mismatch_and_wrong_size(log: tuple[Forger, SigningKey, SigningKey]) -> None:
    forger, _, _ = log
    verifier = run(forger.entries)
    with pytest.raises(VerificationFailed, match="differs"):
        verifier.check_checkpoint(Checkpoint("o", verifier.size, bytes(32)))
    with pytest.raises(VerificationFailed, match="entries"):
        verifier.check_checkpoint(Checkpoint("o", verifier.size + 1, verifier.root()))


def test_inconsistent_checkpoints(log: tuple[Forger, SigningKey, SigningKey]) -> None:
    forger, _, _ = log
    tree = merkle.MemoryTree()
    for e in forger.entries:
        tree.append(merkle.leaf_hash(e))
    old, new = Checkpoint("o", 3, tree.root(3)), Checkpoint("o", 5, tree.root(5))
    check_consistency(old, new, tree.consistency_proof(3, 5))
    with pytest.raises(VerificationFailed):
        check_consistency(Checkpoint("o", 3, bytes(32)), new, tree.consistency_proof(3, 5))


def test_every_tree_extends_the_empty_one() -> None:
    empty = Checkpoint("o.example/log", 0, merkle.EMPTY_ROOT)
    grown = Checkpoint("o.example/log", 5, bytes(range(32)))
    check_consistency(empty, grown, [])  # nothing to prove
    with pytest.raises(VerificationFailed) as info:
        check_consistency(Checkpoint("o.example/log", 0, bytes(32)), grown, [])
    assert info.value.reason == "NOT_CONSISTENT"


def test_a_received_at_datetime_cannot_hold_fails_as_that_entry() -> None:
    admin = SigningKey.generate()
    first = build_entry(
        0, ZERO_HASH, time.time_ns(), signed(registration("admin", "admin", records_pb2.ROLE_ADMIN, admin), admin)
    )
    entry = records_pb2.Entry.FromString(first)
    entry.received_at.seconds = 2**62
    with pytest.raises(VerificationFailed) as info:
        LogVerifier().feed(entry.SerializeToString())
    assert info.value.seq == 0 and info.value.reason == "INVALID_TIME"
