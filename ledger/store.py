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

Everything but `entries` (and the signed checkpoints) is derived from the entries; ledger/fsck.py
checks it against them.

Before LMDB maps a data file, its two meta pages are read and the file's length checked against
the last page its newest transaction uses (`check_data_file`): LMDB maps the whole file and a
read past the end of a truncated one is SIGBUS, which kills the process with no word.

A full disk (or a full map) refuses a write with ResourceExhausted, reason DISK_FULL: the commit
failed, LMDB kept nothing of it, and the same write can succeed once there is room.
"""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lmdb

from lotledger.ledger.errors import ResourceExhausted, StorageError

# Virtual address space, not disk: with writemap=False the file grows only as pages are used.
# One TiB means the map never needs growing under a live server (growing needs every reader
# stopped); `--map-size` overrides it for small-address-space machines.
DEFAULT_MAP_SIZE = 1 << 40
DB_NAMES = ("entries", "record_ids", "tree", "checkpoints", "admin_seqs", "meta", "cosignatures")
# Added after data directories existed: a read-only open of an older one finds none, and reads
# of it return nothing (a writable open creates it).
OPTIONAL_DBS = frozenset({"cosignatures"})


# LMDB's data file (mdb.c, 64-bit builds): pages 0 and 1 are meta pages, each a 16-byte page
# header (flags at byte 10) and then MDB_meta: magic, format version, ..., the page size (in
# the free DB's md_pad), the last page used and the transaction id. LMDB uses the meta page
# with the larger transaction id.
_MDB_MAGIC = 0xBEEFC0DE
_MDB_DATA_VERSION = 1
_P_META = 0x08
_META_FLAGS = struct.Struct("=H")  # at 10
_META_HEAD = struct.Struct("=II")  # magic, version at 16
_META_PSIZE = struct.Struct("=I")  # at 40
_META_TAIL = struct.Struct("=QQ")  # last page, txn id at 136
_META_BYTES = 152
# Write errors that mean "no room": what a full disk, a quota or a file size limit give a write
# (a short write, which LMDB reports as EIO, included).
_NO_ROOM = tuple(os.strerror(n) for n in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO))


def check_data_file(path: Path) -> None:
    """Refuse a data.mdb that LMDB cannot map safely: empty, not an LMDB file, another format
    version, or shorter than the pages its newest committed transaction uses (truncated: a read
    past its end would be SIGBUS). Reads only the two meta pages; writes nothing.

    Raises StorageError naming the file.
    """
    try:
        with path.open("rb") as f:
            length = os.fstat(f.fileno()).st_size
            if length == 0:
                raise StorageError(f"{path} is empty: it holds no ledger")
            newest = _read_meta(path, f.read(_META_BYTES))
            psize = newest[0]
            f.seek(psize)
            other = _read_meta(path, f.read(_META_BYTES))
    except OSError as e:
        raise StorageError(f"cannot read {path}: {e.strerror or e}") from e
    if other[2] > newest[2]:
        newest = other
    psize, last_page, txn_id = newest
    needed = (last_page + 1) * psize
    if length < needed:
        raise StorageError(
            f"{path} is truncated: it holds {length} bytes, but its last committed transaction ({txn_id}) uses "
            f"{last_page + 1} pages of {psize} bytes ({needed} bytes); restore the data directory from a copy"
        )


def _read_meta(path: Path, page: bytes) -> tuple[int, int, int]:
    """(page size, last page, transaction id) of one meta page. Raises StorageError."""
    if len(page) < _META_BYTES or not _META_FLAGS.unpack_from(page, 10)[0] & _P_META:
        raise StorageError(f"{path} is not an LMDB file (no meta page where LMDB keeps one)")
    magic, version = _META_HEAD.unpack_from(page, 16)
    if magic != _MDB_MAGIC:
        raise StorageError(f"{path} is not an LMDB file (magic {magic:#010x}, not {_MDB_MAGIC:#010x})")
    if version != _MDB_DATA_VERSION:
        raise StorageError(
            f"{path} is an LMDB file of data format version {version}; this lotledger reads version {_MDB_DATA_VERSION}"
        )
    (psize,) = _META_PSIZE.unpack_from(page, 40)
    if psize < 512 or psize > 65536 or psize & (psize - 1):
        raise StorageError(f"{path} is not an LMDB file (page size {psize})")
    last_page, txn_id = _META_TAIL.unpack_from(page, 136)
    return psize, last_page, txn_id


def _error(what: str, e: lmdb.Error) -> Exception:
    """Our error for an lmdb one: ResourceExhausted (DISK_FULL) when there was no room to
    write (a full map, a full disk or quota, a file size limit), else StorageError."""
    if isinstance(e, lmdb.MapFullError):
        return ResourceExhausted(
            f"the ledger's LMDB map is full ({e}); nothing of this write was kept: it needs a larger map_size",
            reason="DISK_FULL",
        )
    text = str(e)
    if text.endswith(_NO_ROOM):
        return ResourceExhausted(
            f"the ledger's disk is full ({what}: {text}); nothing of this write was kept: "
            "retry once space has been freed",
            reason="DISK_FULL",
        )
    return StorageError(f"{what}: {text}")


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

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        readonly: bool = False,
        map_size: int = DEFAULT_MAP_SIZE,
        create: bool = True,
    ):
        """Open (and with `create`, unless `readonly`, create) the environment in `path`.
        Raises StorageError (no data.mdb where one must be, a data.mdb that check_data_file
        refuses, an lmdb error) or ResourceExhausted (DISK_FULL: no room to create it)."""
        self.path = Path(path)
        self.readonly = readonly
        data_file = self.path / "data.mdb"
        try:
            if data_file.exists():
                check_data_file(data_file)
            elif readonly or not create:
                raise StorageError(f"{self.path} holds no ledger (no data.mdb)")
            else:
                self.path.mkdir(parents=True, exist_ok=True)
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
            raise _error(f"cannot open the ledger at {self.path}", e) from e
        except OSError as e:  # mkdir
            raise StorageError(f"cannot create {self.path}: {e.strerror or e}") from e

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
        """A write transaction, committed (durably) on leaving the block, aborted on error.
        Raises ResourceExhausted (DISK_FULL: no room; nothing was kept) or StorageError."""
        try:
            with self.env.begin(write=True) as txn:
                yield txn
        except lmdb.Error as e:
            raise _error("ledger write failed", e) from e

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

    def count(self, txn: Any, db: str) -> int:
        """How many keys `db` holds (LMDB keeps the number: no scan)."""
        if db not in self.dbs:
            return 0
        return int(txn.stat(self.dbs[db])["entries"])

    def first(self, txn: Any, db: str) -> tuple[bytes, bytes] | None:
        if db not in self.dbs:
            return None
        with txn.cursor(db=self.dbs[db]) as cur:
            if cur.first():
                return bytes(cur.key()), bytes(cur.value())
        return None

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
