"""Admitting a signed record into a log: the one rule the writer and every verifier apply.

Two halves:
- `precheck` needs no log state (size, key id, parse, validity, and the signature when the key
  is known). It is pure and thread-safe: the server runs it on request threads (Ed25519
  verification releases the GIL, so both cores verify), the verifiers on every entry they
  read, with `now` = the entry's received_at.
- `admit` needs the log as of the entry: the key history (`Registry`) and the records before
  it. The writer (ledger/log.py), the regulator's verifier (ledger/verify/verifier.py), the
  increment checker (ledger/verify/increment.py) and the evidence checker (trace/evidence.py)
  all call it, so what the server accepts is exactly what each verifier accepts, in the same
  order and for the same reason. tests/ledger/test_admission_differential.py holds them to it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from lotledger.ledger.core import rules
from lotledger.ledger.core.policy import ADMIN_KINDS
from lotledger.ledger.core.registry import Registry
from lotledger.ledger.core.validation import (
    DEFAULT_MAX_SKEW,
    MAX_RECORD_BYTES,
    decode_record,
    record_kind,
    validate_record,
)
from lotledger.ledger.errors import Conflict, InvalidRecord, PermissionDenied, RecordTooLarge, Unauthenticated
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
    log_rules: int = rules.RULES_1,
) -> Admitted:
    """Size, syntax, validity and (when the key is known) the signature, under `log_rules`, the
    rules the log states at genesis (`Registry.rules`: rules 1 until the genesis entry is in,
    so entry 0 itself is judged the same by everyone). With `max_age` (the
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
    validate_record(record, now, max_skew=max_skew, rules=log_rules)
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


@dataclass(frozen=True)
class Seen:
    """What the rules keep of each admitted record: enough to judge a later correction of it.
    (Verifier states persist it: ledger/verify/state.py.)"""

    submitter: str
    kind: str


class DuplicateRecordId(Conflict):
    """A record id that an earlier entry of the log already holds. A log never holds one id
    twice; the writer tells a client's retry (the same bytes again: an idempotent success)
    from a conflict (other bytes: RECORD_ID_CONFLICT) by looking at the earlier entry."""

    default_reason = "DUPLICATE_RECORD_ID"

    def __init__(self, record_id: str):
        super().__init__(f"record_id {record_id!r} appears twice", field="record.record_id")
        self.record_id = record_id


@dataclass(frozen=True)
class Admission:
    """What `admit` decided beyond "yes": the keys to remember the record under (`claims`:
    its record key, and under rules 2 a shipment's id and consignee) and whether a correction
    could be checked. `correction_unchecked`: the record corrects one the caller's history does
    not hold (an increment checked without its earlier records), so the correction rule could
    not be applied; the caller lists or refuses it."""

    claims: dict[str, Seen]
    correction_unchecked: bool = False


def record_key(log_rules: int, submitter: str, record_id: str) -> str:
    """Where a log keeps a record id: the id itself under rules 1 (one namespace for everyone),
    `<submitter>/<record id>` under rules 2 (each participant names its own records; a
    participant id holds no `/`, so the key is unambiguous)."""
    return record_id if log_rules < rules.RULES_2 else f"{submitter}/{record_id}"


SSCC_SHIPMENTS = "sscc/"  # shipment ids of ship scans of an SSCC (lotledger.trace.effects SSCC_SHIPMENT)


def shipment_key(shipment_id: str) -> str:
    """Where a rules-2 log keeps who owns a shipment id (`#` starts no participant id, so no
    record key looks like it). Rules 3 keeps none: the owner is part of a shipment's name."""
    return f"#shipment/{shipment_id}"


def consignee_key(shipment_id: str, owner: str = "") -> str:
    """Where a log keeps to whom a shipment was sent (Seen.submitter is the consignee): under
    rules 2 by shipment id, `#to/<id>`; under rules 3 by owner and id, `#to/<owner>/<id>` (a
    participant id holds no `/`, so the key is unambiguous)."""
    return f"#to/{owner}/{shipment_id}" if owner else f"#to/{shipment_id}"


def admit(
    admitted: Admitted,
    seq: int,
    registry: Registry,
    earlier: Callable[[str], Seen | None],
    *,
    complete: bool = True,
    check_key: bool = True,
) -> Admission:
    """Admit `admitted` as entry `seq` of a log whose key history before it is `registry` and
    whose earlier records `earlier(key)` finds (keys from `record_key`, and under rules 2
    and 3 `shipment_key` and `consignee_key`). The steps, in order:

      1. the key: verified now if precheck did not know it; registered to the submitter and
         not revoked as of `seq`; the submitter's role may submit the kind (only entry 0 may
         register its own admin key: the genesis rule);
      2. the record id is new in the log (under rules 2: among the submitter's own);
      3. under rules 2, ownership (`check_ownership`): a shipment is sent by its submitter
         under a shipment id no other participant holds; a receipt is made by the consignee
         (and the shipment owner it names, if any, is the one holding the id); under rules 3
         the same, with shipments named by owner and id, so that no shipment id is anyone's
         but its sender's;
      4. a correction corrects an earlier record, of the same kind, by its submitter or an
         admin, and the corrected body keeps the original's ownership (with `complete` False
         and the target unknown: `correction_unchecked`);
      5. an admin record changes the key history: `registry` is updated in place.

    `check_key` False skips step 1, for a verifier told to check hashes and not signatures
    (`verify --no-signatures` resuming a saved state): the rest still keeps the key history
    and the record ids the state saves.

    Nothing changes unless every step passes. Raises Unauthenticated, PermissionDenied,
    DuplicateRecordId, InvalidRecord, Conflict (key history conflicts).
    """
    if check_key:
        authorize(admitted, registry, seq)
    record, kind, log_rules = admitted.record, admitted.kind, registry.rules
    key = record_key(log_rules, record.submitter, record.record_id)
    if earlier(key) is not None:
        raise DuplicateRecordId(record.record_id)
    claims = {key: Seen(record.submitter, kind)}
    unchecked = False
    if kind == "correction":
        c = record.correction
        owner = c.corrects_submitter or record.submitter if log_rules >= rules.RULES_2 else record.submitter
        original = earlier(record_key(log_rules, owner, c.corrects_record_id))
        if original is not None:
            check_correction(record, original, registry)
            if log_rules >= rules.RULES_2:
                check_ownership(c.corrected, original.submitter, earlier, log_rules)
        elif complete:
            raise InvalidRecord(
                f"correction.corrects_record_id: no record {c.corrects_record_id!r} earlier in the log"
                + (f" (of {owner!r})" if log_rules >= rules.RULES_2 else ""),
                reason="UNKNOWN_RECORD",
                field="correction.corrects_record_id",
            )
        else:
            unchecked = True
    elif log_rules >= rules.RULES_2:
        claims.update(check_ownership(record, record.submitter, earlier, log_rules))
    if kind in ADMIN_KINDS:
        registry.check_and_apply(record, seq)
        if registry.rules != log_rules:  # the genesis entry states the rules, its own key included
            claims = {record_key(registry.rules, record.submitter, record.record_id): claims.pop(key), **claims}
    return Admission(claims, unchecked)


def check_ownership(
    body: records_pb2.Record, owner: str, earlier: Callable[[str], Seen | None], log_rules: int
) -> dict[str, Seen]:
    """Step 3 of `admit` (rules 2 and later): no record speaks for another participant.
    `owner`: whose record `body` is (its submitter; for a correction, the corrected record's
    submitter). Returns the claims a shipment makes the first time its owner uses the id.

    - Rules 2: a shipment id is one name for everyone, held by its first sender (claims: its
      id and its consignee); a ship scan's record id is a shipment id too; `sscc/` ids are the
      pallets'; a receipt's optional `shipment_owner` must be the holder.
    - Rules 3: a shipment is named by its sender and id (claim: its consignee under
      `<owner>/<id>`), so no participant can take or squat another's id; a ship scan is named
      by its submitter and record id, already its own; a receipt names the owner (required by
      validation).

    A receipt of a shipment the history does not hold is an irregularity to flag
    (RECEIPT_WITHOUT_SHIPMENT), not to refuse.

    Raises PermissionDenied (NOT_YOUR_SHIPMENT, SHIPMENT_ID_TAKEN, NOT_YOUR_RECEIPT,
    NOT_THE_CONSIGNEE) or InvalidRecord (SHIPMENT_OWNER_MISMATCH, RESERVED_SHIPMENT_ID).
    """
    scoped = rules.scoped_shipments(log_rules)
    kind = body.WhichOneof("body")
    if kind == "scan" and body.scan.meaning == records_pb2.SCAN_MEANING_SHIP and not body.scan.gs1.sscc and not scoped:
        # A ship scan of a lot is a shipment of its own, named by the scan's record id (the
        # trace index's `shipment:<record id>`): the same namespace as shipment ids, so the same
        # owner rule, or two partners' scans with one record id would be one shipment.
        held = earlier(shipment_key(body.record_id))
        if held is not None and held.submitter != owner:
            raise PermissionDenied(
                f"record id {body.record_id!r} names another participant's shipment; a ship scan is a "
                "shipment named by its record id: use another record id",
                reason="SHIPMENT_ID_TAKEN",
                field="record_id",
            )
        return {} if held is not None else {shipment_key(body.record_id): Seen(owner, "shipment")}
    if kind == "shipment":
        s = body.shipment
        if not scoped and s.shipment_id.startswith(SSCC_SHIPMENTS):
            raise InvalidRecord(
                f"shipment.shipment_id: {SSCC_SHIPMENTS!r} begins the shipments that ship scans of an SSCC "
                "make (a pallet's own shipment); name yours otherwise",
                reason="RESERVED_SHIPMENT_ID",
                field="shipment.shipment_id",
            )
        if s.from_participant != owner:
            raise PermissionDenied(
                f"shipment.from_participant is {s.from_participant!r}, but this is {owner!r}'s record: "
                "a shipment is sent by the participant that submits it",
                reason="NOT_YOUR_SHIPMENT",
                field="shipment.from_participant",
            )
        if scoped:
            key = consignee_key(s.shipment_id, owner)
            return {} if earlier(key) is not None else {key: Seen(s.to_participant, "consignee")}
        held = earlier(shipment_key(s.shipment_id))
        if held is not None and held.submitter != owner:
            raise PermissionDenied(
                f"shipment id {s.shipment_id!r} belongs to another participant; use one of your own",
                reason="SHIPMENT_ID_TAKEN",
                field="shipment.shipment_id",
            )
        if held is not None:
            return {}
        return {
            shipment_key(s.shipment_id): Seen(owner, "shipment"),
            consignee_key(s.shipment_id): Seen(s.to_participant, "consignee"),
        }
    if kind == "receipt":
        r = body.receipt
        if r.participant != owner:
            raise PermissionDenied(
                f"receipt.participant is {r.participant!r}, but this is {owner!r}'s record: "
                "a receipt is made by the participant that received the goods",
                reason="NOT_YOUR_RECEIPT",
                field="receipt.participant",
            )
        if not scoped:
            held = earlier(shipment_key(r.shipment_id))
            if held is not None and r.shipment_owner and held.submitter != r.shipment_owner:
                raise InvalidRecord(
                    f"receipt.shipment_owner: {r.shipment_owner!r} sent no shipment {r.shipment_id!r}",
                    reason="SHIPMENT_OWNER_MISMATCH",
                    field="receipt.shipment_owner",
                )
        consignee = earlier(consignee_key(r.shipment_id, r.shipment_owner if scoped else ""))
        if consignee is not None and consignee.submitter != owner:
            sent = f"shipment {r.shipment_id!r}" + (f" of {r.shipment_owner!r}" if scoped else "")
            raise PermissionDenied(
                f"{sent} was not sent to {owner!r}: only its consignee records its receipt",
                reason="NOT_THE_CONSIGNEE",
                field="receipt.shipment_id",
            )
    return {}


def authorize(admitted: Admitted, registry: Registry, seq: int) -> None:
    """Step 1 of `admit`: verify now if the key was unknown at precheck, then ask the registry.
    The genesis record (a self-signed admin registration) is admitted only as entry 0 of an
    empty history: a history that starts later (evidence, an increment's key history) cannot
    let a self-signed admin in.

    Raises Unauthenticated or PermissionDenied.
    """
    signed = admitted.signed
    if registry.is_empty and seq != 0:
        raise Unauthenticated(
            f"key {signed.key_id} is not registered by any earlier entry that is known here",
            reason="UNKNOWN_KEY",
            field="key_id",
        )
    if admitted.verified_key is None:
        key = registry.public_key(signed.key_id)
        if key is None and registry.is_empty and admitted.kind == "participant_registered":
            key = admitted.record.participant_registered.public_key  # genesis: self-signed
        if key is not None:
            check_signature(signed, key)
            admitted.verified_key = key
    registry.authorize(admitted.record, signed.key_id, admitted.verified_key)


def check_correction(record: records_pb2.Record, original: Seen, registry: Registry) -> None:
    """Step 3 of `admit`: a correction replaces a record of the same kind, by that record's
    submitter or an admin. Raises InvalidRecord or PermissionDenied."""
    corrected_kind = record.correction.corrected.WhichOneof("body")
    if original.kind != corrected_kind:
        raise InvalidRecord(
            f"correction.corrected: a {original.kind} record can only be corrected by a {original.kind} body, "
            f"not {corrected_kind}",
            reason="CORRECTION_KIND_MISMATCH",
            field="correction.corrected",
        )
    if original.submitter != record.submitter:
        submitter = registry.participants.get(record.submitter)
        if submitter is None or submitter.role != "admin":
            raise PermissionDenied(
                f"record {record.correction.corrects_record_id!r} was submitted by {original.submitter!r}; "
                "only its submitter or an admin may correct it",
                reason="NOT_YOUR_RECORD",
                field="correction.corrects_record_id",
            )
