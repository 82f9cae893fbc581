"""Trace and recall queries: pure functions over a TraceIndex, no I/O.

Every answer names the entry seqs behind its edges, so a report can be backed by the log
(and, with proofs, checked without trusting the server).
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from lotledger.ledger.errors import NotFound
from lotledger.trace.index import Edge, Flow, Lot, TraceIndex


class UnknownLot(NotFound):
    """The index has never seen this lot key."""

    def __init__(self, lot_key: str):
        super().__init__(
            f"no lot {lot_key!r} in the ledger (lot keys read 01/<gtin14>/10/<lot> or item/<code>/lot/<lot>)",
            reason="UNKNOWN_LOT",
            field="lot",
        )


@dataclass(frozen=True)
class TraceEdge:
    source: str
    target: str  # a lot key, or "shipment:<id>"
    kind: str
    quantity: Decimal
    unit: str
    seq: int


@dataclass
class TraceResult:
    start: str
    direction: str  # "up" or "down"
    depth: dict[str, int]  # lot key (or shipment:<id>) -> distance from start
    parent: dict[str, str | None]
    edges: list[TraceEdge]
    elapsed_ms: float

    def path(self, key: str) -> list[str]:
        """From the start to `key`, along the first route the traversal found."""
        out = [key]
        while (p := self.parent.get(out[-1])) is not None:
            out.append(p)
        return out[::-1]

    @property
    def lots(self) -> list[str]:
        return [k for k in self.depth if not k.startswith("shipment:")]

    @property
    def shipments(self) -> list[str]:
        return [k[len("shipment:") :] for k in self.depth if k.startswith("shipment:")]


def _node(index: TraceIndex, lot_key: str) -> int:
    lot = index.lots.get(lot_key)
    if lot is None:
        raise UnknownLot(lot_key)
    return lot.node


def _label(index: TraceIndex, node: int) -> str:
    key = index.key_of(node)
    return key if index.is_lot_node(node) else f"shipment:{key}"


def _in_window(flow: Flow, since: datetime | None, until: datetime | None) -> bool:
    if flow.at is None:
        return True
    return (since is None or flow.at >= since) and (until is None or flow.at <= until)


def _walk(
    index: TraceIndex,
    start: Iterable[int],
    forward: bool,
    depth: int | None,
    since: datetime | None,
    until: datetime | None,
) -> tuple[dict[int, int], dict[int, int | None], list[tuple[int, int, Edge]]]:
    graph = index.graph
    seen: dict[int, int] = {}
    parent: dict[int, int | None] = {}
    for s in start:
        seen[s], parent[s] = 0, None
    queue = deque(seen)
    edges: list[tuple[int, int, Edge]] = []
    while queue:
        node = queue.popleft()
        d = seen[node]
        if depth is not None and d >= depth:
            continue
        for src, dst, payload in graph.out_edges(node) if forward else graph.in_edges(node):
            if not _in_window(payload.flow, since, until):
                continue
            edges.append((src, dst, payload))
            nxt = dst if forward else src
            if nxt not in seen:
                seen[nxt], parent[nxt] = d + 1, node
                queue.append(nxt)
    return seen, parent, edges


def trace(
    index: TraceIndex,
    lot_key: str,
    direction: str,
    *,
    depth: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> TraceResult:
    """Upstream ("up": inputs, their inputs...) or downstream ("down": lots made from it and
    every shipment of any of them). Raises UnknownLot, ValueError for a bad direction."""
    if direction not in ("up", "down"):
        raise ValueError("direction is 'up' or 'down'")
    started = time.perf_counter()
    seen, parent, edges = _walk(index, [_node(index, lot_key)], direction == "down", depth, since, until)
    return TraceResult(
        lot_key,
        direction,
        {_label(index, n): d for n, d in seen.items()},
        {_label(index, n): (None if p is None else _label(index, p)) for n, p in parent.items()},
        [
            TraceEdge(_label(index, s), _label(index, t), e.kind, e.flow.quantity, e.flow.unit, e.flow.seq)
            for s, t, e in edges
        ],
        (time.perf_counter() - started) * 1e3,
    )


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


def balances(lot: Lot) -> list[Balance]:
    """Mass balance of a lot per holder (participant) and unit, with Decimal arithmetic."""
    table: dict[tuple[str, str], Balance] = {}

    def get(flow: Flow) -> Balance:
        key = (flow.participant, flow.unit)
        if key not in table:
            table[key] = Balance(flow.participant, flow.unit)
        return table[key]

    for flow in (*lot.produced, *lot.received, *lot.receipts):
        b = get(flow)
        b.received += flow.quantity
        b.locations[flow.location] = b.locations.get(flow.location, Decimal(0)) + flow.quantity
    for flow in lot.consumed:
        b = get(flow)
        b.consumed += flow.quantity
        b.locations[flow.location] = b.locations.get(flow.location, Decimal(0)) - flow.quantity
    for flow in lot.shipped:
        b = get(flow)
        b.shipped += flow.quantity
        b.locations[flow.location] = b.locations.get(flow.location, Decimal(0)) - flow.quantity
    return sorted(table.values(), key=lambda b: (b.participant, b.unit))


@dataclass(frozen=True)
class Consignment:
    shipment_id: str
    from_participant: str
    to_participant: str
    to_location: str
    shipped_at: datetime | None
    lots: tuple[tuple[str, Decimal, str], ...]  # (lot key, quantity, unit) of affected lots
    documents: tuple[str, ...]
    received: bool
    seq: int


@dataclass
class RecallReport:
    triggers: list[str]
    reason: str
    lots: dict[str, list[Balance]]  # every affected lot -> its mass balance
    consignments: list[Consignment]
    elapsed_ms: float

    @property
    def open_shipments(self) -> list[Consignment]:
        """Shipped and not yet received: still stoppable."""
        return [c for c in self.consignments if not c.received]

    @property
    def consignees(self) -> list[str]:
        return sorted({c.to_participant for c in self.consignments})


def recall(index: TraceIndex, lot_keys: Iterable[str], reason: str = "") -> RecallReport:
    """Everything downstream of the trigger lots, with mass balances and consignees.
    Raises UnknownLot."""
    started = time.perf_counter()
    triggers = list(lot_keys)
    seen, _, _ = _walk(index, [_node(index, k) for k in triggers], True, None, None, None)
    lots: dict[str, list[Balance]] = {}
    consignments = []
    affected_keys = {index.key_of(n) for n in seen if index.is_lot_node(n)}
    for node in seen:
        key = index.key_of(node)
        if index.is_lot_node(node):
            lots[key] = balances(index.lots[key])
            continue
        ship = index.shipments[key]
        consignments.append(
            Consignment(
                ship.shipment_id,
                ship.from_participant,
                ship.to_participant,
                ship.to_location,
                ship.shipped_at,
                tuple((f.counterpart, f.quantity, f.unit) for f in ship.lots if f.counterpart in affected_keys),
                ship.documents,
                bool(ship.receipts),
                ship.seq,
            )
        )
    consignments.sort(key=lambda c: (c.to_participant, c.shipment_id))
    return RecallReport(triggers, reason, lots, consignments, (time.perf_counter() - started) * 1e3)


def lots_with_supplier_lot(index: TraceIndex, supplier_lot_code: str, supplier: str | None = None) -> list[str]:
    """Our lots received under a supplier's own lot code (a supplier's recall names those)."""
    return sorted(
        lot.key
        for lot in index.lots.values()
        for src in lot.suppliers
        if src.supplier_lot_code == supplier_lot_code and (supplier is None or src.supplier == supplier)
    )


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
    complaints = list(lot_keys)
    for complaint in complaints:
        seen, _, _ = _walk(index, [_node(index, complaint)], False, None, None, None)
        for node in seen:
            key = index.key_of(node)
            if key != complaint:
                reach[("lot", key)].add(complaint)
            for src in index.lots[key].suppliers:
                reach[("supplier", src.supplier)].add(complaint)
    ranked = [SharedSource(kind, key, len(c), tuple(sorted(c))) for (kind, key), c in reach.items()]
    ranked.sort(key=lambda s: (-s.reaches, s.kind, s.key))
    return ranked


def qc_status(lot: Lot) -> str:
    latest = lot.latest_qc
    return latest.result if latest else "NONE"
