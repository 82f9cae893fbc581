"""The one table from domain errors to gRPC status codes, and back on the client side."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from lotledger.ledger import errors
from lotledger.rpc.status import (
    DOMAIN_ERRORS,
    ERROR_OF,
    STATUS_OF,
    maps_errors,
    maps_stream_errors,
    status_code,
    to_rpc_status,
)

CASES = [
    (errors.RecordTooLarge("x"), grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.InvalidRecord("x"), grpc.StatusCode.INVALID_ARGUMENT),
    (errors.Unauthenticated("x"), grpc.StatusCode.UNAUTHENTICATED),
    (errors.PermissionDenied("x"), grpc.StatusCode.PERMISSION_DENIED),
    (errors.Conflict("x"), grpc.StatusCode.ALREADY_EXISTS),
    (errors.NotFound("x"), grpc.StatusCode.NOT_FOUND),
    (errors.OutOfRange("x"), grpc.StatusCode.OUT_OF_RANGE),
    (errors.ProofError("x"), grpc.StatusCode.INVALID_ARGUMENT),
    (errors.Unavailable("x"), grpc.StatusCode.UNAVAILABLE),
    (errors.StorageError("x"), grpc.StatusCode.INTERNAL),
    (RuntimeError("x"), grpc.StatusCode.INTERNAL),
]


@pytest.mark.parametrize(("error", "code"), CASES, ids=[type(e).__name__ for e, _ in CASES])
def test_each_error_has_its_status(error: Exception, code: grpc.StatusCode) -> None:
    assert status_code(error) == code
    status = to_rpc_status(error)
    assert status.code == code and status.details == str(error)


def test_client_side_mapping_inverts_the_table() -> None:
    for code, error_type in ERROR_OF.items():
        assert status_code(error_type("x")) == code


def test_the_servicer_maps_both_roots_of_the_hierarchy() -> None:
    """Everything the table names is mapped, data errors and storage failures alike."""
    assert set(DOMAIN_ERRORS) == {kind for kind, _ in STATUS_OF}
    assert errors.LedgerError in DOMAIN_ERRORS and errors.StorageError in DOMAIN_ERRORS


class Aborted(Exception):
    """What grpc's abort_with_status raises to end a handler."""


class RecordingContext:
    """The one ServicerContext call the decorators make (grpcio-testing does not implement it;
    test_server.py and tests/trace/test_service.py see the result on a real loopback server)."""

    def __init__(self) -> None:
        self.statuses: list[grpc.Status] = []

    def abort_with_status(self, status: grpc.Status) -> None:
        self.statuses.append(status)
        raise Aborted


class Handlers:
    def __init__(self, error: Exception) -> None:
        self.error = error

    @maps_errors
    def unary(self, request: str, context: grpc.ServicerContext) -> str:
        if request == "fail":
            raise self.error
        return request

    @maps_stream_errors
    def stream(self, request: str, context: grpc.ServicerContext) -> Iterator[str]:
        yield "first"
        raise self.error


@pytest.mark.parametrize(("error", "code"), CASES[:-1], ids=[type(e).__name__ for e, _ in CASES[:-1]])
def test_a_domain_error_ends_the_call_with_its_status(error: Exception, code: grpc.StatusCode) -> None:
    handlers, context = Handlers(error), RecordingContext()
    assert handlers.unary("ok", context) == "ok" and not context.statuses
    with pytest.raises(Aborted):
        handlers.unary("fail", context)
    answers = handlers.stream("x", context)
    assert next(answers) == "first", "what was sent before the error stays sent"
    with pytest.raises(Aborted):
        next(answers)
    expected = to_rpc_status(error)
    for got in context.statuses:
        assert (got.code, got.details, got.trailing_metadata) == (code, str(error), expected.trailing_metadata)
    assert len(context.statuses) == 2


def test_an_error_outside_the_table_is_left_to_grpc() -> None:
    """A bug is not dressed up as a domain error: gRPC answers UNKNOWN, as before."""
    handlers, context = Handlers(RuntimeError("bug")), RecordingContext()
    with pytest.raises(RuntimeError):
        handlers.unary("fail", context)
    with pytest.raises(RuntimeError):
        list(handlers.stream("x", context))
    assert not context.statuses
