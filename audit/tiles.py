"""The driver of `lotledger export-tiles DIR`: the log as a static C2SP tlog-tiles directory
(format and tile math in ledger/tlog/tiles.py; the file steps it shares with live publication,
`serve --publish`, in ledger/publish.py), written incrementally. All I/O lives here.

Order of work, so that DIR is always a complete tiled log of the checkpoint it holds:
  1. lock DIR (one export at a time), fetch the server's latest checkpoint and read DIR's;
     with --log-key both signatures must verify;
  2. if DIR has a checkpoint: same origin, not larger than the server's, and the server's
     consistency proof from it must verify (RFC 9162, ledger/tlog/merkle.py) against the two signed
     roots; then DIR's partial tiles are read back and must rebuild DIR's own root. Any
     failure raises VerificationFailed before anything is written;
  3. only the entries after DIR's size are fetched; new full tiles and bundles are written as
     they complete, then the new partial ones; each file goes to a temporary name, is synced,
     then renamed. A file that already exists (left by an interrupted run) is kept if it holds
     the same bytes and refused otherwise: no published file is ever rewritten;
  4. the tiles must rebuild the signed root; only then is `checkpoint` replaced (temporary
     file, sync, rename, sync DIR), last;
  5. partial tiles whose full tile now exists are deleted (the spec allows it; clients fall
     back to the full tile).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lotledger.ledger.errors import RequestError, StorageError, VerificationFailed
from lotledger.ledger.publish import TileFiles, dir_fetcher, prune_partials, write_synced
from lotledger.ledger.tlog import tiles
from lotledger.ledger.verify.verifier import check_consistency, open_signed_checkpoint
from lotledger.rpc.client import LedgerClient
from lotledger.signing.errors import SigningError
from lotledger.signing.files import ExclusiveLock, LockHeld, exclusive_lock
from lotledger.signing.note import Checkpoint, NoteVerifier, parse_note


@dataclass(frozen=True)
class TilesReport:
    origin: str
    tree_size: int
    root_hash: bytes
    previous_size: int | None  # DIR's checkpoint before the run (None: there was none)
    entries_fetched: int
    files_written: int
    files_kept: int  # already in DIR with the same bytes (an interrupted run's)
    partials_pruned: int
    bytes_written: int
    seconds: float


def _open(note: bytes, log_key: NoteVerifier | None, what: str) -> Checkpoint:
    """The checkpoint in `note`: signature-checked with the log key if we have it, else only
    parsed (the tiles are still checked against its root). Raises VerificationFailed."""
    if log_key is not None:
        try:
            return open_signed_checkpoint(note, log_key)
        except VerificationFailed as e:
            raise VerificationFailed(f"{what}: {e.message}", reason=e.reason) from e
    try:
        return Checkpoint.from_body(parse_note(note)[0])
    except SigningError as e:
        raise VerificationFailed(f"{what} is not a checkpoint note: {e}", reason="BAD_CHECKPOINT") from e


def _locked(directory: Path) -> ExclusiveLock:
    """An exclusive lock on DIR itself (no lock file in what gets served). Raises RequestError
    (not a usage error: the request is sound, DIR is busy) when another export holds it."""
    try:
        return exclusive_lock(directory)
    except LockHeld as e:
        raise RequestError(f"{directory}: another export-tiles is writing it", usage=False) from e


def export_tiles(
    client: LedgerClient,
    out: Path,
    *,
    log_key: NoteVerifier | None = None,
    progress: Callable[[int], None] | None = None,
) -> TilesReport:
    """Bring DIR `out` up to the server's latest checkpoint as a tlog-tiles directory.

    Raises VerificationFailed when DIR cannot be extended to the server's log (another origin,
    a larger or inconsistent checkpoint, tiles that do not match DIR's checkpoint, a conflicting
    file) or the server's entries do not match its signed root; RecordTooLarge for an entry a
    bundle cannot hold; RequestError when another export-tiles holds DIR; StorageError/Unavailable
    when the server fails; OSError for DIR."""
    started = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    with _locked(out):
        new_note = client.checkpoint().note
        new = _open(new_note, log_key, "the server's checkpoint")
        cp_path = out / tiles.CHECKPOINT_PATH
        old_note = cp_path.read_bytes() if cp_path.exists() else None
        old = _open(old_note, log_key, str(cp_path)) if old_note is not None else None

        builder = tiles.TileBuilder()
        if old is not None:
            if old.origin != new.origin:
                raise VerificationFailed(
                    f"{out} holds the log {old.origin!r}, the server serves {new.origin!r}", reason="ORIGIN_MISMATCH"
                )
            if old.size > new.size:
                raise VerificationFailed(
                    f"{out}'s checkpoint (size {old.size}) is ahead of the server's latest (size {new.size}): "
                    "refusing to roll it back",
                    reason="NOT_CONSISTENT",
                )
            if old.size > 0:
                proof = [] if old.size == new.size else list(client.consistency_proof(old.size, new.size).proof)
                check_consistency(old, new, proof)
            try:
                builder = tiles.TileBuilder.resume(old.size, dir_fetcher(out, old.size))
            except VerificationFailed as e:
                raise VerificationFailed(f"{out}/{e.message}", reason=e.reason) from e
            if builder.root() != old.root_hash:
                raise VerificationFailed(
                    f"{out}'s partial tiles do not rebuild the root of its own checkpoint (size {old.size})",
                    reason="ROOT_MISMATCH",
                )

        start = builder.size
        files = TileFiles(out)
        if new.size > start:
            for seq, entry in client.list_entries(start, new.size):
                if seq != builder.size:
                    raise StorageError(f"the server sent entry {seq} where {builder.size} was due")
                for tile, data in builder.append(entry):
                    files.put(tile, data)
                if progress is not None and (builder.size - start) % 10_000 == 0:
                    progress(builder.size - start)
        if builder.size != new.size:
            raise StorageError(f"the server sent {builder.size - start} of the {new.size - start} entries due")
        unchanged = set(tiles.partial_tiles(start))
        for tile, data in builder.partial():
            if tile not in unchanged:
                files.put(tile, data)
        if builder.root() != new.root_hash:
            raise VerificationFailed(
                f"the server's entries {start}..{new.size - 1} do not rebuild the root of its signed checkpoint; "
                f"{out}/checkpoint is unchanged (the tiles written past size {start} are covered by no checkpoint)",
                reason="ROOT_MISMATCH",
            )
        files.sync_dirs()
        if new_note != old_note:
            write_synced(cp_path, new_note, sync_dir=True)
        pruned = prune_partials(out, start, new.size)
    return TilesReport(
        new.origin,
        new.size,
        new.root_hash,
        old.size if old is not None else None,
        new.size - start,
        files.written,
        files.kept,
        pruned,
        files.nbytes,
        time.monotonic() - started,
    )
