"""Every node's out-edges in two flat arrays (compressed sparse rows), for downstream closures.

A downstream trace of a raw lot reaches a few hundred nodes; asking rustworkx for each node's
out-edges costs a native call and a Python list per node, which was most of the trace. From
these arrays the edges of the whole closure come in a few numpy operations. The arrays are a
copy of the graph at one moment: the index keeps the edges added since beside them and drops
them whenever an edge is removed (rustworkx reuses removed edge indices), rebuilding them
later (TraceIndex.refresh_adjacency).
"""

from __future__ import annotations

from array import array

import numpy as np
import numpy.typing as npt


class OutEdges:
    """Edge indices grouped by source node: node n's are ids[ptr[n]:ptr[n + 1]], in edge index
    order. `edge_src` holds each edge's source, -1 for a removed edge."""

    def __init__(self, edge_src: array[int], nodes: int):
        src = np.array(edge_src, dtype=np.int32)  # a copy: no view may pin the growing array
        alive = np.flatnonzero(src >= 0).astype(np.int32)
        self.ids: npt.NDArray[np.int32] = alive[np.argsort(src[alive], kind="stable")]
        self.ptr: npt.NDArray[np.int64] = np.zeros(nodes + 1, dtype=np.int64)
        np.cumsum(np.bincount(src[alive], minlength=nodes), out=self.ptr[1:])
        self.nodes = nodes
        self.edges = len(alive)

    def gather(self, nodes: list[int]) -> list[int]:
        """The out-edges of `nodes` (node by node, in that order) as of the build."""
        wanted = np.array(nodes, dtype=np.int64)
        wanted = wanted[wanted < self.nodes]  # nodes added since have no edges here
        starts = self.ptr[wanted]
        counts = self.ptr[wanted + 1] - starts
        ends = np.cumsum(counts)
        positions = np.repeat(starts - (ends - counts), counts) + np.arange(ends[-1] if len(ends) else 0)
        found: list[int] = self.ids[positions].tolist()
        return found
