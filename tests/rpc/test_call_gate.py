"""Calls that hold the server: streams that never send, idle reflection streams, and a client
that reads nothing, on a real loopback server. Every call is counted from the moment it opens,
per identity and in total; streams may hold only part of the request threads, so reads and
unary calls always find one; an idle stream is ended within seconds; a refusal is
RESOURCE_EXHAUSTED with a stable reason and a message that says what to do."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status
from helpers import log_state, shipment, signed

from lotledger.ledger.tlog.entries import AppendResult
from lotledger.rpc.limits import Limits
from lotledger.rpc.server import SERVICE_NAME
from lotledger.v1 import ledger_service_pb2 as pb
from lotledger.v1 import trace_pb2

FAST = dict(append_rate=1e6, append_burst=10**6)


def reason(err: grpc.RpcError) -> str:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None, f"{err.code()} without details: {err.details()}"
    info = error_details_pb2.ErrorInfo()
    assert any(d.Unpack(info) for d in status.details)
    return info.reason


def silent(until: threading.Event) -> Iterator[Any]:
    """A request stream that sends nothing until `until` is set (then ends)."""
    until.wait(60)
    return
    yield


class Opened:
    """Streaming calls opened and left hanging; `outcome(i)` is how call i ended: "OK" or the
    RpcError, waited for up to `timeout`."""

    def __init__(self) -> None:
        self.calls: list[Any] = []
        self.ended: list[threading.Event] = []
        self.results: list[grpc.RpcError | str | None] = []
        self.times: list[float] = []
        self.started = time.monotonic()

    def open(self, start: Callable[[], Any]) -> None:
        call = start()
        i = len(self.calls)
        self.calls.append(call)
        self.ended.append(threading.Event())
        self.results.append(None)
        self.times.append(0.0)

        def drain() -> None:
            try:
                for _ in call:
                    pass
                self.results[i] = "OK"
            except grpc.RpcError as e:
                self.results[i] = e
            self.times[i] = time.monotonic() - self.started
            self.ended[i].set()

        threading.Thread(target=drain, daemon=True).start()

    def outcome(self, i: int, timeout: float) -> grpc.RpcError | str | None:
        self.ended[i].wait(timeout)
        return self.results[i]

    def outcomes(self, timeout: float) -> list[tuple[str, float]]:
        """(reason or code name, seconds after opening) of every call, waiting up to `timeout`."""
        out = []
        for i in range(len(self.calls)):
            err = self.outcome(i, timeout)
            assert isinstance(err, grpc.RpcError), f"call {i} ended {err!r}"
            name = reason(err) if err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED else err.code().name
            out.append((name, self.times[i]))
        return out

    def cancel(self) -> None:
        for call in self.calls:
            call.cancel()


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


def quick_reads(s: SimpleNamespace, participant: str | None = None, within: float = 2.0) -> None:
    """Reads and a unary append answer at once, however many streams hang."""
    stub = s.stub(participant)
    t0 = time.monotonic()
    assert stub.GetCheckpoint(pb.GetCheckpointRequest(), timeout=within).tree_size >= 0
    trace = trace_pb2.TraceRequest(lot="01/09520000000011/10/L9", direction=trace_pb2.TRACE_DIRECTION_DOWNSTREAM)
    with pytest.raises(grpc.RpcError) as unknown:  # an answer, at once: no such lot
        stub.Trace(trace, timeout=within)
    assert unknown.value.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED)
    who = participant or "acme"
    if who in ("acme", "plant"):
        record = signed(shipment(who), s.world.keys[who])
        assert stub.Append(pb.AppendRequest(signed_record=record), timeout=within).result.seq > 0
    assert time.monotonic() - t0 < within


def test_idle_append_streams_cannot_stall_the_server(serve: Callable[..., SimpleNamespace]) -> None:
    """The finding: 33 AppendStreams that never send took all 32 request threads until they
    were dropped after 60 s. Now the anonymous share holds only a few of them, the rest are
    refused at once, reads go on, and the idle ones end within the idle time."""
    s = serve()
    limits: Limits = s.server.limits
    hold = threading.Event()
    opened = Opened()
    try:
        for _ in range(33):
            opened.open(lambda: s.stub().AppendStream(silent(hold), timeout=60))
        quick_reads(s)
        outcomes = opened.outcomes(limits.append_stream_idle_seconds + 5)
    finally:
        hold.set()
        opened.cancel()
    refused = [t for r, t in outcomes if r == "TOO_MANY_STREAMS"]
    idle = [t for r, t in outcomes if r == "STREAM_IDLE"]
    assert len(refused) == 33 - limits.calls_anonymous_streams and len(idle) == limits.calls_anonymous_streams
    assert max(refused) < 3, "refusals are immediate, not queued"
    assert max(idle) < limits.append_stream_idle_seconds + 3
    err = next(e for e in opened.results if isinstance(e, grpc.RpcError) and reason(e) == "TOO_MANY_STREAMS")
    assert isinstance(err, grpc.RpcError)
    assert "anonymous" in (err.details() or "") and "client certificate" in (err.details() or "")
    # Their slots are free again.
    wait_until(lambda: s.server.gate.open_streams() == 0)
    acme = s.world.keys["acme"]
    assert all(isinstance(o, AppendResult) for o in s.client().append_stream([signed(shipment(), acme)]))


def test_the_defaults_close_a_silent_stream_within_seconds() -> None:
    limits = Limits()
    assert limits.append_stream_idle_seconds <= 10
    assert limits.calls_stream_idle_seconds <= 10
    assert limits.stream_slots < limits.transport_max_workers
    assert limits.calls_anonymous_streams < limits.calls_max_streams


def test_idle_reflection_streams_are_capped_and_ended(serve: Callable[..., SimpleNamespace]) -> None:
    """Server reflection is a bidirectional stream too: one that sends nothing would hold a
    request thread forever. It counts against the same shares and is cancelled when idle."""
    s = serve(calls_stream_idle_seconds=1.0)
    hold = threading.Event()
    opened = Opened()
    try:
        for _ in range(33):
            opened.open(
                lambda: reflection_pb2_grpc.ServerReflectionStub(s.channel()).ServerReflectionInfo(
                    silent(hold), timeout=60
                )
            )
        quick_reads(s)
        outcomes = opened.outcomes(8)
    finally:
        hold.set()
        opened.cancel()
    limits: Limits = s.server.limits
    assert sorted({r for r, _ in outcomes}) == ["CANCELLED", "TOO_MANY_STREAMS"]
    assert len([r for r, _ in outcomes if r == "CANCELLED"]) == limits.calls_anonymous_streams
    assert max(t for _, t in outcomes) < 1.0 + 3
    # Reflection itself still works.
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    answer = next(iter(reflection_pb2_grpc.ServerReflectionStub(s.channel()).ServerReflectionInfo(iter([request]))))
    assert any(svc.name == "lotledger.v1.LedgerService" for svc in answer.list_services_response.service)


def test_streams_keep_threads_free_for_unary_calls(serve: Callable[..., SimpleNamespace]) -> None:
    """With the anonymous allowance above the server's total of streams, the total still
    binds: streams take at most half the request threads, those beyond are refused
    SERVER_BUSY, and unary calls are served on the other half."""
    s = serve(calls_anonymous_streams=12, calls_max_streams=8, transport_max_workers=16)
    hold = threading.Event()
    opened = Opened()
    try:
        for _ in range(12):
            opened.open(lambda: s.stub().AppendStream(silent(hold), timeout=60))
        quick_reads(s)
        time.sleep(0.5)
        assert s.server.gate.open_streams() == 8
        ended = [(i, e) for i, e in enumerate(opened.results) if e is not None]
        assert len(ended) == 4
        for _, err in ended:
            assert isinstance(err, grpc.RpcError) and reason(err) == "SERVER_BUSY"
            assert "retry" in (err.details() or "") and "max_streams" in (err.details() or "")
    finally:
        hold.set()
        opened.cancel()


def test_a_list_entries_whose_client_reads_nothing_is_cancelled(serve: Callable[..., SimpleNamespace]) -> None:
    """A server stream whose client stops reading blocks its handler in send: it is cancelled
    after the stream stall time and its slot freed."""
    s = serve(calls_stream_stall_seconds=1.0, **FAST)
    acme = s.world.keys["acme"]
    outcomes = list(s.client().append_stream([signed(shipment(), acme) for _ in range(12000)], batch=1000))
    assert all(isinstance(o, AppendResult) for o in outcomes)
    gate = s.server.gate
    # No BDP probing: the client's window stays small, as a stuck client's would.
    stub = s.stub(**{"grpc.http2.bdp_probe": 0})
    call = stub.ListEntries(pb.ListEntriesRequest(), timeout=60)
    next(call)  # the call is open; now read nothing more
    t0 = time.monotonic()
    while gate.open_streams() and time.monotonic() - t0 < 10:
        time.sleep(0.05)
    assert gate.open_streams() == 0, "the stalled ListEntries still holds its slot"
    assert time.monotonic() - t0 < 5
    with pytest.raises(grpc.RpcError) as info:
        for _ in call:
            pass
    assert info.value.code() == grpc.StatusCode.CANCELLED
    quick_reads(s)


def test_refused_streams_leave_the_log_as_it_was(serve: Callable[..., SimpleNamespace]) -> None:
    s = serve(calls_anonymous_streams=1, **FAST)
    acme = s.world.keys["acme"]
    hold = threading.Event()
    opened = Opened()
    try:
        opened.open(lambda: s.stub().AppendStream(silent(hold), timeout=60))
        time.sleep(0.3)
        before = log_state(s.ledger)
        request = pb.AppendStreamRequest(signed_records=[signed(shipment(), acme)])
        with pytest.raises(grpc.RpcError) as info:
            list(s.stub().AppendStream(iter([request]), timeout=10))
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and reason(info.value) == "TOO_MANY_STREAMS"
        assert log_state(s.ledger) == before
    finally:
        hold.set()
        opened.cancel()


def test_an_auditor_certificate_cannot_stall_the_server(serve: Callable[..., SimpleNamespace]) -> None:
    """The finding with a read-only auditor certificate: its streams count against its own
    share from the moment they open, so its 33 silent streams take only that share; the
    partners go on appending and reading."""
    s = serve(mtls=True)
    limits: Limits = s.server.limits
    hold = threading.Event()
    opened = Opened()
    try:
        for _ in range(33):
            opened.open(lambda: s.stub("aud").AppendStream(silent(hold), timeout=60))
        quick_reads(s, "acme")
        quick_reads(s, "qa1")
        plant = s.world.keys["plant"]
        answers = list(s.client("plant").append_stream([signed(shipment("plant"), plant) for _ in range(3)]))
        assert all(isinstance(a, AppendResult) for a in answers)
        outcomes = opened.outcomes(limits.append_stream_idle_seconds + 5)
    finally:
        hold.set()
        opened.cancel()
    share = limits.calls_streams_per_participant
    refused = [t for r, t in outcomes if r == "TOO_MANY_STREAMS"]
    assert len(refused) == 33 - share and max(refused) < 3
    assert [r for r, _ in outcomes].count("STREAM_IDLE") == share
    err = next(e for e in opened.results if isinstance(e, grpc.RpcError) and reason(e) == "TOO_MANY_STREAMS")
    assert isinstance(err, grpc.RpcError) and "'aud'" in (err.details() or "")


def test_one_identity_cannot_take_every_call(serve: Callable[..., SimpleNamespace]) -> None:
    """Calls of any kind count per identity: with its streams and calls at the limit, the
    auditor's next unary call is refused TOO_MANY_CALLS; another identity is served."""
    s = serve(mtls=True, calls_per_participant=3, calls_streams_per_participant=3)
    hold = threading.Event()
    opened = Opened()
    try:
        for _ in range(3):
            opened.open(lambda: s.stub("aud").AppendStream(silent(hold), timeout=60))
        time.sleep(0.3)
        with pytest.raises(grpc.RpcError) as info:
            s.stub("aud").GetCheckpoint(pb.GetCheckpointRequest(), timeout=5)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and reason(info.value) == "TOO_MANY_CALLS"
        assert "'aud'" in (info.value.details() or "")
        quick_reads(s, "qa1")
    finally:
        hold.set()
        opened.cancel()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 5:  # the slots come back when the streams end
        try:
            s.stub("aud").GetCheckpoint(pb.GetCheckpointRequest(), timeout=5)
            break
        except grpc.RpcError:
            time.sleep(0.05)
    else:
        pytest.fail("the auditor's slots were not released")


def test_health_check_answers_whatever_the_callers_allowance(serve: Callable[..., SimpleNamespace]) -> None:
    """With the anonymous allowance spent, a read is refused TOO_MANY_CALLS, but health Check
    still answers SERVING: it says whether the server serves, not whether this caller may."""
    s = serve(calls_anonymous_calls=2, calls_anonymous_streams=2)
    hold = threading.Event()
    opened = Opened()
    try:
        for _ in range(2):
            opened.open(lambda: s.stub().AppendStream(silent(hold), timeout=60))
        wait_until(lambda: s.server.gate.open_streams() == 2)
        with pytest.raises(grpc.RpcError) as info:
            s.stub().GetCheckpoint(pb.GetCheckpointRequest(), timeout=5)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and reason(info.value) == "TOO_MANY_CALLS"
        assert "anonymous_calls = 2" in (info.value.details() or "")
        health = health_pb2_grpc.HealthStub(s.channel())
        answer = health.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        hold.set()
        opened.cancel()
