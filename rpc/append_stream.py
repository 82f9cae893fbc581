"""Appending over gRPC: what Append and AppendStream share (precheck, check the caller may
submit, charge the participant's limits, queue to the writer), and the AppendStream pipeline.

AppendStream pipelines: requests are prechecked (parse, validate, verify) on a small shared
pool so both cores verify, queued to the writer strictly in stream order, and answered in
order as their commits land. Each record gets its own answer (a result or a refusal); the
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
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import grpc

from lotledger.ledger.core import access
from lotledger.ledger.core.access import Caller
from lotledger.ledger.core.admission import Admitted
from lotledger.ledger.errors import LedgerError, RecordTooLarge, ResourceExhausted, StorageError
from lotledger.ledger.log import Ledger
from lotledger.ledger.tlog.entries import AppendResult
from lotledger.rpc.limits import Limits
from lotledger.rpc.ratelimit import UNVERIFIED, ParticipantLimiter
from lotledger.rpc.status import reason_of, status_code
from lotledger.v1 import ledger_service_pb2 as pb
from lotledger.v1 import records_pb2

# Below this many records per message, splitting the verification across threads costs more
# than it saves.
PARALLEL_MIN = 16
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


class Appender:
    """Admits records for the writer on behalf of callers. `verify_pool`: threads that
    precheck the second half of a large message beside the handler's thread (Ed25519
    verification releases the GIL). `limits`: rates and stream bounds; `limiter` holds the
    per-participant budgets they set."""

    def __init__(self, ledger: Ledger, verify_pool: ThreadPoolExecutor, limits: Limits) -> None:
        self.ledger = ledger
        self.pool = verify_pool
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

    def _try_enqueue(self, admitted: Admitted, caller: Caller) -> Future[AppendResult] | Exception:
        """`_enqueue_limited`, with a rate refusal returned as this record's answer. Raises
        Unavailable."""
        try:
            return self._enqueue_limited(admitted, caller)
        except ResourceExhausted as e:
            return e

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
        batches: queue.Queue[tuple[list[Future[AppendResult] | pb.AppendError], int] | None] = queue.Queue()
        window = _Window(limits.append_stream_window, limits.append_stream_window_bytes)
        reader_error: list[BaseException] = []
        done = threading.Event()  # the handler has ended: the reader stops and lets go of everything

        def read() -> None:
            # One thread reads and queues to the writer, so the stream's order is the log's.
            # When the handler cannot send (the client reads no answers), the window fills, this
            # thread stops reading (HTTP/2 flow control holds the client), and after the stall
            # time the call is cancelled: the writer itself never waits on a client.
            owner: str | None = None  # the participant whose stream slot this holds
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
                        log.warning("append stream of %r stalled: the client reads no answers; cancelling it", owner)
                        context.cancel()  # the handler is stuck sending to a client that does not read
                        raise ResourceExhausted(
                            "the client read no answers for "
                            f"{limits.append_stream_stall_seconds:g} s; the stream was cancelled",
                            reason="STREAM_STALLED",
                        ) from None
                    checked = self.precheck_batch(request.signed_records, caller)
                    del request
                    if owner is None:
                        first = next((a for a in checked if isinstance(a, Admitted)), None)
                        if first is not None:
                            self.limiter.open_stream(participant := self.participant_of(first, caller))
                            owner = participant
                    batches.put(([self._answer_later(item, caller) for item in checked], size))
                    del checked
            except BaseException as e:  # noqa: BLE001 - a broken client stream ends the pipeline
                log.debug("append stream reader ended: %r", e)
                reader_error.append(_detached(e) if isinstance(e, Exception) else e)
            finally:
                if owner is not None:
                    self.limiter.close_stream(owner)
                batches.put(None)

        threading.Thread(target=read, name="append-stream-read", daemon=True).start()
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
                items, size = batch
                del batch
                response = pb.AppendStreamResponse()
                for item in items:
                    outcome = response.outcomes.add(index=index)
                    if isinstance(item, pb.AppendError):
                        outcome.error.CopyFrom(item)
                    else:
                        try:
                            outcome.result.CopyFrom(result_pb(item.result()))
                        except Exception as e:  # noqa: BLE001 - every refusal is this record's answer
                            outcome.error.CopyFrom(error_pb(e))
                    index += 1
                del items
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

    def _answer_later(self, item: Admitted | Exception, caller: Caller) -> Future[AppendResult] | pb.AppendError:
        """A prechecked record queued to the writer (its pending commit), or its refusal as the
        small message that will answer it. Raises Unavailable."""
        if isinstance(item, Admitted):
            queued = self._try_enqueue(item, caller)
            if not isinstance(queued, Exception):
                return queued
            item = queued
        return error_pb(item)


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
