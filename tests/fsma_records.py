"""FSMA 204 test records: a lettuce -> salad chain with complete Key Data Elements, and the
index-backed log the KDE_MISSING rule runs against (tests/fsma)."""

from __future__ import annotations

from lotledger.trace.alerts import RULES, apply_and_check
from lotledger.trace.index import TraceIndex
from lotledger.trace.records import ListRecords
from lotledger.v1 import records_pb2 as r

LOT = r.LotId(item_code="LETTUCE", lot="L1")
SALAD = r.LotId(item_code="SALAD", lot="S1")
T0 = 1_790_000_000


class Log:
    def __init__(self) -> None:
        self.records = ListRecords()
        self.index = TraceIndex(self.records)
        for loc, who in [("farm/shed", "farm"), ("plant/dock", "plant"), ("plant/line", "plant"), ("dc/1", "dist")]:
            rec = r.Record(record_id=f"loc/{loc}", submitter="admin")
            rec.location_registered.location_id, rec.location_registered.participant_id = loc, who
            self.add(rec)

    def add(self, record: r.Record) -> list[str]:
        """The KDE_MISSING messages the record raised."""
        seq = self.records.append(record)
        alerts = apply_and_check(self.index, seq, record)
        assert all(a.rule in RULES for a in alerts)
        return [a.message for a in alerts if a.rule == "KDE_MISSING"]


def received(rid: str = "m1", **drop: bool) -> r.Record:
    rec = r.Record(record_id=rid, submitter="plant")
    m = rec.material_received
    m.lot.CopyFrom(LOT)
    m.supplier, m.supplier_lot_code, m.location = "farm", "F-1", "plant/dock"
    m.quantity.amount, m.quantity.unit = "100", "KGM"
    m.received_at.FromSeconds(T0)
    m.product_description = "" if drop.get("description") else "Romaine lettuce"
    if not drop.get("documents"):
        m.documents.add(type="BOL", number="B-1")
    return rec


def run(rid: str = "run1", location: str = "plant/line") -> r.Record:
    rec = r.Record(record_id=rid, submitter="plant")
    p = rec.production_run
    p.run_id, p.location, p.product_description = "R1", location, "Caesar salad"
    p.inputs.add(lot=LOT, quantity=r.Quantity(amount="50", unit="KGM"))
    p.outputs.add(lot=SALAD, quantity=r.Quantity(amount="200", unit="H87"))
    p.completed_at.FromSeconds(T0 + 3600)
    return rec


def shipment(rid: str = "s1", to_location: str = "dc/1", lot: r.LotId = SALAD) -> r.Record:
    rec = r.Record(record_id=rid, submitter="plant")
    s = rec.shipment
    s.shipment_id, s.from_participant, s.from_location = "SH-1", "plant", "plant/dock"
    s.to_participant, s.to_location = "dist", to_location
    s.lots.add(lot=lot, quantity=r.Quantity(amount="200", unit="H87"))
    s.shipped_at.FromSeconds(T0 + 7200)
    s.documents.add(type="BOL", number="B-2")
    return rec


def receipt(rid: str = "rc1", shipment_id: str = "SH-1") -> r.Record:
    rec = r.Record(record_id=rid, submitter="dist")
    rc = rec.receipt
    rc.shipment_id, rc.participant, rc.location = shipment_id, "dist", "dc/1"
    rc.lots.add(lot=SALAD, quantity=r.Quantity(amount="200", unit="H87"))
    rc.received_at.FromSeconds(T0 + 9000)
    return rec
