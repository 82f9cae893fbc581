"""Appending over gRPC: what Append and AppendStream share (precheck, check the caller may
submit, charge the participant's limits, queue to the writer), and the AppendStream pipeline.

AppendStream pipelines, in three stages with a thread each, so that no stage waits for
another's slowest step: the reader takes each request message and sends a large one's records
to the precheck workers (parse, validate, verify: lotledger.rpc.workers, one process per core,
each with its own GIL); the admitter takes the outcomes in stream order and queues the
records that passed to the writer; the handler answers each message as its commits land. Each record gets its own answer (a result or a refusal); the
stream itself ends with an error only for what concerns the whole stream: a message or a
stream over its record limit, an idle or stalled stream, a broken request stream.

Limits (lotledger.rpc.limits) enforced here: the append rate and open streams per
participant, records per message and per stream, idle and stalled streams.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import grpc

from lotledger.ledger.core import access
from lotledger.ledger.core.access import Caller
from lotledger.ledger.core.admission import Admitted
from lotledger.ledger.errors import LedgerError, RecordTooLarge, ResourceExhausted, StorageError, Unavailable
from lotledger.ledger.log import Ledger
from lotledger.ledger.tlog.entries import AppendResult
from lotledger.rpc.limits import Limits
from lotledger.rpc.ratelimit import UNVERIFIED, ParticipantLimiter
from lotledger.rpc.status import reason_of, status_code
from lotledger.rpc.workers import Job, PrecheckPool, Settings, WorkerLost
from lotledger.v1 import ledger_service_pb2 as pb
from lotledger.v1 import records_pb2

# Below this many records per message, splitting the verification across threads or worker
# processes costs more than it saves.
PARALLEL_MIN = 16
# A message's records go to the workers in chunks of about this many (two per message of 200,
# the client's default, so both workers start on it at once).
CHUNK = 100
# How often a stream's reader looks whether its handler has ended while it waits for room.
_POLL = 0.25

log = logging.getLogger("lotledger.server")


def result_pb(r: AppendResult) -> pb.AppendResult:
    """An append's result as the wire message."""
    out = pb.AppendResult(seq=r.seq, leaf_hash=r.leaf_hash, duplicate=r.duplicate)
    out.received_at.FromNanoseconds(r.received_at_ns)
    return out


def error_pb(e: BaseException) -> pb.AppendError:
    """One record's refusal inside a stream's answer: the code and reason the status table
    (lotledger.rpc.status) gives the error, as the unary Append would have ended with."""
    return pb.AppendError(
        code=status_code(e).name if isinstance(e, Exception) else "INTERNAL",
        reason=reason_of(e) if isinstance(e, Exception) else "INTERNAL",
        message=getattr(e, "message", None) or str(e),
        field=getattr(e, "field", None) or "",
    )


def _detached(e: Exception) -> Exception:
    """`e` without its traceback and chained errors. A refusal kept for a later answer would
    otherwise hold the frames it was raised through, and with them the request's records,
    in a reference cycle that only the garbage collector breaks."""
    e.__traceback__ = None
    e.__cause__ = e.__context__ = None
    return e


Checked = list[Admitted | Exception]
# A message's answers while its commit is pending: each record's refusal (None: queued), and
# the pending commit of the records queued.
_Answers = tuple[list[pb.AppendError | None], "Future[list[AppendResult | LedgerError]] | None"]


class Appender:
    """Admits records for the writer on behalf of callers. `verify_pool`: threads that
    precheck the second half of a large message beside the handler's thread (Ed25519
    verification releases the GIL), when there are no `workers`. `workers`: processes that
    precheck large messages (lotledger.rpc.workers). `limits`: rates and stream bounds;
    `limiter` holds the per-participant budgets they set."""

    def __init__(
        self,
        ledger: Ledger,
        verify_pool: ThreadPoolExecutor,
        limits: Limits,
        workers: PrecheckPool | None = None,
    ) -> None:
        self.ledger = ledger
        self.pool = verify_pool
        self.workers = workers
        self.limits = limits
        self.limiter = ParticipantLimiter(
            limits.append_rate, limits.append_burst, limits.append_streams_per_participant
        )

    def participant_of(self, admitted: Admitted, caller: Caller) -> str:
        """Whose limits a record spends: with mTLS, the caller's certificate identity; else the
        owner of the key its signature verified with (so a forger cannot spend a partner's
        budget), UNVERIFIED when the key was unknown at precheck."""
        if caller.participant is not None:
            return caller.participant
        if admitted.verified_key is None:
            return UNVERIFIED
        info = self.ledger.registry.keys.get(admitted.signed.key_id)
        return info.participant if info is not None else UNVERIFIED

    def submit(self, signed: records_pb2.SignedRecord, caller: Caller) -> Future[AppendResult]:
        """Precheck one record, check the caller may submit it, charge it and queue it.

        Raises LedgerError (the record is refused: InvalidRecord, Unauthenticated,
        PermissionDenied, RecordTooLarge, Conflict...; ResourceExhausted for the rate),
        StorageError (Unavailable: the ledger is shutting down).
        """
        admitted = self.ledger.precheck(signed)
        access.check_submission(caller, admitted.record, admitted.kind)
        return self._enqueue_limited(admitted, caller)

    def _enqueue_limited(self, admitted: Admitted, caller: Caller) -> Future[AppendResult]:
        """Charge the record to its participant's rate, then queue it. Raises ResourceExhausted,
        Unavailable."""
        self.limiter.take(self.participant_of(admitted, caller))
        return self.ledger.enqueue(admitted)

    def precheck_batch(
        self, records: Sequence[records_pb2.SignedRecord], caller: Caller = access.OPEN
    ) -> list[Admitted | Exception]:
        """Precheck a message's records on both cores (verification releases the GIL).
        Returns one admitted record or refusal per record, in order; raises nothing a record
        can cause."""
        half = len(records) // 2 if len(records) >= PARALLEL_MIN else 0
        other = self.pool.submit(self._precheck_all, records[half:], caller) if half else None
        checked = self._precheck_all(records[:half] if half else records, caller)
        if other is not None:
            checked += other.result()
        return checked

    def start_precheck(self, request: pb.AppendStreamRequest, caller: Caller) -> Callable[[], Checked]:
        """Start prechecking a message's records; the function returned waits for the outcomes
        (one admitted record or refusal per record, in order) and raises nothing a record can
        cause. A large message goes to the worker processes, in chunks; a small one, or every
        one without workers, is prechecked when the function is called (`precheck_batch`).
        Raises Unavailable (the ledger is shutting down)."""
        records = request.signed_records
        if self.workers is None or len(records) < PARALLEL_MIN:
            return lambda: self.precheck_batch(records, caller)
        ledger = self.ledger
        if ledger.closed:
            raise Unavailable("the ledger is shutting down; retry against a running server")
        registry = ledger.registry
        keys = {s.key_id: registry.public_key(s.key_id) for s in records}
        settings = Settings(datetime.now(UTC), ledger.config.max_skew, ledger.config.max_age, registry.rules)
        data = request.SerializeToString()
        n = len(records)
        parts = max(2, round(n / CHUNK))
        bounds = [(n * i // parts, n * (i + 1) // parts) for i in range(parts)]
        jobs: list[Job | None] = []
        for lo, hi in bounds:
            try:
                jobs.append(self.workers.submit(data, lo, hi, keys, settings))
            except WorkerLost:
                jobs.append(None)

        def outcomes() -> Checked:
            checked: Checked = []
            for (lo, hi), job in zip(bounds, jobs, strict=True):
                try:
                    if job is None:
                        raise WorkerLost("no worker took it")
                    found = job.outcomes()
                except WorkerLost as e:
                    log.debug("prechecking records here: %s", e)
                    checked += self._precheck_all(records[lo:hi], caller)
                    continue
                for signed, outcome in zip(records[lo:hi], found, strict=True):
                    if outcome is not None:
                        checked.append(outcome)
                        continue
                    record = records_pb2.Record.FromString(signed.record_bytes)
                    kind = record.WhichOneof("body") or ""
                    try:
                        access.check_submission(caller, record, kind)
                    except LedgerError as e:
                        checked.append(_detached(e))
                        continue
                    checked.append(Admitted(signed, record, kind, keys[signed.key_id]))
            return checked

        return outcomes

    def _precheck_all(
        self, records: Sequence[records_pb2.SignedRecord], caller: Caller = access.OPEN
    ) -> list[Admitted | Exception]:
        out: list[Admitted | Exception] = []
        for signed in records:
            try:
                admitted = self.ledger.precheck(signed)
                access.check_submission(caller, admitted.record, admitted.kind)
                out.append(admitted)
            except (LedgerError, StorageError) as e:
                out.append(_detached(e))
        return out

    def stream(
        self, request_iterator: Iterator[pb.AppendStreamRequest], context: grpc.ServicerContext, caller: Caller
    ) -> Iterator[pb.AppendStreamResponse]:
        """Answer an AppendStream: one response per request message, one outcome per record,
        numbered across the stream, in stream order. `caller` has passed require_known.

        Memory is bounded per stream: at most `append_stream_window` messages and
        `append_stream_window_bytes` of them wait for their answers (the reader takes no more
        from the client until they are answered), each record as a pending commit or a small
        refusal message (never an exception with its frames), and all of it is dropped when
        the stream ends, however it ends.

        Raises ResourceExhausted (STREAM_IDLE: nothing came for the idle time), the error that
        ended the request stream when it is a LedgerError (RecordTooLarge: too many records in
        one message; ResourceExhausted STREAM_RECORD_LIMIT), for the servicer to map; a
        request stream broken otherwise ends the call CANCELLED here.
        """
        limits = self.limits
        started: queue.SimpleQueue[tuple[Callable[[], Checked], int] | None] = queue.SimpleQueue()
        batches: queue.Queue[tuple[_Answers, int] | None] = queue.Queue()
        window = _Window(limits.append_stream_window, limits.append_stream_window_bytes)
        reader_error: list[BaseException] = []
        done = threading.Event()  # the handler has ended: the reader stops and lets go of everything

        def read() -> None:
            # The reader starts each message's precheck; the admitter queues the outcomes to the
            # writer, one message after the other, so the stream's order is the log's. When the
            # handler cannot send (the client reads no answers), the window fills, this thread
            # stops reading (HTTP/2 flow control holds the client), and after the stall time the
            # call is cancelled: the writer itself never waits on a client.
            received = 0
            try:
                for request in request_iterator:
                    if done.is_set():
                        break
                    if len(request.signed_records) > limits.append_records_per_message:
                        raise RecordTooLarge(f"at most {limits.append_records_per_message} records per message")
                    received += len(request.signed_records)
                    if received > limits.append_records_per_stream:
                        raise ResourceExhausted(
                            f"at most {limits.append_records_per_stream} records per stream; open a new stream",
                            reason="STREAM_RECORD_LIMIT",
                        )
                    size = request.ByteSize()
                    try:
                        if not window.enter(size, limits.append_stream_stall_seconds, done):
                            break
                    except TimeoutError:
                        log.warning("append stream of %r stalled: the client reads no answers; cancelling it", caller)
                        context.cancel()  # the handler is stuck sending to a client that does not read
                        raise ResourceExhausted(
                            "the client read no answers for "
                            f"{limits.append_stream_stall_seconds:g} s; the stream was cancelled",
                            reason="STREAM_STALLED",
                        ) from None
                    started.put((self.start_precheck(request, caller), size))
                    del request
            except BaseException as e:  # noqa: BLE001 - a broken client stream ends the pipeline
                log.debug("append stream reader ended: %r", e)
                reader_error.append(_detached(e) if isinstance(e, Exception) else e)
            finally:
                started.put(None)

        def admit() -> None:
            owner: str | None = None  # the participant whose stream slot this holds
            try:
                while (item := started.get()) is not None:
                    if done.is_set():
                        continue  # the handler has ended: drop what comes until the reader stops
                    outcomes, size = item
                    del item
                    checked = outcomes()
                    del outcomes
                    if owner is None:
                        first = next((a for a in checked if isinstance(a, Admitted)), None)
                        if first is not None:
                            self.limiter.open_stream(participant := self.participant_of(first, caller))
                            owner = participant
                    batches.put((self._queue_message(checked, caller), size))
                    del checked
            except BaseException as e:  # noqa: BLE001 - the stream ends with it, after what came before
                log.debug("append stream admitter ended: %r", e)
                reader_error.insert(0, _detached(e) if isinstance(e, Exception) else e)
                done.set()
                window.wake()
            finally:
                if owner is not None:
                    self.limiter.close_stream(owner)
                batches.put(None)

        threading.Thread(target=read, name="append-stream-read", daemon=True).start()
        threading.Thread(target=admit, name="append-stream-admit", daemon=True).start()
        try:
            index = 0
            while True:
                try:
                    batch = batches.get(timeout=limits.append_stream_idle_seconds)
                except queue.Empty:
                    raise ResourceExhausted(
                        f"the stream sent nothing for {limits.append_stream_idle_seconds:g} s; it was ended "
                        "(send the next message sooner, or open a new stream when there is more to send)",
                        reason="STREAM_IDLE",
                    ) from None
                if batch is None:
                    break
                (refusals, queued), size = batch
                del batch
                committed: Sequence[AppendResult | LedgerError] = ()
                failed: pb.AppendError | None = None
                if queued is not None:
                    try:
                        committed = queued.result()
                    except Exception as e:  # noqa: BLE001 - the transaction failed: every record's answer
                        failed = error_pb(e)
                response = pb.AppendStreamResponse()
                at = 0
                for refusal in refusals:
                    outcome = response.outcomes.add(index=index)
                    index += 1
                    if refusal is not None:
                        outcome.error.CopyFrom(refusal)
                        continue
                    if failed is not None:
                        outcome.error.CopyFrom(failed)
                        continue
                    done_one = committed[at]
                    at += 1
                    if isinstance(done_one, AppendResult):
                        result = outcome.result
                        result.seq, result.leaf_hash, result.duplicate = (
                            done_one.seq,
                            done_one.leaf_hash,
                            done_one.duplicate,
                        )
                        result.received_at.FromNanoseconds(done_one.received_at_ns)
                    else:
                        outcome.error.CopyFrom(error_pb(done_one))
                del refusals, queued, committed
                yield response
                window.leave(size)
        finally:
            done.set()
            window.wake()
            _drain(batches)
        if reader_error and context.is_active():
            error = reader_error[0]
            if isinstance(error, LedgerError):
                raise error
            context.abort(grpc.StatusCode.CANCELLED, f"request stream failed: {error}")

    def _queue_message(self, checked: Checked, caller: Caller) -> _Answers:
        """Charge a message's admitted records to their participants' rates and queue those
        within it to the writer as one group. Returns each record's refusal as the small
        message that will answer it (None: queued, answered by the group's commit, in order)
        and the group's pending commit (None when nothing was queued). Raises Unavailable."""
        refusals: list[pb.AppendError | None] = []
        group: list[Admitted] = []
        for item in checked:
            if isinstance(item, Admitted):
                try:
                    self.limiter.take(self.participant_of(item, caller))
                except ResourceExhausted as e:
                    refusals.append(error_pb(e))
                    continue
                group.append(item)
                refusals.append(None)
            else:
                refusals.append(error_pb(item))
        return refusals, (self.ledger.enqueue_many(group) if group else None)


class _Window:
    """How much of one stream waits for its answers: messages read but not yet answered, and
    their bytes. The reader enters each message before it prechecks it; the handler leaves it
    once its answer is sent. One message always fits, however large."""

    def __init__(self, messages: int, nbytes: int) -> None:
        self.max_messages, self.max_bytes = messages, nbytes
        self.messages = self.nbytes = 0
        self._changed = threading.Condition()

    def enter(self, size: int, timeout: float, done: threading.Event) -> bool:
        """Wait for room for a message of `size` bytes and take it. False if `done` is set
        first. Raises TimeoutError when no room came within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not done.is_set():
                if self.messages == 0 or (self.messages < self.max_messages and self.nbytes + size <= self.max_bytes):
                    self.messages += 1
                    self.nbytes += size
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                self._changed.wait(min(_POLL, left))
        return False

    def leave(self, size: int) -> None:
        with self._changed:
            self.messages -= 1
            self.nbytes -= size
            self._changed.notify_all()

    def wake(self) -> None:
        """Let a waiting reader look at its `done` event now."""
        with self._changed:
            self._changed.notify_all()


def _drain(batches: queue.Queue[Any]) -> None:
    """Drop whatever waits in a stream's window (its handler has ended)."""
    while True:
        try:
            batches.get_nowait()
        except queue.Empty:
            return
