"""A fan-out supply chain for the web app's big-graph test and bench/web.py: a raw material lot
consumed into many runs, each output lot shipped four times, written through the real append
path with real signatures."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from lotledger.ledger.core.records import sign
from lotledger.ledger.log import Ledger
from lotledger.signing.keys import SigningKey
from lotledger.v1 import records_pb2

RAW_GTIN, OUT_GTIN = "09520000000011", "09520000000042"
SHIPMENTS_PER_LOT = 4


def _record(rid: str, submitter: str) -> records_pb2.Record:
    r = records_pb2.Record(record_id=rid, submitter=submitter)
    r.created_at.GetCurrentTime()
    return r


def fan_out(name: str, runs: int) -> list[records_pb2.Record]:
    """A raw lot, `runs` lots made from it, each shipped SHIPMENTS_PER_LOT times: a downstream
    trace of 2 + runs * (1 + SHIPMENTS_PER_LOT) nodes (the raw lot, the lots, the shipments,
    one receiver)."""
    out = []
    m = (r := _record(f"{name}/raw", "plant")).material_received
    m.lot.gtin, m.lot.lot, m.supplier, m.supplier_lot_code = RAW_GTIN, name, "acme", f"ACME-{name}"
    m.quantity.amount, m.quantity.unit, m.location = str(runs * 10), "KGM", "plant-7/dock-1"
    m.received_at.GetCurrentTime()
    out.append(r)
    for i in range(runs):
        run = (r := _record(f"{name}/run/{i}", "plant")).production_run
        run.run_id, run.manufactured_on, run.location = f"{name}-RUN-{i}", "2026-11-20", "plant-7/line-1"
        item = run.inputs.add()
        item.lot.gtin, item.lot.lot, item.quantity.amount, item.quantity.unit = RAW_GTIN, name, "10", "KGM"
        made = run.outputs.add()
        made.lot.gtin, made.lot.lot, made.quantity.amount, made.quantity.unit = OUT_GTIN, f"{name}-{i}", "40", "KGM"
        run.completed_at.GetCurrentTime()
        out.append(r)
        for j in range(SHIPMENTS_PER_LOT):
            s = (r := _record(f"{name}/ship/{i}/{j}", "plant")).shipment
            s.shipment_id, s.from_participant, s.to_participant = f"{name}-SH-{i}-{j}", "plant", "dist1"
            s.to_location = "north/wh-1"
            s.shipped_at.GetCurrentTime()
            item = s.lots.add()
            item.lot.gtin, item.lot.lot, item.quantity.amount, item.quantity.unit = OUT_GTIN, f"{name}-{i}", "10", "KGM"
            out.append(r)
    return out


def write_fan_outs(ledger: Ledger, plant: SigningKey, sizes: list[int]) -> dict[int, str]:
    """One fan-out per size, signed by the manufacturer `plant`; returns size -> raw lot key."""
    lots = {}
    for size in sizes:
        name = f"RAW{size}"
        pending: list[Future[Any]] = [ledger.submit(sign(r, plant)) for r in fan_out(name, max(1, (size - 2) // 5))]
        for f in pending:
            f.result()
        lots[size] = f"01/{RAW_GTIN}/10/{name}"
    return lots
