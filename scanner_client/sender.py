"""Drains the spool to the ledger in order, through AppendStream, with backoff while the
server is away. Each answer is written back to the spool as it arrives (see spool.py for why
that makes delivery exactly-once in the log)."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass

from lotledger.ledger.errors import LedgerError, ResourceExhausted, StorageError, Unavailable
from lotledger.rpc.client import ClientTls, LedgerClient, StreamRefusal
from lotledger.scanner_client.spool import Spool

log = logging.getLogger("lotledger.scan")

# Refusals worth retrying on their own: the server could not take the record just now (down,
# or a limit such as the append rate: a scan is never set aside for that).
_TRANSIENT = (Unavailable, StorageError, ResourceExhausted)


@dataclass
class Drained:
    sent: int = 0
    refused: int = 0


Report = Callable[[str], None]


class Sender:
    def __init__(
        self,
        spool: Spool,
        server: str,
        *,
        batch: int = 200,
        window: int = 10,
        backoff: tuple[float, float] = (0.2, 10.0),
        report: Report | None = None,
        tls: ClientTls | None = None,
    ):
        self.spool, self.server, self.batch, self.window = spool, server, batch, window
        self.tls = tls
        self.backoff = backoff
        self.report = report or (lambda line: None)
        self._client: LedgerClient | None = None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def drain_once(self) -> Drained:
        """Send what is pending, up to `window` batches in one stream (the server commits a
        batch while the next is on the wire), settling each batch as its answers arrive.
        Raises Unavailable when the server is away (what was answered before that is
        already settled)."""
        pending = self.spool.pending(self.batch * self.window)
        done = Drained()
        if not pending:
            return done
        if self._client is None:
            self._client = LedgerClient(self.server, timeout=30.0, tls=self.tls)
        sent: list[tuple[int, int]] = []
        refused: list[tuple[int, str, str, str]] = []
        try:
            outcomes = self._client.append_stream((signed for _, signed in pending), batch=self.batch)
            for (number, signed), outcome in zip(pending, outcomes, strict=False):
                if isinstance(outcome, StreamRefusal):
                    if isinstance(outcome.error, _TRANSIENT):
                        raise outcome.error
                    record_id = _record_id(signed.record_bytes)
                    refused.append((number, record_id, outcome.error.reason, str(outcome.error)))
                    self.report(f"refused  #{number} {record_id}: {outcome.error.reason}: {outcome.error}")
                else:
                    sent.append((number, outcome.seq))
                    self.report(f"accepted #{number} -> entry {outcome.seq}{' (already there)' * outcome.duplicate}")
                if len(sent) + len(refused) >= self.batch:
                    self.spool.settle(sent, refused)
                    done.sent, done.refused = done.sent + len(sent), done.refused + len(refused)
                    sent, refused = [], []
        except LedgerError:
            self.close()
            raise
        finally:
            self.spool.settle(sent, refused)
        done.sent, done.refused = done.sent + len(sent), done.refused + len(refused)
        return done

    def run(self, stop: threading.Event) -> None:
        """Drain until `stop` is set, waiting for new scans when idle and backing off
        (with jitter) while the server is unreachable."""
        delay = self.backoff[0]
        while not stop.is_set():
            try:
                drained = self.drain_once()
                delay = self.backoff[0]
            except _TRANSIENT as e:
                self.report(f"server away ({e}); retrying in {delay:.1f} s")
                stop.wait(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, self.backoff[1])
                continue
            except LedgerError as e:  # e.g. the stream itself was refused: keep the scans, retry later
                log.warning("send failed: %s", e)
                stop.wait(delay)
                delay = min(delay * 2, self.backoff[1])
                continue
            if drained.sent + drained.refused == 0:
                self.spool.added.wait(0.5)
                self.spool.added.clear()
        self.close()


def _record_id(record_bytes: bytes) -> str:
    from lotledger.v1 import records_pb2

    record_id: str = records_pb2.Record.FromString(record_bytes).record_id
    return record_id
