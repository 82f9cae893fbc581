"""`lotledger monitor` against real servers: it follows a growing log across runs, checking only
what is new; a server made to serve a forked history (a copy of the data directory, same log
key, different records appended) is caught, exits 1, and both signed checkpoints are kept as
evidence; --keep-running alerts once and goes on; an unreachable server exits 3 (--once) or is
retried."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from cli_helpers import run, shipments_file
from helpers import free_port

from lotledger.ledger.log import LedgerConfig
from lotledger.ledger.verify.state import decode_state
from lotledger.rpc.server import LedgerServer
from lotledger.signing.note import NoteVerifier, open_checkpoint


def monitor(server: str, vkey: str, state: Path, *args: str, ok: bool = True) -> tuple[int, dict[str, object], str]:
    """One `monitor --once --json` round: (exit code, the round's JSON, stderr)."""
    result = run(
        "monitor", "--server", server, "--log-key", vkey, "--state", str(state), "--once", "--json", *args, ok=ok
    )
    return result.exit_code, json.loads(result.stdout), result.stderr


def append(address: str, key: Path, tmp: Path, prefix: str, n: int) -> None:
    lines = shipments_file(tmp / f"{prefix}.jsonl", prefix, n)
    run("append", str(lines), "--server", address, "--key", str(key), "--participant", "acme")


def test_monitor_follows_a_growing_log_across_runs(live: SimpleNamespace) -> None:
    state = live.tmp / "watch"
    address = live.server.address
    live.server.ledger.sign_checkpoint_now()
    code, first, _ = monitor(address, live.vkey, state)
    size = live.server.ledger.size
    assert (code, first["outcome"], first["held_size"], first["entries_checked"]) == (0, "verified", None, size)
    append(address, live.key, live.tmp, "a", 6)
    grown = live.server.ledger.sign_checkpoint_now().size
    code, second, _ = monitor(address, live.vkey, state)
    assert (second["outcome"], second["held_size"], second["tree_size"]) == ("verified", size, grown)
    assert second["entries_checked"] == grown - size == 6
    code, third, _ = monitor(address, live.vkey, state)
    assert (code, third["outcome"], third["tree_size"]) == (0, "unchanged", grown)
    # the monitor's state is the one `verify --state` keeps: nothing new to check
    report = json.loads(
        run("verify", "--server", address, "--log-key", live.vkey, "--state", str(state), "--json").stdout
    )
    assert (report["from_size"], report["entries_checked"]) == (grown, 0)
    assert not (state / "forks").exists()


def test_a_tampered_entry_is_alerted_and_the_state_kept(live: SimpleNamespace) -> None:
    state = live.tmp / "watch"
    live.server.ledger.sign_checkpoint_now()
    _, first, _ = monitor(live.server.address, live.vkey, state)
    held = first["tree_size"]
    append(live.server.address, live.key, live.tmp, "tamper", 6)
    live.server.ledger.sign_checkpoint_now()
    live.server.stop(grace=1)
    copy = live.tmp / "copy"
    shutil.copytree(live.data, copy)
    mdb = copy / "ledger" / "data.mdb"
    blob = bytearray(mdb.read_bytes())
    needle = b"SHIP-TAMPER-0003"
    at = blob.find(needle)
    while at >= 0:  # every stale copy of the page too (copy-on-write), so the live one is among them
        blob[at + len(needle) - 1] ^= 0x01
        at = blob.find(needle, at + 1)
    mdb.write_bytes(bytes(blob))
    server = LedgerServer(copy, "127.0.0.1:0", config=LedgerConfig(checkpoint_interval=0.05)).start()
    try:
        code, round_, stderr = monitor(server.address, live.vkey, state, ok=False)
    finally:
        server.stop(grace=1)
    assert (code, round_["outcome"], round_["reason"]) == (1, "failed", "BAD_SIGNATURE")
    assert f"entry {held + 3}:" in str(round_["message"]) and "ALERT: VERIFICATION FAILED" in stderr
    assert not (state / "forks").exists()
    assert decode_state((state / "verifier.state").read_bytes(), NoteVerifier.from_string(live.vkey)).size == held


@pytest.fixture
def forked(tmp_path: Path) -> Iterator[SimpleNamespace]:
    """Two servers over copies of one data directory (the same log key), serving the same
    first entries and then different ones: `a` the log the monitor has seen, `b` the fork."""
    data = tmp_path / "a"
    vkey = json.loads(run("init", str(data), "--origin", "fork.example.com/lotledger", "--json").stdout)[
        "log_verifier_key"
    ]
    config = LedgerConfig(checkpoint_interval=0.05)
    server = LedgerServer(data, "127.0.0.1:0", config=config).start()
    key = tmp_path / "acme.key"
    run("keys", "generate", str(key))
    admin = ["--key", str(data / "keys" / "admin.key")]
    run(
        "keys",
        "register",
        "--id",
        "acme",
        "--role",
        "supplier",
        "--public-key",
        f"{key}.pub",
        "--server",
        server.address,
        *admin,
    )
    append(server.address, key, tmp_path, "common", 5)
    server.ledger.sign_checkpoint_now()
    server.stop(grace=1)
    shutil.copytree(data, tmp_path / "b")
    a = LedgerServer(data, "127.0.0.1:0", config=config).start()
    b = LedgerServer(tmp_path / "b", "127.0.0.1:0", config=config).start()
    yield SimpleNamespace(a=a, b=b, vkey=vkey, key=key, tmp=tmp_path, state=tmp_path / "watch")
    a.stop(grace=1)
    b.stop(grace=1)


def evidence(path: Path) -> dict[str, str]:
    """The sections of a fork evidence file, by the word after BEGIN."""
    text = path.read_text(encoding="utf-8")
    out = {}
    for name in ("HELD CHECKPOINT", "SERVED CHECKPOINT", "CONSISTENCY PROOF"):
        start = text.index("\n", text.index(f"-----BEGIN {name}")) + 1
        out[name] = text[start : text.index(f"-----END {name}-----")]
    return out


@pytest.mark.parametrize(
    ("fork_entries", "reason", "what"),
    [
        (4, "NOT_CONSISTENT", "has another root"),  # the same size as the seen log
        (9, "NOT_CONSISTENT", "is not an extension of the earlier checkpoint"),  # larger
        (2, "ROLLBACK", "is older than the one verified before"),  # smaller
    ],
)
def test_a_forked_history_is_caught_and_both_signed_checkpoints_are_kept(
    forked: SimpleNamespace, fork_entries: int, reason: str, what: str
) -> None:
    f = forked
    append(f.a.address, f.key, f.tmp, "seen", 4)
    append(f.b.address, f.key, f.tmp, "fork", fork_entries)
    held = f.a.ledger.sign_checkpoint_now()
    served = f.b.ledger.sign_checkpoint_now()
    assert f.a.ledger.root(7) == f.b.ledger.root(7)  # a common past
    code, seen, _ = monitor(f.a.address, f.vkey, f.state)
    assert (code, seen["outcome"], seen["tree_size"]) == (0, "verified", held.size)

    code, round_, stderr = monitor(f.b.address, f.vkey, f.state, ok=False)
    assert code == 1 and round_["outcome"] == "fork" and round_["reason"] == reason
    assert what in str(round_["message"]) and stderr.startswith("ALERT: FORK: ")
    files = list((f.state / "forks").iterdir())
    assert [str(p) for p in files] == [round_["evidence"]]
    parts = evidence(files[0])
    log_key = NoteVerifier.from_string(f.vkey)
    assert parts["HELD CHECKPOINT"].encode() == held.note and parts["SERVED CHECKPOINT"].encode() == served.note
    ours, theirs = open_checkpoint(held.note, log_key), open_checkpoint(served.note, log_key)  # both signed by the log
    assert (ours.size, theirs.size) == (held.size, served.size) and ours.root_hash != theirs.root_hash
    proof = [bytes.fromhex(line) for line in parts["CONSISTENCY PROOF"].split()]
    assert (len(proof) > 0) == (served.size > held.size)
    assert "what: " in files[0].read_text(encoding="utf-8") and f"[{reason}]" in files[0].read_text(encoding="utf-8")
    # the state still holds the log it verified, and that log is still fine
    code, again, _ = monitor(f.a.address, f.vkey, f.state)
    assert (code, again["outcome"], again["tree_size"]) == (0, "unchanged", held.size)


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "lotledger.cli.main", *args]


def test_keep_running_alerts_once_and_the_default_loop_exits_1(forked: SimpleNamespace) -> None:
    f = forked
    append(f.a.address, f.key, f.tmp, "seen", 3)
    append(f.b.address, f.key, f.tmp, "fork", 3)
    f.a.ledger.sign_checkpoint_now()
    f.b.ledger.sign_checkpoint_now()
    monitor(f.a.address, f.vkey, f.state)
    common = ["monitor", "--server", f.b.address, "--log-key", f.vkey, "--state", str(f.state), "--json"]
    looping = subprocess.run(cli(*common, "--interval", "0.1"), capture_output=True, text=True, timeout=60)
    assert looping.returncode == 1 and json.loads(looping.stdout)["outcome"] == "fork"
    watcher = subprocess.Popen(
        cli(*common, "--interval", "0.1", "--keep-running"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert watcher.stdout is not None
        rounds = [json.loads(watcher.stdout.readline()) for _ in range(4)]
    finally:
        watcher.send_signal(signal.SIGTERM)
        out, err = watcher.communicate(timeout=30)
    assert watcher.returncode == 0
    assert [r["outcome"] for r in rounds] == ["fork"] * 4
    assert err.count("ALERT: FORK") == 1
    # one evidence file per distinct fork and process: the loop's, and the watcher's
    assert len(list((f.state / "forks").iterdir())) == 2


def test_unreachable_exits_3_once_and_is_retried_when_running(live: SimpleNamespace) -> None:
    address = dead = f"127.0.0.1:{free_port()}"
    while dead == address:  # a port no server will ever listen on in this test
        dead = f"127.0.0.1:{free_port()}"
    unbuffered = {**os.environ, "PYTHONUNBUFFERED": "1"}
    once = subprocess.Popen(
        cli("monitor", "--server", dead, "--log-key", live.vkey, "--state", str(live.tmp / "once"), "--once"),
        stderr=subprocess.PIPE,
        text=True,
    )
    watcher = subprocess.Popen(
        cli(
            "monitor",
            "--server",
            address,
            "--log-key",
            live.vkey,
            "--state",
            str(live.tmp / "watch"),
            "--interval",
            "0.1",
            "--json",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=unbuffered,
    )
    server = None
    try:
        assert watcher.stderr is not None and watcher.stdout is not None
        while "unreachable:" not in (line := watcher.stderr.readline()):
            assert line, "the monitor ended instead of retrying"
        assert "retrying" in line
        live.server.stop(grace=1)
        server = LedgerServer(live.data, address, config=LedgerConfig(checkpoint_interval=0.05)).start()
        outcomes: list[str] = []
        while "verified" not in outcomes and len(outcomes) < 20:
            outcomes.append(json.loads(watcher.stdout.readline())["outcome"])
        assert outcomes[0] == "unreachable" and outcomes[-1] == "verified"
    finally:
        watcher.send_signal(signal.SIGTERM)
        watcher.communicate(timeout=30)
        if server is not None:
            server.stop(grace=1)
    _, err = once.communicate(timeout=30)
    assert once.returncode == 3 and err.startswith("error: no lotledger server answers")
