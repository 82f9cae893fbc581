"""The trace index: a rustworkx graph derived from the ledger's records, never the truth.

Nodes are lots (labelled by lot key) and shipments (labelled "shipment:<id>"); edges run the
way product flows: input lot -> output lot (a production run consumed it) and lot -> shipment
(it was shipped). Edges carry no payload: their endpoints and the seq of the entry behind them
are kept in flat arrays by edge index, so that a query turns the edge indices rustworkx hands
it into edges without a Python object per edge, and the graph holds no int object per edge.
Participants are not
nodes, so a traversal can never leak from one participant's lots into another's through the
participant.

Why it holds so little: at a million lots, Python objects per lot cost gigabytes and more
than a minute to rebuild. The index keeps the topology, the seqs behind it, and in flat
arrays indexed by node the few facts every append's alert rules need (latest QC result,
expiry day, running balance per holder). A recall of ten thousand lots once spent most of a
second decoding every record behind them, so the index also keeps what a recall shows: each
lot's mass balance sums (`Holdings`) and each shipment's sender, consignee, time and
documents (`Consignments`), in flat arrays too. Quantities per lot, suppliers, QC sign-offs
and the rest stay in the entries and are read through `records` when a query needs them.

`apply(seq, record)` takes committed records in log order. Nodes are never removed, so node
indices are dense and stable (the arrays and snapshots rely on it). A correction takes out
what the record it replaces put in (its edges; its facts are masked by seq) and applies the
corrected body in its place; the nodes it touched are re-derived from their records.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from operator import itemgetter

import numpy as np
import numpy.typing as npt
import rustworkx as rx
from google.protobuf.timestamp_pb2 import Timestamp

from lotledger.ledger.core.rules import of_genesis, scoped_shipments
from lotledger.ledger.core.validation import lot_key, timestamp_to_datetime
from lotledger.ledger.errors import InvalidRecord, NotFound
from lotledger.trace.csr import Adjacency
from lotledger.trace.effects import CONSUME, QC_NONE, SHIP, SHIPMENT, Effect, effects, event_time, nano
from lotledger.trace.records import Records, in_force
from lotledger.v1 import records_pb2

_INT64 = (-(2**63), 2**63 - 1)
NO_TIME = _INT64[0]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


class Holdings:
    """What each holder of a lot took in, consumed and shipped, per (holder, unit, location),
    in billionths, kept as records are applied: a recall's mass balances and the OVER_USED
    rule's running balance read these sums instead of decoding every record behind a lot.

    A lot's sums are rows in flat arrays, linked from `head` (one row per (holder, unit,
    location) the lot ever moved in: one or two for nearly every lot), so a million lots hold
    no Python object each. A sum too large for 64 bits moves its row's three sums to `big`.

    The rows count exactly the effects of the records behind the lot (`TraceIndex.seqs`), as
    the recall's mass balance always has; `unlinked` keeps the rare effect whose record gave
    the lot no edge or fact (a run with inputs and no outputs), which the running balance of
    the OVER_USED rule counts and the mass balance never did."""

    def __init__(self) -> None:
        self.keys: list[tuple[str, str, str]] = []  # key id -> (holder, unit, location)
        self._ids: dict[tuple[str, str, str], int] = {}
        self.head = array("i")  # node -> its first row, -1: none
        self.key = array("i")  # per row: its key id
        self.next = array("i")  # ... the node's next row, -1: none
        self.received = array("q")  # ... billionths taken in (produced, received, arrived)
        self.consumed = array("q")  # ... used by runs and consume scans
        self.shipped = array("q")  # ... shipped
        self.big: dict[int, list[int]] = {}  # row -> [received, consumed, shipped] beyond 64 bits
        self.unlinked: dict[int, dict[tuple[str, str], int]] = {}  # node -> (holder, unit) -> billionths

    def grow(self) -> None:
        self.head.append(-1)

    def key_id(self, holder: str, unit: str, location: str) -> int:
        key = (holder, unit, location)
        found = self._ids.get(key)
        if found is None:
            found = self._ids[key] = len(self.keys)
            self.keys.append(key)
        return found

    def rows(self, node: int) -> Iterator[int]:
        row = self.head[node]
        nxt = self.next
        while row >= 0:
            yield row
            row = nxt[row]

    def sums(self, row: int) -> tuple[int, int, int]:
        """(received, consumed, shipped) of a row."""
        if self.big and (found := self.big.get(row)) is not None:
            return found[0], found[1], found[2]
        return self.received[row], self.consumed[row], self.shipped[row]

    def add(self, node: int, e: Effect, linked: bool = True) -> None:
        """Count one effect (its delta is not zero) on `node`. `linked`: its record is one
        of the node's seqs."""
        if not linked:
            held = self.unlinked.setdefault(node, {})
            held[(e.holder, e.unit)] = held.get((e.holder, e.unit), 0) + e.delta
            return
        kid = self.key_id(e.holder, e.unit, e.location)
        row = self.head[node]
        while row >= 0 and self.key[row] != kid:
            row = self.next[row]
        if row < 0:
            row = len(self.key)
            self.key.append(kid)
            self.next.append(self.head[node])
            self.head[node] = row
            for column in (self.received, self.consumed, self.shipped):
                column.append(0)
        column = self.received if e.delta > 0 else self.consumed if e.role == "in" else self.shipped
        at = 0 if e.delta > 0 else 1 if e.role == "in" else 2
        found = self.big.get(row) if self.big else None
        if found is None:
            value = column[row] + abs(e.delta)
            if value <= _INT64[1]:
                column[row] = value
                return
            found = self.big[row] = [self.received[row], self.consumed[row], self.shipped[row]]
            self.received[row] = self.consumed[row] = self.shipped[row] = 0
        found[at] += abs(e.delta)

    def get(self, node: int, holder: str, unit: str) -> int:
        """The running balance of (holder, unit) in a lot (the OVER_USED rule's)."""
        total = self.unlinked.get(node, {}).get((holder, unit), 0) if self.unlinked else 0
        for row in self.rows(node):
            h, u, _ = self.keys[self.key[row]]
            if h == holder and u == unit:
                received, consumed, shipped = self.sums(row)
                total += received - consumed - shipped
        return total

    def reset(self, node: int) -> None:
        """Forget a node's sums (its rows stay in the arrays, unreachable)."""
        self.head[node] = -1
        self.unlinked.pop(node, None)

    def restore_keys(self, keys: Iterable[Sequence[str]]) -> None:
        self.keys = [(h, u, loc) for h, u, loc in keys]
        self._ids = {key: i for i, key in enumerate(self.keys)}


class Consignments:
    """Per shipment node, what a recall's list of consignments shows of the record behind it
    (sender, consignee, where to, when, documents), kept as records are applied, so that a
    recall of thousands of shipments reads no record. A row describes the record at the
    node's `shipment_seq`; `exact` 0 says the record must be read instead (a time or a
    document the columns cannot hold)."""

    def __init__(self) -> None:
        self.strings: list[str] = [""]  # participants and locations, interned
        self._ids: dict[str, int] = {"": 0}
        self.row = array("i")  # node -> its row, -1: none
        self.sender = array("i")  # per row: string ids
        self.consignee = array("i")
        self.to_location = array("i")
        self.at = array("q")  # shipped_at in microseconds since the epoch, NO_TIME: none
        self.docs_at = array("q")  # its documents: "\x1e"-joined UTF-8 in `docs`, from here
        self.docs_len = array("i")  # ... this many bytes
        self.exact = bytearray()
        self.docs = bytearray()

    def grow(self) -> None:
        self.row.append(-1)

    def string_id(self, value: str) -> int:
        found = self._ids.get(value)
        if found is None:
            found = self._ids[value] = len(self.strings)
            self.strings.append(value)
        return found

    def put(self, node: int, sender: str, consignee: str, to_location: str, at: Timestamp, docs: Sequence[str]) -> None:
        row = self.row[node]
        if row < 0:
            row = self.row[node] = len(self.sender)
            for column in (self.sender, self.consignee, self.to_location, self.docs_len):
                column.append(0)
            self.at.append(NO_TIME)
            self.docs_at.append(0)
            self.exact.append(0)
        self.sender[row], self.consignee[row] = self.string_id(sender), self.string_id(consignee)
        self.to_location[row] = self.string_id(to_location)
        exact = all("\x1e" not in d for d in docs)
        if at.seconds or at.nanos:
            try:
                self.at[row] = (timestamp_to_datetime(at) - EPOCH) // MICROSECOND
            except InvalidRecord:  # (committed records hold valid times)
                exact = False
        else:
            self.at[row] = NO_TIME
        blob = "\x1e".join(docs).encode()
        self.docs_at[row], self.docs_len[row] = len(self.docs), len(blob)
        self.docs += blob
        self.exact[row] = exact

    def clear(self, node: int) -> None:
        self.row[node] = -1

    def restore_strings(self, strings: Iterable[str]) -> None:
        self.strings = list(strings)
        self._ids = {value: i for i, value in enumerate(self.strings)}

    def when(self, row: int) -> datetime | None:
        at = self.at[row]
        return None if at == NO_TIME else EPOCH + timedelta(0, 0, at)

    def documents(self, row: int) -> tuple[str, ...]:
        start, n = self.docs_at[row], self.docs_len[row]
        return tuple(self.docs[start : start + n].decode().split("\x1e")) if n else ()


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
        self.consignments = Consignments()
        self.scanned = bytearray()  # 1: a scan touched it (see `scan_context_moved`)
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
        self.receivers: dict[int, str] = {}  # seq of a Receipt -> the participant it says received
        self.supplier_lots: dict[str, list[int]] = {}  # supplier lot code -> our lot nodes
        self.retracted: set[int] = set()  # seqs whose effects a later correction took out
        self.superseded: dict[int, int] = {}  # original seq -> seq of the correction in force
        # What scans need (trace/effects.py says what scans mean):
        self.owners: dict[str, str] = {}  # location id -> participant it was registered to
        self.packed: dict[str, list[int]] = {}  # SSCC -> seqs of the Aggregation records naming it
        self.line_run: dict[str, int] = {}  # location -> lot node of its run in progress
        self.scan_locations: set[str] = set()  # where scans were made
        # A scan's effects depend on what came before it (trace/effects.py), and two later
        # records change that after the fact: a location registered to another owner, and a
        # corrected Aggregation. Once either has happened, the sums and consignments kept for
        # the nodes scans touched may differ from what their records now say, and queries
        # read those nodes' records instead (trace/queries.py).
        self.scan_context_moved = False
        self._linked: set[int] | None = None  # nodes given an edge or fact by the record being applied
        # Whether shipments are named by owner and id (rules 3, stated by the genesis entry):
        self.scoped = scoped_log(records)

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
            self.consignments.grow()
            self.scanned.append(0)
        return found

    def label(self, node: int) -> str:
        return self.labels[node]

    def is_lot(self, node: int) -> bool:
        return not self.label(node).startswith(SHIPMENT)

    def lot_keys(self) -> Iterator[str]:
        return (k for k in self.nodes if not k.startswith(SHIPMENT))

    def deliveries(self, node: int, consignee: str) -> tuple[int, ...]:
        """The entries that delivered shipment `node` to `consignee`: its Receipts by the
        consignee (and its SSCC receive scans). A receipt by anyone else delivers nothing: a
        partner's receipt written before the shipment it names (which admission cannot judge
        yet) must not mark another's open consignment received. `consignee` "" (a ship scan, a
        shipment the log does not hold): every delivery counts."""
        if self.fact_head[node] < 0:
            return ()
        receivers = self.receivers
        if not consignee:
            return tuple(self.facts(node))
        return tuple(s for s in self.facts(node) if receivers.get(s, consignee) == consignee)

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

    def edges_of(self, node: int, forward: bool) -> Sequence[int]:
        """A node's out-edges (forward) or in-edges, from the edge arrays (a slice of them
        costs less than asking rustworkx, whose per-node lists lie all over memory)."""
        adj = self.adjacency(forward)
        found: Sequence[int] = adj.ids[adj.ptr[node] : adj.ptr[node + 1]] if node < adj.nodes else ()
        if adj.recent and node in adj.recent:
            found = [*found, *adj.recent[node]]
        return found

    def edge_list(self) -> list[tuple[int, int, int]]:
        """Every edge as (source, target, seq), in edge index order."""
        return list(zip(*self.edge_columns(list(self.graph.edge_indices())), strict=True))

    # ---- the ScanContext that scans' effects read -----------------------------------------------

    def owner(self, location: str) -> str:
        return self.owners.get(location, "")

    def contents(self, sscc: str, before: int, packer: str = "") -> dict[tuple[str, str], int]:
        """What the Aggregation records before `before` (of `packer` only, if given: see
        trace/effects.py ScanContext) left packed on an SSCC (nested SSCCs counted in; a cycle
        of SSCCs counted once)."""
        out: dict[tuple[str, str], int] = {}
        self._pack(sscc, before, out, {sscc}, packer)
        return {k: n for k, n in out.items() if n > 0}

    def _pack(self, sscc: str, before: int, out: dict[tuple[str, str], int], seen: set[str], packer: str) -> None:
        seqs = [s for s in self.packed.get(sscc, []) if s < before and s not in self.retracted]
        children: dict[str, int] = {}
        for _, record in sorted(self.records.many(seqs).items()):
            agg = record.aggregation
            if packer and (self.owner(agg.location) or record.submitter) != packer:
                continue
            way = -1 if agg.action == records_pb2.AGGREGATION_ACTION_DELETE else 1
            for item in agg.lots:
                key = (lot_key(item.lot), item.quantity.unit)
                out[key] = out.get(key, 0) + way * nano(item.quantity.amount)
            for child in agg.child_ssccs:
                children[child] = children.get(child, 0) + way
        for child, n in children.items():
            if n > 0 and child not in seen:
                self._pack(child, before, out, seen | {child}, packer)

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
        if self._linked is not None:
            self._linked.add(source)
            self._linked.add(target)
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
        if self._linked is not None:
            self._linked.add(node)
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
        if kind == "participant_registered" and seq == 0:
            self.scoped = scoped_shipments(of_genesis(record.participant_registered.rules_version))
            return []
        if kind == "location_registered":
            loc = record.location_registered
            if loc.location_id in self.scan_locations and self.owner(loc.location_id) != loc.participant_id:
                self.scan_context_moved = True
            self.owners[loc.location_id] = loc.participant_id
            return []
        if kind == "aggregation":
            self.packed.setdefault(record.aggregation.parent_sscc, []).append(seq)
            return []
        effs = effects(record, seq, self, scoped=self.scoped)
        if kind == "scan" and self.rescan(record, effs):
            return []
        nodes = [self.node(e.label) for e in effs]
        self._linked = linked = set[int]()
        if kind == "scan":
            self.scan_locations.add(record.scan.location)
            for n in nodes:
                self.scanned[n] = 1
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
            if kind == "receipt":
                self.receivers[seq] = record.receipt.participant
            if kind == "material_received" and (code := record.material_received.supplier_lot_code):
                found = self.supplier_lots.setdefault(code, [])
                if nodes[0] not in found:
                    found.append(nodes[0])
        self._linked = None
        for e, n in zip(effs, nodes, strict=True):
            self._update(n, seq, e, record, n in linked)
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

    def _update(self, node: int, seq: int, e: Effect, record: records_pb2.Record, linked: bool = True) -> None:
        """Count one effect of the record at `seq` (`record`, in force) on `node`. `linked`:
        the record is one of the node's seqs (gave it an edge or a fact)."""
        if e.delta:
            self.holdings.add(node, e, linked)
        if e.expiry:
            self.expiry[node] = date.fromisoformat(e.expiry).toordinal()
        if e.qc and seq >= self.qc_seq[node]:
            self.qc[node], self.qc_seq[node] = e.qc, seq
        if e.role == "shipment":
            self.shipment_seq[node] = seq
            self._consignment(node, record)

    def _consignment(self, node: int, record: records_pb2.Record) -> None:
        """What `record` (a shipment, or a ship scan) says of the shipment at `node`."""
        if record.WhichOneof("body") == "scan":  # no consignee on record yet; the stock was its location's owner's
            s = record.scan
            docs: tuple[str, ...] = (f"SSCC {s.gs1.sscc}",) if s.gs1.sscc else ()
            self.consignments.put(node, self.owner(s.location) or record.submitter, "", "", s.scanned_at, docs)
            return
        ship = record.shipment
        docs = tuple(f"{d.type} {d.number}" for d in ship.documents)  # (as trace/queries.py shows them)
        self.consignments.put(node, ship.from_participant, ship.to_participant, ship.to_location, ship.shipped_at, docs)

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
        if self.records.record(in_place).WhichOneof("body") == "aggregation":
            self.scan_context_moved = True
        touched = self._retract(in_place)
        self.superseded[original] = seq
        self._apply(seq, in_force(record))
        for n in touched:
            self._rederive(n)

    def _retract(self, seq: int) -> list[int]:
        """Take out the edges of the record at `seq` and mask its facts; return its nodes."""
        self.retracted.add(seq)
        touched = []
        for e in effects(self.records.record(seq), seq, self, scoped=self.scoped):
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
        self.consignments.clear(node)
        for seq, record in sorted(self.records.many(self.seqs(node)).items()):
            for e in effects(record, seq, self, scoped=self.scoped):
                if e.label == label:
                    self._update(node, seq, e, record)


def scoped_log(records: Records) -> bool:
    """Whether the log `records` holds names shipments by owner and id: what its genesis entry
    states (an empty log: not yet known, and the genesis entry's apply sets it)."""
    try:
        genesis = records.record(0)
    except (IndexError, NotFound):
        return False
    if genesis.WhichOneof("body") != "participant_registered":
        return False
    return scoped_shipments(of_genesis(genesis.participant_registered.rules_version))


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
