"""The one table from domain errors to gRPC status codes, used by the servicer and, in
reverse, by the client (so a partner's code and the CLI see our error types again).

Every error goes out with a google.rpc.Status carrying an ErrorInfo whose `reason` is the
error's stable reason string and whose metadata names the field, so a partner's engineer can
act on it programmatically without parsing the message.

The servicer applies the table in one place: each RPC method wears `maps_errors` (unary
responses) or `maps_stream_errors` (streamed responses), which turn any error the table
knows into `context.abort_with_status`. Anything else (a bug) is left to gRPC, which answers
UNKNOWN without details.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import NoReturn, TypeVar

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from lotledger.ledger import errors

DOMAIN = "lotledger.v1"

STATUS_OF: list[tuple[type[Exception], grpc.StatusCode]] = [
    (errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.RecordTooLarge, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.InvalidRecord, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (errors.Conflict, grpc.StatusCode.ALREADY_EXISTS),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.OutOfRange, grpc.StatusCode.OUT_OF_RANGE),
    (errors.ProofError, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.LedgerError, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
    (errors.StorageError, grpc.StatusCode.INTERNAL),
]
ERROR_OF: dict[grpc.StatusCode, type[errors.LedgerError]] = {
    grpc.StatusCode.RESOURCE_EXHAUSTED: errors.RecordTooLarge,
    grpc.StatusCode.INVALID_ARGUMENT: errors.InvalidRecord,
    grpc.StatusCode.UNAUTHENTICATED: errors.Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: errors.PermissionDenied,
    grpc.StatusCode.ALREADY_EXISTS: errors.Conflict,
    grpc.StatusCode.NOT_FOUND: errors.NotFound,
    grpc.StatusCode.OUT_OF_RANGE: errors.OutOfRange,
}

# What the servicer maps: every error type the table names (both roots of the hierarchy).
DOMAIN_ERRORS: tuple[type[Exception], ...] = tuple(dict.fromkeys(kind for kind, _ in STATUS_OF))

# RESOURCE_EXHAUSTED reasons that are a service limit (ResourceExhausted), not a size (RecordTooLarge):
# the append rate and stream bounds (lotledger.rpc.append_stream), and the call gate's shares
# (lotledger.rpc.gate: TOO_MANY_CALLS and TOO_MANY_STREAMS per caller, SERVER_BUSY in total), and
# a full disk (DISK_FULL, lotledger.ledger.store).
LIMIT_REASONS = frozenset(
    {
        "RATE_LIMITED",
        "TOO_MANY_CALLS",
        "TOO_MANY_STREAMS",
        "SERVER_BUSY",
        "STREAM_RECORD_LIMIT",
        "STREAM_IDLE",
        "STREAM_STALLED",
        "DISK_FULL",
    }
)


def status_code(error: Exception) -> grpc.StatusCode:
    """The table's code for `error` (the first entry it is an instance of); INTERNAL for
    anything else."""
    for kind, code in STATUS_OF:
        if isinstance(error, kind):
            return code
    return grpc.StatusCode.INTERNAL


def reason_of(error: Exception) -> str:
    """The stable reason string a client acts on; INTERNAL for errors that carry none."""
    return getattr(error, "reason", "INTERNAL")


def to_rpc_status(error: Exception) -> grpc.Status:
    """A grpc.Status with the ErrorInfo detail, for context.abort_with_status."""
    code = status_code(error)
    info = error_details_pb2.ErrorInfo(reason=reason_of(error), domain=DOMAIN)
    field = getattr(error, "field", None)
    if field:
        info.metadata["field"] = field
    detail = any_pb2.Any()
    detail.Pack(info)
    details = [detail]
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:  # google.rpc.RetryInfo: when the same call can succeed
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromNanoseconds(max(0, int(retry_after * 1e9)))
        details.append(any_pb2.Any())
        details[-1].Pack(retry)
    message = getattr(error, "message", None) or str(error)
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=message, details=details)
    return rpc_status.to_status(status)


def abort(context: grpc.ServicerContext, error: Exception) -> NoReturn:
    """End the call with `error`'s status and details. gRPC's abort_with_status raises to
    unwind the handler; it never returns."""
    context.abort_with_status(to_rpc_status(error))
    raise AssertionError("ServicerContext.abort_with_status returned")  # pragma: no cover


_Servicer = TypeVar("_Servicer")
_Request = TypeVar("_Request")
_Response = TypeVar("_Response")


def maps_errors(
    method: Callable[[_Servicer, _Request, grpc.ServicerContext], _Response],
) -> Callable[[_Servicer, _Request, grpc.ServicerContext], _Response]:
    """For a servicer method with a unary response: a domain error it raises (DOMAIN_ERRORS)
    ends the call with the status this table gives, so the method itself just raises.

    Raises what gRPC's abort raises to end the call; errors outside the table pass through.
    """

    @functools.wraps(method)
    def mapped(self: _Servicer, request: _Request, context: grpc.ServicerContext) -> _Response:
        try:
            return method(self, request, context)
        except DOMAIN_ERRORS as e:
            abort(context, e)

    return mapped


def maps_stream_errors(
    method: Callable[[_Servicer, _Request, grpc.ServicerContext], Iterator[_Response]],
) -> Callable[[_Servicer, _Request, grpc.ServicerContext], Iterator[_Response]]:
    """`maps_errors` for a servicer method that streams its responses (a generator): a domain
    error raised before or between responses ends the stream with the table's status, after
    the responses already sent.

    Raises what gRPC's abort raises to end the call; errors outside the table pass through.
    """

    @functools.wraps(method)
    def mapped(self: _Servicer, request: _Request, context: grpc.ServicerContext) -> Iterator[_Response]:
        try:
            yield from method(self, request, context)
        except DOMAIN_ERRORS as e:
            abort(context, e)

    return mapped


def from_rpc_error(error: grpc.RpcError) -> Exception:
    """Turn a failed call back into our error type, reading ErrorInfo when present."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    message = error.details() if hasattr(error, "details") else str(error)
    reason, field, retry_after = code.name, None, None
    try:
        status = rpc_status.from_call(error)
    except Exception:  # noqa: BLE001 - a malformed detail must not hide the error itself
        status = None
    if status is not None:
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            retry = error_details_pb2.RetryInfo()
            if detail.Unpack(info):
                reason, field = info.reason, info.metadata.get("field") or None
            elif detail.Unpack(retry):
                retry_after = retry.retry_delay.ToNanoseconds() / 1e9
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and (retry_after is not None or reason in LIMIT_REASONS):
        return errors.ResourceExhausted(message or code.name, reason=reason, field=field, retry_after=retry_after)
    kind = ERROR_OF.get(code)
    if kind is not None:
        return kind(message or code.name, reason=reason, field=field)
    if code == grpc.StatusCode.UNAVAILABLE:
        return errors.Unavailable(message or "server unavailable")
    return errors.StorageError(f"{code.name}: {message}")
