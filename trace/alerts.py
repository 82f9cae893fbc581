"""Irregularities to flag, never reasons to refuse (DESIGN section 5).

Each rule looks at one record against the index as it stood before the record (or, for mass
balance, right after it) and says what is irregular. `apply_and_check` is what the ledger runs
for every committed entry: the record always goes into the index; the alerts go beside it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from google.protobuf.timestamp_pb2 import Timestamp

from lotledger.ledger.validation import lot_key, timestamp_to_datetime
from lotledger.trace.index import TraceIndex
from lotledger.trace.queries import balances
from lotledger.v1 import records_pb2

RULES = {
    "SHIPPED_WITHOUT_QC": "a lot was shipped with no QC result on record",
    "SHIPPED_FAILING_QC": "a lot was shipped while its latest QC result is FAIL or HOLD",
    "EXPIRED_USE": "a lot was shipped or consumed after its expiry date",
    "OVER_USED": "more of a lot was consumed or shipped than its holder produced or received",
    "RECEIPT_WITHOUT_SHIPMENT": "a receipt names a shipment that is not in the ledger",
    "RECEIPT_MISMATCH": "a receipt's lots or quantities differ from its shipment's",
    "SHIPPED_UNDER_RECALL": "a lot under an open recall (or made from one) was shipped",
}


@dataclass(frozen=True)
class Alert:
    seq: int
    record_id: str
    rule: str
    lot: str
    message: str


def _day(ts: Timestamp) -> date | None:
    return timestamp_to_datetime(ts).date() if ts.ByteSize() else None


def _expired(index: TraceIndex, key: str, on: date | None) -> str | None:
    lot = index.lots.get(key)
    if lot is None or not lot.expiry_date or on is None:
        return None
    expiry = date.fromisoformat(lot.expiry_date)
    return lot.expiry_date if on > expiry else None


def _before(index: TraceIndex, seq: int, record: records_pb2.Record) -> list[Alert]:
    out: list[Alert] = []
    rid = record.record_id
    kind = record.WhichOneof("body")
    if kind == "shipment":
        s = record.shipment
        day = _day(s.shipped_at)
        for item in s.lots:
            key = lot_key(item.lot)
            lot = index.lots.get(key)
            latest = lot.latest_qc if lot else None
            if latest is None:
                out.append(
                    Alert(seq, rid, "SHIPPED_WITHOUT_QC", key, f"{key} shipped in {s.shipment_id} with no QC result")
                )
            elif latest.result != "PASS":
                out.append(
                    Alert(
                        seq,
                        rid,
                        "SHIPPED_FAILING_QC",
                        key,
                        f"{key} shipped in {s.shipment_id} while QC {latest.check!r} is {latest.result} (entry {latest.seq})",
                    )
                )
            if expiry := _expired(index, key, day):
                out.append(Alert(seq, rid, "EXPIRED_USE", key, f"{key} shipped on {day} after its expiry {expiry}"))
            if recall_id := index.recalled.get(key):
                out.append(
                    Alert(
                        seq,
                        rid,
                        "SHIPPED_UNDER_RECALL",
                        key,
                        f"{key} shipped in {s.shipment_id} under recall {recall_id}",
                    )
                )
    elif kind == "production_run":
        run = record.production_run
        day = _day(run.completed_at)
        for item in run.inputs:
            key = lot_key(item.lot)
            if expiry := _expired(index, key, day):
                out.append(
                    Alert(
                        seq,
                        rid,
                        "EXPIRED_USE",
                        key,
                        f"{key} consumed by run {run.run_id} on {day} after its expiry {expiry}",
                    )
                )
    elif kind == "receipt":
        r = record.receipt
        ship = index.shipments.get(r.shipment_id)
        if ship is None or ship.seq < 0:
            out.append(
                Alert(
                    seq,
                    rid,
                    "RECEIPT_WITHOUT_SHIPMENT",
                    "",
                    f"receipt of {r.shipment_id!r}, which no shipment record names",
                )
            )
        else:
            sent = _totals((f.counterpart, f.unit, f.quantity) for f in ship.lots)
            got = _totals((lot_key(i.lot), i.quantity.unit, Decimal(i.quantity.amount)) for i in r.lots)
            for key_unit in sorted(set(sent) | set(got)):
                if sent.get(key_unit) != got.get(key_unit):
                    key, unit = key_unit
                    out.append(
                        Alert(
                            seq,
                            rid,
                            "RECEIPT_MISMATCH",
                            key,
                            f"{r.shipment_id}: {key} shipped {sent.get(key_unit, 0)} {unit}, received {got.get(key_unit, 0)} {unit}",
                        )
                    )
    return out


def _totals(items: Iterable[tuple[str, str, Decimal]]) -> dict[tuple[str, str], Decimal]:
    out: dict[tuple[str, str], Decimal] = {}
    for key, unit, qty in items:
        out[(key, unit)] = out.get((key, unit), Decimal(0)) + qty
    return out


def _after(index: TraceIndex, seq: int, record: records_pb2.Record) -> list[Alert]:
    kind = record.WhichOneof("body")
    if kind == "shipment":
        touched = [(lot_key(i.lot), record.shipment.from_participant) for i in record.shipment.lots]
    elif kind == "production_run":
        touched = [(lot_key(i.lot), record.submitter) for i in record.production_run.inputs]
    else:
        return []
    out = []
    for key, holder in touched:
        for b in balances(index.lots[key]):
            if b.participant == holder and b.unaccounted > 0:
                out.append(
                    Alert(
                        seq,
                        record.record_id,
                        "OVER_USED",
                        key,
                        f"{holder} has used or shipped {b.unaccounted} {b.unit} more of {key} than it took in",
                    )
                )
    return out


def apply_and_check(index: TraceIndex, seq: int, record: records_pb2.Record) -> list[Alert]:
    """Apply a committed record to the index and return the irregularities it shows."""
    alerts = _before(index, seq, record)
    index.apply(seq, record)
    return alerts + _after(index, seq, record)
