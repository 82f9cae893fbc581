"""Evidence files: a trace or recall report together with every entry behind it, each with its
inclusion proof against one signed checkpoint, so that whoever holds the log's verifier key can
check the report offline and needs to trust neither the server nor whoever handed over the file.
Pure: no I/O. audit/evidence.py gathers and writes; this module says what a file holds
(`assemble`, `named_seqs`, `gather_entries`) and checks one (`check_evidence`).

Format `lotledger-evidence/1`, one JSON document (UTF-8):

    {
      "format":     "lotledger-evidence/1",
      "query":      {"command": "trace", "direction": "up" | "down", "lot": LOT, "depth": N}
                  | {"command": "recall", "lots": [...], "supplier_lots": [...], "reason": "..."},
      "report":     the report exactly as `--json` prints it (TraceResponse or RecallResponse,
                    protobuf JSON with the proto field names),
      "downstream": for a recall only: `trace down --json` of each trigger lot, in trigger order,
                    taken at the same index size (they carry the edges the recall stands on),
      "checkpoint": the signed checkpoint note, as the server returned it (cosignatures and all),
      "entries":    [{"seq": N, "entry": base64 of the exact stored Entry bytes,
                      "proof": the entry's C2SP tlog-proof (c2sp.org/tlog-proof@v1) text}, ...]
    }

`entries` holds every entry the report names (each edge's seq, each shipment and the receipts
that delivered it, each supplier delivery, QC result and scan shown on a lot, the run that made
it), the original of every correction among them, and the key history their signatures need:
the ParticipantRegistered entry of every signing key, back to the genesis entry 0.

`check_evidence` runs these steps, in order, and raises VerificationFailed naming the entry,
edge, lot or shipment at the first failure:

  1. the document's structure (format, members, base64; duplicate JSON keys are refused);
  2. the checkpoint's signature with the log key (other signature lines are ignored);
  3. per entry: its tlog-proof carries that same checkpoint byte for byte, its index is the
     entry's seq, and the path leads from SHA-256(0x00 || entry bytes) to the checkpoint's root;
  4. per entry, in seq order: the entry parses with that seq, its record is valid as of the
     entry's received_at, and its signature verifies with a key that an earlier included
     registration gave to the record's submitter, whose role may submit that kind (the genesis
     entry signs itself); a correction's original is included and may be corrected by it;
  5. the report: each edge is what the record at its seq makes of it (trace/effects.py, read
     the way trace/index.py links records), each lot, shipment and receipt shown matches its
     record, every lot and shipment is reached from the query's lot over the report's edges at
     the depth it claims; for a recall, the affected lots and consignments are exactly what the
     downstream traces reach, supplier-lot triggers are backed by a delivery under that code,
     and the consignees are the consignments' receivers.

What evidence cannot prove (only the full `lotledger verify` can): that something is absent.
It does not show that a key was not revoked before it signed, that no later correction
replaced a record, that no other edge or record exists (a mass balance needs them all, so
balances are not checked), or that a shipment shown as not received has no receipt. Scans of
an SSCC (what was packed comes from Aggregation entries) and the holder of a ship scan's
location (a LocationRegistered entry) are not carried yet: reports that rest on them fail,
closed.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.protobuf.timestamp_pb2 import Timestamp

from lotledger.ledger.core.admission import Seen, admit, precheck
from lotledger.ledger.core.registry import Registry
from lotledger.ledger.core.rules import of_genesis, scoped_shipments
from lotledger.ledger.core.validation import lot_key, timestamp_to_datetime
from lotledger.ledger.errors import LedgerError, ProofError, VerificationFailed
from lotledger.ledger.tlog.merkle import leaf_hash
from lotledger.ledger.tlog.proof import format_proof, parse_proof, verify_proof
from lotledger.ledger.verify.verifier import check_cosignatures, open_signed_checkpoint
from lotledger.signing.cosignature import CosignatureVerifier
from lotledger.signing.note import Checkpoint, NoteVerifier
from lotledger.trace.effects import (
    CONSUME,
    PRODUCE,
    QC_CODES,
    QC_NAMES,
    RECEIVE,
    SHIP,
    SHIPMENT,
    effects,
    scan_effects,
    shipment_label,
)
from lotledger.trace.queries import quantity
from lotledger.trace.records import in_force
from lotledger.v1 import records_pb2, trace_pb2

_M = TypeVar("_M", bound=Message)

FORMAT = "lotledger-evidence/1"
RUN_AT = "run in progress at "  # a consume scan's target: the lot last produced at its location
_ENTRY_IN_TEXT = re.compile(r"entry (\d+)\)$", re.ASCII)
_MEMBERS = {"format", "query", "report", "downstream", "checkpoint", "entries"}


def _bad(message: str, reason: str = "BAD_EVIDENCE", seq: int | None = None) -> VerificationFailed:
    return VerificationFailed(message, seq=seq, reason=reason)


# ---- what a report names -----------------------------------------------------------------------


def trace_report(data: Any, what: str = "the report") -> trace_pb2.TraceResponse:
    """A trace report from its --json form. Raises VerificationFailed."""
    return _parse(data, trace_pb2.TraceResponse(), what)


def recall_report(data: Any) -> trace_pb2.RecallResponse:
    """A recall report from its --json form. Raises VerificationFailed."""
    return _parse(data, trace_pb2.RecallResponse(), "the report")


def _parse(data: Any, into: _M, what: str) -> _M:
    if not isinstance(data, dict):
        raise _bad(f"{what} is not a JSON object")
    try:
        json_format.ParseDict(data, into)
    except (json_format.ParseError, ValueError, TypeError) as e:
        raise _bad(f"{what} is not a {into.DESCRIPTOR.name} in protobuf JSON: {e}") from e
    return into


def _run_seq(run: str) -> int | None:
    found = _ENTRY_IN_TEXT.search(run)
    return int(found.group(1)) if found else None


def _trace_seqs(t: trace_pb2.TraceResponse) -> set[int]:
    seqs = {e.seq for e in t.edges}
    for s in t.shipments:
        seqs.add(s.seq)
        seqs.update(s.receipt_seqs)
    for lot in t.lots:
        seqs.update(x.seq for x in lot.suppliers)
        seqs.update(x.seq for x in lot.qc)
        seqs.update(x.seq for x in lot.scans)
        if (n := _run_seq(lot.run)) is not None:
            seqs.add(n)
    return seqs


def named_seqs(
    query: Mapping[str, Any], report: Mapping[str, Any], downstream: Sequence[Mapping[str, Any]]
) -> set[int]:
    """Every entry seq the report (and, for a recall, its downstream traces) names."""
    if query.get("command") == "recall":
        r = recall_report(report)
        seqs = set()
        for c in r.consignments:
            seqs.add(c.seq)
            seqs.update(c.receipt_seqs)
        for i, d in enumerate(downstream):
            seqs |= _trace_seqs(trace_report(d, f"downstream trace {i}"))
        return seqs
    return _trace_seqs(trace_report(report))


def gather_entries(
    seqs: Iterable[int],
    fetch: Callable[[int], bytes],
    registered_at: Callable[[str], int],
    seq_of: Callable[[str, str], int],
) -> dict[int, bytes]:
    """The entries at `seqs`, the originals of the corrections among them, and the registration
    entry of every key that signed any of them, transitively (an admin's registration is signed
    by another admin's key, back to the genesis entry 0). `fetch(seq)` returns entry bytes,
    `registered_at(key_id)` the seq that registered a key, `seq_of(record_id, submitter)` a record's seq;
    they do the I/O. Nothing is trusted here: check_evidence checks what this gathers."""
    out: dict[int, bytes] = {}
    todo = deque(sorted(set(seqs)))
    keys: set[str] = set()
    while todo:
        seq = todo.popleft()
        if seq in out:
            continue
        out[seq] = raw = fetch(seq)
        try:
            signed = records_pb2.Entry.FromString(raw).signed_record
            record = records_pb2.Record.FromString(signed.record_bytes)
        except DecodeError as e:
            raise _bad(f"the server sent entry bytes that do not parse: {e}", seq=seq) from e
        if signed.key_id not in keys:
            keys.add(signed.key_id)
            todo.append(registered_at(signed.key_id))
        if record.WhichOneof("body") == "correction":
            c = record.correction
            todo.append(seq_of(c.corrects_record_id, c.corrects_submitter or record.submitter))
    return out


def assemble(
    query: Mapping[str, Any],
    report: Mapping[str, Any],
    checkpoint_note: bytes,
    entries: Mapping[int, bytes],
    proofs: Mapping[int, Sequence[bytes]],
    downstream: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The evidence document (see the module docstring); `proofs[seq]` is the audit path of
    entry `seq` in the tree `checkpoint_note` signs."""
    doc: dict[str, Any] = {"format": FORMAT, "query": dict(query), "report": dict(report)}
    if query.get("command") == "recall":
        doc["downstream"] = [dict(d) for d in downstream]
    doc["checkpoint"] = checkpoint_note.decode("utf-8")
    doc["entries"] = [
        {
            "seq": seq,
            "entry": base64.b64encode(entries[seq]).decode(),
            "proof": format_proof(seq, proofs[seq], checkpoint_note).decode("utf-8"),
        }
        for seq in sorted(entries)
    ]
    return doc


def dumps(doc: Mapping[str, Any]) -> bytes:
    """The file's bytes: indented JSON, for people who open it as well as for the checker."""
    return (json.dumps(doc, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


# ---- what the index makes of a record ---------------------------------------------------------------


def record_edges(
    record: records_pb2.Record, seq: int, *, scoped: bool = False
) -> dict[tuple[str, str], dict[str, int]]:
    """The edges the trace index links for the record in force at `seq`: (source, target) ->
    unit -> billionths that flowed, as TraceIndex._apply links them and trace/queries.py reads
    their quantities (per source lot and unit; several outputs share the input's amount). A
    consume scan's target is RUN_AT + location (the run in progress there, see _ReportCheck._run_in_progress).
    Raises VerificationFailed for a scan of an SSCC: what it carried comes from Aggregation
    entries, which evidence files do not carry."""
    out: dict[tuple[str, str], dict[str, int]] = {}

    def add(source: str, target: str, unit: str, billionths: int) -> None:
        per_unit = out.setdefault((source, target), {})
        per_unit[unit] = per_unit.get(unit, 0) + billionths

    kind = record.WhichOneof("body")
    if kind == "production_run":
        effs = effects(record, seq, scoped=scoped)
        made = list(dict.fromkeys(e.label for e in effs if e.role == "out"))
        for e in effs:
            if e.role == "in":
                for target in made:
                    add(e.label, target, e.unit, -e.delta)
    elif kind == "shipment":
        ship, *lots = effects(record, seq, scoped=scoped)
        for e in lots:
            add(e.label, ship.label, e.unit, -e.delta)
    elif kind == "scan":
        s = record.scan
        if s.gs1.sscc and s.meaning != PRODUCE:
            raise _bad(
                f"entry {seq} is a scan of SSCC {s.gs1.sscc}: what it carried comes from Aggregation entries, "
                "which evidence files do not carry",
                "UNSUPPORTED_EVIDENCE",
            )
        effs = scan_effects(record, seq, None, scoped=scoped)
        if s.meaning == SHIP:
            for e in effs[1:]:
                add(e.label, effs[0].label, e.unit, -e.delta)
        elif s.meaning == CONSUME:
            for e in effs:
                add(e.label, RUN_AT + s.location, e.unit, -e.delta)
    return out


# ---- checking ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvidenceSummary:
    """What a file proved (the report itself is in the file)."""

    command: str
    origin: str
    tree_size: int
    root_hash: bytes
    entries: int
    edges: int
    lots: int
    shipments: int


def _loads(data: bytes) -> dict[str, Any]:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in pairs:
            if k in out:
                raise _bad(f"the key {k!r} appears twice in one object")
            out[k] = v
        return out

    try:
        doc = json.loads(data.decode("utf-8"), object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise _bad(f"not a {FORMAT} file: {e}") from e
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise _bad(f"not a {FORMAT} file (its 'format' must be {FORMAT!r})")
    unknown = set(doc) - _MEMBERS
    if unknown:
        raise _bad(f"unknown members {sorted(unknown)}")
    return doc


def check_evidence(
    data: bytes, log_key: NoteVerifier, *, witnesses: Sequence[CosignatureVerifier] = (), quorum: int = 0
) -> EvidenceSummary:
    """Check an evidence file with nothing but the log's verifier key (module docstring,
    steps 1-5), and with `witnesses`, that its checkpoint carries `quorum` of their
    cosignatures. Raises VerificationFailed naming what does not hold."""
    doc = _loads(data)
    query = doc.get("query")
    if not isinstance(query, dict) or query.get("command") not in ("trace", "recall"):
        raise _bad("the query must name its command: 'trace' or 'recall'")
    note = doc.get("checkpoint")
    if not isinstance(note, str):
        raise _bad("the evidence has no checkpoint")
    note_bytes = _utf8(note, "the checkpoint")
    checkpoint = open_signed_checkpoint(note_bytes, log_key)  # 2
    if witnesses:
        check_cosignatures(note_bytes, witnesses, quorum)
    raw = _proven_entries(doc.get("entries"), note_bytes, checkpoint)  # 1, 3
    records = _authenticated_records(raw)  # 4
    check = _ReportCheck(records)  # 5
    if query["command"] == "trace":
        if "downstream" in doc:
            raise _bad("a trace's evidence has no downstream traces")
        direction, lot, depth = query.get("direction"), query.get("lot"), query.get("depth", 0)
        if direction not in ("up", "down") or not isinstance(lot, str) or not isinstance(depth, int):
            raise _bad("a trace query names its direction ('up' or 'down'), its lot and its depth")
        report = trace_report(doc.get("report"))
        check.trace(report, lot, direction, depth)
        edges, lots, ships = len(report.edges), len(report.lots), len(report.shipments)
    else:
        lots_q, codes = query.get("lots", []), query.get("supplier_lots", [])
        if not _strings(lots_q) or not _strings(codes):
            raise _bad("a recall query names its lots and supplier lot codes as lists of strings")
        downstream = doc.get("downstream")
        if not isinstance(downstream, list):
            raise _bad("a recall's evidence carries the downstream trace of each trigger")
        recall = recall_report(doc.get("report"))
        traces = [trace_report(d, f"downstream trace {i}") for i, d in enumerate(downstream)]
        check.recall(recall, traces, lots_q, codes)
        edges = sum(len(t.edges) for t in traces)
        lots, ships = len(recall.affected_lots), len(recall.consignments)
    return EvidenceSummary(
        query["command"], checkpoint.origin, checkpoint.size, checkpoint.root_hash, len(raw), edges, lots, ships
    )


def _utf8(text: str, what: str, seq: int | None = None) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise _bad(f"{what} is not UTF-8 text", seq=seq) from e


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _proven_entries(items: Any, note: bytes, checkpoint: Checkpoint) -> dict[int, bytes]:
    """Steps 1 and 3: seq -> entry bytes, each proven included in the checkpoint."""
    if not isinstance(items, list) or not items:
        raise _bad("the evidence carries no entries")
    out: dict[int, bytes] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict) or set(item) != {"seq", "entry", "proof"}:
            raise _bad(f"entries[{i}] must hold exactly 'seq', 'entry' and 'proof'")
        seq = item["seq"]
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            raise _bad(f"entries[{i}] has no valid seq")
        if seq in out:
            raise _bad("the entry appears twice", seq=seq)
        if not isinstance(item["entry"], str) or not isinstance(item["proof"], str):
            raise _bad("entry and proof are text (base64 and tlog-proof)", seq=seq)
        try:
            entry = base64.b64decode(item["entry"], validate=True)
        except (binascii.Error, ValueError) as e:
            raise _bad("the entry bytes are not base64", seq=seq) from e
        if base64.b64encode(entry).decode() != item["entry"]:
            raise _bad("the entry bytes are not in canonical base64", seq=seq)
        try:
            proof = parse_proof(_utf8(item["proof"], "the tlog-proof", seq))
        except ProofError as e:
            raise _bad(f"the tlog-proof does not parse: {e.message}", "BAD_PROOF", seq) from e
        if proof.checkpoint != note:
            raise _bad("the tlog-proof carries another checkpoint than the evidence's", "BAD_PROOF", seq)
        if proof.index != seq:
            raise _bad(f"the tlog-proof is for index {proof.index}, not for this entry", "BAD_PROOF", seq)
        try:
            verify_proof(proof, leaf_hash(entry), checkpoint)
        except ProofError as e:
            raise _bad(
                f"not included in the log of size {checkpoint.size} under the signed root: {e.message}",
                "NOT_INCLUDED",
                seq,
            ) from e
        out[seq] = entry
    return out


@dataclass(frozen=True)
class _Record:
    seq: int
    body: records_pb2.Record  # in force (a correction's corrected body)


def _authenticated_records(raw: Mapping[int, bytes]) -> dict[int, _Record]:
    """Step 4, in seq order: each entry admitted by the one admission step (as the writer and
    LogVerifier.feed admit it), with a key history made of the included registrations only and
    the included records as the only earlier ones."""
    registry = Registry()
    ids: dict[str, Seen] = {}  # the entries so far, by record id
    out: dict[int, _Record] = {}
    for seq in sorted(raw):
        try:
            entry = records_pb2.Entry.FromString(raw[seq])
        except DecodeError as e:
            raise _bad(f"entry bytes do not parse: {e}", "MALFORMED_ENTRY", seq) from e
        if entry.seq != seq:
            raise _bad(f"the entry claims seq {entry.seq}", "WRONG_SEQ", seq)
        if not entry.HasField("received_at"):
            raise _bad("entry has no received_at", "MALFORMED_ENTRY", seq)
        signed = entry.signed_record
        try:
            received_at = timestamp_to_datetime(entry.received_at)
        except (ValueError, OverflowError, OSError) as e:
            raise _bad(f"received_at is not a time: {e}", "MALFORMED_ENTRY", seq) from e
        try:
            admitted = precheck(signed, received_at, lambda _: None, log_rules=registry.rules)
            admission = admit(admitted, seq, registry, ids.get, complete=False)
        except VerificationFailed:
            raise
        except LedgerError as e:
            if e.reason == "UNKNOWN_KEY" and e.field == "key_id":  # said for what evidence is: a subset
                raise _bad(
                    f"signed by key {signed.key_id}, but no earlier entry in the evidence registers it", e.reason, seq
                ) from e
            raise _bad(e.message, e.reason, seq) from e
        record = admitted.record
        if admission.correction_unchecked:
            raise _bad(
                f"corrects record {record.correction.corrects_record_id!r}, whose entry the evidence lacks",
                "MISSING_ENTRY",
                seq,
            )
        ids.update(admission.claims)
        out[seq] = _Record(seq, in_force(record))
    return out


def _when(ts: Timestamp) -> Timestamp:
    """A record's time as a report shows it (trace/queries.py _when, trace/wire.py _ts)."""
    out = Timestamp()
    if ts.seconds or ts.nanos:
        out.FromDatetime(timestamp_to_datetime(ts))
    return out


def _docs(docs: Iterable[records_pb2.DocumentRef]) -> list[str]:
    return [f"{d.type} {d.number}" for d in docs]


def _amount(billionths: int) -> str:
    return str(quantity(billionths))


def _edge_name(e: trace_pb2.TraceEdge) -> str:
    return f"edge {e.source} -> {e.target} (entry {e.seq})"


class _ReportCheck:
    """Step 5 over the authenticated records."""

    def __init__(self, records: Mapping[int, _Record]):
        self.records = records
        genesis = records.get(0)
        stated = genesis.body.participant_registered.rules_version if genesis is not None else 0
        self.scoped = scoped_shipments(of_genesis(stated))  # shipments named by owner and id
        self._edges: dict[int, dict[tuple[str, str], dict[str, int]]] = {}

    def record(self, seq: int, what: str) -> _Record:
        found = self.records.get(seq)
        if found is None:
            raise _bad(f"{what}: entry {seq} is not in the evidence", "MISSING_ENTRY")
        return found

    def edges_of(self, seq: int, what: str) -> dict[tuple[str, str], dict[str, int]]:
        if seq not in self._edges:
            body = self.record(seq, what).body
            try:
                self._edges[seq] = record_edges(body, seq, scoped=self.scoped)
            except VerificationFailed as e:
                raise _bad(f"{what}: {e.message}", e.reason) from e
        return self._edges[seq]

    # -- trace --

    def trace(self, t: trace_pb2.TraceResponse, start: str, direction: str, depth: int) -> None:
        for e in t.edges:
            self._edge(e)
        for lot in t.lots:
            self._lot(lot)
        for s in t.shipments:
            self._shipment(s, None)
        self._reach(t, start, direction, depth)

    def _edge(self, e: trace_pb2.TraceEdge) -> None:
        name = _edge_name(e)
        derived = self.edges_of(e.seq, name)
        kind = self.record(e.seq, name).body.WhichOneof("body")
        flows = derived.get((e.source, e.target))
        if flows is None and kind == "scan":
            flows = derived.get((e.source, RUN_AT + self.records[e.seq].body.scan.location))
            if flows is not None:
                self._run_in_progress(e)
        if flows is None:
            raise _bad(f"{name}: entry {e.seq} ({kind}) moves nothing from {e.source} to {e.target}", "BAD_EDGE")
        want_kind = "shipped" if e.target.startswith(SHIPMENT) else "consumed"
        if e.kind != want_kind:
            raise _bad(f"{name}: an edge to {e.target} is {want_kind!r}, not {e.kind!r}", "BAD_EDGE")
        unit, amount = e.quantity.unit, e.quantity.amount
        if unit not in flows or _amount(flows[unit]) != amount:
            moved = ", ".join(f"{_amount(n)} {u}".strip() for u, n in sorted(flows.items()))
            raise _bad(f"{name}: entry {e.seq} moves {moved} of {e.source}, not {amount} {unit}".rstrip(), "BAD_EDGE")

    def _run_in_progress(self, e: trace_pb2.TraceEdge) -> None:
        """A consume scan feeds the lot of the latest produce scan at its location. That a
        given produce scan is the latest one cannot be shown from the entries a file carries
        (whoever built it could leave a later one out), so such an edge is not proven here:
        refused as unsupported, never passed on the file's word."""
        location = self.records[e.seq].body.scan.location
        raise _bad(
            f"{_edge_name(e)}: a consume scan at {location} feeds the run in progress there, which no set of "
            "entries in a file can prove (a later produce scan could be left out)",
            "UNSUPPORTED_EVIDENCE",
        )

    def _lot(self, lot: trace_pb2.TraceLot) -> None:
        where = f"lot {lot.lot}"
        for s in lot.suppliers:
            what = f"{where}: supplier delivery (entry {s.seq})"
            body = self._kind(s.seq, "material_received", what)
            m = body.material_received
            expected = trace_pb2.SupplierSource(
                supplier=m.supplier,
                supplier_lot_code=m.supplier_lot_code,
                received_at=_when(m.received_at),
                quantity=records_pb2.Quantity(amount=str(Decimal(m.quantity.amount)), unit=m.quantity.unit),
                location=m.location,
                documents=_docs(m.documents),
                seq=s.seq,
            )
            self._same(what, expected, s, lot_key(m.lot) == lot.lot)
        for q in lot.qc:
            what = f"{where}: QC result (entry {q.seq})"
            body = self._kind(q.seq, "quality_check", what)
            c = body.quality_check
            expected_qc = trace_pb2.QcView(
                check_name=c.check_name,
                result=QC_NAMES[QC_CODES.get(c.result, 0)],
                signed_off_by=c.signed_off_by,
                submitter=body.submitter,
                seq=q.seq,
            )
            self._same(what, expected_qc, q, lot_key(c.lot) == lot.lot)
        if lot.qc_status != (lot.qc[-1].result if lot.qc else "NONE"):
            raise _bad(f"{where}: QC status {lot.qc_status} is not its latest QC result", "BAD_REPORT")
        for scan in lot.scans:
            what = f"{where}: scan (entry {scan.seq})"
            body = self._kind(scan.seq, "scan", what)
            s = body.scan
            meaning = {RECEIVE: "receive", PRODUCE: "produce"}.get(s.meaning, "")
            if s.gs1.sscc and meaning == "receive":
                raise _bad(
                    f"{what}: a scan of SSCC {s.gs1.sscc} (Aggregation entries are not carried)", "UNSUPPORTED_EVIDENCE"
                )
            expected_scan = trace_pb2.ScanEvent(
                meaning=meaning,
                device_id=s.device_id,
                location=s.location,
                scanned_at=_when(s.scanned_at),
                raw_data=s.raw_data,
                seq=scan.seq,
                record_id=body.record_id,
            )
            names_lot = lot.lot in {e.label for e in scan_effects(body, scan.seq, None)}
            self._same(what, expected_scan, scan, names_lot)
        if lot.run:
            self._run(lot)

    def _run(self, lot: trace_pb2.TraceLot) -> None:
        seq = _run_seq(lot.run)
        what = f"lot {lot.lot}: run {lot.run!r}"
        if seq is None:
            raise _bad(f"{what} names no entry", "BAD_REPORT")
        body = self.record(seq, what).body
        kind = body.WhichOneof("body")
        if kind == "production_run":
            run = body.production_run
            version = f" {run.formula_id}@{run.formula_version}" if run.formula_id else ""
            text = f"{run.run_id}{version} (entry {seq})"
            made = any(lot_key(o.lot) == lot.lot for o in run.outputs)
        elif kind == "scan" and body.scan.meaning == PRODUCE:
            s = body.scan
            text = f"produced at {s.location} (scan by {s.device_id}, entry {seq})"
            made = lot.lot in {e.label for e in scan_effects(body, seq, None) if e.role == "out"}
        else:
            raise _bad(f"{what}: entry {seq} is a {kind}, not a production run", "BAD_REPORT")
        if text != lot.run or not made:
            raise _bad(
                f"{what}: entry {seq} says {text!r}" + ("" if made else f", and did not make {lot.lot}"), "BAD_REPORT"
            )

    def _kind(self, seq: int, kind: str, what: str) -> records_pb2.Record:
        body = self.record(seq, what).body
        if body.WhichOneof("body") != kind:
            raise _bad(f"{what}: entry {seq} is a {body.WhichOneof('body')}, not a {kind}", "BAD_REPORT")
        return body

    @staticmethod
    def _same(what: str, expected: Message, shown: Message, about_this_lot: bool) -> None:
        if not about_this_lot:
            raise _bad(f"{what}: the entry is about another lot", "BAD_REPORT")
        if expected != shown:
            for f in expected.DESCRIPTOR.fields:
                a, b = getattr(expected, f.name), getattr(shown, f.name)
                if a != b:
                    raise _bad(
                        f"{what}: {f.name} is {_show(b)} in the report but {_show(a)} in the entry", "BAD_REPORT"
                    )
            raise _bad(f"{what}: the report differs from the entry", "BAD_REPORT")

    def _shipment(self, s: trace_pb2.ShipmentView, only: set[str] | None) -> None:
        """A shipment as its record says, with what it carried of each lot (of the lots in
        `only`, for a recall, as trace/queries.py shipment_view does)."""
        what = f"shipment {s.shipment_id} (entry {s.seq})"
        body = self.record(s.seq, what).body
        kind = body.WhichOneof("body")
        carried: dict[tuple[str, str], int] = {}
        for (source, target), flows in self.edges_of(s.seq, what).items():
            if target == SHIPMENT + s.shipment_id and (only is None or source in only):
                for unit, n in flows.items():
                    carried[(source, unit)] = n
        if kind == "shipment":
            ship = body.shipment
            expected = trace_pb2.ShipmentView(
                shipment_id=shipment_label(ship.from_participant, ship.shipment_id, self.scoped)[len(SHIPMENT) :],
                from_participant=ship.from_participant,
                to_participant=ship.to_participant,
                to_location=ship.to_location,
                shipped_at=_when(ship.shipped_at),
                documents=_docs(ship.documents),
            )
        elif kind == "scan" and body.scan.meaning == SHIP:
            sc = body.scan
            expected = trace_pb2.ShipmentView(
                shipment_id=shipment_label(body.submitter, body.record_id, self.scoped)[len(SHIPMENT) :],
                from_participant=body.submitter,  # else the location's owner: see the module docstring
                shipped_at=_when(sc.scanned_at),
            )
        else:
            raise _bad(f"{what}: entry {s.seq} is a {kind}, not a shipment", "BAD_REPORT")
        for source, unit in sorted(carried):
            expected.lots.add(
                lot=source, quantity=records_pb2.Quantity(amount=_amount(carried[(source, unit)]), unit=unit)
            )
        expected.received, expected.seq = s.received, s.seq
        expected.receipt_seqs.extend(s.receipt_seqs)
        if expected != s:
            for f in expected.DESCRIPTOR.fields:
                a, b = getattr(expected, f.name), getattr(s, f.name)
                if a != b:
                    raise _bad(
                        f"{what}: {f.name} is {_show(b)} in the report but {_show(a)} in the entry", "BAD_REPORT"
                    )
        if s.received != bool(s.receipt_seqs):
            state = "received but names no receipt" if s.received else "not received but names receipts"
            raise _bad(f"{what}: shown as {state}", "BAD_REPORT")
        for seq in s.receipt_seqs:
            self._receipt(s.shipment_id, seq, s.to_participant)

    def _receipt(self, shipment_id: str, seq: int, consignee: str) -> None:
        """A receipt the report lists names this shipment and is the consignee's (a receipt by
        anyone else delivers nothing: trace/index.py `deliveries`)."""
        what = f"shipment {shipment_id}: receipt (entry {seq})"
        body = self.record(seq, what).body
        if body.WhichOneof("body") == "receipt":
            r = body.receipt
            if consignee and r.participant != consignee:
                raise _bad(f"{what}: received by {r.participant!r}, not by the consignee {consignee!r}", "BAD_REPORT")
            if shipment_label(r.shipment_owner, r.shipment_id, self.scoped) == SHIPMENT + shipment_id:
                return
        if body.WhichOneof("body") == "scan" and body.scan.meaning == RECEIVE and body.scan.gs1.sscc:
            raise _bad(f"{what}: a receive scan of SSCC {body.scan.gs1.sscc} (not carried yet)", "UNSUPPORTED_EVIDENCE")
        raise _bad(f"{what}: entry {seq} is not a receipt of this shipment", "BAD_REPORT")

    def _reach(self, t: trace_pb2.TraceResponse, start: str, direction: str, depth: int) -> None:
        """Every lot and shipment is reached from the start over the report's (checked) edges,
        at the depth and along the path the report shows."""
        if not t.lots or t.lots[0].lot != start or t.lots[0].depth != 0:
            raise _bad(f"the report does not start at the queried lot {start}", "BAD_REPORT")
        nodes = {lot.lot for lot in t.lots} | {SHIPMENT + s.shipment_id for s in t.shipments}
        step: dict[str, set[str]] = {}
        for e in t.edges:
            if e.source not in nodes or e.target not in nodes:
                raise _bad(f"{_edge_name(e)}: joins a lot or shipment the report does not show", "BAD_REPORT")
            near, far = (e.source, e.target) if direction == "down" else (e.target, e.source)
            step.setdefault(near, set()).add(far)
        dist = {start: 0}
        queue = deque([start])
        while queue:
            node = queue.popleft()
            for nxt in sorted(step.get(node, ())):
                if nxt not in dist:
                    dist[nxt] = dist[node] + 1
                    queue.append(nxt)
        for lot in t.lots:
            where = f"lot {lot.lot}"
            if lot.lot not in dist:
                raise _bad(f"{where}: no edge of the report reaches it from {start}", "BAD_REPORT")
            if lot.depth != dist[lot.lot] or (depth and lot.depth > depth):
                raise _bad(
                    f"{where}: shown at depth {lot.depth}, but the edges put it at {dist[lot.lot]}", "BAD_REPORT"
                )
            path = list(lot.path)
            if path[:1] != [start] or path[-1:] != [lot.lot] or len(path) != lot.depth + 1:
                raise _bad(f"{where}: its path does not run from {start} to it", "BAD_REPORT")
            for near, far in zip(path, path[1:], strict=False):
                if far not in step.get(near, set()):
                    raise _bad(f"{where}: no edge of the report joins {near} and {far} on its path", "BAD_REPORT")
        for s in t.shipments:
            if SHIPMENT + s.shipment_id not in dist:
                raise _bad(f"shipment {s.shipment_id}: no edge of the report reaches it from {start}", "BAD_REPORT")

    # -- recall --

    def recall(
        self, r: trace_pb2.RecallResponse, traces: Sequence[trace_pb2.TraceResponse], lots: list[str], codes: list[str]
    ) -> None:
        triggers = list(r.triggers)
        if triggers[: len(dict.fromkeys(lots))] != list(dict.fromkeys(lots)) or len(set(triggers)) != len(triggers):
            raise _bad(
                "the recall's triggers are not the queried lots followed by those found by supplier lot code",
                "BAD_REPORT",
            )
        if len(traces) != len(triggers):
            raise _bad(
                f"the evidence carries {len(traces)} downstream traces for {len(triggers)} trigger lots", "BAD_REPORT"
            )
        reached: set[str] = set()
        shipments: set[str] = set()
        for trigger, t in zip(triggers, traces, strict=True):
            if t.index_size != r.index_size:
                raise _bad(
                    f"the downstream trace of {trigger} was taken at index size {t.index_size}, the recall at {r.index_size}",
                    "BAD_REPORT",
                )
            self.trace(t, trigger, "down", 0)
            if trigger not in lots:
                head = t.lots[0]
                if not any(s.supplier_lot_code in codes for s in head.suppliers):
                    raise _bad(
                        f"trigger {trigger}: no delivery under a queried supplier lot code names it", "BAD_REPORT"
                    )
            reached.update(lot.lot for lot in t.lots)
            shipments.update(s.shipment_id for s in t.shipments)
        if sorted(r.affected_lots) != sorted(reached) or list(r.affected_lots) != sorted(r.affected_lots):
            missing, extra = sorted(reached - set(r.affected_lots)), sorted(set(r.affected_lots) - reached)
            raise _bad(
                f"the affected lots differ from those the downstream traces reach (missing {missing}, not reached {extra})",
                "BAD_REPORT",
            )
        shown = [c.shipment_id for c in r.consignments]
        if sorted(shown) != sorted(shipments):
            missing, extra = sorted(shipments - set(shown)), sorted(set(shown) - shipments)
            raise _bad(
                f"the consignments differ from the shipments the downstream traces reach (missing {missing}, not reached {extra})",
                "BAD_REPORT",
            )
        for c in r.consignments:
            self._shipment(c, reached)
        consignees = sorted({c.to_participant for c in r.consignments if c.to_participant})
        if list(r.consignees) != consignees:
            raise _bad(
                f"the consignees {list(r.consignees)} are not the consignments' receivers {consignees}", "BAD_REPORT"
            )
        for b in r.balances:
            if b.lot not in reached:
                raise _bad(f"a balance of {b.lot}, which no downstream trace reaches", "BAD_REPORT")


def _show(value: Any) -> str:
    if isinstance(value, Message):
        text = json_format.MessageToJson(value, indent=None) if value.ByteSize() else "(none)"
        return text
    if hasattr(value, "__len__") and not isinstance(value, str):
        return repr([json_format.MessageToDict(v) if isinstance(v, Message) else v for v in value])
    return repr(value)


__all__ = [
    "FORMAT",
    "EvidenceSummary",
    "assemble",
    "check_evidence",
    "dumps",
    "gather_entries",
    "named_seqs",
    "record_edges",
]
