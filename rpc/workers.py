"""Prechecking appended records in worker processes, ahead of the single writer.

Why processes and not threads: Ed25519 verification releases the GIL, but parsing and
validating a record (about a sixth of its precheck) does not, and each thread coming back
from a verification must win the GIL again from the writer, the trace indexer and gRPC's
threads. On two cores that convoy left a core idle about half the time (bench/append.py).
A worker process has a GIL of its own: it runs `lotledger.ledger.core.admission.precheck`,
exactly as the server's threads do, and sends back one outcome per record (None: it passed;
or the refusal, with its reason and field). The server keeps only the cheap part: it parses
the passed records once more (the worker's objects do not cross processes) and queues them
to the writer, in stream order, which alone admits and commits them.

The workers start when a large batch first needs them (a server that never sees one, as in
most tests, never starts them), each as `python -m lotledger.rpc.workers` with one socket
to the server. A worker ends when that socket closes, so a server killed with SIGKILL leaves
no worker behind. A worker that dies or fails fails only the jobs it held: the caller
prechecks those records itself (`Job.outcomes` raises WorkerLost).
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta
from multiprocessing.connection import Connection

from lotledger.ledger.core.admission import precheck
from lotledger.ledger.core.validation import refuse_unknown_fields
from lotledger.ledger.errors import LedgerError, StorageError
from lotledger.v1 import ledger_service_pb2 as pb

log = logging.getLogger("lotledger.server")

# One record's outcome from a worker: None when it passed precheck, else its refusal.
Outcome = LedgerError | StorageError | None


class WorkerLost(Exception):
    """A worker died or failed before it answered a job: precheck those records here."""


@dataclass(frozen=True)
class Settings:
    """What precheck needs besides the records, as the server's Ledger.precheck passes it."""

    now: datetime
    max_skew: timedelta
    max_age: timedelta | None
    log_rules: int


def check_chunk(data: bytes, lo: int, hi: int, keys: dict[str, bytes | None], settings: Settings) -> list[Outcome]:
    """Precheck records [lo, hi) of `data`, a serialized AppendStreamRequest: the worker's
    whole job, kept as a function so that a test can run it in the server's process too.
    `keys`: the registry's public key (None: unknown) for each key id the records name."""
    request = pb.AppendStreamRequest.FromString(data)
    out: list[Outcome] = []
    for i in range(lo, hi):
        signed = request.signed_records[i]
        try:
            refuse_unknown_fields(signed, "signed_record")  # only signed bytes are stored
            precheck(
                signed,
                settings.now,
                keys.get,
                max_skew=settings.max_skew,
                max_age=settings.max_age,
                log_rules=settings.log_rules,
            )
            out.append(None)
        except (LedgerError, StorageError) as e:
            e.__traceback__ = None
            e.__cause__ = e.__context__ = None
            out.append(e)
    return out


class Job:
    """One chunk sent to a worker; `outcomes` waits for its answer."""

    def __init__(self) -> None:
        self.future: Future[list[Outcome]] = Future()

    def outcomes(self, timeout: float | None = None) -> list[Outcome]:
        """Raises WorkerLost (the worker died or failed: precheck the chunk here)."""
        return self.future.result(timeout)


class _Worker:
    """One worker process, its socket, and the jobs it holds in the order it will answer them."""

    def __init__(self, on_exit: Callable[[_Worker], None]) -> None:
        ours, theirs = socket.socketpair()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "lotledger.rpc.workers", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        self._socket = ours  # shut down at close: that ends the worker's recv and our answers thread's
        self.conn = Connection(os.dup(ours.fileno()))
        self.pending: deque[Job] = deque()
        self.alive = True
        self._send = threading.Lock()
        self._on_exit = on_exit
        threading.Thread(target=self._answers, name="precheck-worker-answers", daemon=True).start()

    def submit(self, message: bytes) -> Job:
        """Raises WorkerLost when the worker is gone."""
        job = Job()
        with self._send:
            if not self.alive:
                raise WorkerLost("the precheck worker has ended")
            self.pending.append(job)
            try:
                self.conn.send_bytes(message)
            except OSError as e:
                raise WorkerLost(f"the precheck worker is gone: {e}") from e
        return job

    def _answers(self) -> None:
        try:
            while True:
                answer: list[Outcome] | str = pickle.loads(self.conn.recv_bytes())
                job = self.pending.popleft()
                if isinstance(answer, str):
                    job.future.set_exception(WorkerLost(answer))
                else:
                    job.future.set_result(answer)
        except (EOFError, OSError):
            pass
        finally:
            with self._send:
                self.alive = False
                lost = list(self.pending)
                self.pending.clear()
            for job in lost:
                job.future.set_exception(WorkerLost("the precheck worker ended before it answered"))
            self._on_exit(self)

    def close(self, timeout: float = 5.0) -> None:
        # Closing our descriptor alone would not end the socket while our answers thread waits
        # in recv on it; a shutdown does, for both sides: the worker reads the end and exits.
        try:
            self._socket.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._socket.close()
        self.conn.close()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class PrecheckPool:
    """`size` worker processes, started on the first `submit`. Thread-safe."""

    def __init__(self, size: int = 2) -> None:
        self.size = size
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False
        self._next = 0

    def submit(self, data: bytes, lo: int, hi: int, keys: dict[str, bytes | None], settings: Settings) -> Job:
        """Send records [lo, hi) of `data` (a serialized AppendStreamRequest) to the worker with
        the fewest jobs. Raises WorkerLost (no worker could take it: precheck it here)."""
        message = pickle.dumps((data, lo, hi, keys, settings), protocol=pickle.HIGHEST_PROTOCOL)
        worker = self._pick()
        return worker.submit(message)

    def _pick(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise WorkerLost("the precheck pool is closed")
            try:
                while len(self._workers) < self.size:
                    self._workers.append(_Worker(self._forget))
            except OSError as e:
                if not self._workers:
                    raise WorkerLost(f"cannot start a precheck worker: {e}") from e
            self._next += 1
            ring = self._workers[self._next % len(self._workers) :] + self._workers[: self._next % len(self._workers)]
            return min(ring, key=lambda w: len(w.pending))

    def _forget(self, worker: _Worker) -> None:
        with self._lock:
            if worker in self._workers:
                self._workers.remove(worker)
                if not self._closed:
                    log.warning(
                        "a precheck worker ended (exit code %s); a new one starts when needed", worker.process.poll()
                    )

    def close(self) -> None:
        """End the workers (they finish nothing: their callers have gone)."""
        with self._lock:
            self._closed = True
            workers, self._workers = self._workers, []
        for w in workers:
            w.close()


def _serve(fd: int) -> None:
    """A worker's loop: one job in, one answer out, until the server closes the socket."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server decides when its workers end
    conn = Connection(fd)
    while True:
        try:
            message = conn.recv_bytes()
        except (EOFError, OSError):
            return
        try:
            data, lo, hi, keys, settings = pickle.loads(message)
            answer: list[Outcome] | str = check_chunk(data, lo, hi, keys, settings)
        except Exception as e:  # noqa: BLE001 - a bug here must fail the job, not the worker
            answer = f"precheck worker failed: {e!r}"
        try:
            conn.send_bytes(pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL))
        except (EOFError, OSError):
            return


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
    os._exit(0)
