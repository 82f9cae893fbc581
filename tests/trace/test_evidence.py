"""The evidence checker (trace/evidence.py) and the tlog-proof format (ledger/tlog/proof.py),
over logs built in memory exactly as the ledger builds them (real keys, real entries, a real
Merkle tree and a signed checkpoint) but with no admission checks, so that a test can also
write what a dishonest server would: a record under someone else's key, a key registered after
it signed, a report that does not follow from its entries."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from google.protobuf import json_format
from helpers import gtin, new_record
from supply_chain import generate

from lotledger.ledger.core.records import sign
from lotledger.ledger.errors import ProofError, VerificationFailed
from lotledger.ledger.tlog.entries import ZERO_HASH, build_entry
from lotledger.ledger.tlog.merkle import MemoryTree, leaf_hash
from lotledger.ledger.tlog.proof import HEADER, format_proof, parse_proof
from lotledger.signing.keys import SigningKey
from lotledger.signing.note import Checkpoint, NoteSigner, NoteVerifier, add_signatures, sign_note
from lotledger.trace import queries, wire
from lotledger.trace.evidence import assemble, check_evidence, dumps, gather_entries, named_seqs
from lotledger.trace.index import TraceIndex
from lotledger.trace.records import ListRecords
from lotledger.v1 import records_pb2

ORIGIN = "evidence.example.com/lotledger"
ROLES = {
    "plant": records_pb2.ROLE_MANUFACTURER,
    "qa": records_pb2.ROLE_QA,
    "dist0": records_pb2.ROLE_DISTRIBUTOR,
    "dist1": records_pb2.ROLE_DISTRIBUTOR,
    "dock-1": records_pb2.ROLE_SCANNER,
}


class PureLog:
    """Entries, chain, tree, checkpoint and trace index, in memory; `append` admits anything."""

    def __init__(self) -> None:
        self.log_key = SigningKey.generate()
        self.verifier = NoteVerifier.from_key(ORIGIN, self.log_key.public)
        self.entries: list[bytes] = []
        self.tree = MemoryTree()
        self.head = ZERO_HASH
        self.records = ListRecords()
        self.index = TraceIndex(self.records)
        self.keys: dict[str, SigningKey] = {}
        self.registered: dict[str, int] = {}  # key id -> seq, as the server's GetKey answers
        self.register("admin", records_pb2.ROLE_ADMIN)

    def append(self, record: records_pb2.Record, key: SigningKey) -> int:
        seq = len(self.entries)
        raw = build_entry(seq, self.head, time.time_ns(), sign(record, key))
        self.entries.append(raw)
        self.head = leaf_hash(raw)
        self.tree.append(self.head)
        self.records.append(record)
        self.index.apply(seq, record)
        return seq

    def register(self, pid: str, role: int, key: SigningKey | None = None, signer: str = "admin") -> SigningKey:
        key = key or SigningKey.generate()
        record = new_record("admin", f"register/{pid}/{key.key_id[:8]}")
        reg = record.participant_registered
        reg.participant_id, reg.role, reg.public_key = pid, role, key.public.raw
        seq = self.append(record, key if pid == "admin" else self.keys[signer])
        self.keys.setdefault(pid, key)
        self.registered[key.key_id] = seq
        return key

    def add(self, record: records_pb2.Record, key: SigningKey | None = None) -> int:
        return self.append(record, key or self.keys[record.submitter])

    def note(self, size: int) -> bytes:
        return sign_note(Checkpoint(ORIGIN, size, self.tree.root(size)).body(), NoteSigner(ORIGIN, self.log_key))

    def evidence(
        self, query: dict[str, Any], report: dict[str, Any], downstream: Sequence[dict[str, Any]] = ()
    ) -> bytes:
        def seq_of(record_id: str, submitter: str) -> int:
            found = self.records.seq_of(record_id, submitter)
            assert found is not None
            return found

        entries = gather_entries(
            named_seqs(query, report, downstream), self.entries.__getitem__, self.registered.__getitem__, seq_of
        )
        size = len(self.entries)
        proofs = {s: self.tree.inclusion_proof(s, size) for s in entries}
        return dumps(assemble(query, report, self.note(size), entries, proofs, downstream))

    def trace_report(self, lot: str, direction: str) -> dict[str, Any]:
        result = queries.trace(self.index, lot, direction)
        return _as_dict(wire.trace_pb(result, self.index.size))

    def trace(self, lot: str, direction: str) -> bytes:
        query = {"command": "trace", "direction": direction, "lot": lot, "depth": 0}
        return self.evidence(query, self.trace_report(lot, direction))

    def recall(self, lots: Sequence[str], codes: Sequence[str] = ()) -> bytes:
        triggers = list(lots)
        for code in codes:  # as the servicer finds them
            triggers += queries.lots_with_supplier_lot(self.index, code)
        r = wire.recall_pb(queries.recall(self.index, dict.fromkeys(triggers)), self.index.size)
        downstream = [self.trace_report(t, "down") for t in r.triggers]
        query = {"command": "recall", "lots": list(lots), "supplier_lots": list(codes), "reason": ""}
        return self.evidence(query, _as_dict(r), downstream)

    def check(self, data: bytes) -> None:
        check_evidence(data, self.verifier)


def _as_dict(message: Any) -> dict[str, Any]:
    data: dict[str, Any] = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return data


def chain_log(seed: int = 7) -> PureLog:
    """tests/supply_chain.py's generated chain (runs, QC, shipments, receipts, onward
    shipments and corrections), signed by registered participants."""
    log = PureLog()
    for pid, role in ROLES.items():
        log.register(pid, role)
    for record in generate(seed, runs=30, corrections=4):
        record.record_id = f"chain/{record.record_id}"
        if record.WhichOneof("body") == "correction":
            record.correction.corrects_record_id = f"chain/{record.correction.corrects_record_id}"
            record.correction.corrected.record_id = record.correction.corrects_record_id
        log.add(record)
    return log


def changed(data: bytes, edit: Callable[[dict[str, Any]], None]) -> bytes:
    doc = json.loads(data)
    edit(doc)
    return json.dumps(doc).encode()


def fails(log: PureLog, data: bytes, *needles: str) -> VerificationFailed:
    with pytest.raises(VerificationFailed) as info:
        log.check(data)
    text = str(info.value)
    for needle in needles:
        assert needle in text, text
    return info.value


def corrected_lots(log: PureLog) -> list[str]:
    """Lots made by a run that a correction replaced."""
    out = []
    for r in log.records.items:
        if r.WhichOneof("body") == "correction":
            out += [f"item/{o.lot.item_code}/lot/{o.lot.lot}" for o in r.correction.corrected.production_run.outputs]
    return out


# ---- honest evidence verifies -----------------------------------------------------------------------


def test_trace_and_recall_evidence_of_a_generated_chain_verifies() -> None:
    log = chain_log()
    made = corrected_lots(log)
    assert made
    checked = 0
    for lot in [*made[:3], "item/RAW0/lot/R0", "item/RAW1/lot/R1"]:
        for direction in ("up", "down"):
            data = log.trace(lot, direction)
            doc = json.loads(data)
            assert doc["format"] == "lotledger-evidence/1" and doc["entries"][0]["seq"] == 0
            log.check(data)
            checked += len(doc["report"].get("edges", []))
    assert checked > 20
    recall = log.recall(["item/RAW0/lot/R0"], ["S-5"])
    summary = check_evidence(recall, log.verifier)
    assert summary.command == "recall" and summary.lots > 1 and summary.shipments > 0
    assert summary.tree_size == len(log.entries)


def test_evidence_of_a_corrected_run_carries_the_original_and_proves_the_corrected_edges() -> None:
    log = chain_log()
    lot = corrected_lots(log)[0]
    doc = json.loads(log.trace(lot, "up"))
    seqs = {e["seq"] for e in doc["entries"]}
    corrections = [s for s, r in enumerate(log.records.items) if r.WhichOneof("body") == "correction"]
    named = {int(e["seq"]) for e in doc["report"]["edges"]}
    used = named & set(corrections)
    assert used, "the corrected run's edges stand on the correction's entry"
    for seq in used:
        original = log.records.seq_of(log.records.items[seq].correction.corrects_record_id)
        assert original in seqs
    # without the original, the correction cannot be checked
    target = log.records.seq_of(log.records.items[min(used)].correction.corrects_record_id)
    data = json.dumps(doc).encode()
    dropped = changed(data, lambda d: d.update(entries=[e for e in d["entries"] if e["seq"] != target]))
    fails(log, dropped, f"entry {min(used)}", "corrects record", "evidence lacks")


def test_scans_that_name_their_lot_are_proven_and_run_and_sscc_scans_fail_closed() -> None:
    log = PureLog()
    for pid in ("plant", "dock-1"):
        log.register(pid, ROLES[pid])
    flour, bread = (gtin(11), "F1"), (gtin(35), "B1")

    def scan(meaning: int, lot: tuple[str, str] | None, kg: str = "", sscc: str = "") -> int:
        r = new_record("dock-1")
        s = r.scan
        s.device_id, s.meaning, s.location, s.raw_data = "dock-1", meaning, "plant/line-1", "raw"
        s.scanned_at.GetCurrentTime()
        if lot:
            s.gs1.gtin, s.gs1.lot = lot
        if kg:
            s.gs1.net_weight.amount, s.gs1.net_weight.unit = kg, "KGM"
        s.gs1.sscc = sscc
        return log.add(r)

    scan(records_pb2.SCAN_MEANING_RECEIVE, flour, "100")
    scan(records_pb2.SCAN_MEANING_PRODUCE, bread)
    consume = scan(records_pb2.SCAN_MEANING_CONSUME, flour, "25")
    scan(records_pb2.SCAN_MEANING_SHIP, bread, "10")
    key_b, key_f = f"01/{bread[0]}/10/B1", f"01/{flour[0]}/10/F1"
    up = log.trace(key_b, "up")
    assert [(e["source"], e["seq"]) for e in json.loads(up)["report"]["edges"]] == [(key_f, str(consume))]
    # A consume scan feeds the run in progress at its line: the lot of the *latest* produce
    # scan there, which no file can prove (a later produce scan could be left out of it).
    assert fails(log, up, f"edge {key_f} -> {key_b}", "run in progress").reason == "UNSUPPORTED_EVIDENCE"
    # Scans that name their own lot (receive, ship) are proven.
    shipped = log.trace(key_b, "down")
    assert json.loads(shipped)["report"]["edges"]
    log.check(shipped)
    scan(records_pb2.SCAN_MEANING_SHIP, None, sscc="095200000000000011")
    scan(records_pb2.SCAN_MEANING_RECEIVE, flour, "5", sscc="095200000000000028")
    fails(log, log.trace(key_f, "up"), "SSCC 095200000000000028", "Aggregation")


# ---- the key history ----------------------------------------------------------------------------------


def shipment_log() -> tuple[PureLog, records_pb2.Record]:
    log = PureLog()
    for pid in ("plant", "qa", "dist0"):
        log.register(pid, ROLES[pid])
    r = new_record("plant", "ship-1")
    s = r.shipment
    s.shipment_id, s.from_participant, s.to_participant = "SH-1", "plant", "dist0"
    s.lots.add(lot=records_pb2.LotId(item_code="P", lot="1"), quantity=records_pb2.Quantity(amount="3", unit="KGM"))
    s.shipped_at.GetCurrentTime()
    return log, r


def test_a_record_under_another_participants_key_fails() -> None:
    log, r = shipment_log()
    seq = log.add(r, log.keys["qa"])
    fails(log, log.trace("item/P/lot/1", "down"), f"entry {seq}", "belongs to participant 'qa'")


def test_a_submitter_whose_role_may_not_submit_the_kind_fails() -> None:
    log, r = shipment_log()
    r.submitter = "qa"
    seq = log.add(r)
    fails(log, log.trace("item/P/lot/1", "down"), f"entry {seq}", "role 'qa'")


def test_a_key_registered_only_after_it_signed_fails() -> None:
    log, r = shipment_log()
    late = SigningKey.generate()
    seq = log.add(r, late)
    log.register("plant", ROLES["plant"], key=late)  # a second key for plant, registered later
    fails(log, log.trace("item/P/lot/1", "down"), f"entry {seq}", "no earlier entry in the evidence registers it")


def test_a_self_signed_admin_past_genesis_fails() -> None:
    log, r = shipment_log()
    rogue = SigningKey.generate()
    log.register("rogue", records_pb2.ROLE_ADMIN, key=rogue, signer="admin")
    log.keys["rogue"] = rogue
    reg_seq = len(log.entries)
    forged = new_record("rogue", "register/plant-2")
    forged.participant_registered.participant_id = "plant"
    forged.participant_registered.role = ROLES["plant"]
    stolen = SigningKey.generate()
    forged.participant_registered.public_key = stolen.public.raw
    log.append(forged, stolen)  # signed by the key it registers, at seq > 0
    log.registered[stolen.key_id] = reg_seq
    log.add(r, stolen)
    fails(log, log.trace("item/P/lot/1", "down"), f"entry {reg_seq}", "signed by key")


def test_a_correction_by_someone_else_than_its_submitter_fails() -> None:
    log, r = shipment_log()
    log.add(r)
    fix = new_record("dist0", "fix-1")
    fix.correction.corrects_record_id, fix.correction.reason = r.record_id, "not yours"
    fix.correction.corrected.CopyFrom(r)
    fix.correction.corrected.shipment.lots[0].quantity.amount = "1"
    seq = log.add(fix)
    data = log.trace("item/P/lot/1", "down")
    assert json.loads(data)["report"]["edges"][0]["seq"] == str(seq)
    fails(log, data, f"entry {seq}", "only its submitter or an admin may correct it")


def test_a_dropped_registration_fails() -> None:
    log, r = shipment_log()
    log.add(r)
    data = log.trace("item/P/lot/1", "down")
    reg = log.registered[log.keys["plant"].key_id]
    dropped = changed(data, lambda d: d.update(entries=[e for e in d["entries"] if e["seq"] != reg]))
    assert fails(log, dropped, "no earlier entry in the evidence registers it").reason == "UNKNOWN_KEY"


# ---- the report must follow from the entries ------------------------------------------------------------


@pytest.fixture(scope="module")
def chain() -> tuple[PureLog, bytes, bytes]:
    log = chain_log(3)
    lot = next(lot for lot in corrected_lots(log) if json.loads(log.trace(lot, "up"))["report"].get("edges"))
    return log, log.trace("item/RAW0/lot/R0", "down"), log.trace(lot, "up")


def test_changed_edges_lots_and_shipments_are_named(chain: tuple[PureLog, bytes, bytes]) -> None:
    log, down, up = chain
    doc = json.loads(down)
    e0 = doc["report"]["edges"][0]
    name = f"edge {e0['source']} -> {e0['target']}"

    def edit_edge(**changes: Any) -> bytes:
        return changed(down, lambda d: d["report"]["edges"][0].update(changes))

    fails(log, edit_edge(quantity={"amount": "99999", "unit": "KGM"}), name, "not 99999 KGM")
    fails(log, edit_edge(kind="shipped" if e0["kind"] == "consumed" else "consumed"), name)
    other_seq = next(e["seq"] for e in doc["entries"] if e["seq"] != int(e0["seq"]) and e["seq"] > 0)
    fails(log, edit_edge(seq=str(other_seq)), f"edge {e0['source']} -> {e0['target']} (entry {other_seq})")
    fails(log, edit_edge(source="item/RAW9/lot/R99"), "item/RAW9/lot/R99")
    # a lot shown deeper than its edges put it, or with a path that is not one
    lots = doc["report"]["lots"]
    i = next(i for i, lot in enumerate(lots) if lot.get("depth", 0) == 1)
    fails(log, changed(down, lambda d: d["report"]["lots"][i].update(depth=2)), f"lot {lots[i]['lot']}", "depth")
    fails(log, changed(down, lambda d: d["report"]["lots"][i].update(path=[lots[i]["lot"]])), "path")
    # a shipment's consignee, a quantity in it, its receipt
    ships = doc["report"]["shipments"]
    j = next(j for j, s in enumerate(ships) if s.get("received"))
    sid = ships[j]["shipment_id"]
    fails(log, changed(down, lambda d: d["report"]["shipments"][j].update(to_participant="x")), f"shipment {sid}")
    fails(
        log,
        changed(down, lambda d: d["report"]["shipments"][j]["lots"][0]["quantity"].update(amount="0.5")),
        f"shipment {sid}",
        "lots",
    )
    fails(log, changed(down, lambda d: d["report"]["shipments"][j].pop("receipt_seqs")), "names no receipt")
    fails(log, changed(down, lambda d: d["report"]["shipments"][j].update(receipt_seqs=[e0["seq"]])), "not a receipt")


def test_changed_lot_details_are_named(chain: tuple[PureLog, bytes, bytes]) -> None:
    log, down, up = chain
    doc = json.loads(down)
    head = doc["report"]["lots"][0]
    assert head["suppliers"]
    fails(
        log,
        changed(down, lambda d: d["report"]["lots"][0]["suppliers"][0].update(supplier_lot_code="S-404")),
        f"lot {head['lot']}: supplier delivery",
        "supplier_lot_code",
    )
    up_doc = json.loads(up)
    lot = next(lot for lot in up_doc["report"]["lots"] if lot.get("run"))
    i = up_doc["report"]["lots"].index(lot)
    fails(log, changed(up, lambda d: d["report"]["lots"][i].update(run="RUN999 (entry 1)")), f"lot {lot['lot']}: run")
    qc = next(r.quality_check for r in log.records.items if r.WhichOneof("body") == "quality_check")
    checked = log.trace(f"item/{qc.lot.item_code}/lot/{qc.lot.lot}", "up")
    shown = json.loads(checked)["report"]["lots"][0]["qc"][0]
    flipped = "FAIL" if shown["result"] == "PASS" else "PASS"
    fails(
        log,
        changed(checked, lambda d: d["report"]["lots"][0]["qc"][0].update(result=flipped)),
        f"QC result (entry {shown['seq']})",
        f"result is '{flipped}' in the report",
    )


def test_a_recall_must_be_what_its_downstream_traces_reach() -> None:
    log = chain_log(5)
    data = log.recall(["item/RAW1/lot/R1"])
    log.check(data)
    doc = json.loads(data)
    affected = doc["report"]["affected_lots"]
    assert len(affected) > 1
    fails(log, changed(data, lambda d: d["report"]["affected_lots"].pop()), "affected lots", "missing")
    fails(log, changed(data, lambda d: d["report"]["consignments"].pop()), "consignments", "missing")
    fails(log, changed(data, lambda d: d["report"]["consignees"].append("zz-nobody")), "consignees")
    fails(log, changed(data, lambda d: d["report"].update(triggers=["item/RAW2/lot/R2"])), "triggers")
    fails(log, changed(data, lambda d: d["downstream"][0].update(index_size="1")), "index size")
    fails(log, changed(data, lambda d: d["downstream"][0]["edges"].pop()), "no edge of the report reaches")


# ---- structure, proofs, checkpoint -------------------------------------------------------------------------


def test_structure_proofs_and_checkpoint(chain: tuple[PureLog, bytes, bytes]) -> None:
    log, down, _ = chain
    doc = json.loads(down)
    entry = doc["entries"][3]
    seq = entry["seq"]
    raw = bytearray(base64.b64decode(entry["entry"]))
    raw[len(raw) // 2] ^= 1
    fails(log, changed(down, lambda d: d["entries"][3].update(entry=base64.b64encode(raw).decode())), f"entry {seq}")
    proof = entry["proof"].split("\n")
    bad_hash = proof.copy()
    bad_hash[2] = base64.b64encode(bytes(32)).decode()
    fails(
        log, changed(down, lambda d: d["entries"][3].update(proof="\n".join(bad_hash))), f"entry {seq}", "not included"
    )
    bad_index = proof.copy()
    bad_index[1] = f"index {seq + 1}"
    fails(log, changed(down, lambda d: d["entries"][3].update(proof="\n".join(bad_index))), f"entry {seq}", "index")
    fails(log, changed(down, lambda d: d.update(checkpoint=d["checkpoint"].replace("\n", "\n\n", 1))), "checkpoint")
    other = log.note(len(log.entries) - 1)
    fails(
        log,
        changed(
            down, lambda d: d["entries"][3].update(proof=entry["proof"].split("\n\n")[0] + "\n\n" + other.decode())
        ),
        "another checkpoint",
    )
    fails(log, changed(down, lambda d: d.update(extra=1)), "unknown members")
    fails(log, changed(down, lambda d: d.update(format="lotledger-evidence/2")), "not a lotledger-evidence/1 file")
    fails(log, down.replace(b'"format"', b'"report": {}, "format"', 1), "appears twice")
    with pytest.raises(VerificationFailed, match="checkpoint signature"):
        check_evidence(down, NoteVerifier.from_key(ORIGIN, SigningKey.generate().public))


def test_a_cosigned_checkpoint_is_carried_and_its_other_signatures_ignored(chain: tuple[PureLog, bytes, bytes]) -> None:
    log, down, _ = chain
    doc = json.loads(down)
    note = doc["checkpoint"].encode()
    cosigned = add_signatures(note, NoteSigner("witness.example.com/w1", SigningKey.generate())).decode()
    assert cosigned != doc["checkpoint"]

    def cosign(d: dict[str, Any]) -> None:
        d["checkpoint"] = cosigned
        for e in d["entries"]:
            e["proof"] = e["proof"].replace(doc["checkpoint"], cosigned)

    log.check(changed(down, cosign))


# ---- the tlog-proof format -----------------------------------------------------------------------------

# c2sp.org/tlog-proof's own example (signatures elided there as here: the note is carried, not parsed).
SPEC_EXAMPLE = """c2sp.org/tlog-proof@v1
extra YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6kYXJ3aW4tYXJ
index 73894
gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=
B95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=
EKNzoDWG8LGC0Yp9o+sv3qllpMP9uHQ9B20KNL+Q1zs=
RoopEkOdqkYqMB4MJXrbt/hMjOxsVn0IrWjpz1ZMMes=
AHCioX9nLjsrse6YhjRRmk1WUEirVOLLRoOQ6vfO5vk=

example.com/fancylog
109482
sFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=

\u2014 example.com/fancylog hI2DJw[...]1roloI=
""".encode()


def test_tlog_proof_reads_the_specs_example_and_round_trips() -> None:
    p = parse_proof(SPEC_EXAMPLE)
    assert p.index == 73894 and len(p.hashes) == 5 and p.extra is not None
    assert p.checkpoint.startswith(b"example.com/fancylog\n109482\n")
    assert format_proof(p.index, p.hashes, p.checkpoint, p.extra) == SPEC_EXAMPLE
    assert format_proof(0, [], b"cp\n").decode() == f"{HEADER}\nindex 0\n\ncp\n"
    assert parse_proof(format_proof(0, [], b"cp\n")).hashes == ()


@pytest.mark.parametrize(
    "text",
    [
        "c2sp.org/tlog-proof@v2\nindex 1\n\ncp\n",
        "c2sp.org/tlog-proof@v1\nindex 01\n\ncp\n",
        "c2sp.org/tlog-proof@v1\nindex -1\n\ncp\n",
        "c2sp.org/tlog-proof@v1\n\ncp\n",
        "c2sp.org/tlog-proof@v1\nindex 1\nAAAA\n\ncp\n",  # 3 bytes, not a hash
        "c2sp.org/tlog-proof@v1\nindex 1\n" + "A" * 43 + "B\n\ncp\n",  # non-canonical base64
        "c2sp.org/tlog-proof@v1\nindex 1\n" + "A" * 43 + "=\n",  # no empty line, no checkpoint
        "c2sp.org/tlog-proof@v1\nindex 1\n\n",  # no checkpoint
        "c2sp.org/tlog-proof@v1\nextra !!\nindex 1\n\ncp\n",
    ],
)
def test_tlog_proof_refuses_what_is_not_one_proof(text: str) -> None:
    with pytest.raises(ProofError):
        parse_proof(text.encode())
