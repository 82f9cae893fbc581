"""Random but reproducible supply chains as plain Record lists, for the trace tests, and an
independent brute-force reference (plain BFS over the records) to check the index against."""

from __future__ import annotations

import random
from collections import defaultdict, deque
from decimal import Decimal

from google.protobuf.timestamp_pb2 import Timestamp

from lotledger.ledger.core.validation import lot_key
from lotledger.v1 import records_pb2

T0 = 1_767_000_000  # seconds; a fixed start keeps chains reproducible


def _ts(t: int) -> Timestamp:
    ts = Timestamp()
    ts.FromSeconds(t)
    return ts


def _lot(code: str, number: str) -> records_pb2.LotId:
    return records_pb2.LotId(item_code=code, lot=number)


def generate(seed: int, runs: int = 60, corrections: int = 5) -> list[records_pb2.Record]:
    rng = random.Random(seed)
    out: list[records_pb2.Record] = []
    t = T0

    def record(submitter: str) -> records_pb2.Record:
        nonlocal t
        t += 60
        r = records_pb2.Record(record_id=f"r{len(out)}", submitter=submitter)
        r.created_at.CopyFrom(_ts(t))
        out.append(r)
        return r

    lots: list[records_pb2.LotId] = []
    for i in range(12):
        r = record("plant")
        m = r.material_received
        m.lot.CopyFrom(_lot(f"RAW{i % 4}", f"R{i}"))
        m.supplier, m.supplier_lot_code, m.location = f"sup{i % 3}", f"S-{i}", "plant/dock"
        m.quantity.amount, m.quantity.unit = str(rng.randint(100, 500)), "KGM"
        m.received_at.CopyFrom(_ts(t))
        m.expiry_date = "2027-06-01"
        lots.append(m.lot)
    run_ids = []
    for j in range(runs):
        r = record("plant")
        run = r.production_run
        run.run_id, run.manufactured_on, run.location = f"RUN{j}", "2026-12-01", "plant/line"
        for src in rng.sample(lots, k=min(len(lots), rng.randint(1, 3))):
            run.inputs.add(lot=src, quantity=records_pb2.Quantity(amount=str(rng.randint(1, 40)), unit="KGM"))
        new = []
        for k in range(rng.randint(1, 2)):
            lot = _lot("FG" if rng.random() < 0.5 else "INT", f"P{j}-{k}")
            run.outputs.add(lot=lot, quantity=records_pb2.Quantity(amount=str(rng.randint(10, 80)), unit="KGM"))
            new.append(lot)
        run.completed_at.CopyFrom(_ts(t))
        lots.extend(new)
        run_ids.append(r.record_id)
        if rng.random() < 0.5:
            q = record("qa").quality_check
            q.lot.CopyFrom(rng.choice(new))
            q.check_name, q.signed_off_by = "micro", "QA"
            q.result = rng.choice([records_pb2.QC_RESULT_PASS, records_pb2.QC_RESULT_PASS, records_pb2.QC_RESULT_FAIL])
            q.checked_at.CopyFrom(_ts(t))
    for s in range(runs // 2):
        r = record("plant")
        sh = r.shipment
        sh.shipment_id, sh.from_participant, sh.to_participant = f"SH{s}", "plant", f"dist{s % 2}"
        shipped = rng.sample(lots[12:], k=min(2, len(lots) - 12))
        for lot in shipped:
            sh.lots.add(lot=lot, quantity=records_pb2.Quantity(amount=str(rng.randint(1, 20)), unit="KGM"))
        sh.shipped_at.CopyFrom(_ts(t))
        if rng.random() < 0.7:
            rc = record(f"dist{s % 2}").receipt
            rc.shipment_id, rc.participant = sh.shipment_id, sh.to_participant
            rc.lots.extend(sh.lots)
            rc.received_at.CopyFrom(_ts(t))
            onward = record(f"dist{s % 2}").shipment
            onward.shipment_id, onward.from_participant, onward.to_participant = (
                f"SH{s}-C",
                sh.to_participant,
                f"cust{s % 5}",
            )
            onward.lots.add(lot=shipped[0], quantity=records_pb2.Quantity(amount="1", unit="KGM"))
            onward.shipped_at.CopyFrom(_ts(t))
    for _ in range(corrections):
        target_id = rng.choice(run_ids)
        original = next(r for r in out if r.record_id == target_id)
        r = record("plant")
        r.correction.corrects_record_id, r.correction.reason = target_id, "wrong input lot"
        fixed = records_pb2.Record()
        fixed.CopyFrom(original)
        fixed.production_run.inputs[0].lot.CopyFrom(rng.choice(lots[:12]))
        fixed.production_run.inputs[0].quantity.amount = str(rng.randint(1, 9))
        r.correction.corrected.CopyFrom(fixed)
    return out


def effective(records: list[records_pb2.Record]) -> dict[str, records_pb2.Record]:
    """record_id -> the body in force (a correction replaces its original), in log order."""
    current: dict[str, records_pb2.Record] = {}
    for r in records:
        if r.WhichOneof("body") == "correction":
            fixed = records_pb2.Record()
            fixed.CopyFrom(r.correction.corrected)
            fixed.record_id, fixed.submitter = r.correction.corrects_record_id, r.submitter
            current[fixed.record_id] = fixed
        else:
            current[r.record_id] = r
    return current


def reference_edges(records: list[records_pb2.Record]) -> dict[str, set[str]]:
    """Forward adjacency: lot key -> lot keys made from it, and "shipment:<id>" it left in."""
    adj: dict[str, set[str]] = defaultdict(set)
    for r in effective(records).values():
        kind = r.WhichOneof("body")
        if kind == "production_run":
            for i in r.production_run.inputs:
                for o in r.production_run.outputs:
                    adj[lot_key(i.lot)].add(lot_key(o.lot))
        elif kind == "shipment":
            for item in r.shipment.lots:
                adj[lot_key(item.lot)].add(f"shipment:{r.shipment.shipment_id}")
    return adj


def reference_flows(records: list[records_pb2.Record]) -> dict[tuple[str, str], list[tuple[Decimal, str]]]:
    """(source, target) -> what flowed along it, one (amount, unit) per record and unit."""
    out: dict[tuple[str, str], list[tuple[Decimal, str]]] = defaultdict(list)
    for r in effective(records).values():
        kind = r.WhichOneof("body")
        if kind == "production_run":
            items, targets = r.production_run.inputs, [lot_key(o.lot) for o in r.production_run.outputs]
        elif kind == "shipment":
            items, targets = r.shipment.lots, [f"shipment:{r.shipment.shipment_id}"]
        else:
            continue
        sums: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        for item in items:
            sums[(lot_key(item.lot), item.quantity.unit)] += Decimal(item.quantity.amount)
        for (key, unit), amount in sums.items():
            for target in dict.fromkeys(targets):
                out[(key, target)].append((amount, unit))
    return {k: sorted(v) for k, v in out.items()}


def bfs(adj: dict[str, set[str]], starts: list[str]) -> set[str]:
    seen = set(starts)
    queue = deque(starts)
    while queue:
        for nxt in adj.get(queue.popleft(), ()):
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen


def reverse(adj: dict[str, set[str]]) -> dict[str, set[str]]:
    rev: dict[str, set[str]] = defaultdict(set)
    for src, dsts in adj.items():
        for d in dsts:
            rev[d].add(src)
    return rev


def reference_balance(records: list[records_pb2.Record], key: str) -> dict[tuple[str, str], Decimal]:
    """(holder, unit) -> in minus out, straight from the records."""
    total: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for r in effective(records).values():
        kind = r.WhichOneof("body")
        if kind == "material_received" and lot_key(r.material_received.lot) == key:
            q = r.material_received.quantity
            total[(r.submitter, q.unit)] += Decimal(q.amount)
        elif kind == "production_run":
            for o in r.production_run.outputs:
                if lot_key(o.lot) == key:
                    total[(r.submitter, o.quantity.unit)] += Decimal(o.quantity.amount)
            for i in r.production_run.inputs:
                if lot_key(i.lot) == key:
                    total[(r.submitter, i.quantity.unit)] -= Decimal(i.quantity.amount)
        elif kind == "shipment":
            for item in r.shipment.lots:
                if lot_key(item.lot) == key:
                    total[(r.shipment.from_participant, item.quantity.unit)] -= Decimal(item.quantity.amount)
        elif kind == "receipt":
            for item in r.receipt.lots:
                if lot_key(item.lot) == key:
                    total[(r.receipt.participant, item.quantity.unit)] += Decimal(item.quantity.amount)
    return dict(total)
