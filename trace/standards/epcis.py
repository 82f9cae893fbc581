"""GS1 EPCIS 2.0 events to lotledger records and back: the one mapping table, pure, no I/O.

Import (`plan_import`): each event of an `EPCISDocument` or `EPCISQueryDocument` maps to one
record, or to a problem (its index in the document, its eventID, a reason). The driver appends
only when no event has a problem, so bad input leaves the ledger unchanged.

| EPCIS event                                  | record                                             |
|----------------------------------------------|----------------------------------------------------|
| Object/TransactionEvent, bizStep receiving   | Receipt if it names a shipment (`lotledger:shipmentId`) or several lots, else MaterialReceived (one lot; supplier = the owning_party source) |
| Object/TransactionEvent, bizStep shipping    | Shipment (lots), or a SHIP Scan when it names one SSCC (the trace index ships what is packed on it) |
| ObjectEvent, bizStep inspecting              | QualityCheck (disposition conformant = PASS, non_conformant = FAIL, `urn:lotledger:disp:hold` = HOLD) |
| ObjectEvent ADD, commissioning / creating_class_instance | a PRODUCE Scan of the lot (CBV has no `transforming` step) |
| TransformationEvent                          | ProductionRun (inputs, outputs by quantity or by lot-level EPC; transformationID = run id) |
| AggregationEvent ADD / DELETE                | Aggregation (parent SSCC, child lots and SSCCs)    |
| any of these with errorDeclaration           | Correction of the record the same event without the declaration made |

Identifiers: EPC URNs and GS1 Digital Link URIs (any domain) normalise to one canonical form
first (trace/standards/epcis_hash.py), so both give the same records and the same event hash. Lots are
`01/<gtin>/10/<lot>` keys, locations `414/<gln>[/254/<ext>]`, parties `gln:<gln>`; lotledger ids
without a GS1 key travel as `urn:lotledger:{lot,location,participant}:<id>`.

Each record keeps its event (canonical JSON with the document's @context) and its CBV 2.0 event
hash ID in `Record.epcis`; its record id is `epcis:` + the hash's hex digest, so a re-import is
a no-op: the server answers the same id with the entry it holds (a duplicate when the bytes are
the same; otherwise a conflict, and the importer then compares the held record's event hash).
Its created_at is when it was signed, not the eventTime: the server accepts created_at only
within a window of its clock (replay protection), and imported events may be years old.

Export (`export_document`): an imported record gives back its source event as it was; a native
record maps to the event its row above names (receipts, materials, shipments, QC, runs,
aggregations, PRODUCE scans and SSCC SHIP scans); the rest are counted as skipped.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, NoReturn
from urllib.parse import quote, unquote

from lotledger.ledger.core.validation import lot_key, parse_lot_key
from lotledger.ledger.errors import EpcisUnmappable, InvalidRecord
from lotledger.trace.standards.epcis_hash import (
    DL,
    canonical_id,
    event_hash_id,
    format_time,
    parse_time,
    vocab_word,
)
from lotledger.v1 import records_pb2

EPCIS_CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
LOTLEDGER_NS = "https://ns.lotledger.dev/epcis/"
CONTEXT: list[Any] = [EPCIS_CONTEXT, {"lotledger": LOTLEDGER_NS}]
URN_LOT, URN_LOCATION, URN_PARTICIPANT = "urn:lotledger:lot:", "urn:lotledger:location:", "urn:lotledger:participant:"
URN_RUN, URN_DOC, URN_DOCTYPE = "urn:lotledger:run:", "urn:lotledger:doc:", "urn:lotledger:doctype:"
HOLD = "urn:lotledger:disp:hold"
RECORD_PREFIX = "epcis:"

# Business transaction types (CBV BTT) and lotledger document types.
_BTT = {"po": "PO", "desadv": "ASN", "bol": "BOL", "inv": "INV", "cert": "COA", "recadv": "RECADV"}
_DOC = {v: k for k, v in _BTT.items()}
_EVENT_TYPES = ("ObjectEvent", "AggregationEvent", "TransactionEvent", "TransformationEvent", "AssociationEvent")


def _fail(message: str, reason: str = "EPCIS_UNMAPPABLE", where: str | None = None) -> NoReturn:
    raise EpcisUnmappable(message, reason=reason, field=where)


# ---- identifiers -------------------------------------------------------------------------------


def lot_of(uri: str) -> records_pb2.LotId:
    """The lot an identifier names: an LGTIN or a Digital Link with AI 10 (a serial after it is
    ignored), or `urn:lotledger:lot:<lot key>`. Raises EpcisUnmappable."""
    if uri.startswith(URN_LOT):
        try:
            return parse_lot_key(uri[len(URN_LOT) :])
        except InvalidRecord as e:
            return _fail(f"{uri}: {e.message}", "EPCIS_BAD_IDENTIFIER")
    dl = canonical_id(uri)
    parts = dl[len(DL) :].split("/") if dl.startswith(DL) else []
    if len(parts) >= 4 and parts[0] == "01" and parts[2] == "10":
        return records_pb2.LotId(gtin=parts[1], lot=unquote(parts[3]))
    if len(parts) >= 2 and parts[0] == "01":
        return _fail(f"{uri} names a trade item or a serial, not a lot (use an LGTIN or a Digital Link with AI 10)")
    return _fail(f"{uri} is not a lot identifier", "EPCIS_BAD_IDENTIFIER")


def lot_uri(lot: records_pb2.LotId) -> str:
    key = lot_key(lot)
    return DL + key if lot.gtin else URN_LOT + key


def sscc_of(uri: str) -> str:
    dl = canonical_id(uri)
    return dl[len(DL) + 3 :] if dl.startswith(DL + "00/") else ""


def location_of(uri: str) -> str:
    if uri.startswith(URN_LOCATION):
        return unquote(uri[len(URN_LOCATION) :])
    dl = canonical_id(uri)
    if dl.startswith(DL + "414/"):
        return dl[len(DL) :]
    return _fail(f"{uri} is not a location (an SGLN, a Digital Link with AI 414, or {URN_LOCATION}<id>)")


def location_uri(location: str) -> str:
    return DL + location if location.startswith("414/") else URN_LOCATION + quote(location, safe="/")


def participant_of(uri: str) -> str:
    if uri.startswith(URN_PARTICIPANT):
        return unquote(uri[len(URN_PARTICIPANT) :])
    dl = canonical_id(uri)
    if dl.startswith((DL + "417/", DL + "414/")):
        return "gln:" + dl[len(DL) + 4 : len(DL) + 17]
    return _fail(f"{uri} is not a party (a PGLN, a Digital Link with AI 417, or {URN_PARTICIPANT}<id>)")


def participant_uri(participant: str) -> str:
    if participant.startswith("gln:") and len(participant) == 17:
        return f"{DL}417/{participant[4:]}"
    return URN_PARTICIPANT + participant


# ---- import ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    index: int
    event_id: str
    reason: str
    message: str


@dataclass
class ImportPlan:
    records: list[tuple[int, str, records_pb2.Record]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    # index -> the native record an event was exported from (`record_event`): the driver skips
    # it when the log it imports into holds that record already.
    native: dict[int, NativeRef] = field(default_factory=dict)


def document_events(doc: Any) -> tuple[list[Any], Any]:
    """(events, @context) of an EPCISDocument or EPCISQueryDocument. Raises EpcisUnmappable."""
    if not isinstance(doc, dict):
        return _fail("an EPCIS document is a JSON object", "EPCIS_MALFORMED")
    body = doc.get("epcisBody")
    kind = doc.get("type")
    if kind == "EPCISQueryDocument" and isinstance(body, dict):
        results = body.get("queryResults", {})
        events = results.get("resultsBody", {}).get("eventList") if isinstance(results, dict) else None
    elif kind == "EPCISDocument" and isinstance(body, dict):
        events = body.get("eventList")
    else:
        return _fail("not an EPCISDocument or EPCISQueryDocument (type and epcisBody)", "EPCIS_MALFORMED")
    if not isinstance(events, list):
        return _fail("the document has no eventList", "EPCIS_MALFORMED")
    return events, doc.get("@context")


def plan_import(doc: Any, submitter: str, now: datetime | None = None) -> ImportPlan:
    """Map every event of a document; problems are collected, never skipped silently. `now`:
    the records' created_at (when they are signed: the server refuses a created_at outside its
    accepted window, and an event may be years old; the event's own time is in the body).
    Raises EpcisUnmappable when the document itself is malformed."""
    events, context = document_events(doc)
    created = now or datetime.now(UTC)
    plan = ImportPlan()
    for i, event in enumerate(events):
        event_id = str(event.get("eventID", "")) if isinstance(event, dict) else ""
        try:
            plan.records.append((i, event_id, event_record(event, context, submitter, created)))
        except InvalidRecord as e:
            plan.problems.append(Problem(i, event_id, e.reason, e.message))
            continue
        ref = native_ref(event, context)
        if ref is not None:
            plan.native[i] = ref
    return plan


def canonical_json(event: dict[str, Any], context: Any) -> str:
    data = dict(event)
    if context is not None and "@context" not in data:
        data["@context"] = context
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def record_id_for(hash_id: str) -> str:
    return RECORD_PREFIX + hashlib.sha256(hash_id.encode()).hexdigest()


def event_record(event: Any, context: Any, submitter: str, created: datetime) -> records_pb2.Record:
    """The record one event maps to, created (signed) at `created`. Raises EpcisUnmappable
    (or InvalidRecord)."""
    if not isinstance(event, dict):
        return _fail("an event is a JSON object", "EPCIS_MALFORMED")
    hash_id = event_hash_id(event, context)
    record = records_pb2.Record(record_id=record_id_for(hash_id), submitter=submitter)
    parse_time(event.get("eventTime"), "eventTime")  # an event must say when it happened
    record.created_at.FromDatetime(created)
    if "errorDeclaration" in event:
        original = {k: v for k, v in event.items() if k != "errorDeclaration"}
        decl = event["errorDeclaration"]
        if not isinstance(decl, dict):
            return _fail("errorDeclaration is not an object", "EPCIS_MALFORMED")
        reason = str(decl.get("reason", "")) or "error declared"
        corrective = decl.get("correctiveEventIDs") or []
        fix = records_pb2.Correction(
            corrects_record_id=record_id_for(event_hash_id(original, context)),
            reason=(vocab_word("reason", reason) or reason)
            + (f"; corrective events: {', '.join(map(str, corrective))}" if corrective else ""),
        )
        _body(original, context, submitter, fix.corrected)
        record.correction.CopyFrom(fix)
    else:
        _body(event, context, submitter, record)
    record.epcis.event_hash_id = hash_id
    record.epcis.event_json = canonical_json(event, context)
    return record


def _ext(event: dict[str, Any], name: str) -> str:
    for key in (f"lotledger:{name}", f"{LOTLEDGER_NS}{name}"):
        if key in event:
            return str(event[key])
    return ""


def _amount(value: Any, where: str) -> str:
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return _fail(f"{where}: {value!r} is not a number", "EPCIS_MALFORMED")
    if not amount.is_finite() or amount <= 0:
        return _fail(f"{where}: {value!r} is not a positive quantity")
    text = format(amount.normalize(), "f")
    return text


def _lots(event: dict[str, Any], quantities: str, epcs: str) -> list[records_pb2.LotQuantity]:
    out: list[records_pb2.LotQuantity] = []
    for i, q in enumerate(event.get(quantities) or []):
        where = f"{quantities}[{i}]"
        if not isinstance(q, dict) or "epcClass" not in q:
            return _fail(f"{where}: needs epcClass and quantity", "EPCIS_MALFORMED")
        if "quantity" not in q:
            return _fail(f"{where}: a quantity without an amount cannot be recorded")
        quantity = records_pb2.Quantity(amount=_amount(q["quantity"], where), unit=str(q.get("uom") or "H87"))
        out.append(records_pb2.LotQuantity(lot=lot_of(str(q["epcClass"])), quantity=quantity))
    counts: dict[str, tuple[records_pb2.LotId, int]] = {}
    for uri in event.get(epcs) or []:
        lot = lot_of(str(uri))
        key = lot_key(lot)
        counts[key] = (lot, counts.get(key, (lot, 0))[1] + 1)
    for lot, n in counts.values():
        out.append(records_pb2.LotQuantity(lot=lot, quantity=records_pb2.Quantity(amount=str(n), unit="H87")))
    return out


def _where(event: dict[str, Any]) -> str:
    for name in ("bizLocation", "readPoint"):
        place = event.get(name)
        if isinstance(place, dict) and place.get("id"):
            return location_of(str(place["id"]))
    return ""


def _party(event: dict[str, Any], listname: str, key: str, *types: str) -> str:
    for item in event.get(listname) or []:
        if isinstance(item, dict) and vocab_word("sourceDestType", str(item.get("type", ""))) in types:
            return (participant_of if "party" in types[0] else location_of)(str(item.get(key, "")))
    return ""


def _documents(event: dict[str, Any]) -> list[records_pb2.DocumentRef]:
    docs = []
    for item in event.get("bizTransactionList") or []:
        t = str(item.get("type", ""))
        word = vocab_word("bizTransactionType", t)
        kind = _BTT.get(word, word.upper()) if word else t[len(URN_DOCTYPE) :] if t.startswith(URN_DOCTYPE) else t
        value = str(item.get("bizTransaction", ""))
        number = unquote(value[len(URN_DOC) :]) if value.startswith(URN_DOC) else canonical_id(value)
        docs.append(records_pb2.DocumentRef(type=kind or "DOC", number=number))
    return docs


def _time(event: dict[str, Any], ts: Any, name: str = "eventTime") -> None:
    ts.seconds, ts.nanos = parse_time(event.get(name), name)


def _one_lot(lots: list[records_pb2.LotQuantity], what: str) -> records_pb2.LotQuantity:
    if len(lots) != 1:
        return _fail(f"a {what} names exactly one lot; this event names {len(lots)}")
    return lots[0]


def _body(event: dict[str, Any], context: Any, submitter: str, record: Any) -> None:
    """Fill the body of `record` (a Record, or a Correction's corrected record)."""
    kind = event.get("type")
    if kind not in _EVENT_TYPES:
        _fail(f"event type {kind!r} is not an EPCIS 2.0 event type", "EPCIS_MALFORMED")
    step = vocab_word("bizStep", str(event.get("bizStep", "")))
    action = event.get("action")
    if kind == "TransformationEvent":
        run = record.production_run
        tid = str(event.get("transformationID", ""))
        run.run_id = unquote(tid[len(URN_RUN) :]) if tid.startswith(URN_RUN) else tid or "epcis-run"
        run.inputs.extend(_lots(event, "inputQuantityList", "inputEPCList"))
        run.outputs.extend(_lots(event, "outputQuantityList", "outputEPCList"))
        if not run.inputs or not run.outputs:
            _fail("a transformation needs inputs and outputs to become a production run")
        _time(event, run.completed_at)
        run.manufactured_on = _ext(event, "manufacturedOn") or format_time(run.completed_at.seconds, 0)[:10]
        run.location = _where(event) or _fail("a transformation needs a bizLocation or readPoint (the line)")
        ilmd = event.get("ilmd") or {}
        run.expiry_date = str(ilmd.get("cbvmda:itemExpirationDate", "")) if isinstance(ilmd, dict) else ""
        run.formula_id = _ext(event, "formulaId")
        run.formula_version = int(_ext(event, "formulaVersion") or 0)
        run.product_description = _ext(event, "productDescription")
        if _ext(event, "startedAt"):
            _time({"t": _ext(event, "startedAt")}, run.started_at, "t")
        return
    if kind == "AggregationEvent":
        agg = record.aggregation
        agg.parent_sscc = sscc_of(str(event.get("parentID", ""))) or _fail("an aggregation's parentID must be an SSCC")
        if action not in ("ADD", "DELETE"):
            _fail(f"aggregation action {action!r} changes nothing (ADD or DELETE)")
        agg.action = records_pb2.AGGREGATION_ACTION_ADD if action == "ADD" else records_pb2.AGGREGATION_ACTION_DELETE
        children = [str(c) for c in event.get("childEPCs") or []]
        agg.child_ssccs.extend(s for s in map(sscc_of, children) if s)
        lot_children = {"childEPCs": [c for c in children if not sscc_of(c)]}
        agg.lots.extend(_lots({**event, **lot_children}, "childQuantityList", "childEPCs"))
        agg.location = _where(event)
        _time(event, agg.aggregated_at)
        return
    if kind == "AssociationEvent":
        _fail("AssociationEvent (assets and sensors) has no lotledger record")
    if step == "receiving":
        lots = _lots(event, "quantityList", "epcList")
        shipment_id = _ext(event, "shipmentId")
        if shipment_id or len(lots) > 1:
            r = record.receipt
            r.shipment_id = shipment_id or f"epcis:{event_hash_id(event, context)[14:30]}"
            r.lots.extend(lots)
            r.participant = _party(event, "destinationList", "destination", "owning_party") or submitter
            # Who sent the shipment: the log names a shipment by owner and id (rules 3)
            r.shipment_owner = _party(event, "sourceList", "source", "owning_party", "possessing_party")
            r.location = _where(event)
            _time(event, r.received_at)
            return
        m = record.material_received
        one = _one_lot(lots, "material receipt")
        m.lot.CopyFrom(one.lot)
        m.quantity.CopyFrom(one.quantity)
        m.supplier = _party(event, "sourceList", "source", "owning_party", "possessing_party") or _fail(
            "a receipt of material needs its supplier (sourceList owning_party)"
        )
        m.location = _where(event) or _fail("a receipt of material needs a bizLocation or readPoint")
        m.documents.extend(_documents(event))
        m.supplier_lot_code = _ext(event, "supplierLotCode") or one.lot.lot
        m.expiry_date = _ext(event, "expiryDate")
        m.product_description = _ext(event, "productDescription")
        _time(event, m.received_at)
        return
    if step == "shipping":
        epcs = [str(e) for e in event.get("epcList") or []]
        ssccs = [s for s in map(sscc_of, epcs) if s]
        if ssccs:
            if len(ssccs) != 1 or len(epcs) != 1 or event.get("quantityList"):
                _fail("a shipping event of an SSCC must name that one SSCC and nothing else")
            scan = record.scan
            scan.device_id, scan.raw_data, scan.meaning = "epcis", epcs[0], records_pb2.SCAN_MEANING_SHIP
            scan.gs1.sscc = ssccs[0]
            scan.location = _where(event) or _fail("a shipping scan needs a bizLocation or readPoint")
            _time(event, scan.scanned_at)
            return
        s = record.shipment
        s.lots.extend(_lots(event, "quantityList", "epcList"))
        s.from_participant = _party(event, "sourceList", "source", "owning_party") or submitter
        s.to_participant = _party(event, "destinationList", "destination", "owning_party") or _fail(
            "a shipment needs its recipient (destinationList owning_party)"
        )
        s.from_location = _party(event, "sourceList", "source", "location") or _where(event)
        s.to_location = _party(event, "destinationList", "destination", "location")
        s.documents.extend(_documents(event))
        asn = [d.number for d in s.documents if d.type in ("ASN", "BOL")]
        s.shipment_id = _ext(event, "shipmentId") or (
            asn[0] if asn else f"epcis:{event_hash_id(event, context)[14:30]}"
        )
        _time(event, s.shipped_at)
        return
    if kind == "TransactionEvent":
        _fail(f"a TransactionEvent maps when its bizStep is receiving or shipping, not {step or 'empty'!r}")
    if step == "inspecting":
        qc = record.quality_check
        qc.lot.CopyFrom(_one_lot(_lots(event, "quantityList", "epcList"), "quality check").lot)
        disposition = str(event.get("disposition", ""))
        word = vocab_word("disposition", disposition)
        results = {"conformant": records_pb2.QC_RESULT_PASS, "non_conformant": records_pb2.QC_RESULT_FAIL}
        qc.result = (
            records_pb2.QC_RESULT_HOLD
            if disposition == HOLD
            else results.get(word) or _fail(f"inspecting needs a disposition conformant, non_conformant or {HOLD}")
        )
        qc.check_name = _ext(event, "checkName") or "EPCIS inspecting"
        qc.signed_off_by = _ext(event, "signedOffBy") or submitter
        qc.spec_reference = _ext(event, "specReference")
        _time(event, qc.checked_at)
        return
    if step in ("commissioning", "creating_class_instance") and action == "ADD" and kind == "ObjectEvent":
        lot = _one_lot(_lots(event, "quantityList", "epcList"), "commissioning event")
        scan = record.scan
        scan.device_id, scan.meaning = _ext(event, "deviceId") or "epcis", records_pb2.SCAN_MEANING_PRODUCE
        scan.raw_data = _ext(event, "rawData") or lot_uri(lot.lot)
        scan.gs1.gtin, scan.gs1.lot = lot.lot.gtin, lot.lot.lot
        if not lot.lot.gtin:
            _fail("a commissioned lot needs a GTIN (scans carry GS1 identities)")
        q = lot.quantity
        if q.unit == "KGM":
            scan.gs1.net_weight.CopyFrom(q)
        elif q.unit == "H87" and "." not in q.amount:
            scan.gs1.count = int(q.amount)
        scan.location = _where(event) or _fail("a commissioning event needs a bizLocation or readPoint")
        _time(event, scan.scanned_at)
        return
    _fail(f"{kind} with bizStep {step or 'none'!r} and action {action!r} has no lotledger record")


# ---- export ------------------------------------------------------------------------------------


def _ts(ts: Any) -> str:
    return format_time(ts.seconds, ts.nanos)


def _event(kind: str, when: Any, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"type": kind, "eventTime": _ts(when), "eventTimeZoneOffset": "+00:00"}
    event.update({k: v for k, v in fields.items() if v not in (None, "", [], {})})
    return event


def _qty(items: Iterable[records_pb2.LotQuantity]) -> list[dict[str, Any]]:
    out = []
    for item in items:
        amount = Decimal(item.quantity.amount)
        number: Any = int(amount) if amount == amount.to_integral_value() else float(amount)
        out.append({"epcClass": lot_uri(item.lot), "quantity": number, "uom": item.quantity.unit})
    return out


def _btl(docs: Iterable[records_pb2.DocumentRef]) -> list[dict[str, str]]:
    return [
        {"type": _DOC.get(d.type, URN_DOCTYPE + quote(d.type)), "bizTransaction": URN_DOC + quote(d.number)}
        for d in docs
    ]


def _place(location: str) -> dict[str, str] | None:
    return {"id": location_uri(location)} if location else None


def _parties(kind: str, participant: str, location: str) -> list[dict[str, str]]:
    out = [{"type": "owning_party", kind: participant_uri(participant)}] if participant else []
    if location:
        out.append({"type": "location", kind: location_uri(location)})
    return out


def record_event(record: records_pb2.Record) -> dict[str, Any] | None:
    """The EPCIS event a record exports as, or None for a kind EPCIS has no event for. An
    imported record gives back its source event as it was. A native record's event carries what
    identifies it, so that importing it into the log it came from is a no-op (`native_ref`):
    `lotledger:submitter` and `lotledger:recordId`, and as its eventID its own event hash."""
    if record.epcis.event_json:
        event: dict[str, Any] = json.loads(record.epcis.event_json)
        return event
    native = _native_event(record)
    if native is None:
        return None
    native["lotledger:submitter"], native["lotledger:recordId"] = record.submitter, record.record_id
    native["eventID"] = event_hash_id(native, CONTEXT)
    return native


@dataclass(frozen=True)
class NativeRef:
    """What an exported native record's event names of it (see `record_event`)."""

    submitter: str
    record_id: str
    event_hash_id: str


def native_ref(event: Any, context: Any) -> NativeRef | None:
    """The record an event says it was exported from, or None (an event from elsewhere)."""
    if not isinstance(event, dict):
        return None
    submitter, record_id = _ext(event, "submitter"), _ext(event, "recordId")
    if not submitter or not record_id:
        return None
    return NativeRef(submitter, record_id, event_hash_id(event, context))


def same_event(held: records_pb2.Record, ref: NativeRef) -> bool:
    """Does the record a log holds export as the event `ref` came from (same content hash)?"""
    event = record_event(held)
    return event is not None and event_hash_id(event, CONTEXT) == ref.event_hash_id


def _native_event(record: records_pb2.Record) -> dict[str, Any] | None:
    kind = record.WhichOneof("body")
    if kind == "material_received":
        m = record.material_received
        return _event(
            "ObjectEvent",
            m.received_at,
            action="OBSERVE",
            bizStep="receiving",
            quantityList=_qty([records_pb2.LotQuantity(lot=m.lot, quantity=m.quantity)]),
            bizLocation=_place(m.location),
            bizTransactionList=_btl(m.documents),
            sourceList=_parties("source", m.supplier, ""),
            **{
                "lotledger:supplierLotCode": m.supplier_lot_code,
                "lotledger:expiryDate": m.expiry_date,
                "lotledger:productDescription": m.product_description,
            },
        )
    if kind == "receipt":
        r = record.receipt
        return _event(
            "ObjectEvent",
            r.received_at,
            action="OBSERVE",
            bizStep="receiving",
            quantityList=_qty(r.lots),
            bizLocation=_place(r.location),
            destinationList=_parties("destination", r.participant, ""),
            sourceList=_parties("source", r.shipment_owner, ""),
            **{"lotledger:shipmentId": r.shipment_id},
        )
    if kind == "shipment":
        s = record.shipment
        return _event(
            "ObjectEvent",
            s.shipped_at,
            action="OBSERVE",
            bizStep="shipping",
            quantityList=_qty(s.lots),
            bizTransactionList=_btl(s.documents),
            sourceList=_parties("source", s.from_participant, s.from_location),
            destinationList=_parties("destination", s.to_participant, s.to_location),
            **{"lotledger:shipmentId": s.shipment_id},
        )
    if kind == "quality_check":
        qc = record.quality_check
        disposition = {records_pb2.QC_RESULT_PASS: "conformant", records_pb2.QC_RESULT_FAIL: "non_conformant"}
        return _event(
            "ObjectEvent",
            qc.checked_at,
            action="OBSERVE",
            bizStep="inspecting",
            epcList=[lot_uri(qc.lot)],
            disposition=disposition.get(qc.result, HOLD),
            **{
                "lotledger:checkName": qc.check_name,
                "lotledger:signedOffBy": qc.signed_off_by,
                "lotledger:specReference": qc.spec_reference,
            },
        )
    if kind == "production_run":
        run = record.production_run
        started = _ts(run.started_at) if run.started_at.seconds else ""
        return _event(
            "TransformationEvent",
            run.completed_at,
            inputQuantityList=_qty(run.inputs),
            outputQuantityList=_qty(run.outputs),
            transformationID=URN_RUN + quote(run.run_id),
            bizStep="commissioning",
            bizLocation=_place(run.location),
            ilmd={"cbvmda:itemExpirationDate": run.expiry_date} if run.expiry_date else None,
            **{
                "lotledger:manufacturedOn": run.manufactured_on,
                "lotledger:formulaId": run.formula_id,
                "lotledger:formulaVersion": str(run.formula_version) if run.formula_version else "",
                "lotledger:productDescription": run.product_description,
                "lotledger:startedAt": started,
            },
        )
    if kind == "aggregation":
        a = record.aggregation
        add = a.action == records_pb2.AGGREGATION_ACTION_ADD
        return _event(
            "AggregationEvent",
            a.aggregated_at,
            parentID=f"{DL}00/{a.parent_sscc}",
            childEPCs=[f"{DL}00/{s}" for s in a.child_ssccs],
            childQuantityList=_qty(a.lots),
            action="ADD" if add else "DELETE",
            bizStep="packing" if add else "unpacking",
            bizLocation=_place(a.location),
        )
    if kind == "scan":
        s = record.scan
        g = s.gs1
        if s.meaning == records_pb2.SCAN_MEANING_SHIP and g.sscc:
            return _event(
                "ObjectEvent",
                s.scanned_at,
                action="OBSERVE",
                bizStep="shipping",
                epcList=[f"{DL}00/{g.sscc}"],
                bizLocation=_place(s.location),
            )
        if s.meaning == records_pb2.SCAN_MEANING_PRODUCE and g.gtin and g.lot:
            lot = records_pb2.LotId(gtin=g.gtin, lot=g.lot)
            quantity = (
                g.net_weight
                if g.HasField("net_weight")
                else records_pb2.Quantity(amount=str(g.count), unit="H87")
                if g.count
                else None
            )
            what: dict[str, Any] = (
                {"quantityList": _qty([records_pb2.LotQuantity(lot=lot, quantity=quantity)])}
                if quantity
                else {"epcList": [lot_uri(lot)]}
            )
            return _event(
                "ObjectEvent",
                s.scanned_at,
                action="ADD",
                bizStep="commissioning",
                bizLocation=_place(s.location),
                **what,
                **{"lotledger:deviceId": s.device_id, "lotledger:rawData": s.raw_data},
            )
    return None


def export_document(records: Iterable[records_pb2.Record], creation_date: str) -> tuple[dict[str, Any], int]:
    """(an EPCISDocument of the records that have an event, how many had none)."""
    events, skipped = [], 0
    for record in records:
        event = record_event(record)
        if event is None:
            skipped += 1
        else:
            events.append(event)
    doc = {
        "@context": CONTEXT,
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": creation_date,
        "epcisBody": {"eventList": events},
    }
    return doc, skipped
