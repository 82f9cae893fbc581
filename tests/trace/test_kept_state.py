"""The sums and consignments the index keeps as records are applied (TraceIndex.holdings,
TraceIndex.consignments) answer exactly what the records behind them say, which is how mass
balances and consignments were computed before the index kept them: a differential test on
random workloads of every record kind that moves stock, corrections, rescans, SSCC packing,
locations changing owner, and snapshots taken midway."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from lotledger.trace.alerts import apply_and_check
from lotledger.trace.effects import SHIPMENT
from lotledger.trace.index import TraceIndex
from lotledger.trace.queries import _Reader, balances, downstream, recall, shipment_view, upstream
from lotledger.trace.records import ListRecords
from lotledger.trace.snapshot import dump, restore
from lotledger.v1 import records_pb2

GTINS = ["09520000000011", "09520000000028", "09520000000035"]
PALLETS = ["095200000000000011", "095200000000000028", "095200000000000035"]
LOCATIONS = ["plant/dock", "plant/line", "dist/wh", ""]
HOLDERS = ["plant", "dist", "shop"]


def _amount(rng: random.Random) -> str:
    whole = str(rng.randint(0, 40))
    return whole if rng.random() < 0.6 else f"{whole}.{rng.randint(1, 999_999_999):09d}".rstrip("0")


def _quantity(rng: random.Random) -> records_pb2.Quantity:
    return records_pb2.Quantity(amount=_amount(rng), unit=rng.choice(["KGM", "KGM", "KGM", "LTR"]))


def _time(rng: random.Random, t: int) -> Timestamp:
    return Timestamp(seconds=t, nanos=rng.choice([0, 0, 500_000_000, 123_456_789, 999_999_999]))


def workload(seed: int, n: int = 400, *, moves: bool = True) -> list[records_pb2.Record]:
    """`n` random records in log order; `moves`: locations change owner and aggregations are
    corrected (after which the index reads scanned lots' records)."""
    rng = random.Random(seed)
    out: list[records_pb2.Record] = []
    lots: list[records_pb2.LotId] = []
    shipments: list[str] = []
    t = 1_790_000_000

    def lot() -> records_pb2.LotId:
        if lots and rng.random() < 0.8:
            return rng.choice(lots)
        new = records_pb2.LotId(gtin=rng.choice(GTINS), lot=f"L{len(lots)}")
        lots.append(new)
        return new

    for i in range(n):
        t += 60
        submitter = rng.choice(HOLDERS)
        r = records_pb2.Record(record_id=f"r{i}", submitter=submitter)
        pick = rng.random()
        if i < 3:
            r.submitter = "admin"
            loc = r.location_registered
            loc.location_id, loc.participant_id = LOCATIONS[i], HOLDERS[i]
        elif pick < 0.15:
            m = r.material_received
            m.lot.CopyFrom(lot())
            m.quantity.CopyFrom(_quantity(rng))
            m.supplier, m.location = "acme", rng.choice(LOCATIONS)
            m.received_at.CopyFrom(_time(rng, t))
        elif pick < 0.35:
            run = r.production_run
            run.run_id, run.location = f"RUN{i}", rng.choice(LOCATIONS)
            ins = {lot().SerializeToString() for _ in range(rng.randint(1, 3))}
            for raw in ins:
                run.inputs.add(lot=records_pb2.LotId.FromString(raw), quantity=_quantity(rng))
            for _ in range(rng.choice([0, 1, 1, 1, 2])):  # (no output: a run the ledger refuses)
                new = records_pb2.LotId(gtin=rng.choice(GTINS), lot=f"L{len(lots)}")
                lots.append(new)
                run.outputs.add(lot=new, quantity=_quantity(rng))
            run.completed_at.CopyFrom(_time(rng, t))
        elif pick < 0.5:
            s = r.shipment
            s.shipment_id, s.from_participant = f"SH{i}", submitter
            s.to_participant, s.to_location = rng.choice(HOLDERS), rng.choice(LOCATIONS)
            s.from_location = rng.choice(LOCATIONS)
            for _ in range(rng.randint(1, 3)):
                s.lots.add(lot=lot(), quantity=_quantity(rng))
            if rng.random() < 0.5:
                s.shipped_at.CopyFrom(_time(rng, t))
            for k in range(rng.choice([0, 1, 2])):
                s.documents.add(type="BOL", number=f"B-{i}-{k}")
            shipments.append(s.shipment_id)
        elif pick < 0.58 and shipments:
            rc = r.receipt
            rc.shipment_id = rng.choice([*shipments, "NEVER"])
            rc.participant, rc.location = submitter, rng.choice(LOCATIONS)
            for _ in range(rng.randint(1, 2)):
                rc.lots.add(lot=lot(), quantity=_quantity(rng))
            rc.received_at.CopyFrom(_time(rng, t))
        elif pick < 0.62:
            q = r.quality_check
            q.lot.CopyFrom(lot())
            q.check_name, q.result = "micro", rng.choice([records_pb2.QC_RESULT_PASS, records_pb2.QC_RESULT_FAIL])
        elif pick < 0.8:
            s = r.scan
            s.device_id, s.location, s.raw_data = "dev", rng.choice(LOCATIONS), "raw"
            s.meaning = rng.choice(
                [
                    records_pb2.SCAN_MEANING_RECEIVE,
                    records_pb2.SCAN_MEANING_CONSUME,
                    records_pb2.SCAN_MEANING_PRODUCE,
                    records_pb2.SCAN_MEANING_SHIP,
                ]
            )
            s.scanned_at.CopyFrom(_time(rng, t))
            if rng.random() < 0.4:
                s.gs1.sscc = rng.choice(PALLETS)
            if rng.random() < 0.7 or not s.gs1.sscc:
                named = lot()
                s.gs1.gtin, s.gs1.lot = named.gtin, named.lot
            if rng.random() < 0.5:
                s.gs1.net_weight.amount, s.gs1.net_weight.unit = _amount(rng), "KGM"
            elif rng.random() < 0.5:
                s.gs1.count = rng.randint(1, 9)
        elif pick < 0.88:
            a = r.aggregation
            a.parent_sscc = rng.choice(PALLETS)
            a.action = rng.choice([records_pb2.AGGREGATION_ACTION_ADD] * 3 + [records_pb2.AGGREGATION_ACTION_DELETE])
            for _ in range(rng.randint(1, 2)):
                a.lots.add(lot=lot(), quantity=records_pb2.Quantity(amount=_amount(rng), unit="KGM"))
            if rng.random() < 0.2:
                a.child_ssccs.append(rng.choice(PALLETS))
        elif pick < 0.92 and moves:
            r.submitter = "admin"
            loc = r.location_registered
            loc.location_id, loc.participant_id = rng.choice(LOCATIONS[:3]), rng.choice(HOLDERS)
        else:
            kinds = {"production_run", "shipment", "scan", "material_received", "receipt"}
            if moves:
                kinds.add("aggregation")
            targets = [x for x in out if x.WhichOneof("body") in kinds]
            if not targets:
                continue
            original = rng.choice(targets)
            r.submitter = original.submitter
            r.correction.corrects_record_id, r.correction.reason = original.record_id, "fix"
            fixed = r.correction.corrected
            fixed.CopyFrom(original)
            body = getattr(fixed, fixed.WhichOneof("body"))
            for field in ("inputs", "lots", "outputs"):
                if hasattr(body, field) and len(getattr(body, field)):
                    getattr(body, field)[0].quantity.CopyFrom(_quantity(rng))
                    getattr(body, field)[0].lot.CopyFrom(lot())
                    break
            if fixed.WhichOneof("body") == "material_received":
                fixed.material_received.quantity.CopyFrom(_quantity(rng))
                fixed.material_received.location = rng.choice(LOCATIONS)
            if fixed.WhichOneof("body") == "shipment":
                fixed.shipment.to_participant = rng.choice(HOLDERS)
                fixed.shipment.documents.add(type="BOL", number=f"fixed-{i}")
        out.append(r)
    return out


def check(index: TraceIndex) -> None:
    """Every kept answer equals the one read from the records."""
    reader = _Reader(index)
    for key in sorted(index.lot_keys()):
        kept = balances(index, key)
        assert kept == balances(index, key, reader, from_records=True), key
        node = index.nodes[key]
        if not index.holdings.unlinked and not (index.scan_context_moved and index.scanned[node]):
            for b in kept:  # the OVER_USED rule's running balance is the same sum
                assert Decimal(index.holdings.get(node, b.participant, b.unit)) / 10**9 == b.remaining
    for label, node in index.nodes.items():
        if label.startswith(SHIPMENT):
            assert shipment_view(index, node, reader) == shipment_view(index, node, reader, from_records=True)
    keys = sorted(index.lot_keys())
    rng = random.Random(len(keys))
    for key in rng.sample(keys, k=min(8, len(keys))):  # a trace's shipments, all of their lots
        for result in (downstream(index, key), upstream(index, key)):
            for node, label in zip(result.nodes, result.labels, strict=True):
                if label.startswith(SHIPMENT):
                    want = shipment_view(index, node, reader, from_records=True)
                    assert result.shipment_views[want.shipment_id] == want
    for triggers in ([keys[0]], rng.sample(keys, k=min(3, len(keys)))):
        fast, slow = recall(index, triggers, "x"), recall(index, triggers, "x", from_records=True)
        assert fast.lots == slow.lots
        assert list(fast.lots) == list(slow.lots)
        assert fast.consignments == slow.consignments


@pytest.mark.parametrize("moves", [False, True])
@pytest.mark.parametrize("seed", range(5))
def test_kept_balances_and_consignments_equal_the_records(seed: int, moves: bool) -> None:
    records = workload(seed, moves=moves)
    source = ListRecords()
    index = TraceIndex(source)
    for i, record in enumerate(records):
        apply_and_check(index, source.append(record), record)
        if i == len(records) // 2:
            check(index)
            index, _ = restore(dump(index, []), source)  # a restart midway keeps every sum
    check(index)
    assert index.scan_context_moved == moves or not moves
    if moves:
        assert index.scan_context_moved, "the workload must exercise the records' path"
    assert any(index.holdings.next[r] >= 0 for r in range(len(index.holdings.key))), "lots with several rows"


def test_a_sum_beyond_64_bits_stays_exact() -> None:
    source = ListRecords()
    index = TraceIndex(source)
    lot = records_pb2.LotId(item_code="SALT", lot="S")
    for i in range(3):
        r = records_pb2.Record(record_id=f"in{i}", submitter="plant")
        m = r.material_received
        m.lot.CopyFrom(lot)
        m.quantity.amount, m.quantity.unit, m.supplier = "9000000000.5", "KGM", "sup"
        index.apply(source.append(r), r)
    [b] = balances(index, "item/SALT/lot/S")
    assert b.received == Decimal("27000000001.5") and index.holdings.big
    assert balances(index, "item/SALT/lot/S", from_records=True) == [b]
    restored, _ = restore(dump(index, []), source)
    assert balances(restored, "item/SALT/lot/S") == [b]
