"""`lotledger init` on a nearly full disk: the data directory appears whole (keys, settings,
the genesis entry and its checkpoint) or not at all, and `init` can simply be run again. A
directory without its genesis entry (what an interrupted init of an earlier version left) is
refused by `serve`, so no client can register itself as the log's first admin."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import run
from disk_full import lotledger, serve_process, wait_serving
from helpers import free_port, registration, signed

from lotledger.ledger.core import rules
from lotledger.ledger.errors import StorageError, Unauthenticated
from lotledger.ledger.log import Ledger
from lotledger.ledger.store import Store, u64
from lotledger.rpc.client import LedgerClient
from lotledger.signing.keys import SigningKey
from lotledger.v1 import records_pb2

ORIGIN = "init.example.com/lotledger"


def assert_whole(data: Path) -> None:
    """A complete data directory: keys, verifier key, and a log that verifies from entry 0."""
    for name in ("keys/log.key", "keys/log.key.pub", "keys/admin.key", "keys/admin.key.pub", "log.vkey"):
        assert (data / name).is_file(), name
    report = json.loads(run("verify", "--log-key", str(data / "log.vkey"), "--data-dir", str(data), "--json").stdout)
    assert report["ok"] and report["tree_size"] == 1


def test_init_on_a_full_disk_is_all_or_nothing(tmp_path: Path) -> None:
    # From "no key file fits" through the LMDB environment, its first commit and the genesis
    # entry, to "everything fits" (an older init failed between the settings and entry 0 from
    # about 36 KiB to 60 KiB, and left the directory behind).
    limits = [0, 8192, 33000, *range(36864, 73729, 4096), 45000, 50000, 58000]
    disk_full = 0
    for limit in limits:
        data = tmp_path / f"data-{limit}"
        result = lotledger("init", str(data), "--origin", ORIGIN, limit=limit)
        assert "Traceback" not in result.stderr, (limit, result.stderr)
        if result.returncode == 0:
            assert_whole(data)
            continue
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (limit, result.stderr)
        disk_full += "DISK_FULL" in lines[0]
        assert not data.exists(), f"init failed at {limit} bytes and left {sorted(data.rglob('*'))}"
        assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("data-")) == [], (
            f"init failed at {limit} bytes and left its temporary directory"
        )
        run("init", str(data), "--origin", ORIGIN)  # simply run again, with room
        assert_whole(data)
    assert disk_full >= 3, "the limits must reach the ledger's own writes, not only the key files"


def remnant(tmp_path: Path) -> tuple[Path, SigningKey]:
    """What an interrupted `init` of an earlier version left: the keys and the settings
    (origin, log key) committed, and no genesis entry."""
    data = tmp_path / "remnant"
    (data / "keys").mkdir(parents=True)
    log_key, admin = SigningKey.generate(), SigningKey.generate()
    log_key.save_pair(data / "keys" / "log.key")
    admin.save_pair(data / "keys" / "admin.key")
    store = Store(data / "ledger")
    with store.write() as txn:
        store.put(txn, "meta", b"origin", ORIGIN.encode())
        store.put(txn, "meta", b"log_public_key", log_key.public.raw)
    store.close()
    return data, log_key


def self_registered_admin() -> records_pb2.SignedRecord:
    mallory = SigningKey.generate()
    return signed(registration("mallory", "mallory", records_pb2.ROLE_ADMIN, mallory), mallory)


def test_serve_refuses_a_directory_without_its_genesis_entry(tmp_path: Path) -> None:
    data, _ = remnant(tmp_path)
    port = free_port()
    proc = serve_process(data, port)
    try:
        if wait_serving(proc, port):
            with LedgerClient(f"127.0.0.1:{port}") as client:
                try:
                    result = client.append(self_registered_admin())
                except Unauthenticated:
                    pytest.fail("serve started on a log without its genesis entry")
                pytest.fail(f"serve started on a log without genesis, and a stranger became admin at {result.seq}")
        assert proc.returncode not in (0, None)
        stderr = proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert "Traceback" not in stderr
    assert "genesis" in stderr and "lotledger init" in stderr, stderr
    store = Store(data / "ledger", readonly=True)
    try:
        with store.read() as txn:
            assert store.get(txn, "entries", u64(0)) is None, "the refusal must write nothing"
    finally:
        store.close()


def test_a_ledger_never_opens_without_its_genesis_entry(tmp_path: Path) -> None:
    data, log_key = remnant(tmp_path)
    with pytest.raises(StorageError, match="genesis"):
        Ledger(data, log_key)
    with pytest.raises(StorageError, match="lotledger init"):
        Ledger(tmp_path / "nothing-here", log_key)
    assert not (tmp_path / "nothing-here").exists(), "opening must not create a store"


def test_init_writes_the_genesis_entry_with_the_current_rules(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run("init", str(data), "--origin", ORIGIN)
    assert_whole(data)
    store = Store(data / "ledger", readonly=True)
    try:
        with store.read() as txn:
            entry = records_pb2.Entry.FromString(store.get(txn, "entries", u64(0)) or b"")
            assert store.get(txn, "checkpoints", u64(1)) is not None
    finally:
        store.close()
    genesis = records_pb2.Record.FromString(entry.signed_record.record_bytes)
    assert genesis.participant_registered.role == records_pb2.ROLE_ADMIN
    assert genesis.participant_registered.rules_version == rules.CURRENT


def test_only_the_genesis_key_is_ever_a_self_registered_admin(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run("init", str(data), "--origin", ORIGIN)
    from lotledger.rpc.server import load_log_key

    ledger = Ledger(data, load_log_key(data / "keys" / "log.key"))
    try:
        with pytest.raises(Unauthenticated):
            ledger.append(self_registered_admin())
        assert ledger.size == 1
    finally:
        ledger.close()


def test_init_refuses_a_directory_that_is_not_empty_and_takes_an_empty_one(tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine\n")
    result = run("init", str(busy), "--origin", ORIGIN, ok=False)
    assert result.exit_code == 2 and "not empty" in result.stderr
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    run("init", str(empty), "--origin", ORIGIN)
    assert_whole(empty)
    again = run("init", str(empty), "--origin", ORIGIN, ok=False)
    assert again.exit_code == 2 and "already holds a ledger" in again.stderr
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
