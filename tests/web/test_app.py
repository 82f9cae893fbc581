"""The web app's pages, downloads and JSON over a real demo ledger (Flask's test client; the
browser tests drive the same app in chromium)."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient

from lotledger.cli.main import main
from lotledger.ledger.tlog import merkle
from lotledger.rpc.client import LedgerClient
from lotledger.signing.note import NoteVerifier, open_checkpoint
from lotledger.web.app import create_app
from lotledger.web.source import LedgerSource

B1001 = "01/09520000000042/10/B-1001"
MILK = "01/09520000000028/10/MK-201"
ROLLS = "01/09520000000059/10/RL-2001"


@pytest.fixture(scope="module")
def web(source: LedgerSource, log_key: NoteVerifier) -> FlaskClient:
    return create_app(source, log_key).test_client()


def test_search_finds_a_lot_by_key_barcode_gtin_and_supplier_lot_code(web: FlaskClient) -> None:
    for query in ({"q": B1001}, {"q": "(01)09520000000042(10)B-1001"}, {"gtin": "9520000000042", "gtin_lot": "B-1001"}):
        r = web.get("/search", query_string=query)
        assert r.status_code == 302 and r.headers["Location"].endswith("/trace?lot=01/09520000000042/10/B-1001")
    r = web.get("/search", query_string={"q": "D-88"})  # the dairy's lot code for our milk
    assert r.status_code == 302 and "MK-201" in r.headers["Location"]
    r = web.get("/search", query_string={"q": "(01)09520000000043(10)B-1001"})
    assert r.status_code == 400 and b"check digit" in r.data
    r = web.get("/search", query_string={"q": "item/NOPE/lot/1"})
    assert r.status_code == 404 and b"no lot item/NOPE/lot/1" in r.data
    assert web.get("/search", query_string={"q": "no-such-code"}).status_code == 404


def test_trace_page_embeds_both_directions_with_alerts(web: FlaskClient) -> None:
    r = web.get("/trace", query_string={"lot": B1001})
    assert r.status_code == 200
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    data = json.loads(re.search(rb'<script type="application/json" id="graph-data">(.*?)</script>', r.data, re.S)[1])
    cols = {n["id"]: n["col"] for n in data["nodes"]}
    assert cols[f"lot:{B1001}"] == 0 and cols[f"lot:{MILK}"] == -2 and cols["supplier:dairy"] == -3
    assert cols["shipment:plant/SH-5001"] == 1 and cols["customer:dist-north"] == 2
    milk = next(n for n in data["nodes"] if n["id"] == f"lot:{MILK}")
    assert [a["rule"] for a in milk["alerts"]] == ["EXPIRED_USE"]
    assert web.get("/api/trace", query_string={"lot": B1001}).json["center"] == B1001
    assert web.get("/trace", query_string={"lot": "nonsense"}).status_code == 400
    missing = web.get("/api/trace", query_string={"lot": "item/NOPE/lot/1"})
    assert missing.status_code == 404 and missing.json["reason"] == "UNKNOWN_LOT"
    assert web.get("/trace", query_string={"lot": B1001, "depth": "-1"}).status_code == 400
    assert web.get("/api/trace", query_string={"lot": B1001, "depth": "\u00b2"}).status_code == 400  # "²".isdigit()
    assert web.get("/alerts", query_string={"since": "\u00b2"}).status_code == 400


def test_recall_page_lists_open_shipments_contacts_and_stock(web: FlaskClient) -> None:
    r = web.get("/recall", query_string={"supplier_lot": "D-88", "reason": "listeria"})
    page = r.data.decode()
    assert r.status_code == 200 and "listeria" in page
    open_table = page[page.index('id="open-table"') : page.index("Consignees to contact")]
    assert "plant/SH-5002" in open_table and "plant/SH-5001" not in open_table
    assert "North Foods Distribution" in page and "+1 555 0201" in page  # contact data from the registry
    assert 'id="stock-table"' in page and 'id="dl-csv"' in page
    assert web.get("/recall", query_string={"lot": "bad key"}).status_code == 400
    # supplier lot codes one per line: a code may hold a comma (and an unknown one is named)
    unknown = web.get("/recall", query_string={"supplier_lot": "D-88\nNO,SUCH"})
    assert unknown.status_code == 404 and "supplier lot code &#39;NO,SUCH&#39;" in unknown.data.decode()


def test_recall_downloads_csv_xlsx_and_fsma(web: FlaskClient) -> None:
    q = {"lot": MILK, "reason": "listeria"}
    r = web.get("/recall.csv", query_string=q)
    assert r.status_code == 200 and "attachment" in r.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(r.data.decode())))
    assert rows[0][:3] == ["shipment_id", "from", "to"]
    assert {row[0] for row in rows[1:]} >= {"plant/SH-5001", "plant/SH-5002", "dist-north/SH-7001"}
    book = openpyxl.load_workbook(io.BytesIO(web.get("/recall.xlsx", query_string=q).data))
    assert book.sheetnames == ["Affected lots", "Consignees", "Consignments", "Open shipments", "Stock on hand"]
    consignees = {row[0]: row for row in book["Consignees"].iter_rows(min_row=2, values_only=True)}
    assert consignees["shop-a"][1] == "Corner Shop A"
    fsma = openpyxl.load_workbook(io.BytesIO(web.get("/recall-fsma.xlsx", query_string=q).data))
    assert "Shipping" in fsma.sheetnames and fsma["Shipping"].max_row > 1


def test_alerts_filter_by_rule_and_lot(web: FlaskClient) -> None:
    everything = web.get("/alerts").data.decode()
    assert "SHIPPED_FAILING_QC" in everything and "EXPIRED_USE" in everything
    only = web.get("/alerts", query_string={"rule": "SHIPPED_FAILING_QC"}).data.decode()
    body = only[only.index('id="alert-table"') :]
    assert "RL-2001" in body and "rule-EXPIRED_USE" not in body
    by_lot = web.get("/alerts", query_string={"lot": "MK-201"}).data.decode()
    assert "rule-SHIPPED_FAILING_QC" not in by_lot and "rule-EXPIRED_USE" in by_lot
    assert web.get("/alerts", query_string={"rule": "NOPE"}).status_code == 400


def test_the_alerts_page_shows_a_page_and_says_how_many_there_are(
    web: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lotledger.web.app

    monkeypatch.setattr(lotledger.web.app, "ALERT_PAGE", 2)
    page = web.get("/alerts").data.decode()
    assert page.count('<tr class="rule-') == 2 and "the first 2 are shown" in page


def test_status_and_record_pages(web: FlaskClient, demo_ledger: tuple[str, Path]) -> None:
    status = web.get("/status").data.decode()
    with LedgerClient(demo_ledger[0]) as client:
        size = client.checkpoint().size
    assert f'id="tree-size">{size}<' in status and "demo.example.com/lotledger" in status
    record = web.get("/record/30")
    assert record.status_code == 200 and b'data-seq="30"' in record.data
    assert web.get(f"/record/{size + 10}").status_code == 404


def test_proof_json_is_enough_to_check_the_entry_and_its_signer(web: FlaskClient, log_key: NoteVerifier) -> None:
    p = web.get("/api/proof/30").json
    checkpoint = open_checkpoint(p["checkpoint"].encode(), log_key)
    assert checkpoint.size == p["tree_size"]
    for part in (p, p["key_entry"]):
        leaf = merkle.leaf_hash(base64.b64decode(part["entry"]))
        proof = [base64.b64decode(h) for h in part["proof"]]
        merkle.verify_inclusion(part["seq"], part["tree_size"], leaf, proof, checkpoint.root_hash)


def test_the_app_is_read_only(web: FlaskClient) -> None:
    rules = web.application.url_map.iter_rules()
    assert all(rule.methods <= {"GET", "HEAD", "OPTIONS"} for rule in rules)
    assert web.post("/recall", data={"lot": MILK}).status_code == 405


def test_an_unreachable_ledger_is_a_503_page(log_key: NoteVerifier) -> None:
    from helpers import free_port

    dead = LedgerSource(lambda: LedgerClient(f"127.0.0.1:{free_port()}", timeout=1.0))
    try:
        r = create_app(dead, log_key).test_client().get("/alerts")
        assert r.status_code == 503 and b"did not answer" in r.data
    finally:
        dead.close()


def test_web_command_refuses_a_public_address_without_allow_remote(demo_ledger: tuple[str, Path]) -> None:
    key = str(demo_ledger[1] / "log.vkey")
    r = CliRunner().invoke(main, ["web", "--listen", "0.0.0.0:8080", "--log-key", key])
    assert r.exit_code == 2 and "--allow-remote" in r.output
    r = CliRunner().invoke(main, ["web", "--listen", "nonsense", "--log-key", key])
    assert r.exit_code == 2 and "HOST:PORT" in r.output


def test_the_web_command_serves_until_sigterm(demo_ledger: tuple[str, Path]) -> None:
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    from helpers import free_port

    port = free_port()
    args = ["web", "--server", demo_ledger[0], "--log-key", str(demo_ledger[1] / "log.vkey")]
    proc = subprocess.Popen(
        [sys.executable, "-m", "lotledger.cli.main", *args, "--listen", f"127.0.0.1:{port}"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as page:
                    assert page.status == 200 and b"Find a lot" in page.read()
                    break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.2)
        taken = subprocess.run(
            [sys.executable, "-m", "lotledger.cli.main", *args, "--listen", f"127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert taken.returncode == 2 and "--listen" in taken.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert f"lotledger web on http://127.0.0.1:{port}/" in err and "stopped" in err


def test_trace_alerts_asked_in_slices_are_the_same(source: LedgerSource, monkeypatch: pytest.MonkeyPatch) -> None:
    import lotledger.web.source

    whole = source.trace(B1001)
    monkeypatch.setattr(lotledger.web.source, "_LOTS_PER_CALL", 2)
    sliced = source.trace(B1001)
    assert [n.get("alerts") for n in sliced["nodes"]] == [n.get("alerts") for n in whole["nodes"]]
    assert any(n.get("alerts") for n in whole["nodes"])
