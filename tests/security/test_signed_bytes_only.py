"""Finding 6 of the partners issue: unknown fields outside the signed record were stored in the
entry for ever (a 167-byte record carried 3.9 MB of junk past the record size cap and broke
export-tiles). Only signed bytes are stored now: the server refuses a SignedRecord carrying
fields it does not know, the entry is built from the three signed fields alone, and a verifier
of a rules-2 log refuses an entry that is not canonical."""

from __future__ import annotations

from types import SimpleNamespace

import grpc
import pytest
from helpers import log_state, shipment, signed

from lotledger.ledger.errors import InvalidRecord, VerificationFailed
from lotledger.ledger.tlog import merkle
from lotledger.ledger.tlog.entries import build_entry
from lotledger.ledger.verify.verifier import LogVerifier
from lotledger.v1 import records_pb2


def _with_junk(message: records_pb2.SignedRecord, size: int) -> records_pb2.SignedRecord:
    """The same SignedRecord with an unknown length-delimited field 15 of `size` bytes."""
    junk = bytes([15 << 3 | 2]) + _varint(size) + b"x" * size
    return records_pb2.SignedRecord.FromString(message.SerializeToString() + junk)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def test_junk_beside_a_signed_record_is_refused_and_nothing_is_stored(served: SimpleNamespace) -> None:
    record = signed(shipment("acme"), served.world.keys["acme"])
    before = log_state(served.ledger)
    with pytest.raises(InvalidRecord) as info:
        served.client.append(_with_junk(record, 100_000))
    assert (info.value.reason, info.value.field) == ("UNKNOWN_FIELDS", "signed_record")
    cause = info.value.__cause__
    assert isinstance(cause, grpc.RpcError) and cause.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert log_state(served.ledger) == before
    result = served.client.append(record)  # the same record, as signed, goes in
    stored = records_pb2.Entry.FromString(served.ledger.entry(result.seq)[0]).signed_record
    assert stored.SerializeToString() == record.SerializeToString()


def test_entries_are_built_from_the_signed_fields_only(served: SimpleNamespace) -> None:
    record = signed(shipment("acme"), served.world.keys["acme"])
    assert build_entry(3, bytes(32), 1, _with_junk(record, 1000)) == build_entry(3, bytes(32), 1, record)


def test_a_verifier_of_a_rules_2_log_refuses_a_non_canonical_entry(served: SimpleNamespace) -> None:
    ledger = served.ledger
    entries = [e for _, chunk in ledger.entries(0, ledger.size) for e in chunk]
    padded = records_pb2.Entry.FromString(
        build_entry(len(entries), merkle.leaf_hash(entries[-1]), 1, signed(shipment("acme"), served.world.keys["acme"]))
    )
    forged = padded.SerializeToString() + bytes([15 << 3 | 2, 3]) + b"xyz"
    verifier = LogVerifier()
    for entry in entries:
        verifier.feed(entry)
    with pytest.raises(VerificationFailed) as info:
        verifier.feed(forged)
    assert (info.value.seq, info.value.reason) == (len(entries), "UNKNOWN_FIELDS")
