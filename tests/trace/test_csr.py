"""The out-edge arrays (trace/csr.py) give exactly the edges rustworkx gives, as built, with
edges added beside them, and once a correction has removed edges."""

from __future__ import annotations

from supply_chain import generate

from lotledger.trace.index import TraceIndex
from lotledger.trace.records import ListRecords


def test_out_edges_agree_with_the_graph_before_and_after_corrections() -> None:
    records = generate(7, runs=60, corrections=5)
    plain, fast = ListRecords(), ListRecords()
    without, with_arrays = TraceIndex(plain), TraceIndex(fast)
    corrections = next(i for i, r in enumerate(records) if r.WhichOneof("body") == "correction")

    def agree() -> None:
        every = list(range(len(without.labels)))
        assert with_arrays.out_edge_ids(every) == without.out_edge_ids(every)
        for node in every:
            assert with_arrays.out_edge_ids([node]) == sorted(without.graph.out_edge_indices(node))

    for i, record in enumerate(records):
        if i == corrections // 2:
            with_arrays.refresh_adjacency()
        if i == corrections:  # the arrays, plus the edges added since beside them
            assert with_arrays.out_csr is not None and with_arrays.recent_edges > 0
            agree()
        without.apply(plain.append(record), record)
        with_arrays.apply(fast.append(record), record)
    assert with_arrays.out_csr is None  # a correction removed edges: the arrays were dropped
    agree()
    with_arrays.refresh_adjacency()
    assert with_arrays.out_csr is not None and with_arrays.recent_edges == 0
    agree()
    assert with_arrays.out_csr.gather([]) == []
