"""The trace service: in process (lotledger.trace.service, no transport: the read decisions a
partner gets and the errors each query raises), and over gRPC on a real loopback server (the
index follows commits, is rebuilt the same after a restart, the demo chain raises exactly the
irregularities it was built with, and every trace RPC maps a storage failure to the status the
table gives it)."""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from click.testing import CliRunner
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from helpers import GTIN_B, make_world, quality_check, registration, shipment, signed

import lotledger.trace.service
from lotledger.cli.main import main
from lotledger.ledger.core import access
from lotledger.ledger.core.access import Caller
from lotledger.ledger.errors import (
    InvalidRecord,
    LedgerError,
    NotFound,
    OutOfRange,
    PermissionDenied,
    StorageError,
    Unavailable,
)
from lotledger.ledger.log import LedgerConfig
from lotledger.rpc.client import LedgerClient
from lotledger.rpc.server import LedgerServer
from lotledger.rpc.status import DOMAIN
from lotledger.signing.keys import SigningKey
from lotledger.trace.live import LiveIndex
from lotledger.trace.queries import UnknownLot
from lotledger.trace.service import TraceService
from lotledger.v1 import records_pb2, trace_pb2

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
            assert "plant/SH-5002" in open_ids and "plant/SH-5001" not in open_ids
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
            assert [s.shipment_id for s in down.shipments] == ["acme/SH-s-live"]
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
        assert "plant/SH-5002" in csv_path.read_text()
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


# ---- the service in process: who reads what, and what each query raises ----------------------

LOT_A = "01/09520000000011/10/L1"  # acme's lot, shipped to plant
LOT_B = "01/09520000000028/10/L1"  # globex's lot, shipped to plant
NOPE = "item/NOPE/lot/1"
ACME = Caller(tls=True, participant="acme", role="supplier")
GLOBEX = Caller(tls=True, participant="globex", role="supplier")
PLANT = Caller(tls=True, participant="plant", role="manufacturer")
QA = Caller(tls=True, participant="qa1", role="qa")


@pytest.fixture
def traced(tmp_path: Path) -> Iterator[SimpleNamespace]:
    """A real ledger and live index: acme and globex each ship a lot to plant; qa1 checks
    acme's lot (an entry acme is not party to, naming acme's lot)."""
    world, ledger = make_world(tmp_path)
    globex = SigningKey.generate()
    ledger.append(signed(registration("admin", "globex", records_pb2.ROLE_SUPPLIER, globex), world.admin))
    seqs = {
        "acme_ship": ledger.append(signed(shipment("acme"), world.keys["acme"])).seq,
        "globex_ship": ledger.append(signed(shipment("globex", gtin_=GTIN_B), globex)).seq,
        "qa_l1": ledger.append(signed(quality_check("qa1"), world.keys["qa1"])).seq,
    }
    live = LiveIndex(ledger)
    assert live.wait_for(ledger.size)
    yield SimpleNamespace(ledger=ledger, live=live, service=TraceService(live), seqs=seqs)
    live.close()
    ledger.close()


def test_the_service_has_no_transport_in_it() -> None:
    """Rule 1: the trace half of the servicer is domain code; gRPC stays in lotledger.rpc."""
    tree = ast.parse(Path(lotledger.trace.service.__file__).read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not {m for m in imported if m == "grpc" or m.startswith(("grpc.", "grpc_", "lotledger.rpc"))}


def test_a_partner_traces_its_lots_and_is_refused_the_others(traced: SimpleNamespace) -> None:
    down = traced.service.trace(ACME, LOT_A, "down")
    assert isinstance(down, trace_pb2.TraceResponse) and down.index_size == traced.ledger.size
    assert [s.shipment_id for s in down.shipments] and all(s.to_participant == "plant" for s in down.shipments)
    traced.service.trace(PLANT, LOT_A, "up")  # shipped to plant: it concerns plant too
    for lot in (LOT_A, NOPE):  # another's lot and no lot at all get the same refusal
        with pytest.raises(PermissionDenied) as refused:
            traced.service.trace(GLOBEX, lot, "down")
        assert (refused.value.reason, refused.value.field) == ("READ_NOT_ALLOWED", "lot")
        assert repr(lot) in refused.value.message


def test_a_full_reader_learns_that_a_lot_is_unknown(traced: SimpleNamespace) -> None:
    with pytest.raises(UnknownLot) as unknown:
        traced.service.trace(QA, NOPE, "up")
    assert unknown.value.reason == "UNKNOWN_LOT"
    assert traced.service.trace(access.OPEN, LOT_B, "down").shipments


def test_recall_checks_the_named_lots_then_what_the_codes_find(traced: SimpleNamespace) -> None:
    report = traced.service.recall(ACME, [LOT_A], [], "glass")
    assert list(report.triggers) == [LOT_A] and list(report.consignees) == ["plant"]
    with pytest.raises(PermissionDenied):
        traced.service.recall(GLOBEX, [LOT_A], [], "")
    with pytest.raises(InvalidRecord) as empty:
        traced.service.recall(QA, [], [], "")
    assert empty.value.field == "lots"
    with pytest.raises(NotFound) as unknown_code:
        traced.service.recall(QA, [], ["NO-SUCH-CODE"], "")
    assert unknown_code.value.field == "supplier_lot_codes"


def test_common_sources_of_a_partner(traced: SimpleNamespace) -> None:
    assert isinstance(traced.service.common_sources(ACME, [LOT_A]), trace_pb2.CommonSourcesResponse)
    with pytest.raises(PermissionDenied):
        traced.service.common_sources(GLOBEX, [LOT_A, LOT_B])


def test_alerts_on_other_lots_are_left_out_not_refused(traced: SimpleNamespace) -> None:
    def lots(caller: Caller, **kw: Any) -> list[str]:
        return sorted({a.lot for a in traced.service.list_alerts(caller, **kw).alerts})

    assert lots(QA) == sorted([LOT_A, LOT_B])
    assert lots(ACME) == [LOT_A] and lots(GLOBEX) == [LOT_B]
    assert lots(GLOBEX, lots=[LOT_A]) == []
    assert lots(QA, rule="SHIPPED_WITHOUT_QC", since_seq=traced.seqs["globex_ship"]) == [LOT_B]
    assert len(traced.service.list_alerts(QA, limit=1).alerts) == 1


def test_who_reads_an_entry(traced: SimpleNamespace) -> None:
    seqs, require = traced.seqs, traced.service.require_entry
    require(ACME, seqs["acme_ship"])  # its own
    require(PLANT, seqs["acme_ship"])  # names plant as the receiver
    require(ACME, seqs["qa_l1"])  # qa1's, but about acme's lot
    require(ACME, seqs["qa_l1"], traced.ledger.entry(seqs["qa_l1"])[0])  # the bytes the caller read
    for caller, seq in ((GLOBEX, seqs["acme_ship"]), (GLOBEX, seqs["qa_l1"]), (ACME, seqs["globex_ship"])):
        with pytest.raises(PermissionDenied) as refused:
            require(caller, seq)
        assert (refused.value.reason, refused.value.field) == ("READ_NOT_ALLOWED", "seq")
    require(QA, traced.ledger.size + 5)  # a full reader's call reads nothing
    with pytest.raises(OutOfRange):
        require(ACME, traced.ledger.size + 5)


def test_the_rule_asks_the_index_only_when_it_must() -> None:
    """access decides; the index question comes as a callable asked only for a partner's
    entry it is not party to, and for a partner's lots."""
    asked: list[str] = []

    def concerns(lot: str) -> bool:
        asked.append(lot)
        return lot == LOT_A

    access.require_lots(QA, [LOT_B], concerns)
    access.require_lots(ACME, [LOT_A], concerns)
    with pytest.raises(PermissionDenied):
        access.require_lots(ACME, [LOT_A, LOT_B, NOPE], concerns)
    assert asked == [LOT_A, LOT_A, LOT_B], "stops at the first refused lot"

    own = shipment("acme")
    access.require_entry(ACME, 7, own, lambda: pytest.fail("asked about its own entry"))
    access.require_entry(QA, 7, shipment("globex"), lambda: pytest.fail("asked for a full reader"))
    access.require_entry(ACME, 7, shipment("globex"), lambda: True)
    with pytest.raises(PermissionDenied):
        access.require_entry(ACME, 7, shipment("globex"), lambda: False)
    entry = records_pb2.Entry(signed_record=records_pb2.SignedRecord(record_bytes=own.SerializeToString()))
    assert access.entry_record(entry.SerializeToString()) == own


# ---- a storage failure behind a trace RPC gets the table's status, not UNKNOWN ----------------

TRACE_CALLS: dict[str, Callable[[Any], Any]] = {
    "Trace": lambda stub: stub.Trace(
        trace_pb2.TraceRequest(lot=B1001, direction=trace_pb2.TRACE_DIRECTION_UPSTREAM), timeout=5
    ),
    "Recall": lambda stub: stub.Recall(trace_pb2.RecallRequest(lots=[MILK]), timeout=5),
    "CommonSources": lambda stub: stub.CommonSources(trace_pb2.CommonSourcesRequest(lots=[B1001]), timeout=5),
    "ListAlerts": lambda stub: stub.ListAlerts(trace_pb2.ListAlertsRequest(), timeout=5),
}


@pytest.fixture
def demo_server(demo_dir: Path) -> Iterator[LedgerServer]:
    server = serve(demo_dir)
    yield server
    server.stop(grace=1)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (StorageError("mdb_get: MDB_CORRUPTED"), grpc.StatusCode.INTERNAL),
        (Unavailable("the ledger is closed"), grpc.StatusCode.UNAVAILABLE),
    ],
    ids=["StorageError", "Unavailable"],
)
@pytest.mark.parametrize("rpc", list(TRACE_CALLS))
def test_a_storage_failure_in_a_trace_rpc_has_its_status(
    demo_server: LedgerServer, monkeypatch: pytest.MonkeyPatch, rpc: str, error: StorageError, code: grpc.StatusCode
) -> None:
    def failing(fn: object) -> object:
        raise error

    monkeypatch.setattr(demo_server.live, "query", failing)
    with LedgerClient(demo_server.address) as client:
        with pytest.raises(grpc.RpcError) as info:
            TRACE_CALLS[rpc](client.stub)
    assert info.value.code() == code
    assert info.value.details() == str(error)
    status = rpc_status.from_call(info.value)  # type: ignore[arg-type]
    assert status is not None, "the error carries no google.rpc.Status"
    detail = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(detail) and (detail.reason, detail.domain) == ("INTERNAL", DOMAIN)


def test_a_store_failing_under_a_query_is_internal(demo_server: LedgerServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The records behind a trace read from LMDB deep inside the query: a failure there too."""

    def failing(seqs: object) -> object:
        raise StorageError("mdb_txn_begin: MDB_PANIC")

    monkeypatch.setattr(demo_server.live.index.records, "many", failing)
    with LedgerClient(demo_server.address) as client:
        with pytest.raises(StorageError) as info:  # the client maps the status back to our type
            client.trace(B1001, "up")
        assert "MDB_PANIC" in str(info.value)
        with pytest.raises(grpc.RpcError) as raw:
            TRACE_CALLS["Trace"](client.stub)
        assert raw.value.code() == grpc.StatusCode.INTERNAL
    assert not isinstance(info.value, LedgerError)


def _run(plant_lot: str) -> records_pb2.Record:
    from helpers import lot, new_record, qty

    record = new_record("plant")
    run = record.production_run
    run.run_id, run.location, run.manufactured_on = f"RUN-{record.record_id}", "plant/line-1", "2026-12-01"
    gtin, _, number = plant_lot.removeprefix("01/").partition("/10/")
    run.outputs.add(lot=lot(gtin, number), quantity=qty("100"))
    run.inputs.add(lot=lot(), quantity=qty("5"))
    run.started_at.GetCurrentTime()
    run.completed_at.GetCurrentTime()
    return record


def test_mentioning_a_lot_first_does_not_make_it_yours(tmp_path: Path) -> None:
    """Finding 4 of the partners issue: acme names the plant's next lot in a shipment of its
    own before the plant makes it; once the plant makes it (and corrects the run, as plants
    do), the lot is the plant's, and acme may not trace it either way."""
    world, ledger = make_world(tmp_path)
    next_lot = "01/09520000000028/10/NEXT-1"
    try:
        bait = shipment("acme", gtin_=GTIN_B)
        bait.shipment.lots[0].lot.lot = "NEXT-1"
        ledger.append(signed(bait, world.keys["acme"]))
        made = _run(next_lot)
        ledger.append(signed(made, world.keys["plant"]))
        fix = records_pb2.Record(record_id=f"fix-{made.record_id}", submitter="plant")
        fix.created_at.GetCurrentTime()
        fix.correction.corrects_record_id, fix.correction.reason = made.record_id, "routine"
        fix.correction.corrected.CopyFrom(made)
        ledger.append(signed(fix, world.keys["plant"]))
        live = LiveIndex(ledger)
        assert live.wait_for(ledger.size)
        service = TraceService(live)
        service.trace(PLANT, next_lot, "up")
        for direction in ("up", "down"):
            with pytest.raises(PermissionDenied):
                service.trace(ACME, next_lot, direction)  # type: ignore[arg-type]
        live.close()
    finally:
        ledger.close()


def test_a_record_id_that_is_not_yours_and_one_that_does_not_exist_are_refused_alike(
    traced: SimpleNamespace,
) -> None:
    """Finding 5: NOT_FOUND against READ_NOT_ALLOWED told a partner which ids exist."""
    mine = traced.service.seq_of_record(
        ACME, traced.ledger.reader.records([traced.seqs["acme_ship"]])[traced.seqs["acme_ship"]].record_id
    )
    assert mine == traced.seqs["acme_ship"]
    globex_rid = traced.ledger.reader.records([traced.seqs["globex_ship"]])[traced.seqs["globex_ship"]].record_id
    answers = []
    for rid, submitter in ((globex_rid, "globex"), ("no-such-id", "globex"), ("no-such-id", "")):
        with pytest.raises(PermissionDenied) as refused:
            traced.service.seq_of_record(ACME, rid, submitter)
        answers.append((refused.value.reason, refused.value.message.replace(repr(rid), "ID")))
    assert len(set(answers)) == 1


def test_a_partner_sees_one_step_down_and_qa_the_whole_chain(demo_dir: Path) -> None:
    """One up, one down: the dairy that supplied the milk learns who made something of it, not
    the plant's customers; QA sees every consignee."""
    from lotledger.ledger.log import Ledger
    from lotledger.signing.keys import SigningKey as Key

    ledger = Ledger(demo_dir, Key.load(demo_dir / "keys" / "log.key"))
    live = LiveIndex(ledger)
    try:
        assert live.wait_for(ledger.size)
        service = TraceService(live)
        dairy = Caller(tls=True, participant="dairy", role="supplier")
        theirs = service.trace(dairy, MILK, "down")
        whole = service.trace(QA, MILK, "down")
        reached = {s.to_participant for s in whole.shipments}
        assert {"shop-a", "cafe-d"} <= reached
        assert not {"shop-a", "cafe-d"} & {s.to_participant for s in theirs.shipments}
        assert len(theirs.lots) < len(whole.lots)
        with pytest.raises(PermissionDenied) as refused:  # a code of another's, and no code at all, alike
            service.recall(dairy, [], ["NO-SUCH-CODE"], "")
        assert refused.value.field == "supplier_lot_codes"
    finally:
        live.close()
        ledger.close()
