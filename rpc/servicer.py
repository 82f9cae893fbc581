"""The gRPC servicer: converts protobuf to domain calls and back, nothing else.

Each RPC names the caller (from the transport), calls the domain and builds the response.
Errors leave through one table (lotledger.rpc.status): every method wears `maps_errors` or
`maps_stream_errors`, so a domain error raised anywhere below (LedgerError or StorageError)
ends the call with the status, reason and details the table gives. What the calls do lives
elsewhere: appending and the AppendStream pipeline in lotledger.rpc.append_stream, the trace
queries and the lot-read decisions in lotledger.trace.service, the read rule in
lotledger.ledger.core.access.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import CancelledError, ThreadPoolExecutor
from datetime import UTC, datetime

import grpc
from google.protobuf import timestamp_pb2
from google.protobuf.message import Message

from lotledger.ledger.core import access
from lotledger.ledger.core.access import Caller
from lotledger.ledger.core.admission import Admitted
from lotledger.ledger.errors import InvalidRecord, LedgerError, NotFound
from lotledger.ledger.log import Ledger
from lotledger.rpc.append_stream import Appender, result_pb
from lotledger.rpc.limits import Limits
from lotledger.rpc.status import maps_errors, maps_stream_errors
from lotledger.rpc.workers import PrecheckPool
from lotledger.trace.live import LiveIndex
from lotledger.trace.service import Direction, TraceService
from lotledger.v1 import ledger_service_pb2 as pb
from lotledger.v1 import ledger_service_pb2_grpc as pb_grpc
from lotledger.v1 import trace_pb2

_DIRECTIONS: dict[int, Direction] = {
    trace_pb2.TRACE_DIRECTION_UPSTREAM: "up",
    trace_pb2.TRACE_DIRECTION_DOWNSTREAM: "down",
}


def _moment(request: Message, name: str) -> datetime | None:
    """The Timestamp field `name` of `request` as an aware datetime, None when unset. Raises
    InvalidRecord for one outside Timestamp's range (0001-01-01 to 9999-12-31, nanos in
    [0, 1e9)), which protobuf would raise as ValueError and gRPC answer UNKNOWN."""
    if not request.HasField(name):
        return None
    stamp: timestamp_pb2.Timestamp = getattr(request, name)
    try:
        moment: datetime = stamp.ToDatetime(UTC)
    except (ValueError, OverflowError) as e:
        raise InvalidRecord(
            f"{name} is not a valid timestamp (seconds={stamp.seconds}, nanos={stamp.nanos}): it must lie between "
            "0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999999Z",
            field=name,
        ) from e
    return moment


class LedgerServicer(pb_grpc.LedgerServiceServicer):
    """`mtls`: the server requires client certificates, so every call is checked against the
    identity its certificate names (lotledger.ledger.core.access); without it, as on the plaintext
    loopback demo, every caller may read everything and only signatures authorize writes.
    `limits`: message sizes, rates and stream bounds (lotledger.rpc.limits). `workers`: the
    processes that precheck large AppendStream messages (lotledger.rpc.workers); without them
    the verify pool's threads do."""

    def __init__(
        self,
        ledger: Ledger,
        verify_pool: ThreadPoolExecutor,
        live: LiveIndex,
        limits: Limits | None = None,
        *,
        mtls: bool = False,
        workers: PrecheckPool | None = None,
    ) -> None:
        self.ledger = ledger
        self.live = live
        self.mtls = mtls
        self.limits = limits or Limits()
        self.appender = Appender(ledger, verify_pool, self.limits, workers)
        self.limiter = self.appender.limiter
        self.traces = TraceService(live)

    # ---- who is calling (lotledger.ledger.core.access holds the rules) -------------------------

    def _caller(self, context: grpc.ServicerContext) -> Caller:
        def role_of(participant: str) -> str | None:
            found = self.ledger.registry.participants.get(participant)
            return found.role if found else None

        auth = context.auth_context() if self.mtls else {}
        return access.caller_from(auth, role_of, mtls=self.mtls)

    def _known(self, context: grpc.ServicerContext) -> Caller:
        """The caller, if it may read at all. Raises Unauthenticated or PermissionDenied."""
        caller = self._caller(context)
        access.require_known(caller)
        return caller

    def _participant_of(self, admitted: Admitted, caller: Caller) -> str:
        """Whose limits a record spends (see Appender.participant_of)."""
        return self.appender.participant_of(admitted, caller)

    # ---- appending ------------------------------------------------------------------------

    @maps_errors
    def Append(self, request: pb.AppendRequest, context: grpc.ServicerContext) -> pb.AppendResponse:
        future = self.appender.submit(request.signed_record, self._known(context))
        # The client gone (cancelled, deadline passed): withdraw the record unless the writer
        # has already taken it into a transaction (then it commits; a retry is a duplicate).
        if not context.add_callback(future.cancel):
            future.cancel()
        try:
            result = future.result(timeout=context.time_remaining())
        except (TimeoutError, CancelledError):
            future.cancel()
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the deadline passed before the record was committed")
        return pb.AppendResponse(result=result_pb(result))

    @maps_stream_errors
    def AppendStream(
        self, request_iterator: Iterator[pb.AppendStreamRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.AppendStreamResponse]:
        yield from self.appender.stream(request_iterator, context, self._known(context))

    # ---- reading the log ------------------------------------------------------------------

    @maps_errors
    def GetEntry(self, request: pb.GetEntryRequest, context: grpc.ServicerContext) -> pb.GetEntryResponse:
        caller = self._known(context)
        key = request.WhichOneof("key")
        if key is None:
            raise LedgerError("set seq or record_id", field="key")
        if key == "record_id" and not request.record_id:
            raise InvalidRecord("record_id is empty: name a record id, or ask by seq", field="record_id")
        if key == "record_id":  # the read rule is applied there: a missing id reads as not yours
            seq = self.traces.seq_of_record(caller, request.record_id, request.submitter)
            entry, leaf = self.ledger.entry(seq)
        else:
            seq = request.seq
            entry, leaf = self.ledger.entry(seq)
            self.traces.require_entry(caller, seq, entry)
        return pb.GetEntryResponse(seq=seq, entry=entry, leaf_hash=leaf)

    @maps_stream_errors
    def ListEntries(
        self, request: pb.ListEntriesRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.ListEntriesResponse]:
        end = request.end_seq or self.ledger.size
        access.require_full_reader(self._caller(context), "ListEntries (the whole log)")
        if request.admin_only:
            for batch in self.ledger.admin_entries(request.start_seq, end):
                if not context.is_active():
                    return
                yield pb.ListEntriesResponse(seqs=[s for s, _ in batch], entries=[e for _, e in batch])
            return
        for start, chunk in self.ledger.entries(request.start_seq, end):
            if not context.is_active():
                return
            yield pb.ListEntriesResponse(start_seq=start, entries=chunk)

    @maps_errors
    def GetCheckpoint(
        self, request: pb.GetCheckpointRequest, context: grpc.ServicerContext
    ) -> pb.GetCheckpointResponse:
        self._known(context)  # public to every participant: sizes and hashes only
        cp = self.ledger.cosigned_checkpoint(request.tree_size, min_cosignatures=request.min_cosignatures)
        return pb.GetCheckpointResponse(checkpoint=cp.note, tree_size=cp.size, root_hash=cp.root_hash)

    @maps_errors
    def GetInclusionProof(
        self, request: pb.GetInclusionProofRequest, context: grpc.ServicerContext
    ) -> pb.GetInclusionProofResponse:
        self.traces.require_entry(self._known(context), request.seq)
        size, leaf, proof = self.ledger.inclusion_proof(request.seq, request.tree_size)
        return pb.GetInclusionProofResponse(
            seq=request.seq,
            tree_size=size,
            leaf_hash=leaf,
            proof=proof,
            checkpoint=self._checkpoint_note(size),
            root_hash=self.ledger.root(size),
        )

    @maps_errors
    def GetConsistencyProof(
        self, request: pb.GetConsistencyProofRequest, context: grpc.ServicerContext
    ) -> pb.GetConsistencyProofResponse:
        self._known(context)  # public to every participant: hashes only
        size, proof = self.ledger.consistency_proof(request.old_size, request.new_size)
        return pb.GetConsistencyProofResponse(
            old_size=request.old_size,
            new_size=size,
            proof=proof,
            old_root=self.ledger.root(request.old_size),
            new_root=self.ledger.root(size),
        )

    @maps_errors
    def GetKey(self, request: pb.GetKeyRequest, context: grpc.ServicerContext) -> pb.GetKeyResponse:
        self._known(context)
        info = self.ledger.registry.keys.get(request.key_id)
        if info is None:
            raise NotFound(f"key {request.key_id} is not registered", field="key_id")
        return pb.GetKeyResponse(
            key_id=info.key_id, participant_id=info.participant, registered_seq=info.registered_seq
        )

    def _checkpoint_note(self, size: int) -> bytes:
        """The signed checkpoint of `size`, or empty when none was signed at that size (the
        proof still verifies against `root_hash`)."""
        try:
            return self.ledger.cosigned_checkpoint(size).note
        except LedgerError:
            return b""

    # ---- the trace index (lotledger.trace.service) --------------------------------------------

    @maps_errors
    def Trace(self, request: trace_pb2.TraceRequest, context: grpc.ServicerContext) -> trace_pb2.TraceResponse:
        caller = self._known(context)
        direction = _DIRECTIONS.get(request.direction)
        if direction is None:
            raise InvalidRecord("direction must be UPSTREAM or DOWNSTREAM", field="direction")
        return self.traces.trace(
            caller,
            request.lot,
            direction,
            depth=request.depth or None,
            since=_moment(request, "since"),
            until=_moment(request, "until"),
        )

    @maps_errors
    def Recall(self, request: trace_pb2.RecallRequest, context: grpc.ServicerContext) -> trace_pb2.RecallResponse:
        caller = self._known(context)
        return self.traces.recall(caller, request.lots, request.supplier_lot_codes, request.reason)

    @maps_errors
    def CommonSources(
        self, request: trace_pb2.CommonSourcesRequest, context: grpc.ServicerContext
    ) -> trace_pb2.CommonSourcesResponse:
        return self.traces.common_sources(self._known(context), request.lots)

    @maps_errors
    def ListAlerts(
        self, request: trace_pb2.ListAlertsRequest, context: grpc.ServicerContext
    ) -> trace_pb2.ListAlertsResponse:
        return self.traces.list_alerts(
            self._known(context),
            since_seq=request.since_seq,
            rule=request.rule,
            lots=request.lots,
            limit=request.limit,
        )
