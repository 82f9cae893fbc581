"""Nothing acknowledged is ever lost: a real server process is killed with SIGKILL in the
middle of a stream, restarted, and every record it acknowledged is there, once, and the log
still verifies. kill -9 cannot prove fsync, so the environment's flags are asserted too."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from helpers import ORIGIN, free_port, make_world, shipment, signed, start_server

from lotledger.ledger.errors import LedgerError, StorageError
from lotledger.ledger.store import Store
from lotledger.ledger.tlog.entries import AppendResult
from lotledger.ledger.verify.verifier import LogVerifier, open_signed_checkpoint
from lotledger.rpc.client import LedgerClient, StreamRefusal
from lotledger.signing.note import NoteSigner, NoteVerifier


def test_store_is_opened_durable(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    flags = store.flags()
    store.close()
    assert flags["sync"] is True
    assert flags["metasync"] is True
    assert flags["writemap"] is False
    assert flags["map_async"] is False


@pytest.mark.slow
def test_sigkill_mid_stream_loses_no_acknowledged_entry(tmp_path: Path) -> None:
    world, ledger = make_world(tmp_path)
    ledger.close()
    key = world.keys["acme"]
    records = [signed(shipment(record_id=f"kill-{i:05d}"), key) for i in range(6000)]
    port = free_port()
    proc = start_server(world.data_dir, port)
    acked: dict[str, AppendResult] = {}
    stream_error: list[BaseException] = []

    def stream() -> None:
        client = LedgerClient(f"127.0.0.1:{port}")
        try:
            for i, outcome in enumerate(client.append_stream(iter(records))):
                assert not isinstance(outcome, StreamRefusal), outcome
                acked[f"kill-{i:05d}"] = outcome
        except (StorageError, LedgerError) as e:
            stream_error.append(e)
        finally:
            client.close()

    t = threading.Thread(target=stream)
    t.start()
    deadline = time.monotonic() + 60
    while len(acked) < 500 and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    t.join(30)
    assert 500 <= len(acked) < len(records), "the kill must land mid-stream"
    assert stream_error, "the client must see the stream break"

    proc = start_server(world.data_dir, port)
    try:
        with LedgerClient(f"127.0.0.1:{port}") as client:
            for record_id, result in acked.items():
                got = client.get_entry(record_id=record_id)
                assert got.seq == result.seq and got.leaf_hash == result.leaf_hash
            # Resending everything is idempotent: acknowledged records come back as duplicates.
            outcomes = list(client.append_stream(iter(records)))
            for i, outcome in enumerate(outcomes):
                assert isinstance(outcome, AppendResult)
                rid = f"kill-{i:05d}"
                if rid in acked:
                    assert outcome.duplicate and outcome.seq == acked[rid].seq
            time.sleep(0.2)
            note = client.checkpoint().note
            entries = [e for _, e in client.list_entries(0, 0)]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    verifier = LogVerifier()
    vkey = NoteVerifier.from_string(NoteSigner(ORIGIN, world.log_key).verifier_key)
    checkpoint = open_signed_checkpoint(note, vkey)
    for entry in entries[: checkpoint.size]:
        verifier.feed(entry)
    verifier.check_checkpoint(checkpoint)
    assert checkpoint.size == 4 + len(records)
