"""The ledger core on a real LMDB environment: group commit, idempotency, checkpoints,
proofs from the stored tree, restart, and the key history."""

from __future__ import annotations

import itertools
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers import (
    ORIGIN,
    World,
    log_state,
    make_world,
    new_record,
    registration,
    revocation,
    shipment,
    signed,
)

from lotledger.ledger.errors import Conflict, InvalidRecord, PermissionDenied, StorageError, Unauthenticated
from lotledger.ledger.log import Ledger, LedgerConfig
from lotledger.ledger.tlog import merkle
from lotledger.ledger.verify.verifier import LogVerifier
from lotledger.signing.keys import SigningKey
from lotledger.signing.note import NoteVerifier, open_checkpoint
from lotledger.v1 import records_pb2


def test_genesis_registers_the_admin(world_ledger: tuple[World, Ledger]) -> None:
    world, ledger = world_ledger
    entry = records_pb2.Entry.FromString(ledger.entry(0)[0])
    assert entry.seq == 0 and entry.prev_hash == bytes(32)
    genesis = records_pb2.Record.FromString(entry.signed_record.record_bytes)
    assert genesis.participant_registered.role == records_pb2.ROLE_ADMIN
    assert genesis.participant_registered.public_key == world.admin.public.raw
    assert ledger.registry.participants["admin"].role == "admin"


def test_chain_links_each_entry_to_the_previous_leaf(world_ledger: tuple[World, Ledger]) -> None:
    world, ledger = world_ledger
    for _ in range(5):
        ledger.append(signed(shipment(), world.keys["acme"]))
    for seq in range(1, ledger.size):
        entry = records_pb2.Entry.FromString(ledger.entry(seq)[0])
        assert entry.prev_hash == merkle.leaf_hash(ledger.entry(seq - 1)[0])


def test_concurrent_appends_are_group_committed(world_ledger: tuple[World, Ledger]) -> None:
    world, ledger = world_ledger
    key = world.keys["acme"]
    batches = [[signed(shipment(), key) for _ in range(100)] for _ in range(8)]
    results: list[int] = []
    lock = threading.Lock()

    def worker(batch: list[records_pb2.SignedRecord]) -> None:
        futures = [ledger.submit(s) for s in batch]
        seqs = [f.result(30).seq for f in futures]
        with lock:
            results.extend(seqs)

    threads = [threading.Thread(target=worker, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == list(range(4, 804))
    with ledger.store.read() as txn:
        assert ledger.store.get(txn, "meta", b"size") == (804).to_bytes(8, "big")


def test_first_record_must_be_a_self_signed_admin(tmp_path: Path) -> None:
    log_key, admin, stranger = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    ledger = Ledger.initialize(tmp_path / "d", ORIGIN, log_key, admin)
    ledger.close()
    # A brand-new store with no genesis refuses anything else.
    from lotledger.ledger.store import Store

    store = Store(tmp_path / "e" / "ledger")
    with store.write() as txn:
        store.put(txn, "meta", b"origin", ORIGIN.encode())
    store.close()
    # A store with no genesis entry is not opened at all: only `initialize` writes entry 0, so
    # no client can register itself as the first admin (tests/cli/test_init_durable.py).
    with pytest.raises(StorageError, match="genesis"):
        Ledger(tmp_path / "e", log_key)
    # The genesis rule itself, for verifiers: an empty key history admits only a self-signed admin.
    from lotledger.ledger.core.admission import authorize, precheck
    from lotledger.ledger.core.registry import Registry

    with pytest.raises(Unauthenticated) as info:
        authorize(precheck(signed(shipment(), stranger), datetime.now(UTC), lambda _: None), Registry(), 0)
    assert info.value.reason == "GENESIS_REQUIRED"


def test_duplicates_in_one_batch(world_ledger: tuple[World, Ledger]) -> None:
    world, ledger = world_ledger
    key = world.keys["acme"]
    s = signed(shipment(record_id="same"), key)
    other = signed(shipment(record_id="same", amount="2"), key)
    f1, f2, f3 = ledger.submit(s), ledger.submit(s), ledger.submit(other)
    r1, r2 = f1.result(10), f2.result(10)
    assert r2.duplicate and r2.seq == r1.seq
    with pytest.raises(Conflict):
        f3.result(10)


def test_revoked_key_history(world_ledger: tuple[World, Ledger]) -> None:
    world, ledger = world_ledger
    key = world.keys["acme"]
    before = ledger.append(signed(shipment(), key))
    ledger.append(signed(revocation("admin", key.key_id), world.admin))
    state = log_state(ledger)
    with pytest.raises(Unauthenticated) as info:
        ledger.append(signed(shipment(), key))
    assert info.value.reason == "KEY_REVOKED"
    assert log_state(ledger) == state
    assert ledger.entry(before.seq)  # earlier records stay
    with pytest.raises(Conflict):
        ledger.append(signed(revocation("admin", key.key_id), world.admin))


def test_non_admin_cannot_register(world_ledger: tuple[World, Ledger]) -> None:
    world, ledger = world_ledger
    with pytest.raises(PermissionDenied):
        ledger.append(
            signed(registration("plant", "evil", records_pb2.ROLE_ADMIN, SigningKey.generate()), world.keys["plant"])
        )


def test_role_never_changes(world_ledger: tuple[World, Ledger]) -> None:
    world, ledger = world_ledger
    with pytest.raises(Conflict) as info:
        ledger.append(signed(registration("admin", "acme", records_pb2.ROLE_ADMIN, SigningKey.generate()), world.admin))
    assert info.value.reason == "ROLE_CHANGE"


def test_corrections(world_ledger: tuple[World, Ledger]) -> None:
    world, ledger = world_ledger
    original = shipment(record_id="ship-1")
    ledger.append(signed(original, world.keys["acme"]))

    def correction(submitter: str, target: str, body: records_pb2.Record) -> records_pb2.Record:
        record = new_record(submitter)
        record.correction.corrects_record_id, record.correction.reason = target, "wrong quantity"
        record.correction.corrected.CopyFrom(body)
        return record

    fixed = shipment(record_id="ship-1", amount="9")
    assert ledger.append(signed(correction("acme", "ship-1", fixed), world.keys["acme"])).seq > 0
    with pytest.raises(InvalidRecord):
        ledger.append(signed(correction("acme", "nope", fixed), world.keys["acme"]))
    stolen = correction("plant", "ship-1", shipment("plant", record_id="ship-1"))
    stolen.correction.corrects_submitter = "acme"  # record ids are the submitter's own (rules 2)
    with pytest.raises(PermissionDenied):
        ledger.append(signed(stolen, world.keys["plant"]))


def test_checkpoints_follow_the_cadence_and_all_are_kept(tmp_path: Path) -> None:
    world, ledger = make_world(tmp_path, LedgerConfig(checkpoint_interval=0.2))
    try:
        key = world.keys["acme"]
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.2:
            ledger.append(signed(shipment(), key))
        time.sleep(0.3)
        cps = ledger.checkpoints()
        assert 4 <= len(cps) <= 10, [c.size for c in cps]
        assert [c.size for c in cps] == sorted({c.size for c in cps})
        assert cps[-1].size == ledger.size, "the writer checkpoints the tail once the log goes quiet"
        verifier = NoteVerifier.from_string(ledger.log_verifier_key)
        for older, newer in itertools.pairwise(cps):
            a, b = open_checkpoint(older.note, verifier), open_checkpoint(newer.note, verifier)
            _, proof = ledger.consistency_proof(a.size, b.size)
            merkle.verify_consistency(a.size, b.size, a.root_hash, b.root_hash, proof)
        # Quiet log: no new checkpoints.
        n = len(ledger.checkpoints())
        time.sleep(0.5)
        assert len(ledger.checkpoints()) == n
    finally:
        ledger.close()


def test_proofs_from_the_store_match_an_in_memory_tree(world_ledger: tuple[World, Ledger]) -> None:
    world, ledger = world_ledger
    for _ in range(37):
        ledger.append(signed(shipment(), world.keys["acme"]))
    tree = merkle.MemoryTree()
    for seq in range(ledger.size):
        tree.append(merkle.leaf_hash(ledger.entry(seq)[0]))
    for size in (1, 2, 7, 16, 33, ledger.size):
        assert ledger.root(size) == tree.root(size)
        for seq in range(size):
            _, leaf, proof = ledger.inclusion_proof(seq, size)
            assert proof == tree.inclusion_proof(seq, size)
            merkle.verify_inclusion(seq, size, leaf, proof, tree.root(size))
        for old in range(1, size + 1):
            assert ledger.consistency_proof(old, size)[1] == tree.consistency_proof(old, size)


def test_restart_reloads_state_and_keeps_appending(tmp_path: Path) -> None:
    world, ledger = make_world(tmp_path)
    key = world.keys["acme"]
    for _ in range(10):
        ledger.append(signed(shipment(), key))
    state, registry_keys = log_state(ledger), set(ledger.registry.keys)
    ledger.close()
    reopened = Ledger(world.data_dir, world.log_key)
    try:
        assert log_state(reopened) == state
        assert set(reopened.registry.keys) == registry_keys
        reopened.append(signed(shipment(), key))
        verifier = LogVerifier()
        for _, chunk in reopened.entries(0, reopened.size):
            for e in chunk:
                verifier.feed(e)
        assert verifier.root() == reopened.root(reopened.size)
    finally:
        reopened.close()


def test_wrong_log_key_is_refused(tmp_path: Path) -> None:
    world, ledger = make_world(tmp_path)
    ledger.close()
    from lotledger.ledger.errors import StorageError

    with pytest.raises(StorageError):
        Ledger(world.data_dir, SigningKey.generate())


def test_one_writer_per_data_directory(tmp_path: Path) -> None:
    """A second writer on a served directory would keep its own head: it is refused, with the
    log unchanged, until the first one closes (a process's lock goes with it, kill -9 included)."""
    from lotledger.ledger.errors import StorageError

    world, ledger = make_world(tmp_path)
    try:
        before = log_state(ledger)
        # In one process py-lmdb refuses the second open itself; across processes the writer
        # lock does (tests/cli/test_cli.py, test_serve_refuses_a_served_directory...).
        with pytest.raises(StorageError, match="in use by another lotledger process|already open"):
            Ledger(world.data_dir, world.log_key)
        assert log_state(ledger) == before
        ledger.append(signed(shipment(), world.keys["acme"]))  # the first writer is unaffected
    finally:
        ledger.close()
    Ledger(world.data_dir, world.log_key).close()  # free again once closed
