"""The one error hierarchy of the ledger, with two roots as in python-tuf:

- `LedgerError`: the data is bad or not allowed (a client or a verifier must change something);
  each subclass carries a stable `reason` string and the gRPC status it maps to is chosen once,
  in `lotledger.rpc.status`.
- `StorageError`: the store or the process failed; the data may be fine and a retry may work.
"""

from __future__ import annotations


class LedgerError(Exception):
    """The data is bad or not allowed. `reason` is stable and machine-readable; `field` names
    the offending field path when there is one."""

    default_reason = "INVALID"

    def __init__(self, message: str, *, reason: str | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.field = field


class InvalidRecord(LedgerError):
    """A record (or request) is malformed or violates a validation rule."""

    default_reason = "INVALID_RECORD"


class RecordTooLarge(LedgerError):
    """A record or message exceeds a size limit."""

    default_reason = "TOO_LARGE"


class ResourceExhausted(LedgerError):
    """A limit of the service is reached (append rate, streams, records per stream, an idle or
    stalled stream, calls open per caller or in total). `retry_after` is the number of seconds
    after which the same call can succeed, when there is one; it goes out as a
    google.rpc.RetryInfo detail."""

    default_reason = "RATE_LIMITED"

    def __init__(
        self, message: str, *, reason: str | None = None, field: str | None = None, retry_after: float | None = None
    ):
        super().__init__(message, reason=reason, field=field)
        self.retry_after = retry_after


class ConfigError(LedgerError):
    """A configuration file is malformed or names an unknown key or an unsafe value."""

    default_reason = "BAD_CONFIG"


class Unauthenticated(LedgerError):
    """The signature does not verify, or its key is unknown, revoked, or not the submitter's."""

    default_reason = "UNAUTHENTICATED"


class PermissionDenied(LedgerError):
    """The submitter is authenticated but its role may not submit this kind of record."""

    default_reason = "ROLE_NOT_ALLOWED"


class Conflict(LedgerError):
    """The record id is taken by a record with different bytes (or the thing exists already)."""

    default_reason = "RECORD_ID_CONFLICT"


class NotFound(LedgerError):
    """No such entry, record id, or checkpoint."""

    default_reason = "NOT_FOUND"


class OutOfRange(LedgerError):
    """A sequence number or tree size lies beyond the log."""

    default_reason = "OUT_OF_RANGE"


class ProofError(LedgerError):
    """A Merkle inclusion or consistency proof does not verify, or is malformed."""

    default_reason = "BAD_PROOF"


class VerificationFailed(LedgerError):
    """A log verification found something that does not hold. `seq` names the entry, if any."""

    default_reason = "VERIFICATION_FAILED"

    def __init__(self, message: str, *, seq: int | None = None, reason: str | None = None):
        super().__init__(message, reason=reason)
        self.seq = seq

    def __str__(self) -> str:
        return f"entry {self.seq}: {self.message}" if self.seq is not None else self.message


class RequestError(LedgerError):
    """A client-side driver (lotledger.audit, a witness's state) cannot do what it was asked,
    and the person who asked must change something: an argument names a checkpoint the log
    never issued, a directory is held by another process. Nothing was written.

    `message` is whole and meant to be shown as it is. `usage` says where the fault lies:
    True, in what was given (a command line treats it as a bad argument, exit 2); False, the
    request is sound but cannot be done now (exit 1). The exit code itself is chosen once, in
    the CLI's error map; the error only says which kind it is."""

    default_reason = "REQUEST_REFUSED"

    def __init__(self, message: str, *, reason: str | None = None, usage: bool = True):
        super().__init__(message, reason=reason)
        self.usage = usage


class StorageError(Exception):
    """The store or the process failed (LMDB error, shutting down); the data may be fine."""


class Unavailable(StorageError):
    """The ledger is closing or closed; retry against a running server."""


class EpcisUnmappable(InvalidRecord):
    """An EPCIS event (or document) that lotledger cannot map to records; nothing is appended."""

    default_reason = "EPCIS_UNMAPPABLE"
