"""The scanner's durable spool: every scan is signed and committed here before it is sent.

One LMDB file in the device's data directory (`spool.lmdb`, plus LMDB's lock file), synced
on every commit, so a scan the station said "spooled" to survives a power cut. Scans are
numbered in the order they were taken; the sender drains them in that order. A scan leaves
`pending` only in the same transaction that records what the server said: sent (with its
entry seq) or refused (with the reason, kept aside, never retried on its own). A crash between
the server's ack and that transaction resends the scan, which the ledger answers as a
duplicate of the same record id: exactly once in the log.

Record ids are `scan/<device>/<spool epoch>/<n>`: the epoch (random, made with the spool)
keeps a re-created spool from reusing an id for a different scan.

Refusals come from two places and are kept apart, because they ask for different fixes: the
station's own (a line that is not a scan it can read: bad check digit, unknown AI; never signed,
never numbered: rescan the label) and the server's (a signed scan the ledger said no to, e.g. an
unregistered device key: fix the cause, then `retry`). Both are kept with their reasons.
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import lmdb

from lotledger.v1 import records_pb2


def _u64(n: int) -> bytes:
    return n.to_bytes(8, "big")


@dataclass(frozen=True)
class Refused:
    number: int
    record_id: str
    reason: str
    message: str


@dataclass(frozen=True)
class RefusedAtStation:
    """A line the station could not read as a scan (or an image without a barcode)."""

    number: int  # in the order refused, its own count (such a line takes no scan number)
    line: str
    reason: str
    message: str
    at: str  # ISO 8601 UTC


class Spool:
    FILE = "spool.lmdb"

    def __init__(self, data_dir: Path):
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / self.FILE
        self.env = lmdb.open(
            str(self.path), subdir=False, map_size=1 << 34, max_dbs=4, sync=True, metasync=True, lock=True
        )
        self._pending = self.env.open_db(b"pending")
        self._refused = self.env.open_db(b"refused")
        self._meta = self.env.open_db(b"meta")
        self._station = self.env.open_db(b"station_refused")
        self.added = threading.Event()  # set whenever a scan is spooled
        with self.env.begin(write=True) as txn:
            if txn.get(b"epoch", db=self._meta) is None:
                txn.put(b"epoch", secrets.token_hex(4).encode(), db=self._meta)
            self.epoch = bytes(txn.get(b"epoch", db=self._meta) or b"").decode()

    def close(self) -> None:
        self.env.close()

    def _counter(self, txn: lmdb.Transaction, name: bytes) -> int:
        raw = txn.get(name, db=self._meta)
        return int.from_bytes(raw, "big") if raw else 0

    def next_number(self) -> int:
        with self.env.begin() as txn:
            return self._counter(txn, b"next")

    def add(self, signed: records_pb2.SignedRecord, number: int) -> None:
        """Commit a signed scan as number `number` (from next_number; the spool has one writer
        of scans, the station). Durable when this returns."""
        with self.env.begin(write=True) as txn:
            if self._counter(txn, b"next") != number:
                raise RuntimeError("spool numbers must be taken in order by one station process")
            txn.put(_u64(number), signed.SerializeToString(), db=self._pending, overwrite=False)
            txn.put(b"next", _u64(number + 1), db=self._meta)
        self.added.set()

    def pending(self, limit: int) -> list[tuple[int, records_pb2.SignedRecord]]:
        """The oldest `limit` scans not yet answered by the server, in order."""
        out = []
        with self.env.begin(buffers=False) as txn:
            for key, value in txn.cursor(db=self._pending):
                out.append((int.from_bytes(key, "big"), records_pb2.SignedRecord.FromString(value)))
                if len(out) >= limit:
                    break
        return out

    def settle(self, sent: list[tuple[int, int]], refused: list[tuple[int, str, str, str]]) -> None:
        """Record the server's answers in one transaction: sent (number, entry seq) and refused
        (number, record id, reason, message)."""
        with self.env.begin(write=True) as txn:
            for number, _seq in sent:
                if txn.delete(_u64(number), db=self._pending):
                    txn.put(b"sent", _u64(self._counter(txn, b"sent") + 1), db=self._meta)
                    txn.put(b"last_seq", _u64(_seq), db=self._meta)
            for number, record_id, reason, message in refused:
                raw = txn.pop(_u64(number), db=self._pending)
                if raw is None:
                    continue
                kept = {"record_id": record_id, "reason": reason, "message": message, "signed": raw.hex()}
                txn.put(_u64(number), json.dumps(kept).encode(), db=self._refused)

    def refuse_at_station(self, line: str, reason: str, message: str) -> None:
        """Keep a line the station refused (durably, like a scan), so that `status` can say how
        many and which, long after the terminal that showed it scrolled away."""
        at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        with self.env.begin(write=True) as txn:
            n = self._counter(txn, b"station_refused")
            kept = {"line": line[:1000], "reason": reason, "message": message, "at": at}
            if not txn.put(_u64(n), json.dumps(kept).encode(), db=self._station, overwrite=False):
                raise RuntimeError(f"station refusal #{n} is already kept")
            txn.put(b"station_refused", _u64(n + 1), db=self._meta)

    def counts(self) -> dict[str, int]:
        """`refused` counts the server's refusals still kept aside (`retry` puts them back in
        line); `refused_at_station` every line the station refused."""
        with self.env.begin() as txn:
            return {
                "spooled": txn.stat(self._pending)["entries"],
                "sent": self._counter(txn, b"sent"),
                "refused": txn.stat(self._refused)["entries"],
                "refused_at_station": self._counter(txn, b"station_refused"),
                "taken": self._counter(txn, b"next"),
            }

    def refused_at_station(self, last: int = 20) -> list[RefusedAtStation]:
        """The `last` lines the station refused, oldest first."""
        with self.env.begin(buffers=False) as txn:
            start = max(self._counter(txn, b"station_refused") - last, 0)
            cursor = txn.cursor(db=self._station)
            out = []
            if cursor.set_range(_u64(start)):
                for k, v in cursor:
                    d = json.loads(v)
                    out.append(
                        RefusedAtStation(int.from_bytes(k, "big"), d["line"], d["reason"], d["message"], d["at"])
                    )
            return out

    def refused(self) -> list[Refused]:
        with self.env.begin(buffers=False) as txn:
            return [
                Refused(int.from_bytes(k, "big"), (d := json.loads(v))["record_id"], d["reason"], d["message"])
                for k, v in txn.cursor(db=self._refused)
            ]

    def retry_refused(self) -> int:
        """Put refused scans back in line (after, say, the device key was registered)."""
        with self.env.begin(write=True) as txn:
            moved = 0
            for key, value in list(txn.cursor(db=self._refused)):
                txn.put(key, bytes.fromhex(json.loads(value)["signed"]), db=self._pending)
                txn.delete(key, db=self._refused)
                moved += 1
        if moved:
            self.added.set()
        return moved
