"""Trace and recall queries over a TraceIndex.

The traversal runs on the index alone, and so do mass balances and consignments, from the
sums and shipment columns the index keeps as records are applied; the other details of what
a query reached (how a lot was made, QC, suppliers) are read from the records behind the seqs
it found, through the index's `records` source, each record once per query. Nothing here
does I/O of its own.

Every answer names the entry seqs behind its edges, so a report can be backed by the log
(and, with proofs, checked without trusting the server).
"""

from __future__ import annotations

import gc
import time
from collections import defaultdict
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cached_property
from itertools import chain, repeat

import numpy as np
import numpy.typing as npt
import rustworkx as rx
from google.protobuf.timestamp_pb2 import Timestamp

from lotledger.ledger.core.validation import lot_key, timestamp_to_datetime
from lotledger.ledger.errors import NotFound
from lotledger.trace.effects import NANO, QC_CODES, QC_NAMES, SHIPMENT, Effect, effects
from lotledger.trace.index import TraceIndex
from lotledger.v1 import records_pb2


class UnknownLot(NotFound):
    """The index has never seen this lot key."""

    def __init__(self, lot_key: str):
        super().__init__(
            f"no lot {lot_key!r} in the ledger (lot keys read 01/<gtin14>/10/<lot> or item/<code>/lot/<lot>)",
            reason="UNKNOWN_LOT",
            field="lot",
        )


_QUANTITIES: dict[int, Decimal] = {}  # the amounts seen most, made once (Decimal is immutable)


def quantity(billionths: int) -> Decimal:
    """Exact, and written as people write it (10, 0.25; never 1E+1)."""
    found = _QUANTITIES.get(billionths)
    if found is not None:  # a recall of 10,000 lots makes 50,000 of these, of a few amounts
        return found
    whole, rest = divmod(billionths, NANO)
    found = Decimal(whole) if not rest else Decimal(billionths).scaleb(-9).normalize()
    if len(_QUANTITIES) < 4096:
        _QUANTITIES[billionths] = found
    return found


@contextmanager
def collector_paused() -> Iterator[None]:
    """No automatic garbage collection while a report is built. A recall makes some 100,000
    objects that all live until it returns, so the collector's thresholds call full
    collections in the middle of it, which were measured at half of a 10,000-lot recall in
    bench/trace.py (the objects hold no cycles, and are freed by reference counts). The
    collector is enabled again only if it was on: another thread's pause may end first, which
    only lets a collection in early."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _when(ts: Timestamp) -> datetime | None:
    return timestamp_to_datetime(ts) if ts.seconds or ts.nanos else None


def _docs(docs: Iterable[records_pb2.DocumentRef]) -> tuple[str, ...]:
    return tuple(f"{d.type} {d.number}" for d in docs)


class _Reader:
    """The records (and their effects) behind one query, each read once."""

    def __init__(self, index: TraceIndex):
        self.index = index
        self._records: dict[int, records_pb2.Record] = {}
        self._effects: dict[int, dict[str, list[Effect]]] = {}

    def records(self, seqs: Iterable[int]) -> dict[int, records_pb2.Record]:
        """The records at `seqs` (and only those)."""
        seqs = list(seqs)
        wanted = [s for s in seqs if s not in self._records]
        if wanted:
            self._records.update(self.index.records.many(wanted))
        return {s: self._records[s] for s in seqs}

    def record(self, seq: int) -> records_pb2.Record:
        found = self._records.get(seq)
        if found is None:
            found = self._records[seq] = self.index.records.record(seq)
        return found

    def effects(self, seq: int, label: str) -> list[Effect]:
        """What the record at `seq` did to the node labelled `label`."""
        found = self._effects.get(seq)
        if found is None:
            found = self._effects[seq] = defaultdict(list)
            for e in effects(self.record(seq), seq, self.index, scoped=self.index.scoped):
                found[e.label].append(e)
        return found.get(label, [])

    def all_effects(self, seq: int) -> list[Effect]:
        self.effects(seq, "")
        return [e for per_label in self._effects[seq].values() for e in per_label]


# ---- views of what a query reached ------------------------------------------------------------


@dataclass(frozen=True)
class QcView:
    seq: int
    record_id: str
    check: str
    result: str
    signed_off_by: str
    submitter: str
    at: datetime | None


@dataclass(frozen=True)
class SupplierView:
    seq: int
    record_id: str
    supplier: str
    supplier_lot_code: str
    received_at: datetime | None
    quantity: Decimal
    unit: str
    location: str
    documents: tuple[str, ...]


@dataclass(frozen=True)
class ScanView:
    """A receive or produce scan that brought the lot to a place."""

    seq: int
    record_id: str
    meaning: str  # "receive" or "produce"
    device: str
    location: str
    at: datetime | None
    raw_data: str


@dataclass
class LotView:
    key: str
    description: str = ""
    expiry_date: str = ""
    manufactured_on: str = ""
    run: str = ""  # "run_id formula@version (entry N)" of the run that made it
    qc: list[QcView] = field(default_factory=list)
    suppliers: list[SupplierView] = field(default_factory=list)
    recalled_by: str = ""
    scans: list[ScanView] = field(default_factory=list)

    @property
    def qc_status(self) -> str:
        return self.qc[-1].result if self.qc else "NONE"


@dataclass(frozen=True)
class ShipmentView:
    shipment_id: str
    seq: int  # the shipment record's entry (-1: only a receipt names it)
    from_participant: str
    to_participant: str
    to_location: str
    shipped_at: datetime | None
    lots: tuple[tuple[str, Decimal, str], ...]  # (lot key, quantity, unit)
    documents: tuple[str, ...]
    received: bool
    receipts: tuple[int, ...] = ()  # the entries that delivered it (why `received`)


_MADE_BY_SCAN = {records_pb2.SCAN_MEANING_RECEIVE: "receive", records_pb2.SCAN_MEANING_PRODUCE: "produce"}


def lot_view(index: TraceIndex, node: int, reader: _Reader | None = None, made_by: list[int] | None = None) -> LotView:
    """What the records say about a lot: how it was made or received, QC, suppliers.
    `made_by`: index.made_by(node), if the caller has it already."""
    reader = reader or _Reader(index)
    key = index.label(node)
    view = LotView(key, recalled_by=index.recalled.get(node, ""))
    if index.expiry[node]:
        view.expiry_date = date.fromordinal(index.expiry[node]).isoformat()
    for seq, r in sorted(reader.records(index.made_by(node) if made_by is None else made_by).items()):
        kind = r.WhichOneof("body")
        if kind == "material_received":
            m = r.material_received
            view.description = m.product_description or view.description
            view.suppliers.append(
                SupplierView(
                    seq,
                    r.record_id,
                    m.supplier,
                    m.supplier_lot_code,
                    _when(m.received_at),
                    Decimal(m.quantity.amount),
                    m.quantity.unit,
                    m.location,
                    _docs(m.documents),
                )
            )
        elif kind == "production_run":  # made_by holds only the runs that made this lot
            run = r.production_run
            view.description = run.product_description or view.description
            view.manufactured_on = run.manufactured_on or view.manufactured_on
            version = f" {run.formula_id}@{run.formula_version}" if run.formula_id else ""
            view.run = f"{run.run_id}{version} (entry {seq})"
        elif kind == "scan" and r.scan.meaning in _MADE_BY_SCAN:
            s = r.scan
            meaning = _MADE_BY_SCAN[s.meaning]
            if meaning == "produce" and not view.run:
                view.run = f"produced at {s.location} (scan by {s.device_id}, entry {seq})"
            view.scans.append(
                ScanView(seq, r.record_id, meaning, s.device_id, s.location, _when(s.scanned_at), s.raw_data)
            )
        elif kind == "quality_check":
            q = r.quality_check
            view.qc.append(
                QcView(
                    seq,
                    r.record_id,
                    q.check_name,
                    QC_NAMES[QC_CODES.get(q.result, 0)],
                    q.signed_off_by,
                    r.submitter,
                    _when(q.checked_at),
                )
            )
    return view


def shipment_view(
    index: TraceIndex,
    node: int,
    reader: _Reader,
    only: set[str] | None = None,
    *,
    only_nodes: Container[int] | None = None,
    from_records: bool = False,
) -> ShipmentView:
    """A shipment as its record says, with the lots in it (only those in `only`, if given,
    or whose nodes are in `only_nodes`). What the record says is kept in the index as records
    are applied (`TraceIndex.consignments`) and read from the record only where the index
    cannot vouch for it, or if `from_records` (the tests compare the two)."""
    label = index.labels[node]
    # a shipment node's facts are its deliveries
    receipts = index.deliveries(node, "")  # (narrowed to the consignee's below, once it is known)
    received = bool(receipts)
    seq = index.shipment_seq[node]
    if seq < 0:
        return ShipmentView(label[len(SHIPMENT) :], -1, "", "", "", None, (), (), received, receipts)
    lots: dict[tuple[str, str], int] = {}
    labels, sources, seqs, units = index.labels, index.edge_src, index.edge_seq, index.edge_unit
    for edge in index.edges_of(node, forward=False):
        if seqs[edge] != seq or (only_nodes is not None and sources[edge] not in only_nodes):
            continue
        key = labels[sources[edge]]
        if only is not None and key not in only:
            continue
        if (unit := units[edge]) >= 0:  # what flowed along the edge (TraceIndex.flow)
            pair = (key, index.units[unit])
            lots[pair] = lots.get(pair, 0) + index.edge_amount[edge]
            continue
        for e in reader.effects(seq, key):
            if e.role == "shipped":
                lots[(key, e.unit)] = lots.get((key, e.unit), 0) - e.delta
    amounts = tuple((k, quantity(n), u) for (k, u), n in sorted(lots.items()))
    kept = index.consignments
    row = kept.row[node]
    if not from_records and row >= 0 and kept.exact[row] and not (index.scan_context_moved and index.scanned[node]):
        name = kept.strings
        sender, consignee, to = name[kept.sender[row]], name[kept.consignee[row]], name[kept.to_location[row]]
        at, docs = kept.when(row), kept.documents(row)
        receipts = index.deliveries(node, consignee)
        return ShipmentView(
            label[len(SHIPMENT) :], seq, sender, consignee, to, at, amounts, docs, bool(receipts), receipts
        )
    record = reader.record(seq)
    if record.WhichOneof("body") == "scan":  # a ship scan: no consignee on record yet
        s = record.scan
        docs = (f"SSCC {s.gs1.sscc}",) if s.gs1.sscc else ()
        owner = index.owner(s.location) or record.submitter  # whose stock it left (trace/effects.py)
        return ShipmentView(
            label[len(SHIPMENT) :], seq, owner, "", "", _when(s.scanned_at), amounts, docs, received, receipts
        )
    ship = record.shipment
    receipts = index.deliveries(node, ship.to_participant)
    received = bool(receipts)
    return ShipmentView(
        label[len(SHIPMENT) :],  # the trace's name of it: `<owner>/<id>` under rules 3
        seq,
        ship.from_participant,
        ship.to_participant,
        ship.to_location,
        _when(ship.shipped_at),
        amounts,
        _docs(ship.documents),
        received,
        receipts,
    )


# ---- trace ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TraceEdge:
    source: str
    target: str  # a lot key, or "shipment:<id>"
    kind: str  # "consumed" or "shipped"
    quantity: Decimal
    unit: str
    seq: int


@dataclass
class TraceResult:
    """A closure as rustworkx hands it back: graph nodes in breadth-first order, their depths,
    and the edges among them (in the direction product flows) as columns copied out of the
    index, so the result stays right while the index moves on. Labels, parents and paths are
    made only when asked for (nodes are never removed from the index, so labels stay valid)."""

    start: str
    direction: str  # "up" or "down"
    nodes: list[int]
    depths: list[int]
    edge_ids: list[int]  # the index's edge indices, and each edge's columns:
    edge_src: Sequence[int]
    edge_dst: Sequence[int]
    edge_seq: Sequence[int]
    label: Callable[[int], str]
    elapsed_ms: float = 0.0
    lot_views: dict[str, LotView] = field(default_factory=dict)
    shipment_views: dict[str, ShipmentView] = field(default_factory=dict)
    quantities: dict[tuple[int, int], list[tuple[Decimal, str]]] = field(default_factory=dict)  # (source, seq)

    @cached_property
    def edge_list(self) -> list[tuple[int, int, int]]:
        return list(zip(self.edge_src, self.edge_dst, self.edge_seq, strict=True))

    @cached_property
    def labels(self) -> list[str]:
        return list(map(self.label, self.nodes))

    @cached_property
    def depth(self) -> dict[str, int]:
        """lot key (or shipment:<id>) -> distance from the start."""
        return dict(zip(self.labels, self.depths, strict=True))

    @cached_property
    def parent(self) -> dict[str, str | None]:
        """Each node's neighbour one step nearer the start (the first such edge)."""
        depth = dict(zip(self.nodes, self.depths, strict=True))
        found: dict[int, int] = {}
        down = self.direction == "down"
        for src, dst, _ in self.edge_list:
            near, far = (src, dst) if down else (dst, src)
            if far not in found and depth.get(near, -2) == depth.get(far, -2) - 1:
                found[far] = near
        out: dict[str, str | None] = {self.start: None}
        out.update((self.label(far), self.label(near)) for far, near in found.items())
        return out

    @property
    def edges(self) -> list[TraceEdge]:
        out = []
        for src, dst, seq in self.edge_list:
            source, target = self.label(src), self.label(dst)
            kind = "shipped" if target.startswith(SHIPMENT) else "consumed"
            for amount, unit in self.quantities.get((src, seq), [(Decimal(0), "")]):
                out.append(TraceEdge(source, target, kind, amount, unit, seq))
        return out

    def path(self, key: str) -> list[str]:
        """From the start to `key`, along the first route the traversal found."""
        out = [key]
        while (p := self.parent.get(out[-1])) is not None:
            out.append(p)
        return out[::-1]

    @property
    def lots(self) -> list[str]:
        return [k for k in self.labels if not k.startswith(SHIPMENT)]

    @property
    def shipments(self) -> list[str]:
        return [k[len(SHIPMENT) :] for k in self.labels if k.startswith(SHIPMENT)]


def _node(index: TraceIndex, key: str) -> int:
    node = index.nodes.get(key)
    if node is None or key.startswith(SHIPMENT):
        raise UnknownLot(key)
    return node


def _micros(when: datetime | None, default: int) -> int:
    if when is None:
        return default
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1_000_000)


_Closure = tuple[list[int], list[int], list[int] | npt.NDArray[np.int32]]  # nodes, their depths, edge indices


def _closure(index: TraceIndex, start: int) -> _Closure:
    """The whole downstream closure: rustworkx finds the nodes and their layers natively, and
    the index's out-edge arrays give their edges, never a Python step per edge."""
    layers = rx.bfs_layers(index.graph, [start])
    nodes = list(chain.from_iterable(layers))
    depths = list(chain.from_iterable(repeat(d, len(layer)) for d, layer in enumerate(layers)))
    return nodes, depths, index.adjacency(True).gather(nodes)


def _walk(
    index: TraceIndex, start: int, forward: bool, depth: int | None, since: datetime | None, until: datetime | None
) -> _Closure:
    """Breadth-first in Python over the index's edge arrays: for upstream (a dozen nodes, where
    slicing the arrays measured faster than rustworkx's per-node calls or its native
    bfs_predecessors), and for what the native closure cannot do (stop at a depth, or skip
    edges whose record names an event time outside [since, until])."""
    adj = index.adjacency(forward)
    ids, ptr, built, recent = adj.ids, adj.ptr, adj.nodes, adj.recent
    far = index.edge_dst if forward else index.edge_src
    lo, hi = _micros(since, -(2**63)), _micros(until, 2**63 - 1)
    windowed = since is not None or until is not None
    times, seqs = index.seq_time, index.edge_seq
    seen = {start: 0}
    found: list[int] = []
    queue = [start]
    for node in queue:  # the list grows as we go
        d = seen[node] + 1
        if depth is not None and d > depth:
            continue
        edges: Sequence[int] = ids[ptr[node] : ptr[node + 1]] if node < built else ()
        if recent and node in recent:
            edges = [*edges, *recent[node]]
        for i in edges:
            if windowed and (t := times[seqs[i]]) and not lo <= t <= hi:
                continue
            found.append(i)
            if (nxt := far[i]) not in seen:
                seen[nxt] = d
                queue.append(nxt)
    return queue, [seen[n] for n in queue], found


def trace(
    index: TraceIndex,
    lot_key: str,
    direction: str,
    *,
    depth: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    details: bool = True,
) -> TraceResult:
    """Upstream ("up": inputs, their inputs...) or downstream ("down": lots made from it and
    every shipment of any of them). `details`: also read the records for quantities, QC,
    suppliers and consignees. Raises UnknownLot, ValueError for a bad direction."""
    if direction not in ("up", "down"):
        raise ValueError("direction is 'up' or 'down'")
    started = time.perf_counter()
    start = _node(index, lot_key)
    forward = direction == "down"
    if forward and depth is None and since is None and until is None:
        nodes, depths, ids = _closure(index, start)
    else:
        nodes, depths, ids = _walk(index, start, forward, depth, since, until)
    src, dst, seq = index.edge_columns(ids)
    listed = ids.tolist() if isinstance(ids, np.ndarray) else ids
    result = TraceResult(lot_key, direction, nodes, depths, listed, src, dst, seq, index.labels.__getitem__)
    if details:
        with collector_paused():
            _add_details(index, result)
    result.elapsed_ms = (time.perf_counter() - started) * 1e3
    return result


def _add_details(index: TraceIndex, result: TraceResult) -> None:
    """Quantities from the index's edge arrays; lots and shipments from their records, all
    read in one transaction."""
    reader = _Reader(index)
    lots: list[int] = []
    ships: list[int] = []
    for node, label in zip(result.nodes, result.labels, strict=True):
        (ships if label.startswith(SHIPMENT) else lots).append(node)
    made = {}  # index.made_by, over the edge arrays (a trace has them built)
    edge_seq = index.edge_seq
    for n in lots:
        seqs = {edge_seq[e] for e in index.edges_of(n, forward=False)}
        if index.fact_head[n] >= 0:
            seqs.update(index.facts(n))
        made[n] = sorted(seqs)
    reader.records({seq for seqs in made.values() for seq in seqs})  # (shipments: kept in the index)
    for src, seq, edge in zip(result.edge_src, result.edge_seq, result.edge_ids, strict=True):
        if (src, seq) in result.quantities:
            continue
        flow = index.flow(edge)
        if flow is None:  # several units in one record: read it
            result.quantities[(src, seq)] = _flows_from_record(reader, seq, index.label(src))
        else:
            result.quantities[(src, seq)] = [(quantity(flow[1]), flow[0])]
    for node in lots:
        result.lot_views[index.label(node)] = lot_view(index, node, reader, made[node])
    for view in _kept_consignments(index, ships, reader, None):
        result.shipment_views[view.shipment_id] = view


def _flows_from_record(reader: _Reader, seq: int, label: str) -> list[tuple[Decimal, str]]:
    by_unit: dict[str, int] = defaultdict(int)
    for e in reader.effects(seq, label):
        if e.role in ("in", "shipped"):
            by_unit[e.unit] -= e.delta
    return [(quantity(n), unit) for unit, n in by_unit.items()]


def upstream(index: TraceIndex, lot_key: str, **kw: object) -> TraceResult:
    return trace(index, lot_key, "up", **kw)  # type: ignore[arg-type]


def downstream(index: TraceIndex, lot_key: str, **kw: object) -> TraceResult:
    return trace(index, lot_key, "down", **kw)  # type: ignore[arg-type]


# ---- mass balance and recall ----------------------------------------------------------------


@dataclass
class Balance:
    """What one holder of a lot took in and put out, in one unit."""

    participant: str
    unit: str
    received: Decimal = Decimal(0)  # produced, material received, or received by shipment
    consumed: Decimal = Decimal(0)
    shipped: Decimal = Decimal(0)
    locations: dict[str, Decimal] = field(default_factory=dict)

    @property
    def remaining(self) -> Decimal:
        return self.received - self.consumed - self.shipped

    @property
    def on_hand(self) -> Decimal:
        return max(self.remaining, Decimal(0))

    @property
    def unaccounted(self) -> Decimal:
        """More used or shipped than ever came in: shown, never hidden."""
        return max(-self.remaining, Decimal(0))


def balances(
    index: TraceIndex, lot_key: str, reader: _Reader | None = None, *, from_records: bool = False
) -> list[Balance]:
    """Mass balance of a lot per holder (participant) and unit, exact: the sums the index
    keeps as records are applied (`TraceIndex.holdings`), or what the lot's records say where
    the index cannot vouch for its sums, or if `from_records` (the tests compare the two).
    Raises UnknownLot."""
    return _balances(index, _node(index, lot_key), reader, from_records)


def _balances(index: TraceIndex, node: int, reader: _Reader | None, from_records: bool) -> list[Balance]:
    if not from_records and not (index.scan_context_moved and index.scanned[node]):
        return _kept_balances(index, node)
    lot_key = index.labels[node]
    reader = reader or _Reader(index)
    sums: dict[tuple[str, str], list[int]] = {}  # (holder, unit) -> [in, consumed, shipped]
    places: dict[tuple[str, str], dict[str, int]] = {}
    seqs = index.seqs(node)
    reader.records(seqs)
    for seq in seqs:
        for e in reader.effects(seq, lot_key):
            if not e.delta:
                continue
            key = (e.holder, e.unit)
            row = sums.setdefault(key, [0, 0, 0])
            row[0 if e.delta > 0 else 1 if e.role == "in" else 2] += abs(e.delta)
            where = places.setdefault(key, {})
            where[e.location] = where.get(e.location, 0) + e.delta
    return [
        Balance(
            holder,
            unit,
            quantity(row[0]),
            quantity(row[1]),
            quantity(row[2]),
            {loc: quantity(n) for loc, n in sorted(places[(holder, unit)].items())},
        )
        for (holder, unit), row in sorted(sums.items())
    ]


def _kept_balances(index: TraceIndex, node: int) -> list[Balance]:
    h = index.holdings
    row = h.head[node]
    if row < 0:
        return []
    if h.next[row] < 0 and not h.big:  # one holder, unit and place: nearly every lot
        holder, unit, where = h.keys[h.key[row]]
        got, used, sent = h.received[row], h.consumed[row], h.shipped[row]
        return [
            Balance(holder, unit, quantity(got), quantity(used), quantity(sent), {where: quantity(got - used - sent)})
        ]
    sums: dict[tuple[str, str], list[int]] = {}  # (holder, unit) -> [in, consumed, shipped]
    places: dict[tuple[str, str], dict[str, int]] = {}
    for row in h.rows(node):
        holder, unit, where = h.keys[h.key[row]]
        got, used, sent = h.sums(row)
        total = sums.setdefault((holder, unit), [0, 0, 0])
        total[0], total[1], total[2] = total[0] + got, total[1] + used, total[2] + sent
        places.setdefault((holder, unit), {})[where] = got - used - sent
    return [
        Balance(
            holder,
            unit,
            quantity(total[0]),
            quantity(total[1]),
            quantity(total[2]),
            {loc: quantity(n) for loc, n in sorted(places[(holder, unit)].items())},
        )
        for (holder, unit), total in sorted(sums.items())
    ]


@dataclass
class RecallReport:
    triggers: list[str]
    reason: str
    lots: dict[str, list[Balance]]  # every affected lot -> its mass balance
    consignments: list[ShipmentView]
    elapsed_ms: float

    @property
    def open_shipments(self) -> list[ShipmentView]:
        """Shipped and not yet received: still stoppable."""
        return [c for c in self.consignments if not c.received]

    @property
    def consignees(self) -> list[str]:
        return sorted({c.to_participant for c in self.consignments if c.to_participant})


def affected(index: TraceIndex, lot_keys: Iterable[str]) -> list[int]:
    """The trigger lots and every node downstream of any of them (one native traversal)."""
    starts = list(dict.fromkeys(_node(index, key) for key in lot_keys))
    return [n for layer in rx.bfs_layers(index.graph, starts) for n in layer]


def recall(index: TraceIndex, lot_keys: Iterable[str], reason: str = "", *, from_records: bool = False) -> RecallReport:
    """Everything downstream of the trigger lots, with mass balances and consignees: from
    the sums and consignments the index keeps, reading records only where it cannot vouch
    for them, or everything from the records if `from_records` (the tests compare the two).
    Raises UnknownLot."""
    started = time.perf_counter()
    triggers = list(dict.fromkeys(lot_keys))
    reached = affected(index, triggers)
    # (each node's label is read once: at 10,000 nodes, reaching the strings costs more
    # than anything done with them)
    named = zip(reached, map(index.labels.__getitem__, reached), strict=True)
    lot_labels: dict[int, str] = {}
    ship_nodes = []
    for n, label in named:
        if label.startswith(SHIPMENT):
            ship_nodes.append(n)
        else:
            lot_labels[n] = label
    lot_nodes = sorted(lot_labels)
    reader = _Reader(index)
    if from_records:  # one read transaction for every record the report needs
        wanted = {seq for n in lot_nodes for seq in index.seqs(n)}
        wanted.update(index.shipment_seq[n] for n in ship_nodes if index.shipment_seq[n] >= 0)
        reader.records(wanted)
    with collector_paused():
        lots = {lot_labels[n]: _balances(index, n, reader, from_records) for n in lot_nodes}
        if from_records:
            consignments = [
                shipment_view(index, n, reader, only_nodes=lot_labels.keys(), from_records=True) for n in ship_nodes
            ]
        else:
            consignments = _kept_consignments(index, ship_nodes, reader, lot_labels)
        consignments.sort(key=lambda c: (c.to_participant, c.shipment_id))
        return RecallReport(triggers, reason, lots, consignments, (time.perf_counter() - started) * 1e3)


def _kept_consignments(
    index: TraceIndex, ship_nodes: list[int], reader: _Reader, lot_labels: dict[int, str] | None
) -> list[ShipmentView]:
    """shipment_view of each of `ship_nodes` with the lots among `lot_labels` (node -> key;
    None: every lot in it), all at once:
    the shipments' in-edges are found and filtered in a few numpy operations, and only the
    edges left (about one a shipment in a recall) and the views cost Python steps. A shipment
    whose columns the index cannot vouch for, or with a lot shipped in several units, goes
    through shipment_view."""
    if not ship_nodes:
        return []
    ids = index.adjacency(False).gather(ship_nodes)
    src, dst, seq = (np.frombuffer(c, dtype=c.typecode)[ids] for c in (index.edge_src, index.edge_dst, index.edge_seq))
    ship_seq = np.frombuffer(index.shipment_seq, dtype=np.int64)[dst]
    keep = seq == ship_seq
    if lot_labels is not None:
        keep &= np.isin(src, np.fromiter(lot_labels, dtype=np.int32, count=len(lot_labels)))
    key_of = index.labels if lot_labels is None else lot_labels
    only = None if lot_labels is None else lot_labels.keys()
    per_ship: dict[int, list[tuple[str, int, int]]] = {}  # node -> (lot key, unit id, billionths)
    edges = ids[keep]
    unit_ids = np.frombuffer(index.edge_unit, dtype=np.int32)[edges].tolist()
    amounts = np.frombuffer(index.edge_amount, dtype=np.int64)[edges].tolist()
    for source, ship, unit, amount in zip(src[keep].tolist(), dst[keep].tolist(), unit_ids, amounts, strict=True):
        per_ship.setdefault(ship, []).append((key_of[source], unit, amount))
    kept, labels, units = index.consignments, index.labels, index.units
    names, moved = kept.strings, index.scan_context_moved
    out = []
    for node in ship_nodes:
        row = kept.row[node]
        lots = per_ship.get(node, [])
        if row < 0 or not kept.exact[row] or (moved and index.scanned[node]) or any(u < 0 for _, u, _ in lots):
            out.append(shipment_view(index, node, reader, only_nodes=only))
            continue
        # (one edge per lot and record: a shipment links each lot once)
        shipped = tuple((key, quantity(n), units[u]) for key, u, n in sorted(lots, key=lambda x: (x[0], units[x[1]])))
        receipts = index.deliveries(node, names[kept.consignee[row]])
        out.append(
            ShipmentView(
                labels[node][len(SHIPMENT) :],
                index.shipment_seq[node],
                names[kept.sender[row]],
                names[kept.consignee[row]],
                names[kept.to_location[row]],
                kept.when(row),
                shipped,
                kept.documents(row),
                bool(receipts),
                receipts,
            )
        )
    return out


def lots_with_supplier_lot(index: TraceIndex, supplier_lot_code: str, supplier: str | None = None) -> list[str]:
    """Our lots received under a supplier's own lot code (a supplier's recall names those)."""
    reader = _Reader(index)
    found = []
    for node in index.supplier_lots.get(supplier_lot_code, []):
        for r in reader.records(index.facts(node)).values():
            m = r.material_received if r.WhichOneof("body") == "material_received" else None
            if (
                m is not None
                and m.supplier_lot_code == supplier_lot_code
                and (supplier is None or m.supplier == supplier)
                and lot_key(m.lot) == index.label(node)
            ):
                found.append(index.label(node))
                break
    return sorted(set(found))


@dataclass(frozen=True)
class SharedSource:
    kind: str  # "lot" or "supplier"
    key: str
    reaches: int  # how many of the complaint lots it reaches
    complaint_lots: tuple[str, ...]


def common_sources(index: TraceIndex, lot_keys: Iterable[str]) -> list[SharedSource]:
    """Upstream lots and suppliers shared by complaint lots, most widely shared first:
    where a problem most likely entered. Raises UnknownLot."""
    reach: dict[tuple[str, str], set[str]] = defaultdict(set)
    reader = _Reader(index)
    for complaint in dict.fromkeys(lot_keys):
        start = _node(index, complaint)
        for node in [start, *rx.ancestors(index.graph, start)]:
            key = index.label(node)
            if node != start:
                reach[("lot", key)].add(complaint)
            for r in reader.records(index.facts(node)).values():
                if r.WhichOneof("body") == "material_received" and lot_key(r.material_received.lot) == key:
                    reach[("supplier", r.material_received.supplier)].add(complaint)
    ranked = [SharedSource(kind, key, len(c), tuple(sorted(c))) for (kind, key), c in reach.items()]
    ranked.sort(key=lambda s: (-s.reaches, s.kind, s.key))
    return ranked
