"""The driver of `lotledger export`: streams a live log into a bundle file (ledger/tlog/bundle.py).
All I/O lives here; what a bundle holds and how it is read is in ledger/tlog/bundle.py."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lotledger.ledger.errors import NotFound, RequestError, StorageError
from lotledger.ledger.tlog.bundle import BundleWriter, Increment
from lotledger.rpc.client import LedgerClient
from lotledger.signing.files import atomic_file


@dataclass(frozen=True)
class ExportReport:
    origin: str
    tree_size: int
    root_hash: bytes
    bytes_written: int
    seconds: float
    from_size: int = 0
    key_entries: int = 0


def export_bundle(
    client: LedgerClient,
    out: Path,
    *,
    tree_size: int = 0,
    from_size: int = 0,
    progress: Callable[[int], None] | None = None,
) -> ExportReport:
    """Write the log up to its latest checkpoint (or the one issued at `tree_size`) to `out`:
    the whole log, or with `from_size` an increment from the checkpoint the log issued at that
    size (ledger/tlog/bundle.py): its prior checkpoint, the consistency proof from it, the last leaf
    before it and the key history, each with its proof, then the entries from `from_size`.
    The file appears under its name only once complete and synced: an interrupted export
    leaves `out.partial`, never a bundle that looks whole. Nothing the server sends is trusted
    here either: the verifier checks every proof.

    Raises RequestError (usage) when `tree_size` or `from_size` is not the size of a checkpoint
    the log issued, or `from_size` lies beyond `tree_size`; NotFound when the log has no
    checkpoint at all; StorageError or Unavailable (the server or the network); OSError for `out`."""
    started = time.monotonic()
    try:
        cp = client.checkpoint(tree_size)
    except NotFound as e:
        if not tree_size:
            raise
        raise RequestError(
            f"--to {tree_size}: the log issued no checkpoint at tree size {tree_size}; a bundle ends at a signed "
            "checkpoint (`lotledger checkpoint --json` shows the latest; omit --to for it)"
        ) from e
    increment = _increment(client, from_size, cp.size) if from_size else None
    with atomic_file(out, temp=out.with_name(out.name + ".partial")) as f:
        writer = BundleWriter(f, note=cp.note, increment=increment)
        if increment is not None:
            for seq, entry in client.list_admin_entries(0, from_size):
                writer.key_entry(seq, entry, list(client.inclusion_proof(seq, from_size).proof))
        for seq, entry in client.list_entries(from_size, cp.size):
            if seq != from_size + writer.entries:
                raise StorageError(f"the server sent entry {seq} where {from_size + writer.entries} was due")
            writer.entry(entry)
            if progress is not None and writer.entries % 10_000 == 0:
                progress(writer.entries)
        if writer.entries != cp.size - from_size:
            raise StorageError(
                f"the server sent {writer.entries} of the {cp.size - from_size} entries from {from_size} to {cp.size}"
            )
        writer.close()
    return ExportReport(
        writer.origin,
        cp.size,
        cp.root_hash,
        out.stat().st_size,
        time.monotonic() - started,
        from_size,
        writer.key_entries,
    )


def _increment(client: LedgerClient, from_size: int, tree_size: int) -> Increment:
    """The frames an increment from `from_size` to `tree_size` starts with, as the server gives them.
    Raises RequestError (usage) when `from_size` is beyond `tree_size` or no checkpoint's size."""
    if from_size > tree_size:
        raise RequestError(f"--from {from_size} lies beyond the checkpoint the bundle ends at ({tree_size} entries)")
    try:
        prior = client.checkpoint(from_size)
    except NotFound as e:
        raise RequestError(
            f"--from {from_size}: the log issued no checkpoint at tree size {from_size}; an increment starts at a "
            "checkpoint the regulator already holds (the tree size of the last bundle or state they verified)"
        ) from e
    proof = list(client.consistency_proof(from_size, tree_size).proof) if from_size < tree_size else []
    last = client.inclusion_proof(from_size - 1, from_size)
    return Increment(prior.note, proof, last.leaf_hash, list(last.proof))
