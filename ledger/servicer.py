"""The gRPC servicer: converts protobuf to domain calls and back, nothing else.

Errors leave through one table (lotledger.ledger.status). AppendStream pipelines: requests
are prechecked (parse, validate, verify) on a small shared pool so both cores verify, queued
to the writer strictly in stream order, and answered in order as their commits land.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC
from typing import Any

import grpc

from lotledger.ledger import access
from lotledger.ledger.access import Caller
from lotledger.ledger.admission import Admitted
from lotledger.ledger.errors import InvalidRecord, LedgerError, NotFound, RecordTooLarge, StorageError
from lotledger.ledger.log import AppendResult, Ledger
from lotledger.ledger.status import reason_of, status_code, to_rpc_status
from lotledger.trace import queries, wire
from lotledger.trace.effects import SHIPMENT, effects
from lotledger.trace.index import TraceIndex
from lotledger.trace.live import LiveIndex
from lotledger.trace.records import in_force
from lotledger.v1 import ledger_service_pb2 as pb
from lotledger.v1 import ledger_service_pb2_grpc as pb_grpc
from lotledger.v1 import records_pb2, trace_pb2

# Messages in flight per stream before the server stops reading (backpressure on the client).
STREAM_WINDOW = 16
MAX_RECORDS_PER_MESSAGE = 1000
# Below this many records per message, splitting the verification across threads costs more
# than it saves.
PARALLEL_MIN = 16


def _result_pb(r: AppendResult) -> pb.AppendResult:
    out = pb.AppendResult(seq=r.seq, leaf_hash=r.leaf_hash, duplicate=r.duplicate)
    out.received_at.FromNanoseconds(r.received_at_ns)
    return out


def _error_pb(e: BaseException) -> pb.AppendError:
    return pb.AppendError(
        code=status_code(e).name if isinstance(e, Exception) else "INTERNAL",
        reason=reason_of(e) if isinstance(e, Exception) else "INTERNAL",
        message=getattr(e, "message", None) or str(e),
        field=getattr(e, "field", None) or "",
    )


class LedgerServicer(pb_grpc.LedgerServiceServicer):
    """`mtls`: the server requires client certificates, so every call is checked against the
    identity its certificate names (lotledger.ledger.access); without it, as on the plaintext
    loopback demo, every caller may read everything and only signatures authorize writes."""

    def __init__(self, ledger: Ledger, verify_pool: ThreadPoolExecutor, live: LiveIndex, *, mtls: bool = False):
        self.ledger = ledger
        self.pool = verify_pool
        self.live = live
        self.mtls = mtls

    def _abort(self, context: grpc.ServicerContext, error: Exception) -> Any:
        context.abort_with_status(to_rpc_status(error))

    # ---- who is calling (lotledger.ledger.access holds the rules) -------------------------

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

    def _lot_concerns(self, index: TraceIndex, caller: Caller, lot: str) -> bool:
        if caller.reads_everything:
            return True
        node = index.nodes.get(lot)
        if node is None or lot.startswith(SHIPMENT):
            return False
        return access.lot_concerns(caller, index.records.many(index.seqs(node)).values())

    def _require_lots(self, index: TraceIndex, caller: Caller, lots: Sequence[str]) -> None:
        for lot in lots:
            if not self._lot_concerns(index, caller, lot):
                raise access.refuse_lot(caller, lot)

    def _require_entry(self, caller: Caller, seq: int, entry_bytes: bytes) -> None:
        """Raises PermissionDenied unless the caller may read entry `seq` (see access)."""
        if caller.reads_everything:
            return
        assert caller.participant is not None  # require_known ran
        entry = records_pb2.Entry.FromString(entry_bytes)
        record = records_pb2.Record.FromString(entry.signed_record.record_bytes)
        if access.is_party(caller.participant, record):
            return

        def names_a_lot_of_the_caller(index: TraceIndex) -> bool:
            lots = {e.label for e in effects(in_force(record), seq, index) if not e.label.startswith(SHIPMENT)}
            return any(self._lot_concerns(index, caller, lot) for lot in lots)

        if not self.live.query(names_a_lot_of_the_caller):
            raise access.refuse_entry(caller, seq)

    # ---- appending ------------------------------------------------------------------------

    def Append(self, request: pb.AppendRequest, context: grpc.ServicerContext) -> pb.AppendResponse:
        try:
            caller = self._known(context)
            admitted = self.ledger.precheck(request.signed_record)
            access.check_submission(caller, admitted.record, admitted.kind)
            result = self.ledger.enqueue(admitted).result(context.time_remaining())
        except (LedgerError, StorageError) as e:
            return self._abort(context, e)  # type: ignore[no-any-return]
        return pb.AppendResponse(result=_result_pb(result))

    def AppendStream(
        self, request_iterator: Iterator[pb.AppendStreamRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.AppendStreamResponse]:
        batches: queue.Queue[list[Future[AppendResult] | Exception] | None] = queue.Queue(STREAM_WINDOW)
        reader_error: list[BaseException] = []
        caller = self._caller(context)
        try:
            access.require_known(caller)
        except LedgerError as e:
            self._abort(context, e)

        def read() -> None:
            # One thread reads and queues to the writer, so the stream's order is the log's.
            try:
                for request in request_iterator:
                    if len(request.signed_records) > MAX_RECORDS_PER_MESSAGE:
                        raise RecordTooLarge(f"at most {MAX_RECORDS_PER_MESSAGE} records per message")
                    batches.put(self._admit_batch(request.signed_records, caller))
            except BaseException as e:  # noqa: BLE001 - a broken client stream ends the pipeline
                reader_error.append(e)
            finally:
                batches.put(None)

        threading.Thread(target=read, name="append-stream-read", daemon=True).start()
        index = 0
        while (batch := batches.get()) is not None:
            response = pb.AppendStreamResponse()
            for item in batch:
                outcome = response.outcomes.add(index=index)
                try:
                    if isinstance(item, Exception):
                        raise item
                    outcome.result.CopyFrom(_result_pb(item.result()))
                except Exception as e:  # noqa: BLE001 - every refusal is this record's answer
                    outcome.error.CopyFrom(_error_pb(e))
                index += 1
            yield response
        if reader_error and context.is_active():
            error = reader_error[0]
            if isinstance(error, LedgerError):
                context.abort_with_status(to_rpc_status(error))
            context.abort(grpc.StatusCode.CANCELLED, f"request stream failed: {error}")

    def _admit_batch(
        self, records: Sequence[records_pb2.SignedRecord], caller: Caller = access.OPEN
    ) -> list[Future[AppendResult] | Exception]:
        """Precheck a message's records on both cores (verification releases the GIL), then
        queue them to the writer in order. Returns one future or refusal per record."""
        half = len(records) // 2 if len(records) >= PARALLEL_MIN else 0
        other = self.pool.submit(self._precheck_all, records[half:], caller) if half else None
        checked = self._precheck_all(records[:half] if half else records, caller)
        if other is not None:
            checked += other.result()
        return [item if isinstance(item, Exception) else self.ledger.enqueue(item) for item in checked]

    def _precheck_all(
        self, records: Sequence[records_pb2.SignedRecord], caller: Caller = access.OPEN
    ) -> list[Admitted | Exception]:
        out: list[Admitted | Exception] = []
        for signed in records:
            try:
                admitted = self.ledger.precheck(signed)
                access.check_submission(caller, admitted.record, admitted.kind)
                out.append(admitted)
            except (LedgerError, StorageError) as e:
                out.append(e)
        return out

    def GetEntry(self, request: pb.GetEntryRequest, context: grpc.ServicerContext) -> pb.GetEntryResponse:
        try:
            caller = self._known(context)
            key = request.WhichOneof("key")
            if key is None:
                raise LedgerError("set seq or record_id", field="key")
            seq = self.ledger.seq_of(request.record_id) if key == "record_id" else request.seq
            entry, leaf = self.ledger.entry(seq)
            self._require_entry(caller, seq, entry)
        except (LedgerError, StorageError) as e:
            return self._abort(context, e)  # type: ignore[no-any-return]
        return pb.GetEntryResponse(seq=seq, entry=entry, leaf_hash=leaf)

    def ListEntries(
        self, request: pb.ListEntriesRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.ListEntriesResponse]:
        end = request.end_seq or self.ledger.size
        try:
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
        except (LedgerError, StorageError) as e:
            self._abort(context, e)

    def GetCheckpoint(
        self, request: pb.GetCheckpointRequest, context: grpc.ServicerContext
    ) -> pb.GetCheckpointResponse:
        try:
            self._known(context)  # public to every participant: sizes and hashes only
            cp = self.ledger.cosigned_checkpoint(request.tree_size, min_cosignatures=request.min_cosignatures)
        except (LedgerError, StorageError) as e:
            return self._abort(context, e)  # type: ignore[no-any-return]
        return pb.GetCheckpointResponse(checkpoint=cp.note, tree_size=cp.size, root_hash=cp.root_hash)

    def GetInclusionProof(
        self, request: pb.GetInclusionProofRequest, context: grpc.ServicerContext
    ) -> pb.GetInclusionProofResponse:
        try:
            caller = self._known(context)
            if not caller.reads_everything:
                self._require_entry(caller, request.seq, self.ledger.entry(request.seq)[0])
            size, leaf, proof = self.ledger.inclusion_proof(request.seq, request.tree_size)
            note = self._checkpoint_note(size)
        except (LedgerError, StorageError) as e:
            return self._abort(context, e)  # type: ignore[no-any-return]
        return pb.GetInclusionProofResponse(
            seq=request.seq,
            tree_size=size,
            leaf_hash=leaf,
            proof=proof,
            checkpoint=note,
            root_hash=self.ledger.root(size),
        )

    def GetConsistencyProof(
        self, request: pb.GetConsistencyProofRequest, context: grpc.ServicerContext
    ) -> pb.GetConsistencyProofResponse:
        try:
            self._known(context)  # public to every participant: hashes only
            size, proof = self.ledger.consistency_proof(request.old_size, request.new_size)
        except (LedgerError, StorageError) as e:
            return self._abort(context, e)  # type: ignore[no-any-return]
        return pb.GetConsistencyProofResponse(
            old_size=request.old_size,
            new_size=size,
            proof=proof,
            old_root=self.ledger.root(request.old_size),
            new_root=self.ledger.root(size),
        )

    def GetKey(self, request: pb.GetKeyRequest, context: grpc.ServicerContext) -> pb.GetKeyResponse:
        try:
            self._known(context)
        except LedgerError as e:
            return self._abort(context, e)  # type: ignore[no-any-return]
        info = self.ledger.registry.keys.get(request.key_id)
        if info is None:
            error = NotFound(f"key {request.key_id} is not registered", field="key_id")
            return self._abort(context, error)  # type: ignore[no-any-return]
        return pb.GetKeyResponse(
            key_id=info.key_id, participant_id=info.participant, registered_seq=info.registered_seq
        )

    # ---- the trace index ---------------------------------------------------------------------

    def Trace(self, request: trace_pb2.TraceRequest, context: grpc.ServicerContext) -> trace_pb2.TraceResponse:
        directions = {trace_pb2.TRACE_DIRECTION_UPSTREAM: "up", trace_pb2.TRACE_DIRECTION_DOWNSTREAM: "down"}
        try:
            caller = self._known(context)
            direction = directions.get(request.direction)
            if direction is None:
                raise InvalidRecord("direction must be UPSTREAM or DOWNSTREAM", field="direction")
            since = request.since.ToDatetime(UTC) if request.HasField("since") else None
            until = request.until.ToDatetime(UTC) if request.HasField("until") else None

            def run(index: TraceIndex) -> trace_pb2.TraceResponse:
                self._require_lots(index, caller, [request.lot])
                result = queries.trace(
                    index, request.lot, direction, depth=request.depth or None, since=since, until=until
                )
                return wire.trace_pb(result, index.size)

            return self.live.query(run)
        except LedgerError as e:
            return self._abort(context, e)  # type: ignore[no-any-return]

    def Recall(self, request: trace_pb2.RecallRequest, context: grpc.ServicerContext) -> trace_pb2.RecallResponse:
        def run(index: TraceIndex) -> trace_pb2.RecallResponse:
            self._require_lots(index, caller, request.lots)
            triggers = list(request.lots)
            for code in request.supplier_lot_codes:
                found = queries.lots_with_supplier_lot(index, code)
                if not found:
                    raise NotFound(f"no lot was received under supplier lot code {code!r}", field="supplier_lot_codes")
                triggers += found
            if not triggers:
                raise InvalidRecord("name at least one lot or supplier lot code", field="lots")
            self._require_lots(index, caller, triggers)
            return wire.recall_pb(queries.recall(index, dict.fromkeys(triggers), request.reason), index.size)

        try:
            caller = self._known(context)
            return self.live.query(run)
        except LedgerError as e:
            return self._abort(context, e)  # type: ignore[no-any-return]

    def CommonSources(
        self, request: trace_pb2.CommonSourcesRequest, context: grpc.ServicerContext
    ) -> trace_pb2.CommonSourcesResponse:
        def run(index: TraceIndex) -> trace_pb2.CommonSourcesResponse:
            self._require_lots(index, caller, request.lots)
            return wire.sources_pb(queries.common_sources(index, request.lots))

        try:
            caller = self._known(context)
            return self.live.query(run)
        except LedgerError as e:
            return self._abort(context, e)  # type: ignore[no-any-return]

    def ListAlerts(
        self, request: trace_pb2.ListAlertsRequest, context: grpc.ServicerContext
    ) -> trace_pb2.ListAlertsResponse:
        def pick(index: TraceIndex) -> trace_pb2.ListAlertsResponse:
            chosen = [
                a
                for a in self.live.alerts
                if a.seq >= request.since_seq
                and (not request.rule or a.rule == request.rule)
                and self._lot_concerns(index, caller, a.lot)
            ]
            return wire.alerts_pb(chosen[: request.limit] if request.limit else chosen)

        try:
            caller = self._known(context)
        except LedgerError as e:
            return self._abort(context, e)  # type: ignore[no-any-return]
        return self.live.query(pick)

    def _checkpoint_note(self, size: int) -> bytes:
        try:
            return self.ledger.cosigned_checkpoint(size).note
        except LedgerError:
            return b""
