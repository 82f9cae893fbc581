"""`serve --publish DIR` (ledger/publish.py) on real servers: DIR is always a complete tlog-tiles
log of the checkpoint it holds, byte-identical to `export-tiles` for that size; a failing
publication disk never holds back an acknowledgement; a server killed with SIGKILL while
publishing repairs DIR when it starts again; a DIR of another log, or ahead of the ledger, is
refused before anything is served."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cli_helpers import run
from helpers import free_port, make_world, shipment, signed

from lotledger.ledger.errors import RequestError
from lotledger.ledger.log import LedgerConfig
from lotledger.ledger.tlog import merkle, tiles
from lotledger.rpc.client import LedgerClient, StreamRefusal
from lotledger.rpc.server import LedgerServer
from lotledger.signing.keys import SigningKey
from lotledger.signing.note import Checkpoint, NoteVerifier, open_checkpoint


def files_of(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def grow(address: str, key: SigningKey, prefix: str, n: int) -> None:
    records = [signed(shipment(record_id=f"{prefix}-{i:05d}"), key) for i in range(n)]
    with LedgerClient(address, timeout=120) as client:
        outcomes = list(client.append_stream(iter(records)))
    assert not [o for o in outcomes if isinstance(o, StreamRefusal)]


def check_dir(root: Path, vkey: str, address: str | None = None) -> Checkpoint:
    """What a tlog-tiles client does: the checkpoint verifies with the log key, the tiles
    rebuild its root, every bundle matches level 0 (and the server's entries, given one)."""
    cp = open_checkpoint((root / "checkpoint").read_bytes(), NoteVerifier.from_string(vkey))
    reader = tiles.TileReader(cp.size, lambda p: (root / p).read_bytes())
    assert reader.root() == cp.root_hash
    bundled = [e for n in range((cp.size + 255) // 256) for e in reader.entries(n)]
    assert len(bundled) == cp.size
    if address is not None:
        with LedgerClient(address) as client:
            assert bundled == [e for _, e in client.list_entries(0, cp.size)]
    last = cp.size - 1
    merkle.verify_inclusion(last, cp.size, merkle.leaf_hash(bundled[last]), reader.inclusion_proof(last), cp.root_hash)
    return cp


def same_as_export(published: Path, exported: Path) -> None:
    """Every file export-tiles wrote is in the published DIR with the same bytes; DIR holds
    nothing else but older partial versions of tiles still partial (which readers of older
    checkpoints may be fetching)."""
    pub, exp = files_of(published), files_of(exported)
    assert exp, "export wrote nothing"
    for path, data in exp.items():
        assert pub.get(path) == data, path
    extra = {p for p in set(pub) - set(exp) if not Path(p).name.startswith(".")}  # hidden: never served
    assert all(".p/" in p for p in extra), sorted(extra)[:5]


def test_published_tiles_are_byte_identical_to_export_tiles(tmp_path: Path) -> None:
    world, ledger = make_world(tmp_path)
    ledger.close()
    out = tmp_path / "pub"
    server = LedgerServer(
        world.data_dir, "127.0.0.1:0", config=LedgerConfig(checkpoint_interval=0.05), publish=out
    ).start()
    vkey = server.ledger.log_verifier_key
    try:
        assert server.publisher is not None
        for prefix, n in (("a", 250), ("b", 600), ("c", 70)):  # crosses full tiles at 256 and 512
            grow(server.address, world.keys["acme"], prefix, n)
            cp = server.ledger.sign_checkpoint_now()
            assert server.publisher.wait_for(cp.size), server.publisher.error
            exported = tmp_path / f"export-{prefix}"
            run("export-tiles", str(exported), "--server", server.address, "--quiet", "--log-key", vkey)
            assert (out / "checkpoint").read_bytes() == (exported / "checkpoint").read_bytes()
            same_as_export(out, exported)
            check_dir(out, vkey, server.address)
        assert check_dir(out, vkey).size == 4 + 250 + 600 + 70
        # Superseded partials went once their full tile existed (the spec allows it).
        assert not (out / "tile/0/000.p").exists() and not (out / "tile/entries/001.p").exists()
    finally:
        server.stop(grace=1)
    # stop() published the last checkpoint.
    assert check_dir(out, vkey).size == 924


def test_a_failing_publication_disk_never_holds_back_an_ack(tmp_path: Path) -> None:
    world, ledger = make_world(tmp_path)
    ledger.close()
    out = tmp_path / "pub"
    server = LedgerServer(
        world.data_dir, "127.0.0.1:0", config=LedgerConfig(checkpoint_interval=0.05), publish=out
    ).start()
    vkey = server.ledger.log_verifier_key
    try:
        publisher = server.publisher
        assert publisher is not None and publisher.wait_for(4)
        before = check_dir(out, vkey).size
        # The bundles' directory becomes a file: every write under it fails (as root too).
        shutil.rmtree(out / "tile" / "entries")
        (out / "tile" / "entries").write_bytes(b"in the way")
        started = time.monotonic()
        grow(server.address, world.keys["acme"], "f", 300)  # every record acknowledged
        assert time.monotonic() - started < 30
        assert server.ledger.size == 304
        deadline = time.monotonic() + 10
        while publisher.error is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert isinstance(publisher.error, OSError)
        assert (out / "checkpoint").exists() and publisher.size == before  # DIR kept its last checkpoint
        # Put the directory back: the publisher catches up by itself.
        (out / "tile" / "entries").unlink()
        (out / "tile" / "entries").mkdir()
        assert publisher.wait_for(304, timeout=30)
    finally:
        server.stop(grace=1)
    assert publisher.error is None
    # What it wrote after the outage (the full bundle 000 among it) makes DIR whole again.
    assert check_dir(out, vkey).size == 304


def test_dir_of_another_log_or_ahead_of_the_ledger_is_refused(tmp_path: Path) -> None:
    world, ledger = make_world(tmp_path / "a")
    backup = tmp_path / "a-backup"
    ledger.close()
    shutil.copytree(world.data_dir, backup)  # the ledger at 4 entries
    out = tmp_path / "pub"
    server = LedgerServer(world.data_dir, "127.0.0.1:0", publish=out).start()
    grow(server.address, world.keys["acme"], "x", 20)
    server.stop(grace=1)
    assert check_dir(out, server.ledger.log_verifier_key).size == 24
    snapshot = files_of(out)

    other, ledger = make_world(tmp_path / "b")
    ledger.close()
    with pytest.raises(RequestError, match="not signed by this log's key"):
        LedgerServer(other.data_dir, "127.0.0.1:0", publish=out).start()
    with pytest.raises(RequestError, match="ahead of this ledger's 4 entries"):
        LedgerServer(backup, "127.0.0.1:0", publish=out).start()
    assert files_of(out) == snapshot
    # The data directories were released: a server starts on each without --publish.
    LedgerServer(backup, "127.0.0.1:0").start().stop(grace=1)

    # From the command line: exit 2 and one line naming the directory.
    result = subprocess.run(
        [sys.executable, "-m", "lotledger.cli.main", "serve", str(backup), "--listen", "127.0.0.1:0"]
        + ["--publish", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "ahead of this ledger" in result.stderr and "Traceback" not in result.stderr


def serve_publishing(data_dir: Path, port: int, out: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "lotledger.cli.main", "serve", str(data_dir), "--listen", f"127.0.0.1:{port}"]
        + ["--checkpoint-interval", "0.05", "--publish", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    with LedgerClient(f"127.0.0.1:{port}") as client:
        try:
            client.wait_ready(timeout=30)
        except Exception:
            proc.kill()
            raise AssertionError(proc.stderr.read().decode() if proc.stderr else "") from None
    return proc


@pytest.mark.slow
def test_sigkill_while_publishing_then_restart_repairs_dir(tmp_path: Path) -> None:
    world, ledger = make_world(tmp_path)
    vkey = ledger.log_verifier_key
    ledger.close()
    out = tmp_path / "pub"
    port = free_port()
    address = f"127.0.0.1:{port}"
    key = world.keys["acme"]
    killed_at: list[int] = []
    for round_ in range(3):
        proc = serve_publishing(world.data_dir, port, out)
        records = [signed(shipment(record_id=f"k{round_}-{i:05d}"), key) for i in range(3000)]
        acked = [0]

        def stream(records: list = records, acked: list[int] = acked) -> None:  # type: ignore[type-arg]
            try:
                with LedgerClient(address, timeout=120) as client:
                    for _ in client.append_stream(iter(records)):
                        acked[0] += 1
            except Exception:  # noqa: BLE001 - the kill breaks the stream
                pass

        t = threading.Thread(target=stream)
        t.start()
        # Kill while the log grows and the publisher writes tiles (DIR's checkpoint moving).
        cp_path = out / "checkpoint"
        deadline = time.monotonic() + 60
        while acked[0] < 600 + 400 * round_ and time.monotonic() < deadline:
            time.sleep(0.002)
        while not cp_path.exists() and time.monotonic() < deadline:
            time.sleep(0.001)
        first = cp_path.read_bytes()
        while cp_path.read_bytes() == first and time.monotonic() < deadline:
            time.sleep(0.001)
        assert cp_path.read_bytes() != first, "the publisher must be moving DIR's checkpoint"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        t.join(60)
        killed_at.append(acked[0])
        assert acked[0] > 0  # (on a busy machine the stream may have ended: the kill is mid-publication all the same)
        # Whatever the kill left, DIR is a complete tiled log of the checkpoint it holds.
        check_dir(out, vkey)

    proc = serve_publishing(world.data_dir, port, out)
    try:
        grow(address, key, "after", 100)
        with LedgerClient(address) as client:
            size = client.checkpoint().size
        deadline = time.monotonic() + 30
        while check_dir(out, vkey).size < size and time.monotonic() < deadline:
            time.sleep(0.05)
        cp = check_dir(out, vkey, address)
        assert cp.size >= size
        exported = tmp_path / "exported"
        run("export-tiles", str(exported), "--server", address, "--quiet", "--log-key", vkey)
        if files_of(exported)["checkpoint"] == (out / "checkpoint").read_bytes():
            same_as_export(out, exported)
    finally:
        proc.terminate()
        proc.wait(60)
    assert check_dir(out, vkey).size >= cp.size
    # Stray temporary files are hidden (dot) names only.
    assert all(not p.name.startswith(".") or p.name.endswith(".tmp") for p in out.rglob("*"))


def test_restart_repairs_missing_partial_tiles_and_stray_files(tmp_path: Path) -> None:
    world, ledger = make_world(tmp_path)
    ledger.close()
    out = tmp_path / "pub"
    server = LedgerServer(world.data_dir, "127.0.0.1:0", publish=out).start()
    vkey = server.ledger.log_verifier_key
    grow(server.address, world.keys["acme"], "a", 300)
    server.stop(grace=1)
    assert check_dir(out, vkey).size == 304
    # Damage: DIR's own partial tiles go missing; a tile past its checkpoint (which a crashed
    # run of another history could have left: no checkpoint covers it) holds other bytes.
    (out / "tile/0/001.p/48").unlink()
    shutil.rmtree(out / "tile/entries/001.p")
    (out / "tile/0/001").write_bytes(b"\x00" * 8192)
    (out / "tile/.0.tmp").write_bytes(b"torn")

    server = LedgerServer(world.data_dir, "127.0.0.1:0", publish=out).start()
    try:
        assert server.publisher is not None and server.publisher.repaired
        assert check_dir(out, vkey).size == 304  # repaired before anything was served
        grow(server.address, world.keys["acme"], "b", 300)
        cp = server.ledger.sign_checkpoint_now()
        assert server.publisher.wait_for(cp.size)
        exported = tmp_path / "exported"
        run("export-tiles", str(exported), "--server", server.address, "--quiet", "--log-key", vkey)
        same_as_export(out, exported)
        check_dir(out, vkey, server.address)
    finally:
        server.stop(grace=1)
    assert cp.size == 604


def test_readers_during_publication_always_see_a_complete_log(tmp_path: Path) -> None:
    """A reader polling DIR while the log grows and the publisher writes (and prunes partial
    tiles) never finds a checkpoint whose tiles are missing or a torn file: every read
    verifies, through the partial-tile fallback when a partial it needs was just pruned."""
    from lotledger.audit.tiles_http import DirectoryTiles, TilesSource
    from lotledger.audit.verify import verify_log

    world, ledger = make_world(tmp_path)
    ledger.close()
    out = tmp_path / "pub"
    server = LedgerServer(
        world.data_dir, "127.0.0.1:0", config=LedgerConfig(checkpoint_interval=0.02), publish=out
    ).start()
    verifier = NoteVerifier.from_string(server.ledger.log_verifier_key)
    sizes: list[int] = []
    failures: list[BaseException] = []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            try:
                report = verify_log(TilesSource(DirectoryTiles(out)), verifier, check_signatures=False)
                sizes.append(report.size)
            except BaseException as e:  # noqa: BLE001 - reported below
                failures.append(e)
                return

    assert server.publisher is not None and server.publisher.wait_for(4)
    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(6):
            grow(server.address, world.keys["acme"], f"r{i}", 150)
    finally:
        done.set()
        t.join(30)
        server.stop(grace=1)
    assert not failures, failures[0]
    assert len(set(sizes)) >= 3, sizes  # it read several checkpoints as the log grew
    assert sizes == sorted(sizes)
