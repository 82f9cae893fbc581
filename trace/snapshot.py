"""Snapshots of the trace index, so a restart loads the index and catches up instead of
replaying the whole log.

Derived state lives in its own LMDB environment (DATA_DIR/index), never in the ledger's: it
can be deleted at any time and is rebuilt from the log. A snapshot names the log size it covers
and the leaf hash of its last entry; if the log at that size has another leaf (a restored or
replaced data directory), the snapshot is ignored and the index is rebuilt.

The format is plain data, never code: the index's flat arrays as raw machine words (the edges
are five of them), node labels and the few sparse maps as JSON. Loading it is a few bulk
copies (about a second at a million lots) and cannot execute anything, so a damaged or
planted snapshot can at worst be refused, never run.
"""

from __future__ import annotations

import json
import logging
import sys
from array import array
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lmdb
import numpy as np

from lotledger.ledger.errors import StorageError
from lotledger.trace.alerts import Alert
from lotledger.trace.index import TraceIndex
from lotledger.trace.records import Records

log = logging.getLogger("lotledger.trace")

FORMAT = f"lotledger-trace-snapshot/6 {sys.byteorder}".encode()

# Per-edge arrays (TraceIndex.edge_<name>), saved in edge index order: (name, typecode).
_EDGE_ARRAYS = {"src": "i", "dst": "i", "seq": "q", "amount": "q", "unit": "i"}

# Flat arrays saved as they are: (attribute path, typecode).
_ARRAYS = {
    "qc_seq": "q",
    "expiry": "i",
    "shipment_seq": "q",
    "fact_head": "q",
    "fact_seq": "q",
    "fact_next": "q",
    "seq_time": "q",
    "holdings.head": "i",
    "holdings.key": "i",
    "holdings.next": "i",
    "holdings.received": "q",
    "holdings.consumed": "q",
    "holdings.shipped": "q",
    "consignments.row": "i",
    "consignments.sender": "i",
    "consignments.consignee": "i",
    "consignments.to_location": "i",
    "consignments.at": "q",
    "consignments.docs_at": "q",
    "consignments.docs_len": "i",
}

# Byte arrays saved as they are.
_BYTES = ("qc", "scanned", "consignments.exact", "consignments.docs")


@dataclass
class Snapshot:
    size: int
    leaf_hash: bytes
    index: TraceIndex
    alerts: list[Alert]


def _get(index: TraceIndex, path: str) -> Any:
    obj: Any = index
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _set(index: TraceIndex, path: str, value: Any) -> None:
    owner, _, name = path.rpartition(".")
    setattr(_get(index, owner) if owner else index, name, value)


def dump(index: TraceIndex, alerts: list[Alert]) -> dict[str, bytes]:
    """The index as named byte strings."""
    parts = {"labels": json.dumps(index.labels).encode()}
    for path in _BYTES:
        parts[path] = bytes(_get(index, path))
    # Edge arrays are keyed by edge index, which has holes after corrections; a restore numbers
    # the edges 0.. in edge index order, so the arrays are saved in that order without holes.
    ids = index.graph.edge_indices()
    for name, code in _EDGE_ARRAYS.items():
        column = getattr(index, f"edge_{name}")
        if len(ids) != len(column):
            column = array(code, map(column.__getitem__, ids))
        parts[f"edges.{name}"] = column.tobytes()
    for path in _ARRAYS:
        parts[path] = _get(index, path).tobytes()
    sparse = {
        "size": index.size,
        "recalled": sorted(index.recalled.items()),
        "receivers": sorted(index.receivers.items()),
        "supplier_lots": index.supplier_lots,
        "retracted": sorted(index.retracted),
        "superseded": sorted(index.superseded.items()),
        "units": index.units,
        "owners": index.owners,
        "packed": index.packed,
        "line_run": index.line_run,
        "holding_keys": index.holdings.keys,
        "holding_big": sorted(index.holdings.big.items()),
        "holding_unlinked": [[n, h, u, v] for n, held in index.holdings.unlinked.items() for (h, u), v in held.items()],
        "strings": index.consignments.strings,
        "scan_locations": sorted(index.scan_locations),
        "scan_context_moved": index.scan_context_moved,
        "alerts": [asdict(a) for a in alerts],
    }
    parts["sparse"] = json.dumps(sparse).encode()
    return parts


def restore(parts: dict[str, bytes], records: Records) -> tuple[TraceIndex, list[Alert]]:
    """The inverse of dump. Raises ValueError (or KeyError) on anything inconsistent."""
    index = TraceIndex(records)
    labels: list[str] = json.loads(parts["labels"])
    index.graph.add_nodes_from([None] * len(labels))
    index.labels = labels
    index.nodes = {label: i for i, label in enumerate(labels)}
    for name, code in _EDGE_ARRAYS.items():
        setattr(index, f"edge_{name}", array(code, parts[f"edges.{name}"]))
    if len({len(getattr(index, f"edge_{name}")) for name in _EDGE_ARRAYS}) != 1:
        raise ValueError("edge arrays differ in length")
    n = len(labels)
    try:
        index.graph.extend_from_edge_list(list(zip(index.edge_src, index.edge_dst, strict=True)))
    except OverflowError as e:  # a negative node index
        raise ValueError("an edge names a node the snapshot does not have") from e
    if index.graph.num_nodes() != n:  # rustworkx adds the nodes an edge names beyond the last
        raise ValueError("an edge names a node the snapshot does not have")
    for path in _BYTES:
        _set(index, path, bytearray(parts[path]))
    for path, code in _ARRAYS.items():
        _set(index, path, array(code, parts[path]))
    h, c = index.holdings, index.consignments
    per_node = [index.qc, index.qc_seq, index.expiry, index.shipment_seq, index.fact_head, index.scanned, h.head, c.row]
    if any(len(a) != n for a in per_node):
        raise ValueError("per-node arrays do not match the node count")
    if len({len(a) for a in (h.key, h.next, h.received, h.consumed, h.shipped)}) != 1:
        raise ValueError("holding arrays differ in length")
    ship_rows = (c.sender, c.consignee, c.to_location, c.at, c.docs_at, c.docs_len, c.exact)
    if len({len(a) for a in ship_rows}) != 1:
        raise ValueError("consignment arrays differ in length")
    sparse = json.loads(parts["sparse"])
    index.size = sparse["size"]
    index.recalled = {int(k): v for k, v in sparse["recalled"]}
    index.receivers = {int(k): v for k, v in sparse["receivers"]}
    index.supplier_lots = sparse["supplier_lots"]
    index.retracted = set(sparse["retracted"])
    index.superseded = {int(k): int(v) for k, v in sparse["superseded"]}
    for unit in sparse["units"]:
        index.unit_id(unit)
    index.owners = sparse["owners"]
    index.packed = sparse["packed"]
    index.line_run = sparse["line_run"]
    h.restore_keys(sparse["holding_keys"])
    h.big = {int(row): [int(v) for v in sums] for row, sums in sparse["holding_big"]}
    for node, holder, unit, value in sparse["holding_unlinked"]:
        h.unlinked.setdefault(node, {})[(holder, unit)] = value
    c.restore_strings(sparse["strings"])
    _check_rows(index)
    index.scan_locations = set(sparse["scan_locations"])
    index.scan_context_moved = bool(sparse["scan_context_moved"])
    return index, [Alert(**a) for a in sparse["alerts"]]


def _within(values: array[int], low: int, high: int) -> bool:
    a = np.frombuffer(values, dtype=values.typecode)
    return not len(a) or bool(a.min() >= low and a.max() < high)


def _check_rows(index: TraceIndex) -> None:
    """Refuse row numbers that point outside their arrays, or a lot's rows that could loop
    (each row links only to an older one), so that no query of a loaded index can fail or
    hang on them. Raises ValueError."""
    h, c = index.holdings, index.consignments
    rows, ships = len(h.key), len(c.sender)
    older = np.frombuffer(h.next, dtype=np.int32) < np.arange(rows, dtype=np.int32)
    if not (
        _within(h.head, -1, rows)
        and _within(h.next, -1, rows)
        and bool(older.all())
        and _within(h.key, 0, len(h.keys))
        and _within(c.row, -1, ships)
        and all(_within(col, 0, len(c.strings)) for col in (c.sender, c.consignee, c.to_location))
        and _within(c.docs_at, 0, len(c.docs) + 1)
        and _within(c.docs_len, 0, len(c.docs) + 1)
        and bool(
            (np.frombuffer(c.docs_at, dtype=np.int64) + np.frombuffer(c.docs_len, dtype=np.int32) <= len(c.docs)).all()
        )
    ):
        raise ValueError("a balance or shipment row points outside its arrays")


class SnapshotStore:
    def __init__(self, path: Path):
        path.mkdir(parents=True, exist_ok=True)
        # Derived and rebuildable: durability matters less than for the log, but a torn
        # snapshot must never load, which LMDB's transactions guarantee either way.
        self.env = lmdb.open(str(path), map_size=1 << 40, subdir=True, sync=True, metasync=True, max_dbs=1)

    def close(self) -> None:
        self.env.close()

    def save(self, index: TraceIndex, alerts: list[Alert], leaf_hash: bytes) -> int:
        """Write a snapshot of `index` (covering index.size entries); returns its size in bytes.
        Raises StorageError (a full disk among others: the snapshot is derived, so the caller
        may carry on without it; the log is not touched)."""
        parts = dump(index, alerts)
        try:
            with self.env.begin(write=True) as txn:
                txn.drop(self.env.open_db(), delete=False)
                txn.put(b"format", FORMAT)
                txn.put(b"size", index.size.to_bytes(8, "big"))
                txn.put(b"leaf_hash", leaf_hash)
                for name, blob in parts.items():
                    txn.put(b"part/" + name.encode(), blob)
        except lmdb.Error as e:
            raise StorageError(f"the trace snapshot was not written: {e}") from e
        return sum(len(b) for b in parts.values())

    def load(self, records: Records) -> Snapshot | None:
        """The stored snapshot, or None if there is none or it cannot be read."""
        with self.env.begin(buffers=False) as txn:
            if txn.get(b"format") != FORMAT:
                return None
            size = int.from_bytes(txn.get(b"size") or b"", "big")
            leaf = txn.get(b"leaf_hash") or b""
            parts = {k[5:].decode(): v for k, v in txn.cursor() if k.startswith(b"part/")}
        try:
            index, alerts = restore(parts, records)
        except (ValueError, KeyError, TypeError) as e:
            log.warning("trace snapshot unreadable (%s); rebuilding from the log", e)
            return None
        if index.size != size:
            return None
        return Snapshot(size, leaf, index, alerts)
