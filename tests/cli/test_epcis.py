"""import-epcis and export-epcis against a real server: re-import is a no-op, malformed or
unmappable input is reported and leaves the ledger unchanged, and the export validates against
the official EPCIS 2.0 JSON schema."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace

import jsonschema
import pytest
from cli_helpers import run

from lotledger.ledger.log import LedgerConfig
from lotledger.rpc.client import LedgerClient
from lotledger.rpc.server import LedgerServer
from lotledger.v1 import records_pb2

DATA = Path(__file__).parent.parent / "epcis" / "data"
SCHEMA = json.loads((Path(__file__).parent.parent / "epcis" / "schema" / "EPCIS-JSON-Schema.json").read_text())


def _plant(live: SimpleNamespace) -> list[str]:
    key = live.tmp / "plant.key"
    run("keys", "generate", str(key))
    run(
        "keys", "register", "--id", "plant", "--role", "manufacturer", "--public-key", f"{key}.pub",
        "--server", live.server.address, "--key", str(live.data / "keys" / "admin.key"),
    )  # fmt: skip
    return ["--server", live.server.address, "--key", str(key), "--participant", "plant"]


def _entries(live: SimpleNamespace) -> list[bytes]:
    with LedgerClient(live.server.address) as client:
        return [e for _, e in client.list_entries()]


def test_import_is_idempotent_and_export_validates(live: SimpleNamespace) -> None:
    signer = _plant(live)
    before = len(_entries(live))
    dry = run("import-epcis", str(DATA / "plant_urn.jsonld"), *signer, "--dry-run", "--json")
    assert len(json.loads(dry.stdout)["records"]) == 5
    assert len(_entries(live)) == before  # a dry run appends nothing

    first = json.loads(run("import-epcis", str(DATA / "plant_urn.jsonld"), *signer, "--json").stdout)["appended"]
    assert [r["duplicate"] for r in first] == [False] * 5
    assert len(_entries(live)) == before + 5
    # The Digital Link form of the same events is the same records: nothing new.
    again = json.loads(run("import-epcis", str(DATA / "plant_dl.jsonld"), *signer, "--json").stdout)["appended"]
    assert [r["duplicate"] for r in again] == [True] * 5
    assert [r["seq"] for r in again] == [r["seq"] for r in first]
    assert len(_entries(live)) == before + 5

    out = live.tmp / "out.jsonld"
    run("export-epcis", "--out", str(out), "--server", live.server.address)
    doc = json.loads(out.read_text())
    jsonschema.Draft7Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(doc)
    source = json.loads((DATA / "plant_urn.jsonld").read_text())["epcisBody"]["eventList"]
    events = [{k: v for k, v in e.items() if k != "@context"} for e in doc["epcisBody"]["eventList"]]
    assert events == source

    # --lot keeps the records naming that lot; --from/--to the events in those days.
    run("export-epcis", "--out", str(out), "--lot", "01/04012345123456/10/LOT-A", "--server", live.server.address)
    assert len(json.loads(out.read_text())["epcisBody"]["eventList"]) == 2  # received, consumed by the run
    run(
        "export-epcis", "--out", str(out), "--from", "2026-01-07", "--to", "2026-01-07", "--server", live.server.address
    )
    assert len(json.loads(out.read_text())["epcisBody"]["eventList"]) == 2  # packed and shipped that day

    # Importing the export gives back the same records: all duplicates.
    run("export-epcis", "--out", str(out), "--server", live.server.address)
    back = json.loads(run("import-epcis", str(out), *signer, "--json").stdout)["appended"]
    assert [r["duplicate"] for r in back] == [True] * 5


def test_unmappable_or_malformed_input_leaves_the_ledger_unchanged(live: SimpleNamespace) -> None:
    signer = _plant(live)
    before = _entries(live)
    doc = json.loads((DATA / "plant_urn.jsonld").read_text())
    bad = copy.deepcopy(doc)
    bad["epcisBody"]["eventList"][3]["action"] = "OBSERVE"  # an aggregation that changes nothing
    path = live.tmp / "bad.jsonld"
    path.write_text(json.dumps(bad))
    result = run("import-epcis", str(path), *signer, "--json", ok=False)
    assert result.exit_code == 2
    problems = json.loads(result.stdout)["problems"]
    assert [(p["index"], p["reason"]) for p in problems] == [(3, "EPCIS_UNMAPPABLE")]
    assert "event 3" in result.stderr
    assert _entries(live) == before

    broken = live.tmp / "broken.jsonld"
    broken.write_text('{"type": "EPCISDocument", "epcisBody": ')
    result = run("import-epcis", str(path), str(broken), *signer, ok=False)
    assert result.exit_code == 2 and "not JSON" in result.stderr
    assert _entries(live) == before


def test_a_manufacturer_imports_its_commissioning_events(live: SimpleNamespace) -> None:
    """ObjectEvent commissioning maps to a PRODUCE Scan: the manufacturer whose system reports
    it may submit it (the role table lets manufacturers and distributors relay scans)."""
    signer = _plant(live)
    doc = {
        "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2026-02-01T00:00:00.000Z",
        "epcisBody": {
            "eventList": [
                {
                    "type": "ObjectEvent",
                    "eventTime": "2026-01-08T06:00:00.000Z",
                    "eventTimeZoneOffset": "+00:00",
                    "action": "ADD",
                    "bizStep": "commissioning",
                    "quantityList": [
                        {"epcClass": "urn:epc:class:lgtin:4012345.012345.BATCH-9", "quantity": 40, "uom": "KGM"}
                    ],
                    "readPoint": {"id": "urn:epc:id:sgln:4012345.00012.0"},
                }
            ]
        },
    }
    path = live.tmp / "commissioning.jsonld"
    path.write_text(json.dumps(doc))
    out = json.loads(run("import-epcis", str(path), *signer, "--json").stdout)
    assert len(out["appended"]) == 1 and out["appended"][0]["duplicate"] is False
    with LedgerClient(live.server.address) as client:
        entry = client.get_entry(record_id=out["appended"][0]["record_id"])
    record = records_pb2.Record.FromString(records_pb2.Entry.FromString(entry.entry).signed_record.record_bytes)
    assert record.WhichOneof("body") == "scan" and record.submitter == "plant"


def test_a_logs_own_export_imports_as_a_no_op_and_into_another_log_as_new(
    live: SimpleNamespace, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Issue 20, 7: an exported native record names itself (submitter, record id, and its event
    hash as eventID); importing the export into the log it came from appends nothing, and into
    another log appends it as an imported event, as before."""
    from helpers import shipment, signed

    from lotledger.signing.keys import SigningKey

    acme = SigningKey.load(live.key)
    with LedgerClient(live.server.address) as client:
        native = client.append(signed(shipment("acme", record_id="ship-rt-1"), acme))
    out = live.tmp / "own.jsonld"
    run("export-epcis", "--out", str(out), "--server", live.server.address)
    [event] = json.loads(out.read_text())["epcisBody"]["eventList"]
    assert (event["lotledger:submitter"], event["lotledger:recordId"]) == ("acme", "ship-rt-1")
    assert event["eventID"].startswith("ni:///sha-256;")
    signer = ["--server", live.server.address, "--key", str(live.key), "--participant", "acme"]
    before = len(_entries(live))
    [again] = json.loads(run("import-epcis", str(out), *signer, "--json").stdout)["appended"]
    assert (again["duplicate"], again["seq"], again["record_id"]) == (True, native.seq, "ship-rt-1")
    assert len(_entries(live)) == before
    text = run("import-epcis", str(out), *signer).stdout
    assert "already in the log: acme's record ship-rt-1" in text

    # Another log holds no such record: the event is imported as a new record of that log.
    other = tmp_path_factory.mktemp("other") / "data"
    run("init", str(other), "--origin", "other.example.com/lotledger")
    server = LedgerServer(other, "127.0.0.1:0", config=LedgerConfig(checkpoint_interval=0.05)).start()
    try:
        run(
            "keys", "register", "--id", "acme", "--role", "supplier", "--public-key", f"{live.key}.pub",
            "--server", server.address, "--key", str(other / "keys" / "admin.key"),
        )  # fmt: skip
        signer = ["--server", server.address, "--key", str(live.key), "--participant", "acme"]
        [new] = json.loads(run("import-epcis", str(out), *signer, "--json").stdout)["appended"]
        assert new["duplicate"] is False and new["record_id"].startswith("epcis:")
    finally:
        server.stop(grace=1)
