"""The one table from domain errors to gRPC status codes, and back on the client side."""

from __future__ import annotations

import grpc
import pytest

from lotledger.ledger import errors
from lotledger.rpc.status import ERROR_OF, status_code, to_rpc_status

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
