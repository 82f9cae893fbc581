"""Trace answers as lotledger.v1 messages (used by the servicer; pure conversion)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from lotledger.trace.alerts import Alert
from lotledger.trace.queries import LotView, RecallReport, SharedSource, ShipmentView, TraceResult
from lotledger.v1 import records_pb2
from lotledger.v1 import trace_pb2 as pb


def _ts(when: datetime | None, into: Timestamp) -> None:
    if when is not None:
        into.FromDatetime(when)


def lot_pb(lot: LotView, depth: int = 0, path: Iterable[str] = ()) -> pb.TraceLot:
    out = pb.TraceLot(
        lot=lot.key,
        depth=depth,
        path=list(path),
        qc_status=lot.qc_status,
        expiry_date=lot.expiry_date,
        description=lot.description,
        run=lot.run,
    )
    for q in lot.qc:
        out.qc.add(check_name=q.check, result=q.result, signed_off_by=q.signed_off_by, submitter=q.submitter, seq=q.seq)
    for s in lot.suppliers:
        src = out.suppliers.add(
            supplier=s.supplier,
            supplier_lot_code=s.supplier_lot_code,
            location=s.location,
            documents=list(s.documents),
            seq=s.seq,
            quantity=records_pb2.Quantity(amount=str(s.quantity), unit=s.unit),
        )
        _ts(s.received_at, src.received_at)
    for scan in lot.scans:
        event = out.scans.add(
            meaning=scan.meaning,
            device_id=scan.device,
            location=scan.location,
            raw_data=scan.raw_data,
            seq=scan.seq,
            record_id=scan.record_id,
        )
        _ts(scan.at, event.scanned_at)
    return out


def shipment_pb(ship: ShipmentView) -> pb.ShipmentView:
    out = pb.ShipmentView(
        shipment_id=ship.shipment_id,
        from_participant=ship.from_participant,
        to_participant=ship.to_participant,
        to_location=ship.to_location,
        documents=list(ship.documents),
        received=ship.received,
        seq=max(ship.seq, 0),
        receipt_seqs=ship.receipts,
    )
    _ts(ship.shipped_at, out.shipped_at)
    for key, amount, unit in ship.lots:
        out.lots.add(lot=key, quantity=records_pb2.Quantity(amount=str(amount), unit=unit))
    return out


def trace_pb(result: TraceResult, index_size: int) -> pb.TraceResponse:
    out = pb.TraceResponse(elapsed_ms=result.elapsed_ms, index_size=index_size)
    for key in result.lots:
        out.lots.append(lot_pb(result.lot_views[key], result.depth[key], result.path(key)))
    for sid in result.shipments:
        out.shipments.append(shipment_pb(result.shipment_views[sid]))
    for e in result.edges:
        out.edges.add(
            source=e.source,
            target=e.target,
            kind=e.kind,
            seq=e.seq,
            quantity=records_pb2.Quantity(amount=str(e.quantity), unit=e.unit),
        )
    return out


def recall_pb(report: RecallReport, index_size: int) -> pb.RecallResponse:
    out = pb.RecallResponse(
        triggers=report.triggers,
        affected_lots=sorted(report.lots),
        consignees=report.consignees,
        elapsed_ms=report.elapsed_ms,
        index_size=index_size,
    )
    for key in sorted(report.lots):
        for b in report.lots[key]:
            out.balances.add(
                lot=key,
                participant=b.participant,
                unit=b.unit,
                received=str(b.received),
                consumed=str(b.consumed),
                shipped=str(b.shipped),
                on_hand=str(b.on_hand),
                unaccounted=str(b.unaccounted),
            )
    for c in report.consignments:
        out.consignments.append(shipment_pb(c))
    return out


def sources_pb(sources: Iterable[SharedSource]) -> pb.CommonSourcesResponse:
    return pb.CommonSourcesResponse(
        sources=[
            pb.SharedSource(kind=s.kind, key=s.key, reaches=s.reaches, complaint_lots=list(s.complaint_lots))
            for s in sources
        ]
    )


def alerts_pb(alerts: Iterable[Alert]) -> pb.ListAlertsResponse:
    return pb.ListAlertsResponse(
        alerts=[pb.Alert(seq=a.seq, record_id=a.record_id, rule=a.rule, lot=a.lot, message=a.message) for a in alerts]
    )
