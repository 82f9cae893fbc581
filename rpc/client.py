"""LedgerClient: the Python client partners and the CLI use.

Failed calls come back as lotledger's own errors (via the status table), so callers catch
LedgerError (the data was refused) or StorageError/Unavailable (the server or the network).
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import grpc

from lotledger.ledger.core.sizes import MAX_MESSAGE_BYTES
from lotledger.ledger.errors import LedgerError, ResourceExhausted, StorageError, Unavailable
from lotledger.ledger.tlog.entries import AppendResult
from lotledger.rpc.status import from_rpc_error
from lotledger.signing.errors import KeyFileError
from lotledger.v1 import ledger_service_pb2 as pb
from lotledger.v1 import ledger_service_pb2_grpc as pb_grpc
from lotledger.v1 import records_pb2, trace_pb2

T = TypeVar("T")


@dataclass(frozen=True)
class StreamRefusal:
    """A record of an AppendStream that the server refused; the stream went on."""

    index: int
    error: LedgerError


@dataclass(frozen=True)
class Checkpointed:
    note: bytes
    size: int
    root_hash: bytes


@dataclass(frozen=True, repr=False)
class ClientTls:
    """mTLS for a client: the CA that signed the server's certificate, and this participant's
    certificate and key (PEM). Without cert/key the client offers no certificate (a server
    with mTLS refuses it in the handshake). repr shows no key material."""

    ca: bytes
    cert: bytes | None = None
    key: bytes | None = None

    @classmethod
    def load(
        cls,
        ca: str | os.PathLike[str],
        cert: str | os.PathLike[str] | None = None,
        key: str | os.PathLike[str] | None = None,
    ) -> ClientTls:
        """Read the files; the key must be 0600 (keys.read_private_file).

        Raises KeyFileError (unreadable, a key others can read, or a cert without its key).
        """
        if (cert is None) != (key is None):
            raise KeyFileError(
                "a client certificate needs its key and a key its certificate (--tls-cert and --tls-key)"
            )
        try:
            ca_pem = Path(ca).read_bytes()
            cert_pem = Path(cert).read_bytes() if cert is not None else None
        except OSError as e:
            raise KeyFileError(f"cannot read {e.filename}: {e.strerror or e}") from e
        from lotledger.signing.keys import read_private_file  # cryptography only when a key is read

        return cls(ca_pem, cert_pem, read_private_file(key) if key is not None else None)

    def __repr__(self) -> str:
        return f"ClientTls(client certificate: {self.cert is not None})"


class LedgerClient:
    """`tls`: connect with TLS (and a client certificate, for mTLS); None: plaintext."""

    def __init__(self, target: str, *, timeout: float = 30.0, tls: ClientTls | None = None):
        self.target = target
        self.timeout = timeout
        self.tls = tls is not None
        options = [
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ]
        if tls is None:
            self.channel = grpc.insecure_channel(target, options=options)
        else:
            credentials = grpc.ssl_channel_credentials(tls.ca, tls.key, tls.cert)
            self.channel = grpc.secure_channel(target, credentials, options=options)
        self.stub = pb_grpc.LedgerServiceStub(self.channel)  # type: ignore[no-untyped-call]

    def __enter__(self) -> LedgerClient:
        return self

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    def _call(self, method: Callable[..., T], request: object) -> T:
        """One unary call, with our errors instead of grpc.RpcError."""
        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from e

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Raises Unavailable if the server does not answer within `timeout`. One health check
        that waits for the connection (not channel_ready_future: its connectivity poller makes
        closing the channel wait up to 0.2 s, grpc/grpc#19100, which every CLI command paid)."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        try:
            health_pb2_grpc.HealthStub(self.channel).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout, wait_for_ready=True
            )
        except grpc.RpcError as e:
            if e.code() not in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE):
                return  # it answered, if only to refuse: it is there
            hint = " (or the TLS handshake failed: check --tls-ca, --tls-cert and --tls-key)" if self.tls else ""
            raise Unavailable(f"no lotledger server answers at {self.target}{hint}") from e

    def append(self, signed: records_pb2.SignedRecord) -> AppendResult:
        response: pb.AppendResponse = self._call(self.stub.Append, pb.AppendRequest(signed_record=signed))
        return _result(response.result)

    def append_stream(
        self, records: Iterable[records_pb2.SignedRecord], *, batch: int = 200
    ) -> Iterator[AppendResult | StreamRefusal]:
        """Stream records, `batch` per message; yields one outcome per record, in order, each
        after its commit. Raises Unavailable/StorageError if the stream itself breaks
        (outcomes already yielded are committed; the rest are unknown and safe to resend,
        since record ids make appends idempotent)."""
        try:
            for response in self.stub.AppendStream(_batched(records, batch)):
                for outcome in response.outcomes:
                    if outcome.HasField("result"):
                        yield _result(outcome.result)
                    else:
                        yield StreamRefusal(outcome.index, _stream_error(outcome.error))
        except grpc.RpcError as e:
            raise from_rpc_error(e) from e

    def get_entry(
        self, seq: int | None = None, record_id: str | None = None, submitter: str = ""
    ) -> pb.GetEntryResponse:
        """An entry by seq, or by record id; record ids are scoped by their submitter (rules 2):
        `submitter` names whose (default: the caller's own under mTLS, else the only one)."""
        if record_id is not None:
            request = pb.GetEntryRequest(record_id=record_id, submitter=submitter)
        else:
            request = pb.GetEntryRequest(seq=seq or 0)
        response: pb.GetEntryResponse = self._call(self.stub.GetEntry, request)
        return response

    def list_entries(self, start: int = 0, end: int = 0) -> Iterator[tuple[int, bytes]]:
        """(seq, entry bytes) for [start, end); end 0 = the log's size when the call starts.
        Reads ahead on a thread so that decoding and verifying overlap the download."""
        ahead: queue.Queue[pb.ListEntriesResponse | BaseException | None] = queue.Queue(8)

        def pump() -> None:
            try:
                for response in self.stub.ListEntries(pb.ListEntriesRequest(start_seq=start, end_seq=end)):
                    ahead.put(response)
                ahead.put(None)
            except grpc.RpcError as e:
                ahead.put(from_rpc_error(e))

        threading.Thread(target=pump, name="list-entries", daemon=True).start()
        while (item := ahead.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            for i, entry in enumerate(item.entries):
                yield item.start_seq + i, entry

    def list_admin_entries(self, start: int, end: int) -> Iterator[tuple[int, bytes]]:
        """(seq, entry bytes) of the entries in [start, end) that change the key history."""
        request = pb.ListEntriesRequest(start_seq=start, end_seq=end, admin_only=True)
        try:
            for response in self.stub.ListEntries(request):
                if len(response.seqs) != len(response.entries):
                    raise StorageError(
                        "the server sent admin entries without their seqs (a server older than ListEntries admin_only?)"
                    )
                yield from zip(response.seqs, response.entries, strict=True)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from e

    def checkpoint(self, tree_size: int = 0, *, min_cosignatures: int = 0) -> Checkpointed:
        """The signed checkpoint note with the witness cosignatures the log holds for it; with
        `min_cosignatures`, the latest one carrying at least that many. Raises NotFound."""
        response: pb.GetCheckpointResponse = self._call(
            self.stub.GetCheckpoint, pb.GetCheckpointRequest(tree_size=tree_size, min_cosignatures=min_cosignatures)
        )
        return Checkpointed(response.checkpoint, response.tree_size, response.root_hash)

    def inclusion_proof(self, seq: int, tree_size: int = 0) -> pb.GetInclusionProofResponse:
        response: pb.GetInclusionProofResponse = self._call(
            self.stub.GetInclusionProof, pb.GetInclusionProofRequest(seq=seq, tree_size=tree_size)
        )
        return response

    def get_key(self, key_id: str) -> pb.GetKeyResponse:
        """Where a key was registered. Raises NotFound for a key the log never registered."""
        response: pb.GetKeyResponse = self._call(self.stub.GetKey, pb.GetKeyRequest(key_id=key_id))
        return response

    def trace(self, lot: str, direction: str, depth: int = 0) -> trace_pb2.TraceResponse:
        """direction: "up" or "down"."""
        way = trace_pb2.TRACE_DIRECTION_UPSTREAM if direction == "up" else trace_pb2.TRACE_DIRECTION_DOWNSTREAM
        response: trace_pb2.TraceResponse = self._call(
            self.stub.Trace, trace_pb2.TraceRequest(lot=lot, direction=way, depth=depth)
        )
        return response

    def recall(
        self, lots: Iterable[str], reason: str = "", supplier_lot_codes: Iterable[str] = ()
    ) -> trace_pb2.RecallResponse:
        request = trace_pb2.RecallRequest(lots=list(lots), reason=reason, supplier_lot_codes=list(supplier_lot_codes))
        response: trace_pb2.RecallResponse = self._call(self.stub.Recall, request)
        return response

    def common_sources(self, lots: Iterable[str]) -> trace_pb2.CommonSourcesResponse:
        response: trace_pb2.CommonSourcesResponse = self._call(
            self.stub.CommonSources, trace_pb2.CommonSourcesRequest(lots=list(lots))
        )
        return response

    def alerts(
        self, since_seq: int = 0, rule: str = "", limit: int = 0, lots: Iterable[str] = ()
    ) -> trace_pb2.ListAlertsResponse:
        request = trace_pb2.ListAlertsRequest(since_seq=since_seq, rule=rule, limit=limit, lots=list(lots))
        response: trace_pb2.ListAlertsResponse = self._call(self.stub.ListAlerts, request)
        return response

    def consistency_proof(self, old_size: int, new_size: int = 0) -> pb.GetConsistencyProofResponse:
        response: pb.GetConsistencyProofResponse = self._call(
            self.stub.GetConsistencyProof, pb.GetConsistencyProofRequest(old_size=old_size, new_size=new_size)
        )
        return response


def _batched(records: Iterable[records_pb2.SignedRecord], size: int) -> Iterator[pb.AppendStreamRequest]:
    """Requests of up to `size` records and about 1 MiB each."""
    request, nbytes = pb.AppendStreamRequest(), 0
    for signed in records:
        request.signed_records.append(signed)
        nbytes += len(signed.record_bytes) + 128
        if len(request.signed_records) >= size or nbytes >= 1 << 20:
            yield request
            request, nbytes = pb.AppendStreamRequest(), 0
    if request.signed_records:
        yield request


def _result(r: pb.AppendResult) -> AppendResult:
    return AppendResult(r.seq, r.leaf_hash, r.received_at.ToNanoseconds(), r.duplicate)


def _stream_error(err: pb.AppendError) -> LedgerError:
    from lotledger.rpc.status import ERROR_OF, LIMIT_REASONS

    code = getattr(grpc.StatusCode, err.code, grpc.StatusCode.UNKNOWN)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and err.reason in LIMIT_REASONS:
        # A limit (the append rate, say), not a size: the same record can succeed later.
        return ResourceExhausted(err.message, reason=err.reason, field=err.field or None)
    kind = ERROR_OF.get(code, LedgerError)
    return kind(err.message, reason=err.reason, field=err.field or None)
