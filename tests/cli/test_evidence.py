"""Evidence files end to end: `trace up|down --evidence` and `recall --evidence` against a real
server holding the demo bakery chain (and one correction), then `verify-evidence` offline with
only the log's key; tampering with any record, proof, checkpoint or edge, or dropping an entry,
fails with a one-line reason naming it."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cli_helpers import run

from lotledger.cli.demo import demo_key
from lotledger.ledger.core.records import sign
from lotledger.ledger.errors import NotFound
from lotledger.ledger.log import LedgerConfig
from lotledger.rpc.client import LedgerClient
from lotledger.rpc.server import LedgerServer
from lotledger.signing.keys import SigningKey
from lotledger.signing.note import NoteSigner, NoteVerifier, sign_note
from lotledger.v1 import records_pb2

BREAD = "01/09520000000042/10/B-1001"
MILK = "01/09520000000028/10/MK-201"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """Evidence for a trace up, a trace down and a recall, written by the CLI from a live
    server; the server is gone before any test checks them."""
    tmp = tmp_path_factory.mktemp("evidence")
    data = tmp / "demo"
    run("demo", str(data))
    server = LedgerServer(data, "127.0.0.1:0", config=LedgerConfig(checkpoint_interval=0.05)).start()
    srv = ["--server", server.address]
    out = SimpleNamespace(tmp=tmp, vkey=(data / "log.vkey").read_text().strip(), reports={})
    try:
        with LedgerClient(server.address) as client:  # dist-north corrects its shipment SH-7002 (50 -> 40 kg)
            original = client.get_entry(record_id="demo/ship/SH-7002")
            out.original = original.seq
            body = records_pb2.Record.FromString(
                records_pb2.Entry.FromString(original.entry).signed_record.record_bytes
            )
            body.shipment.lots[0].quantity.amount = "40"
            fix = records_pb2.Record(record_id="fix/SH-7002", submitter="dist-north")
            fix.created_at.GetCurrentTime()
            fix.correction.corrects_record_id, fix.correction.reason = body.record_id, "miscounted"
            fix.correction.corrected.CopyFrom(body)
            out.correction = client.append(sign(fix, demo_key("dist-north"))).seq
            assert client.get_key(demo_key("dist-north").key_id).participant_id == "dist-north"
            with pytest.raises(NotFound):
                client.get_key("00" * 32)
        for name, args in {
            "up": ["trace", "up", BREAD],
            "down": ["trace", "down", BREAD],
            "recall": ["recall", MILK, "--supplier-lot", "M-5502", "--reason", "listeria"],
        }.items():
            path = tmp / f"{name}.evidence.json"
            result = run(*args, *srv, "--json", "--evidence", str(path))
            out.reports[name] = json.loads(result.stdout)
            assert "evidence:" in result.stderr and str(path) in result.stderr
            setattr(out, name, path)
    finally:
        server.stop(grace=1)
    yield out


def verify(path: Path, vkey: str, *extra: str, ok: bool = True) -> Any:
    return run("verify-evidence", str(path), "--log-key", vkey, *extra, ok=ok)


def test_trace_and_recall_evidence_verify_offline(files: SimpleNamespace) -> None:
    for name in ("up", "down", "recall"):
        path = getattr(files, name)
        doc = json.loads(path.read_text())
        assert doc["format"] == "lotledger-evidence/1"
        assert doc["report"] == files.reports[name], "the report in the file is the one --json printed"
        assert not path.with_name(path.name + ".partial").exists()
        report = json.loads(verify(path, files.vkey, "--json").stdout)
        assert report["ok"] and report["origin"] == "demo.example.com/lotledger"
        assert report["entries"] == len(doc["entries"]) and report["tree_size"] >= max(e["seq"] for e in doc["entries"])
    down = json.loads(files.down.read_text())
    seqs = {e["seq"] for e in down["entries"]}
    assert {0, files.original, files.correction} <= seqs, "genesis, the correction and its original"
    sh7002 = next(s for s in down["report"]["shipments"] if s["shipment_id"] == "dist-north/SH-7002")
    assert sh7002["lots"][0]["quantity"]["amount"] == "40" and int(sh7002["seq"]) == files.correction
    recall = json.loads(files.recall.read_text())
    assert recall["report"]["triggers"] == [MILK, "01/09520000000011/10/FL-102"]
    assert len(recall["downstream"]) == 2
    assert "OK: recall evidence holds" in verify(files.recall, files.vkey).stdout
    # each proof is a C2SP tlog-proof against the file's one checkpoint
    first = down["entries"][1]
    assert first["proof"].startswith(f"c2sp.org/tlog-proof@v1\nindex {first['seq']}\n")
    assert first["proof"].endswith("\n\n" + down["checkpoint"])


def tampered(files: SimpleNamespace, name: str, edit: Callable[[dict[str, Any]], None]) -> str:
    """Edit a copy of an evidence file; verify it through the CLI; return the one-line error."""
    doc = json.loads(getattr(files, name).read_text())
    edit(doc)
    path = files.tmp / f"tampered-{name}.json"
    path.write_text(json.dumps(doc, indent=1))
    result = verify(path, files.vkey, ok=False)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def entry_of(doc: dict[str, Any], seq: int) -> dict[str, Any]:
    found: dict[str, Any] = next(e for e in doc["entries"] if e["seq"] == seq)
    return found


def test_tampering_with_a_record_a_proof_or_the_checkpoint_fails(files: SimpleNamespace) -> None:
    doc = json.loads(files.down.read_text())
    seq = int(doc["report"]["edges"][0]["seq"])

    def flip_record(d: dict[str, Any]) -> None:
        e = entry_of(d, seq)
        raw = bytearray(base64.b64decode(e["entry"]))
        raw[-10] ^= 0x01  # inside the signed record
        e["entry"] = base64.b64encode(raw).decode()

    assert f"error: entry {seq}: not included in the log" in tampered(files, "down", flip_record)

    def flip_hash(d: dict[str, Any]) -> None:
        e = entry_of(d, seq)
        lines = e["proof"].split("\n")
        raw = bytearray(base64.b64decode(lines[2]))
        raw[0] ^= 0x80
        lines[2] = base64.b64encode(raw).decode()
        e["proof"] = "\n".join(lines)

    assert f"error: entry {seq}: not included in the log" in tampered(files, "down", flip_hash)

    def shift_index(d: dict[str, Any]) -> None:
        e = entry_of(d, seq)
        e["proof"] = e["proof"].replace(f"\nindex {seq}\n", f"\nindex {seq + 1}\n", 1)

    assert f"error: entry {seq}: the tlog-proof is for index {seq + 1}" in tampered(files, "down", shift_index)

    def grow_checkpoint(d: dict[str, Any]) -> None:
        origin, size, rest = d["checkpoint"].split("\n", 2)
        d["checkpoint"] = f"{origin}\n{int(size) + 1}\n{rest}"

    assert "checkpoint signature" in tampered(files, "down", grow_checkpoint)

    def other_key(d: dict[str, Any]) -> None:  # the same body, signed by someone else under the log's name
        body = d["checkpoint"].split("\n\n")[0] + "\n"
        d["checkpoint"] = sign_note(
            body.encode(), NoteSigner("demo.example.com/lotledger", SigningKey.generate())
        ).decode()

    assert "checkpoint signature" in tampered(files, "down", other_key)

    def proof_checkpoint(d: dict[str, Any]) -> None:
        e = entry_of(d, seq)
        e["proof"] = e["proof"].replace("\n\ndemo.example.com", "\n\nevil.example.com", 1)

    assert f"entry {seq}: the tlog-proof carries another checkpoint" in tampered(files, "down", proof_checkpoint)
    # and the wrong key for the log refuses an untouched file
    wrong = NoteVerifier.from_key("demo.example.com/lotledger", SigningKey.generate().public).verifier_key
    result = verify(files.down, wrong, ok=False)
    assert result.exit_code == 1 and "checkpoint signature" in result.stderr


def test_tampering_with_an_edge_or_dropping_an_entry_fails(files: SimpleNamespace) -> None:
    doc = json.loads(files.down.read_text())
    edge = doc["report"]["edges"][0]
    seq = int(edge["seq"])
    name = f"edge {edge['source']} -> {edge['target']}"

    def edit(**changes: Any) -> Callable[[dict[str, Any]], None]:
        return lambda d: d["report"]["edges"][0].update(changes)

    assert f"{name} (entry {seq}): entry {seq}" in tampered(
        files, "down", edit(quantity={"amount": "1", "unit": "KGM"})
    )
    err = tampered(files, "down", edit(source="01/09520000000011/10/FL-101"))
    assert f"edge 01/09520000000011/10/FL-101 -> {edge['target']} (entry {seq})" in err and "moves nothing" in err
    err = tampered(files, "down", edit(target="01/09520000000059/10/RL-2001"))
    assert f"edge {edge['source']} -> 01/09520000000059/10/RL-2001 (entry {seq})" in err
    other = int(doc["report"]["edges"][-1]["seq"])
    assert other != seq
    err = tampered(files, "down", edit(seq=str(other)))
    assert f"{name} (entry {other})" in err
    # the entry behind the edge, dropped
    dropped = tampered(files, "down", lambda d: d.update(entries=[e for e in d["entries"] if e["seq"] != seq]))
    assert dropped == f"error: {name} (entry {seq}): entry {seq} is not in the evidence"
    # the recall's consignments and lots are held to the same entries
    recall = json.loads(files.recall.read_text())
    c = recall["report"]["consignments"][0]
    err = tampered(files, "recall", lambda d: d["report"]["consignments"][0].update(to_participant="nobody"))
    assert f"shipment {c['shipment_id']} (entry {c['seq']}): to_participant is 'nobody'" in err
    err = tampered(files, "recall", lambda d: d["report"]["affected_lots"].remove(MILK))
    assert "the affected lots differ" in err and MILK in err
