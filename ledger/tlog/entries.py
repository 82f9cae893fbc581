"""Entries and the hash chain (DESIGN section 4): building them once, reading them back.

The server serializes each Entry deterministically exactly once; those bytes are stored,
served and hashed. Nobody re-serializes an entry to check it.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import DecodeError

from lotledger.ledger.errors import VerificationFailed
from lotledger.ledger.tlog.merkle import leaf_hash
from lotledger.v1 import records_pb2

ZERO_HASH = bytes(32)


@dataclass(frozen=True)
class AppendResult:
    """What an append answered: the entry's place, its leaf hash and the server's time, and
    whether the record was there already (a retry). Here, not beside the writer, so that a
    client can name it without loading the store."""

    seq: int
    leaf_hash: bytes
    received_at_ns: int
    duplicate: bool = False


def build_entry(seq: int, prev_hash: bytes, received_at_ns: int, signed: records_pb2.SignedRecord) -> bytes:
    """The entry bytes for position `seq`; `signed` carries the submitter's bytes untouched.
    Only its three signed fields go in: whatever else a client sent (unknown fields) is never
    stored, so an entry is canonical and no bigger than its record allows."""
    clean = records_pb2.SignedRecord(record_bytes=signed.record_bytes, key_id=signed.key_id, signature=signed.signature)
    entry = records_pb2.Entry(seq=seq, prev_hash=prev_hash, signed_record=clean)
    entry.received_at.FromNanoseconds(received_at_ns)
    data: bytes = entry.SerializeToString(deterministic=True)
    return data


@dataclass(frozen=True)
class ChainLink:
    """One decoded entry with the hash it contributes to the chain and the tree."""

    entry: records_pb2.Entry
    leaf_hash: bytes


def decode_entry(entry_bytes: bytes, expected_seq: int, prev_hash: bytes) -> ChainLink:
    """Check one entry's place in the chain: it parses, has the expected seq, and links to
    the previous entry's leaf hash. Raises VerificationFailed naming the entry."""
    try:
        entry = records_pb2.Entry.FromString(entry_bytes)
    except DecodeError as e:
        raise VerificationFailed(f"entry bytes do not parse: {e}", seq=expected_seq, reason="MALFORMED_ENTRY") from e
    if entry.seq != expected_seq:
        raise VerificationFailed(f"entry claims seq {entry.seq}", seq=expected_seq, reason="WRONG_SEQ")
    if entry.prev_hash != prev_hash:
        raise VerificationFailed(
            f"prev_hash {entry.prev_hash.hex()} does not match the leaf hash of entry {expected_seq - 1} ({prev_hash.hex()})",
            seq=expected_seq,
            reason="BROKEN_CHAIN",
        )
    return ChainLink(entry, leaf_hash(entry_bytes))
