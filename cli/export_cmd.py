"""The driver of `lotledger export`: streams a live log into a bundle file (ledger/bundle.py).
All I/O lives here; what a bundle holds and how it is read is in ledger/bundle.py."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lotledger.ledger.bundle import BundleWriter
from lotledger.ledger.client import LedgerClient
from lotledger.ledger.errors import StorageError


@dataclass(frozen=True)
class ExportReport:
    origin: str
    tree_size: int
    root_hash: bytes
    bytes_written: int
    seconds: float


def export_bundle(
    client: LedgerClient, out: Path, *, tree_size: int = 0, progress: Callable[[int], None] | None = None
) -> ExportReport:
    """Write the log up to its latest checkpoint (or the one issued at `tree_size`) to `out`.
    The file appears under its name only once complete and synced: an interrupted export
    leaves `out.partial`, never a bundle that looks whole."""
    started = time.monotonic()
    cp = client.checkpoint(tree_size)
    partial = out.with_name(out.name + ".partial")
    with partial.open("wb") as f:
        writer = BundleWriter(f, note=cp.note)
        for seq, entry in client.list_entries(0, cp.size):
            if seq != writer.entries:
                raise StorageError(f"the server sent entry {seq} where {writer.entries} was due")
            writer.entry(entry)
            if progress is not None and writer.entries % 10_000 == 0:
                progress(writer.entries)
        if writer.entries != cp.size:
            raise StorageError(f"the server sent {writer.entries} of the checkpoint's {cp.size} entries")
        writer.close()
        f.flush()
        os.fsync(f.fileno())
    partial.replace(out)
    return ExportReport(writer.origin, cp.size, cp.root_hash, out.stat().st_size, time.monotonic() - started)
