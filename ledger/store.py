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
DB_NAMES = ("entries", "record_ids", "tree", "checkpoints", "admin_seqs", "meta")


def u64(n: int) -> bytes:
    return n.to_bytes(8, "big")


def from_u64(b: bytes) -> int:
    return int.from_bytes(b, "big")


def tree_key(level: int, index: int) -> bytes:
    return bytes((level,)) + u64(index)


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
            self.dbs: dict[str, Any] = {name: self.env.open_db(name.encode(), create=not readonly) for name in DB_NAMES}
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
        value: bytes | None = txn.get(key, db=self.dbs[db])
        return value

    def last(self, txn: Any, db: str) -> tuple[bytes, bytes] | None:
        with txn.cursor(db=self.dbs[db]) as cur:
            if cur.last():
                return bytes(cur.key()), bytes(cur.value())
        return None

    def iterate(self, txn: Any, db: str, start: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        with txn.cursor(db=self.dbs[db]) as cur:
            if start and not cur.set_range(start):
                return
            if not start and not cur.first():
                return
            yield from cur
