"""The trace index: a rustworkx graph derived from the ledger's records, never the truth.

Nodes are lots and shipments; edges run the way product flows: input lot -> output lot (a
production run consumed it), lot -> shipment (it was shipped). Participants are attributes
(suppliers of a lot, consignees of a shipment), not nodes, so a traversal can never leak from
one participant's lots into another's through the participant. Every edge and every fact
carries the seq of the entry that justifies it.

Pure: `apply(seq, record)` takes decoded records in log order; nothing here reads LMDB or the
network. rustworkx reuses the index of a removed node, so nodes are never removed and node
indices are never persisted: the key map is rebuilt by replaying in order. Corrections remove
the original record's edges and facts and apply the corrected body in their place.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

import rustworkx as rx
from google.protobuf.timestamp_pb2 import Timestamp

from lotledger.ledger.validation import lot_key, timestamp_to_datetime
from lotledger.v1 import records_pb2


class Flow(NamedTuple):
    """A quantity of a lot moving, and the entry that says so. (NamedTuples, not frozen
    dataclasses: the indexer builds millions of these on the server's hot thread.)"""

    seq: int
    record_id: str
    quantity: Decimal
    unit: str
    at: datetime | None
    counterpart: str  # the other lot's key, a shipment id, or a supplier id
    participant: str = ""
    location: str = ""


class QcResult(NamedTuple):
    seq: int
    record_id: str
    check: str
    result: str
    signed_off_by: str
    submitter: str
    at: datetime | None


class SupplierSource(NamedTuple):
    seq: int
    record_id: str
    supplier: str
    supplier_lot_code: str
    received_at: datetime | None
    quantity: Decimal
    unit: str
    location: str
    documents: tuple[str, ...]


@dataclass
class Lot:
    key: str
    node: int
    description: str = ""
    expiry_date: str = ""
    manufactured_on: str = ""
    run: str = ""  # "run_id formula@version (seq N)" of the run that made it
    produced: list[Flow] = field(default_factory=list)  # made by runs
    received: list[Flow] = field(default_factory=list)  # material receipts
    consumed: list[Flow] = field(default_factory=list)  # into other lots
    shipped: list[Flow] = field(default_factory=list)
    receipts: list[Flow] = field(default_factory=list)  # arrivals by shipment, at the receiver
    qc: list[QcResult] = field(default_factory=list)
    suppliers: list[SupplierSource] = field(default_factory=list)

    @property
    def latest_qc(self) -> QcResult | None:
        return self.qc[-1] if self.qc else None


@dataclass
class Shipment:
    shipment_id: str
    node: int
    seq: int = -1
    record_id: str = ""
    from_participant: str = ""
    from_location: str = ""
    to_participant: str = ""
    to_location: str = ""
    shipped_at: datetime | None = None
    documents: tuple[str, ...] = ()
    lots: list[Flow] = field(default_factory=list)
    receipts: list[Flow] = field(default_factory=list)


class Edge(NamedTuple):
    """Payload of a graph edge."""

    kind: str  # "consumed" (lot -> lot) or "shipped" (lot -> shipment)
    flow: Flow


QC_NAMES = {
    records_pb2.QC_RESULT_PASS: "PASS",
    records_pb2.QC_RESULT_FAIL: "FAIL",
    records_pb2.QC_RESULT_HOLD: "HOLD",
}


def _when(ts: Timestamp) -> datetime | None:
    return timestamp_to_datetime(ts) if ts.ByteSize() else None


def _docs(docs: Iterable[records_pb2.DocumentRef]) -> tuple[str, ...]:
    return tuple(f"{d.type} {d.number}" for d in docs)


class TraceIndex:
    def __init__(self) -> None:
        self.graph: rx.PyDiGraph = rx.PyDiGraph(multigraph=True)
        self.lots: dict[str, Lot] = {}
        self.shipments: dict[str, Shipment] = {}
        self.node_keys: list[str] = []  # node index -> "lot:<key>" or "shipment:<id>"
        self.size = 0  # entries applied
        self.recalled: dict[str, str] = {}  # lot key -> recall id, for lots that must not ship
        # What each record put in, so a correction can take it out again.
        self._edges_of: dict[str, list[int]] = defaultdict(list)
        self._lots_of: dict[str, set[str]] = defaultdict(set)
        self._shipments_of: dict[str, set[str]] = defaultdict(set)
        self._kind_of: dict[str, str] = {}

    # ---- nodes ----------------------------------------------------------------------------

    def lot(self, key: str) -> Lot:
        found = self.lots.get(key)
        if found is None:
            node = self.graph.add_node(len(self.node_keys))
            self.node_keys.append(f"lot:{key}")
            found = self.lots[key] = Lot(key, node)
        return found

    def shipment(self, shipment_id: str) -> Shipment:
        found = self.shipments.get(shipment_id)
        if found is None:
            node = self.graph.add_node(len(self.node_keys))
            self.node_keys.append(f"shipment:{shipment_id}")
            found = self.shipments[shipment_id] = Shipment(shipment_id, node)
        return found

    def is_lot_node(self, node: int) -> bool:
        return self.node_keys[node].startswith("lot:")

    def key_of(self, node: int) -> str:
        return self.node_keys[node].split(":", 1)[1]

    # ---- applying records -------------------------------------------------------------------

    def apply(self, seq: int, record: records_pb2.Record) -> None:
        """Add what one committed record says. Records must come in log order."""
        kind = record.WhichOneof("body") or ""
        if kind == "correction":
            target = record.correction.corrects_record_id
            if target in self._kind_of:
                self._retract(target)
                corrected = records_pb2.Record()
                corrected.CopyFrom(record.correction.corrected)
                corrected.record_id, corrected.submitter = target, record.submitter
                self._apply_body(seq, corrected)
        else:
            self._apply_body(seq, record)
        self.size = max(self.size, seq + 1)

    def _apply_body(self, seq: int, record: records_pb2.Record) -> None:
        kind = record.WhichOneof("body") or ""
        handler = getattr(self, f"_on_{kind}", None)
        if handler is not None:
            self._kind_of[record.record_id] = kind
            handler(seq, record)

    def _flow(
        self,
        seq: int,
        record: records_pb2.Record,
        item: records_pb2.LotQuantity,
        counterpart: str,
        at: datetime | None,
        participant: str = "",
        location: str = "",
    ) -> Flow:
        return Flow(
            seq,
            record.record_id,
            Decimal(item.quantity.amount),
            item.quantity.unit,
            at,
            counterpart,
            participant,
            location,
        )

    def _edge(self, record_id: str, src: int, dst: int, kind: str, flow: Flow) -> None:
        self._edges_of[record_id].append(self.graph.add_edge(src, dst, Edge(kind, flow)))

    def _on_material_received(self, seq: int, record: records_pb2.Record) -> None:
        m = record.material_received
        lot = self.lot(lot_key(m.lot))
        at = _when(m.received_at)
        qty = Decimal(m.quantity.amount)
        lot.received.append(
            Flow(seq, record.record_id, qty, m.quantity.unit, at, m.supplier, record.submitter, m.location)
        )
        lot.suppliers.append(
            SupplierSource(
                seq,
                record.record_id,
                m.supplier,
                m.supplier_lot_code,
                at,
                qty,
                m.quantity.unit,
                m.location,
                _docs(m.documents),
            )
        )
        lot.expiry_date = m.expiry_date or lot.expiry_date
        lot.description = m.product_description or lot.description
        self._lots_of[record.record_id].add(lot.key)

    def _on_production_run(self, seq: int, record: records_pb2.Record) -> None:
        run = record.production_run
        at = _when(run.completed_at)
        outputs = [self.lot(lot_key(o.lot)) for o in run.outputs]
        inputs = [self.lot(lot_key(i.lot)) for i in run.inputs]
        for out_item, out in zip(run.outputs, outputs, strict=True):
            out.produced.append(self._flow(seq, record, out_item, run.run_id, at, record.submitter, run.location))
            out.expiry_date = run.expiry_date or out.expiry_date
            out.manufactured_on = run.manufactured_on or out.manufactured_on
            out.description = run.product_description or out.description
            version = f" {run.formula_id}@{run.formula_version}" if run.formula_id else ""
            out.run = f"{run.run_id}{version} (entry {seq})"
            self._lots_of[record.record_id].add(out.key)
        recalled = next((self.recalled[i.key] for i in inputs if i.key in self.recalled), None)
        if recalled is not None:
            for out in outputs:
                self.recalled.setdefault(out.key, recalled)
        for in_item, source in zip(run.inputs, inputs, strict=True):
            flow = self._flow(seq, record, in_item, run.run_id, at, record.submitter, run.location)
            source.consumed.append(flow)
            self._lots_of[record.record_id].add(source.key)
            for out in outputs:
                self._edge(record.record_id, source.node, out.node, "consumed", flow)

    def _on_quality_check(self, seq: int, record: records_pb2.Record) -> None:
        q = record.quality_check
        lot = self.lot(lot_key(q.lot))
        lot.qc.append(
            QcResult(
                seq,
                record.record_id,
                q.check_name,
                QC_NAMES.get(q.result, "?"),
                q.signed_off_by,
                record.submitter,
                _when(q.checked_at),
            )
        )
        self._lots_of[record.record_id].add(lot.key)

    def _on_shipment(self, seq: int, record: records_pb2.Record) -> None:
        s = record.shipment
        ship = self.shipment(s.shipment_id)
        ship.seq, ship.record_id = seq, record.record_id
        ship.from_participant, ship.from_location = s.from_participant, s.from_location
        ship.to_participant, ship.to_location = s.to_participant, s.to_location
        ship.shipped_at, ship.documents = _when(s.shipped_at), _docs(s.documents)
        self._shipments_of[record.record_id].add(ship.shipment_id)
        for item in s.lots:
            lot = self.lot(lot_key(item.lot))
            flow = self._flow(seq, record, item, s.shipment_id, ship.shipped_at, s.from_participant, s.from_location)
            lot.shipped.append(flow)
            ship.lots.append(
                Flow(seq, record.record_id, flow.quantity, flow.unit, flow.at, lot.key, s.to_participant, s.to_location)
            )
            self._lots_of[record.record_id].add(lot.key)
            self._edge(record.record_id, lot.node, ship.node, "shipped", flow)

    def _on_receipt(self, seq: int, record: records_pb2.Record) -> None:
        r = record.receipt
        ship = self.shipment(r.shipment_id)
        at = _when(r.received_at)
        for item in r.lots:
            key = lot_key(item.lot)
            flow = self._flow(seq, record, item, key, at, r.participant, r.location)
            ship.receipts.append(flow)
            self.lot(key).receipts.append(flow)
            self._lots_of[record.record_id].add(key)
        self._shipments_of[record.record_id].add(ship.shipment_id)

    def _on_recall_opened(self, seq: int, record: records_pb2.Record) -> None:
        """Mark the named lots and everything made from them so far; lots made from them
        later are marked as their runs arrive (see _on_production_run)."""
        stack = [self.lot(lot_key(lot)).node for lot in record.recall_opened.lots]
        seen = set(stack)
        while stack:
            node = stack.pop()
            if self.is_lot_node(node):
                self.recalled.setdefault(self.key_of(node), record.recall_opened.recall_id)
            for nxt in self.graph.successor_indices(node):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)

    def _retract(self, record_id: str) -> None:
        """Take out everything a record put in (its edges and facts)."""
        for edge in self._edges_of.pop(record_id, []):
            self.graph.remove_edge_from_index(edge)
        for key in self._lots_of.pop(record_id, set()):
            lot = self.lots[key]
            for name in ("produced", "received", "consumed", "shipped", "receipts", "qc", "suppliers"):
                setattr(lot, name, [x for x in getattr(lot, name) if x.record_id != record_id])
        for sid in self._shipments_of.pop(record_id, set()):
            ship = self.shipments[sid]
            ship.lots = [f for f in ship.lots if f.record_id != record_id]
            ship.receipts = [f for f in ship.receipts if f.record_id != record_id]
            if ship.record_id == record_id:
                ship.seq, ship.record_id = -1, ""
        self._kind_of.pop(record_id, None)
