"""The trace index: a rustworkx graph derived from the ledger's records, never the truth.

Nodes are lots (labelled by lot key) and shipments (labelled "shipment:<id>"); edges run the
way product flows: input lot -> output lot (a production run consumed it) and lot -> shipment
(it was shipped). Each edge's payload is the seq of the entry behind it. Participants are not
nodes: suppliers and consignees are read from the records, so a traversal can never leak from
one participant's lots into another's through the participant.

Why it holds so little: at a million lots, Python objects per lot cost gigabytes and more
than a minute to rebuild. The index keeps the topology, the seqs behind it, and in flat
arrays indexed by node the few facts every append's alert rules need (latest QC result,
expiry day, running balance per holder). Quantities, suppliers, QC sign-offs and documents
stay in the entries and are read through `records` when a query needs them.

`apply(seq, record)` takes committed records in log order. Nodes are never removed, so node
indices are dense and stable (the arrays and snapshots rely on it). A correction takes out
what the record it replaces put in (its edges; its facts are masked by seq) and applies the
corrected body in its place; the nodes it touched are re-derived from their records.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator
from datetime import date
from typing import NamedTuple

import rustworkx as rx
from google.protobuf.timestamp_pb2 import Timestamp

from lotledger.ledger.validation import lot_key
from lotledger.trace.records import Records, in_force
from lotledger.v1 import records_pb2

SHIPMENT = "shipment:"

QC_NONE, QC_PASS, QC_FAIL, QC_HOLD = 0, 1, 2, 3
QC_CODES = {
    records_pb2.QC_RESULT_PASS: QC_PASS,
    records_pb2.QC_RESULT_FAIL: QC_FAIL,
    records_pb2.QC_RESULT_HOLD: QC_HOLD,
}
QC_NAMES = {QC_NONE: "NONE", QC_PASS: "PASS", QC_FAIL: "FAIL", QC_HOLD: "HOLD"}

NANO = 10**9  # quantities are kept as integer billionths: validation allows 9 decimals at most
_INT64 = (-(2**63), 2**63 - 1)


def nano(amount: str) -> int:
    """A validated decimal amount string as exact integer billionths."""
    whole, _, frac = amount.partition(".")
    return int(whole) * NANO + (int(frac.ljust(9, "0")) if frac else 0)


def micros(ts: Timestamp) -> int:
    return int(ts.seconds) * 1_000_000 + int(ts.nanos) // 1000


# What a record does to one node. role: "out" (a run made it), "in" (a run consumed it),
# "received" (material receipt), "qc", "shipped", "arrived" (receipt at the receiver),
# "shipment" (the shipment node of a shipment record), "delivery" (a receipt of a shipment).
class Effect(NamedTuple):
    label: str
    role: str
    holder: str = ""
    unit: str = ""
    delta: int = 0  # billionths added to (holder, unit)'s balance of the lot
    expiry: str = ""
    qc: int = QC_NONE
    location: str = ""


def _items(
    items: Iterable[records_pb2.LotQuantity], role: str, who: str, sign: int, expiry: str, where: str
) -> list[Effect]:
    # Written for speed: every protobuf attribute read crosses into upb (about 0.1 us each).
    out = []
    for item in items:
        q = item.quantity
        out.append(Effect(lot_key(item.lot), role, who, q.unit, sign * nano(q.amount), expiry, 0, where))
    return out


def effects(record: records_pb2.Record) -> list[Effect]:
    """Per-node effects of a record in force. The one place that says what each kind means
    to the index; apply, re-derivation, queries and alerts all go through it."""
    kind = record.WhichOneof("body")
    if kind == "production_run":
        run = record.production_run
        who, where = record.submitter, run.location
        return _items(run.outputs, "out", who, 1, run.expiry_date, where) + _items(run.inputs, "in", who, -1, "", where)
    if kind == "shipment":
        s = record.shipment
        ship = Effect(SHIPMENT + s.shipment_id, "shipment")
        return [ship, *_items(s.lots, "shipped", s.from_participant, -1, "", s.from_location)]
    if kind == "material_received":
        m = record.material_received
        q = m.quantity
        return [
            Effect(lot_key(m.lot), "received", record.submitter, q.unit, nano(q.amount), m.expiry_date, 0, m.location)
        ]
    if kind == "quality_check":
        qc = record.quality_check
        return [Effect(lot_key(qc.lot), "qc", qc=QC_CODES.get(qc.result, QC_NONE))]
    if kind == "receipt":
        r = record.receipt
        return [
            Effect(SHIPMENT + r.shipment_id, "delivery"),
            *_items(r.lots, "arrived", r.participant, 1, "", r.location),
        ]
    return []


_EVENT_TIME = {
    "material_received": "received_at",
    "production_run": "completed_at",
    "quality_check": "checked_at",
    "shipment": "shipped_at",
    "receipt": "received_at",
    "scan": "scanned_at",
    "aggregation": "aggregated_at",
}


def event_time(record: records_pb2.Record) -> int:
    """When the record's event happened, in microseconds (0: it names no time)."""
    kind = record.WhichOneof("body") or ""
    name = _EVENT_TIME.get(kind)
    if name is None:
        return 0
    ts = getattr(getattr(record, kind), name)
    return micros(ts) if ts.seconds or ts.nanos else 0


class Holdings:
    """Running balance per (lot node, holder, unit), in billionths, for the OVER_USED rule.

    Nearly every lot has one holder in one unit, so that pair lives in two flat arrays; any
    other pair (a distributor's share after a receipt) and any sum too large for 64 bits
    lives in a dict."""

    _FREE, _MOVED = -1, -2

    def __init__(self) -> None:
        self.names: list[tuple[str, str]] = []  # pair id -> (holder, unit)
        self._ids: dict[tuple[str, str], int] = {}
        self.pair = array("i")  # node -> pair id held in `amount`, or _FREE / _MOVED
        self.amount = array("q")
        self.other: dict[int, dict[int, int]] = {}  # node -> pair id -> amount

    def grow(self) -> None:
        self.pair.append(self._FREE)
        self.amount.append(0)

    def pair_id(self, holder: str, unit: str) -> int:
        key = (holder, unit)
        found = self._ids.get(key)
        if found is None:
            found = self._ids[key] = len(self.names)
            self.names.append(key)
        return found

    def add(self, node: int, holder: str, unit: str, delta: int) -> int:
        """Add `delta` and return the new balance."""
        pid = self.pair_id(holder, unit)
        if self.pair[node] == self._FREE:
            self.pair[node] = pid
        if self.pair[node] == pid:
            value = self.amount[node] + delta
            if _INT64[0] <= value <= _INT64[1]:
                self.amount[node] = value
                return value
            self.pair[node], self.amount[node] = self._MOVED, 0
            self.other.setdefault(node, {})[pid] = value
            return value
        held = self.other.setdefault(node, {})
        held[pid] = value = held.get(pid, 0) + delta
        return value

    def get(self, node: int, holder: str, unit: str) -> int:
        pid = self._ids.get((holder, unit))
        if pid is None:
            return 0
        if self.pair[node] == pid:
            return self.amount[node]
        return self.other.get(node, {}).get(pid, 0)

    def reset(self, node: int) -> None:
        self.pair[node], self.amount[node] = self._FREE, 0
        self.other.pop(node, None)

    def restore_names(self, names: Iterable[tuple[str, str]]) -> None:
        self.names = [(h, u) for h, u in names]
        self._ids = {name: i for i, name in enumerate(self.names)}


class TraceIndex:
    def __init__(self, records: Records):
        self.records = records
        # node payload: its label; edge payload: the seq of the entry behind it
        self.graph: rx.PyDiGraph = rx.PyDiGraph(multigraph=True)
        self.nodes: dict[str, int] = {}  # label -> node index
        self.size = 0  # entries applied
        # Per node (index = node index):
        self.qc = bytearray()  # latest QC result code
        self.qc_seq = array("q")  # ... and the entry that recorded it
        self.expiry = array("i")  # expiry date as a proleptic ordinal, 0 = none
        self.shipment_seq = array("q")  # for shipment nodes: the shipment record's entry
        self.holdings = Holdings()
        # Facts: seqs of records that touch a node without an edge (material receipts, QC,
        # receipts, runs without inputs), as linked lists in flat arrays.
        self.fact_head = array("q")
        self.fact_seq = array("q")
        self.fact_next = array("q")
        self.seq_time = array("q")  # per entry: event time in microseconds (0 = none)
        # Sparse:
        self.recalled: dict[int, str] = {}  # lot node -> recall id: must not ship
        self.supplier_lots: dict[str, list[int]] = {}  # supplier lot code -> our lot nodes
        self.retracted: set[int] = set()  # seqs whose effects a later correction took out
        self.superseded: dict[int, int] = {}  # original seq -> seq of the correction in force

    # ---- nodes --------------------------------------------------------------------------------

    def node(self, label: str) -> int:
        found = self.nodes.get(label)
        if found is None:
            found = self.graph.add_node(label)
            self.nodes[label] = found
            self.qc.append(QC_NONE)
            self.qc_seq.append(-1)
            self.expiry.append(0)
            self.shipment_seq.append(-1)
            self.fact_head.append(-1)
            self.holdings.grow()
        return found

    def label(self, node: int) -> str:
        label: str = self.graph[node]
        return label

    def is_lot(self, node: int) -> bool:
        return not self.label(node).startswith(SHIPMENT)

    def lot_keys(self) -> Iterator[str]:
        return (k for k in self.nodes if not k.startswith(SHIPMENT))

    def facts(self, node: int) -> list[int]:
        out = []
        i = self.fact_head[node]
        while i >= 0:
            if self.fact_seq[i] not in self.retracted:
                out.append(self.fact_seq[i])
            i = self.fact_next[i]
        return out[::-1]

    def made_by(self, node: int) -> list[int]:
        """Seqs of the records that brought this lot into being at its holder (runs that
        made it, material receipts, receipts), oldest first."""
        seqs = {seq for _, _, seq in self.graph.in_edges(node)}
        seqs.update(self.facts(node))
        return sorted(seqs)

    def seqs(self, node: int) -> list[int]:
        """Every entry behind this node, oldest first."""
        seqs = set(self.facts(node))
        seqs.update(seq for _, _, seq in self.graph.in_edges(node))
        seqs.update(seq for _, _, seq in self.graph.out_edges(node))
        return sorted(seqs)

    def _fact(self, node: int, seq: int) -> None:
        self.fact_next.append(self.fact_head[node])
        self.fact_head[node] = len(self.fact_seq)
        self.fact_seq.append(seq)

    # ---- applying records -------------------------------------------------------------------

    def apply(self, seq: int, record: records_pb2.Record) -> None:
        """Add what one committed record says. Records come in log order, each once."""
        if len(self.seq_time) <= seq:
            self.seq_time.extend([0] * (seq + 1 - len(self.seq_time)))
        if record.WhichOneof("body") == "correction":
            self._correct(seq, record)
        else:
            self._apply(seq, record)
        self.size = max(self.size, seq + 1)

    def _apply(self, seq: int, record: records_pb2.Record) -> None:
        kind = record.WhichOneof("body")
        self.seq_time[seq] = event_time(record)
        if kind == "recall_opened":
            self._open_recall(record.recall_opened)
            return
        effs = effects(record)
        nodes = [self.node(e.label) for e in effs]
        if kind == "production_run":
            inputs = {n for e, n in zip(effs, nodes, strict=True) if e.role == "in"}
            outputs = {n for e, n in zip(effs, nodes, strict=True) if e.role == "out"}
            for source in inputs:
                for made in outputs:
                    self.graph.add_edge(source, made, seq)
            if not inputs:
                for made in outputs:
                    self._fact(made, seq)
            recall_id = next((self.recalled[n] for n in inputs if n in self.recalled), None)
            if recall_id is not None:
                for made in outputs:
                    self.recalled.setdefault(made, recall_id)
        elif kind == "shipment":
            ship = nodes[0]
            for lot in set(nodes[1:]):
                self.graph.add_edge(lot, ship, seq)
        else:
            for n in dict.fromkeys(nodes):
                self._fact(n, seq)
            if kind == "material_received" and (code := record.material_received.supplier_lot_code):
                found = self.supplier_lots.setdefault(code, [])
                if nodes[0] not in found:
                    found.append(nodes[0])
        for e, n in zip(effs, nodes, strict=True):
            self._update(n, seq, e)

    def _update(self, node: int, seq: int, e: Effect) -> None:
        if e.delta:
            self.holdings.add(node, e.holder, e.unit, e.delta)
        if e.expiry:
            self.expiry[node] = date.fromisoformat(e.expiry).toordinal()
        if e.qc and seq >= self.qc_seq[node]:
            self.qc[node], self.qc_seq[node] = e.qc, seq
        if e.role == "shipment":
            self.shipment_seq[node] = seq

    def _open_recall(self, opened: records_pb2.RecallOpened) -> None:
        """Mark the named lots and everything made from them so far; lots made from them later
        are marked as their runs arrive (see _apply)."""
        starts = [self.node(lot_key(lot)) for lot in opened.lots]
        reached = set(starts)
        for n in starts:
            reached.update(rx.descendants(self.graph, n))
        for n in reached:
            if self.is_lot(n):
                self.recalled.setdefault(n, opened.recall_id)

    def _correct(self, seq: int, record: records_pb2.Record) -> None:
        original = self.records.seq_of(record.correction.corrects_record_id)
        if original is None:  # the ledger refuses such corrections; nothing to replace
            return
        in_place = self.superseded.get(original, original)
        touched = self._retract(in_place)
        self.superseded[original] = seq
        self._apply(seq, in_force(record))
        for n in touched:
            self._rederive(n)

    def _retract(self, seq: int) -> list[int]:
        """Take out the edges of the record at `seq` and mask its facts; return its nodes."""
        self.retracted.add(seq)
        touched = []
        for e in effects(self.records.record(seq)):
            n = self.nodes.get(e.label)
            if n is None or n in touched:
                continue
            touched.append(n)
            for edge in [*self.graph.in_edge_indices(n), *self.graph.out_edge_indices(n)]:
                if self.graph.get_edge_data_by_index(edge) == seq:
                    self.graph.remove_edge_from_index(edge)
        return touched

    def _rederive(self, node: int) -> None:
        """Recompute a node's arrays from the records still in force behind it."""
        label = self.label(node)
        self.qc[node], self.qc_seq[node], self.expiry[node], self.shipment_seq[node] = QC_NONE, -1, 0, -1
        self.holdings.reset(node)
        for seq, record in sorted(self.records.many(self.seqs(node)).items()):
            for e in effects(record):
                if e.label == label:
                    self._update(node, seq, e)
