"""The pure mapping: URN and Digital Link forms agree, round trips keep every mapped field, and
exports validate against the official EPCIS 2.0 JSON schema (shipped under tests/epcis/schema)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from google.protobuf import json_format

from lotledger.trace.standards.epcis import export_document, plan_import
from lotledger.v1 import records_pb2

DATA = Path(__file__).parent / "data"
NOW = datetime(2026, 2, 1, tzinfo=UTC)  # when the records are signed: fixed, so runs compare byte for byte
SCHEMA = json.loads((Path(__file__).parent / "schema" / "EPCIS-JSON-Schema.json").read_text())


def validate(doc: dict[str, Any]) -> None:
    jsonschema.Draft7Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(doc)


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((DATA / name).read_text())
    return doc


def bodies(records: list[records_pb2.Record]) -> list[dict[str, Any]]:
    """The mapped fields: each record without its source event, amounts as numbers."""
    out = []
    for r in records:
        copy_ = records_pb2.Record()
        copy_.CopyFrom(r)
        copy_.ClearField("epcis")
        copy_.ClearField("record_id")
        d = json_format.MessageToDict(copy_)
        out.append(json.loads(json.dumps(d), parse_float=Decimal, object_hook=_amounts))
    return out


def _amounts(obj: dict[str, Any]) -> dict[str, Any]:
    if "amount" in obj:
        obj["amount"] = Decimal(obj["amount"])
    return obj


def test_the_test_documents_are_valid_epcis() -> None:
    validate(load("plant_urn.jsonld"))
    validate(load("plant_dl.jsonld"))


def test_urn_and_digital_link_documents_give_the_same_records_and_hashes() -> None:
    a = plan_import(load("plant_urn.jsonld"), "plant", NOW)
    b = plan_import(load("plant_dl.jsonld"), "plant", NOW)
    assert a.problems == b.problems == []
    assert [r.record_id for _, _, r in a.records] == [r.record_id for _, _, r in b.records]
    assert [r.epcis.event_hash_id for _, _, r in a.records] == [r.epcis.event_hash_id for _, _, r in b.records]
    assert bodies([r for _, _, r in a.records]) == bodies([r for _, _, r in b.records])
    kinds = [r.WhichOneof("body") for _, _, r in a.records]
    assert kinds == ["material_received", "production_run", "quality_check", "aggregation", "shipment"]
    received = a.records[0][2].material_received
    assert (received.lot.gtin, received.lot.lot, received.supplier) == ("04012345123456", "LOT-A", "gln:4012345000009")
    assert received.location == "414/4012345000115" and received.quantity.amount == "100"


def test_a_query_document_imports_like_the_document_of_its_events() -> None:
    """EPCISQueryDocument (what an EPCIS repository's query interface answers) carries the
    events under epcisBody.queryResults.resultsBody: the same events, the same records."""
    doc = load("plant_urn.jsonld")
    query = {k: v for k, v in doc.items() if k != "epcisBody"}
    query["type"] = "EPCISQueryDocument"
    query["epcisBody"] = {"queryResults": {"queryName": "SimpleEventQuery", "resultsBody": doc["epcisBody"]}}
    plain, answered = plan_import(doc, "plant", NOW), plan_import(query, "plant", NOW)
    assert answered.problems == [] and len(answered.records) == len(plain.records) == 5
    assert [r.SerializeToString() for _, _, r in answered.records] == [
        r.SerializeToString() for _, _, r in plain.records
    ]


def test_epcis_to_records_to_epcis_gives_back_the_events() -> None:
    doc = load("plant_urn.jsonld")
    plan = plan_import(doc, "plant", NOW)
    exported, skipped = export_document([r for _, _, r in plan.records], "2026-02-01T00:00:00.000Z")
    assert skipped == 0
    validate(exported)
    again = plan_import(exported, "plant", NOW)
    assert [r.SerializeToString() for _, _, r in again.records] == [r.SerializeToString() for _, _, r in plan.records]
    for event, original in zip(exported["epcisBody"]["eventList"], doc["epcisBody"]["eventList"], strict=True):
        assert {k: v for k, v in event.items() if k != "@context"} == original


def native_records() -> list[records_pb2.Record]:
    def rec(body: dict[str, Any], rid: str) -> records_pb2.Record:
        r = records_pb2.Record()
        json_format.ParseDict({"recordId": rid, "submitter": "plant", "createdAt": "2026-01-05T10:00:00Z", **body}, r)
        return r

    lot_a = {"gtin": "09520000000011", "lot": "L7"}
    lot_b = {"itemCode": "MIX-1", "lot": "B 2"}
    return [
        rec(
            {
                "materialReceived": {
                    "lot": lot_a,
                    "supplier": "acme",
                    "supplierLotCode": "ACME-77",
                    "quantity": {"amount": "12.5", "unit": "KGM"},
                    "receivedAt": "2026-01-05T10:00:00.123Z",
                    "location": "dock-1",
                    "documents": [{"type": "PO", "number": "PO-9"}],
                    "expiryDate": "2026-06-01",
                    "productDescription": "flour",
                }
            },
            "n1",
        ),
        rec(
            {
                "productionRun": {
                    "runId": "RUN 5",
                    "inputs": [{"lot": lot_a, "quantity": {"amount": "10", "unit": "KGM"}}],
                    "outputs": [{"lot": lot_b, "quantity": {"amount": "9.75", "unit": "KGM"}}],
                    "manufacturedOn": "2026-01-05",
                    "expiryDate": "2026-03-01",
                    "formulaId": "F-1",
                    "formulaVersion": 3,
                    "location": "line-2",
                    "startedAt": "2026-01-05T11:00:00Z",
                    "completedAt": "2026-01-05T12:00:00Z",
                    "productDescription": "mix",
                }
            },
            "n2",
        ),
        rec(
            {
                "qualityCheck": {
                    "lot": lot_b,
                    "checkName": "moisture",
                    "result": "QC_RESULT_HOLD",
                    "signedOffBy": "qa-ann",
                    "specReference": "SPEC-4",
                    "checkedAt": "2026-01-05T13:00:00Z",
                }
            },
            "n3",
        ),
        rec(
            {
                "shipment": {
                    "shipmentId": "SH-1",
                    "lots": [{"lot": lot_b, "quantity": {"amount": "5", "unit": "KGM"}}],
                    "fromParticipant": "plant",
                    "fromLocation": "414/4012345000122",
                    "toParticipant": "gln:0614141000005",
                    "toLocation": "store-3",
                    "shippedAt": "2026-01-06T08:00:00Z",
                    "documents": [{"type": "ASN", "number": "A-1"}],
                }
            },
            "n4",
        ),
        rec(
            {
                "receipt": {
                    "shipmentId": "SH-0",
                    "lots": [{"lot": lot_a, "quantity": {"amount": "2", "unit": "H87"}}],
                    "participant": "plant",
                    "location": "dock-1",
                    "receivedAt": "2026-01-06T09:00:00Z",
                }
            },
            "n5",
        ),
        rec(
            {
                "aggregation": {
                    "parentSscc": "040123450000001112",
                    "action": "AGGREGATION_ACTION_ADD",
                    "lots": [{"lot": lot_b, "quantity": {"amount": "4", "unit": "KGM"}}],
                    "location": "line-2",
                    "aggregatedAt": "2026-01-06T07:00:00Z",
                }
            },
            "n6",
        ),
        rec(
            {
                "scan": {
                    "deviceId": "gun-1",
                    "rawData": "]d2010952000000001110L7",
                    "gs1": {"gtin": "09520000000011", "lot": "L7", "count": 3},
                    "meaning": "SCAN_MEANING_PRODUCE",
                    "location": "line-2",
                    "scannedAt": "2026-01-06T06:00:00Z",
                }
            },
            "n7",
        ),
    ]


def test_records_to_epcis_to_records_keeps_every_mapped_field() -> None:
    records = native_records()
    exported, skipped = export_document(records, "2026-02-01T00:00:00.000Z")
    assert skipped == 0
    validate(exported)
    plan = plan_import(exported, "plant", NOW)
    assert plan.problems == []
    back = [r for _, _, r in plan.records]
    originals = bodies(records)
    for o in originals:
        o.pop("createdAt")
    again = bodies(back)
    for a in again:
        a.pop("createdAt")
    assert again == originals


def test_an_unmappable_event_is_reported_with_its_position() -> None:
    doc = load("plant_urn.jsonld")
    bad = copy.deepcopy(doc)
    bad["epcisBody"]["eventList"][2]["disposition"] = "damaged"  # inspecting with no QC result
    bad["epcisBody"]["eventList"][0]["quantityList"][0]["epcClass"] = "urn:epc:id:sgtin:4012345.012345.9"  # a serial
    plan = plan_import(bad, "plant", NOW)
    assert [(p.index, p.event_id) for p in plan.problems] == [
        (0, "urn:uuid:3b0a3c7e-0001-4c1e-9d6e-000000000001"),
        (2, ""),
    ]
    assert len(plan.records) == 3


def test_error_declaration_corrects_the_record_of_the_same_event() -> None:
    doc = load("plant_urn.jsonld")
    plan = plan_import(doc, "plant", NOW)
    declared = copy.deepcopy(doc)
    declared["epcisBody"]["eventList"] = [
        {
            **doc["epcisBody"]["eventList"][0],
            "errorDeclaration": {"declarationTime": "2026-01-08T00:00:00Z", "reason": "incorrect_data"},
        }
    ]
    validate(declared)
    fix = plan_import(declared, "plant", NOW).records[0][2]
    assert fix.correction.corrects_record_id == plan.records[0][2].record_id
    assert fix.correction.reason == "incorrect_data"
    assert fix.correction.corrected.material_received == plan.records[0][2].material_received


@pytest.mark.parametrize("doc", [[], {"type": "EPCISDocument"}, {"type": "Other", "epcisBody": {"eventList": []}}])
def test_malformed_documents_are_refused(doc: Any) -> None:
    from lotledger.ledger.errors import EpcisUnmappable

    with pytest.raises(EpcisUnmappable):
        plan_import(doc, "plant", NOW)
