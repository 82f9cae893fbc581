"""The writer and every verifier apply one admission rule (ledger/core/admission.py `admit`).

Each scenario is a sequence of signed records after a common start (the genesis admin, the
supplier `acme`, the manufacturer `plant`, QA `qa1`, the distributor `dist`); its last record
is the candidate, judged in a log of each rules version (ledger/core/rules.py). The
writer (a real Ledger on LMDB) decides on it. Then the same entries, with the candidate
forced in as the next entry the way a dishonest log would serve it, go to the regulator's
verifier, the evidence checker and (for key history records) the increment checker. Every
judge must take the same decision for the same reason.

Two differences are by design, and are the only ones allowed:
- the writer answers a reused record id as a client's conflict (RECORD_ID_CONFLICT, with the
  entry that holds it); a verifier finds the id twice in a log (DUPLICATE_RECORD_ID);
- evidence holds only some entries, so a correction whose original it lacks is MISSING_ENTRY
  (it cannot tell a missing entry from one that never existed), where the writer, which has
  the whole log, says UNKNOWN_RECORD.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import ORIGIN, material_received, new_record, quality_check, registration, revocation, shipment, signed

from lotledger.ledger.core import rules
from lotledger.ledger.errors import LedgerError, VerificationFailed
from lotledger.ledger.log import Ledger, LedgerConfig
from lotledger.ledger.tlog import merkle
from lotledger.ledger.tlog.bundle import KeyHistoryEntry
from lotledger.ledger.tlog.entries import build_entry
from lotledger.ledger.verify.increment import KeyHistory
from lotledger.ledger.verify.verifier import LogVerifier
from lotledger.signing.keys import SigningKey
from lotledger.signing.note import Checkpoint
from lotledger.trace import evidence
from lotledger.v1 import records_pb2

ADMIN_KINDS = {"participant_registered", "key_revoked", "location_registered"}
SAME_RULE = {"RECORD_ID_CONFLICT": "DUPLICATE_RECORD_ID"}


@dataclass
class Cast:
    admin: SigningKey
    acme: SigningKey
    plant: SigningKey
    qa: SigningKey
    stranger: SigningKey
    dist: SigningKey


def _revocation_again(key_id: str) -> records_pb2.Record:
    """A second revocation of `key_id`, under a record id of its own."""
    record = revocation("admin", key_id)
    record.record_id += "/again"
    return record


def _correction(submitter: str, target: str, body: records_pb2.Record, owner: str = "") -> records_pb2.Record:
    record = new_record(submitter)
    record.correction.corrects_record_id, record.correction.reason = target, "typo"
    record.correction.corrects_submitter = owner
    record.correction.corrected.CopyFrom(body)
    return record


def _owner(record: records_pb2.Record, owner: str) -> records_pb2.Record:
    record.receipt.shipment_owner = owner
    return record


def _shipped(
    submitter: str, shipment_id: str, *, sender: str | None = None, to: str = "plant", record_id: str | None = None
) -> records_pb2.Record:
    record = shipment(submitter, record_id=record_id)
    record.shipment.shipment_id, record.shipment.to_participant = shipment_id, to
    record.shipment.from_participant = sender or submitter
    return record


def _ship_scan(submitter: str, record_id: str) -> records_pb2.Record:
    record = new_record(submitter, record_id)
    scan = record.scan
    scan.device_id, scan.meaning, scan.location, scan.raw_data = "dock-1", records_pb2.SCAN_MEANING_SHIP, "dock", "raw"
    scan.gs1.gtin, scan.gs1.lot = shipment().shipment.lots[0].lot.gtin, "L1"
    scan.scanned_at.GetCurrentTime()
    return record


def _received(
    submitter: str, shipment_id: str, *, participant: str | None = None, owner: str = "acme"
) -> records_pb2.Record:
    """A receipt of `owner`'s shipment `shipment_id` (rules 3 name a shipment by owner and id)."""
    record = new_record(submitter)
    r = record.receipt
    r.shipment_id, r.participant, r.location = shipment_id, participant or submitter, "dock"
    r.shipment_owner = owner
    r.lots.add().CopyFrom(shipment().shipment.lots[0])
    r.received_at.GetCurrentTime()
    return record


def _bad_signature(s: records_pb2.SignedRecord) -> records_pb2.SignedRecord:
    out = records_pb2.SignedRecord()
    out.CopyFrom(s)
    out.signature = bytes([s.signature[0] ^ 1]) + s.signature[1:]
    return out


Scenario = Callable[[Cast], list[records_pb2.SignedRecord]]

Expected = str | None | dict[int, str | None]

SCENARIOS: dict[str, tuple[Scenario, Expected]] = {
    "a valid shipment": (lambda c: [signed(shipment("acme"), c.acme)], None),
    "an unknown key": (lambda c: [signed(shipment("acme"), c.stranger)], "UNKNOWN_KEY"),
    "another participant's key": (lambda c: [signed(shipment("acme"), c.plant)], "KEY_NOT_SUBMITTERS"),
    "a revoked key": (
        lambda c: [signed(revocation("admin", c.acme.key_id), c.admin), signed(shipment("acme"), c.acme)],
        "KEY_REVOKED",
    ),
    "a bad signature": (lambda c: [_bad_signature(signed(shipment("acme"), c.acme))], "BAD_SIGNATURE"),
    "a role that may not submit the kind": (lambda c: [signed(quality_check("acme"), c.acme)], "ROLE_NOT_ALLOWED"),
    "a duplicate record id": (
        lambda c: [
            signed(shipment("acme", record_id="dup-1"), c.acme),
            signed(shipment("acme", record_id="dup-1", amount="11"), c.acme),
        ],
        "DUPLICATE_RECORD_ID",
    ),
    "a record id reused by another participant": (
        lambda c: [
            signed(shipment("acme", record_id="dup-2"), c.acme),
            signed(material_received("plant", record_id="dup-2"), c.plant),
        ],
        {1: "DUPLICATE_RECORD_ID", 2: None},  # rules 2 scope record ids by their submitter
    ),
    "a correction by its submitter": (
        lambda c: [
            signed(shipment("acme", record_id="fix-1"), c.acme),
            signed(_correction("acme", "fix-1", shipment("acme", record_id="fix-1", amount="9")), c.acme),
        ],
        None,
    ),
    "a correction by an admin": (
        lambda c: [
            signed(shipment("acme", record_id="fix-2"), c.acme),
            signed(_correction("admin", "fix-2", shipment("acme", record_id="fix-2", amount="9"), "acme"), c.admin),
        ],
        None,
    ),
    "a correction that ships in another's name": (
        lambda c: [
            signed(_shipped("acme", "SH-C5", record_id="fix-5"), c.acme),
            signed(_correction("acme", "fix-5", _shipped("acme", "SH-C5", sender="plant", record_id="fix-5")), c.acme),
        ],
        {1: None, 2: "NOT_YOUR_SHIPMENT"},
    ),
    "a shipment in another's name": (
        lambda c: [signed(_shipped("acme", "SH-N1", sender="plant"), c.acme)],
        {1: None, 2: "NOT_YOUR_SHIPMENT"},
    ),
    "another participant's shipment id": (
        lambda c: [
            signed(_shipped("plant", "SH-9001", to="dist"), c.plant),
            signed(_shipped("acme", "SH-9001"), c.acme),
        ],
        {1: None, 2: "SHIPMENT_ID_TAKEN", 3: None},  # rules 3: each sender's SH-9001 is its own
    ),
    "a shipment id squatted before its owner uses it": (
        lambda c: [
            signed(_shipped("acme", "SH-Q1", to="dist"), c.acme),
            signed(_shipped("plant", "SH-Q1", to="dist"), c.plant),
        ],
        {1: None, 2: "SHIPMENT_ID_TAKEN", 3: None},
    ),
    "a receipt of the squatter's shipment by the owner's consignee": (
        lambda c: [
            signed(_shipped("acme", "SH-Q3", to="dist"), c.acme),
            signed(_received("plant", "SH-Q3", owner="acme"), c.plant),
        ],
        {1: None, 2: "NOT_THE_CONSIGNEE"},
    ),
    "a receipt that names no shipment owner": (
        lambda c: [signed(_shipped("acme", "SH-R6"), c.acme), signed(_received("plant", "SH-R6", owner=""), c.plant)],
        {1: None, 2: None, 3: "MISSING_FIELD"},
    ),
    "a participant named like the pallets' shipments": (
        lambda c: [signed(registration("admin", "sscc", records_pb2.ROLE_DISTRIBUTOR, c.stranger), c.admin)],
        {1: None, 2: None, 3: "RESERVED_ID"},
    ),
    "one's own shipment id again": (
        lambda c: [signed(_shipped("acme", "SH-A2"), c.acme), signed(_shipped("acme", "SH-A2"), c.acme)],
        None,
    ),
    "a receipt by the consignee": (
        lambda c: [signed(_shipped("acme", "SH-R1"), c.acme), signed(_received("plant", "SH-R1"), c.plant)],
        None,
    ),
    "a receipt of another's consignment": (
        lambda c: [signed(_shipped("acme", "SH-R2"), c.acme), signed(_received("dist", "SH-R2"), c.dist)],
        {1: None, 2: "NOT_THE_CONSIGNEE"},
    ),
    "a receipt in another's name": (
        lambda c: [
            signed(_shipped("acme", "SH-R3"), c.acme),
            signed(_received("dist", "SH-R3", participant="plant"), c.dist),
        ],
        {1: None, 2: "NOT_YOUR_RECEIPT"},
    ),
    "a receipt naming the wrong sender": (
        lambda c: [
            signed(_shipped("acme", "SH-R4"), c.acme),
            signed(_owner(_received("plant", "SH-R4"), "dist"), c.plant),
        ],
        {1: None, 2: "SHIPMENT_OWNER_MISMATCH", 3: None},  # rules 3: dist's SH-R4, never recorded
    ),
    "a ship scan named like another's shipment": (
        lambda c: [signed(_shipped("acme", "SH-S1"), c.acme), signed(_ship_scan("plant", "SH-S1"), c.plant)],
        {1: None, 2: "SHIPMENT_ID_TAKEN", 3: None},  # rules 3: plant's scan names plant/SH-S1
    ),
    "one's own ship scan": (lambda c: [signed(_ship_scan("plant", "scan-9"), c.plant)], None),
    "a shipment named like a pallet's": (
        lambda c: [signed(_shipped("acme", "sscc/106141411234567897"), c.acme)],
        {1: None, 2: "RESERVED_SHIPMENT_ID", 3: None},  # rules 3: acme/sscc/..., not sscc/...
    ),
    "a receipt of a shipment never recorded": (lambda c: [signed(_received("plant", "SH-R5"), c.plant)], None),
    "a correction of an unknown record": (
        lambda c: [signed(_correction("acme", "nowhere", shipment("acme", record_id="nowhere")), c.acme)],
        "UNKNOWN_RECORD",
    ),
    "a correction of another participant's record": (
        lambda c: [
            signed(shipment("acme", record_id="fix-3"), c.acme),
            signed(_correction("plant", "fix-3", shipment("plant", record_id="fix-3"), "acme"), c.plant),
        ],
        "NOT_YOUR_RECORD",
    ),
    "a correction of another kind": (
        lambda c: [
            signed(shipment("acme", record_id="fix-4"), c.acme),
            signed(_correction("acme", "fix-4", material_received("acme", record_id="fix-4")), c.acme),
        ],
        "CORRECTION_KIND_MISMATCH",
    ),
    "a valid key registration": (
        lambda c: [signed(registration("admin", "carrier", records_pb2.ROLE_DISTRIBUTOR, c.stranger), c.admin)],
        None,
    ),
    "a registration by a supplier": (
        lambda c: [signed(registration("acme", "mole", records_pb2.ROLE_ADMIN, c.stranger), c.acme)],
        "ROLE_NOT_ALLOWED",
    ),
    "a self-signed admin after genesis": (
        lambda c: [signed(registration("usurper", "usurper", records_pb2.ROLE_ADMIN, c.stranger), c.stranger)],
        "UNKNOWN_KEY",
    ),
    "a key registered twice": (
        lambda c: [signed(registration("admin", "acme-2", records_pb2.ROLE_SUPPLIER, c.acme), c.admin)],
        "KEY_ALREADY_REGISTERED",
    ),
    "a participant's role changed": (
        lambda c: [signed(registration("admin", "acme", records_pb2.ROLE_QA, c.stranger), c.admin)],
        "ROLE_CHANGE",
    ),
    "a revocation of an unknown key": (
        lambda c: [signed(revocation("admin", c.stranger.key_id), c.admin)],
        "UNKNOWN_KEY",
    ),
    "a key revoked twice": (
        lambda c: [
            signed(revocation("admin", c.qa.key_id), c.admin),
            signed(_revocation_again(c.qa.key_id), c.admin),
        ],
        "KEY_ALREADY_REVOKED",
    ),
}


def _writer(
    tmp_path: Path, cast: Cast, records: list[records_pb2.SignedRecord], log_rules: int
) -> tuple[Ledger, str | None]:
    """Append the start and `records`; every record but the last must be admitted. Returns the
    ledger (for its entries) and the reason the last one was refused, or None."""
    ledger = Ledger.initialize(
        tmp_path / "data", ORIGIN, SigningKey.generate(), cast.admin, config=LedgerConfig(), log_rules=log_rules
    )
    start = [
        signed(registration("admin", pid, role, key), cast.admin)
        for pid, role, key in (
            ("acme", records_pb2.ROLE_SUPPLIER, cast.acme),
            ("plant", records_pb2.ROLE_MANUFACTURER, cast.plant),
            ("qa1", records_pb2.ROLE_QA, cast.qa),
            ("dist", records_pb2.ROLE_DISTRIBUTOR, cast.dist),
        )
    ]
    for s in start + records[:-1]:
        assert not ledger.append(s).duplicate
    try:
        ledger.append(records[-1])
    except LedgerError as e:
        return ledger, SAME_RULE.get(e.reason, e.reason)
    return ledger, None


def _served_entries(ledger: Ledger, candidate: records_pb2.SignedRecord, admitted: bool) -> list[bytes]:
    """The entries a verifier is served: the log, and the candidate forced in if the writer refused it."""
    entries = [e for _, chunk in ledger.entries(0, ledger.size) for e in chunk]
    if not admitted:
        head = merkle.leaf_hash(entries[-1])
        entries.append(build_entry(len(entries), head, time.time_ns(), candidate))
    return entries


def _verifier(entries: list[bytes]) -> str | None:
    verifier = LogVerifier()
    for i, entry in enumerate(entries):
        try:
            verifier.feed(entry)
        except VerificationFailed as e:
            assert e.seq == len(entries) - 1, f"entry {i} refused: {e}"
            return e.reason
    return None


def _evidence(entries: list[bytes]) -> str | None:
    try:
        evidence._authenticated_records(dict(enumerate(entries)))
    except VerificationFailed as e:
        assert e.seq == len(entries) - 1, str(e)
        return {"MISSING_ENTRY": "UNKNOWN_RECORD"}.get(e.reason, e.reason)
    return None


def _key_history(entries: list[bytes]) -> str | None:
    tree = merkle.MemoryTree()
    for entry in entries:
        tree.append(merkle.leaf_hash(entry))
    prior = Checkpoint(ORIGIN, tree.size, tree.root(tree.size))
    history = KeyHistory(prior)
    for seq, entry in enumerate(entries):
        record = records_pb2.Record.FromString(records_pb2.Entry.FromString(entry).signed_record.record_bytes)
        if record.WhichOneof("body") not in ADMIN_KINDS:
            continue
        try:
            history.feed(KeyHistoryEntry(seq, entry, tree.inclusion_proof(seq, tree.size)))
        except VerificationFailed as e:
            assert e.seq == len(entries) - 1, str(e)
            return e.reason
    return None


def _expected(by_rules: Expected, log_rules: int) -> str | None:
    """The decision for `log_rules`: a dict gives it per version, the latest at or before."""
    if not isinstance(by_rules, dict):
        return by_rules
    return by_rules[max(v for v in by_rules if v <= log_rules)]


@pytest.mark.parametrize("log_rules", sorted(rules.KNOWN))
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_the_writer_and_every_verifier_decide_alike(tmp_path: Path, name: str, log_rules: int) -> None:
    scenario, expected_by_rules = SCENARIOS[name]
    expected = _expected(expected_by_rules, log_rules)
    cast = Cast(*(SigningKey.generate() for _ in range(6)))
    records = scenario(cast)
    ledger, by_writer = _writer(tmp_path, cast, records, log_rules)
    try:
        entries = _served_entries(ledger, records[-1], admitted=by_writer is None)
    finally:
        ledger.close()
    assert by_writer == expected
    assert _verifier(entries) == expected, "the regulator's verifier"
    assert _evidence(entries) == expected, "the evidence checker"
    kind = records_pb2.Record.FromString(records[-1].record_bytes).WhichOneof("body")
    if kind in ADMIN_KINDS:
        assert _key_history(entries) == expected, "the increment checker"
