"""Restart from a snapshot: the index loads, catches up with the log, and answers exactly as a
full rebuild and the brute-force reference do; a snapshot of another log is ignored."""

from __future__ import annotations

from array import array
from pathlib import Path

import pytest
from helpers import make_world, shipment, signed
from supply_chain import bfs, generate, reference_edges, reverse

from lotledger.ledger.log import Ledger
from lotledger.trace.index import TraceIndex
from lotledger.trace.live import LiveIndex
from lotledger.trace.queries import balances, downstream, upstream
from lotledger.trace.records import ListRecords
from lotledger.trace.snapshot import SnapshotStore, dump, restore


def test_snapshot_round_trip_then_catch_up_matches_the_reference(tmp_path: Path) -> None:
    records = generate(5, runs=80, corrections=8)
    half = len(records) // 2
    source = ListRecords(records)
    index = TraceIndex(source)
    for seq, record in enumerate(records[:half]):
        index.apply(seq, record)
    store = SnapshotStore(tmp_path / "index")
    store.save(index, [], b"\x00" * 32)
    store.close()
    store = SnapshotStore(tmp_path / "index")
    snap = store.load(source)
    store.close()
    assert snap is not None and snap.size == half
    restored = snap.index
    for seq, record in enumerate(records[half:], start=half):
        restored.apply(seq, record)
    adj = reference_edges(records)
    rev = reverse(adj)
    full = TraceIndex(source)
    for seq, record in enumerate(records):
        full.apply(seq, record)
    for key in sorted(restored.lot_keys()):
        assert set(downstream(restored, key).depth) == bfs(adj, [key])
        assert set(upstream(restored, key).depth) == bfs(rev, [key])
        assert balances(restored, key) == balances(full, key)
    a, b = dump(restored, []), dump(full, [])
    for name in (
        "labels",
        "qc",
        "qc_seq",
        "expiry",
        "shipment_seq",
        "holdings.received",
        "consignments.at",
        "seq_time",
        "sparse",
    ):
        assert a[name] == b[name], name
    assert sorted(restored.edge_list()) == sorted(full.edge_list())
    assert flows(restored) == flows(full)


def flows(index: TraceIndex) -> list[tuple[int, int, int, tuple[str, int] | None]]:
    """Every edge with what flowed along it (the per-edge arrays, by edge index)."""
    ids = list(index.graph.edge_indices())
    return sorted(
        (*edge, index.flow(i)) for i, edge in zip(ids, zip(*index.edge_columns(ids), strict=True), strict=True)
    )


def test_live_index_restarts_from_its_snapshot_and_catches_up(tmp_path: Path) -> None:
    world, ledger = make_world(tmp_path)
    key = world.keys["acme"]
    for i in range(20):
        ledger.append(signed(shipment(record_id=f"a{i}"), key))
    live = LiveIndex(ledger, snapshots=SnapshotStore(world.data_dir / "index"))
    assert live.loaded_from_snapshot == 0
    live.close()  # snapshots 24 entries
    for i in range(10):
        ledger.append(signed(shipment(record_id=f"b{i}"), key))
    ledger.close()

    ledger = Ledger(world.data_dir, world.log_key)
    try:
        live = LiveIndex(ledger, snapshots=SnapshotStore(world.data_dir / "index"))
        fresh = LiveIndex(ledger)  # no snapshot: a full replay
        try:
            assert live.loaded_from_snapshot == 24
            assert live.index.size == fresh.index.size == ledger.size == 34
            lot = "01/09520000000011/10/L1"
            assert live.query(lambda ix: set(downstream(ix, lot).depth)) == fresh.query(
                lambda ix: set(downstream(ix, lot).depth)
            )
            assert [a.rule for a in live.alerts] == [a.rule for a in fresh.alerts]
        finally:
            live.close()
            fresh.close()
    finally:
        ledger.close()


def test_a_snapshot_of_another_log_is_ignored(tmp_path: Path) -> None:
    world_a, ledger_a = make_world(tmp_path / "a")
    LiveIndex(ledger_a, snapshots=SnapshotStore(world_a.data_dir / "index")).close()
    ledger_a.close()
    _, ledger_b = make_world(tmp_path / "b")
    try:
        # Same size, different history: the leaf hash tells them apart.
        live = LiveIndex(ledger_b, snapshots=SnapshotStore(world_a.data_dir / "index"))
        assert live.loaded_from_snapshot == 0 and live.index.size == ledger_b.size
        live.close()
    finally:
        ledger_b.close()


def test_a_damaged_snapshot_is_refused_not_loaded(tmp_path: Path) -> None:
    records = generate(3, runs=20, corrections=2)
    source = ListRecords(records)
    index = TraceIndex(source)
    for seq, record in enumerate(records):
        index.apply(seq, record)
    parts = dump(index, [])
    n = index.graph.num_nodes()
    beyond = array("i", parts["edges.dst"])
    beyond[0] = n  # an edge to a node the snapshot does not have
    negative = array("i", parts["edges.src"])
    negative[0] = -1
    short = parts["edges.seq"][:-8]  # one seq missing
    # balance rows that point past their arrays, or loop back on themselves; a shipment row
    # naming a string the snapshot does not have
    head = array("i", parts["holdings.head"])
    head[0] = len(array("i", parts["holdings.key"]))
    looped = array("i", parts["holdings.next"])
    looped[0] = 0
    sender = array("i", parts["consignments.sender"])
    sender[0] = 10**6
    damaged = (
        ("edges.dst", beyond.tobytes()),
        ("edges.src", negative.tobytes()),
        ("edges.seq", short),
        ("holdings.head", head.tobytes()),
        ("holdings.next", looped.tobytes()),
        ("consignments.sender", sender.tobytes()),
    )
    for name, blob in damaged:
        with pytest.raises(ValueError):
            restore({**parts, name: blob}, source)
    restored, _ = restore(parts, source)
    assert restored.edge_list() == index.edge_list()
