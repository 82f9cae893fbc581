"""Trace over gRPC on a real loopback server: the index follows commits, is rebuilt the same
after a restart, and the demo chain raises exactly the irregularities it was built with."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner
from helpers import make_world, shipment, signed

from lotledger.cli.main import main
from lotledger.ledger.errors import NotFound
from lotledger.ledger.log import LedgerConfig
from lotledger.rpc.client import LedgerClient
from lotledger.rpc.server import LedgerServer

B1001 = "01/09520000000042/10/B-1001"
MILK = "01/09520000000028/10/MK-201"


@pytest.fixture
def demo_dir(tmp_path: Path) -> Path:
    data = tmp_path / "demo"
    result = CliRunner().invoke(main, ["demo", str(data)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return data


def serve(data: Path) -> LedgerServer:
    return LedgerServer(data, "127.0.0.1:0", config=LedgerConfig(checkpoint_interval=0.05)).start()


def test_demo_trace_recall_alerts_and_restart(demo_dir: Path) -> None:
    server = serve(demo_dir)
    try:
        with LedgerClient(server.address) as client:
            up = client.trace(B1001, "up")
            assert {lot.lot for lot in up.lots} >= {B1001, MILK, "item/DOUGH/lot/D-1"}
            milk = next(lot for lot in up.lots if lot.lot == MILK)
            assert milk.suppliers[0].supplier == "dairy" and milk.suppliers[0].supplier_lot_code == "D-88"
            assert milk.path == [B1001, "item/DOUGH/lot/D-1", MILK]
            assert all(e.seq > 0 for e in up.edges)
            recall = client.recall([], "listeria", supplier_lot_codes=["D-88"])
            assert recall.triggers == [MILK]
            assert set(recall.consignees) == {"dist-north", "dist-south", "shop-a", "cafe-d"}
            open_ids = {c.shipment_id for c in recall.consignments if not c.received}
            assert "SH-5002" in open_ids and "SH-5001" not in open_ids
            rules = sorted((a.rule, a.lot) for a in client.alerts().alerts)
            assert ("SHIPPED_FAILING_QC", "01/09520000000059/10/RL-2001") in rules
            assert ("EXPIRED_USE", MILK) in rules
            assert ("EXPIRED_USE", "01/09520000000042/10/B-0999") in rules
            before = (client.trace(B1001, "down"), recall, client.alerts())
            with pytest.raises(NotFound) as info:
                client.trace("item/NOPE/lot/1", "up")
            assert info.value.reason == "UNKNOWN_LOT"
    finally:
        server.stop(grace=1)
    server = serve(demo_dir)
    try:
        with LedgerClient(server.address) as client:
            after = (client.trace(B1001, "down"), client.recall([], "listeria", ["D-88"]), client.alerts())
        for a, b in zip(before, after, strict=True):
            for m in (a, b):
                if "elapsed_ms" in m.DESCRIPTOR.fields_by_name:
                    m.ClearField("elapsed_ms")
            assert a == b, "the index rebuilt at start answers as the live one did"
    finally:
        server.stop(grace=1)


def test_index_follows_commits(tmp_path: Path) -> None:
    world, ledger = make_world(tmp_path)
    ledger.close()
    server = serve(world.data_dir)
    try:
        with LedgerClient(server.address) as client:
            result = client.append(signed(shipment(record_id="s-live"), world.keys["acme"]))
            assert server.live.wait_for(result.seq + 1)
            down = client.trace("01/09520000000011/10/L1", "down")
            assert [s.shipment_id for s in down.shipments] == ["SH-s-live"]
            assert [a.rule for a in client.alerts(rule="SHIPPED_WITHOUT_QC").alerts] == ["SHIPPED_WITHOUT_QC"]
    finally:
        server.stop(grace=1)


def test_trace_errors_have_status_codes(demo_dir: Path) -> None:
    server = serve(demo_dir)
    try:
        with LedgerClient(server.address) as client:
            from lotledger.v1 import trace_pb2

            with pytest.raises(grpc.RpcError) as info:
                client.stub.Trace(trace_pb2.TraceRequest(lot=B1001), timeout=5)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            with pytest.raises(grpc.RpcError) as info:
                client.stub.Recall(trace_pb2.RecallRequest(), timeout=5)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        server.stop(grace=1)


def test_cli_trace_recall_sources_alerts(demo_dir: Path, tmp_path: Path) -> None:
    server = serve(demo_dir)
    runner = CliRunner()
    srv = ["--server", server.address]
    try:
        out = runner.invoke(main, ["trace", "up", B1001, *srv], catch_exceptions=False)
        assert out.exit_code == 0 and "from dairy lot D-88" in out.stdout
        csv_path = tmp_path / "recall.csv"
        out = runner.invoke(
            main, ["recall", MILK, "--reason", "test", "--csv", str(csv_path), *srv], catch_exceptions=False
        )
        assert out.exit_code == 0 and "OPEN - stop it" in out.stdout
        assert "SH-5002" in csv_path.read_text()
        out = runner.invoke(
            main, ["sources", B1001, "01/09520000000059/10/RL-2001", *srv, "--json"], catch_exceptions=False
        )
        assert out.exit_code == 0 and '"key": "dairy"' in out.stdout
        out = runner.invoke(main, ["alerts", *srv], catch_exceptions=False)
        assert "SHIPPED_FAILING_QC" in out.stdout
        qa = ["--key", str(demo_dir / "keys" / "demo" / "qa.key"), "--participant", "qa"]
        out = runner.invoke(main, ["recall", B1001, "--open", "--reason", "glass", *qa, *srv], catch_exceptions=False)
        assert out.exit_code == 0 and "recorded at entry" in out.stderr
        out = runner.invoke(main, ["trace", "down", "item/NOPE/lot/1", *srv], catch_exceptions=False)
        assert out.exit_code == 1 and "UNKNOWN_LOT" in out.stderr
    finally:
        server.stop(grace=1)


def test_list_alerts_filters_by_lot(demo_dir: Path) -> None:
    server = serve(demo_dir)
    try:
        with LedgerClient(server.address) as client:
            everything = client.alerts().alerts
            only = client.alerts(lots=[MILK, "item/NOPE/lot/1"]).alerts
            assert only and all(a.lot == MILK for a in only)
            assert [a.seq for a in only] == [a.seq for a in everything if a.lot == MILK]
            assert len(everything) > len(only)
    finally:
        server.stop(grace=1)
