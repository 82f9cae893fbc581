"""`lotledger mirror` (audit/mirror.py) on real processes: a primary publishes its tiles
(`serve --publish`), a web server process serves them, the mirror follows them into a data
directory of its own that `verify --data-dir` accepts, cosigns what it holds (a witness quorum
of one checks it), republishes tiles that `restore` turns back into a primary; and every way the
source can be wrong (a fork, a byte changed in a tile, a bundle cut short, a checkpoint from
another key, no answer) or the mirror's disk can fail (full, a SIGKILL mid-round) is refused or
retried with a clear message, and nothing the mirror had verified is lost."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from cli_helpers import run
from disk_full import file_size_limit
from helpers import ORIGIN, free_port, make_world, shipment, signed

from lotledger.ledger.log import Ledger, LedgerConfig
from lotledger.rpc.client import LedgerClient, StreamRefusal
from lotledger.rpc.server import LedgerServer
from lotledger.signing.keys import SigningKey

LOTLEDGER = [sys.executable, "-m", "lotledger.cli.main"]


def grow(world: SimpleNamespace, prefix: str, n: int) -> None:
    """The primary (stopped between steps) appends `n` records and publishes them."""
    server = LedgerServer(
        world.data_dir, "127.0.0.1:0", config=LedgerConfig(checkpoint_interval=0.05), publish=world.tiles
    ).start()
    try:
        records = [signed(shipment(record_id=f"{prefix}-{i:05d}"), world.keys["acme"]) for i in range(n)]
        with LedgerClient(server.address, timeout=120) as client:
            assert not [o for o in client.append_stream(iter(records)) if isinstance(o, StreamRefusal)]
    finally:
        server.stop(grace=1)


@pytest.fixture
def primary(tmp_path: Path) -> SimpleNamespace:
    w, ledger = make_world(tmp_path / "p")
    vkey = ledger.log_verifier_key
    ledger.close()
    world = SimpleNamespace(**vars(w), tiles=tmp_path / "tiles", vkey=tmp_path / "log.vkey", tmp=tmp_path)
    world.vkey.write_text(vkey + "\n")
    SigningKey.generate().save_pair(tmp_path / "mirror.key")
    grow(world, "a", 300)
    port = free_port()
    world.web = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(world.tiles)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    world.url = f"http://127.0.0.1:{port}/"
    time.sleep(0.5)
    yield world
    world.web.terminate()
    world.web.wait(10)


def mirror_once(world: SimpleNamespace, *extra: str, code: int = 0) -> dict[str, object] | str:
    args = ["mirror", str(world.tmp / "mirror"), "--from", world.url, "--log-key", str(world.vkey)]
    args += ["--key", str(world.tmp / "mirror.key"), "--name", "mirror-eu", "--once", "--json", "--quiet", *extra]
    result = run(*args, ok=code == 0)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return json.loads(result.stdout.splitlines()[-1]) if code == 0 else result.stderr


def mirrored_size(world: SimpleNamespace) -> int:
    out = run("verify", "--data-dir", str(world.tmp / "mirror"), "--log-key", str(world.vkey), "--json", "--quiet")
    return int(json.loads(out.stdout)["tree_size"])


def mirror_vkey(world: SimpleNamespace) -> str:
    from lotledger.signing.cosignature import CosignatureSigner

    return CosignatureSigner("mirror-eu", SigningKey.load(world.tmp / "mirror.key")).verifier_key


def test_mirror_follows_cosigns_republishes_and_restores(primary: SimpleNamespace) -> None:
    republished = primary.tmp / "mpub"
    first = mirror_once(primary, "--publish", str(republished))
    assert isinstance(first, dict) and first["outcome"] == "verified" and first["cosigned"] is True
    assert mirrored_size(primary) == 304
    grow(primary, "b", 500)
    second = mirror_once(primary, "--publish", str(republished))
    assert isinstance(second, dict) and second["outcome"] == "verified" and second["entries_checked"] == 500
    assert mirrored_size(primary) == 804  # the mirror's own store, every index checked
    # Its republished tiles: the same log, its checkpoint cosigned by the mirror.
    witness = ["--witness", mirror_vkey(primary), "--quorum", "1"]
    out = run("verify", "--tiles", str(republished), "--log-key", str(primary.vkey), *witness, "--json", "--quiet")
    assert json.loads(out.stdout)["cosigned_by"] == ["mirror-eu"]
    assert mirror_once(primary)["outcome"] == "unchanged"  # type: ignore[index]
    # The primary's disk is gone: restore it from the mirror's tiles, and it appends on.
    restored = primary.tmp / "restored"
    run(
        "restore", str(restored), "--from", str(republished), "--log-key", str(primary.vkey),
        "--log-signing-key", str(primary.data_dir / "keys" / "log.key"), "--quiet",
    )  # fmt: skip
    server = LedgerServer(restored, "127.0.0.1:0", config=LedgerConfig(checkpoint_interval=0.05)).start()
    try:
        records = [signed(shipment(record_id=f"c-{i}"), primary.keys["acme"]) for i in range(10)]
        with LedgerClient(server.address) as client:
            assert all(not isinstance(o, StreamRefusal) for o in client.append_stream(iter(records)))
        assert server.ledger.sign_checkpoint_now().size == 814
    finally:
        server.stop(grace=1)


def test_a_fork_is_evidence_and_nothing_is_stored(primary: SimpleNamespace) -> None:
    mirror_once(primary)
    # Another history under the same log key and origin replaces the published tiles.
    fork = primary.tmp / "fork"
    (fork / "keys").mkdir(parents=True)
    shutil.copy(primary.data_dir / "keys" / "log.key", fork / "keys" / "log.key")
    Ledger.initialize(fork, ORIGIN, primary.log_key, SigningKey.generate()).close()
    shutil.rmtree(primary.tiles)
    primary.tiles.mkdir()
    fork_world = SimpleNamespace(data_dir=fork, tiles=primary.tiles, keys={})
    LedgerServer(fork_world.data_dir, "127.0.0.1:0", publish=primary.tiles).start().stop(grace=1)
    stderr = mirror_once(primary, code=1)
    assert isinstance(stderr, str) and "evidence in" in stderr and "nothing of this round was stored" in stderr
    assert len(list((primary.tmp / "mirror" / "state" / "forks").iterdir())) == 1
    assert mirrored_size(primary) == 304


@pytest.mark.parametrize("damage", ["byte in a tile", "truncated bundle", "checkpoint from another key"])
def test_a_damaged_source_is_refused_and_then_followed_once_fixed(primary: SimpleNamespace, damage: str) -> None:
    mirror_once(primary)
    grow(primary, "b", 300)
    saved = primary.tmp / "saved"
    shutil.copytree(primary.tiles, saved)
    if damage == "byte in a tile":
        path = primary.tiles / "tile/0/001"
        data = bytearray(path.read_bytes())
        data[100] ^= 1
        path.write_bytes(bytes(data))
        expect = "does not hash to its leaf in tile/0/001"
    elif damage == "truncated bundle":
        path = primary.tiles / "tile/entries/001"
        path.write_bytes(path.read_bytes()[:-50])
        expect = "cut short"
    else:
        other, ledger = make_world(primary.tmp / "other")
        ledger.close()
        LedgerServer(other.data_dir, "127.0.0.1:0", publish=primary.tmp / "other-tiles").start().stop(grace=1)
        shutil.copy(primary.tmp / "other-tiles" / "checkpoint", primary.tiles / "checkpoint")
        expect = "checkpoint signature"
    stderr = mirror_once(primary, code=1)
    assert isinstance(stderr, str) and expect in stderr
    assert mirrored_size(primary) == 304  # nothing of the bad round stored, nothing verified lost
    shutil.rmtree(primary.tiles)
    shutil.copytree(saved, primary.tiles)
    assert mirror_once(primary)["tree_size"] == 604  # type: ignore[index]
    assert mirrored_size(primary) == 604


def test_an_unreachable_source(primary: SimpleNamespace) -> None:
    primary.url = f"http://127.0.0.1:{free_port()}/"
    stderr = mirror_once(primary, code=3)
    assert isinstance(stderr, str) and "unreachable after 5 attempts" in stderr


@pytest.mark.parametrize("where", ["spool", "store"])
def test_a_full_disk_on_the_mirror_loses_nothing(primary: SimpleNamespace, where: str) -> None:
    """No file may grow past the limit: the spool of the round's entries (64 KiB) or the
    store (1.5 MB: the spool of about 1 MB fits, the store's growth does not)."""
    mirror_once(primary)
    grow(primary, "b", 3000)
    data_mdb = primary.tmp / "mirror" / "ledger" / "data.mdb"
    args = ["mirror", str(primary.tmp / "mirror"), "--from", primary.url, "--log-key", str(primary.vkey)]
    args += ["--key", str(primary.tmp / "mirror.key"), "--once", "--quiet"]
    full = subprocess.run(
        LOTLEDGER + args,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=file_size_limit(64 * 1024 if where == "spool" else max(1_500_000, data_mdb.stat().st_size)),
    )
    assert full.returncode == 1, full.stderr
    assert "DISK_FULL" in full.stderr or "disk" in full.stderr, full.stderr
    assert "Traceback" not in full.stderr and full.stderr.strip().splitlines()[-1].startswith("error: ")
    assert mirrored_size(primary) == 304  # what it had verified is all there
    assert mirror_once(primary)["tree_size"] == 3304  # type: ignore[index]
    assert mirrored_size(primary) == 3304


@pytest.mark.slow
def test_sigkill_mid_round_then_the_next_round_completes(primary: SimpleNamespace) -> None:
    grow(primary, "b", 6000)
    args = ["mirror", str(primary.tmp / "mirror"), "--from", primary.url, "--log-key", str(primary.vkey)]
    args += ["--key", str(primary.tmp / "mirror.key"), "--interval", "0.2", "--quiet"]
    proc = subprocess.Popen(LOTLEDGER + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    spool = primary.tmp / "mirror" / "spool.tmp"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (spool.exists() and spool.stat().st_size > 200_000):
        time.sleep(0.005)
    assert spool.exists(), "the kill must land mid-round"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    result = mirror_once(primary)
    assert isinstance(result, dict) and result["tree_size"] == 6304
    assert mirrored_size(primary) == 6304
