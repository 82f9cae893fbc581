"""The trace half of the service, with no transport in it: Trace, Recall, CommonSources and
ListAlerts as domain calls, and the read decisions that need the trace index.

The servicer (lotledger.rpc.servicer) parses a request, names the caller and calls one method
here; what comes back is the lotledger.v1 response, built while the index lock is held so the
answer and its `index_size` describe one state of the index. Refusals are lotledger errors
(lotledger.ledger.errors), mapped to status codes once, by the servicer's decorators.

The read rule itself lives in lotledger.ledger.core.access (pure). It needs the index for one
question only, "does this lot concern the caller?", which depends on the records behind the
lot; `TraceService` answers that question over the index and lets access decide.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Literal

from lotledger.ledger.core import access
from lotledger.ledger.core.access import Caller
from lotledger.ledger.errors import InvalidRecord, NotFound, PermissionDenied
from lotledger.trace import queries, wire
from lotledger.trace.effects import SHIPMENT, effects
from lotledger.trace.index import TraceIndex
from lotledger.trace.live import LiveIndex
from lotledger.trace.records import in_force
from lotledger.v1 import trace_pb2

Direction = Literal["up", "down"]
PARTNER_DEPTH = 1  # hops a partner's trace reaches: one up, one down


class TraceService:
    """Trace queries and lot-read decisions over a live index. `live`: the index kept current
    with the ledger (lotledger.trace.live); entries are read through its ledger, and only when
    a rule needs them.

    Every method takes a `caller` that has passed `access.require_known` (the servicer checks
    that first, so an unknown caller learns nothing about lots). Methods that read records
    raise StorageError when the store fails, as everything that reads the ledger does.
    """

    def __init__(self, live: LiveIndex) -> None:
        self.live = live

    # ---- who may read what (the rule is lotledger.ledger.core.access) -------------------------

    def lot_concerns(self, index: TraceIndex, caller: Caller, lot: str) -> bool:
        """Does `lot` concern the caller? Run under the index lock (inside `live.query`).

        A full reader is answered yes before the index is consulted, so a lot unknown to it
        still reaches the query and is refused there as UNKNOWN_LOT; for a partner, a lot the
        index does not know (or a shipment node) concerns it no more than another's lot, so
        the refusal cannot be used to probe for lots. Raises NotFound (an entry behind the
        lot is missing from the log) or StorageError.
        """
        if caller.reads_everything:
            return True
        node = index.nodes.get(lot)
        if node is None or lot.startswith(SHIPMENT):
            return False
        seqs = index.seqs(node)  # oldest first: the rule looks at who recorded the lot first
        found = index.records.many(seqs)
        return access.lot_concerns(caller, lot, [found[s] for s in seqs if s in found])

    def _require_lots(self, index: TraceIndex, caller: Caller, lots: Iterable[str]) -> None:
        access.require_lots(caller, lots, lambda lot: self.lot_concerns(index, caller, lot))

    def require_entry(self, caller: Caller, seq: int, entry_bytes: bytes | None = None) -> None:
        """May the caller read entry `seq`? `entry_bytes`: the entry, when the caller of this
        method has read it already; otherwise it is read from the ledger, and only for a
        partner (a full reader's call reads nothing).

        Raises PermissionDenied (READ_NOT_ALLOWED), OutOfRange or NotFound (no such entry,
        when it has to be read), StorageError.
        """
        if caller.reads_everything:
            return
        if entry_bytes is None:
            entry_bytes = self.live.ledger.entry(seq)[0]
        record = access.entry_record(entry_bytes)

        def names_a_lot_of_the_caller() -> bool:
            def ask(index: TraceIndex) -> bool:
                lots = {
                    e.label
                    for e in effects(in_force(record), seq, index, scoped=index.scoped)
                    if not e.label.startswith(SHIPMENT)
                }
                return any(self.lot_concerns(index, caller, lot) for lot in lots)

            return self.live.query(ask)

        access.require_entry(caller, seq, record, names_a_lot_of_the_caller)

    def seq_of_record(self, caller: Caller, record_id: str, submitter: str = "") -> int:
        """The seq of `submitter`'s record `record_id` for GetEntry. For a partner, `submitter`
        defaults to itself (record ids are scoped by submitter under rules 2), and a record that
        does not exist is refused exactly as one it may not read, so no partner learns which of
        another's ids exist.

        Raises NotFound (a full reader), PermissionDenied (READ_NOT_ALLOWED), StorageError.
        """
        if caller.reads_everything:
            return self.live.ledger.seq_of(record_id, submitter)
        assert caller.participant is not None  # require_known ran
        try:
            seq = self.live.ledger.seq_of(record_id, submitter or caller.participant)
            self.require_entry(caller, seq)
        except (NotFound, PermissionDenied):
            raise access.refuse_record(caller, record_id) from None
        return seq

    # ---- queries ------------------------------------------------------------------------------

    def trace(
        self,
        caller: Caller,
        lot: str,
        direction: Direction,
        *,
        depth: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> trace_pb2.TraceResponse:
        """Upstream ("up") or downstream ("down") of `lot`, to `depth` hops (None: all), over
        the edges whose records' event times lie in [since, until] when either is given.

        A partner sees one step, the GS1 and FSMA 204 "one up, one down" norm: its depth is
        capped at PARTNER_DEPTH, so tracing its own lot shows whom it went to or came from,
        not the rest of another participant's chain (full chains are for admin, qa, auditor).

        Raises PermissionDenied (the lot does not concern the caller), UnknownLot (NotFound),
        StorageError.
        """
        if not caller.reads_everything:
            depth = PARTNER_DEPTH if depth is None else min(depth, PARTNER_DEPTH)

        def run(index: TraceIndex) -> trace_pb2.TraceResponse:
            self._require_lots(index, caller, [lot])
            result = queries.trace(index, lot, direction, depth=depth, since=since, until=until)
            return wire.trace_pb(result, index.size)

        return self.live.query(run)

    def recall(
        self, caller: Caller, lots: Sequence[str], supplier_lot_codes: Sequence[str], reason: str
    ) -> trace_pb2.RecallResponse:
        """Everything downstream of the trigger lots: `lots`, and our lots received under each
        of the `supplier_lot_codes` (a supplier's recall names its own codes).

        Raises PermissionDenied (a trigger lot does not concern the caller; the named lots are
        checked before any supplier code is looked up), NotFound (a supplier lot code no lot
        was received under, field "supplier_lot_codes"; UnknownLot), InvalidRecord (nothing
        named, field "lots"), StorageError.
        """

        def run(index: TraceIndex) -> trace_pb2.RecallResponse:
            self._require_lots(index, caller, lots)
            triggers = list(lots)
            for code in supplier_lot_codes:
                found = queries.lots_with_supplier_lot(index, code)
                if not caller.reads_everything and not (
                    found and all(self.lot_concerns(index, caller, x) for x in found)
                ):
                    raise access.refuse_supplier_code(caller, code)  # one answer for "none" and "not yours"
                if not found:
                    raise NotFound(f"no lot was received under supplier lot code {code!r}", field="supplier_lot_codes")
                triggers += found
            if not triggers:
                raise InvalidRecord("name at least one lot or supplier lot code", field="lots")
            self._require_lots(index, caller, triggers)
            # (the report is dropped before the collector runs again: see collector_paused)
            with queries.collector_paused():
                return wire.recall_pb(queries.recall(index, dict.fromkeys(triggers), reason), index.size)

        return self.live.query(run)

    def common_sources(self, caller: Caller, lots: Sequence[str]) -> trace_pb2.CommonSourcesResponse:
        """Upstream lots and suppliers shared by the complaint `lots`, most widely shared first.

        Raises PermissionDenied (a lot does not concern the caller), UnknownLot (NotFound),
        StorageError.
        """

        def run(index: TraceIndex) -> trace_pb2.CommonSourcesResponse:
            self._require_lots(index, caller, lots)
            return wire.sources_pb(queries.common_sources(index, lots))

        return self.live.query(run)

    def list_alerts(
        self, caller: Caller, *, since_seq: int = 0, rule: str = "", lots: Iterable[str] = (), limit: int = 0
    ) -> trace_pb2.ListAlertsResponse:
        """The alerts raised at entries from `since_seq` on, of `rule` (empty: every rule), on
        `lots` (empty: every lot), at most `limit` (0: all), in the order they were raised.
        A partner sees only the alerts on lots that concern it: the others are left out, not
        refused, so the list cannot be used to probe for lots.

        Raises NotFound (an entry behind a lot is missing from the log), StorageError.
        """
        wanted = frozenset(lots)

        def pick(index: TraceIndex) -> trace_pb2.ListAlertsResponse:
            chosen = [
                a
                for a in self.live.alerts
                if a.seq >= since_seq
                and (not rule or a.rule == rule)
                and (not wanted or a.lot in wanted)
                and self.lot_concerns(index, caller, a.lot)
            ]
            return wire.alerts_pb(chosen[:limit] if limit else chosen)

        return self.live.query(pick)
