"""A full disk under a live server: appends are refused as RESOURCE_EXHAUSTED with the stable
reason DISK_FULL (not INTERNAL), reads go on, SIGTERM stops the server cleanly (its trace index
snapshot, written at stop, fails too), and nothing it acknowledged is lost. The disk fills for
real (RLIMIT_FSIZE on the server process: the failed and short writes a full disk gives LMDB);
MDB_MAP_FULL, the other way LMDB runs out of room, in process with a small map."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import grpc
import pytest
from cli_helpers import run
from disk_full import serve_process, wait_serving
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from helpers import ORIGIN, free_port, make_world, shipment, signed

from lotledger.ledger.errors import ResourceExhausted
from lotledger.ledger.log import Ledger, LedgerConfig
from lotledger.rpc.client import LedgerClient, StreamRefusal
from lotledger.rpc.server import LedgerServer
from lotledger.signing.note import NoteSigner
from lotledger.v1 import ledger_service_pb2 as pb
from lotledger.v1 import ledger_service_pb2_grpc as pb_grpc
from lotledger.v1 import records_pb2


def reason_of(err: grpc.RpcError) -> str:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None and status.details, "the error carries no google.rpc.Status"
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    return info.reason


def test_a_full_disk_refuses_appends_and_loses_nothing(tmp_path: Path) -> None:
    world, ledger = make_world(tmp_path)
    ledger.close()
    key = world.keys["acme"]
    ledger = Ledger(world.data_dir, world.log_key, LedgerConfig(checkpoint_interval=60))
    for future in [ledger.submit(signed(shipment(record_id=f"o{i}"), key)) for i in range(3000)]:
        future.result(60)
    ledger.close()
    LedgerServer(world.data_dir, "127.0.0.1:0").start().stop(grace=1)  # a trace index snapshot on disk
    ledger_size = (world.data_dir / "ledger" / "data.mdb").stat().st_size
    index_size = (world.data_dir / "index" / "data.mdb").stat().st_size
    # Room for some appends, and less than the snapshot has: the one written at stop fails too.
    assert index_size > ledger_size + 32 * 1024, (ledger_size, index_size)
    limit = ledger_size + 32 * 1024
    port = free_port()
    proc = serve_process(world.data_dir, port, limit=limit)
    if not wait_serving(proc, port):
        # Seen once in a full-suite run (of many): the capped process aborted (SIGABRT) before it
        # served. Not understood yet; one retry keeps this test about the disk filling later.
        first = f"first start: exit {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}"
        port = free_port()
        proc = serve_process(world.data_dir, port, limit=limit)
    else:
        first = ""
    try:
        assert wait_serving(proc, port), first + (proc.stderr.read() if proc.stderr else "")
        acked: dict[str, tuple[int, bytes]] = {}
        with LedgerClient(f"127.0.0.1:{port}") as client:
            stub = pb_grpc.LedgerServiceStub(client.channel)
            for i in range(5000):
                record = signed(shipment(record_id=f"fill-{i:05d}"), key)
                try:
                    r = stub.Append(pb.AppendRequest(signed_record=record), timeout=10).result
                except grpc.RpcError as e:
                    assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (e.code(), e.details())
                    assert reason_of(e) == "DISK_FULL"
                    break
                acked[f"fill-{i:05d}"] = (r.seq, r.leaf_hash)
            else:
                pytest.fail("the disk never filled")
            assert len(acked) > 10
            # Nearly full: in a stream, each record is committed (a small write may fit in pages
            # LMDB has freed) or refused on its own, with the same reason.
            more = [signed(shipment(record_id=f"more-{i}"), key) for i in range(400)]  # enough that freed pages run out
            refused = 0
            for record, outcome in zip(more, client.append_stream(more), strict=True):
                if isinstance(outcome, StreamRefusal):
                    assert outcome.error.reason == "DISK_FULL", outcome
                    refused += 1
                else:
                    acked[records_pb2.Record.FromString(record.record_bytes).record_id] = (
                        outcome.seq,
                        outcome.leaf_hash,
                    )
            assert refused
            # Reads go on.
            some = next(iter(acked))
            assert client.get_entry(record_id=some).seq == acked[some][0]
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        stderr = proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in stderr, stderr
    assert "disk is full" in stderr
    assert code == 0 or (code == 1 and stderr.strip().splitlines()[-1].startswith("error: stopped")), (code, stderr)

    # With room again: every acknowledged record is there, once, and appends work.
    proc = serve_process(world.data_dir, port)
    try:
        assert wait_serving(proc, port), proc.stderr.read() if proc.stderr else ""
        with LedgerClient(f"127.0.0.1:{port}") as client:
            for record_id, (seq, leaf) in acked.items():
                got = client.get_entry(record_id=record_id)
                assert (got.seq, got.leaf_hash) == (seq, leaf)
            after = client.append(signed(shipment(record_id="after"), key))
            assert after.seq == 3004 + len(acked)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    vkey = NoteSigner(ORIGIN, world.log_key).verifier_key
    report = json.loads(run("verify", "--log-key", vkey, "--data-dir", str(world.data_dir), "--json").stdout)
    assert report["ok"] and report["tree_size"] == 3005 + len(acked)


def test_a_full_map_is_disk_full_too(tmp_path: Path) -> None:
    world, ledger = make_world(tmp_path)
    ledger.close()
    key = world.keys["acme"]
    small = Ledger(world.data_dir, world.log_key, LedgerConfig(map_size=1 << 20, checkpoint_interval=0.05))
    acked = {}
    try:
        for i in range(5000):
            record = signed(shipment(record_id=f"map-{i:05d}"), key)
            try:
                acked[f"map-{i:05d}"] = small.append(record).seq
            except ResourceExhausted as e:
                assert e.reason == "DISK_FULL"
                assert "map" in e.message
                break
        else:
            pytest.fail("the map never filled")
    finally:
        small.close()
    big = Ledger(world.data_dir, world.log_key)
    try:
        for record_id, seq in acked.items():
            assert big.seq_of(record_id) == seq
        assert big.size == 4 + len(acked)
    finally:
        big.close()
