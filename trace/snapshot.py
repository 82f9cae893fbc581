"""Snapshots of the trace index, so a restart loads the index and catches up instead of
replaying the whole log.

Derived state lives in its own LMDB environment (DATA_DIR/index), never in the ledger's: it
can be deleted at any time and is rebuilt from the log. A snapshot names the log size it covers
and the leaf hash of its last entry; if the log at that size has another leaf (a restored or
replaced data directory), the snapshot is ignored and the index is rebuilt.

The payload is a pickle of the index and its alerts. Pickle executes code when loaded, so a
snapshot is only ever read from the server's own data directory, which is trusted as much as
the log key stored beside it; it is never accepted from anywhere else.
"""

from __future__ import annotations

import logging
import pickle
import zlib
from dataclasses import dataclass
from pathlib import Path

import lmdb

from lotledger.trace.alerts import Alert
from lotledger.trace.index import TraceIndex

log = logging.getLogger("lotledger.trace")

FORMAT = b"lotledger-trace-snapshot/1"


@dataclass
class Snapshot:
    size: int
    leaf_hash: bytes
    index: TraceIndex
    alerts: list[Alert]


class SnapshotStore:
    def __init__(self, path: Path):
        path.mkdir(parents=True, exist_ok=True)
        # Derived and rebuildable: durability matters less than for the log, but a torn
        # snapshot must never load, which LMDB's transactions guarantee either way.
        self.env = lmdb.open(str(path), map_size=1 << 40, subdir=True, sync=True, metasync=True, max_dbs=1)

    def close(self) -> None:
        self.env.close()

    def save(self, index: TraceIndex, alerts: list[Alert], leaf_hash: bytes) -> int:
        """Write a snapshot of `index` (covering index.size entries); returns its size in bytes."""
        blob = zlib.compress(pickle.dumps((index, alerts), protocol=pickle.HIGHEST_PROTOCOL), 1)
        with self.env.begin(write=True) as txn:
            txn.put(b"format", FORMAT)
            txn.put(b"size", index.size.to_bytes(8, "big"))
            txn.put(b"leaf_hash", leaf_hash)
            txn.put(b"snapshot", blob)
        return len(blob)

    def load(self) -> Snapshot | None:
        """The stored snapshot, or None if there is none or it cannot be read."""
        with self.env.begin(buffers=False) as txn:
            if txn.get(b"format") != FORMAT:
                return None
            size = int.from_bytes(txn.get(b"size") or b"", "big")
            leaf = txn.get(b"leaf_hash") or b""
            blob = txn.get(b"snapshot")
        if blob is None:
            return None
        try:
            index, alerts = pickle.loads(zlib.decompress(blob))
        except Exception:  # noqa: BLE001 - a damaged snapshot is rebuilt, never fatal
            log.warning("trace snapshot unreadable; rebuilding from the log")
            return None
        if not isinstance(index, TraceIndex) or index.size != size:
            return None
        return Snapshot(size, leaf, index, alerts)
