"""The driver of `lotledger restore DATA --from URL|DIR`: a primary's data directory rebuilt from
a tiled copy of its log (its own `serve --publish` directory, or a copy of it served anywhere),
verifying everything on the way, so that the restored server goes on appending with roots that
extend the copy's checkpoint.

Order of work, so that DATA either holds a whole, verified ledger or does not exist:
  1. the copy's checkpoint must verify with the log key, and the signing key given must be the
     one behind that verifier key (the restored server signs the next checkpoints with it);
  2. in one pass over the copy, every entry goes to the full verifier (ledger/verify: every
     signature, record, chain link, the key history, the root against the signed checkpoint;
     audit/tiles_http.py also checks every tile) and to a new store beside DATA
     (ledger/replica.py: the entries as signed, the indexes the writer derives);
  3. only when the whole log verified: the checkpoint is stored, the store is checked index by
     index against its entries (ledger/fsck.py check_store), the log key and log.vkey are written,
     and the directory is renamed to DATA. Any failure removes what was built.

What the copy lacks is lost: entries acknowledged after the copy's checkpoint (the recovery
point, docs/scaling.md). Restoring into a DIR the old primary published ahead of the copy is
refused by `serve --publish` (it would fork what readers saw).
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lotledger.audit.tiles_http import TeeSource, TilesSource, TileStore
from lotledger.audit.verify import verify_log
from lotledger.ledger.errors import RequestError
from lotledger.ledger.fsck import check_store
from lotledger.ledger.replica import ReplicaWriter
from lotledger.ledger.verify.verifier import open_signed_checkpoint
from lotledger.signing.files import atomic_write, fsync_dir
from lotledger.signing.keys import SigningKey
from lotledger.signing.note import NoteSigner, NoteVerifier

BATCH = 2000  # entries per write transaction of the new store


@dataclass(frozen=True)
class RestoreReport:
    data_dir: Path
    origin: str
    tree_size: int
    root_hash: bytes
    seconds: float


def own_signature_only(note: bytes, origin: str) -> bytes:
    """The checkpoint note with the log's own signature line and no witness cosignatures: the
    store keeps cosignatures apart (a witness's is kept again when it cosigns anew)."""
    body, _, signatures = note.partition(b"\n\n")
    mine = [line for line in signatures.split(b"\n") if line.startswith(f"\u2014 {origin} ".encode())]
    return body + b"\n\n" + b"".join(line + b"\n" for line in mine)


def restore(
    data_dir: Path,
    store: TileStore,
    log_key: NoteVerifier,
    signing_key: SigningKey,
    signing_key_pem: bytes,
    *,
    progress: Callable[[int], None] | None = None,
) -> RestoreReport:
    """Rebuild `data_dir` from the tiled log in `store` (module doc). `signing_key_pem` is the
    log key file as given (kept as it is, encrypted or not).

    Raises RequestError (DATA exists and is not empty; the signing key is not the log's),
    VerificationFailed (the copy fails any check: DATA is not created), Unavailable (the copy
    cannot be reached), StorageError, OSError."""
    started = time.monotonic()
    data_dir = Path(data_dir)
    if data_dir.exists() and (not data_dir.is_dir() or any(data_dir.iterdir())):
        raise RequestError(f"{data_dir} exists and is not empty: restore makes a new data directory")
    note = store.checkpoint()
    cp = open_signed_checkpoint(note, log_key)
    if NoteSigner(cp.origin, signing_key).verifier_key != log_key.verifier_key:
        raise RequestError(
            "--log-signing-key is not the key behind --log-key: the restored server could not sign this log's "
            "checkpoints"
        )
    parent = data_dir.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    building = parent / f".{data_dir.name}.restore-{secrets.token_hex(6)}"
    building.mkdir()
    try:
        (building / "keys").mkdir()
        writer = ReplicaWriter(building / "ledger", cp.origin, signing_key.public.raw)
        try:
            source = TilesSource(store, note)
            try:
                report = verify_log(TeeSource(source, writer.add, batch=BATCH), log_key, progress=progress)
            finally:
                source.close()
            writer.add_checkpoint(report.size, own_signature_only(note, cp.origin))
            check_store(writer.store, log_key)
        finally:
            writer.close()
        atomic_write(building / "keys" / "log.key", signing_key_pem, mode=0o600, exact_mode=True, sync_dir=False)
        atomic_write(building / "log.vkey", f"{log_key.verifier_key}\n".encode(), sync_dir=False)
        for directory in (building / "keys", building / "ledger", building):
            fsync_dir(directory)
        if data_dir.exists():
            data_dir.rmdir()  # empty (checked above)
        os.rename(building, data_dir)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    fsync_dir(parent)
    return RestoreReport(data_dir, cp.origin, report.size, report.root_hash, time.monotonic() - started)
