"""Irregularities to flag, never reasons to refuse (DESIGN section 5).

Each rule looks at one record against the index as it stood before the record (or, for mass
balance, right after it) and says what is irregular. `apply_and_check` is what the ledger runs
for every committed entry: the record always goes into the index; the alerts go beside it.
The rules read the index's per-lot arrays, and the records behind them only to word a message
or to compare a receipt with its shipment.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date

from google.protobuf.timestamp_pb2 import Timestamp

from lotledger.ledger.core.validation import lot_key, timestamp_to_datetime
from lotledger.trace.effects import CONSUME, QC_NAMES, QC_NONE, QC_PASS, SHIP, SHIPMENT, Effect, nano, shipment_label
from lotledger.trace.index import TraceIndex
from lotledger.trace.queries import quantity
from lotledger.trace.records import in_force
from lotledger.trace.standards.fsma import IndexKdeContext, missing_kdes, record_lots
from lotledger.v1 import records_pb2

RULES = {
    "SHIPPED_WITHOUT_QC": "a lot was shipped with no QC result on record",
    "SHIPPED_FAILING_QC": "a lot was shipped while its latest QC result is FAIL or HOLD",
    "EXPIRED_USE": "a lot was shipped or consumed after its expiry date",
    "OVER_USED": "more of a lot was consumed or shipped than its holder produced or received",
    "RECEIPT_WITHOUT_SHIPMENT": "a receipt names a shipment that is not in the ledger",
    "RECEIPT_MISMATCH": "a receipt's lots or quantities differ from its shipment's",
    "SHIPPED_UNDER_RECALL": "a lot under an open recall (or made from one) was shipped",
    "KDE_MISSING": "a record of an FSMA 204 Critical Tracking Event lacks a required Key Data Element",
}


@dataclass(frozen=True)
class Alert:
    seq: int
    record_id: str
    rule: str
    lot: str
    message: str


def _day(ts: Timestamp) -> date | None:
    return timestamp_to_datetime(ts).date() if ts.seconds or ts.nanos else None


def _expired(index: TraceIndex, node: int | None, on: date | None) -> str | None:
    if node is None or on is None or not index.expiry[node]:
        return None
    expiry = date.fromordinal(index.expiry[node])
    return expiry.isoformat() if on > expiry else None


def _ship_checks(
    index: TraceIndex, seq: int, rid: str, shipment: str, day: date | None, keys: Iterable[str]
) -> list[Alert]:
    out: list[Alert] = []
    for key in keys:
        node = index.nodes.get(key)
        code = index.qc[node] if node is not None else QC_NONE
        if code == QC_NONE:
            out.append(Alert(seq, rid, "SHIPPED_WITHOUT_QC", key, f"{key} shipped in {shipment} with no QC result"))
        elif code != QC_PASS and node is not None:
            qc_seq = index.qc_seq[node]
            check = index.records.record(qc_seq).quality_check.check_name
            out.append(
                Alert(
                    seq,
                    rid,
                    "SHIPPED_FAILING_QC",
                    key,
                    f"{key} shipped in {shipment} while QC {check!r} is {QC_NAMES[code]} (entry {qc_seq})",
                )
            )
        if expiry := _expired(index, node, day):
            out.append(
                Alert(seq, rid, "EXPIRED_USE", key, f"{key} shipped in {shipment} on {day} after its expiry {expiry}")
            )
        if node is not None and (recall_id := index.recalled.get(node)):
            out.append(
                Alert(seq, rid, "SHIPPED_UNDER_RECALL", key, f"{key} shipped in {shipment} under recall {recall_id}")
            )
    return out


def _shipment(index: TraceIndex, seq: int, record: records_pb2.Record) -> list[Alert]:
    s = record.shipment
    keys = dict.fromkeys(lot_key(item.lot) for item in s.lots)
    return _ship_checks(index, seq, record.record_id, s.shipment_id, _day(s.shipped_at), keys)


def _scan(index: TraceIndex, seq: int, record: records_pb2.Record, effs: list[Effect]) -> list[Alert]:
    """Ship and consume scans face the same rules as shipments and runs (trace/effects.py)."""
    s = record.scan
    day = _day(s.scanned_at)
    if s.meaning == SHIP and effs:
        keys = dict.fromkeys(e.label for e in effs[1:])
        return _ship_checks(index, seq, record.record_id, effs[0].label[len(SHIPMENT) :], day, keys)
    out = []
    if s.meaning == CONSUME:
        for e in effs:
            if expiry := _expired(index, index.nodes.get(e.label), day):
                out.append(
                    Alert(
                        seq,
                        record.record_id,
                        "EXPIRED_USE",
                        e.label,
                        f"{e.label} consumed at {s.location} on {day} after its expiry {expiry}",
                    )
                )
    return out


def _production_run(index: TraceIndex, seq: int, record: records_pb2.Record) -> list[Alert]:
    run = record.production_run
    day = _day(run.completed_at)
    out = []
    for item in run.inputs:
        key = lot_key(item.lot)
        if expiry := _expired(index, index.nodes.get(key), day):
            out.append(
                Alert(
                    seq,
                    record.record_id,
                    "EXPIRED_USE",
                    key,
                    f"{key} consumed by run {run.run_id} on {day} after its expiry {expiry}",
                )
            )
    return out


def _totals(items: Iterable[records_pb2.LotQuantity]) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    for item in items:
        key = (lot_key(item.lot), item.quantity.unit)
        out[key] = out.get(key, 0) + nano(item.quantity.amount)
    return out


def _receipt(index: TraceIndex, seq: int, record: records_pb2.Record) -> list[Alert]:
    r = record.receipt
    node = index.nodes.get(shipment_label(r.shipment_owner, r.shipment_id, index.scoped))
    if node is None or index.shipment_seq[node] < 0:
        return [
            Alert(
                seq,
                record.record_id,
                "RECEIPT_WITHOUT_SHIPMENT",
                "",
                f"receipt of {r.shipment_id!r}"
                + (f" from {r.shipment_owner!r}" if r.shipment_owner else "")
                + ", which no shipment record names",
            )
        ]
    sent = _totals(index.records.record(index.shipment_seq[node]).shipment.lots)
    got = _totals(r.lots)
    out = []
    for key_unit in sorted(set(sent) | set(got)):
        if sent.get(key_unit) != got.get(key_unit):
            key, unit = key_unit
            out.append(
                Alert(
                    seq,
                    record.record_id,
                    "RECEIPT_MISMATCH",
                    key,
                    f"{r.shipment_id}: {key} shipped {quantity(sent.get(key_unit, 0))} {unit}, "
                    f"received {quantity(got.get(key_unit, 0))} {unit}",
                )
            )
    return out


_BEFORE = {"shipment": _shipment, "production_run": _production_run, "receipt": _receipt}


def _over_used(index: TraceIndex, seq: int, record: records_pb2.Record, effs: list[Effect]) -> list[Alert]:
    kind = record.WhichOneof("body")
    if kind == "scan":
        used = dict.fromkeys((e.holder, e.label, e.unit) for e in effs if e.delta < 0)
        meaning = records_pb2.ScanMeaning.Name(record.scan.meaning).removeprefix("SCAN_MEANING_").lower()
        how = f"by a {meaning} scan at {record.scan.location}"
    elif kind in ("shipment", "production_run"):
        holder, items = (
            (record.shipment.from_participant, record.shipment.lots)
            if kind == "shipment"
            else (record.submitter, record.production_run.inputs)
        )
        used = dict.fromkeys((holder, lot_key(i.lot), i.quantity.unit) for i in items)
        how = (
            f"in shipment {record.shipment.shipment_id}"
            if kind == "shipment"
            else f"in run {record.production_run.run_id}"
        )
    else:
        return []
    out = []
    for holder, key, unit in used:
        remaining = index.holdings.get(index.nodes[key], holder, unit)
        if remaining < 0:
            out.append(
                Alert(
                    seq,
                    record.record_id,
                    "OVER_USED",
                    key,
                    f"{holder} has used or shipped {quantity(-remaining)} {unit} more of {key} than it took in ({how})",
                )
            )
    return out


def _kde(index: TraceIndex, seq: int, record: records_pb2.Record) -> list[Alert]:
    """KDE_MISSING (trace/standards/fsma.py): one alert per record, naming every missing element; a
    correction is judged by the body it puts in force."""
    body = in_force(record)
    missing = missing_kdes(body, IndexKdeContext(index))
    if not missing:
        return []
    kind = body.WhichOneof("body")
    lots = record_lots(body)
    return [Alert(seq, record.record_id, "KDE_MISSING", lots[0] if lots else "", f"{kind} lacks {', '.join(missing)}")]


def apply_and_check(index: TraceIndex, seq: int, record: records_pb2.Record) -> list[Alert]:
    """Apply a committed record to the index and return the irregularities it shows."""
    return [_signed_off(a) for a in _check(index, seq, record)]


def _signed_off(a: Alert) -> Alert:
    """Every message ends naming the entry and record it is about, so that a line read alone
    (in a mail, a log, a terminal) says which record to open: two expired shipments of one lot
    would otherwise read word for word alike."""
    return replace(a, message=f"{a.message} [entry {a.seq}, record {a.record_id}]")


def _check(index: TraceIndex, seq: int, record: records_pb2.Record) -> list[Alert]:
    kind = record.WhichOneof("body") or ""
    if kind == "scan":
        # What a scan means depends on the index before it, so its effects come back from
        # `apply` (none for a rescan); it changes no QC, expiry or recall of what it ships or
        # consumes, so its rules can read the index after it.
        effs = index.apply(seq, record)
        return _scan(index, seq, record, effs) + _over_used(index, seq, record, effs) if effs else []
    before = _BEFORE.get(kind)
    alerts = before(index, seq, record) if before else []
    alerts += _kde(index, seq, record)
    index.apply(seq, record)
    return alerts + _over_used(index, seq, record, [])
