"""FDA FSMA 204 (21 CFR part 1 subpart S): Critical Tracking Events, their Key Data Elements,
the rows of the electronic sortable spreadsheet, and the KDE completeness check.

Which records are which CTE (docs/qa/fsma.md says the same):

| CTE (21 CFR)                  | records                                                    |
|-------------------------------|------------------------------------------------------------|
| shipping (1.1340)             | Shipment; ship Scan                                        |
| receiving (1.1345)            | MaterialReceived; Receipt; receive Scan                     |
| transformation (1.1350)       | ProductionRun (inputs and outputs); consume/produce Scans   |

Harvesting and cooling (1.1325), initial packing (1.1330) and first land-based receiving
(1.1335) have no record kind of their own in lotledger: their sheets would be empty, so the
export has none.

One row per lot per event (a record naming a lot twice in one unit gives one row with the
sum). Location descriptions (1.1310: business name, phone, physical address) come from the
registry's master data: a location's name, address, phone and GLN (LocationRegistered), with
the business name, and the address and phone when the location has none, of the participant
it belongs to (ParticipantRegistered).

Everything here is pure: `FsmaBuilder` takes the records in log order and keeps just the
state the rows need (master data, where each lot's traceability lot code came from, what each
shipment said); `missing_kdes` judges one record against a `KdeContext`, which the builder
provides for `lotledger fsma-check` and `IndexKdeContext` provides for the alert rule
KDE_MISSING at append time, so both say the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import NamedTuple, Protocol

from google.protobuf.timestamp_pb2 import Timestamp

from lotledger.ledger.core.registry import Registry
from lotledger.ledger.core.rules import scoped_shipments
from lotledger.ledger.core.validation import lot_key
from lotledger.ledger.errors import LedgerError
from lotledger.trace.effects import NANO, PRODUCE, effects, nano, shipment_label
from lotledger.trace.index import TraceIndex
from lotledger.trace.records import in_force
from lotledger.v1 import records_pb2

SHIPPING, RECEIVING, TRANSFORMATION = "Shipping", "Receiving", "Transformation"
CTES = (SHIPPING, RECEIVING, TRANSFORMATION)

# Column types: how a cell is written (a number and a date must sort as such in a spreadsheet).
TEXT, NUMBER, DATE, INTEGER = "text", "number", "date", "integer"


def _party(prefix: str) -> list[tuple[str, str]]:
    """A location description (21 CFR 1.1310) as five sortable columns."""
    return [(f"{prefix} {part}", TEXT) for part in ("Business Name", "Location", "Address", "Phone", "GLN")]


_LOT = [
    ("Traceability Lot Code", TEXT),
    ("Product Description", TEXT),
    ("Quantity", NUMBER),
    ("Unit of Measure", TEXT),
]
_TRAILER = [("Reference Document Type", TEXT), ("Reference Document Number", TEXT), ("Ledger Entry", INTEGER)]
_TAIL = [("Record ID", TEXT)]

COLUMNS: dict[str, list[tuple[str, str]]] = {
    SHIPPING: [
        *_LOT,
        ("Ship Date", DATE),
        *_party("Immediate Subsequent Recipient"),
        *_party("Ship-From"),
        *_party("Traceability Lot Code Source"),
        *_TRAILER,
        *_TAIL,
    ],
    RECEIVING: [
        *_LOT,
        ("Receive Date", DATE),
        *_party("Immediate Previous Source"),
        *_party("Receiving Location"),
        *_party("Traceability Lot Code Source"),
        ("Source's Lot Code", TEXT),
        *_TRAILER,
        *_TAIL,
    ],
    TRANSFORMATION: [
        ("Role", TEXT),
        *_LOT,
        ("Transformation Date", DATE),
        *_party("Transformation Location"),
        *_TRAILER,
        *_TAIL,
    ],
}

_NO_PARTY = ("", "", "", "", "")
_EPOCH = date(1970, 1, 1).toordinal()

Row = tuple[object, ...]


def day(ts: Timestamp) -> date | None:
    """The UTC day of a timestamp (None if unset)."""
    if not ts.seconds and not ts.nanos:
        return None
    return date.fromordinal(_EPOCH + ts.seconds // 86_400)


def amount(billionths: int) -> Decimal:
    whole, rest = divmod(billionths, NANO)
    return Decimal(whole) if not rest else Decimal(billionths).scaleb(-9).normalize()


class Origin(NamedTuple):
    """Where a lot's traceability lot code came from: the first record that made or received it."""

    description: str
    participant: str  # the traceability lot code source: a supplier, or the maker...
    location: str  # ... at this location (may be "")


class ShipInfo(NamedTuple):
    from_participant: str
    from_location: str
    documents: tuple[tuple[str, str], ...]


class KdeContext(Protocol):
    """What `missing_kdes` needs besides the record: the state as it stood before it."""

    def location_known(self, location: str) -> bool: ...

    def origin(self, key: str) -> Origin | None: ...

    def shipment(self, owner: str, shipment_id: str) -> ShipInfo | None:
        """The shipment `owner` sent as `shipment_id` (rules 1 and 2: whoever sent it)."""
        ...


def origin_of(record: records_pb2.Record, key: str) -> Origin | None:
    """The origin a record gives lot `key`, if it is one that makes or first receives it."""
    kind = record.WhichOneof("body")
    if kind == "material_received":
        m = record.material_received
        return Origin(m.product_description, m.supplier, "")
    if kind == "production_run":
        run = record.production_run
        return Origin(run.product_description, record.submitter, run.location)
    if kind == "scan" and record.scan.meaning == PRODUCE:
        return Origin("", record.submitter, record.scan.location)
    return None


def _lots(items: Iterable[records_pb2.LotQuantity]) -> list[str]:
    return list(dict.fromkeys(lot_key(i.lot) for i in items))


def record_lots(record: records_pb2.Record) -> list[str]:
    """The lot keys a record names (for --lot filters)."""
    kind = record.WhichOneof("body")
    if kind == "material_received":
        return [lot_key(record.material_received.lot)]
    if kind == "shipment":
        return _lots(record.shipment.lots)
    if kind == "receipt":
        return _lots(record.receipt.lots)
    if kind == "production_run":
        return _lots([*record.production_run.inputs, *record.production_run.outputs])
    return []


def missing_kdes(record: records_pb2.Record, ctx: KdeContext) -> list[str]:
    """The Key Data Elements the record's CTE needs and the record (with the master data and
    the records before it) does not give, as field names; [] when complete or not a CTE.
    Scans are not judged: what they carry is what the label printed."""
    kind = record.WhichOneof("body")
    out: list[str] = []

    def need(ok: object, name: str) -> None:
        if not ok:
            out.append(name)

    def place(location: str, name: str) -> None:
        if not location:
            out.append(name)
        elif not ctx.location_known(location):
            out.append(f"{name} (location {location!r} has no master data)")

    def lots_known(keys: Iterable[str], prefix: str, source: bool) -> None:
        for key in keys:
            origin = ctx.origin(key)
            if origin is None or not origin.description:
                out.append(f"{prefix}.product_description ({key})")
            if source and origin is None:
                out.append(f"{prefix}.traceability_lot_code_source ({key})")

    if kind == "material_received":
        m = record.material_received
        need(m.quantity.amount and m.quantity.unit, "material_received.quantity")
        need(m.product_description, "material_received.product_description")
        need(m.supplier, "material_received.supplier")
        place(m.location, "material_received.location")
        need(m.received_at.seconds, "material_received.received_at")
        need(m.documents, "material_received.documents")
    elif kind == "shipment":
        s = record.shipment
        need(s.lots, "shipment.lots")
        place(s.from_location, "shipment.from_location")
        need(s.to_participant, "shipment.to_participant")
        place(s.to_location, "shipment.to_location")
        need(s.shipped_at.seconds, "shipment.shipped_at")
        need(s.documents, "shipment.documents")
        lots_known(_lots(s.lots), "shipment.lots", True)
    elif kind == "receipt":
        r = record.receipt
        need(r.lots, "receipt.lots")
        place(r.location, "receipt.location")
        need(r.received_at.seconds, "receipt.received_at")
        ship = ctx.shipment(r.shipment_owner, r.shipment_id)
        if ship is None:
            out.append("receipt.shipment_id (immediate previous source: no shipment record)")
        elif not ship.documents:
            out.append("receipt.documents (the shipment names no reference document)")
        lots_known(_lots(r.lots), "receipt.lots", True)
    elif kind == "production_run":
        run = record.production_run
        need(run.outputs, "production_run.outputs")
        need(run.product_description, "production_run.product_description")
        place(run.location, "production_run.location")
        need(run.completed_at.seconds or run.manufactured_on, "production_run.completed_at")
        lots_known(_lots(run.inputs), "production_run.inputs", False)
    return out


class IndexKdeContext:
    """The KdeContext of the live trace index (for the alert rule at append time)."""

    def __init__(self, index: TraceIndex):
        self.index = index

    def location_known(self, location: str) -> bool:
        return location in self.index.owners

    def origin(self, key: str) -> Origin | None:
        node = self.index.nodes.get(key)
        if node is None:
            return None
        for seq in self.index.made_by(node):
            found = origin_of(self.index.records.record(seq), key)
            if found is not None:
                return found
        return None

    def shipment(self, owner: str, shipment_id: str) -> ShipInfo | None:
        node = self.index.nodes.get(shipment_label(owner, shipment_id, self.index.scoped))
        if node is None or self.index.shipment_seq[node] < 0:
            return None
        record = self.index.records.record(self.index.shipment_seq[node])
        if record.WhichOneof("body") != "shipment":
            return None
        s = record.shipment
        return ShipInfo(s.from_participant, s.from_location, tuple((d.type, d.number) for d in s.documents))


@dataclass(frozen=True)
class Finding:
    seq: int
    record_id: str
    kind: str
    field: str


@dataclass
class Filter:
    """Which rows an export keeps: lots (None: any) and event days (inclusive; None: open)."""

    lots: frozenset[str] | None = None
    start: date | None = None
    end: date | None = None

    def keeps(self, key: str, when: date | None) -> bool:
        if self.lots is not None and key not in self.lots:
            return False
        if self.start is not None and (when is None or when < self.start):
            return False
        return not (self.end is not None and (when is None or when > self.end))


class FsmaBuilder:
    """Takes (seq, record) in log order; keeps rows per CTE and KDE findings.

    Corrections: the corrected body's rows are made at the correction's seq, and when the
    builder is done the rows and findings of every record a later correction replaced are
    dropped (a record's effect on the state, e.g. a lot's origin, is not undone: corrections
    of master-making records are rare and the row of the correction says what is in force).
    """

    def __init__(self, keep: Filter | None = None, check: bool = False):
        self.keep = keep or Filter()
        self.check = check
        self.registry = Registry()
        self.rows: dict[str, list[Row]] = {cte: [] for cte in CTES}
        self.findings: list[Finding] = []
        self._origins: dict[str, Origin] = {}
        self._shipments: dict[str, ShipInfo] = {}
        self._packed: dict[str, list[tuple[int, records_pb2.Aggregation, str]]] = {}  # (seq, it, submitter)
        self._latest: dict[str, int] = {}  # record id -> seq of the correction in force
        self._parties: dict[tuple[str, str], tuple[str, str, str, str, str]] = {}

    # ---- KdeContext and ScanContext ---------------------------------------------------------

    def location_known(self, location: str) -> bool:
        return location in self.registry.locations

    def origin(self, key: str) -> Origin | None:
        return self._origins.get(key)

    def shipment(self, owner: str, shipment_id: str) -> ShipInfo | None:
        return self._shipments.get(shipment_label(owner, shipment_id, self.scoped))

    @property
    def scoped(self) -> bool:
        return scoped_shipments(self.registry.rules)

    def owner(self, location: str) -> str:
        loc = self.registry.locations.get(location)
        return loc.participant_id if loc else ""

    def contents(self, sscc: str, before: int, packer: str = "") -> dict[tuple[str, str], int]:
        out: dict[tuple[str, str], int] = {}
        self._pack(sscc, before, out, {sscc}, packer)
        return {k: n for k, n in out.items() if n > 0}

    def _pack(self, sscc: str, before: int, out: dict[tuple[str, str], int], seen: set[str], packer: str) -> None:
        children: dict[str, int] = {}
        for seq, agg, submitter in self._packed.get(sscc, []):
            if seq >= before or packer and (self.owner(agg.location) or submitter) != packer:
                continue
            way = -1 if agg.action == records_pb2.AGGREGATION_ACTION_DELETE else 1
            for item in agg.lots:
                k = (lot_key(item.lot), item.quantity.unit)
                out[k] = out.get(k, 0) + way * nano(item.quantity.amount)
            for child in agg.child_ssccs:
                children[child] = children.get(child, 0) + way
        for child, n in children.items():
            if n > 0 and child not in seen:
                self._pack(child, before, out, seen | {child}, packer)

    # ---- master data ------------------------------------------------------------------------

    def party(self, participant: str, location: str = "") -> tuple[str, str, str, str, str]:
        """(business name, location, address, phone, GLN) of a participant at a location."""
        found = self._parties.get((participant, location))
        if found is not None:
            return found
        loc = self.registry.locations.get(location)
        who = self.registry.participants.get(participant or (loc.participant_id if loc else ""))
        if loc is None and who is None:
            found = (participant, location, "", "", "")
        else:
            name = who.business_name if who else participant
            found = (
                name or participant,
                (loc.name or loc.location_id) if loc else location,
                (loc.address if loc else "") or (who.address if who else ""),
                (loc.phone if loc else "") or (who.phone if who else ""),
                (loc.gln if loc else "") or (who.gln if who else ""),
            )
        self._parties[(participant, location)] = found
        return found

    def _source(self, key: str) -> tuple[str, str, str, str, str]:
        origin = self._origins.get(key)
        return self.party(origin.participant, origin.location) if origin else _NO_PARTY

    def _description(self, key: str) -> str:
        origin = self._origins.get(key)
        return origin.description if origin else ""

    # ---- records ----------------------------------------------------------------------------

    def add(self, seq: int, record: records_pb2.Record) -> None:
        kind = record.WhichOneof("body")
        if kind in ("participant_registered", "location_registered", "key_revoked"):
            try:
                self.registry.check_and_apply(record, seq)
            except LedgerError:  # the ledger refused it too; a log never holds one
                return
            self._parties.clear()
            return
        if kind == "correction":
            record = in_force(record)
            self._latest[record.record_id] = seq
            kind = record.WhichOneof("body")
        if kind == "aggregation":
            agg = record.aggregation
            self._packed.setdefault(agg.parent_sscc, []).append((seq, agg, record.submitter))
            return
        if kind not in ("material_received", "shipment", "receipt", "production_run", "scan"):
            return
        if self.check and (self.keep.lots is None or not self.keep.lots.isdisjoint(record_lots(record))):
            for name in missing_kdes(record, self):
                self.findings.append(Finding(seq, record.record_id, kind, name))
        if kind == "material_received":
            self._material(seq, record)
        elif kind == "shipment":
            self._shipment(seq, record)
        elif kind == "receipt":
            self._receipt(seq, record)
        elif kind == "production_run":
            self._run(seq, record)
        else:
            self._scan(seq, record)

    def _material(self, seq: int, record: records_pb2.Record) -> None:
        m = record.material_received
        key = lot_key(m.lot)
        self._origins.setdefault(key, Origin(m.product_description, m.supplier, ""))
        when = day(m.received_at)
        if not self.keep.keeps(key, when):
            return
        doc = (m.documents[0].type, m.documents[0].number) if m.documents else ("", "")
        supplier = self.party(m.supplier)
        self.rows[RECEIVING].append(
            (
                key,
                m.product_description,
                Decimal(m.quantity.amount) if m.quantity.amount else None,
                m.quantity.unit,
                when,
                *supplier,
                *self.party(record.submitter, m.location),
                *supplier,
                m.supplier_lot_code,
                *doc,
                seq,
                record.record_id,
            )
        )

    def _shipment(self, seq: int, record: records_pb2.Record) -> None:
        s = record.shipment
        docs = tuple((d.type, d.number) for d in s.documents)
        self._shipments[shipment_label(s.from_participant, s.shipment_id, self.scoped)] = ShipInfo(
            s.from_participant, s.from_location, docs
        )
        when = day(s.shipped_at)
        to = from_ = None
        doc = docs[0] if docs else ("", "")
        for (key, unit), n in _sum(s.lots).items():
            if not self.keep.keeps(key, when):
                continue
            to = to or self.party(s.to_participant, s.to_location)
            from_ = from_ or self.party(s.from_participant, s.from_location)
            self.rows[SHIPPING].append(
                (key, self._description(key), amount(n), unit, when, *to, *from_, *self._source(key), *doc, seq)
                + (record.record_id,)
            )

    def _receipt(self, seq: int, record: records_pb2.Record) -> None:
        r = record.receipt
        ship = self.shipment(r.shipment_owner, r.shipment_id)
        when = day(r.received_at)
        doc = ship.documents[0] if ship and ship.documents else ("", "")
        for (key, unit), n in _sum(r.lots).items():
            if not self.keep.keeps(key, when):
                continue
            source = self.party(ship.from_participant, ship.from_location) if ship else _NO_PARTY
            self.rows[RECEIVING].append(
                (key, self._description(key), amount(n), unit, when, *source)
                + (*self.party(r.participant, r.location), *self._source(key), "", *doc, seq, record.record_id)
            )

    def _run(self, seq: int, record: records_pb2.Record) -> None:
        run = record.production_run
        for key in _lots(run.outputs):
            self._origins.setdefault(key, Origin(run.product_description, record.submitter, run.location))
        when = day(run.completed_at)
        if when is None and run.manufactured_on:
            when = date.fromisoformat(run.manufactured_on)
        place = self.party(record.submitter, run.location)
        doc = ("Production run", run.run_id)
        # A transformation is one event: all its lots or none (an FDA request for a lot's trace
        # gets the whole run that used or made it, not the part naming traced lots).
        if not any(self.keep.keeps(key, when) for key in record_lots(record)):
            return
        for role, items in (("Input", run.inputs), ("Output", run.outputs)):
            for (key, unit), n in _sum(items).items():
                desc = run.product_description if role == "Output" else self._description(key)
                self.rows[TRANSFORMATION].append(
                    (role, key, desc, amount(n), unit, when, *place, *doc, seq, record.record_id)
                )

    def _scan(self, seq: int, record: records_pb2.Record) -> None:
        s = record.scan
        when = day(s.scanned_at)
        effs = effects(record, seq, self, scoped=self.scoped)
        holder = self.owner(s.location) or record.submitter
        doc = ("SSCC", s.gs1.sscc) if s.gs1.sscc else ("Scan", s.raw_data)
        for e in effs:
            if e.role == "out":
                self._origins.setdefault(e.label, Origin("", holder, s.location))
            if e.role not in ("out", "in", "received", "shipped") or not self.keep.keeps(e.label, when):
                continue
            qty = amount(abs(e.delta)) if e.unit else None
            here = self.party(holder, s.location)
            if e.role in ("out", "in"):
                role = "Output" if e.role == "out" else "Input"
                row: Row = (role, e.label, self._description(e.label), qty, e.unit, when, *here, *doc, seq)
                self.rows[TRANSFORMATION].append((*row, record.record_id))
            elif e.role == "shipped":
                row = (e.label, self._description(e.label), qty, e.unit, when, *_NO_PARTY, *here)
                self.rows[SHIPPING].append((*row, *self._source(e.label), *doc, seq, record.record_id))
            else:
                row = (e.label, self._description(e.label), qty, e.unit, when, *_NO_PARTY, *here)
                self.rows[RECEIVING].append((*row, *self._source(e.label), "", *doc, seq, record.record_id))

    # ---- results ----------------------------------------------------------------------------

    def _in_force(self, seq: int, record_id: str) -> bool:
        latest = self._latest.get(record_id)
        return latest is None or latest == seq

    def sheets(self) -> Iterator[tuple[str, list[tuple[str, str]], list[Row]]]:
        """(CTE, columns, rows) for each CTE, rows of replaced records left out, in log order."""
        for cte in CTES:
            rows = self.rows[cte]
            if self._latest:
                rows = [r for r in rows if self._in_force(r[-2], r[-1])]  # type: ignore[arg-type]
            yield cte, COLUMNS[cte], rows

    def missing(self) -> list[Finding]:
        return [f for f in self.findings if self._in_force(f.seq, f.record_id)]


def _sum(items: Iterable[records_pb2.LotQuantity]) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    for item in items:
        q = item.quantity
        k = (lot_key(item.lot), q.unit)
        out[k] = out.get(k, 0) + (nano(q.amount) if q.amount else 0)
    return out
