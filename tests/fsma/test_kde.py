"""The KDE_MISSING rule at append time (trace/alerts.py over trace/standards/fsma.py): each CTE record
kind raises it when a required Key Data Element is missing and not when it is complete; a
correction that supplies the element is judged by the body it puts in force."""

from __future__ import annotations

from fsma_records import Log, receipt, received, run, shipment

from lotledger.v1 import records_pb2 as r


def test_complete_chain_raises_nothing() -> None:
    log = Log()
    assert log.add(received()) == []
    assert log.add(run()) == []
    assert log.add(shipment()) == []
    assert log.add(receipt()) == []


def test_receiving_without_description_or_reference_document() -> None:
    log = Log()
    (message,) = log.add(received(description=True, documents=True))
    assert "material_received.product_description" in message and "material_received.documents" in message


def test_transformation_at_a_location_without_master_data() -> None:
    log = Log()
    log.add(received())
    (message,) = log.add(run(location="plant/line-9"))
    assert "production_run.location (location 'plant/line-9' has no master data)" in message


def test_shipping_to_an_unknown_place_and_of_a_lot_with_no_source() -> None:
    log = Log()
    (message,) = log.add(shipment(to_location="somewhere"))
    assert "shipment.to_location" in message
    assert "traceability_lot_code_source (item/SALAD/lot/S1)" in message


def test_receipt_without_a_shipment_names_no_previous_source() -> None:
    log = Log()
    log.add(received())
    log.add(run())
    (message,) = log.add(receipt(shipment_id="SH-NONE"))
    assert "receipt.shipment_id" in message


def test_a_correction_supplying_the_kde_raises_nothing() -> None:
    log = Log()
    assert log.add(received("m1", documents=True))
    fix = r.Record(record_id="fix-m1", submitter="plant")
    fix.correction.corrects_record_id, fix.correction.reason = "m1", "BOL was missing"
    fix.correction.corrected.CopyFrom(received("m1"))
    assert log.add(fix) == []
    broken = r.Record(record_id="fix-m1-again", submitter="plant")
    broken.correction.corrects_record_id, broken.correction.reason = "m1", "oops"
    broken.correction.corrected.CopyFrom(received("m1", description=True))
    assert log.add(broken)
