"""The driver of `lotledger mirror DATA --from URL`: a verified copy of a tiled log in a data
directory of its own, cosigned and republished (C2SP tlog-mirror, where it fits; the
cosignature is C2SP tlog-cosignature).

Each round is a monitor round (audit/monitor.py) over the tiles (audit/tiles_http.py): the
latest checkpoint's signature, its consistency with the one held (a fork is kept as evidence in
DATA/state/forks/ and nothing is stored), every new entry through the full verifier. While the
verifier reads them, the entries are spooled to DATA/spool.tmp; only once the round verified are
they written to the replica store (DATA/ledger, the primary's own layout: ledger/replica.py),
then the checkpoint, then the mirror's cosignature of it, and only then is the verifier state
saved. So the store never holds an entry no verified checkpoint covers, and a crash between the
two leaves the store ahead of the state: the next round verifies those entries again and finds
them stored already (the same bytes, or the round fails). `restore --from` can rebuild a primary
from the republished tiles (--publish DIR, ledger/publish.py over the replica).

Not here yet (issue 19): answering read RPCs (--listen) and the mirror's own trace index.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from lotledger.audit.monitor import Monitor, Round, TilesLog
from lotledger.audit.restore import own_signature_only
from lotledger.audit.state_dir import StateDir
from lotledger.audit.tiles_http import TeeSource, TilesSource, TileStore
from lotledger.audit.verify import EntrySource, VerifyReport
from lotledger.ledger.errors import ResourceExhausted, StorageError, VerificationFailed
from lotledger.ledger.log import SignedCheckpoint
from lotledger.ledger.publish import Publisher
from lotledger.ledger.replica import ReplicaWriter
from lotledger.ledger.store import tree_key
from lotledger.ledger.tlog import merkle
from lotledger.signing.cosignature import CosignatureSigner
from lotledger.signing.keys import SigningKey
from lotledger.signing.note import Checkpoint, NoteVerifier, parse_note

_LEN = struct.Struct(">I")
BATCH = 2000


def _spooler(spool: BinaryIO) -> Callable[[list[bytes]], None]:
    """What keeps each entry the mirror verifies: appended to the spool file, a full disk
    refused as DISK_FULL."""

    def keep(entries: list[bytes]) -> None:
        try:
            for entry in entries:
                spool.write(_LEN.pack(len(entry)) + entry)
        except OSError as e:
            raise ResourceExhausted(
                f"{spool.name}: cannot write ({e.strerror or e}): is the mirror's disk full?",
                reason="DISK_FULL",
            ) from e

    return keep


class _MirrorLog(TilesLog):
    """The monitor's view of the tiles, spooling every entry it verifies."""

    def __init__(self, store: TileStore, spool_path: Path) -> None:
        super().__init__(store)
        self.spool_path = spool_path
        self.spool: BinaryIO | None = None

    def source(self, note: bytes) -> EntrySource:
        self.spool = self.spool_path.open("wb", buffering=0)  # unbuffered: a full disk fails the write itself
        source = TeeSource(TilesSource(self.store, note), _spooler(self.spool))
        self._sources.append(source.source)
        return source

    def close(self) -> None:
        if self.spool is not None:
            self.spool.close()
        super().close()


class _ReplicaView:
    """The replica as the publisher reads a ledger (ledger/publish.py PublishedLog)."""

    def __init__(self, writer: ReplicaWriter, origin: str, log_key: NoteVerifier) -> None:
        self.writer = writer
        self.store = writer.store
        self.origin = origin
        self._vkey = log_key.verifier_key
        self.size = writer.size
        self.latest_checkpoint: SignedCheckpoint | None = None
        self.note = b""

    @property
    def log_verifier_key(self) -> str:
        return self._vkey

    def root(self, size: int) -> bytes:
        with self.store.read() as txn:

            def perfect(level: int, index: int) -> bytes:
                node = self.store.get(txn, "tree", tree_key(level, index))
                if node is None:
                    raise StorageError(f"tree node ({level}, {index}) is missing from the replica")
                return node

            return merkle.root(size, perfect)

    def cosigned_checkpoint(self, size: int = 0, *, min_cosignatures: int = 0) -> SignedCheckpoint:
        if self.latest_checkpoint is None:
            raise StorageError("nothing mirrored yet")
        return SignedCheckpoint(self.latest_checkpoint.size, self.latest_checkpoint.root_hash, self.note)

    def sign_checkpoint_now(self) -> SignedCheckpoint:
        if self.latest_checkpoint is None:
            raise StorageError("nothing mirrored yet")
        return self.latest_checkpoint


@dataclass
class MirrorRound:
    round: Round
    cosigned: bytes | None = None  # the checkpoint with the mirror's cosignature, once mirrored


class Mirror:
    """One log mirrored into `data_dir`. `round()` follows it one step. Raises StorageError when
    DATA holds a copy of another log, or its store is behind its saved verification (damaged)."""

    def __init__(
        self,
        data_dir: Path,
        url: str,
        store: TileStore,
        log_key: NoteVerifier,
        key: SigningKey,
        name: str,
        *,
        publish: Path | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log_key = log_key
        self.signer = CosignatureSigner(name, key)
        self.states = StateDir(data_dir / "state").__enter__()  # locked: one mirror per DATA
        try:
            self.writer = ReplicaWriter(data_dir / "ledger", log_key.name, log_key.key.raw, resume=True)
        except BaseException:
            self.states.__exit__(None, None, None)
            raise
        self.view = _ReplicaView(self.writer, log_key.name, log_key)
        self.access = _MirrorLog(store, data_dir / "spool.tmp")
        self.monitor = Monitor(
            url, log_key, self.states, connect=lambda: self.access, progress=progress, on_verified=self._store
        )
        held = self.monitor.state.size if self.monitor.state else 0
        if self.writer.size < held:
            self.close()
            raise StorageError(
                f"{data_dir}: its store holds {self.writer.size} entries but {held} were verified: it is damaged; "
                "mirror into a new directory"
            )
        self.cosigned: bytes | None = None
        latest = self.writer.latest_checkpoint()
        if latest is not None and held:
            self._set_view(latest[1], b"".join(self.writer.cosignatures(latest[0])))
        self.publisher = Publisher(self.view, publish).start() if publish is not None else None

    def _set_view(self, note: bytes, cosignatures: bytes) -> None:
        cp = Checkpoint.from_body(parse_note(note)[0])
        self.view.size = self.writer.size
        self.view.latest_checkpoint = SignedCheckpoint(cp.size, cp.root_hash, note)
        self.view.note = note + cosignatures
        self.cosigned = self.view.note

    def _store(self, report: VerifyReport, note: bytes) -> None:
        """The round verified: store its entries (from the spool), its checkpoint and the
        mirror's cosignature, before the state is saved. Raises VerificationFailed (a stored
        entry differs from the verified one), StorageError and ResourceExhausted (the disk)."""
        spool = self.access.spool
        assert spool is not None
        spool.close()
        seq = report.from_size
        batch: list[bytes] = []
        with self.access.spool_path.open("rb") as f:
            while head := f.read(_LEN.size):
                entry = f.read(_LEN.unpack(head)[0])
                if seq < self.writer.size:  # stored before a crash, after it verified: the same bytes
                    if self.writer.entry(seq) != entry:
                        raise VerificationFailed(f"entry {seq} in the store differs from the one verified", seq=seq)
                else:
                    batch.append(entry)
                    if len(batch) >= BATCH:
                        self.writer.add(batch)
                        batch = []
                seq += 1
        if batch:
            self.writer.add(batch)
        if seq != report.size or self.writer.size != report.size:
            raise StorageError(f"spooled {seq - report.from_size} entries, not {report.size - report.from_size}")
        own = own_signature_only(note, report.origin)
        self.writer.add_checkpoint(report.size, own)
        body = parse_note(own)[0]
        line = self.signer.sign(body, int(time.time())).encode()
        self.writer.add_cosignature(report.size, self.signer.key_hash, self.signer.name, line)
        self._set_view(own, line)
        self.access.spool_path.unlink(missing_ok=True)

    def round(self) -> MirrorRound:
        result = self.monitor.round()
        if result.outcome == "verified" and self.publisher is not None:
            self.publisher.publish_once()
        return MirrorRound(result, self.cosigned if result.outcome in ("verified", "unchanged") else None)

    def close(self) -> None:
        if getattr(self, "publisher", None) is not None:
            assert self.publisher is not None
            self.publisher.stop()
        self.writer.close()
        self.states.__exit__(None, None, None)
