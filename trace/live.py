"""Keeps a TraceIndex current with a live ledger: replays the log at start, then applies each
committed batch on its own thread, so appends never wait for indexing.

The index and its alerts are derived state: both are rebuilt from the entries and are
exactly as trustworthy as the log they come from.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import TypeVar

from lotledger.ledger.log import Ledger
from lotledger.ledger.validation import decode_record
from lotledger.trace.alerts import Alert, apply_and_check
from lotledger.trace.index import TraceIndex
from lotledger.v1 import records_pb2

log = logging.getLogger("lotledger.trace")
T = TypeVar("T")

_STOP = None


class LiveIndex:
    def __init__(self, ledger: Ledger, *, progress: Callable[[int], None] | None = None):
        self.index = TraceIndex()
        self.alerts: list[Alert] = []
        self._lock = threading.Lock()
        self._applied = threading.Condition(self._lock)
        self._queue: queue.SimpleQueue[list[tuple[int, records_pb2.Record]] | None] = queue.SimpleQueue()
        # Listen first, then replay: a commit in between is both replayed and announced,
        # and _apply skips what it has already seen.
        replay_to = ledger.add_commit_listener(self._queue.put)
        for start, chunk in ledger.entries(0, replay_to):
            batch = []
            for i, entry_bytes in enumerate(chunk):
                entry = records_pb2.Entry.FromString(entry_bytes)
                batch.append((start + i, decode_record(entry.signed_record.record_bytes)))
            self._apply(batch)
            if progress is not None:
                progress(start + len(chunk))
        self._thread = threading.Thread(target=self._follow, name="lotledger-indexer", daemon=True)
        self._thread.start()

    def _apply(self, batch: list[tuple[int, records_pb2.Record]]) -> None:
        with self._lock:
            for seq, record in batch:
                if seq < self.index.size:
                    continue
                if seq != self.index.size:
                    log.error("trace index expected entry %d, got %d", self.index.size, seq)
                self.alerts.extend(apply_and_check(self.index, seq, record))
            self._applied.notify_all()

    def _follow(self) -> None:
        while (batch := self._queue.get()) is not _STOP:
            try:
                self._apply(batch)
            except Exception:  # noqa: BLE001 - a bad record must not stop indexing the rest
                log.exception("trace index failed to apply a batch")

    def query(self, fn: Callable[[TraceIndex], T]) -> T:
        """Run a read-only query against a consistent index (no batch half-applied)."""
        with self._lock:
            return fn(self.index)

    def wait_for(self, size: int, timeout: float = 10.0) -> bool:
        """Wait until the index covers the first `size` entries."""
        with self._applied:
            return self._applied.wait_for(lambda: self.index.size >= size, timeout)

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(5)
