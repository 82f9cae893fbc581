"""`lotledger restore` (audit/restore.py, ledger/replica.py) on real processes.

The disaster: a primary under load publishing its tiles is killed with SIGKILL, its data
directory deleted; it is restored from its published tiles (over HTTP, from a web server
process) with the backed-up log key; every entry acknowledged up to the tiles' checkpoint is
there, the restored server goes on appending with roots that extend that checkpoint, and the
log verifies across the gap. What was acknowledged after the tiles' checkpoint is the recovery
point, printed. And each bad input (a wrong signing key, a damaged copy, a source that does
not answer, a target that is not empty) is refused with its exit code and leaves nothing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from cli_helpers import run
from helpers import free_port, make_world, shipment, signed

from lotledger.ledger.tlog.entries import AppendResult
from lotledger.rpc.client import LedgerClient, StreamRefusal
from lotledger.signing.keys import SigningKey


@pytest.mark.slow  # kills and restarts real servers
def test_disaster_primary_killed_and_deleted_then_restored_from_its_tiles(
    tmp_path: Path, tools: SimpleNamespace
) -> None:
    world, ledger = make_world(tmp_path)
    vkey = ledger.log_verifier_key
    ledger.close()
    (tmp_path / "log.vkey").write_text(vkey + "\n")
    backup = tmp_path / "backup"
    backup.mkdir()
    shutil.copy2(world.data_dir / "keys" / "log.key", backup / "log.key")  # kept off the lost disk
    tiles_dir = tmp_path / "tiles"
    port = free_port()
    address = f"127.0.0.1:{port}"
    proc = tools.serve_publishing(world.data_dir, port, tiles_dir)
    records = [signed(shipment(record_id=f"d-{i:05d}"), world.keys["acme"]) for i in range(4000)]
    acked: dict[str, AppendResult] = {}

    def stream() -> None:
        try:
            with LedgerClient(address, timeout=120) as client:
                for i, outcome in enumerate(client.append_stream(iter(records))):
                    assert not isinstance(outcome, StreamRefusal)
                    acked[f"d-{i:05d}"] = outcome
        except Exception:  # noqa: BLE001 - the kill breaks the stream
            pass

    t = threading.Thread(target=stream)
    t.start()
    deadline = time.monotonic() + 60
    while len(acked) < 2000 and time.monotonic() < deadline:
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    t.join(60)
    assert 2000 <= len(acked) < len(records), "the kill must land mid-stream"
    shutil.rmtree(world.data_dir)  # the disk is gone

    web, url = tools.http_serve(tiles_dir)
    try:
        out = run(
            "restore", str(world.data_dir), "--from", url, "--log-key", str(tmp_path / "log.vkey"),
            "--log-signing-key", str(backup / "log.key"), "--json", "--quiet",
        )  # fmt: skip
    finally:
        web.terminate()
        web.wait(10)
    restored = json.loads(out.stdout)
    size = restored["tree_size"]
    acknowledged = 4 + len(acked)  # the world's 4 entries, then the stream's
    print(
        f"recovery point: {acknowledged - size} of {acknowledged} acknowledged entries were after the tiles' checkpoint"
    )
    assert 4 < size <= acknowledged
    published = (tiles_dir / "checkpoint").read_bytes()
    (tmp_path / "published.cp").write_bytes(published)

    proc = tools.serve_publishing(world.data_dir, port, tiles_dir)  # the same DIR: it is not ahead
    try:
        with LedgerClient(address) as client:
            for rid, result in acked.items():
                if result.seq < size:
                    got = client.get_entry(record_id=rid)
                    assert (got.seq, got.leaf_hash) == (result.seq, result.leaf_hash), rid
            # Clients resend what they were not sure of: what the copy lacked is admitted anew.
            outcomes = list(client.append_stream(iter(records)))
            assert all(isinstance(o, AppendResult) for o in outcomes)
            assert sum(1 for o in outcomes if isinstance(o, AppendResult) and not o.duplicate) == 4004 - size
            deadline = time.monotonic() + 20
            while client.checkpoint().size < 4004 and time.monotonic() < deadline:
                time.sleep(0.02)  # the next checkpoint covers them
        verified = run(
            "verify", "--server", address, "--log-key", str(tmp_path / "log.vkey"), "--since",
            str(tmp_path / "published.cp"), "--json", "--quiet",
        )  # fmt: skip
        report = json.loads(verified.stdout)
        assert report["since_size"] == size and report["tree_size"] >= 4004
    finally:
        proc.terminate()
        proc.wait(60)
    # The tiles the restored server published extend the checkpoint it was restored from.
    tiles = run(
        "verify", "--tiles", str(tiles_dir), "--log-key", str(tmp_path / "log.vkey"), "--since",
        str(tmp_path / "published.cp"), "--json", "--quiet",
    )  # fmt: skip
    assert json.loads(tiles.stdout)["tree_size"] == 4004


def refused(args: list[str], code: int) -> str:
    result = run("restore", *args, "--quiet", ok=False)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and result.stderr.startswith("error: ")
    return result.stderr


def test_restore_refusals_leave_nothing(published: SimpleNamespace, copy_of: Path, tmp_path: Path) -> None:
    key = published.world.data_dir / "keys" / "log.key"
    target = tmp_path / "restored"
    common = ["--log-key", str(published.vkey), "--log-signing-key"]
    other = tmp_path / "other.key"
    SigningKey.generate().save(other)
    assert "is not the key behind --log-key" in refused(
        [str(target), "--from", str(published.out), *common, str(other)], 2
    )
    bundle = copy_of / "tile/entries/001"
    data = bytearray(bundle.read_bytes())
    data[7] ^= 0x01
    bundle.write_bytes(bytes(data))
    assert "does not hash to its leaf" in refused([str(target), "--from", str(copy_of), *common, str(key)], 1)
    url = f"http://127.0.0.1:{free_port()}/"
    assert "unreachable" in refused([str(target), "--from", url, *common, str(key)], 3)
    assert not target.exists() and not [p for p in tmp_path.iterdir() if ".restore-" in p.name]
    target.mkdir()
    (target / "something").write_text("x")
    assert "is not empty" in refused([str(target), "--from", str(published.out), *common, str(key)], 2)
    # And the good case, into an empty directory: it serves and verifies.
    (target / "something").unlink()
    run("restore", str(target), "--from", published.url, *common, str(key), "--quiet")
    check = run("verify", "--data-dir", str(target), "--log-key", str(published.vkey), "--json", "--quiet")
    assert json.loads(check.stdout)["tree_size"] == 704
