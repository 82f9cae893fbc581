"""What scans mean to the trace index (the table in trace/effects.py), one meaning at a time,
with the alert rules they face and the rescans they must not double."""

from __future__ import annotations

from decimal import Decimal

from google.protobuf.timestamp_pb2 import Timestamp

from lotledger.trace.alerts import apply_and_check
from lotledger.trace.index import TraceIndex
from lotledger.trace.queries import balances, downstream, lot_view, recall, upstream
from lotledger.trace.records import ListRecords
from lotledger.trace.snapshot import dump, restore
from lotledger.v1 import records_pb2

T0 = 1_790_000_000  # 2026-09-21
FLOUR = ("09520000000011", "F1")  # GTIN-14, lot
SUGAR = ("09520000000028", "S1")
BREAD = ("09520000000035", "B1")
KEY = {lot: f"01/{g}/10/{lot}" for g, lot in (FLOUR, SUGAR, BREAD)}
PALLET, CASE = "095200000000000011", "095200000000000028"


def ts(t: int) -> Timestamp:
    out = Timestamp()
    out.FromSeconds(t)
    return out


class Floor:
    """A ledger's worth of records, applied the way the live index applies them."""

    def __init__(self, log_rules: int = 0) -> None:
        self.records = ListRecords()
        self.index = TraceIndex(self.records)
        self.alerts: list[set[str]] = []
        if log_rules:  # a genesis entry stating the rules (without one: rules 1)
            r = records_pb2.Record(record_id="genesis", submitter="admin")
            r.participant_registered.participant_id, r.participant_registered.rules_version = "admin", log_rules
            self.add(r)

    def add(self, record: records_pb2.Record) -> set[str]:
        seq = self.records.append(record)
        rules = {a.rule for a in apply_and_check(self.index, seq, record)}
        self.alerts.append(rules)
        return rules

    def location(self, location_id: str, participant: str) -> None:
        r = records_pb2.Record(record_id=f"loc/{location_id}", submitter="admin")
        r.location_registered.location_id, r.location_registered.participant_id = location_id, participant
        self.add(r)

    def scan(
        self,
        meaning: int,
        location: str,
        lot: tuple[str, str] | None = None,
        *,
        sscc: str = "",
        kg: str = "",
        count: int = 0,
        expiry: str = "",
        at: int = T0,
        device: str = "dock-1",
    ) -> set[str]:
        r = records_pb2.Record(record_id=f"scan/{device}/e/{len(self.records.items)}", submitter=device)
        s = r.scan
        s.device_id, s.meaning, s.location, s.raw_data = device, meaning, location, "raw"
        s.scanned_at.CopyFrom(ts(at))
        if lot:
            s.gs1.gtin, s.gs1.lot = lot
        s.gs1.sscc, s.gs1.count, s.gs1.expiry_date = sscc, count, expiry
        if kg:
            s.gs1.net_weight.amount, s.gs1.net_weight.unit = kg, "KGM"
        return self.add(r)

    def pack(
        self,
        parent: str,
        lots: dict[tuple[str, str], str] | None = None,
        children: tuple[str, ...] = (),
        add: bool = True,
        by: str = "plant",
    ) -> None:
        r = records_pb2.Record(record_id=f"agg/{len(self.records.items)}", submitter=by)
        a = r.aggregation
        a.parent_sscc, a.location = parent, f"{by}/pack"
        a.action = records_pb2.AGGREGATION_ACTION_ADD if add else records_pb2.AGGREGATION_ACTION_DELETE
        for (gtin, lot), amount in (lots or {}).items():
            item = a.lots.add()
            item.lot.gtin, item.lot.lot = gtin, lot
            item.quantity.amount, item.quantity.unit = amount, "H87"
        a.child_ssccs.extend(children)
        a.aggregated_at.CopyFrom(ts(T0))
        self.add(r)

    def qc(self, lot: tuple[str, str], result: int = records_pb2.QC_RESULT_PASS) -> None:
        r = records_pb2.Record(record_id=f"qc/{len(self.records.items)}", submitter="qa")
        q = r.quality_check
        q.lot.gtin, q.lot.lot = lot
        q.result, q.check_name = result, "micro"
        self.add(r)


R, C, P, S = (
    records_pb2.SCAN_MEANING_RECEIVE,
    records_pb2.SCAN_MEANING_CONSUME,
    records_pb2.SCAN_MEANING_PRODUCE,
    records_pb2.SCAN_MEANING_SHIP,
)


def holding(floor: Floor, lot: str) -> dict[tuple[str, str], tuple[Decimal, Decimal, Decimal]]:
    return {(b.participant, b.unit): (b.received, b.consumed, b.shipped) for b in balances(floor.index, KEY[lot])}


def test_a_receive_scan_is_a_receipt_held_by_the_locations_owner() -> None:
    f = Floor()
    f.location("plant/dock-2", "plant")
    f.scan(R, "plant/dock-2", FLOUR, kg="25.5", expiry="2026-12-31")
    f.scan(R, "unregistered/dock", SUGAR, count=3, device="dock-9")
    assert holding(f, "F1") == {("plant", "KGM"): (Decimal("25.5"), 0, 0)}
    assert holding(f, "S1") == {("dock-9", "H87"): (Decimal(3), 0, 0)}  # no owner on record: the device
    view = lot_view(f.index, f.index.nodes[KEY["F1"]])
    assert view.expiry_date == "2026-12-31"
    assert [(s.meaning, s.location, s.device) for s in view.scans] == [("receive", "plant/dock-2", "dock-1")]


def test_consume_scans_tie_lots_to_the_run_in_progress_at_that_line() -> None:
    f = Floor()
    f.location("plant/line-1", "plant")
    f.scan(R, "plant/dock", FLOUR, kg="100")
    f.scan(C, "plant/line-1", SUGAR, kg="5")  # before any run at the line: kept as a fact only
    f.scan(P, "plant/line-1", BREAD, count=40, device="line-1")
    f.scan(C, "plant/line-1", FLOUR, kg="25", device="line-1")
    f.scan(C, "plant/line-2", SUGAR, kg="1", device="line-2")  # another line: no run there
    up = upstream(f.index, KEY["B1"])
    assert set(up.depth) == {KEY["B1"], KEY["F1"]}
    assert [(e.source, e.target, e.quantity, e.unit) for e in up.edges] == [(KEY["F1"], KEY["B1"], Decimal(25), "KGM")]
    assert "produced at plant/line-1" in up.lot_views[KEY["B1"]].run
    assert set(downstream(f.index, KEY["S1"]).depth) == {KEY["S1"]}
    assert holding(f, "S1") == {("plant", "KGM"): (0, Decimal(5), 0), ("line-2", "KGM"): (0, Decimal(1), 0)}
    assert holding(f, "B1") == {("plant", "H87"): (Decimal(40), 0, 0)}
    # The next produce scan at the line starts the next run.
    f.scan(P, "plant/line-1", ("09520000000035", "B2"), device="line-1")
    f.scan(C, "plant/line-1", SUGAR, kg="2", device="line-1")
    assert set(downstream(f.index, KEY["S1"]).depth) == {KEY["S1"], "01/09520000000035/10/B2"}
    assert set(downstream(f.index, KEY["F1"]).depth) == {KEY["F1"], KEY["B1"]}


def test_a_ship_scan_of_an_sscc_ships_what_was_packed_on_it_once() -> None:
    f = Floor()
    for location in ("plant/dock", "plant/bay"):
        f.location(location, "plant")
    f.location("dist/dock", "dist")
    for lot in (FLOUR, SUGAR):
        f.scan(R, "plant/dock", lot, count=50)
        f.qc(lot)
    f.pack(CASE, {FLOUR: "6"})
    f.pack(PALLET, {SUGAR: "10"}, children=(CASE,))
    f.pack(PALLET, {SUGAR: "2"}, add=False)  # unpacked again
    assert f.scan(S, "plant/bay", sscc=PALLET, device="bay-1") == set()
    ship = "shipment:sscc/" + PALLET
    down = downstream(f.index, KEY["F1"])
    assert ship in down.depth
    assert [(e.quantity, e.unit) for e in down.edges] == [(Decimal(6), "H87")]
    view = down.shipment_views["sscc/" + PALLET]
    assert (view.from_participant, view.received, view.documents) == ("plant", False, ("SSCC " + PALLET,))
    assert sorted(view.lots) == [(KEY["F1"], Decimal(6), "H87"), (KEY["S1"], Decimal(8), "H87")]
    assert [c.shipment_id for c in recall(f.index, [KEY["S1"]]).open_shipments] == ["sscc/" + PALLET]
    # A rescan changes nothing, and raises nothing.
    edges = f.index.graph.num_edges()
    assert f.scan(S, "plant/bay", sscc=PALLET, device="bay-1") == set()
    assert f.index.graph.num_edges() == edges
    assert holding(f, "S1") == {("plant", "H87"): (Decimal(50), 0, Decimal(8))}
    # Received at the distributor by a scan of the same pallet: delivered, and held there.
    f.scan(R, "dist/dock", sscc=PALLET, device="dist-1")
    f.scan(R, "dist/dock", sscc=PALLET, device="dist-1")  # rescan
    assert recall(f.index, [KEY["S1"]]).open_shipments == []
    assert holding(f, "S1") == {
        ("plant", "H87"): (Decimal(50), 0, Decimal(8)),
        ("dist", "H87"): (Decimal(8), 0, 0),
    }


def test_a_ship_scan_of_a_lot_is_a_shipment_of_its_own() -> None:
    f = Floor()
    f.scan(R, "plant/dock", BREAD, count=10)
    f.scan(S, "plant/bay", BREAD, count=4, device="bay-1")
    down = downstream(f.index, KEY["B1"])
    (sid,) = down.shipments
    assert sid.startswith("scan/bay-1/")
    assert down.shipment_views[sid].lots == ((KEY["B1"], Decimal(4), "H87"),)


def test_scans_face_the_alert_rules() -> None:
    f = Floor()
    f.scan(R, "plant/dock", FLOUR, kg="10", expiry="2026-09-30")
    assert f.scan(S, "plant/bay", FLOUR, kg="1") == {"SHIPPED_WITHOUT_QC"}
    f.qc(FLOUR)
    assert f.scan(S, "plant/bay", FLOUR, kg="1") == set()
    f.qc(FLOUR, records_pb2.QC_RESULT_FAIL)
    assert f.scan(S, "plant/bay", FLOUR, kg="1") == {"SHIPPED_FAILING_QC"}
    f.qc(FLOUR)
    assert f.scan(C, "plant/line", FLOUR, kg="1", at=T0 + 8 * 86_400) == set()
    assert f.scan(C, "plant/line", FLOUR, kg="1", at=T0 + 10 * 86_400) == {"EXPIRED_USE"}
    assert f.scan(C, "plant/line", FLOUR, kg="100") == {"OVER_USED"}


def test_a_corrected_consume_scan_takes_its_edge_out() -> None:
    f = Floor()
    f.scan(P, "plant/line-1", BREAD, device="line-1")
    f.scan(C, "plant/line-1", FLOUR, kg="3", device="line-1")
    wrong = f.records.items[-1]
    assert KEY["B1"] in downstream(f.index, KEY["F1"]).depth
    fix = records_pb2.Record(record_id="fix", submitter="line-1")
    fix.correction.corrects_record_id, fix.correction.reason = wrong.record_id, "scanned the wrong sack"
    fix.correction.corrected.CopyFrom(wrong)
    fix.correction.corrected.scan.gs1.lot = "F2"
    f.add(fix)
    assert set(downstream(f.index, KEY["F1"]).depth) == {KEY["F1"]}
    assert KEY["B1"] in downstream(f.index, "01/09520000000011/10/F2").depth


def test_scan_state_survives_a_snapshot() -> None:
    f = Floor()
    f.location("plant/line-1", "plant")
    f.pack(PALLET, {FLOUR: "3"})
    f.scan(P, "plant/line-1", BREAD, device="line-1")
    restored, _ = restore(dump(f.index, []), f.records)
    assert dump(restored, [])["sparse"] == dump(f.index, [])["sparse"]
    # ... and goes on meaning the same: the line's run and the pallet's contents.
    r = records_pb2.Record(record_id="c", submitter="line-1")
    r.scan.device_id, r.scan.meaning, r.scan.location = "line-1", C, "plant/line-1"
    r.scan.gs1.sscc = PALLET
    r.scan.scanned_at.CopyFrom(ts(T0))
    seq = f.records.append(r)
    for index in (f.index, restored):
        index.apply(seq, r)
        assert set(upstream(index, KEY["B1"]).depth) == {KEY["B1"], KEY["F1"]}


def test_under_rules_3_only_the_pallets_holder_packs_it() -> None:
    """A partner's Aggregation naming the plant's pallet cannot put its lots into the plant's
    shipment (and so into the plant's recall) under rules 3; rules 1 counted every packer."""
    shipped = {}
    for log_rules in (1, 3):
        f = Floor(log_rules)
        f.location("plant/bay", "plant")
        f.pack(PALLET, {FLOUR: "6"})
        f.pack(PALLET, {SUGAR: "9"}, by="acme")
        f.scan(S, "plant/bay", sscc=PALLET, device="bay-1")
        view = downstream(f.index, KEY["F1"]).shipment_views["sscc/" + PALLET]
        shipped[log_rules] = sorted(key for key, _, _ in view.lots)
    assert shipped == {1: [KEY["F1"], KEY["S1"]], 3: [KEY["F1"]]}
