"""Whatever bytes arrive, admission either accepts them or raises one of our errors: never
another exception (that would be a 500 and a stack trace for a partner)."""

from __future__ import annotations

from datetime import UTC, datetime

from helpers import shipment
from hypothesis import given, settings
from hypothesis import strategies as st

from lotledger.ledger.core.admission import precheck
from lotledger.ledger.errors import LedgerError
from lotledger.ledger.tlog.entries import decode_entry
from lotledger.signing.keys import SigningKey, sign_record
from lotledger.v1 import records_pb2

KEY = SigningKey.from_raw_seed(bytes(32))
GOOD = shipment("acme").SerializeToString()


def lookup(key_id: str) -> bytes | None:
    return KEY.public.raw if key_id == KEY.key_id else None


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600), st.sampled_from(["", KEY.key_id, "0" * 64, "zz"]), st.binary(max_size=70))
def test_random_record_bytes(record_bytes: bytes, key_id: str, signature: bytes) -> None:
    signed = records_pb2.SignedRecord(record_bytes=record_bytes, key_id=key_id, signature=signature)
    try:
        precheck(signed, datetime.now(UTC), lookup)
    except LedgerError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=len(GOOD) - 1), st.integers(min_value=1, max_value=255))
def test_mutated_valid_records_signed_by_a_known_key(position: int, xor: int) -> None:
    data = bytearray(GOOD)
    data[position] ^= xor
    mutated = bytes(data)
    signed = records_pb2.SignedRecord(record_bytes=mutated, key_id=KEY.key_id, signature=sign_record(KEY, mutated))
    try:
        precheck(signed, datetime.now(UTC), lookup)
    except LedgerError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_entry_bytes(entry_bytes: bytes) -> None:
    try:
        decode_entry(entry_bytes, 0, bytes(32))
    except LedgerError:
        pass
