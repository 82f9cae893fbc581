"""FsmaBuilder (pure): a correction replaces the rows of the record it corrects, the day filter
is inclusive, a ship scan of an SSCC exports the lots packed on it, and fsma-check findings of
a replaced record are dropped."""

from __future__ import annotations

from datetime import date

from fsma_records import LOT, Log, received, shipment

from lotledger.trace.standards.fsma import RECEIVING, SHIPPING, Filter, FsmaBuilder
from lotledger.v1 import records_pb2 as r


def feed(builder: FsmaBuilder, records: list[r.Record]) -> None:
    """Registrations of the participants, the locations of fsma_records.Log, then `records`."""
    registrations = []
    for i, pid in enumerate(["farm", "plant", "dist"]):
        reg = r.Record(record_id=f"reg/{pid}", submitter="admin")
        p = reg.participant_registered
        p.participant_id, p.role, p.public_key, p.business_name = pid, r.ROLE_SUPPLIER, bytes([i]) * 32, pid.title()
        registrations.append(reg)
    for seq, record in enumerate(registrations + Log().records.items + records):
        builder.add(seq, record)


def column(builder: FsmaBuilder, cte: str, name: str) -> list[object]:
    _, columns, rows = next(s for s in builder.sheets() if s[0] == cte)
    i = [c for c, _ in columns].index(name)
    return [row[i] for row in rows]


def test_a_correction_replaces_the_rows_and_findings_of_the_record_it_corrects() -> None:
    fix = r.Record(record_id="fix", submitter="plant")
    fix.correction.corrects_record_id, fix.correction.reason = "m1", "quantity was 1000"
    fixed = received("m1")
    fixed.material_received.quantity.amount = "1000"
    fix.correction.corrected.CopyFrom(fixed)
    b = FsmaBuilder(check=True)
    feed(b, [received("m1", documents=True), fix])
    assert column(b, RECEIVING, "Quantity") == [1000]
    assert column(b, RECEIVING, "Record ID") == ["m1"]
    assert b.missing() == []
    unfixed = FsmaBuilder(check=True)
    feed(unfixed, [received("m1", documents=True)])
    assert [f.field for f in unfixed.missing()] == ["material_received.documents"]


def test_day_filter_is_inclusive() -> None:
    day = date(2026, 9, 21)  # received() happens on this day
    for start, end, rows in [(day, day, 1), (None, date(2026, 9, 20), 0), (date(2026, 9, 22), None, 0)]:
        b = FsmaBuilder(Filter(None, start, end))
        feed(b, [received()])
        assert len(column(b, RECEIVING, "Ledger Entry")) == rows


def test_ship_scan_of_a_pallet_exports_what_was_packed_on_it() -> None:
    agg = r.Record(record_id="pack", submitter="plant")
    agg.aggregation.parent_sscc, agg.aggregation.action = "095200000000000017", r.AGGREGATION_ACTION_ADD
    agg.aggregation.lots.add(lot=LOT, quantity=r.Quantity(amount="40", unit="KGM"))
    scan = r.Record(record_id="scan", submitter="dock-scanner")
    scan.scan.meaning, scan.scan.location = r.SCAN_MEANING_SHIP, "plant/dock"
    scan.scan.gs1.sscc = "095200000000000017"
    scan.scan.scanned_at.FromSeconds(1_790_000_000)
    b = FsmaBuilder()
    feed(b, [received(), agg, scan, shipment(lot=LOT)])
    assert column(b, SHIPPING, "Traceability Lot Code") == ["item/LETTUCE/lot/L1"] * 2
    assert column(b, SHIPPING, "Quantity") == [40, 200]
    assert column(b, SHIPPING, "Reference Document Number") == ["095200000000000017", "B-2"]
    assert column(b, SHIPPING, "Ship-From Business Name")[0] == "Plant"  # the dock's owner
    assert column(b, SHIPPING, "Product Description") == ["Romaine lettuce"] * 2
