"""`lotledger export-tiles DIR` against real servers: the directory is a tlog-tiles log whose
tiles rebuild the signed root and prove entries; a re-run after the log grew fetches only the new
entries, writes only new files and never touches a full tile; a directory whose checkpoint is
from another history (same origin, same log key) or another log, ahead of the server, or whose tiles were
altered is refused with exit 1 and left as it was."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from cli_helpers import run, shipments_file

from lotledger.ledger.log import Ledger, LedgerConfig
from lotledger.ledger.tlog import merkle, tiles
from lotledger.rpc.client import LedgerClient
from lotledger.rpc.server import LedgerServer
from lotledger.signing.keys import SigningKey
from lotledger.signing.note import Checkpoint, NoteSigner, NoteVerifier, open_checkpoint, sign_note


def grow(live: SimpleNamespace, server: LedgerServer, prefix: str, n: int) -> None:
    lines = shipments_file(live.tmp / f"{prefix}.jsonl", prefix, n)
    run("append", str(lines), "--server", server.address, "--key", str(live.key), "--participant", "acme")
    server.ledger.sign_checkpoint_now()


def export(server: LedgerServer, out: Path, *args: str, ok: bool = True) -> dict[str, object]:
    result = run("export-tiles", str(out), "--server", server.address, "--quiet", "--json", *args, ok=ok)
    if not ok:
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output
        return {"stderr": result.stderr}
    data: dict[str, object] = json.loads(result.stdout)
    return data


def snapshot(root: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file under `root`: its bytes, inode and mtime."""
    out = {}
    for path in root.rglob("*"):
        if path.is_file():
            st = path.stat()
            out[str(path.relative_to(root))] = (path.read_bytes(), st.st_ino, st.st_mtime_ns)
    return out


def client_check(out: Path, vkey: str, server: LedgerServer) -> Checkpoint:
    """What a tlog-tiles client does with the directory: verify the checkpoint with the log key,
    rebuild its root from the tiles, check the bundles against level 0 and prove an entry."""
    cp = open_checkpoint((out / "checkpoint").read_bytes(), NoteVerifier.from_string(vkey))
    reader = tiles.TileReader(cp.size, lambda p: (out / p).read_bytes())
    assert reader.root() == cp.root_hash
    with LedgerClient(server.address) as client:
        served = [e for _, e in client.list_entries(0, cp.size)]
    bundled = [e for n in range((cp.size + 255) // 256) for e in reader.entries(n)]
    assert bundled == served
    last = cp.size - 1
    merkle.verify_inclusion(last, cp.size, merkle.leaf_hash(served[last]), reader.inclusion_proof(last), cp.root_hash)
    return cp


def test_export_then_grow_then_export_again(live: SimpleNamespace) -> None:
    out = live.tmp / "tiles"
    grow(live, live.server, "a", 300)  # 302 entries: one full level-0 tile and bundle
    first = export(live.server, out, "--log-key", live.vkey)
    assert first["tree_size"] == 302 and first["previous_size"] is None and first["entries_fetched"] == 302
    assert first["signature_checked"] is True
    with LedgerClient(live.server.address) as client:
        assert (out / "checkpoint").read_bytes() == client.checkpoint().note
    files = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert files == {"checkpoint"} | {t.path for t in tiles.tiles_for_size(302)}
    assert files >= {"tile/0/000", "tile/0/001.p/46", "tile/1/000.p/1", "tile/entries/000", "tile/entries/001.p/46"}
    client_check(out, live.vkey, live.server)

    before = snapshot(out)
    grow(live, live.server, "b", 250)  # 552 entries
    second = export(live.server, out)
    assert second["previous_size"] == 302 and second["tree_size"] == 552 and second["entries_fetched"] == 250
    written = {t.path for t in tiles.new_tiles(302, 552)}
    assert written == {"tile/0/001", "tile/0/002.p/40", "tile/1/000.p/2", "tile/entries/001", "tile/entries/002.p/40"}
    assert second["files_written"] == len(written) and second["partials_pruned"] == 2
    after = snapshot(out)
    # full tiles (and everything else published before) untouched: same bytes, inode and mtime
    for path in ("tile/0/000", "tile/entries/000", "tile/1/000.p/1"):
        assert after[path] == before[path], path
    # what changed: the new files, the checkpoint, and the partials of tiles now full are gone
    assert set(after) == (set(before) | written) - {"tile/0/001.p/46", "tile/entries/001.p/46"}
    assert {p for p in after if after[p] != before.get(p)} == written | {"checkpoint"}
    cp = client_check(out, live.vkey, live.server)
    assert cp.size == 552

    # the same tiles as an export from scratch
    fresh = live.tmp / "fresh"
    export(live.server, fresh)
    fresh_files = snapshot(fresh)
    assert set(after) - set(fresh_files) == {"tile/1/000.p/1"}  # an older checkpoint's partial, kept
    assert all(after[p][0] == fresh_files[p][0] for p in fresh_files)

    # nothing new: nothing fetched, nothing written
    again = export(live.server, out)
    assert again["entries_fetched"] == 0 and again["files_written"] == 0
    assert snapshot(out) == after


def test_the_human_output(live: SimpleNamespace) -> None:
    live.server.ledger.sign_checkpoint_now()
    out = live.tmp / "tiles"
    result = run("export-tiles", str(out), "--server", live.server.address, "--quiet")
    assert result.stdout.startswith(f"{out}: 2 entries of cli.example.com/lotledger, root ")
    assert "2 files written" in result.stdout and result.stderr == ""


@pytest.fixture
def fork(live: SimpleNamespace) -> Iterator[SimpleNamespace]:
    """A second server with the same origin and the same log key as `live`, whose history
    differs from entry 0 on (its genesis was written at another instant)."""
    data = live.tmp / "fork"
    keys = live.data / "keys"
    Ledger.initialize(
        data, "cli.example.com/lotledger", SigningKey.load(keys / "log.key"), SigningKey.load(keys / "admin.key")
    ).close()
    shutil.copytree(keys, data / "keys")
    server = LedgerServer(data, "127.0.0.1:0", config=LedgerConfig(checkpoint_interval=0.05)).start()
    yield SimpleNamespace(server=server)
    server.stop(grace=1)


def test_a_directory_of_another_history_is_refused(live: SimpleNamespace, fork: SimpleNamespace) -> None:
    out = live.tmp / "tiles"
    grow(live, live.server, "a", 20)  # 22 entries
    export(live.server, out)
    before = snapshot(out)
    # the fork is behind the directory: refused, not rolled back
    err = export(fork.server, out, ok=False)["stderr"]
    assert "is ahead of the server's latest (size 1)" in err
    run(
        "keys", "register", "--id", "acme", "--role", "supplier", "--public-key", f"{live.key}.pub",
        "--server", fork.server.address, "--key", str(live.data / "keys" / "admin.key"),
    )  # fmt: skip
    grow(live, fork.server, "f", 20)  # 22 entries, other bytes
    err = export(fork.server, out, "--log-key", live.vkey, ok=False)["stderr"]
    assert "not an extension of the earlier checkpoint of size 22: equal sizes with different roots" in err
    grow(live, fork.server, "g", 30)  # 52 entries: its signature is good, its history is not
    err = export(fork.server, out, "--log-key", live.vkey, ok=False)["stderr"]
    assert "is not an extension of the earlier checkpoint of size 22" in err
    assert snapshot(out) == before
    # the right log still extends it
    grow(live, live.server, "b", 5)
    assert export(live.server, out)["tree_size"] == 27


def test_damaged_directories_and_conflicting_files_are_refused(live: SimpleNamespace) -> None:
    out = live.tmp / "tiles"
    grow(live, live.server, "a", 10)  # 12 entries
    export(live.server, out)
    grow(live, live.server, "b", 10)  # 22
    # a partial tile of the published checkpoint altered: it no longer matches its bundle
    partial, bundle = out / "tile/0/000.p/12", out / "tile/entries/000.p/12"
    good_tile, good_bundle = partial.read_bytes(), bundle.read_bytes()
    partial.write_bytes(good_tile[:-1] + bytes([good_tile[-1] ^ 1]))
    before = snapshot(out)
    err = export(live.server, out, ok=False)["stderr"]
    assert f"{out}/tile/entries/000.p/12: its entries do not hash to the level-0 tile" in err
    assert snapshot(out) == before
    # an entry altered in both the bundle and the tile: they agree, but not with the checkpoint
    entries = tiles.decode_bundle(good_bundle, tiles.TileId(tiles.ENTRIES, 0, 12))
    entries[11] = entries[11][:-1] + bytes([entries[11][-1] ^ 1])
    bundle.write_bytes(b"".join(tiles.encode_entry(e, i) for i, e in enumerate(entries)))
    partial.write_bytes(b"".join(merkle.leaf_hash(e) for e in entries))
    before = snapshot(out)
    assert "do not rebuild the root of its own checkpoint (size 12)" in export(live.server, out, ok=False)["stderr"]
    assert snapshot(out) == before
    partial.write_bytes(good_tile)
    bundle.unlink()
    assert "000.p/12 is missing, but the checkpoint of size 12 needs it" in export(live.server, out, ok=False)["stderr"]
    bundle.write_bytes(good_bundle)
    # a file the next export must write, already there with other bytes (no checkpoint covers it)
    (out / "tile/0/000.p/22").write_bytes(bytes(22 * 32))
    err = export(live.server, out, ok=False)["stderr"]
    assert "tile/0/000.p/22 exists and differs from this log's" in err
    assert open_checkpoint((out / "checkpoint").read_bytes(), NoteVerifier.from_string(live.vkey)).size == 12
    (out / "tile/0/000.p/22").unlink()
    # a directory holding another log
    published = (out / "checkpoint").read_bytes()
    cp = Checkpoint.from_body(published.split(b"\n\n")[0] + b"\n")
    alien = Checkpoint("elsewhere.example.com/log", cp.size, cp.root_hash)
    (out / "checkpoint").write_bytes(sign_note(alien.body(), NoteSigner(alien.origin, SigningKey.generate())))
    err = export(live.server, out, ok=False)["stderr"]
    assert "holds the log 'elsewhere.example.com/log', the server serves 'cli.example.com/lotledger'" in err
    (out / "checkpoint").write_bytes(published)
    # a checkpoint signed by another key is refused with --log-key
    with_other_key = live.tmp / "other.vkey"
    other = run("init", str(live.tmp / "other"), "--origin", "cli.example.com/lotledger", "--json").stdout
    with_other_key.write_text(json.loads(other)["log_verifier_key"])
    assert "checkpoint signature" in export(live.server, out, "--log-key", str(with_other_key), ok=False)["stderr"]
    assert export(live.server, out)["tree_size"] == 22
    client_check(out, live.vkey, live.server)


def test_one_export_at_a_time(live: SimpleNamespace) -> None:
    out = live.tmp / "tiles"
    out.mkdir()
    fd = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert "another export-tiles is writing it" in export(live.server, out, ok=False)["stderr"]
    finally:
        os.close(fd)
    assert not (out / "checkpoint").exists()
    export(live.server, out)
