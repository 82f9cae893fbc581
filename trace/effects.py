"""What each record means to the trace index: the one place that says so.

`effects(record)` turns a record in force into per-node effects (which lot or shipment, in
what role, whose balance moves by how much). Applying records, re-deriving a node after a
correction, reading quantities for a trace or a recall, and the alert rules all go through
it, so they cannot disagree about what a record did.

Scans (issue 4) mean, at the station where they were made:

| meaning | a lot scanned (GTIN + lot)                   | an SSCC scanned (a pallet or case)              |
|---------|----------------------------------------------|-------------------------------------------------|
| receive | a receipt of the lot at the location         | the shipment of that SSCC is delivered, and     |
|         |                                              | each lot packed on it is received               |
| produce | the lot was made at that line; from now on   | (names no lot: nothing)                         |
|         | it is the line's *run in progress*           |                                                 |
| consume | the lot went into the line's run in progress | each lot packed on it went into that run        |
|         | (an edge lot -> run's lot); with none, the   |                                                 |
|         | consumption is kept as a fact on the lot     |                                                 |
| ship    | the lot left in a shipment of its own,       | the pallet left: shipment `sscc/<sscc>` of      |
|         | `shipment:<scan record id>` (rules 3:        | every lot packed on it                          |
|         | `shipment:<submitter>/<scan record id>`)     |                                                 |

- What is packed on an SSCC comes from the `Aggregation` records before the scan (ADD and
  DELETE, nested SSCCs included). An SSCC whose contents the ledger does not know falls back
  to the GTIN + lot printed on its label, if any.
- A scan's quantity is its net weight (AI 310n, KGM) or its count (AI 30/37, H87); a scan
  with neither is an event without a quantity (it links, it does not move a balance).
- The balance a scan moves belongs to the participant owning the scan's location
  (`LocationRegistered`), else to the device itself.
- The run in progress at a line is the lot of the latest produce scan at that location.
- A second ship scan of an SSCC already shipped, or a receive scan of one already received,
  is a rescan: the index leaves it out (see `TraceIndex._scan`).

The parts that depend on what came before (packing, location owners) come from a
`ScanContext`, which the index provides; without one (a bare record), SSCC scans name only
their shipment.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple, Protocol

from google.protobuf.timestamp_pb2 import Timestamp

from lotledger.ledger.core.validation import lot_key
from lotledger.v1 import records_pb2

SHIPMENT = "shipment:"
SSCC_SHIPMENT = SHIPMENT + "sscc/"


def shipment_label(owner: str, shipment_id: str, scoped: bool) -> str:
    """The node of a shipment: `shipment:<id>` in a log under rules 1 and 2, where a shipment
    id was one name for everyone; `shipment:<owner>/<id>` under rules 3, where each sender
    names its own shipments (ledger/core/rules.py). A participant id holds no `/` and `sscc`
    is reserved, so no label is two shipments'."""
    return f"{SHIPMENT}{owner}/{shipment_id}" if scoped else SHIPMENT + shipment_id


QC_NONE, QC_PASS, QC_FAIL, QC_HOLD = 0, 1, 2, 3
QC_CODES = {
    records_pb2.QC_RESULT_PASS: QC_PASS,
    records_pb2.QC_RESULT_FAIL: QC_FAIL,
    records_pb2.QC_RESULT_HOLD: QC_HOLD,
}
QC_NAMES = {QC_NONE: "NONE", QC_PASS: "PASS", QC_FAIL: "FAIL", QC_HOLD: "HOLD"}

NANO = 10**9  # quantities are kept as integer billionths: validation allows 9 decimals at most

RECEIVE, CONSUME, PRODUCE, SHIP = (
    records_pb2.SCAN_MEANING_RECEIVE,
    records_pb2.SCAN_MEANING_CONSUME,
    records_pb2.SCAN_MEANING_PRODUCE,
    records_pb2.SCAN_MEANING_SHIP,
)


def nano(amount: str) -> int:
    """A validated decimal amount string as exact integer billionths."""
    whole, _, frac = amount.partition(".")
    return int(whole) * NANO + (int(frac.ljust(9, "0")) if frac else 0)


def micros(ts: Timestamp) -> int:
    return int(ts.seconds) * 1_000_000 + int(ts.nanos) // 1000


# What a record does to one node. role: "out" (a run made it), "in" (a run consumed it),
# "received" (material receipt), "qc", "shipped", "arrived" (receipt at the receiver),
# "shipment" (the shipment node of a shipment record), "delivery" (a receipt of a shipment).
class Effect(NamedTuple):
    label: str
    role: str
    holder: str = ""
    unit: str = ""
    delta: int = 0  # billionths added to (holder, unit)'s balance of the lot
    expiry: str = ""
    qc: int = QC_NONE
    location: str = ""


class ScanContext(Protocol):
    """What a scan's meaning depends on besides the scan itself."""

    def owner(self, location: str) -> str:
        """The participant a location was registered to, or ""."""
        ...

    def contents(self, sscc: str, before: int, packer: str = "") -> dict[tuple[str, str], int]:
        """(lot key, unit) -> billionths packed on the SSCC by the records before seq `before`;
        with `packer`, by that participant's Aggregation records only (the owner of the
        aggregation's location, else its submitter): under rules 3 another participant's
        Aggregation cannot put lots on a pallet it does not hold."""
        ...


def _items(
    items: Iterable[records_pb2.LotQuantity], role: str, who: str, sign: int, expiry: str, where: str
) -> list[Effect]:
    # Written for speed: every protobuf attribute read crosses into upb (about 0.1 us each).
    out = []
    for item in items:
        q = item.quantity
        out.append(Effect(lot_key(item.lot), role, who, q.unit, sign * nano(q.amount), expiry, 0, where))
    return out


def effects(
    record: records_pb2.Record, seq: int = -1, ctx: ScanContext | None = None, *, scoped: bool = False
) -> list[Effect]:
    """Per-node effects of a record in force (at `seq`, for scans that depend on what came
    before it), in a log that names shipments by owner and id if `scoped` (rules 3)."""
    kind = record.WhichOneof("body")
    if kind == "production_run":
        run = record.production_run
        who, where = record.submitter, run.location
        return _items(run.outputs, "out", who, 1, run.expiry_date, where) + _items(run.inputs, "in", who, -1, "", where)
    if kind == "shipment":
        s = record.shipment
        ship = Effect(shipment_label(s.from_participant, s.shipment_id, scoped), "shipment")
        return [ship, *_items(s.lots, "shipped", s.from_participant, -1, "", s.from_location)]
    if kind == "material_received":
        m = record.material_received
        q = m.quantity
        return [
            Effect(lot_key(m.lot), "received", record.submitter, q.unit, nano(q.amount), m.expiry_date, 0, m.location)
        ]
    if kind == "quality_check":
        qc = record.quality_check
        return [Effect(lot_key(qc.lot), "qc", qc=QC_CODES.get(qc.result, QC_NONE))]
    if kind == "receipt":
        r = record.receipt
        return [
            Effect(shipment_label(r.shipment_owner, r.shipment_id, scoped), "delivery"),
            *_items(r.lots, "arrived", r.participant, 1, "", r.location),
        ]
    if kind == "scan":
        return scan_effects(record, seq, ctx, scoped=scoped)
    return []


def scan_quantity(gs1: records_pb2.Gs1Fields) -> tuple[str, int]:
    """(unit, billionths) a scan names: its net weight, else its count, else ("", 0)."""
    if gs1.HasField("net_weight") and gs1.net_weight.amount:
        return gs1.net_weight.unit, nano(gs1.net_weight.amount)
    if gs1.count:
        return "H87", gs1.count * NANO
    return "", 0


def scan_effects(
    record: records_pb2.Record, seq: int, ctx: ScanContext | None, *, scoped: bool = False
) -> list[Effect]:
    """The table in this module's docstring, as code (a ship scan of a lot names its shipment
    by its submitter and record id if `scoped`)."""
    s = record.scan
    g = s.gs1
    holder = (ctx.owner(s.location) if ctx is not None else "") or record.submitter
    where = s.location
    packed: dict[tuple[str, str], int] = {}
    if g.sscc and ctx is not None and s.meaning != PRODUCE:
        packed = ctx.contents(g.sscc, seq if seq >= 0 else 2**63 - 1, holder if scoped else "")
    if not packed and g.gtin and g.lot:
        unit, amount = scan_quantity(g)
        packed = {(lot_key(records_pb2.LotId(gtin=g.gtin, lot=g.lot)), unit): amount}
    meaning = s.meaning
    if meaning == SHIP:
        label = SSCC_SHIPMENT + g.sscc if g.sscc else shipment_label(record.submitter, record.record_id, scoped)
        ship = Effect(label, "shipment")
        return [ship, *(Effect(k, "shipped", holder, u, -n, "", 0, where) for (k, u), n in packed.items())]
    if meaning == RECEIVE:
        lots = [Effect(k, "received", holder, u, n, g.expiry_date, 0, where) for (k, u), n in packed.items()]
        return [Effect(SSCC_SHIPMENT + g.sscc, "delivery"), *lots] if g.sscc else lots
    if meaning == CONSUME:
        return [Effect(k, "in", holder, u, -n, "", 0, where) for (k, u), n in packed.items()]
    if meaning == PRODUCE:
        return [Effect(k, "out", holder, u, n, g.expiry_date, 0, where) for (k, u), n in packed.items()]
    return []


_EVENT_TIME = {
    "material_received": "received_at",
    "production_run": "completed_at",
    "quality_check": "checked_at",
    "shipment": "shipped_at",
    "receipt": "received_at",
    "scan": "scanned_at",
    "aggregation": "aggregated_at",
}


def event_time(record: records_pb2.Record) -> int:
    """When the record's event happened, in microseconds (0: it names no time)."""
    kind = record.WhichOneof("body") or ""
    name = _EVENT_TIME.get(kind)
    if name is None:
        return 0
    ts = getattr(getattr(record, kind), name)
    return micros(ts) if ts.seconds or ts.nanos else 0
