"""The trace picture: the server's upstream and downstream answers for one lot, merged into one
graph with a fixed layout (upstream to the left, downstream to the right).

Pure: no gRPC, no Flask. The layout is computed here, not in the browser, as a layered
(Sugiyama-style) drawing, because supply chains are layered by nature and QA reads them left to
right: every flow points right, one layer to the next.

1. Layers: a node's hop count from the query lot (`col`: negative upstream, positive downstream)
   is where it starts; then every node downstream is pushed right until each flow into it comes
   from a layer to its left (longest path), and every node upstream left. A receiver of two
   shipments made at different depths so sits right of both, never beside one of them.
2. Order within a layer: a flow that skips layers gets a placeholder in each layer it crosses
   (so it is routed around the nodes there); then barycenter sweeps, left to right and back,
   keeping the order with the fewest crossings (counted exactly, per pair of layers).
3. Rows: each node moves toward the mean height of its neighbours, keeping its order and a row's
   height from the next (isotonic regression, pool-adjacent-violators), so a chain of single
   lots is one straight line and its quantity labels sit level between the boxes.

`col` stays the hop count: "Show hops" filters by it. The same positions every time for the same
answers; linear-ish cost (sweeps are fewer past MANY nodes), so ten thousand nodes still lay out
in well under a second and paint without a force layout in the browser.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lotledger.v1 import records_pb2, trace_pb2

COLUMN_WIDTH = 260  # layer to layer: a 160-unit box (trace.js) and 100 for a quantity label between boxes
ROW_HEIGHT = 84  # box to box in a layer: a 64-unit box, and fan-out labels 42 apart (text is 13)
MAX_ROWS = 40
MANY = 1500  # past this many nodes, two ordering sweeps instead of eight


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
    edges = list(b.edges.values())
    return {"center": lot, "nodes": _laid_out(b.nodes, edges, f"lot:{lot}"), "edges": edges}


def _layers(nodes: Mapping[str, _Node], edges: list[dict[str, Any]], center: str) -> dict[str, int]:
    """Longest-path layers from the hop counts: downstream nodes pushed right of every source of
    a flow into them, upstream nodes left of every target. Nodes on a cycle (a record error;
    the ledger does not refuse it) keep their hop count."""
    layer = {nid: n.col for nid, n in nodes.items()}
    succ: dict[str, list[str]] = {nid: [] for nid in nodes}
    indegree = dict.fromkeys(nodes, 0)
    for e in edges:
        if e["source"] != e["target"]:
            succ[e["source"]].append(e["target"])
            indegree[e["target"]] += 1
    order = [nid for nid, d in indegree.items() if d == 0]  # Kahn: a topological order
    for u in order:
        for v in succ[u]:
            indegree[v] -= 1
            if indegree[v] == 0:
                order.append(v)
    for u in order:
        for v in succ[u]:
            if v != center and layer[v] > 0:
                layer[v] = max(layer[v], layer[u] + 1)
    for u in reversed(order):
        if u != center and layer[u] < 0:
            for v in succ[u]:
                layer[u] = min(layer[u], layer[v] - 1)
    return layer


def _crossings(upper: list[str], lower: list[str], links: list[tuple[str, str]]) -> int:
    """Crossings between two adjacent layers: inversions among the lower ends of the links
    sorted by their upper ends (merge sort, n log n)."""
    at_u = {n: i for i, n in enumerate(upper)}
    at_l = {n: i for i, n in enumerate(lower)}
    seq = [at_l[v] for _, v in sorted(links, key=lambda uv: (at_u[uv[0]], at_l[uv[1]]))]

    def count(a: list[int]) -> tuple[list[int], int]:
        if len(a) < 2:
            return a, 0
        mid = len(a) // 2
        left, x = count(a[:mid])
        right, y = count(a[mid:])
        merged, inv, i, j = [], x + y, 0, 0
        while i < len(left) and j < len(right):
            if right[j] < left[i]:
                merged.append(right[j])
                inv += len(left) - i
                j += 1
            else:
                merged.append(left[i])
                i += 1
        return merged + left[i:] + right[j:], inv

    return count(seq)[1]


class _Layout:
    """Steps 2 and 3 of the module docstring over the layered graph with placeholders."""

    def __init__(self, nodes: Mapping[str, _Node], edges: list[dict[str, Any]], layer: dict[str, int]) -> None:
        self.layer = dict(layer)
        self.rows: dict[int, list[str]] = {}
        for nid in nodes:  # the order the server's walk found them: the first guess
            self.rows.setdefault(layer[nid], []).append(nid)
        self.links: dict[int, list[tuple[str, str]]] = {}  # layer L -> links from L to L + 1
        self.chains: dict[str, list[str]] = {}  # edge id -> the placeholders it passes through
        for e in edges:
            a, z = layer[e["source"]], layer[e["target"]]
            if z <= a:  # a cycle's back edge, or a flow within a layer: drawn, not laid out
                continue
            prev = e["source"]
            chain = []
            for mid in range(a + 1, z):
                dummy = f"~{e['id']}~{mid}"
                self.layer[dummy] = mid
                self.rows.setdefault(mid, []).append(dummy)
                chain.append(dummy)
                self.links.setdefault(mid - 1, []).append((prev, dummy))
                prev = dummy
            self.links.setdefault(z - 1, []).append((prev, e["target"]))
            if chain:
                self.chains[e["id"]] = chain

    def crossings(self) -> int:
        return sum(_crossings(self.rows.get(k, []), self.rows.get(k + 1, []), ls) for k, ls in self.links.items())

    def order(self, sweeps: int, keep_best: bool = True) -> None:
        """Barycenter sweeps; with `keep_best`, the order with the fewest crossings seen (counting
        them costs more than a sweep: a big trace takes the last order instead)."""
        up: dict[str, list[str]] = {}
        down: dict[str, list[str]] = {}
        for ls in self.links.values():
            for u, v in ls:
                down.setdefault(u, []).append(v)
                up.setdefault(v, []).append(u)
        keys = sorted(self.rows)
        best, best_rows = self.crossings() if keep_best else 0, {k: list(r) for k, r in self.rows.items()}
        for sweep in range(sweeps):
            forward = sweep % 2 == 0
            for k in keys[1:] if forward else keys[-2::-1]:
                ref = self.rows.get(k - 1 if forward else k + 1, [])
                at = {n: i for i, n in enumerate(ref)}
                near = up if forward else down
                row = self.rows[k]

                scale = len(ref) / max(len(row), 1)  # a node with no neighbour there keeps its place

                def bary(
                    item: tuple[int, str],
                    at: dict[str, int] = at,
                    near: dict[str, list[str]] = near,
                    scale: float = scale,
                ) -> float:
                    i, n = item
                    ps = [at[m] for m in near.get(n, ()) if m in at]
                    return sum(ps) / len(ps) if ps else i * scale

                self.rows[k] = [n for _, n in sorted(enumerate(row), key=lambda item: (bary(item), item[0]))]
            if not keep_best:
                continue
            found = self.crossings()
            if found < best:
                best, best_rows = found, {k: list(r) for k, r in self.rows.items()}
            if best == 0:
                break
        if keep_best:
            self.rows = best_rows

    def heights(self, passes: int = 4) -> dict[str, float]:
        """y of every node and placeholder: rows centred, then straightened (module docstring)."""
        y: dict[str, float] = {}
        for row in self.rows.values():
            for i, n in enumerate(row):  # a wrapped layer's sub-columns are a grid
                y[n] = (i % MAX_ROWS - (min(len(row), MAX_ROWS) - 1) / 2) * ROW_HEIGHT
        near: dict[str, list[str]] = {}
        for ls in self.links.values():
            for u, v in ls:
                near.setdefault(u, []).append(v)
                near.setdefault(v, []).append(u)
        keys = sorted(k for k, row in self.rows.items() if len(row) <= MAX_ROWS)  # wrapped ones stay a grid
        for p in range(passes):
            for k in keys if p % 2 == 0 else keys[::-1]:
                row = self.rows[k]
                want = [sum(y[m] for m in near[n]) / len(near[n]) if near.get(n) else y[n] for n in row]
                for member, height in zip(row, _spaced(want, ROW_HEIGHT), strict=True):
                    y[member] = height
        return y


def _spaced(want: list[float], gap: float) -> list[float]:
    """The closest (least squares) increasing sequence to `want` whose steps are at least `gap`:
    pool adjacent violators on want[i] - i * gap."""
    blocks: list[list[float]] = []  # [mean, weight]
    for i, w in enumerate(want):
        blocks.append([w - i * gap, 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2 = blocks.pop()
            m1, w1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2])
    out: list[float] = []
    for mean, weight in blocks:
        out.extend([mean] * int(weight))
    return [q + i * gap for i, q in enumerate(out)]


def crossings(graph: Mapping[str, Any]) -> int:
    """Edge crossings in a laid-out graph (by the positions it carries): for tests and benches."""
    at = {n["id"]: (n["x"], n["y"]) for n in graph["nodes"]}
    segs: list[tuple[str, str, tuple[float, float], tuple[float, float]]] = []
    for e in graph["edges"]:
        points = [at[e["source"]], *((b["x"], b["y"]) for b in e.get("bends", ())), at[e["target"]]]
        segs.extend((e["source"], e["target"], p, q) for p, q in zip(points, points[1:], strict=False))

    def cross(p: tuple[float, float], q: tuple[float, float], r: tuple[float, float], s: tuple[float, float]) -> bool:
        def side(a: tuple[float, float], b: tuple[float, float], c: tuple[float, float]) -> float:
            return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])

        return side(p, q, r) * side(p, q, s) < 0 and side(r, s, p) * side(r, s, q) < 0

    found = 0
    for i, (a1, b1, p, q) in enumerate(segs):
        for a2, b2, r, s in segs[i + 1 :]:
            if {a1, b1} & {a2, b2}:
                continue  # flows that share a node meet there, they do not cross
            found += cross(p, q, r, s)
    return found


def _laid_out(nodes: Mapping[str, _Node], edges: list[dict[str, Any]], center: str) -> list[dict[str, Any]]:
    """Positions by layer, order and height (module docstring). A layer of more than MAX_ROWS
    nodes wraps into side-by-side sub-columns, so a raw material shipped a thousand times is a
    block, not a line a mile long. Flows that skip layers get `bends` (the placeholders' points)."""
    layout = _Layout(nodes, edges, _layers(nodes, edges, center))
    layout.order(8, keep_best=True) if len(nodes) <= MANY else layout.order(2, keep_best=False)
    y = layout.heights(4 if len(nodes) <= MANY else 2)
    widths = {k: -(-len(row) // MAX_ROWS) * COLUMN_WIDTH for k, row in layout.rows.items()}
    lo, hi = min(layout.rows, default=0), max(layout.rows, default=0)
    centers = {0: 0.0}
    for k in range(1, hi + 1):
        centers[k] = centers[k - 1] + (widths.get(k - 1, COLUMN_WIDTH) + widths.get(k, COLUMN_WIDTH)) / 2
    for k in range(-1, lo - 1, -1):
        centers[k] = centers[k + 1] - (widths.get(k + 1, COLUMN_WIDTH) + widths.get(k, COLUMN_WIDTH)) / 2
    x: dict[str, float] = {}
    for k, row in layout.rows.items():
        left = centers[k] - widths[k] / 2
        for i, n in enumerate(row):
            sub = i // MAX_ROWS
            x[n] = left + (sub + 0.5) * COLUMN_WIDTH
    for e in edges:
        chain = layout.chains.get(e["id"])
        if chain:
            e["bends"] = [{"x": x[d], "y": y[d]} for d in chain]
    out = []
    for k in sorted(layout.rows):
        for nid in layout.rows[k]:
            if nid not in nodes:
                continue  # a placeholder
            node = nodes[nid]
            out.append(
                {
                    "id": node.id,
                    "kind": node.kind,
                    "label": node.label,
                    "col": node.col,
                    "layer": k,
                    "x": x[nid],
                    "y": round(y[nid], 2),
                    "seqs": sorted(node.seqs),
                    **{k2: v for k2, v in node.data.items() if v != "" and v != []},  # absent reads as empty
                }
            )
    return out
