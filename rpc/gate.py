"""The call gate: every call of every service (the ledger, health, reflection) is counted from
the moment it opens, per caller and in total, and a stream that stops moving is ended.

Why. gRPC's sync server runs each call on one of `transport.max_workers` request threads for
as long as the call is open; a stream that never sends holds its thread until it is dropped.
Counting a stream only once a record is accepted (as the append limits do) let 33 silent
streams take all 32 threads, anonymously or with a read-only certificate. So, at the top of
every handler, before it reads anything:

- Who: the participant the client certificate names (lotledger.ledger.core.access); callers
  without one (no certificate, every caller of a plaintext server) share one anonymous
  allowance, `calls.anonymous_calls` and `calls.anonymous_streams`.
- Per participant: `calls.per_participant` calls at once, of which `calls.streams_per_participant`
  streams (a stream is any call whose request or response is streamed).
- In total: `Limits.stream_slots` streams, never more than half the request threads, so the
  other half always serves unary calls and reads.
- A refusal ends the call at once with RESOURCE_EXHAUSTED, an ErrorInfo reason
  (TOO_MANY_CALLS, TOO_MANY_STREAMS, SERVER_BUSY), a RetryInfo hint and a message that names
  the limit and what to do. A slot is given back when the handler returns (not when the
  client goes), so the counts are threads really held.

A watchdog thread ends streams that stop moving: one whose handler has waited
`calls.stream_idle_seconds` for the client's next message, or has been blocked
`calls.stream_stall_seconds` sending an answer the client does not take. It cancels them
(`ServicerContext.cancel` unblocks a sync handler; the client sees CANCELLED): the backstop
for every stream. AppendStream polices itself first with its own, shorter limits and answers
with a reason (STREAM_IDLE, lotledger.rpc.append_stream). Methods named `long_lived` (health
Watch, which waits for a status change by design) are counted but never cancelled; unary
methods named `uncounted` (health Check) pass uncounted, so health answers whatever the
caller's allowance.

The gate also decodes requests without letting a bad one become INTERNAL: gRPC's own answer to
bytes that do not parse as the method's request message is INTERNAL ("Exception deserializing
request!"), which tells a partner's engineer nothing. Every method's deserializer is wrapped so
that undecodable bytes arrive as a `Malformed` value, and the call ends INVALID_ARGUMENT with
reason MALFORMED_MESSAGE: at once for a unary request; for a request stream, after the
messages before it were handled (their answers stand), naming the message's position.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import Any

import grpc

from lotledger.ledger.core import access
from lotledger.ledger.errors import InvalidRecord, ResourceExhausted
from lotledger.rpc.limits import Limits
from lotledger.rpc.status import abort

log = logging.getLogger("lotledger.server")

Clock = Callable[[], float]
# What a caller without an identity is counted as.
ANONYMOUS: str | None = None
RETRY_AFTER = 1.0  # seconds: calls end all the time, so a slot is usually free again soon


def certificate_identity(context: grpc.ServicerContext) -> str | None:
    """The participant the caller's verified client certificate names, or None (anonymous: no
    TLS, no certificate, or a certificate naming no one participant)."""
    auth = context.auth_context()
    if b"ssl" not in auth.get("transport_security_type", ()):
        return ANONYMOUS
    return access.participant_of(auth)


class CallSlots:
    """The counts behind the gate: calls and streams open per participant and in total.
    Thread-safe; no gRPC in it."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self._calls: dict[str | None, int] = {}
        self._streams: dict[str | None, int] = {}
        self._total_streams = 0

    def enter(self, who: str | None, *, stream: bool) -> None:
        """Count one more call (a stream when `stream`) for `who` (ANONYMOUS: None).

        Raises ResourceExhausted (TOO_MANY_CALLS, TOO_MANY_STREAMS, SERVER_BUSY, with
        retry_after); nothing is counted then."""
        limits = self.limits
        anonymous = who is ANONYMOUS
        max_calls = limits.calls_anonymous_calls if anonymous else limits.calls_per_participant
        max_streams = limits.calls_anonymous_streams if anonymous else limits.calls_streams_per_participant
        with self._lock:
            calls, streams = self._calls.get(who, 0), self._streams.get(who, 0)
            if calls >= max_calls:
                raise _refusal("TOO_MANY_CALLS", who, calls, max_calls)
            if stream and streams >= max_streams:
                raise _refusal("TOO_MANY_STREAMS", who, streams, max_streams)
            if stream and self._total_streams >= limits.stream_slots:
                raise ResourceExhausted(
                    f"the server has {self._total_streams} streaming calls open, as many as it serves at once "
                    f"([calls] max_streams, at most half of [transport] max_workers = {limits.transport_max_workers}); "
                    f"retry in a few seconds",
                    reason="SERVER_BUSY",
                    retry_after=RETRY_AFTER,
                )
            self._calls[who] = calls + 1
            if stream:
                self._streams[who] = streams + 1
                self._total_streams += 1

    def leave(self, who: str | None, *, stream: bool) -> None:
        with self._lock:
            _decrement(self._calls, who)
            if stream:
                _decrement(self._streams, who)
                self._total_streams -= 1

    def open_calls(self, who: str | None) -> int:
        """Calls open for `who` (ANONYMOUS: None), streams included."""
        with self._lock:
            return self._calls.get(who, 0)

    def open_streams(self) -> int:
        """Streams open, all callers together."""
        with self._lock:
            return self._total_streams

    def open_streams_of(self, who: str | None) -> int:
        with self._lock:
            return self._streams.get(who, 0)


def _decrement(counts: dict[str | None, int], who: str | None) -> None:
    left = counts.get(who, 0) - 1
    if left > 0:
        counts[who] = left
    else:
        counts.pop(who, None)


def _refusal(reason: str, who: str | None, open_now: int, limit: int) -> ResourceExhausted:
    streams = reason == "TOO_MANY_STREAMS"
    what = "streaming calls" if streams else "calls"
    if who is ANONYMOUS:
        key = "anonymous_streams" if streams else "anonymous_calls"
        message = (
            f"anonymous callers (no client certificate) together have {open_now} {what} open, their limit "
            f"([calls] {key} = {limit}); connect with a client certificate (mTLS) for an allowance of your "
            "own, or end one and retry"
        )
    else:
        key = "streams_per_participant" if streams else "per_participant"
        message = (
            f"participant {who!r} already has {open_now} {what} open, its limit ([calls] {key} = {limit}); "
            "end one you no longer use (a stream left open counts until it ends) and retry"
        )
    return ResourceExhausted(message, reason=reason, retry_after=RETRY_AFTER)


@dataclass(frozen=True)
class Malformed:
    """Request bytes that do not parse as the method's request message (see the module doc)."""

    size: int
    error: str


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """`deserializer`, returning a Malformed value instead of raising."""
    if deserializer is None:
        return None

    def decode(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as e:  # noqa: BLE001 - protobuf raises DecodeError, and others on odd input
            return Malformed(len(data), str(e) or type(e).__name__)

    return decode


def _malformed(method: str, bad: Malformed, position: int | None = None) -> InvalidRecord:
    where = f"message {position} of the request stream" if position is not None else "the request"
    return InvalidRecord(
        f"{method}: {where} ({bad.size} bytes) does not parse as the method's request message: {bad.error}; "
        "send a serialized message of the type the .proto gives (lotledger/v1/ledger.proto)",
        reason="MALFORMED_MESSAGE",
        field="request",
    )


@dataclass(eq=False)
class _Call:
    """A streaming call the watchdog keeps an eye on. `reading_since`: the handler has been
    waiting for the client's next message since then; `sending_since`: blocked sending an
    answer since then (None when not)."""

    method: str
    who: str | None
    context: grpc.ServicerContext
    reading_since: float | None = None
    sending_since: float | None = None
    cancelled: bool = False
    malformed: InvalidRecord | None = None  # the request stream held a message that did not parse


class _Requests(Iterator[Any]):
    """A request stream that tells the watchdog when the handler waits on it."""

    def __init__(self, call: _Call, requests: Iterator[Any], clock: Clock) -> None:
        self._call, self._requests, self._clock = call, requests, clock
        self._count = 0

    def __next__(self) -> Any:
        """The next message; a malformed one ends the stream here (the handler sees the end of
        the requests, and the gate ends the call INVALID_ARGUMENT once the handler is done)."""
        if self._call.malformed is not None:
            raise StopIteration
        self._call.reading_since = self._clock()
        try:
            request = next(self._requests)
        finally:
            self._call.reading_since = None
        if isinstance(request, Malformed):
            self._call.malformed = _malformed(self._call.method, request, self._count)
            raise StopIteration
        self._count += 1
        return request


class CallGate(grpc.ServerInterceptor):  # type: ignore[misc]
    """A server interceptor that wraps every handler in the gate (see the module doc).

    `identify`: the caller's participant from its context, ANONYMOUS (None) for none;
    `long_lived`: full method names ("/pkg.Service/Method") of streams that may wait
    indefinitely by design (counted, never cancelled); `uncounted`: unary methods that answer
    at once from memory and must answer whatever the caller's allowance (health Check: it
    tells whether the server serves, not whether this caller may). Call `close` when the
    server stops.
    """

    def __init__(
        self,
        limits: Limits,
        *,
        identify: Callable[[grpc.ServicerContext], str | None] = certificate_identity,
        long_lived: Collection[str] = (),
        uncounted: Collection[str] = (),
        clock: Clock = time.monotonic,
    ) -> None:
        self.limits = limits
        self.slots = CallSlots(limits)
        self._identify = identify
        self._long_lived = frozenset(long_lived)
        self._uncounted = frozenset(uncounted)
        self._clock = clock
        self._lock = threading.Lock()
        self._watched: set[_Call] = set()
        self._stop = threading.Event()
        shortest = min(limits.calls_stream_idle_seconds, limits.calls_stream_stall_seconds)
        self._tick = min(0.5, max(0.01, shortest / 5))
        self._watchdog = threading.Thread(target=self._watch, name="call-gate-watchdog", daemon=True)
        self._watchdog.start()

    def close(self) -> None:
        self._stop.set()

    def open_streams(self) -> int:
        """Streaming calls open now, all callers together."""
        return self.slots.open_streams()

    # ---- wrapping the handlers ---------------------------------------------------------------

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None:
            return handler
        kw = {
            "request_deserializer": _tolerant(handler.request_deserializer),
            "response_serializer": handler.response_serializer,
        }
        if method in self._uncounted and not handler.request_streaming and not handler.response_streaming:
            return grpc.unary_unary_rpc_method_handler(self._checked(method, handler.unary_unary), **kw)
        if handler.request_streaming and handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(self._streamed(method, handler.stream_stream, True), **kw)
        if handler.request_streaming:
            return grpc.stream_unary_rpc_method_handler(self._single(method, handler.stream_unary, True), **kw)
        if handler.response_streaming:
            return grpc.unary_stream_rpc_method_handler(self._streamed(method, handler.unary_stream, False), **kw)
        return grpc.unary_unary_rpc_method_handler(self._single(method, handler.unary_unary, False), **kw)

    @staticmethod
    def _checked(
        method: str, behavior: Callable[[Any, grpc.ServicerContext], Any]
    ) -> Callable[[Any, grpc.ServicerContext], Any]:
        """An uncounted unary handler that still refuses a malformed request as such."""

        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            if isinstance(request, Malformed):
                abort(context, _malformed(method, request))
            return behavior(request, context)

        return handle

    def _single(
        self, method: str, behavior: Callable[[Any, grpc.ServicerContext], Any], streamed_requests: bool
    ) -> Callable[[Any, grpc.ServicerContext], Any]:
        """A handler with one response (unary-unary, or stream-unary when `streamed_requests`)."""

        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            if isinstance(request, Malformed):
                abort(context, _malformed(method, request))
            call = self._enter(method, context, stream=streamed_requests)
            try:
                if streamed_requests:
                    request = _Requests(call, request, self._clock)
                response = behavior(request, context)
                if call.malformed is not None:
                    abort(context, call.malformed)
                return response
            finally:
                self._leave(call, stream=streamed_requests)

        return handle

    def _streamed(
        self, method: str, behavior: Callable[[Any, grpc.ServicerContext], Iterator[Any]], streamed_requests: bool
    ) -> Callable[[Any, grpc.ServicerContext], Iterator[Any]]:
        """A handler with streamed responses. A generator, so the gate runs when gRPC first
        asks for a response, on the request thread, and a call gRPC never starts takes no slot."""

        def handle(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            if isinstance(request, Malformed):
                abort(context, _malformed(method, request))
            call = self._enter(method, context, stream=True)
            responses: Iterator[Any] | None = None
            try:
                if streamed_requests:
                    request = _Requests(call, request, self._clock)
                responses = iter(behavior(request, context))
                for response in responses:
                    call.sending_since = self._clock()
                    yield response
                    call.sending_since = None
                if call.malformed is not None:
                    abort(context, call.malformed)
            finally:
                close = getattr(responses, "close", None)
                if close is not None:
                    close()
                self._leave(call, stream=True)

        return handle

    def _enter(self, method: str, context: grpc.ServicerContext, *, stream: bool) -> _Call:
        """Take a slot for this call, or end it with the refusal's status (abort raises)."""
        who = self._identify(context)
        try:
            self.slots.enter(who, stream=stream)
        except ResourceExhausted as e:
            log.debug("refused %s for %s: %s", method, who or "an anonymous caller", e.reason)
            abort(context, e)
        call = _Call(method, who, context)
        if stream and method not in self._long_lived:
            with self._lock:
                self._watched.add(call)
        return call

    def _leave(self, call: _Call, *, stream: bool) -> None:
        if stream:
            with self._lock:
                self._watched.discard(call)
        self.slots.leave(call.who, stream=stream)

    # ---- the watchdog ------------------------------------------------------------------------

    def _watch(self) -> None:
        idle, stall = self.limits.calls_stream_idle_seconds, self.limits.calls_stream_stall_seconds
        while not self._stop.wait(self._tick):
            now = self._clock()
            with self._lock:
                calls = [c for c in self._watched if not c.cancelled]
            for call in calls:
                reading, sending = call.reading_since, call.sending_since
                if reading is not None and now - reading > idle:
                    why = f"its client sent nothing for {idle:g} s ([calls] stream_idle_seconds)"
                elif sending is not None and now - sending > stall:
                    why = f"its client took no answer for {stall:g} s ([calls] stream_stall_seconds)"
                else:
                    continue
                call.cancelled = True
                log.warning("cancelling %s of %s: %s", call.method, call.who or "an anonymous caller", why)
                call.context.cancel()
