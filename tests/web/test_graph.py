"""The trace drawing (web/graph.py) and the search box (web/search.py): pure functions."""

from __future__ import annotations

from lotledger.v1 import records_pb2, trace_pb2
from lotledger.web.graph import COLUMN_WIDTH, ROW_HEIGHT, trace_graph
from lotledger.web.search import classify, from_gtin

BREAD = "01/09520000000042/10/B-1"
DOUGH = "item/DOUGH/lot/D-1"
MILK = "01/09520000000028/10/MK-1"


def _q(amount: str, unit: str = "KGM") -> records_pb2.Quantity:
    return records_pb2.Quantity(amount=amount, unit=unit)


def _answers() -> tuple[trace_pb2.TraceResponse, trace_pb2.TraceResponse]:
    up = trace_pb2.TraceResponse(
        lots=[
            trace_pb2.TraceLot(lot=BREAD, depth=0, qc_status="PASS", description="Bread"),
            trace_pb2.TraceLot(lot=DOUGH, depth=1),
            trace_pb2.TraceLot(
                lot=MILK,
                depth=2,
                suppliers=[
                    trace_pb2.SupplierSource(supplier="dairy", supplier_lot_code="D-88", quantity=_q("500"), seq=7)
                ],
            ),
        ],
        edges=[
            trace_pb2.TraceEdge(source=DOUGH, target=BREAD, kind="consumed", quantity=_q("400"), seq=11),
            trace_pb2.TraceEdge(source=MILK, target=DOUGH, kind="consumed", quantity=_q("100"), seq=10),
        ],
    )
    down = trace_pb2.TraceResponse(
        lots=[trace_pb2.TraceLot(lot=BREAD, depth=0, qc_status="PASS")],
        edges=[trace_pb2.TraceEdge(source=BREAD, target="shipment:SH-1", kind="shipped", quantity=_q("50"), seq=20)],
        shipments=[
            trace_pb2.ShipmentView(
                shipment_id="SH-1", from_participant="plant", to_participant="shop", received=False, seq=20
            )
        ],
    )
    return up, down


def test_upstream_is_left_downstream_right_with_the_seqs_behind_each_node() -> None:
    up, down = _answers()
    alert = trace_pb2.Alert(seq=20, rule="SHIPPED_FAILING_QC", lot=BREAD, message="m")
    g = trace_graph(BREAD, up, down, [alert], {"dairy": "Example Dairy"})
    nodes = {n["id"]: n for n in g["nodes"]}
    assert nodes[f"lot:{BREAD}"]["col"] == 0
    assert nodes[f"lot:{DOUGH}"]["col"] == -1 and nodes[f"lot:{MILK}"]["col"] == -2
    assert nodes["supplier:dairy"]["col"] == -3 and nodes["supplier:dairy"]["label"] == "Example Dairy"
    assert nodes["shipment:SH-1"]["col"] == 1 and nodes["customer:shop"]["col"] == 2
    assert nodes["shipment:SH-1"]["received"] is False
    assert nodes[f"lot:{MILK}"]["x"] == -2 * COLUMN_WIDTH
    assert nodes[f"lot:{MILK}"]["seqs"] == [7, 10]
    assert nodes[f"lot:{MILK}"]["quantity"] == "received 500 KGM; used 100 KGM"
    assert "quantity" not in nodes[f"lot:{BREAD}"]  # empty fields are left out
    assert nodes[f"lot:{BREAD}"]["alerts"][0]["rule"] == "SHIPPED_FAILING_QC"
    assert 20 in nodes[f"lot:{BREAD}"]["seqs"]
    edges = {(e["source"], e["target"]): e for e in g["edges"]}
    assert edges[(f"lot:{MILK}", f"lot:{DOUGH}")]["quantity"] == "100 KGM"
    assert edges[("supplier:dairy", f"lot:{MILK}")]["seq"] == 7
    assert edges[("shipment:SH-1", "customer:shop")]["kind"] == "in transit"
    assert len(g["nodes"]) == 6


def test_rows_in_a_column_do_not_overlap() -> None:
    up, _ = _answers()
    for i in range(5):
        up.lots.append(trace_pb2.TraceLot(lot=f"item/X/lot/{i}", depth=1))
    g = trace_graph(BREAD, up, None)
    ys = sorted(n["y"] for n in g["nodes"] if n["col"] == -1)
    assert len(ys) == 6 and all(b - a >= ROW_HEIGHT - 0.01 for a, b in zip(ys, ys[1:], strict=False))


def test_search_reads_lot_keys_barcodes_gtins_and_falls_back_to_supplier_lot_codes() -> None:
    assert classify(BREAD).lot == BREAD
    assert classify("(01)09520000000042(10)B-1").lot == "01/09520000000042/10/B-1"
    assert classify("]C1010952000000004210B-1").lot == "01/09520000000042/10/B-1"
    assert classify("https://id.example.com/01/09520000000042/10/B-1").lot == "01/09520000000042/10/B-1"
    bad = classify("(01)09520000000043(10)B-1")
    assert not bad.lot and "check digit" in bad.problem.lower()
    assert "names no lot" in classify("(01)09520000000042").problem
    assert classify("D-88").supplier_lot_code == "D-88"
    assert classify("  ").problem
    assert from_gtin("9520000000042", "B-1").lot == "01/09520000000042/10/B-1"  # GTIN-13 padded
    assert "check digit" in from_gtin("09520000000043", "B-1").problem.lower()
    assert from_gtin("", "B-1").problem


def test_the_vendored_graph_library_is_the_recorded_release() -> None:
    import hashlib
    from pathlib import Path

    import lotledger.web

    vendor = Path(lotledger.web.__file__).parent / "static" / "vendor"
    recorded = (vendor / "cytoscape.VERSION").read_text().split("sha256 ")[1].split()[0]
    assert hashlib.sha256((vendor / "cytoscape.min.js").read_bytes()).hexdigest() == recorded
    assert "Permission is hereby granted" in (vendor / "cytoscape.LICENSE").read_text()


def test_a_wide_column_wraps_into_sub_columns_without_overlaps() -> None:
    from lotledger.web.graph import MAX_ROWS

    up, _ = _answers()
    for i in range(MAX_ROWS * 2 + 1):
        up.lots.append(trace_pb2.TraceLot(lot=f"item/X/lot/{i}", depth=1))
    g = trace_graph(BREAD, up, None)
    wide = [n for n in g["nodes"] if n["col"] == -1]
    assert len({n["x"] for n in wide}) == 3  # three sub-columns
    assert len({(n["x"], n["y"]) for n in g["nodes"]}) == len(g["nodes"])
    xs = {n["col"]: n["x"] for n in g["nodes"]}
    assert xs[0] > max(n["x"] for n in wide) and xs[-2] < min(n["x"] for n in wide)
