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
            assert out.gather([node]).tolist() == sorted(index.graph.out_edge_indices(node))
            assert into.gather([node]).tolist() == sorted(index.graph.in_edge_indices(node))
        assert out.gather([]).tolist() == []
        assert index.edge_columns(out.gather(every)) == tuple(
            map(list, index.edge_columns(sorted(index.graph.edge_indices())))
        )

    for i, record in enumerate(records):
        if i == corrections // 2:
            index.refresh_adjacency()
        if i == corrections:  # the arrays, plus the edges added since beside them
            assert index._adjacency is not None and index._adjacency[0].added > 0
            assert index._adjacency[1].added == index._adjacency[0].added
            agree()
        index.apply(source.append(record), record)
    assert index._adjacency is None  # a correction removed edges: the arrays were dropped
    agree()  # rebuilt on demand
    assert index._adjacency is not None and index._adjacency[0].added == 0
