"""Hash-only verification: the chain and the tree, computed in bulk, must agree with the RFC
6962 reference at every size, and every change to the entries must fail exactly as the full
verifier's entry checks fail (same entry, reason and message)."""

from __future__ import annotations

import os
import time

import pytest

from lotledger.ledger.errors import VerificationFailed
from lotledger.ledger.tlog import merkle
from lotledger.ledger.tlog.entries import ZERO_HASH, build_entry, decode_entry
from lotledger.ledger.verify.hashes import CHUNK_LEVEL, HashVerifier, append_perfect, perfect_root
from lotledger.signing.note import Checkpoint
from lotledger.v1 import records_pb2

CHUNK = 1 << CHUNK_LEVEL


def chain(n: int) -> list[bytes]:
    """n entries linked as the server links them; their records are noise (nothing here reads them)."""
    entries, head = [], ZERO_HASH
    for seq in range(n):
        signed = records_pb2.SignedRecord(record_bytes=os.urandom(40), key_id="ab" * 32, signature=os.urandom(64))
        entry = build_entry(seq, head, time.time_ns(), signed)
        entries.append(entry)
        head = merkle.leaf_hash(entry)
    return entries


@pytest.fixture(scope="module")
def entries() -> list[bytes]:
    return chain(2 * CHUNK + 5)


def reference_root(entries: list[bytes]) -> bytes:
    return merkle.root_from_leaf_hashes([merkle.leaf_hash(e) for e in entries])


def verified(entries: list[bytes]) -> HashVerifier:
    verifier = HashVerifier()
    verifier.feed_all(entries)
    return verifier


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 5])
def test_the_root_is_the_rfc_6962_root_at_every_size(entries: list[bytes], n: int) -> None:
    verifier = verified(entries[:n])
    assert verifier.size == n
    assert verifier.root() == reference_root(entries[:n])
    verifier.check_checkpoint(Checkpoint("o", n, reference_root(entries[:n])))


def test_feeding_in_pieces_and_roots_at_earlier_sizes(entries: list[bytes]) -> None:
    verifier = HashVerifier()
    wanted = [1, 5, CHUNK - 1, CHUNK, CHUNK + 3, 2 * CHUNK]
    for size in wanted:
        verifier.want_root_at(size)
    for start in range(0, len(entries), 1000):
        verifier.feed_all(entries[start : start + 1000])
    for size in wanted:
        assert verifier.root_at(size) == reference_root(entries[:size]), size
    assert verifier.root_at(len(entries)) == reference_root(entries)


def test_perfect_subtrees_extend_the_frontier_as_leaves_do() -> None:
    leaves = [os.urandom(32) for _ in range(48)]
    assert perfect_root(leaves[:16]) == merkle.root_from_leaf_hashes(leaves[:16])
    frontier: list[bytes] = []
    frontier = append_perfect(frontier, 0, 5, perfect_root(leaves[:32]))
    frontier = append_perfect(frontier, 32, 3, perfect_root(leaves[32:40]))
    frontier = append_perfect(frontier, 40, 3, perfect_root(leaves[40:48]))
    assert merkle.root_from_frontier(frontier, 48) == merkle.root_from_leaf_hashes(leaves)
    with pytest.raises(ValueError, match="cannot start"):
        append_perfect(frontier, 44, 3, leaves[0])


def expected_failure(entries: list[bytes]) -> VerificationFailed:
    """What the full verifier's entry checks (decode_entry, step 1) say about these entries."""
    head = ZERO_HASH
    for seq, e in enumerate(entries):
        try:
            head = decode_entry(e, seq, head).leaf_hash
        except VerificationFailed as err:
            return err
    raise AssertionError("the entries are fine")


def same_failure(entries: list[bytes]) -> VerificationFailed:
    with pytest.raises(VerificationFailed) as info:
        verified(entries)
    want = expected_failure(entries)
    assert (info.value.seq, info.value.reason, str(info.value)) == (want.seq, want.reason, str(want))
    return info.value


def test_a_changed_byte_breaks_the_chain_at_the_next_entry(entries: list[bytes]) -> None:
    k = CHUNK + 10
    changed = list(entries)
    changed[k] = changed[k][:-5] + bytes([changed[k][-5] ^ 1]) + changed[k][-4:]  # inside the record
    err = same_failure(changed)
    assert (err.seq, err.reason) == (k + 1, "BROKEN_CHAIN")


def test_a_changed_byte_in_the_last_entry_changes_the_root(entries: list[bytes]) -> None:
    changed = list(entries[:100])
    changed[-1] = changed[-1][:-1] + bytes([changed[-1][-1] ^ 1])
    verifier = verified(changed)  # nothing after it to break the chain...
    with pytest.raises(VerificationFailed) as info:  # ...but the signed root
        verifier.check_checkpoint(Checkpoint("o", 100, reference_root(entries[:100])))
    assert info.value.reason == "ROOT_MISMATCH"
    with pytest.raises(VerificationFailed) as info:
        verified(entries[:99]).check_checkpoint(Checkpoint("o", 100, reference_root(entries[:100])))
    assert info.value.reason == "SIZE_MISMATCH"


def test_a_broken_chain_a_wrong_seq_and_garbage(entries: list[bytes]) -> None:
    relinked = list(entries[:50])
    signed = records_pb2.Entry.FromString(relinked[30]).signed_record
    relinked[30] = build_entry(30, bytes(32), time.time_ns(), signed)
    assert (same_failure(relinked).seq, same_failure(relinked).reason) == (30, "BROKEN_CHAIN")
    swapped = [*entries[:20], entries[21], entries[20], *entries[22:40]]
    assert (same_failure(swapped).seq, same_failure(swapped).reason) == (20, "WRONG_SEQ")
    garbage = [*entries[: CHUNK + 2], b"\xff\xff\xff"]
    assert (same_failure(garbage).seq, same_failure(garbage).reason) == (CHUNK + 2, "MALFORMED_ENTRY")
