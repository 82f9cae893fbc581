"""A data directory is checked before it is trusted. A truncated data.mdb is refused (with a
message naming it) before LMDB maps it, where reading past its end would kill the process
with SIGBUS. The derived indexes (record_ids, tree, admin_seqs, meta, checkpoints) are checked
against the entries by `verify --data-dir`, which names what is damaged; the server checks
what is cheap at start and refuses a damaged directory, so a damaged record_ids index cannot
let it accept a replay that would make the log fail verification for ever."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import run
from disk_full import lotledger, serve_process, wait_serving
from helpers import ORIGIN, World, free_port, make_world, shipment, signed

from lotledger.ledger.errors import StorageError
from lotledger.ledger.log import Ledger
from lotledger.ledger.store import Store, from_u64, tree_key, u64
from lotledger.rpc.client import LedgerClient
from lotledger.signing.note import NoteSigner
from lotledger.v1 import records_pb2

SHIPMENTS = 40


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[World, str]:
    """A closed ledger of 4 + SHIPMENTS entries (admin entries 0-3), checkpointed at its size."""
    world, ledger = make_world(tmp_path_factory.mktemp("pristine"))
    try:
        for i in range(SHIPMENTS):
            ledger.append(signed(shipment(record_id=f"ship-{i:03d}"), world.keys["acme"]))
        ledger.sign_checkpoint_now()
    finally:
        ledger.close()
    return world, NoteSigner(ORIGIN, world.log_key).verifier_key


def copy_of(pristine: tuple[World, str], tmp_path: Path) -> Path:
    data = tmp_path / "copy"
    shutil.copytree(pristine[0].data_dir, data)
    return data


def record_keys(store: Store, txn: Any, seq: int) -> list[bytes]:
    """The record_ids keys that name entry `seq`, its own record key first."""
    keys = [k for k, v in store.iterate(txn, "record_ids") if from_u64(v) == seq]
    return sorted(keys, key=lambda k: k.startswith(b"#"))


def damage(data: Path, harm: Callable[[Store, Any], None]) -> None:
    store = Store(data / "ledger")
    try:
        with store.write() as txn:
            harm(store, txn)
    finally:
        store.close()


def verify_data_dir(data: Path, vkey: str) -> Any:
    return run("verify", "--log-key", vkey, "--data-dir", str(data), ok=False)


# ---- a truncated data.mdb ------------------------------------------------------------------


def test_a_truncated_data_file_is_refused_not_mapped(pristine: tuple[World, str], tmp_path: Path) -> None:
    data = copy_of(pristine, tmp_path)
    mdb = data / "ledger" / "data.mdb"
    with mdb.open("r+b") as f:
        f.truncate(mdb.stat().st_size // 2)
    result = lotledger("verify", "--log-key", pristine[1], "--data-dir", str(data))
    assert result.returncode in (1, 3), (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(mdb) in lines[0], result.stderr
    assert "truncated" in lines[0]

    port = free_port()
    proc = serve_process(data, port)
    try:
        assert not wait_serving(proc, port), "serve started on a truncated data.mdb"
        assert proc.returncode in (1, 3), proc.returncode
        stderr = proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in stderr and str(mdb) in stderr and "truncated" in stderr, stderr


@pytest.mark.parametrize(
    ("contents", "says"),
    [
        (b"", "empty"),
        (b"\0" * 100, "not an LMDB file"),
        (b"\x17" * 20000, "not an LMDB file"),
    ],
    ids=["empty", "short", "no meta pages"],
)
def test_a_data_file_that_is_no_lmdb_file_is_refused(tmp_path: Path, contents: bytes, says: str) -> None:
    (tmp_path / "ledger").mkdir()
    (tmp_path / "ledger" / "data.mdb").write_bytes(contents)
    for readonly in (True, False):
        with pytest.raises(StorageError, match=says) as info:
            Store(tmp_path / "ledger", readonly=readonly)
        assert str(tmp_path / "ledger" / "data.mdb") in str(info.value)
    assert (tmp_path / "ledger" / "data.mdb").read_bytes() == contents, "a refused file is never written"


def test_an_lmdb_file_of_another_format_version_is_refused(pristine: tuple[World, str], tmp_path: Path) -> None:
    data = copy_of(pristine, tmp_path)
    mdb = data / "ledger" / "data.mdb"
    blob = bytearray(mdb.read_bytes())
    blob[20] = 7  # mm_version of the first meta page
    mdb.write_bytes(bytes(blob))
    with pytest.raises(StorageError, match="version 7"):
        Store(data / "ledger", readonly=True)


# ---- damaged derived indexes ---------------------------------------------------------------


def _drop_record_id(store: Store, txn: Any) -> None:
    txn.delete(record_keys(store, txn, 20)[0], db=store.dbs["record_ids"])


def _misdirect_record_id(store: Store, txn: Any) -> None:
    store.put(txn, "record_ids", record_keys(store, txn, 20)[0], u64(21))


def _extra_record_id(store: Store, txn: Any) -> None:
    store.put(txn, "record_ids", b"ghost", u64(5))


def _inner_node(store: Store, txn: Any) -> None:
    store.put(txn, "tree", tree_key(2, 1), b"\x55" * 32)  # inside the perfect subtree of leaves 0-31


def _frontier_node(store: Store, txn: Any) -> None:
    store.put(txn, "tree", tree_key(2, 10), b"\x55" * 32)  # leaves 40-43: on the right edge of the tree of 44


def _leaf(store: Store, txn: Any) -> None:
    store.put(txn, "tree", tree_key(0, 9), b"\x55" * 32)


def _last_leaf(store: Store, txn: Any) -> None:
    size = from_u64(store.get(txn, "meta", b"size") or b"")
    store.put(txn, "tree", tree_key(0, size - 1), b"\x55" * 32)


def _extra_node(store: Store, txn: Any) -> None:
    store.put(txn, "tree", tree_key(0, 4 + SHIPMENTS), b"\x55" * 32)


def _drop_admin_seq(store: Store, txn: Any) -> None:
    txn.delete(u64(2), db=store.dbs["admin_seqs"])


def _extra_admin_seq(store: Store, txn: Any) -> None:
    store.put(txn, "admin_seqs", u64(7), b"")


def _size_short(store: Store, txn: Any) -> None:
    store.put(txn, "meta", b"size", u64(4 + SHIPMENTS - 1))


def _size_long(store: Store, txn: Any) -> None:
    store.put(txn, "meta", b"size", u64(4 + SHIPMENTS + 1))


def _checkpoint_moved(store: Store, txn: Any) -> None:
    last = store.last(txn, "checkpoints")
    assert last is not None
    txn.delete(last[0], db=store.dbs["checkpoints"])
    store.put(txn, "checkpoints", u64(from_u64(last[0]) - 1), last[1])


DAMAGES: dict[str, tuple[Callable[[Store, Any], None], str, bool]] = {
    # name: (harm, the index the report names, whether the server's start check sees it)
    "record id dropped": (_drop_record_id, "record_ids", True),
    "record id points elsewhere": (_misdirect_record_id, "record_ids", False),
    "record id that no entry holds": (_extra_record_id, "record_ids", True),
    "inner tree node": (_inner_node, "tree", False),
    "tree node on the right edge": (_frontier_node, "tree", True),
    "leaf": (_leaf, "tree", False),
    "last leaf": (_last_leaf, "tree", True),
    "tree node past the log": (_extra_node, "tree", True),
    "admin entry left out": (_drop_admin_seq, "admin_seqs", False),
    "non-admin entry listed": (_extra_admin_seq, "admin_seqs", True),
    "size short": (_size_short, "meta", True),
    "size long": (_size_long, "meta", True),
    "checkpoint under the wrong size": (_checkpoint_moved, "checkpoints", True),
}


@pytest.mark.parametrize("name", sorted(DAMAGES))
def test_verify_data_dir_names_the_damaged_index(pristine: tuple[World, str], tmp_path: Path, name: str) -> None:
    harm, index, _ = DAMAGES[name]
    data = copy_of(pristine, tmp_path)
    assert verify_data_dir(data, pristine[1]).exit_code == 0
    damage(data, harm)
    result = verify_data_dir(data, pristine[1])
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert f"{index}:" in lines[0], lines[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize("name", sorted(n for n, (_, _, seen) in DAMAGES.items() if seen))
def test_the_ledger_refuses_to_open_a_damaged_directory(pristine: tuple[World, str], tmp_path: Path, name: str) -> None:
    harm, _, _ = DAMAGES[name]
    data = copy_of(pristine, tmp_path)
    damage(data, harm)
    with pytest.raises(StorageError, match="lotledger verify --data-dir"):
        Ledger(data, pristine[0].log_key)


def test_a_damaged_record_index_cannot_let_the_server_accept_a_replay(
    pristine: tuple[World, str], tmp_path: Path
) -> None:
    world, vkey = pristine
    data = copy_of(pristine, tmp_path)
    damage(data, _drop_record_id)
    port = free_port()
    proc = serve_process(data, port)
    try:
        if wait_serving(proc, port):
            with LedgerClient(f"127.0.0.1:{port}") as client:
                entry = records_pb2.Entry.FromString(client.get_entry(seq=20).entry)
                replay = client.append(entry.signed_record)
            pytest.fail(f"the server started and accepted entry 20 again as entry {replay.seq}")
        stderr = proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 3, proc.returncode
    assert "Traceback" not in stderr
    assert "record_ids" in stderr and "lotledger verify --data-dir" in stderr, stderr
    assert verify_data_dir(data, vkey).exit_code == 1
