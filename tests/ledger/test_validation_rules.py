"""Validation under each rules version (ledger/core/rules.py). Rules 2 takes ASCII digits only
and refuses control, invisible and direction-changing characters and text not in NFC, naming the
field and the code point; rules 1 judges exactly as before, so a log written under it verifies
for ever. Every rules-2 refusal here was accepted under rules 1 (or refused for a vaguer reason)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from helpers import GTIN_A, lot, material_received, new_record, qty, quality_check, shipment

from lotledger.ledger.core import rules
from lotledger.ledger.core.validation import parse_quantity, validate_record
from lotledger.ledger.errors import InvalidRecord
from lotledger.signing.keys import SigningKey
from lotledger.v1 import records_pb2

NOW = datetime.now(UTC) + timedelta(seconds=1)
SSCC = "095200000000000011"  # valid check digit
GLN = "0952000000002"  # valid check digit
ARABIC_100 = "1\u0660\u0660"  # 1, ARABIC-INDIC DIGIT ZERO twice: Decimal() reads 100


def refused(record: records_pb2.Record, version: int = rules.RULES_2) -> InvalidRecord:
    with pytest.raises(InvalidRecord) as info:
        validate_record(record, NOW, rules=version)
    return info.value


def accepted_by_rules_1_only(record: records_pb2.Record) -> InvalidRecord:
    validate_record(record, NOW, rules=rules.RULES_1)
    return refused(record)


def test_the_default_is_the_current_rules() -> None:
    assert rules.CURRENT == rules.RULES_3
    record = shipment(amount=ARABIC_100)
    with pytest.raises(InvalidRecord):
        validate_record(record, NOW)


# 1. Amounts and every other number: ASCII digits only.


@pytest.mark.parametrize(
    "amount",
    [ARABIC_100, "1\u0660", "\uff11\uff10", "5.\u0665", "1\u096610"],  # Arabic-Indic, fullwidth, Devanagari
)
def test_amounts_take_ascii_digits_only(amount: str) -> None:
    err = accepted_by_rules_1_only(shipment(amount=amount)) if amount[0] == "1" else refused(shipment(amount=amount))
    assert (err.reason, err.field) == ("INVALID_QUANTITY", "shipment.lots[0].quantity.amount")
    assert "U+" in err.message and "is not an ASCII digit" in err.message


def test_rules_1_still_reads_unicode_digits_as_it_always_did() -> None:
    q = records_pb2.Quantity(amount=ARABIC_100, unit="KGM")
    assert str(parse_quantity(q, rules=rules.RULES_1)[0]) == "100"
    with pytest.raises(InvalidRecord) as info:
        parse_quantity(q)
    assert "U+0660 ARABIC-INDIC DIGIT ZERO at position 1" in info.value.message


def test_measurements_take_ascii_digits_only() -> None:
    record = quality_check()
    record.quality_check.measurements.add(name="pH", value="-\u0664\u0665", unit="pH")
    err = accepted_by_rules_1_only(record)
    assert (err.reason, err.field) == ("INVALID_CHARACTERS", "quality_check.measurements[0].value")
    assert "U+0664 ARABIC-INDIC DIGIT FOUR at position 1" in err.message
    record.quality_check.measurements[0].value = "-12.5"
    validate_record(record, NOW)


def test_dates_take_ascii_digits_only() -> None:
    record = material_received()
    record.material_received.expiry_date = "\u0662\u0660\u0662\u0667-01-05"
    assert refused(record, rules.RULES_1).reason == "INVALID_FIELD"  # date.fromisoformat refused it already
    err = refused(record)
    assert (err.reason, err.field) == ("INVALID_CHARACTERS", "material_received.expiry_date")
    assert "U+0662" in err.message


def _aggregation(parent: str = SSCC, child: str = "") -> records_pb2.Record:
    record = new_record("plant")
    a = record.aggregation
    a.parent_sscc, a.action = parent, records_pb2.AGGREGATION_ACTION_ADD
    a.lots.add(lot=lot(), quantity=qty())
    if child:
        a.child_ssccs.append(child)
    a.aggregated_at.GetCurrentTime()
    return record


def _location(gln: str = GLN) -> records_pb2.Record:
    record = new_record("admin")
    loc = record.location_registered
    loc.location_id, loc.participant_id, loc.name, loc.gln = "plant-7/dock-1", "plant", "Dock 1", gln
    return record


def test_ssccs_and_glns_take_ascii_digits_only() -> None:
    arabic_sscc = "".join(chr(0x0660 + int(d)) for d in SSCC)
    for record, field in (
        (_aggregation(arabic_sscc), "aggregation.parent_sscc"),
        (_aggregation(child=arabic_sscc), "aggregation.child_ssccs[0]"),
        (_location("".join(chr(0xFF10 + int(d)) for d in GLN)), "location_registered.gln"),
    ):
        validate_record(_aggregation(), NOW) and validate_record(_location(), NOW)
        assert refused(record, rules.RULES_1).field == field  # refused by the check digit, as before
        err = refused(record)
        assert (err.reason, err.field) == ("INVALID_CHARACTERS", field)
        assert "is not ASCII" in err.message


def test_gtins_were_already_ascii() -> None:
    record = shipment(gtin_="".join(chr(0x0660 + int(d)) for d in GTIN_A))
    for version in rules.KNOWN:
        assert refused(record, version).reason == "INVALID_GTIN"


# 2. Identifiers and free text.

BAD = {
    "\u202e": "U+202E RIGHT-TO-LEFT OVERRIDE",
    "\u202a": "U+202A LEFT-TO-RIGHT EMBEDDING",
    "\u2067": "U+2067 RIGHT-TO-LEFT ISOLATE",
    "\u200f": "U+200F RIGHT-TO-LEFT MARK",
    "\u061c": "U+061C ARABIC LETTER MARK",
    "\u200b": "U+200B ZERO WIDTH SPACE",
    "\u200d": "U+200D ZERO WIDTH JOINER",
    "\u2060": "U+2060 WORD JOINER",
    "\ufeff": "U+FEFF ZERO WIDTH NO-BREAK SPACE",
    "\x85": "U+0085 (control)",
    "\x9b": "U+009B (control)",
    "\x7f": "U+007F (control)",
    "\U000e0041": "U+E0041 TAG LATIN CAPITAL LETTER A",
}


def _production_run() -> records_pb2.Record:
    record = new_record("plant")
    run = record.production_run
    run.run_id, run.manufactured_on, run.location, run.formula_id = "RUN-1", "2026-01-05", "line-1", "F-1"
    run.inputs.add(lot=lot(GTIN_A, "IN-1"), quantity=qty())
    run.outputs.add(lot=lot(GTIN_A, "OUT-1"), quantity=qty())
    run.completed_at.GetCurrentTime()
    return record


def _receipt() -> records_pb2.Record:
    record = new_record("plant")
    r = record.receipt
    r.shipment_id, r.participant, r.shipment_owner = "SH-1", "plant", "acme"
    r.lots.add(lot=lot(), quantity=qty())
    r.received_at.GetCurrentTime()
    return record


def _scan() -> records_pb2.Record:
    record = new_record("scanner-1")
    s = record.scan
    s.device_id, s.raw_data, s.meaning, s.location = "dev-1", "(01)09520000000011(10)L1", 1, "dock-1"
    s.gs1.gtin, s.gs1.lot = GTIN_A, "L1"
    s.scanned_at.GetCurrentTime()
    return record


def _formula() -> records_pb2.Record:
    record = new_record("plant")
    f = record.formula_revision
    f.formula_id, f.version, f.change_note = "F-1", 1, "first"
    f.components.add(gtin=GTIN_A, quantity=qty())
    return record


def _recall() -> records_pb2.Record:
    record = new_record("qa1")
    r = record.recall_opened
    r.recall_id, r.reason = "RC-1", "listeria"
    r.lots.append(lot())
    return record


def _registration() -> records_pb2.Record:
    record = new_record("admin")
    reg = record.participant_registered
    reg.participant_id, reg.role, reg.public_key = "dairy", records_pb2.ROLE_SUPPLIER, SigningKey.generate().public.raw
    reg.business_name, reg.phone, reg.address = "Dairy Co", "+1 555 0100", "1 Farm Rd"
    return record


def _correction() -> records_pb2.Record:
    record = new_record("acme")
    c = record.correction
    c.corrects_record_id, c.reason, c.corrects_submitter = "r-1", "typo", "acme"
    c.corrected.CopyFrom(shipment(record_id="r-1"))
    return record


def _with_document() -> records_pb2.Record:
    record = shipment()
    record.shipment.documents.add(type="PO", number="PO-4711")
    return record


def _measured() -> records_pb2.Record:
    record = quality_check()
    record.quality_check.spec_reference = "SPEC-1"
    record.quality_check.measurements.add(name="pH", value="6.5", unit="pH")
    return record


Setter = Callable[[records_pb2.Record, str], None]

# (builder, field path, how to set it): every identifier that validation checks as text.
IDENTIFIERS: list[tuple[Callable[[], records_pb2.Record], str, Setter]] = [
    (shipment, "shipment.shipment_id", lambda r, v: setattr(r.shipment, "shipment_id", v)),
    (_receipt, "receipt.shipment_id", lambda r, v: setattr(r.receipt, "shipment_id", v)),
    (material_received, "material_received.supplier_lot_code", lambda r, v: setattr(r.material_received, "supplier_lot_code", v)),
    (_production_run, "production_run.run_id", lambda r, v: setattr(r.production_run, "run_id", v)),
    (_production_run, "production_run.formula_id", lambda r, v: setattr(r.production_run, "formula_id", v)),
    (_formula, "formula_revision.formula_id", lambda r, v: setattr(r.formula_revision, "formula_id", v)),
    (_with_document, "shipment.documents[0].number", lambda r, v: setattr(r.shipment.documents[0], "number", v)),
    (_with_document, "shipment.documents[0].type", lambda r, v: setattr(r.shipment.documents[0], "type", v)),
    (_scan, "scan.device_id", lambda r, v: setattr(r.scan, "device_id", v)),
    (_recall, "recall_opened.recall_id", lambda r, v: setattr(r.recall_opened, "recall_id", v)),
    (_measured, "quality_check.spec_reference", lambda r, v: setattr(r.quality_check, "spec_reference", v)),
    (_measured, "quality_check.measurements[0].unit", lambda r, v: setattr(r.quality_check.measurements[0], "unit", v)),
    (_correction, "correction.corrected.shipment.shipment_id", lambda r, v: setattr(r.correction.corrected.shipment, "shipment_id", v)),
]  # fmt: skip

# Identifiers that were always ASCII patterns: rules 2 now names the code point.
PATTERNS: list[tuple[Callable[[], records_pb2.Record], str, Setter]] = [
    (shipment, "record_id", lambda r, v: setattr(r, "record_id", v)),
    (shipment, "submitter", lambda r, v: setattr(r, "submitter", v)),
    (shipment, "shipment.lots[0].lot.lot", lambda r, v: setattr(r.shipment.lots[0].lot, "lot", v)),
    (material_received, "material_received.location", lambda r, v: setattr(r.material_received, "location", v)),
    (_location, "location_registered.location_id", lambda r, v: setattr(r.location_registered, "location_id", v)),
    (_correction, "correction.corrects_record_id", lambda r, v: setattr(r.correction, "corrects_record_id", v)),
]  # fmt: skip

FREE_TEXT: list[tuple[Callable[[], records_pb2.Record], str, Setter]] = [
    (_registration, "participant_registered.business_name", lambda r, v: setattr(r.participant_registered, "business_name", v)),
    (_registration, "participant_registered.address", lambda r, v: setattr(r.participant_registered, "address", v)),
    (_registration, "participant_registered.phone", lambda r, v: setattr(r.participant_registered, "phone", v)),
    (_location, "location_registered.name", lambda r, v: setattr(r.location_registered, "name", v)),
    (_formula, "formula_revision.change_note", lambda r, v: setattr(r.formula_revision, "change_note", v)),
    (_correction, "correction.reason", lambda r, v: setattr(r.correction, "reason", v)),
    (_recall, "recall_opened.reason", lambda r, v: setattr(r.recall_opened, "reason", v)),
    (quality_check, "quality_check.signed_off_by", lambda r, v: setattr(r.quality_check, "signed_off_by", v)),
    (quality_check, "quality_check.check_name", lambda r, v: setattr(r.quality_check, "check_name", v)),
    (material_received, "material_received.product_description", lambda r, v: setattr(r.material_received, "product_description", v)),
]  # fmt: skip


def _ids(cases: list[tuple[Callable[[], records_pb2.Record], str, Setter]]) -> list[str]:
    return [field for _, field, _ in cases]


@pytest.mark.parametrize(("build", "field", "put"), IDENTIFIERS, ids=_ids(IDENTIFIERS))
def test_identifiers_refuse_invisible_and_bidi_characters(build: Callable[[], records_pb2.Record], field: str, put: Setter) -> None:  # fmt: skip
    validate_record(build(), NOW)
    for ch, name in BAD.items():
        record = build()
        put(record, f"SH{ch}1")
        err = refused(record)
        assert (err.reason, err.field) == ("INVALID_CHARACTERS", field), ch
        assert f"{name} at position 2" in err.message
        if ch not in "\x7f\x85\x9b" or field.endswith((".unit", ".type")):
            # rules 1 took them (unit and type are short, but took them too)
            validate_record(record, NOW, rules=rules.RULES_1)


@pytest.mark.parametrize(("build", "field", "put"), IDENTIFIERS, ids=_ids(IDENTIFIERS))
def test_identifiers_refuse_controls_odd_spaces_and_non_nfc(build: Callable[[], records_pb2.Record], field: str, put: Setter) -> None:  # fmt: skip
    for value, reason, named in (
        ("SH\t1", "INVALID_CHARACTERS", "U+0009"),
        ("SH\n1", "INVALID_CHARACTERS", "U+000A"),
        ("SH\u00a01", "INVALID_CHARACTERS", "U+00A0 NO-BREAK SPACE"),
        ("SH\u20091", "INVALID_CHARACTERS", "U+2009 THIN SPACE"),
        ("SH-1 ", "INVALID_CHARACTERS", "U+0020"),
        (" SH-1", "INVALID_CHARACTERS", "U+0020"),
        ("Lo\u0308", "NOT_NFC", "U+006F LATIN SMALL LETTER O at position 1"),  # o + combining diaeresis
        ("\u212b1", "NOT_NFC", "U+212B ANGSTROM SIGN"),  # NFC maps it to U+00C5
    ):
        record = build()
        put(record, value)
        validate_record(record, NOW, rules=rules.RULES_1)
        err = refused(record)
        assert (err.reason, err.field) == (reason, field), value
        assert named in err.message, err.message
    record = build()
    put(record, "L\u00f6-7 \u00b5")  # Unicode in NFC, an inner space: a fine identifier
    validate_record(record, NOW)


@pytest.mark.parametrize(("build", "field", "put"), PATTERNS, ids=_ids(PATTERNS))
def test_pattern_identifiers_name_the_code_point_under_rules_2(build: Callable[[], records_pb2.Record], field: str, put: Setter) -> None:  # fmt: skip
    for ch, name in BAD.items():
        record = build()
        put(record, f"ab{ch}c")
        before = refused(record, rules.RULES_1)  # always refused, vaguely
        assert (before.reason, before.field) == ("INVALID_FIELD", field)
        err = refused(record)
        assert (err.reason, err.field) == ("INVALID_CHARACTERS", field)
        assert f"{name} at position 2" in err.message


@pytest.mark.parametrize(("build", "field", "put"), FREE_TEXT, ids=_ids(FREE_TEXT))
def test_free_text_stays_unicode_but_refuses_invisible_bidi_and_non_nfc(build: Callable[[], records_pb2.Record], field: str, put: Setter) -> None:  # fmt: skip
    record = build()
    put(record, "B\u00e4ckerei M\u00fcller \u2014 \u5c71\u7530 \u0645\u062e\u0628\u0632 \u00a0\u00b5")
    validate_record(record, NOW)
    for value, reason, named in [(f"ACME{ch}Foods", "INVALID_CHARACTERS", name) for ch, name in BAD.items()] + [
        ("Ba\u0308ckerei", "NOT_NFC", "U+0061 LATIN SMALL LETTER A at position 1"),
        ("Foods\r", "INVALID_CHARACTERS", "U+000D"),
    ]:
        record = build()
        put(record, value)
        if not named.startswith(("U+000D", "U+007F", "U+0085", "U+009B")):
            validate_record(record, NOW, rules=rules.RULES_1)
        err = refused(record)
        assert (err.reason, err.field) == (reason, field), value
        assert named in err.message, err.message


def test_lines_only_where_text_has_lines() -> None:
    record = _registration()
    record.participant_registered.address = "1 Farm Rd\nSpringfield"
    validate_record(record, NOW)
    record.participant_registered.business_name = "Dairy\nCo"
    validate_record(record, NOW, rules=rules.RULES_1)
    err = refused(record)
    assert (err.reason, err.field) == ("INVALID_CHARACTERS", "participant_registered.business_name")
    assert "U+000A" in err.message


def test_scan_data_keeps_its_group_separator() -> None:
    record = _scan()
    record.scan.raw_data = "]d2010952000000001110L1\x1d17260101"
    validate_record(record, NOW)
    record.scan.raw_data += "\u202e"
    assert refused(record).field == "scan.raw_data"


def test_the_corrected_record_is_judged_under_the_same_rules() -> None:
    record = _correction()
    record.correction.corrected.shipment.lots[0].quantity.amount = ARABIC_100
    err = accepted_by_rules_1_only(record)
    assert err.field == "correction.corrected.shipment.lots[0].quantity.amount"


def test_owner_fields_of_rules_2_are_participant_ids() -> None:
    receipt, correction = _receipt(), _correction()
    validate_record(receipt, NOW) and validate_record(correction, NOW)
    receipt.receipt.shipment_owner = "ACME\u202e"
    correction.correction.corrects_submitter = "Not An Id"
    assert accepted_by_rules_1_only(receipt).field == "receipt.shipment_owner"
    assert accepted_by_rules_1_only(correction).field == "correction.corrects_submitter"
