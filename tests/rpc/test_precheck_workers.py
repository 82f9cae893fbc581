"""Large AppendStream messages are prechecked in worker processes (lotledger.rpc.workers): each
record gets the answer the server's own threads would give it, in stream order; a worker that
dies costs no record; a server killed with SIGKILL leaves no worker behind."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

from helpers import free_port, make_world, shipment, signed, start_server

from lotledger.ledger.core.admission import Admitted
from lotledger.ledger.tlog.entries import AppendResult
from lotledger.rpc.client import LedgerClient, StreamRefusal
from lotledger.rpc.workers import Settings, check_chunk
from lotledger.signing.keys import SigningKey
from lotledger.v1 import ledger_service_pb2 as pb
from lotledger.v1 import records_pb2


def mixed_message(keys: dict[str, SigningKey]) -> tuple[list[records_pb2.SignedRecord], list[str | None]]:
    """40 records, one in four refused at precheck or admission for a different reason; and
    the reason each one's answer must carry (None: appended)."""
    out: list[records_pb2.SignedRecord] = []
    reasons: list[str | None] = []
    stranger = SigningKey.generate()
    for i in range(40):
        s = signed(shipment("acme"), keys["acme"])
        reason = None
        if i % 8 == 3:  # the signature does not verify
            s.signature = bytes(64)
            reason = "BAD_SIGNATURE"
        elif i % 8 == 5:  # not a Record at all
            s.record_bytes = b"\xff\xff\xff"
            reason = "MALFORMED"
        elif i % 8 == 7:  # a key nobody registered: unknown at precheck, refused at admission
            s = signed(shipment("acme"), stranger)
            reason = "UNKNOWN_KEY"
        elif i % 8 == 1:  # created an hour in the future
            record = shipment("acme")
            record.created_at.FromDatetime(datetime.now(UTC) + timedelta(hours=1))
            s = signed(record, keys["acme"])
            reason = "FUTURE_TIME"
        out.append(s)
        reasons.append(reason)
    return out, reasons


def test_the_workers_refuse_what_the_server_threads_refuse(tmp_path: Path) -> None:
    world, ledger = make_world(tmp_path)
    try:
        records, _ = mixed_message(world.keys)
        registry = ledger.registry
        keys = {s.key_id: registry.public_key(s.key_id) for s in records}
        settings = Settings(datetime.now(UTC), ledger.config.max_skew, ledger.config.max_age, registry.rules)
        data = pb.AppendStreamRequest(signed_records=records).SerializeToString()
        in_worker = check_chunk(data, 0, len(records), keys, settings)
        for s, outcome in zip(records, in_worker, strict=True):
            try:
                here: Admitted | Exception = ledger.precheck(s)
            except Exception as e:  # noqa: BLE001 - compared below
                here = e
            if isinstance(here, Admitted):
                assert outcome is None
            else:
                assert outcome is not None
                assert (type(outcome), outcome.reason, outcome.field) == (type(here), here.reason, here.field)  # type: ignore[attr-defined]
                if here.reason != "FUTURE_TIME":  # type: ignore[attr-defined]  (that message names the clock)
                    assert str(outcome) == str(here)
    finally:
        ledger.close()


def test_a_large_stream_is_prechecked_by_workers_and_answered_in_order(
    serve: Callable[..., SimpleNamespace],
) -> None:
    s = serve(append_rate=1e6, append_burst=10**6)
    records, reasons = mixed_message(s.world.keys)
    before = s.ledger.size
    outcomes = list(s.client().append_stream(iter(records), batch=40))
    assert s.server.precheck_workers._workers, "a message of 40 records goes to the workers"
    seq = before
    for outcome, reason in zip(outcomes, reasons, strict=True):
        if reason is None:
            assert isinstance(outcome, AppendResult) and outcome.seq == seq and not outcome.duplicate
            seq += 1
        else:
            assert isinstance(outcome, StreamRefusal) and outcome.error.reason == reason
    assert s.ledger.size == seq
    # Resent: every record appended answers as a duplicate, every refusal again with its reason.
    again = list(s.client().append_stream(iter(records), batch=40))
    for first, second in zip(outcomes, again, strict=True):
        if isinstance(first, AppendResult):
            assert isinstance(second, AppendResult) and second.duplicate and second.seq == first.seq
        else:
            assert isinstance(second, StreamRefusal) and second.error.reason == first.error.reason
    assert s.ledger.size == seq


def test_a_killed_worker_costs_no_record(serve: Callable[..., SimpleNamespace]) -> None:
    s = serve(append_rate=1e6, append_burst=10**6)
    acme = s.world.keys["acme"]
    client = s.client()
    assert all(isinstance(o, AppendResult) for o in client.append_stream(signed(shipment(), acme) for _ in range(40)))
    pids = [w.process.pid for w in s.server.precheck_workers._workers]
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    before = s.ledger.size
    outcomes = list(client.append_stream((signed(shipment(), acme) for _ in range(200)), batch=50))
    assert [o.seq for o in outcomes if isinstance(o, AppendResult)] == list(range(before, before + 200))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and {w.process.pid for w in s.server.precheck_workers._workers} & set(pids):
        time.sleep(0.05)
    assert not {w.process.pid for w in s.server.precheck_workers._workers} & set(pids)


def _children(pid: int) -> list[int]:
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            found += [int(c) for c in f.read().split()]
    return found


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_server_killed_with_sigkill_leaves_no_worker(tmp_path: Path) -> None:
    world, ledger = make_world(tmp_path)
    ledger.close()
    port = free_port()
    proc = start_server(world.data_dir, port)
    try:
        with LedgerClient(f"127.0.0.1:{port}") as client:
            outcomes = list(client.append_stream(signed(shipment(), world.keys["acme"]) for _ in range(100)))
        assert all(isinstance(o, AppendResult) for o in outcomes)
        workers = _children(proc.pid)
        assert workers, "the server started its precheck workers"
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_running(w) for w in workers):
        time.sleep(0.05)
    assert not any(_running(w) for w in workers)


def test_small_messages_start_no_worker(serve: Callable[..., SimpleNamespace]) -> None:
    s = serve()
    outcomes = list(s.client().append_stream((signed(shipment(), s.world.keys["acme"]) for _ in range(30)), batch=10))
    assert all(isinstance(o, AppendResult) for o in outcomes)
    assert not s.server.precheck_workers._workers
