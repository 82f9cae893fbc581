"""`verify --tiles` and `monitor --tiles` (audit/tiles_http.py) against a log a real server
published, read from its directory and over HTTP from a real web server process: the same
checks, output and exit codes as `--bundle`; and each way the tiles can be wrong or out of reach
(a byte changed in a bundle or a hash tile, a bundle cut short, a missing tile, a checkpoint
signed by another key, a source that does not answer) refused with a clear message and the
right exit code."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from cli_helpers import run
from helpers import ORIGIN, free_port

from lotledger.audit.tiles_http import DirectoryTiles, HttpTiles, TilesSource
from lotledger.audit.verify import verify_log
from lotledger.ledger.errors import Unavailable
from lotledger.ledger.log import Ledger, LedgerConfig
from lotledger.rpc.server import LedgerServer
from lotledger.signing.keys import SigningKey
from lotledger.signing.note import NoteVerifier

COMPARED = ("ok", "origin", "tree_size", "root_hash", "signatures_checked", "from_size", "entries_checked", "complete")


def verify_json(*args: str, ok: bool = True) -> dict[str, object]:
    result = run("verify", "--json", "--quiet", *args, ok=ok)
    return dict(json.loads(result.stdout)) if ok else {"code": result.exit_code, "stderr": result.stderr}


def refused(published: SimpleNamespace, source: str, code: int = 1) -> str:
    result = run("verify", "--tiles", source, "--log-key", str(published.vkey), "--quiet", ok=False)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert result.stderr.startswith("error: "), result.stderr
    return result.stderr


def test_tiles_from_a_directory_and_over_http_verify_as_the_bundle_does(published: SimpleNamespace) -> None:
    bundle = verify_json("--bundle", str(published.bundle), "--log-key", str(published.vkey))
    for source in (str(published.out), published.url):
        tiles = verify_json("--tiles", source, "--log-key", str(published.vkey))
        assert {k: tiles[k] for k in COMPARED} == {k: bundle[k] for k in COMPARED}
    assert bundle["tree_size"] == 704
    text = run("verify", "--tiles", published.url, "--log-key", str(published.vkey), "--quiet").stdout
    assert text.startswith("OK: 704 entries of ")


def test_state_then_nothing_new(published: SimpleNamespace, tmp_path: Path) -> None:
    first = verify_json("--tiles", published.url, "--log-key", str(published.vkey), "--state", str(tmp_path / "s"))
    assert first["state_saved"] and first["entries_checked"] == 704
    again = verify_json("--tiles", published.url, "--log-key", str(published.vkey), "--state", str(tmp_path / "s"))
    assert again["entries_checked"] == 0 and again["from_size"] == 704


def test_a_byte_changed_in_a_bundle(published: SimpleNamespace, copy_of: Path) -> None:
    bundle = copy_of / "tile/entries/001"
    data = bytearray(bundle.read_bytes())
    data[100] ^= 0x01
    bundle.write_bytes(bytes(data))
    assert "tile/entries/001: entry 256 does not hash to its leaf" in refused(published, str(copy_of))


def test_a_byte_changed_in_a_level_0_tile(published: SimpleNamespace, copy_of: Path) -> None:
    tile = copy_of / "tile/0/000"
    data = bytearray(tile.read_bytes())
    data[32 * 7] ^= 0x80
    tile.write_bytes(bytes(data))
    assert "does not hash to its leaf in tile/0/000" in refused(published, str(copy_of))


def test_a_byte_changed_in_a_level_1_tile(published: SimpleNamespace, copy_of: Path) -> None:
    tile = copy_of / "tile/1/000.p/2"
    data = bytearray(tile.read_bytes())
    data[40] ^= 0x01
    tile.write_bytes(bytes(data))
    assert "tile/1/000.p/2: hash 1 is not the root of tile/0/001" in refused(published, str(copy_of))


def test_a_truncated_bundle(published: SimpleNamespace, copy_of: Path) -> None:
    bundle = copy_of / "tile/entries/002.p/192"
    bundle.write_bytes(bundle.read_bytes()[:-10])
    assert "tile/entries/002.p/192: entry 191 is cut short" in refused(published, str(copy_of))


def test_a_missing_tile(published: SimpleNamespace, copy_of: Path) -> None:
    (copy_of / "tile/0/001").unlink()
    assert "tile/0/001 is missing, but the checkpoint of size 704 needs it" in refused(published, str(copy_of))


def test_a_checkpoint_signed_by_another_key(
    published: SimpleNamespace, copy_of: Path, tmp_path: Path, tools: SimpleNamespace
) -> None:
    other = tools.publish_log(tmp_path, tmp_path / "other", [("o", 3)], world_dir=tmp_path / "w")
    shutil.copy(other.out / "checkpoint", copy_of / "checkpoint")
    assert "checkpoint signature" in refused(published, str(copy_of))


def test_an_unreachable_source_exits_3_after_retries(published: SimpleNamespace) -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    started = time.monotonic()
    stderr = refused(published, url, code=3)
    assert "unreachable after 5 attempts" in stderr and "Connection refused" in stderr
    assert time.monotonic() - started >= 1.0  # it backed off between the attempts
    assert "is not a directory" in refused(published, "/nonexistent/tiles", code=2)


def test_retries_ride_out_a_flaky_server(published: SimpleNamespace, tmp_path: Path) -> None:
    """A web server process that answers every third request with 503 (and cuts one connection)."""
    script = tmp_path / "flaky.py"
    script.write_text(
        "import functools, http.server, sys\n"
        "count = 0\n"
        "class H(http.server.SimpleHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        global count\n"
        "        count += 1\n"
        "        if count % 3 == 0:\n"
        "            self.send_error(503)\n"
        "            return\n"
        "        if count == 5:\n"
        "            self.close_connection = True\n"
        "            self.connection.shutdown(2)\n"
        "            return\n"
        "        super().do_GET()\n"
        "    def log_message(self, *a):\n"
        "        pass\n"
        "handler = functools.partial(H, directory=sys.argv[2])\n"
        "http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), handler).serve_forever()\n"
    )
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(script), str(port), str(published.out)])
    try:
        time.sleep(0.5)
        out = verify_json("--tiles", f"http://127.0.0.1:{port}/", "--log-key", str(published.vkey))
        assert out["tree_size"] == 704
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_checkpoint_is_asked_for_conditionally(published: SimpleNamespace) -> None:
    store = HttpTiles(published.url)
    try:
        first = store.checkpoint()
        assert store.checkpoint() == first
        assert store.not_modified == 1  # the second answer was a 304, the held copy used
    finally:
        store.close()


def test_a_pruned_partial_tile_is_read_from_the_full_tile(tmp_path: Path, tools: SimpleNamespace) -> None:
    """A reader holding an older checkpoint while the log grew and its partial tiles were
    deleted (the spec allows it) reads their prefix from the full tiles."""
    log = tools.publish_log(tmp_path, tmp_path / "pub", [("a", 300)])
    old_note = (log.out / "checkpoint").read_bytes()
    server = LedgerServer(
        log.world.data_dir, "127.0.0.1:0", config=LedgerConfig(checkpoint_interval=0.05), publish=log.out
    ).start()
    try:
        tools.append(server.address, log.world.keys["acme"], "b", 300)
    finally:
        server.stop(grace=1)
    assert not (log.out / "tile/0/001.p").exists()  # 001.p/48 went when tile 001 became full
    verifier = NoteVerifier.from_string(log.vkey.read_text().strip())
    report = verify_log(TilesSource(DirectoryTiles(log.out), old_note), verifier)
    assert report.size == 304


def test_monitor_follows_tiles_and_keeps_fork_evidence(tmp_path: Path, tools: SimpleNamespace) -> None:
    log = tools.publish_log(tmp_path, tmp_path / "pub", [("a", 100)])
    proc, url = tools.http_serve(log.out)
    state = tmp_path / "state"
    try:

        def monitor_once(ok: bool = True) -> dict[str, object] | int:
            result = run(
                "monitor", "--tiles", url, "--log-key", str(log.vkey), "--state", str(state), "--once", "--json",
                "--quiet", ok=ok,
            )  # fmt: skip
            return dict(json.loads(result.stdout.splitlines()[-1])) if ok else result.exit_code

        first = monitor_once()
        assert isinstance(first, dict) and first["outcome"] == "verified" and first["tree_size"] == 104
        again = monitor_once()
        assert isinstance(again, dict) and again["outcome"] == "unchanged"
        server = LedgerServer(log.world.data_dir, "127.0.0.1:0", publish=log.out).start()
        tools.append(server.address, log.world.keys["acme"], "b", 300)
        server.stop(grace=1)
        grown = monitor_once()
        assert isinstance(grown, dict) and grown["outcome"] == "verified" and grown["entries_checked"] == 300

        # Another history under the same key: the data directory as it was at 104 entries is
        # gone, so fork it by hand: a new log with the same log key and origin.
        fork_dir = tmp_path / "fork"
        shutil.rmtree(log.out)
        (fork_dir / "keys").mkdir(parents=True)
        shutil.copy(log.world.data_dir / "keys" / "log.key", fork_dir / "keys" / "log.key")
        admin = SigningKey.generate()
        Ledger.initialize(fork_dir, ORIGIN, log.world.log_key, admin).close()
        server = LedgerServer(fork_dir, "127.0.0.1:0", publish=log.out).start()
        server.stop(grace=1)
        assert monitor_once(ok=False) == 1
        evidence = list((state / "forks").iterdir())
        assert len(evidence) == 1 and "lotledger fork evidence" in evidence[0].read_text()
    finally:
        proc.terminate()
        proc.wait(10)
    # A source that went away: exit 3 with --once.
    assert monitor_once(ok=False) == 3


def test_monitor_unreachable_tiles_is_a_round_not_a_crash() -> None:
    store = HttpTiles(f"http://127.0.0.1:{free_port()}/", retries=1, backoff=0.01)
    try:
        with pytest.raises(Unavailable):
            store.checkpoint()
    finally:
        store.close()
