"""The edge arrays (trace/csr.py) give exactly the edges rustworkx gives, both ways: as built,
with edges added beside them, and once a correction has removed edges."""

from __future__ import annotations

from supply_chain import generate

from lotledger.trace.index import TraceIndex
from lotledger.trace.records import ListRecords


def test_edge_arrays_agree_with_the_graph_before_and_after_corrections() -> None:
    records = generate(7, runs=60, corrections=5)
    source = ListRecords()
    index = TraceIndex(source)
    corrections = next(i for i, r in enumerate(records) if r.WhichOneof("body") == "correction")

    def agree() -> None:
        out, into = index.adjacency(True), index.adjacency(False)
        every = list(range(len(index.labels)))
        assert out.gather(every).tolist() == sorted(index.graph.edge_indices())
        assert into.gather(every).tolist() == sorted(index.graph.edge_indices())
        for node in every:
            assert out.of(node) == sorted(index.graph.out_edge_indices(node))
            assert into.of(node) == sorted(index.graph.in_edge_indices(node))
            assert out.gather([node]).tolist() == out.of(node)
        assert out.gather([]).tolist() == []
        assert index.edge_columns(out.gather(every)) == tuple(
            map(list, index.edge_columns(sorted(index.graph.edge_indices())))
        )

    for i, record in enumerate(records):
        if i == corrections // 2:
            index.refresh_adjacency()
        if i == corrections:  # the arrays, plus the edges added since beside them
            assert index.out_adj is not None and index.out_adj.added > 0
            assert index.in_adj is not None and index.in_adj.added == index.out_adj.added
            agree()
        index.apply(source.append(record), record)
    assert index.out_adj is None and index.in_adj is None  # a correction removed edges: dropped
    agree()  # rebuilt on demand
    assert index.out_adj is not None and index.out_adj.added == 0
