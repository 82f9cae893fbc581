"""Every node's edges, one way, in two flat arrays (compressed sparse rows), for traversals.

Asking rustworkx for a node's in- or out-edges costs a native call, a Python object and a walk
along petgraph's per-node linked list, whose links lie wherever the edges were added: at a
million lots that is cache misses on every step, and it was most of a trace. Here a node's
edges sit next to each other. A walk in Python slices them out of an `array` (which hands back
plain ints, cheaply); a whole closure's edges come in a few numpy operations on views of the
same memory.

The arrays are a copy of the graph at one moment: edges added since are kept beside them, and
any removed edge drops them (rustworkx reuses removed edge indices), until TraceIndex
rebuilds them (`TraceIndex.refresh_adjacency`).
"""

from __future__ import annotations

from array import array
from itertools import chain

import numpy as np
import numpy.typing as npt


class Adjacency:
    """Edge indices grouped by one endpoint (`key`: each edge's source for out-edges, its
    target for in-edges; -1 for a removed edge): node n's are ids[ptr[n]:ptr[n + 1]] in edge
    index order, then recent.get(n) for the ones added since."""

    def __init__(self, key: array[int], nodes: int):
        k = np.array(key, dtype=np.int32)  # a copy: no view may pin the growing array
        alive = np.flatnonzero(k >= 0).astype(np.int32)
        ptr = np.zeros(nodes + 1, dtype=np.int64)
        np.cumsum(np.bincount(k[alive], minlength=nodes), out=ptr[1:])
        # The arrays own the memory; the numpy views read it in place (neither ever resizes).
        self.ids = array("i", alive[np.argsort(k[alive], kind="stable")].tobytes())
        self.ptr = array("q", ptr.tobytes())
        self._ids: npt.NDArray[np.int32] = np.frombuffer(self.ids, dtype=np.int32)
        self._ptr: npt.NDArray[np.int64] = np.frombuffer(self.ptr, dtype=np.int64)
        self.nodes = nodes  # nodes added since have only recent edges
        self.edges = len(alive)
        self.recent: dict[int, list[int]] = {}
        self.added = 0

    def add(self, node: int, edge: int) -> None:
        self.recent.setdefault(node, []).append(edge)
        self.added += 1

    def gather(self, nodes: list[int]) -> npt.NDArray[np.int32]:
        """The edges of all of `nodes`, in edge index order."""
        wanted = np.array(nodes, dtype=np.int64)
        wanted = wanted[wanted < self.nodes]
        starts = self._ptr[wanted]
        counts = self._ptr[wanted + 1] - starts
        ends = np.cumsum(counts)
        positions = np.repeat(starts - (ends - counts), counts) + np.arange(ends[-1] if len(ends) else 0)
        found: npt.NDArray[np.int32] = self._ids[positions]
        if self.recent:
            more = list(chain.from_iterable(self.recent[n] for n in self.recent.keys() & nodes))
            found = np.concatenate([found, np.array(more, dtype=np.int32)])
        found.sort()
        return found
