"""Record validation: each rule refuses with a reason that names the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from helpers import GTIN_A, material_received, new_record, shipment

from lotledger.ledger.core.validation import (
    MAX_RECORD_BYTES,
    decode_record,
    gtin_check_digit_ok,
    lot_key,
    validate_record,
)
from lotledger.ledger.errors import InvalidRecord, RecordTooLarge
from lotledger.v1 import records_pb2

NOW = datetime.now(UTC) + timedelta(seconds=1)


def refused(record: records_pb2.Record) -> InvalidRecord:
    with pytest.raises(InvalidRecord) as info:
        validate_record(record, NOW)
    return info.value


@pytest.mark.parametrize(
    ("gtin", "ok"),
    [
        ("09520000000011", True),
        ("09520000000017", False),
        ("00012345600012", True),
        ("4006381333931", True),
        ("4006381333932", False),
    ],
)
def test_gtin_check_digit(gtin: str, ok: bool) -> None:
    assert gtin_check_digit_ok(gtin) is ok


def test_valid_records_pass() -> None:
    validate_record(shipment(), NOW)
    validate_record(material_received(), NOW)


def test_invalid_gtin_check_digit_names_the_field() -> None:
    record = shipment(gtin_="09520000000017")
    err = refused(record)
    assert err.reason == "INVALID_GTIN"
    assert err.field == "shipment.lots[0].lot.gtin"


def test_short_gtin_is_refused() -> None:
    record = shipment(gtin_="9520000000016")
    assert refused(record).reason == "INVALID_GTIN"


@pytest.mark.parametrize("amount", ["-5", "0", "0.000", "1e3", "abc", "", "1,5", " 5"])
def test_bad_quantities(amount: str) -> None:
    err = refused(shipment(amount=amount))
    assert err.reason == "INVALID_QUANTITY"
    assert err.field == "shipment.lots[0].quantity.amount"


def test_unit_code_required() -> None:
    record = shipment()
    record.shipment.lots[0].quantity.unit = "kilograms"
    assert refused(record).reason == "INVALID_UNIT"


def test_missing_body() -> None:
    err = refused(new_record("acme"))
    assert err.field == "body"


def test_missing_required_field() -> None:
    record = shipment()
    record.shipment.ClearField("shipped_at")
    err = refused(record)
    assert (err.reason, err.field) == ("MISSING_FIELD", "shipment.shipped_at")


def test_future_created_at_is_refused_but_small_skew_allowed() -> None:
    record = shipment()
    record.created_at.FromDatetime(NOW + timedelta(minutes=5))
    validate_record(record, NOW)
    record.created_at.FromDatetime(NOW + timedelta(days=2))
    assert refused(record).reason == "FUTURE_TIME"


def test_ancient_time_is_refused() -> None:
    record = shipment()
    record.created_at.FromDatetime(datetime(1970, 1, 2, tzinfo=UTC))
    assert refused(record).reason in {"BAD_TIME", "MISSING_FIELD"}


def test_bad_participant_id() -> None:
    record = shipment(submitter="ACME Corp")
    assert refused(record).field == "submitter"


def test_bad_dates() -> None:
    record = material_received()
    record.material_received.expiry_date = "2026-02-30"
    assert refused(record).field == "material_received.expiry_date"


def test_lot_both_gtin_and_item_code() -> None:
    record = shipment()
    record.shipment.lots[0].lot.item_code = "FLOUR"
    assert "exactly one" in refused(record).message


def test_production_run_input_cannot_be_output() -> None:
    record = new_record("plant")
    run = record.production_run
    run.run_id, run.manufactured_on, run.location = "RUN-1", "2026-01-05", "line-1"
    run.inputs.add(lot=records_pb2.LotId(gtin=GTIN_A, lot="L1"), quantity=records_pb2.Quantity(amount="1", unit="KGM"))
    run.outputs.add(lot=records_pb2.LotId(gtin=GTIN_A, lot="L1"), quantity=records_pb2.Quantity(amount="1", unit="KGM"))
    run.completed_at.GetCurrentTime()
    assert "input and an output" in refused(record).message


def test_correction_body_is_validated_recursively() -> None:
    record = new_record("acme")
    record.correction.corrects_record_id = "r-1"
    record.correction.reason = "typo"
    record.correction.corrected.CopyFrom(shipment(amount="-1", record_id="r-1"))
    err = refused(record)
    assert err.field == "correction.corrected.shipment.lots[0].quantity.amount"


def test_decode_refuses_garbage_oversize_and_unknown_fields() -> None:
    with pytest.raises(InvalidRecord) as info:
        decode_record(b"\xff\xff\xff\xff")
    assert info.value.reason == "MALFORMED"
    with pytest.raises(RecordTooLarge):
        decode_record(b"\x00" * (MAX_RECORD_BYTES + 1))
    good = shipment().SerializeToString()
    # field 1000, varint 1: a field this version does not know.
    with pytest.raises(InvalidRecord) as info:
        decode_record(good + b"\xc0\x3e\x01")
    assert info.value.reason == "UNKNOWN_FIELDS"


def test_lot_keys() -> None:
    assert lot_key(records_pb2.LotId(gtin=GTIN_A, lot="L1")) == f"01/{GTIN_A}/10/L1"
    assert lot_key(records_pb2.LotId(item_code="FLOUR", lot="A/7")) == "item/FLOUR/lot/A%2F7"
