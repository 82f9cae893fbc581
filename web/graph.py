"""The trace picture: the server's upstream and downstream answers for one lot, merged into one
graph with a fixed layout (upstream to the left, downstream to the right).

Pure: no gRPC, no Flask. The layout is computed here, not in the browser: a column per hop from
the query lot (negative upstream, positive downstream) and rows in the order the server's
breadth-first walk found the nodes. That is deterministic, readable for supply chains (they are
layered by nature) and costs nothing in the browser, so a graph of ten thousand nodes paints
without running a force layout.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lotledger.v1 import records_pb2, trace_pb2

COLUMN_WIDTH = 260
ROW_HEIGHT = 78
MAX_ROWS = 40


@dataclass
class _Node:
    id: str
    kind: str  # lot, shipment, supplier, customer
    col: int
    label: str
    data: dict[str, Any] = field(default_factory=dict)
    seqs: set[int] = field(default_factory=set)


def _qty(q: records_pb2.Quantity) -> str:
    return f"{q.amount} {q.unit}".strip() if q.amount else ""


class _Builder:
    def __init__(self, directory: Mapping[str, str]) -> None:
        self.nodes: dict[str, _Node] = {}
        self.edges: dict[str, dict[str, Any]] = {}
        self.names = directory

    def node(self, node_id: str, kind: str, col: int, label: str) -> _Node:
        found = self.nodes.get(node_id)
        if found is None:
            found = self.nodes[node_id] = _Node(node_id, kind, col, label)
        elif abs(col) < abs(found.col):  # the shortest way from the query lot decides the column
            found.col = col
        return found

    def edge(self, source: str, target: str, kind: str, quantity: str, seq: int) -> None:
        key = f"{source}>{target}>{kind}>{seq}"
        if key not in self.edges:  # a short id: ten thousand edges travel inside the page
            self.edges[key] = {
                "id": f"e{len(self.edges)}",
                "source": source,
                "target": target,
                "kind": kind,
                "quantity": quantity,
                "seq": seq,
            }

    def lot(self, view: trace_pb2.TraceLot, sign: int) -> _Node:
        n = self.node(f"lot:{view.lot}", "lot", sign * view.depth, view.lot.rsplit("/", 1)[-1])
        n.data.update(
            lot=view.lot,
            product=view.description,
            qc=view.qc_status or "NONE",
            expiry=view.expiry_date,
            run=view.run,
            qc_checks=[
                {"check": q.check_name, "result": q.result, "signed_off_by": q.signed_off_by, "seq": q.seq}
                for q in view.qc
            ],
        )
        n.seqs.update(q.seq for q in view.qc)
        n.seqs.update(s.seq for s in view.scans)
        return n

    def party(self, participant: str, kind: str, col: int) -> _Node:
        n = self.node(f"{kind}:{participant}", kind, col, self.names.get(participant, participant))
        n.data["participant"] = participant
        return n


def trace_graph(
    lot: str,
    up: trace_pb2.TraceResponse | None,
    down: trace_pb2.TraceResponse | None,
    alerts: Iterable[trace_pb2.Alert] = (),
    directory: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The JSON the trace page draws: nodes with positions and the entry seqs behind them,
    edges with quantities and the seq that justifies each. `directory` maps participant ids to
    business names; `alerts` are matched to lot nodes by lot key."""
    b = _Builder(directory or {})
    for sign, answer in ((-1, up), (1, down)):
        if answer is None:
            continue
        for view in answer.lots:
            n = b.lot(view, sign)
            for s in view.suppliers if sign < 0 else ():
                sup = b.party(s.supplier, "supplier", n.col - 1)
                sup.seqs.add(s.seq)
                sup.data.setdefault("lots", []).append(s.supplier_lot_code)
                n.seqs.add(s.seq)
                n.data.setdefault("suppliers", []).append(
                    {
                        "supplier": s.supplier,
                        "supplier_lot_code": s.supplier_lot_code,
                        "quantity": _qty(s.quantity),
                        "received_at": s.received_at.ToJsonString() if s.HasField("received_at") else "",
                        "seq": s.seq,
                    }
                )
                b.edge(sup.id, n.id, "supplied", _qty(s.quantity), s.seq)
        shipments = {s.shipment_id: s for s in answer.shipments}
        for e in answer.edges:
            source = b.nodes.get(f"lot:{e.source}")
            if source is None:  # an edge outside the depth limit
                continue
            if e.target.startswith("shipment:"):
                ship_id = e.target.removeprefix("shipment:")
                ship = b.node(e.target, "shipment", source.col + sign, ship_id)
                ship.seqs.add(e.seq)
                view_ = shipments.get(ship_id)
                if view_ is not None:
                    ship.data.update(
                        shipment_id=ship_id,
                        from_participant=view_.from_participant,
                        to_participant=view_.to_participant,
                        to_location=view_.to_location,
                        shipped_at=view_.shipped_at.ToJsonString() if view_.HasField("shipped_at") else "",
                        received=view_.received,
                        documents=list(view_.documents),
                    )
                    ship.seqs.update(view_.receipt_seqs)
                    to = b.party(view_.to_participant, "customer", ship.col + sign)
                    to.seqs.add(view_.seq)
                    b.edge(ship.id, to.id, "delivered" if view_.received else "in transit", "", view_.seq)
                b.edge(source.id, ship.id, e.kind, _qty(e.quantity), e.seq)
            else:
                target = b.nodes.get(f"lot:{e.target}")
                if target is None:
                    continue
                b.edge(source.id, target.id, e.kind, _qty(e.quantity), e.seq)
                source.seqs.add(e.seq)
                target.seqs.add(e.seq)
    for e in b.edges.values():  # what flowed between each lot and the side toward the query lot
        source, target = b.nodes[e["source"]], b.nodes[e["target"]]
        if not e["quantity"]:
            continue
        if source.kind == "lot" and source.col < 0 and target.kind == "lot":
            source.data.setdefault("flows", []).append(f"used {e['quantity']}")
        elif target.kind == "lot" and target.col > 0:
            target.data.setdefault("flows", []).append(f"got {e['quantity']}")
        elif source.kind == "supplier":
            target.data.setdefault("flows", []).append(f"received {e['quantity']}")
    for n in b.nodes.values():
        if n.kind == "lot":
            n.data["quantity"] = "; ".join(dict.fromkeys(n.data.pop("flows", [])))
    by_lot: dict[str, list[trace_pb2.Alert]] = {}
    for a in alerts:
        by_lot.setdefault(a.lot, []).append(a)
    for n in b.nodes.values():
        if n.kind == "lot":
            found = by_lot.get(n.data["lot"], [])
            n.seqs.update(a.seq for a in found)
            # Each rule once, with its first message: the alert list has every one.
            first = {a.rule: a for a in reversed(found)}
            n.data["alerts"] = [{"rule": r, "message": a.message, "seq": a.seq} for r, a in sorted(first.items())]
            n.data["alert_count"] = len(found)
    return {"center": lot, "nodes": _laid_out(b.nodes.values()), "edges": list(b.edges.values())}


def _laid_out(nodes: Iterable[_Node]) -> list[dict[str, Any]]:
    """Columns left to right by hop; a column of more than MAX_ROWS nodes wraps into side-by-side
    sub-columns, so a raw material shipped a thousand times is a block, not a line a mile long."""
    columns: dict[int, list[_Node]] = {}
    for n in nodes:
        columns.setdefault(n.col, []).append(n)
    widths = {col: -(-len(members) // MAX_ROWS) * COLUMN_WIDTH for col, members in columns.items()}
    centers = {0: 0.0}
    for col in range(1, max(columns, default=0) + 1):
        centers[col] = centers[col - 1] + (widths.get(col - 1, COLUMN_WIDTH) + widths.get(col, COLUMN_WIDTH)) / 2
    for col in range(-1, min(columns, default=0) - 1, -1):
        centers[col] = centers[col + 1] - (widths.get(col + 1, COLUMN_WIDTH) + widths.get(col, COLUMN_WIDTH)) / 2
    out = []
    for col, members in sorted(columns.items()):
        left = centers[col] - widths[col] / 2
        top = -(min(len(members), MAX_ROWS) - 1) * ROW_HEIGHT / 2
        for i, n in enumerate(members):
            sub, row = divmod(i, MAX_ROWS)
            out.append(
                {
                    "id": n.id,
                    "kind": n.kind,
                    "label": n.label,
                    "col": col,
                    "x": left + (sub + 0.5) * COLUMN_WIDTH,
                    "y": top + row * ROW_HEIGHT,
                    "seqs": sorted(n.seqs),
                    **{k: v for k, v in n.data.items() if v != "" and v != []},  # absent reads as empty
                }
            )
    return out
