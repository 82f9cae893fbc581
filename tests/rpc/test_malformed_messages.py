"""Bytes that do not parse as a method's request message (rpc/gate.py `Malformed`): gRPC's own
answer would be INTERNAL "Exception deserializing request!"; lotledger answers
INVALID_ARGUMENT with reason MALFORMED_MESSAGE, on every method, unary and streamed, and a
stream's earlier messages keep their answers. On a real loopback server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import SimpleNamespace

import grpc
import pytest
from helpers import error_info, log_state, shipment, signed

from lotledger.v1 import ledger_service_pb2 as pb

# A field 1 of wire type 2 whose length runs past the end: no message parses from it.
GARBAGE = b"\x0a\xff\xff\xff\x0f\x01"
SERVICE = pb.DESCRIPTOR.services_by_name["LedgerService"]
UNARY = [m.name for m in SERVICE.methods if not m.client_streaming and not m.server_streaming]


@pytest.fixture
def s(serve: Callable[..., SimpleNamespace]) -> SimpleNamespace:
    return serve(append_rate=1e6, append_burst=10**6)


def _raw(channel: grpc.Channel, path: str) -> Callable[..., bytes]:
    return channel.unary_unary(path, request_serializer=lambda b: b, response_deserializer=lambda b: b)


@pytest.mark.parametrize("method", UNARY)
def test_a_unary_request_that_does_not_parse_is_invalid_argument(s: SimpleNamespace, method: str) -> None:
    before = log_state(s.ledger)
    with pytest.raises(grpc.RpcError) as info:
        _raw(s.channel(), f"/{SERVICE.full_name}/{method}")(GARBAGE, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    assert error_info(info.value).reason == "MALFORMED_MESSAGE"
    assert method in (info.value.details() or "")
    assert log_state(s.ledger) == before


def test_a_health_check_that_does_not_parse_is_invalid_argument(s: SimpleNamespace) -> None:
    with pytest.raises(grpc.RpcError) as info:
        _raw(s.channel(), "/grpc.health.v1.Health/Check")(GARBAGE, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()


def test_a_stream_message_that_does_not_parse_ends_the_stream_after_the_good_ones(s: SimpleNamespace) -> None:
    good = pb.AppendStreamRequest(signed_records=[signed(shipment("acme"), s.world.keys["acme"])])

    def requests() -> Iterator[bytes]:
        yield good.SerializeToString()
        yield GARBAGE

    call = s.channel().stream_stream(
        f"/{SERVICE.full_name}/AppendStream", request_serializer=lambda b: b, response_deserializer=lambda b: b
    )
    answers = []
    with pytest.raises(grpc.RpcError) as info:
        for raw in call(requests(), timeout=10):
            answers.append(pb.AppendStreamResponse.FromString(raw))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    assert error_info(info.value).reason == "MALFORMED_MESSAGE"
    assert "message 1 of the request stream" in (info.value.details() or "")
    [answer] = answers
    [outcome] = answer.outcomes
    assert outcome.WhichOneof("outcome") == "result"
    assert s.ledger.size == outcome.result.seq + 1
