"""Trace, recall and common sources agree exactly with a brute-force reference computed
from the records, corrections included; mass balance is exact Decimal arithmetic."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from supply_chain import T0, bfs, effective, generate, reference_balance, reference_edges, reference_flows, reverse

from lotledger.ledger.core.validation import lot_key
from lotledger.trace.index import TraceIndex
from lotledger.trace.queries import (
    UnknownLot,
    balances,
    common_sources,
    downstream,
    lots_with_supplier_lot,
    recall,
    trace,
    upstream,
)
from lotledger.trace.records import ListRecords
from lotledger.v1 import records_pb2


def build(records: list[records_pb2.Record], adjacency_at: float | None = None) -> TraceIndex:
    """`adjacency_at`: build the out-edge arrays once this fraction of the records is in (the
    rest then goes beside them, or drops them at a correction); None: never."""
    source = ListRecords()
    index = TraceIndex(source)
    for i, record in enumerate(records):
        if adjacency_at is not None and i == int(len(records) * adjacency_at):
            index.refresh_adjacency()
        index.apply(source.append(record), record)
    if adjacency_at == 1.0:
        index.refresh_adjacency()
    return index


@pytest.mark.parametrize("adjacency_at", [None, 0.5, 1.0])
@pytest.mark.parametrize("seed", range(6))
def test_traces_match_the_reference(seed: int, adjacency_at: float | None) -> None:
    records = generate(seed)
    index = build(records, adjacency_at)
    adj = reference_edges(records)
    rev = reverse(adj)
    flows = reference_flows(records)
    for key in sorted(index.lot_keys()):
        down = downstream(index, key)
        assert set(down.depth) == bfs(adj, [key]), key
        up = upstream(index, key)
        assert set(up.depth) == bfs(rev, [key]), key
        for node in up.depth:
            path = up.path(node)
            assert path[0] == key and path[-1] == node
            assert len(path) == up.depth[node] + 1
        # the edges are exactly the reference's among the closure, each with its quantity
        want = {(a, b) for a in down.depth for b in adj.get(a, ())}
        assert {(e.source, e.target) for e in down.edges} == want
        assert all(e.quantity > 0 and e.unit for e in down.edges)
        got: dict[tuple[str, str], list[tuple[Decimal, str]]] = defaultdict(list)
        for e in down.edges:
            got[(e.source, e.target)].append((e.quantity, e.unit))
        assert {k: sorted(v) for k, v in got.items()} == {k: flows[k] for k in want}
        # the native closure and the Python walk (used for depth limits and windows) agree
        for direction in ("up", "down"):
            native = trace(index, key, direction)
            walked = trace(index, key, direction, depth=10**6)
            assert native.depth == walked.depth
            assert sorted(native.edges, key=repr) == sorted(walked.edges, key=repr)


@pytest.mark.parametrize("seed", range(6))
def test_recall_matches_the_reference(seed: int) -> None:
    records = generate(seed)
    index = build(records)
    adj = reference_edges(records)
    current = effective(records)
    triggers = sorted(index.lot_keys())[:2]
    report = recall(index, triggers, reason="test")
    closure = bfs(adj, triggers)
    assert set(report.lots) == {k for k in closure if not k.startswith("shipment:")}
    shipments = {k[len("shipment:") :] for k in closure if k.startswith("shipment:")}
    assert {c.shipment_id for c in report.consignments} == shipments
    by_id = {r.shipment.shipment_id: r.shipment for r in current.values() if r.WhichOneof("body") == "shipment"}
    assert set(report.consignees) == {by_id[s].to_participant for s in shipments}
    received = {r.receipt.shipment_id for r in current.values() if r.WhichOneof("body") == "receipt"}
    assert {c.shipment_id for c in report.open_shipments} == shipments - received
    for key in report.lots:
        got = {(b.participant, b.unit): b.remaining for b in report.lots[key]}
        want = {k: v for k, v in reference_balance(records, key).items()}
        assert got == want, key


def test_mass_balance_is_exact_and_overuse_shows() -> None:
    records = []
    r = records_pb2.Record(record_id="in", submitter="plant")
    m = r.material_received
    m.lot.CopyFrom(records_pb2.LotId(item_code="SALT", lot="A"))
    m.quantity.amount, m.quantity.unit, m.supplier = "0.1", "KGM", "sup"
    records.append(r)
    for i, amount in enumerate(["0.05", "0.02", "0.04"]):
        s = records_pb2.Record(record_id=f"out{i}", submitter="plant")
        s.shipment.shipment_id, s.shipment.from_participant, s.shipment.to_participant = f"S{i}", "plant", "c"
        s.shipment.lots.add(lot=m.lot, quantity=records_pb2.Quantity(amount=amount, unit="KGM"))
        records.append(s)
    index = build(records)
    [b] = balances(index, lot_key(m.lot))
    assert b.received == Decimal("0.1") and b.shipped == Decimal("0.11")
    assert b.on_hand == 0 and b.unaccounted == Decimal("0.01")  # exact: no float drift


def test_corrections_replace_edges_in_the_index() -> None:
    records = generate(3, runs=20, corrections=0)
    run = next(r for r in records if r.WhichOneof("body") == "production_run")
    old_input = lot_key(run.production_run.inputs[0].lot)
    output = lot_key(run.production_run.outputs[0].lot)
    index = build(records)
    assert old_input in upstream(index, output).depth
    fix = records_pb2.Record(record_id="fix", submitter="plant")
    fix.correction.corrects_record_id = run.record_id
    fixed = fix.correction.corrected
    fixed.CopyFrom(run)
    del fixed.production_run.inputs[:]
    fixed.production_run.inputs.add(
        lot=records_pb2.LotId(item_code="NEW", lot="X"), quantity=records_pb2.Quantity(amount="1", unit="KGM")
    )
    index.apply(index.records.append(fix), fix)  # type: ignore[attr-defined]
    up = upstream(index, output)
    assert "item/NEW/lot/X" in up.depth
    assert old_input not in up.depth or old_input in bfs(reverse(reference_edges([*records, fix])), [output])
    assert all(e.seq == len(records) for e in up.edges if e.target == output)


def test_depth_limit_and_unknown_lot() -> None:
    records = generate(1)
    index = build(records)
    key = sorted(index.lot_keys())[0]
    limited = downstream(index, key, depth=1)
    assert max(limited.depth.values()) <= 1
    with pytest.raises(UnknownLot):
        upstream(index, "item/NOPE/lot/0")


def test_common_sources_ranks_the_shared_input_first() -> None:
    records = generate(4)
    index = build(records)
    rev = reverse(reference_edges(records))
    finished = sorted(k for k in index.lot_keys() if k.startswith("item/FG"))[:5]
    ranked = common_sources(index, finished)
    top = ranked[0]
    assert top.reaches == max(s.reaches for s in ranked)
    for source in ranked:
        if source.kind == "lot":
            want = {c for c in finished if source.key in bfs(rev, [c]) and source.key != c}
            assert set(source.complaint_lots) == want


def test_supplier_lot_code_finds_our_lots() -> None:
    records = generate(2)
    index = build(records)
    assert lots_with_supplier_lot(index, "S-3") == ["item/RAW3/lot/R3"]


def test_time_window_follows_only_edges_whose_event_falls_inside_it() -> None:
    records = generate(2)
    index = build(records)
    since_s, until_s = T0 + 60 * 30, T0 + 60 * 90
    adj: dict[str, set[str]] = {}
    for r in effective(records).values():
        kind = r.WhichOneof("body")
        if kind == "production_run" and since_s <= r.production_run.completed_at.seconds <= until_s:
            for i in r.production_run.inputs:
                adj.setdefault(lot_key(i.lot), set()).update(lot_key(o.lot) for o in r.production_run.outputs)
        elif kind == "shipment" and since_s <= r.shipment.shipped_at.seconds <= until_s:
            for item in r.shipment.lots:
                adj.setdefault(lot_key(item.lot), set()).add(f"shipment:{r.shipment.shipment_id}")
    since, until = datetime.fromtimestamp(since_s, UTC), datetime.fromtimestamp(until_s, UTC)
    narrower = 0
    for key in sorted(index.lot_keys()):
        down = downstream(index, key, since=since, until=until)
        assert set(down.depth) == bfs(adj, [key]), key
        narrower += len(down.depth) < len(downstream(index, key).depth)
    assert narrower > 0, "the window must cut something in this chain"


def test_an_input_in_two_units_reads_its_record_for_the_edge() -> None:
    """The index keeps one amount per edge; a record moving a lot in two units is read instead."""
    run = records_pb2.Record(record_id="run", submitter="plant")
    flour = records_pb2.LotId(item_code="FLOUR", lot="F1")
    run.production_run.run_id = "R1"
    run.production_run.inputs.add(lot=flour, quantity=records_pb2.Quantity(amount="2", unit="KGM"))
    run.production_run.inputs.add(lot=flour, quantity=records_pb2.Quantity(amount="3", unit="BG"))
    run.production_run.inputs.add(lot=flour, quantity=records_pb2.Quantity(amount="0.5", unit="KGM"))
    run.production_run.outputs.add(
        lot=records_pb2.LotId(item_code="BREAD", lot="B1"), quantity=records_pb2.Quantity(amount="1", unit="H87")
    )
    index = build([run])
    edges = downstream(index, "item/FLOUR/lot/F1").edges
    assert sorted((e.unit, e.quantity) for e in edges) == [("BG", Decimal(3)), ("KGM", Decimal("2.5"))]
