"""The one error hierarchy of the ledger, with two roots as in python-tuf:

- `LedgerError`: the data is bad or not allowed (a client or a verifier must change something);
  each subclass carries a stable `reason` string and the gRPC status it maps to is chosen once,
  in `lotledger.rpc.status`.
- `StorageError`: the store or the process failed; the data may be fine and a retry may work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lotledger.ledger.witness.state import ForkEvidence


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
    stalled stream). `retry_after` is the number of seconds after which the same call can
    succeed, when there is one; it goes out as a google.rpc.RetryInfo detail."""

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


class WitnessError(LedgerError):
    """A witness refuses a checkpoint (c2sp.org/tlog-witness add-checkpoint). `status` is the
    HTTP status the spec assigns; for 409 `latest_size` is the size the witness last cosigned
    (its response body); `evidence` is set when the refused checkpoint contradicts what the
    witness cosigned (a possible fork of the log, kept as proof)."""

    default_reason = "WITNESS_REFUSED"

    def __init__(
        self,
        message: str,
        *,
        status: int,
        reason: str | None = None,
        latest_size: int | None = None,
        evidence: ForkEvidence | None = None,
    ):
        super().__init__(message, reason=reason)
        self.status = status
        self.latest_size = latest_size
        self.evidence = evidence


class StorageError(Exception):
    """The store or the process failed (LMDB error, shutting down); the data may be fine."""


class Unavailable(StorageError):
    """The ledger is closing or closed; retry against a running server."""


class EpcisUnmappable(InvalidRecord):
    """An EPCIS event (or document) that lotledger cannot map to records; nothing is appended."""

    default_reason = "EPCIS_UNMAPPABLE"
