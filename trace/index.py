"""The trace index: a rustworkx graph derived from the ledger's records, never the truth.

Nodes are lots (labelled by lot key) and shipments (labelled "shipment:<id>"); edges run the
way product flows: input lot -> output lot (a production run consumed it) and lot -> shipment
(it was shipped). Edges carry no payload: their endpoints and the seq of the entry behind them
are kept in flat arrays by edge index, so that a query turns the edge indices rustworkx hands
it into edges without a Python object per edge, and the graph holds no int object per edge.
Participants are not
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
from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from operator import itemgetter

import numpy as np
import numpy.typing as npt
import rustworkx as rx

from lotledger.ledger.core.validation import lot_key
from lotledger.trace.csr import Adjacency
from lotledger.trace.effects import CONSUME, QC_NONE, SHIP, SHIPMENT, Effect, effects, event_time, nano
from lotledger.trace.records import Records, in_force
from lotledger.v1 import records_pb2

_INT64 = (-(2**63), 2**63 - 1)


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
        # no payloads: labels are in `labels`, edges in edge_src, edge_dst, edge_seq
        self.graph: rx.PyDiGraph = rx.PyDiGraph(multigraph=True)
        self.nodes: dict[str, int] = {}  # label -> node index
        self.labels: list[str] = []  # node index -> label
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
        # Per edge (index = rustworkx edge index): its endpoints (source -1: removed), the entry
        # behind it, and how much of the source flowed along it, so that a trace reads no
        # record for its edges. Unit id -1: several units (or too much for 64 bits) in one
        # record; the record is read instead.
        self.edge_src = array("i")
        self.edge_dst = array("i")
        self.edge_seq = array("q")
        self.edge_amount = array("q")
        self.edge_unit = array("i")
        self.units: list[str] = []
        self._unit_ids: dict[str, int] = {}
        # Out- and in-edges as flat arrays for traversals (trace/csr.py), with the edges added
        # since they were built; None after an edge is removed, until rebuilt.
        self._adjacency: tuple[Adjacency, Adjacency] | None = None
        # Sparse:
        self.recalled: dict[int, str] = {}  # lot node -> recall id: must not ship
        self.supplier_lots: dict[str, list[int]] = {}  # supplier lot code -> our lot nodes
        self.retracted: set[int] = set()  # seqs whose effects a later correction took out
        self.superseded: dict[int, int] = {}  # original seq -> seq of the correction in force
        # What scans need (trace/effects.py says what scans mean):
        self.owners: dict[str, str] = {}  # location id -> participant it was registered to
        self.packed: dict[str, list[int]] = {}  # SSCC -> seqs of the Aggregation records naming it
        self.line_run: dict[str, int] = {}  # location -> lot node of its run in progress

    # ---- nodes --------------------------------------------------------------------------------

    def node(self, label: str) -> int:
        found = self.nodes.get(label)
        if found is None:
            found = self.graph.add_node(None)
            self.nodes[label] = found
            self.labels.append(label)
            self.qc.append(QC_NONE)
            self.qc_seq.append(-1)
            self.expiry.append(0)
            self.shipment_seq.append(-1)
            self.fact_head.append(-1)
            self.holdings.grow()
        return found

    def label(self, node: int) -> str:
        return self.labels[node]

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
        seq = self.edge_seq
        seqs = {seq[e] for e in self.graph.in_edge_indices(node)}
        seqs.update(self.facts(node))
        return sorted(seqs)

    def seqs(self, node: int) -> list[int]:
        """Every entry behind this node, oldest first."""
        seq = self.edge_seq
        seqs = set(self.facts(node))
        seqs.update(seq[e] for e in self.graph.in_edge_indices(node))
        seqs.update(seq[e] for e in self.graph.out_edge_indices(node))
        return sorted(seqs)

    def edge_columns(
        self, ids: list[int] | npt.NDArray[np.int32]
    ) -> tuple[Sequence[int], Sequence[int], Sequence[int]]:
        """Sources, targets and seqs of these edges, in order: three gathers in C (building a
        tuple per edge would cost as much again, and a query often needs only one column)."""
        if isinstance(ids, np.ndarray):  # a closure's edges: numpy reads the arrays in place
            if not len(ids):
                return [], [], []
            # (no view outlives this call, so the arrays can still grow)
            src, dst, seq = (
                np.frombuffer(c, dtype=c.typecode)[ids].tolist() for c in (self.edge_src, self.edge_dst, self.edge_seq)
            )
            return src, dst, seq
        if len(ids) < 2:  # itemgetter returns a bare value for one item and refuses none
            return [self.edge_src[i] for i in ids], [self.edge_dst[i] for i in ids], [self.edge_seq[i] for i in ids]
        get = itemgetter(*ids)
        return get(self.edge_src), get(self.edge_dst), get(self.edge_seq)

    def adjacency(self, forward: bool) -> Adjacency:
        """Out-edges (forward) or in-edges by node, built here if a removal dropped them."""
        out, into = self._adjacency or self.refresh_adjacency()
        return out if forward else into

    def refresh_adjacency(self) -> tuple[Adjacency, Adjacency]:
        """Rebuild the edge arrays if there are none or many edges came since (about 0.5 s
        at three million edges; the live index calls this between batches)."""
        if self._adjacency is None or self._adjacency[0].added > max(65_536, self._adjacency[0].edges // 8):
            nodes = len(self.labels)
            self._adjacency = (Adjacency(self.edge_src, nodes), Adjacency(self.edge_dst, nodes))
        return self._adjacency

    def edge_list(self) -> list[tuple[int, int, int]]:
        """Every edge as (source, target, seq), in edge index order."""
        return list(zip(*self.edge_columns(list(self.graph.edge_indices())), strict=True))

    # ---- the ScanContext that scans' effects read -----------------------------------------------

    def owner(self, location: str) -> str:
        return self.owners.get(location, "")

    def contents(self, sscc: str, before: int) -> dict[tuple[str, str], int]:
        """What the Aggregation records before `before` left packed on an SSCC (nested SSCCs
        counted in; a cycle of SSCCs counted once)."""
        out: dict[tuple[str, str], int] = {}
        self._pack(sscc, before, out, {sscc})
        return {k: n for k, n in out.items() if n > 0}

    def _pack(self, sscc: str, before: int, out: dict[tuple[str, str], int], seen: set[str]) -> None:
        seqs = [s for s in self.packed.get(sscc, []) if s < before and s not in self.retracted]
        children: dict[str, int] = {}
        for _, record in sorted(self.records.many(seqs).items()):
            agg = record.aggregation
            way = -1 if agg.action == records_pb2.AGGREGATION_ACTION_DELETE else 1
            for item in agg.lots:
                key = (lot_key(item.lot), item.quantity.unit)
                out[key] = out.get(key, 0) + way * nano(item.quantity.amount)
            for child in agg.child_ssccs:
                children[child] = children.get(child, 0) + way
        for child, n in children.items():
            if n > 0 and child not in seen:
                self._pack(child, before, out, seen | {child})

    def unit_id(self, unit: str) -> int:
        found = self._unit_ids.get(unit)
        if found is None:
            found = self._unit_ids[unit] = len(self.units)
            self.units.append(unit)
        return found

    def _link(self, source: int, target: int, seq: int, flow: tuple[str, int] | None) -> None:
        """An edge, and what flowed along it (None: not one amount in one unit)."""
        edge = self.graph.add_edge(source, target, None)
        if edge >= len(self.edge_amount):  # rustworkx reuses the indices of removed edges
            grow = edge + 1 - len(self.edge_amount)
            for column in (self.edge_src, self.edge_dst, self.edge_seq, self.edge_amount, self.edge_unit):
                column.extend([-1] * grow)
        self.edge_src[edge], self.edge_dst[edge], self.edge_seq[edge] = source, target, seq
        if self._adjacency is not None:
            self._adjacency[0].add(source, edge)
            self._adjacency[1].add(target, edge)
        if flow is None or not _INT64[0] <= flow[1] <= _INT64[1]:
            self.edge_amount[edge], self.edge_unit[edge] = 0, -1
        else:
            self.edge_amount[edge], self.edge_unit[edge] = flow[1], self.unit_id(flow[0])

    def flow(self, edge: int) -> tuple[str, int] | None:
        """(unit, billionths) that flowed along an edge, or None: read its record."""
        unit = self.edge_unit[edge]
        return None if unit < 0 else (self.units[unit], self.edge_amount[edge])

    def _fact(self, node: int, seq: int) -> None:
        self.fact_next.append(self.fact_head[node])
        self.fact_head[node] = len(self.fact_seq)
        self.fact_seq.append(seq)

    # ---- applying records -------------------------------------------------------------------

    def apply(self, seq: int, record: records_pb2.Record) -> list[Effect]:
        """Add what one committed record says, and return its effects as applied (none for a
        rescan or a correction). Records come in log order, each once."""
        if len(self.seq_time) <= seq:
            self.seq_time.extend([0] * (seq + 1 - len(self.seq_time)))
        applied: list[Effect] = []
        if record.WhichOneof("body") == "correction":
            self._correct(seq, record)
        else:
            applied = self._apply(seq, record)
        self.size = max(self.size, seq + 1)
        return applied

    def _apply(self, seq: int, record: records_pb2.Record) -> list[Effect]:
        kind = record.WhichOneof("body")
        self.seq_time[seq] = event_time(record)
        if kind == "recall_opened":
            self._open_recall(record.recall_opened)
            return []
        if kind == "location_registered":
            loc = record.location_registered
            self.owners[loc.location_id] = loc.participant_id
            return []
        if kind == "aggregation":
            self.packed.setdefault(record.aggregation.parent_sscc, []).append(seq)
            return []
        effs = effects(record, seq, self)
        if kind == "scan" and self.rescan(record, effs):
            return []
        nodes = [self.node(e.label) for e in effs]
        if kind == "scan":
            self._scan(seq, record.scan, effs, nodes)
        elif kind == "production_run":
            inputs = _flows(effs, nodes, "in")
            outputs = {n for e, n in zip(effs, nodes, strict=True) if e.role == "out"}
            for source, flow in inputs.items():
                for made in outputs:
                    self._link(source, made, seq, flow)
            if not inputs:
                for made in outputs:
                    self._fact(made, seq)
            recall_id = next((self.recalled[n] for n in inputs if n in self.recalled), None)
            if recall_id is not None:
                for made in outputs:
                    self.recalled.setdefault(made, recall_id)
        elif kind == "shipment":
            ship = nodes[0]
            for lot, flow in _flows(effs, nodes, "shipped").items():
                self._link(lot, ship, seq, flow)
        else:
            for n in dict.fromkeys(nodes):
                self._fact(n, seq)
            if kind == "material_received" and (code := record.material_received.supplier_lot_code):
                found = self.supplier_lots.setdefault(code, [])
                if nodes[0] not in found:
                    found.append(nodes[0])
        for e, n in zip(effs, nodes, strict=True):
            self._update(n, seq, e)
        return effs

    def rescan(self, record: records_pb2.Record, effs: list[Effect]) -> bool:
        """A ship scan of an SSCC already shipped, or a receive scan of one already received:
        scanners read the same pallet twice, and it must not move its lots twice."""
        if not record.scan.gs1.sscc or not effs or effs[0].role not in ("shipment", "delivery"):
            return False
        node = self.nodes.get(effs[0].label)
        if node is None:
            return False
        if effs[0].role == "shipment":
            return self.shipment_seq[node] >= 0
        return bool(self.facts(node))

    def _scan(self, seq: int, scan: records_pb2.Scan, effs: list[Effect], nodes: list[int]) -> None:
        if scan.meaning == SHIP:
            ship = nodes[0]
            for lot, flow in _flows(effs, nodes, "shipped").items():
                self._link(lot, ship, seq, flow)
            return  # (no fact on the shipment node: its facts are its deliveries)
        run = self.line_run.get(scan.location) if scan.meaning == CONSUME else None
        flows = _flows(effs, nodes, "in")
        for n, e in dict(zip(nodes, effs, strict=True)).items():
            if run is not None and run != n:
                self._link(n, run, seq, flows.get(n))
                if n in self.recalled:
                    self.recalled.setdefault(run, self.recalled[n])
            else:
                self._fact(n, seq)
            if e.role == "out":
                self.line_run[scan.location] = n

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
        c = record.correction
        original = self.records.seq_of(c.corrects_record_id, c.corrects_submitter or record.submitter)
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
        for e in effects(self.records.record(seq), seq, self):
            n = self.nodes.get(e.label)
            if n is None or n in touched:
                continue
            touched.append(n)
            for edge in [*self.graph.in_edge_indices(n), *self.graph.out_edge_indices(n)]:
                if self.edge_seq[edge] == seq:
                    self.graph.remove_edge_from_index(edge)
                    self.edge_src[edge] = self.edge_dst[edge] = -1
                    self._adjacency = None
        return touched

    def _rederive(self, node: int) -> None:
        """Recompute a node's arrays from the records still in force behind it."""
        label = self.label(node)
        self.qc[node], self.qc_seq[node], self.expiry[node], self.shipment_seq[node] = QC_NONE, -1, 0, -1
        self.holdings.reset(node)
        for seq, record in sorted(self.records.many(self.seqs(node)).items()):
            for e in effects(record, seq, self):
                if e.label == label:
                    self._update(node, seq, e)


def _flows(effs: list[Effect], nodes: list[int], role: str) -> dict[int, tuple[str, int] | None]:
    """Per source node, the (unit, billionths) a record moved out of it in `role`; None when
    it moved it in more than one unit."""
    out: dict[int, tuple[str, int] | None] = {}
    for e, n in zip(effs, nodes, strict=True):
        if e.role != role:
            continue
        if n not in out:
            out[n] = (e.unit, -e.delta)
        elif (had := out[n]) is not None and had[0] == e.unit:
            out[n] = (e.unit, had[1] - e.delta)
        else:
            out[n] = None
    return out
