"""The one LMDB environment of a data directory, and the only module that imports lmdb.

Durability is not negotiable: sync=True, metasync=True, writemap=False, so a committed write
transaction is on disk when commit() returns and the ledger acknowledges only after that.
(kill -9 cannot prove fsync; tests assert these flags instead.)

Layout (named sub-databases):
  entries      seq (8-byte big-endian)          -> entry bytes, exactly as hashed
  record_ids   record_id (UTF-8)                -> seq
  tree         level (1 byte) + index (8 bytes) -> SHA-256 of that perfect subtree (level 0 = leaf)
  checkpoints  tree size (8 bytes)              -> signed note bytes, every one ever issued
  admin_seqs   seq (8 bytes)                    -> b"" for entries that change the key registry
  meta         name                             -> value (size, origin, log public key)
  cosignatures tree size (8) + witness key hash (4) + witness name -> its cosignature line
               (c2sp.org/tlog-cosignature) of the checkpoint issued at that size
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lmdb

from lotledger.ledger.errors import StorageError

# Virtual address space, not disk: with writemap=False the file grows only as pages are used.
# One TiB means the map never needs growing under a live server (growing needs every reader
# stopped); `--map-size` overrides it for small-address-space machines.
DEFAULT_MAP_SIZE = 1 << 40
DB_NAMES = ("entries", "record_ids", "tree", "checkpoints", "admin_seqs", "meta", "cosignatures")
# Added after data directories existed: a read-only open of an older one finds none, and reads
# of it return nothing (a writable open creates it).
OPTIONAL_DBS = frozenset({"cosignatures"})


def u64(n: int) -> bytes:
    return n.to_bytes(8, "big")


def from_u64(b: bytes) -> int:
    return int.from_bytes(b, "big")


def tree_key(level: int, index: int) -> bytes:
    return bytes((level,)) + u64(index)


def cosignature_key(size: int, key_hash: bytes, name: str) -> bytes:
    """Key of a witness's cosignature of the checkpoint issued at `size` (sorted by size)."""
    return u64(size) + key_hash + name.encode("utf-8")


class Store:
    """Owns the environment; hands out transactions; turns lmdb errors into StorageError."""

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False, map_size: int = DEFAULT_MAP_SIZE):
        self.path = Path(path)
        self.readonly = readonly
        try:
            if not readonly:
                self.path.mkdir(parents=True, exist_ok=True)
            elif not (self.path / "data.mdb").exists():
                raise StorageError(f"{self.path} holds no ledger (no data.mdb)")
            self.env = lmdb.open(
                str(self.path),
                map_size=map_size,
                max_dbs=len(DB_NAMES),
                subdir=True,
                readonly=readonly,
                lock=not readonly,
                sync=True,
                metasync=True,
                writemap=False,
                map_async=False,
                max_readers=512,
                readahead=False,
            )
            self.dbs: dict[str, Any] = {}
            for name in DB_NAMES:
                try:
                    self.dbs[name] = self.env.open_db(name.encode(), create=not readonly)
                except lmdb.NotFoundError:
                    if not (readonly and name in OPTIONAL_DBS):
                        raise
        except lmdb.Error as e:
            raise StorageError(f"cannot open the ledger at {self.path}: {e}") from e

    def close(self) -> None:
        self.env.close()

    def flags(self) -> dict[str, Any]:
        """The environment's durability flags, for tests and `lotledger serve --print-config`."""
        return dict(self.env.flags())

    @contextmanager
    def read(self) -> Iterator[Any]:
        try:
            with self.env.begin(buffers=False) as txn:
                yield txn
        except lmdb.Error as e:
            raise StorageError(f"ledger read failed: {e}") from e

    @contextmanager
    def write(self) -> Iterator[Any]:
        """A write transaction, committed (durably) on leaving the block, aborted on error."""
        try:
            with self.env.begin(write=True) as txn:
                yield txn
        except lmdb.Error as e:
            raise StorageError(f"ledger write failed: {e}") from e

    def put_new(self, txn: Any, db: str, key: bytes, value: bytes, *, append: bool = False) -> None:
        """Insert a key that must not exist yet. py-lmdb's put() returns False instead of
        raising on an existing key (or an out-of-order append): treat that as corruption."""
        if not txn.put(key, value, db=self.dbs[db], overwrite=False, append=append):
            raise StorageError(f"ledger invariant broken: key {key.hex()} already in {db}")

    def put(self, txn: Any, db: str, key: bytes, value: bytes) -> None:
        txn.put(key, value, db=self.dbs[db])

    def get(self, txn: Any, db: str, key: bytes) -> bytes | None:
        if db not in self.dbs:  # an optional database absent from a read-only older store
            return None
        value: bytes | None = txn.get(key, db=self.dbs[db])
        return value

    def last(self, txn: Any, db: str) -> tuple[bytes, bytes] | None:
        if db not in self.dbs:
            return None
        with txn.cursor(db=self.dbs[db]) as cur:
            if cur.last():
                return bytes(cur.key()), bytes(cur.value())
        return None

    def iterate(self, txn: Any, db: str, start: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        if db not in self.dbs:
            return
        with txn.cursor(db=self.dbs[db]) as cur:
            if start and not cur.set_range(start):
                return
            if not start and not cur.first():
                return
            yield from cur

    def iterate_back(self, txn: Any, db: str) -> Iterator[tuple[bytes, bytes]]:
        """Every item from the last key down (newest first for keys that start with a size)."""
        if db not in self.dbs:
            return
        with txn.cursor(db=self.dbs[db]) as cur:
            if cur.last():
                yield from cur.iterprev()

    # ---- witness cosignatures: the layout, read by the ledger and by offline verifiers ----------

    def cosignature_lines(self, txn: Any, size: int) -> list[bytes]:
        """The stored cosignature lines of the checkpoint issued at `size`."""
        prefix = u64(size)
        lines = []
        for key, value in self.iterate(txn, "cosignatures", prefix):
            if not key.startswith(prefix):
                break
            lines.append(value)
        return lines

    def latest_cosigned_size(self, txn: Any, count: int) -> int | None:
        """The largest tree size whose checkpoint has at least `count` stored cosignatures."""
        size, seen = -1, 0
        for key, _ in self.iterate_back(txn, "cosignatures"):
            at = from_u64(key[:8])
            seen = seen + 1 if at == size else 1
            size = at
            if seen >= count:
                return size
        return None
