"""Messages a person can act on, read from the demo supply chain on a real loopback server:
every alert line names its entry, record and shipment or run; the recall tables have a heading
over every column and print zeros; the consignments CSV says `true`/`false` and gives times
with their zone."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import run

from lotledger.ledger.log import LedgerConfig
from lotledger.rpc.server import LedgerServer

B0999 = "01/09520000000042/10/B-0999"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("messages") / "demo"
    run("demo", str(data))
    server = LedgerServer(data, "127.0.0.1:0", config=LedgerConfig(checkpoint_interval=0.05)).start()
    try:
        yield server.address
    finally:
        server.stop(grace=1)


def test_each_alert_names_its_entry_record_and_shipment_or_run(demo: str) -> None:
    head, *lines = run("alerts", "--server", demo).stdout.splitlines()
    assert head.split() == ["ENTRY", "RULE", "MESSAGE"]
    expired = [line for line in lines if "EXPIRED_USE" in line and B0999 in line]
    assert len(expired) == 2 and len(set(expired)) == 2, "two expired shipments, two different lines"
    (sh5004,) = [line for line in expired if "shipped in plant/SH-5004" in line or "shipped in SH-5004" in line]
    (sh7003,) = [line for line in expired if "SH-7003" in line]
    assert re.search(r"\[entry 38, record demo/ship/SH-5004\]$", sh5004), sh5004
    assert re.search(r"\[entry 40, record demo/ship/SH-7003\]$", sh7003), sh7003
    (run_line,) = [line for line in lines if "consumed by run R-3" in line]
    assert run_line.endswith("[entry 29, record demo/run/R-3]")
    for line in lines:  # every one, whatever its rule, under its headings
        assert re.search(r"\[entry \d+, record \S+\]$", line), line
        assert line[head.index("RULE") - 1] == " " and line[head.index("RULE")] != " ", line


def test_the_sources_table_heads_its_columns(demo: str) -> None:
    head, *rows = run(
        "sources", "01/09520000000042/10/B-1001", "01/09520000000059/10/RL-2001", "--server", demo
    ).stdout.splitlines()
    assert head.split() == ["REACHES", "KIND", "SOURCE"]
    assert any(r.split()[:3] == ["2/2", "supplier", "dairy"] for r in rows), rows


def _table(lines: list[str], heading: str) -> list[list[str]]:
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(heading))
    rows = []
    for line in lines[start:]:
        if not line.strip():
            break
        rows.append(line.split())
    return rows


def test_the_recall_table_heads_every_column_and_prints_zeros(demo: str) -> None:
    lines = run("recall", "--supplier-lot", "D-88", "--server", demo).stdout.splitlines()
    head, *rows = _table(lines, "LOT")
    assert head == ["LOT", "HOLDER", "UNIT", "IN", "CONSUMED", "SHIPPED", "ON", "HAND", "UNACCOUNTED"]
    assert rows and all(len(r) == 8 for r in rows), "a value in every column, zeros included"
    by_lot = {(r[0], r[1]): r for r in rows}
    dough = by_lot["item/DOUGH/lot/D-1", "plant"]
    assert dough[2] == "KGM" and dough[5] == "0" and dough[6] == "0" and dough[7] == "0"
    # The unit sits under UNIT, and each number ends under the end of its heading (right-aligned).
    text_head = next(line for line in lines if line.strip().startswith("LOT"))
    text_row = next(line for line in lines if "item/DOUGH/lot/D-1" in line)
    assert text_row[text_head.index("UNIT") : text_head.index("UNIT") + 3] == "KGM"
    end = text_head.index("UNACCOUNTED") + len("UNACCOUNTED")
    assert text_row[:end].endswith(" 0") and len(text_row) == end
    ship_head, *shipments = _table(lines, "SHIPMENT")
    assert ship_head == ["SHIPMENT", "SHIPPED", "FROM", "TO", "LOCATION", "LOTS", "STATE"]
    assert len(shipments) == 5


def test_the_consignments_csv_says_true_false_and_zoned_times(demo: str, tmp_path: Path) -> None:
    out = tmp_path / "consignments.csv"
    run("recall", "--supplier-lot", "D-88", "--server", demo, "--csv", str(out))
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"), newline="")))
    assert {r["received"] for r in rows} == {"true", "false"}
    for r in rows:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", r["shipped_at"]), r


def test_the_recall_sheets_name_the_same_column_type_as_the_fsma_ones() -> None:
    from lotledger.trace.standards import fsma, recall_report

    assert recall_report.TEXT == fsma.TEXT
