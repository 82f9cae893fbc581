"""The limits on a real loopback server: the append rate (RESOURCE_EXHAUSTED with a RetryInfo
hint), streams per participant, records per stream, deadlines, a client that stops reading
or sends slowly, and malformed or truncated streams. Each refusal leaves the log as it was
(or, for a stream cut short, holds exactly the records that were answered), and the server
goes on serving."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from helpers import log_state, make_world, shipment, signed

from lotledger.ledger.errors import NotFound, ResourceExhausted
from lotledger.ledger.log import LedgerConfig
from lotledger.ledger.tlog.entries import AppendResult
from lotledger.rpc.client import LedgerClient, StreamRefusal
from lotledger.rpc.limits import Limits
from lotledger.rpc.server import SERVICE_NAME, LedgerServer
from lotledger.v1 import ledger_service_pb2 as pb
from lotledger.v1 import ledger_service_pb2_grpc as pb_grpc
from lotledger.v1 import records_pb2

FAST = dict(append_rate=1e6, append_burst=10**6)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., SimpleNamespace]]:
    """serve(**limits): the test world behind a real server with these limits."""
    started: list[tuple[LedgerServer, LedgerClient]] = []

    def start(**limits: float) -> SimpleNamespace:
        world, ledger = make_world(tmp_path)
        ledger.close()
        server = LedgerServer(
            world.data_dir, "127.0.0.1:0", config=LedgerConfig(checkpoint_interval=0.05), limits=Limits(**limits)
        ).start()
        client = LedgerClient(server.address)
        client.wait_ready()
        started.append((server, client))
        stub = pb_grpc.LedgerServiceStub(client.channel)
        return SimpleNamespace(world=world, server=server, client=client, ledger=server.ledger, stub=stub)

    yield start
    for server, client in started:
        client.close()
        server.stop(grace=1)


def details(err: grpc.RpcError) -> tuple[error_details_pb2.ErrorInfo, error_details_pb2.RetryInfo | None]:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    info, retry = error_details_pb2.ErrorInfo(), None
    for d in status.details:
        candidate = error_details_pb2.RetryInfo()
        if not d.Unpack(info) and d.Unpack(candidate):
            retry = candidate
    return info, retry


def one(request: pb.AppendStreamRequest, then: threading.Event | None = None) -> Iterator[pb.AppendStreamRequest]:
    yield request
    if then is not None:
        then.wait(20)


def test_flood_beyond_the_rate_is_resource_exhausted_with_a_retry_hint(serve: Callable[..., SimpleNamespace]) -> None:
    s = serve(append_rate=4, append_burst=3)
    acme = s.world.keys["acme"]
    for _ in range(3):
        s.stub.Append(pb.AppendRequest(signed_record=signed(shipment(), acme)), timeout=10)
    flood = signed(shipment(), acme)
    before = log_state(s.ledger)
    with pytest.raises(grpc.RpcError) as info:
        s.stub.Append(pb.AppendRequest(signed_record=flood), timeout=10)
    err = info.value
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    error_info, retry = details(err)
    assert error_info.reason == "RATE_LIMITED"
    assert retry is not None and 0 < retry.retry_delay.ToNanoseconds() <= 250_000_000
    assert "retry in" in err.details()
    assert log_state(s.ledger) == before
    # Another participant has its own budget; the client's error carries the hint too.
    s.client.append(signed(shipment("plant"), s.world.keys["plant"]))
    with pytest.raises(ResourceExhausted) as refused:
        s.client.append(flood)
    assert refused.value.retry_after is not None and refused.value.reason == "RATE_LIMITED"
    time.sleep(refused.value.retry_after + 0.05)
    assert isinstance(s.client.append(flood), AppendResult)


def test_flood_in_a_stream_refuses_the_records_beyond_the_rate(serve: Callable[..., SimpleNamespace]) -> None:
    s = serve(append_rate=1, append_burst=5)
    acme = s.world.keys["acme"]
    outcomes = list(s.client.append_stream([signed(shipment(), acme) for _ in range(8)], batch=8))
    assert [isinstance(o, AppendResult) for o in outcomes] == [True] * 5 + [False] * 3
    refusal = outcomes[5]
    assert isinstance(refusal, StreamRefusal) and refusal.error.reason == "RATE_LIMITED"
    assert "retry in" in refusal.error.message


def test_concurrent_streams_per_participant(serve: Callable[..., SimpleNamespace]) -> None:
    s = serve(append_streams_per_participant=1, **FAST)
    acme, plant = s.world.keys["acme"], s.world.keys["plant"]
    hold = threading.Event()
    first = s.stub.AppendStream(one(pb.AppendStreamRequest(signed_records=[signed(shipment(), acme)]), hold))
    assert next(first).outcomes[0].HasField("result")  # the first stream holds acme's one slot
    before = log_state(s.ledger)
    second = pb.AppendStreamRequest(signed_records=[signed(shipment(), acme)])
    with pytest.raises(grpc.RpcError) as info:
        list(s.stub.AppendStream(one(second), timeout=10))
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert details(info.value)[0].reason == "TOO_MANY_STREAMS"
    assert log_state(s.ledger) == before
    other = list(s.stub.AppendStream(one(pb.AppendStreamRequest(signed_records=[signed(shipment("plant"), plant)]))))
    assert other[0].outcomes[0].HasField("result")
    hold.set()
    list(first)
    deadline = time.monotonic() + 5
    while s.server.server and time.monotonic() < deadline:  # the slot is released when the stream ends
        try:
            assert list(s.stub.AppendStream(one(second), timeout=10))[0].outcomes[0].HasField("result")
            break
        except grpc.RpcError:
            time.sleep(0.05)
    else:
        pytest.fail("the stream slot was not released")


def test_records_per_stream(serve: Callable[..., SimpleNamespace]) -> None:
    s = serve(append_records_per_stream=5, **FAST)
    acme = s.world.keys["acme"]
    size = s.ledger.size
    with pytest.raises(ResourceExhausted) as info:
        list(s.client.append_stream([signed(shipment(), acme) for _ in range(8)], batch=1))
    assert info.value.reason == "STREAM_RECORD_LIMIT"
    assert s.ledger.size == size + 5


def test_too_many_records_in_one_message_follows_the_config(serve: Callable[..., SimpleNamespace]) -> None:
    s = serve(append_records_per_message=3, **FAST)
    acme = s.world.keys["acme"]
    before = log_state(s.ledger)
    request = pb.AppendStreamRequest(signed_records=[signed(shipment(), acme) for _ in range(4)])
    with pytest.raises(grpc.RpcError) as info:
        list(s.stub.AppendStream(one(request), timeout=10))
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert log_state(s.ledger) == before


def test_oversized_message_follows_the_config(serve: Callable[..., SimpleNamespace]) -> None:
    s = serve(transport_max_message_bytes=200_000)
    acme = s.world.keys["acme"]
    before = log_state(s.ledger)
    big = pb.AppendStreamRequest(signed_records=[signed(shipment(), acme) for _ in range(1000)])
    assert big.ByteSize() > 200_000
    with pytest.raises(grpc.RpcError) as info:
        list(s.stub.AppendStream(one(big), timeout=10))
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert log_state(s.ledger) == before
    assert isinstance(s.client.append(signed(shipment(), acme)), AppendResult)


class WriterGate:
    """A commit listener that holds the writer after its next commit until released: a real
    way to make the writer slow, to see what happens to calls whose deadline passes."""

    def __init__(self) -> None:
        self.armed, self.holding, self.release = False, threading.Event(), threading.Event()

    def __call__(self, _added: list[tuple[int, records_pb2.Record]]) -> None:
        if self.armed:
            self.armed = False
            self.holding.set()
            self.release.wait(20)


def test_a_record_whose_deadline_passed_while_queued_is_never_committed(serve: Callable[..., SimpleNamespace]) -> None:
    s = serve(**FAST)
    acme = s.world.keys["acme"]
    gate = WriterGate()
    s.ledger.add_commit_listener(gate)
    gate.armed = True
    s.client.append(signed(shipment(), acme))  # committed; the writer now waits in the gate
    assert gate.holding.wait(5)
    late = shipment()
    with pytest.raises(grpc.RpcError) as info:
        s.stub.Append(pb.AppendRequest(signed_record=signed(late, acme)), timeout=0.3)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    size = s.ledger.size
    gate.release.set()
    after = s.client.append(signed(shipment(), acme))
    assert after.seq == size, "the abandoned record took no seq"
    with pytest.raises(NotFound):
        s.ledger.seq_of(late.record_id)


def test_a_client_that_stops_reading_cannot_hold_the_writer(serve: Callable[..., SimpleNamespace]) -> None:
    s = serve(append_stream_stall_seconds=1.0, append_stream_window=2, **FAST)
    acme, plant = s.world.keys["acme"], s.world.keys["plant"]
    limiter = s.server.servicer.limiter

    def flood() -> Iterator[pb.AppendStreamRequest]:
        for _ in range(50_000):
            yield pb.AppendStreamRequest(signed_records=[signed(shipment(), acme)])

    # No BDP probing: the client's receive window stays at its initial size, as a stuck
    # client's would once its buffers are full. The client never reads an answer.
    with grpc.insecure_channel(s.server.address, options=[("grpc.http2.bdp_probe", 0)]) as channel:
        call = pb_grpc.LedgerServiceStub(channel).AppendStream(flood(), timeout=60)
        start = time.monotonic()
        while limiter.open_streams("acme") == 0 and time.monotonic() - start < 10:
            time.sleep(0.01)
        assert limiter.open_streams("acme") == 1
        while limiter.open_streams("acme") and time.monotonic() - start < 30:
            # Meanwhile the writer serves everyone else at once.
            t0 = time.monotonic()
            s.client.append(signed(shipment("plant"), plant))
            assert time.monotonic() - t0 < 2.0
            time.sleep(0.1)
        assert limiter.open_streams("acme") == 0, "the stalled stream was never ended"
        size = s.ledger.size
        time.sleep(0.5)
        assert s.ledger.size == size, "the server stopped taking records from the stalled stream"
        call.cancel()
    # The log is whole and the server goes on serving.
    assert isinstance(s.client.append(signed(shipment(), acme)), AppendResult)
    assert s.client.get_entry(s.ledger.size - 1).seq == s.ledger.size - 1


def test_a_client_that_sends_slowly_is_ended_when_idle(serve: Callable[..., SimpleNamespace]) -> None:
    s = serve(append_stream_idle_seconds=0.5, **FAST)
    acme = s.world.keys["acme"]
    hold = threading.Event()
    call = s.stub.AppendStream(one(pb.AppendStreamRequest(signed_records=[signed(shipment(), acme)]), hold), timeout=20)
    try:
        assert next(call).outcomes[0].HasField("result")
        with pytest.raises(grpc.RpcError) as info:
            next(call)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert details(info.value)[0].reason == "STREAM_IDLE"
    finally:
        hold.set()
    assert isinstance(s.client.append(signed(shipment(), acme)), AppendResult)


APPEND_STREAM = f"/{SERVICE_NAME}/AppendStream"


def raw_stream(address: str, chunks: list[bytes]) -> grpc.RpcError | None:
    """Send these bytes as AppendStream messages, as a broken or hostile client would."""
    with grpc.insecure_channel(address) as channel:
        method = channel.stream_stream(
            APPEND_STREAM, request_serializer=lambda b: b, response_deserializer=pb.AppendStreamResponse.FromString
        )
        try:
            list(method(iter(chunks), timeout=10))
        except grpc.RpcError as e:
            return e
    return None


@pytest.mark.parametrize(
    "garbage",
    [b"\xff\xff\xff\xff", b"\x0a\x80\x80\x80\x80\x10", b"\x0a\x05\x0a\x03abc", bytes(range(256))],
    ids=["bad-varint", "huge-length", "bad-nested-record", "noise"],
)
def test_a_malformed_protobuf_changes_nothing_and_the_server_goes_on(
    serve: Callable[..., SimpleNamespace], garbage: bytes
) -> None:
    s = serve(**FAST)
    acme = s.world.keys["acme"]
    before = log_state(s.ledger)
    err = raw_stream(s.server.address, [garbage])
    if garbage.startswith(b"\x0a\x05"):
        assert err is None  # it parses: a SignedRecord of garbage, refused in its outcome
    else:
        assert err is not None and err.code() == grpc.StatusCode.INVALID_ARGUMENT  # MALFORMED_MESSAGE (rpc/gate.py)
    assert log_state(s.ledger) == before
    assert isinstance(s.client.append(signed(shipment(), acme)), AppendResult)


@pytest.mark.parametrize("fraction", [0.3, 0.5, 0.99])
def test_a_truncated_stream_changes_nothing_and_the_server_goes_on(
    serve: Callable[..., SimpleNamespace], fraction: float
) -> None:
    s = serve(**FAST)
    acme = s.world.keys["acme"]
    whole = pb.AppendStreamRequest(signed_records=[signed(shipment(), acme) for _ in range(3)]).SerializeToString()
    before = log_state(s.ledger)
    # Either it does not parse (INVALID_ARGUMENT, MALFORMED_MESSAGE: rpc/gate.py), or it parses into
    # cut-off records whose signatures fail: answered as refusals. Never a partial write.
    err = raw_stream(s.server.address, [whole[: int(len(whole) * fraction)]])
    assert err is None or err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert log_state(s.ledger) == before
    # A client that dies mid-stream: what was answered is in the log, nothing else is half-written.
    with grpc.insecure_channel(s.server.address) as channel:
        gate = threading.Event()
        records = [signed(shipment(), acme) for _ in range(2)]
        call = pb_grpc.LedgerServiceStub(channel).AppendStream(
            one(pb.AppendStreamRequest(signed_records=records), gate)
        )
        answered = next(call)
        call.cancel()
        gate.set()
    assert [o.result.seq for o in answered.outcomes] == [before[0], before[0] + 1]
    assert s.ledger.size == before[0] + 2
    assert isinstance(s.client.append(signed(shipment(), acme)), AppendResult)
