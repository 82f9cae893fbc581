"""Admitting a signed record: the checks that need no log state, run before the writer.

`precheck` is pure and thread-safe: the server runs it on request threads (Ed25519
verification releases the GIL, so both cores verify), and the verifier runs it on every
downloaded entry with `now` = the entry's received_at. What does need log state (key status,
roles, record-id uniqueness) happens in the single writer via `Registry.authorize`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from lotledger.ledger.core.registry import Registry
from lotledger.ledger.core.validation import (
    DEFAULT_MAX_SKEW,
    MAX_RECORD_BYTES,
    decode_record,
    record_kind,
    validate_record,
)
from lotledger.ledger.errors import InvalidRecord, RecordTooLarge, Unauthenticated
from lotledger.signing.errors import SigningError
from lotledger.signing.keys import verify_record
from lotledger.v1 import records_pb2

_KEY_ID = re.compile(r"[0-9a-f]{64}")


@dataclass
class Admitted:
    """A signed record that parsed and validated; `verified_key` is the raw public key its
    signature verified with, or None if that key was unknown when it was prechecked."""

    signed: records_pb2.SignedRecord
    record: records_pb2.Record
    kind: str
    verified_key: bytes | None


def precheck(
    signed: records_pb2.SignedRecord,
    now: datetime,
    lookup_key: Callable[[str], bytes | None],
    *,
    max_skew: timedelta = DEFAULT_MAX_SKEW,
    max_age: timedelta | None = None,
) -> Admitted:
    """Size, syntax, validity and (when the key is known) the signature. With `max_age` (the
    server's admission window; a verifier leaves it out, since the window is the server's
    policy and not part of the record's validity) a record created longer ago is refused, so
    a signed record held back or captured long ago cannot be slipped into the log now.

    Raises RecordTooLarge, InvalidRecord (STALE_TIME among others), Unauthenticated
    (malformed key id, bad signature).
    """
    if len(signed.record_bytes) > MAX_RECORD_BYTES:
        raise RecordTooLarge(
            f"record is {len(signed.record_bytes)} bytes; the limit is {MAX_RECORD_BYTES}",
            reason="RECORD_TOO_LARGE",
            field="signed_record.record_bytes",
        )
    if not _KEY_ID.fullmatch(signed.key_id):
        raise Unauthenticated(
            "signed_record.key_id must be the lowercase hex SHA-256 of the raw Ed25519 public key",
            reason="MALFORMED_KEY_ID",
            field="signed_record.key_id",
        )
    record = decode_record(signed.record_bytes)
    validate_record(record, now, max_skew=max_skew)
    if max_age is not None:
        check_age(record, now, max_age)
    public_key = lookup_key(signed.key_id)
    if public_key is not None:
        check_signature(signed, public_key)
    return Admitted(signed, record, record_kind(record), public_key)


def check_age(record: records_pb2.Record, now: datetime, max_age: timedelta) -> None:
    """Raises InvalidRecord (STALE_TIME) if created_at lies more than `max_age` before `now`.
    Call after validate_record, which has checked that created_at is a representable time."""
    oldest = now - max_age
    if record.created_at.ToNanoseconds() < int(oldest.timestamp()) * 1_000_000_000:
        raise InvalidRecord(
            f"created_at {record.created_at.ToJsonString()} is older than the accepted window "
            f"({max_age.total_seconds():g} s before the server's clock, {oldest.isoformat()})",
            reason="STALE_TIME",
            field="created_at",
        )


def check_signature(signed: records_pb2.SignedRecord, public_key: bytes) -> None:
    """Raises Unauthenticated unless the signature verifies over the bytes as received."""
    try:
        verify_record(public_key, signed.record_bytes, signed.signature)
    except SigningError as e:
        raise Unauthenticated(
            f"signature does not verify with key {signed.key_id} over record_bytes "
            "(sign b'lotledger/record/v1\\n' + the exact serialized bytes)",
            reason="BAD_SIGNATURE",
            field="signed_record.signature",
        ) from e


def authorize(admitted: Admitted, registry: Registry) -> None:
    """The stateful half: verify now if the key was unknown at precheck, then ask the registry.

    Raises Unauthenticated or PermissionDenied.
    """
    signed = admitted.signed
    if admitted.verified_key is None:
        key = registry.public_key(signed.key_id)
        if key is None and registry.is_empty and admitted.kind == "participant_registered":
            key = admitted.record.participant_registered.public_key  # genesis: self-signed
        if key is not None:
            check_signature(signed, key)
            admitted.verified_key = key
    registry.authorize(admitted.record, signed.key_id, admitted.verified_key)
