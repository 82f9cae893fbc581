"""Live publication: a C2SP tlog-tiles directory (ledger/tlog/tiles.py) kept up to date with the
ledger's checkpoints while the server runs (`lotledger serve DATA --publish DIR`).

Why a follower and not a step of the writer: an acknowledgement waits for one durable LMDB
commit and nothing else. The publisher is a thread that only *reads* committed entries (its own
read transactions, which never block the writer) after each new checkpoint, so a slow or full
publication disk costs readers freshness, never a client its ack.

Order of work per checkpoint, so that DIR is always a complete tiled log of the checkpoint it
holds (the same order as `export-tiles`, audit/tiles.py, which shares the file steps below):
  1. the tiles the new size adds (tiles.new_tiles: full tiles completed since DIR's size, the
     new partial ones) are read from the store and written, each whole or not at all
     (signing/files.py atomic_write), their directories synced once;
  2. the tiles must rebuild the checkpoint's root; only then is `checkpoint` replaced, last,
     atomically: a reader never sees a checkpoint whose tiles are missing or a torn file;
  3. partial tiles whose full tile now exists are deleted (the spec allows it).

After a crash (SIGKILL mid-publication) DIR holds its last checkpoint, every tile it needs, and
perhaps tiles beyond it that no checkpoint covers yet. `Publisher.start` repairs it: DIR's
checkpoint must verify with the log's own key and be one this ledger issued (a DIR ahead of
the ledger, or of another history, is refused: publishing over it would show readers a fork);
DIR's partial tiles must rebuild that checkpoint's root, else they are rewritten from the
store; files beyond DIR's checkpoint are rewritten when they differ (no published checkpoint
ever covered them).
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from lotledger.ledger.errors import RequestError, StorageError, VerificationFailed
from lotledger.ledger.log import SignedCheckpoint
from lotledger.ledger.store import Store, tree_key, u64
from lotledger.ledger.tlog import tiles
from lotledger.ledger.verify.verifier import open_signed_checkpoint
from lotledger.signing.files import ExclusiveLock, LockHeld, atomic_write, exclusive_lock, fsync_dir
from lotledger.signing.note import Checkpoint, NoteVerifier

log = logging.getLogger("lotledger.publish")

__all__ = ["Publisher", "TileFiles", "dir_fetcher", "prune_partials", "write_synced"]


def write_synced(path: Path, data: bytes, *, sync_dir: bool) -> None:
    """Write `path` whole or not at all (signing/files.py), through a hidden temporary name
    that an interrupted run leaves for the next to overwrite (never served: it starts with a
    dot, and the generated nginx config refuses dot files)."""
    atomic_write(path, data, temp=path.with_name(f".{path.name}.tmp"), sync_dir=sync_dir)


class TileFiles:
    """Puts tile files into a directory and remembers the directories to sync.

    `overwrite`: what to do with a file that exists with other bytes. False (export-tiles):
    refuse, since it cannot tell who wrote it. True (the publisher, for files past DIR's
    checkpoint only): replace it, since no published checkpoint covered it."""

    def __init__(self, root: Path, *, overwrite: bool = False) -> None:
        self.root = root
        self.overwrite = overwrite
        self.written = self.kept = self.replaced = self.nbytes = 0
        self.dirs: set[Path] = set()

    def put(self, tile: tiles.TileId, data: bytes) -> None:
        """Raises VerificationFailed (TILE_CONFLICT) if the file exists with other bytes and
        `overwrite` is off; OSError."""
        path = self.root / tile.path
        try:
            existing = path.read_bytes()
        except FileNotFoundError:
            existing = None
        if existing is not None:
            if existing == data:
                self.kept += 1
                return
            if not self.overwrite:
                raise VerificationFailed(
                    f"{path} exists and differs from this log's {tile.path}; no checkpoint in {self.root} covers it "
                    "(left by an interrupted export of another history?): check it, remove it, and run again",
                    reason="TILE_CONFLICT",
                )
            log.warning("%s differed from this log's tile (no checkpoint covered it): replaced", path)
            self.replaced += 1
        if not path.parent.is_dir():
            path.parent.mkdir(parents=True)
            self.dirs.update(p for p in path.parent.parents if p.is_relative_to(self.root))
        write_synced(path, data, sync_dir=False)  # sync_dirs() syncs each directory once, at the end
        self.dirs.add(path.parent)
        self.written += 1
        self.nbytes += len(data)

    def sync_dirs(self) -> None:
        for d in sorted(self.dirs, key=lambda p: len(p.parts), reverse=True):
            fsync_dir(d)
        self.dirs.clear()


def dir_fetcher(root: Path, size: int) -> Callable[[str], bytes]:
    """A tiles.Fetch over a directory; a missing file is VerificationFailed (MISSING_TILE)."""

    def fetch(path: str) -> bytes:
        try:
            return (root / path).read_bytes()
        except FileNotFoundError as e:
            raise VerificationFailed(
                f"{path} is missing, but the checkpoint of size {size} needs it", reason="MISSING_TILE"
            ) from e

    return fetch


def prune_partials(root: Path, old_size: int, new_size: int) -> int:
    """Delete the partial versions of every tile that became full between the two sizes
    (the spec allows it once the full tile exists); returns how many files went."""
    pruned = 0
    for tile in tiles.new_tiles(old_size, new_size):
        partials = root / tile.partials_dir
        if tile.full and partials.is_dir():
            pruned += sum(1 for p in partials.iterdir() if not p.name.startswith("."))
            shutil.rmtree(partials)
    return pruned


class PublishedLog(Protocol):
    """What the publisher reads: a Ledger, or a mirror's replica (audit/mirror.py)."""

    origin: str
    size: int
    store: Store
    latest_checkpoint: SignedCheckpoint | None

    @property
    def log_verifier_key(self) -> str: ...

    def root(self, size: int) -> bytes: ...

    def cosigned_checkpoint(self, size: int = 0, *, min_cosignatures: int = 0) -> SignedCheckpoint: ...

    def sign_checkpoint_now(self) -> SignedCheckpoint: ...


class Publisher:
    """Keeps `directory` a tlog-tiles copy of `ledger` as of its latest checkpoint (with the
    witness cosignatures the ledger holds for it). See the module doc for the order of work.

    The tiles are read, not recomputed: a hash tile at level L holds the ledger's stored
    perfect-subtree hashes at Merkle level 8L (the `tree` index the writer keeps, which fsck
    checks), and a bundle the stored entry bytes. So a pass costs about two LMDB reads an entry
    and no hashing; the tiles must still rebuild the signed root before the checkpoint moves.

    `start()` repairs DIR and starts the follower thread; `stop()` publishes the last
    checkpoint and stops it (call it before the ledger closes). Errors while following (a full
    disk, a directory made unwritable) are logged and retried with a growing pause; the server
    goes on acknowledging appends meanwhile, and `error` holds the last one (None once a pass
    succeeds again).

    Raises (from start) RequestError when DIR cannot be published to: another process holds
    it (usage=False), its checkpoint is not this log's or is ahead of the ledger (usage)."""

    def __init__(self, ledger: PublishedLog, directory: Path, *, poll: float = 0.05) -> None:
        self.ledger = ledger
        self.root = Path(directory)
        self.poll = poll
        self.size = 0  # the size DIR's checkpoint holds
        self.note: bytes | None = None
        self.error: Exception | None = None
        self.passes = 0
        self.repaired = False  # start() rewrote DIR's own partial tiles from the ledger
        self._verifier = NoteVerifier.from_string(ledger.log_verifier_key)
        self._lock: ExclusiveLock | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._pass_lock = threading.Lock()

    # ---- start: lock and repair -------------------------------------------------------------

    def start(self) -> Publisher:
        """Lock DIR, repair it (module doc), and start following (the thread publishes the
        latest checkpoint at once)."""
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            self._lock = exclusive_lock(self.root)
        except LockHeld as e:
            raise RequestError(
                f"{self.root}: another process (a server or export-tiles) is publishing to it", usage=False
            ) from e
        try:
            self._repair()
        except BaseException:
            self._lock.close()
            raise
        # The first pass (a whole log, for a new DIR) is the follower's: serving never waits for it.
        self._thread = threading.Thread(target=self._follow, name="lotledger-publish", daemon=True)
        self._thread.start()
        return self

    def _repair(self) -> None:
        cp_path = self.root / tiles.CHECKPOINT_PATH
        try:
            note = cp_path.read_bytes()
        except FileNotFoundError:
            return  # a new DIR: everything from entry 0
        cp = self._own_checkpoint(note)
        self.size, self.note = cp.size, note
        if cp.size == 0:
            return
        try:
            if tiles.TileReader(cp.size, dir_fetcher(self.root, cp.size)).root() == cp.root_hash:
                return
            problem = "its partial tiles do not rebuild the root of its checkpoint"
        except (VerificationFailed, OSError) as e:
            problem = str(e)
        log.warning("%s: %s; rewriting its partial tiles from the ledger", self.root, problem)
        files = TileFiles(self.root, overwrite=True)
        for tile in tiles.partial_tiles(cp.size):
            files.put(tile, self._tile(tile))
        files.sync_dirs()
        self.repaired = True

    def _own_checkpoint(self, note: bytes) -> Checkpoint:
        """DIR's checkpoint, which must be one this ledger issued. Raises RequestError."""
        where = self.root / tiles.CHECKPOINT_PATH
        try:
            cp = open_signed_checkpoint(note, self._verifier)
        except VerificationFailed as e:
            raise RequestError(
                f"{where} is not signed by this log's key ({e.message}): publish another log elsewhere"
            ) from e
        if cp.origin != self.ledger.origin:
            raise RequestError(f"{where} is for the log {cp.origin!r}, not {self.ledger.origin!r}")
        if cp.size > self.ledger.size:
            raise RequestError(
                f"{where} is at size {cp.size}, ahead of this ledger's {self.ledger.size} entries (a ledger restored "
                "from an older copy?): publishing over it would show readers a fork; publish to a new directory"
            )
        if cp.size and self.ledger.root(cp.size) != cp.root_hash:
            raise RequestError(f"{where} (size {cp.size}) is not this ledger's history: its root differs")
        return cp

    def _tile(self, tile: tiles.TileId) -> bytes:
        """The bytes of `tile` from the ledger's store: stored entries (a bundle) or stored
        perfect-subtree hashes at Merkle level 8L (a hash tile at level L), in one read
        transaction. Raises StorageError when the store lacks one (a damaged store)."""
        store, first = self.ledger.store, tile.index * tiles.TILE_WIDTH
        parts: list[bytes] = []
        with store.read() as txn:
            if tile.is_bundle:
                for key, value in store.iterate(txn, "entries", u64(first)):
                    if len(parts) == tile.width or key != u64(first + len(parts)):
                        break
                    parts.append(tiles.encode_entry(value, first + len(parts)))
            else:
                level = tile.level * tiles.TILE_HEIGHT
                for key, value in store.iterate(txn, "tree", tree_key(level, first)):
                    if len(parts) == tile.width or key != tree_key(level, first + len(parts)):
                        break
                    parts.append(value)
        if len(parts) != tile.width:
            raise StorageError(f"the store lacks part {first + len(parts)} of {tile.path}: it is damaged")
        return b"".join(parts)

    # ---- following --------------------------------------------------------------------------

    def publish_once(self) -> bool:
        """Bring DIR up to the ledger's latest checkpoint; True if DIR changed. Raises
        StorageError (the ledger), VerificationFailed (the tiles do not rebuild the signed root:
        a bug or a damaged store; DIR keeps its checkpoint), OSError (DIR)."""
        with self._pass_lock:
            latest = self.ledger.latest_checkpoint
            if latest is None:
                return False
            note = self.ledger.cosigned_checkpoint(latest.size).note
            if latest.size == self.size and note == self.note:
                return False
            start = self.size
            if latest.size > start:
                files = TileFiles(self.root, overwrite=True)
                for tile in tiles.new_tiles(start, latest.size):
                    files.put(tile, self._tile(tile))
                if tiles.TileReader(latest.size, dir_fetcher(self.root, latest.size)).root() != latest.root_hash:
                    raise VerificationFailed(
                        f"the tiles of entries {start}..{latest.size - 1} do not rebuild the root of checkpoint "
                        f"{latest.size}; {self.root}/checkpoint is unchanged",
                        reason="ROOT_MISMATCH",
                    )
                files.sync_dirs()
            write_synced(self.root / tiles.CHECKPOINT_PATH, note, sync_dir=True)
            self.size, self.note = latest.size, note
            prune_partials(self.root, start, latest.size)
            self.passes += 1
            return True

    def _follow(self) -> None:
        pause = 0.0
        while not self._stopping.wait(pause):
            try:
                self.publish_once()
            except Exception as e:  # noqa: BLE001 - logged and retried; appends go on regardless
                if self.error is None or str(e) != str(self.error):
                    log.error("publishing to %s failed (retrying): %s", self.root, e)
                self.error = e
                pause = min(max(pause * 2, self.poll), 5.0)
                continue
            if self.error is not None:
                log.warning("publishing to %s works again (size %d)", self.root, self.size)
                self.error = None
            pause = self.poll

    def wait_for(self, size: int, timeout: float = 30.0) -> bool:
        """Wait until DIR's checkpoint covers `size` entries (tests and benchmarks)."""
        deadline = time.monotonic() + timeout
        while self.size < size:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def stop(self) -> None:
        """Stop following after one last pass (the last checkpoint; call before the ledger
        closes). Publishing errors in that pass are logged, not raised: DIR stays complete."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        try:
            self.ledger.sign_checkpoint_now()
            self.publish_once()
        except Exception as e:  # noqa: BLE001 - DIR keeps its last complete checkpoint
            log.error("last publication to %s failed: %s", self.root, e)
        if self._lock is not None:
            self._lock.close()
            self._lock = None
