"""Witnessing end to end, with real processes on loopback: `lotledger witness serve` (HTTP,
c2sp.org/tlog-witness) and `lotledger serve --witness` (a gRPC log that submits its checkpoints
in the background); `checkpoint` shows the cosignature and `verify --witness --quorum` requires
it. The fork test: two copies of one data directory (same log key) grow different histories;
the witness cosigns one, refuses the other and keeps both signed notes; its state survives a
restart of the witness process."""

from __future__ import annotations

import base64
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cli_helpers import run, shipments_file
from helpers import free_port

from lotledger.ledger.witness.state import format_add_checkpoint
from lotledger.rpc.client import LedgerClient
from lotledger.signing.cosignature import CosignatureVerifier, open_cosignatures
from lotledger.signing.note import NoteVerifier, open_checkpoint, parse_note
from lotledger.web.app import create_app
from lotledger.web.source import LedgerSource

WITNESS = "witness.regulator.example"


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Processes:
    """Started processes, stopped at the end of the test (SIGTERM, then SIGKILL)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, *args: str, ready: Callable[[], bool]) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"{name}.log").open("wb")
        proc = subprocess.Popen([sys.executable, "-m", "lotledger.cli.main", *args], stdout=log, stderr=log)
        self.procs.append(proc)
        deadline = time.monotonic() + 30
        while not ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{name} did not start:\n{self.log(name)}")
            time.sleep(0.05)
        return proc

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def stop(self, proc: subprocess.Popen[bytes]) -> int:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                self.stop(proc)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    p = Processes(tmp_path)
    yield p
    p.stop_all()


def start_witness(p: Processes, w: SimpleNamespace, log_vkey: Path, name: str = "witness") -> subprocess.Popen[bytes]:
    args = ["witness", "serve", "--key", str(w.key), "--name", WITNESS, "--log", str(log_vkey)]
    args += ["--state", str(w.state), "--listen", f"127.0.0.1:{w.port}"]
    return p.start(name, *args, ready=lambda: f"listening on {w.url}" in p.log(name))


def start_log(p: Processes, log: SimpleNamespace, port: int, w: SimpleNamespace, name: str) -> subprocess.Popen[bytes]:
    def answers() -> bool:
        """Up, and the log we mean (each test's logs have their own origin)."""
        try:
            with LedgerClient(f"127.0.0.1:{port}") as client:
                client.wait_ready(0.2)
                origin = client.checkpoint().note.split(b"\n", 1)[0].decode()
        except Exception:  # noqa: BLE001 - not up yet
            return False
        assert origin == log.origin, f"another server answers on port {port}: {origin}"
        return True

    args = ["serve", str(log.data), "--listen", f"127.0.0.1:{port}", "--checkpoint-interval", "0.05"]
    return p.start(name, *args, "--witness", f"{w.url}={w.vkey}", ready=answers)


def new_witness(tmp: Path) -> SimpleNamespace:
    key = tmp / "witness.key"
    run("keys", "generate", str(key))
    vkey = run("witness", "key", str(key), "--name", WITNESS).stdout.strip()
    port = free_port()
    return SimpleNamespace(key=key, vkey=vkey, port=port, url=f"http://127.0.0.1:{port}", state=tmp / "witness-state")


def new_log(tmp: Path, name: str = "data") -> SimpleNamespace:
    data = tmp / name
    origin = f"{tmp.name}.example/lotledger"
    out = json.loads(run("init", str(data), "--origin", origin, "--json").stdout)
    return SimpleNamespace(data=data, origin=origin, vkey=out["log_verifier_key"], vkey_file=data / "log.vkey")


def register_acme(server: str, data: Path, tmp: Path) -> Path:
    key = tmp / "acme.key"
    if not key.exists():
        run("keys", "generate", str(key))
    admin = str(data / "keys" / "admin.key")
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
        server,
        "--key",
        admin,
    )
    return key


def append(server: str, key: Path, tmp: Path, prefix: str, n: int) -> None:
    run(
        "append",
        str(shipments_file(tmp / f"{prefix}.jsonl", prefix, n)),
        "--server",
        server,
        "--key",
        str(key),
        "--participant",
        "acme",
    )


def checkpoint(server: str, size: int = 0) -> dict[str, Any]:
    args = ["checkpoint", "--server", server, "--json"] + (["--size", str(size)] if size else [])
    out: dict[str, Any] = json.loads(run(*args).stdout)
    return out


def cosigned_at(server: str, vkey: str, size: int) -> dict[str, Any] | None:
    """The latest checkpoint if it is of `size` and carries the witness's cosignature."""
    cp = checkpoint(server)
    if cp["tree_size"] != size:
        return None
    cosigs = open_cosignatures(cp["note"].encode(), [CosignatureVerifier.from_string(vkey)])[1]
    return cp if cosigs else None


def post(url: str, body: bytes) -> tuple[int, bytes, str]:
    request = urllib.request.Request(url + "/add-checkpoint", data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read(), response.headers.get_content_type()
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers.get_content_type()


# ---- a witnessed log --------------------------------------------------------------------------


def test_witness_key_prints_a_cosignature_verifier_key(tmp_path: Path) -> None:
    w = new_witness(tmp_path)
    parsed = CosignatureVerifier.from_string(w.vkey)
    assert parsed.name == WITNESS and base64.b64decode(w.vkey.split("+", 2)[2])[0] == 0x04
    out = json.loads(run("witness", "key", str(w.key), "--name", WITNESS, "--json").stdout)
    assert out == {"name": WITNESS, "verifier_key": w.vkey}


def test_the_log_is_cosigned_in_the_background_and_verify_requires_the_quorum(tmp_path: Path, procs: Processes) -> None:
    w, log = new_witness(tmp_path), new_log(tmp_path)
    start_witness(procs, w, log.vkey_file)
    port = free_port()
    server = f"127.0.0.1:{port}"
    log_proc = start_log(procs, log, port, w, "log")
    acme = register_acme(server, log.data, tmp_path)
    append(server, acme, tmp_path, "s", 6)
    size = 8  # genesis, acme's registration, 6 shipments
    cp = wait_for(lambda: cosigned_at(server, w.vkey, size), "the witness's cosignature on the latest checkpoint")

    # `lotledger checkpoint` shows the note with the cosignature line after the log's.
    lines = cp["note"].splitlines()
    assert lines[0] == log.origin and lines[1] == str(size)
    assert lines[-2].startswith(f"\u2014 {log.origin} ") and lines[-1].startswith(f"\u2014 {WITNESS} ")
    assert open_checkpoint(cp["note"].encode(), NoteVerifier.from_string(log.vkey)).size == size
    assert f"cosigned {log.origin} at size {size}" in procs.log("witness")

    # QA's web view shows the cosignature on the log status page.
    source = LedgerSource(lambda: LedgerClient(server))
    try:
        status = create_app(source, NoteVerifier.from_string(log.vkey)).test_client().get("/status").data.decode()
    finally:
        source.close()
    assert f'id="tree-size">{size}<' in status and f"<code>{WITNESS}</code>" in status and "witness</li>" in status

    srv = ["--server", server, "--log-key", log.vkey, "--quiet"]
    ok = json.loads(run("verify", *srv, "--witness", w.vkey, "--quorum", "1", "--json").stdout)
    assert ok["ok"] and ok["tree_size"] == size and ok["cosigned_by"] == [WITNESS]
    default = run("verify", *srv, "--witness", w.vkey)  # default quorum: all given witnesses
    assert f"cosigned by {WITNESS}" in default.stdout

    too_many = run("verify", *srv, "--witness", w.vkey, "--quorum", "2", ok=False)
    assert too_many.exit_code == 2 and "--quorum 2 cannot be met by 1" in too_many.stderr
    twice = run("verify", *srv, "--witness", w.vkey, "--witness", w.vkey, "--quorum", "2", ok=False)
    assert twice.exit_code == 2  # the same witness twice counts once
    assert run("verify", *srv, "--witness", w.vkey, "--quorum", "0", ok=False).exit_code == 2
    assert run("verify", *srv, "--quorum", "1", ok=False).exit_code == 2

    other = new_witness(tmp_path / "other")  # a witness this log never submitted to
    missing = run("verify", *srv, "--witness", w.vkey, "--witness", other.vkey, ok=False)
    assert missing.exit_code == 1
    assert "valid cosignatures from 1 of the 2 given witnesses" in missing.stderr and "quorum is 2" in missing.stderr
    log_key_as_witness = run("verify", *srv, "--witness", log.vkey, ok=False)
    assert log_key_as_witness.exit_code == 2 and "not a witness verifier key" in log_key_as_witness.stderr

    # An evidence file carries the cosigned checkpoint, and verify-evidence can require it.
    evidence = tmp_path / "down.evidence"
    run("trace", "down", "01/09520000000011/10/L7", "--server", server, "--evidence", str(evidence))
    ev = ["verify-evidence", str(evidence), "--log-key", log.vkey]
    assert run(*ev, "--witness", w.vkey).exit_code == 0
    uncosigned = run(*ev, "--witness", w.vkey, "--witness", other.vkey, ok=False)
    assert uncosigned.exit_code == 1 and "valid cosignatures from 1 of the 2 given witnesses" in uncosigned.stderr
    assert run(*ev, "--witness", w.vkey, "--quorum", "2", ok=False).exit_code == 2

    # The cosignature travels in an export bundle and in the data directory.
    bundle = tmp_path / "log.bundle"
    run("export", "--out", str(bundle), "--server", server, "--quiet")
    offline = json.loads(
        run("verify", "--bundle", str(bundle), "--log-key", log.vkey, "--witness", w.vkey, "--json").stdout
    )
    assert offline["cosigned_by"] == [WITNESS]
    assert procs.stop(log_proc) == 0
    on_disk = json.loads(
        run("verify", "--data-dir", str(log.data), "--log-key", log.vkey, "--witness", w.vkey, "--json").stdout
    )
    assert on_disk["ok"] and on_disk["cosigned_by"] == [WITNESS] and on_disk["tree_size"] >= size
    assert (
        run("verify", "--data-dir", str(log.data), "--log-key", log.vkey, "--witness", other.vkey, ok=False).exit_code
        == 1
    )


def test_a_witness_that_is_down_never_stops_the_log(tmp_path: Path, procs: Processes) -> None:
    w, log = new_witness(tmp_path), new_log(tmp_path)
    port = free_port()
    server = f"127.0.0.1:{port}"
    start_log(procs, log, port, w, "log")  # the witness is not running yet
    acme = register_acme(server, log.data, tmp_path)
    started = time.monotonic()
    append(server, acme, tmp_path, "down", 20)
    assert time.monotonic() - started < 10
    assert wait_for(lambda: checkpoint(server)["tree_size"] == 22, "the checkpoint of 22 entries")
    assert cosigned_at(server, w.vkey, 22) is None
    assert "retrying in" in wait_for(lambda: procs.log("log") if "retrying in" in procs.log("log") else "", "a retry")
    start_witness(procs, w, log.vkey_file)
    wait_for(lambda: cosigned_at(server, w.vkey, 22), "the cosignature once the witness is up", timeout=60)


# ---- the fork ------------------------------------------------------------------------------------


def test_a_forked_history_is_refused_and_the_evidence_kept(tmp_path: Path, procs: Processes) -> None:
    w, log = new_witness(tmp_path), new_log(tmp_path, "a")
    log_key = NoteVerifier.from_string(log.vkey)
    port_a, port_b = free_port(), free_port()
    a, b = f"127.0.0.1:{port_a}", f"127.0.0.1:{port_b}"

    # A common history of 4 entries, then a copy of the data directory: the same log key.
    proc = start_log(procs, log, port_a, w, "a0")  # the witness is not up: nothing cosigned
    acme = register_acme(a, log.data, tmp_path)
    append(a, acme, tmp_path, "common", 2)
    assert procs.stop(proc) == 0
    fork = tmp_path / "b"
    shutil.copytree(log.data, fork)

    witness_proc = start_witness(procs, w, log.vkey_file)
    start_log(procs, log, port_a, w, "a")
    append(a, acme, tmp_path, "a", 3)
    cosigned = wait_for(lambda: cosigned_at(a, w.vkey, 7), "the witness cosigning A at 7 entries")

    start_log(procs, SimpleNamespace(data=fork, origin=log.origin), port_b, w, "b")
    append(b, acme, tmp_path, "b", 5)  # a different history of 9 entries, signed by the same key
    forks = w.state / "forks"
    files = wait_for(lambda: sorted(forks.glob("fork-*.json")) if forks.exists() else [], "the fork evidence")
    assert len(files) == 1
    evidence = json.loads(files[0].read_text())
    assert evidence["format"] == "lotledger-fork-evidence/1" and evidence["origin"] == log.origin
    assert evidence["status"] == 422 and evidence["old_size"] == 7
    # Both notes are signed by the one log key and cannot both be true.
    assert parse_note(evidence["cosigned"]["note"].encode())[0] == parse_note(cosigned["note"].encode())[0]
    assert open_checkpoint(evidence["cosigned"]["note"].encode(), log_key).size == 7
    refused_note = evidence["refused"]["note"].encode()
    refused_cp = open_checkpoint(refused_note, log_key)
    assert refused_cp.size == 9 and refused_note == checkpoint(b, 9)["note"].encode()
    assert "REFUSED" in procs.log("witness") and "refused our checkpoint" in procs.log("b")

    # B's clients see no cosignature: a verifier that requires the witness refuses B's history.
    assert cosigned_at(b, w.vkey, 9) is None
    refused = run("verify", "--server", b, "--log-key", log.vkey, "--witness", w.vkey, "--quiet", ok=False)
    assert refused.exit_code == 1 and "from 0 of the 1" in refused.stderr
    assert run("verify", "--server", a, "--log-key", log.vkey, "--witness", w.vkey, "--quiet").exit_code == 0

    # The witness's state survives a restart: it still knows A at 7 and still refuses B.
    assert procs.stop(witness_proc) == 0
    state = json.loads((w.state / "state.json").read_text())
    assert state["logs"][log.origin]["size"] == 7
    start_witness(procs, w, log.vkey_file, name="witness-again")
    assert "last cosigned size 7" in procs.log("witness-again")
    note_b = checkpoint(b, 9)["note"].encode()
    status, body, content_type = post(w.url, format_add_checkpoint(0, [], note_b))
    assert (status, body, content_type) == (409, b"7\n", "text/x.tlog.size")
    with LedgerClient(b) as client:
        proof = list(client.consistency_proof(7, 9).proof)
    assert post(w.url, format_add_checkpoint(7, proof, note_b))[0] == 422
    assert len(list(forks.glob("fork-*.json"))) == 1  # the same contradiction is kept once
    # ...and A, growing on, is cosigned by the restarted witness from where it left off.
    append(a, acme, tmp_path, "a2", 2)
    wait_for(lambda: cosigned_at(a, w.vkey, 9), "A's next checkpoint cosigned after the restart")


def test_the_http_surface(tmp_path: Path, procs: Processes) -> None:
    w, log = new_witness(tmp_path), new_log(tmp_path)
    start_witness(procs, w, log.vkey_file)
    assert post(w.url, b"old 0\n")[0] == 400
    note = log.data.joinpath("log.vkey").read_text()  # not a checkpoint
    assert post(w.url, b"old 0\n\n" + note.encode())[0] == 400
    request = urllib.request.Request(w.url + "/add-checkpoint")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)
    assert info.value.code == 405
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(urllib.request.Request(w.url + "/other", data=b"x", method="POST"), timeout=10)
    assert info.value.code == 404
    # A second witness process on the same state is refused.
    second = subprocess.run(
        [sys.executable, "-m", "lotledger.cli.main", "witness", "serve", "--key", str(w.key), "--name", WITNESS]
        + ["--log", str(log.vkey_file), "--state", str(w.state), "--listen", f"127.0.0.1:{free_port()}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 2 and "another witness process" in second.stderr


# ---- the log's submitter, in process ----------------------------------------------------------------


def test_the_log_keeps_only_cosignatures_that_verify_with_the_configured_key(tmp_path: Path) -> None:
    from helpers import make_world

    from lotledger.ledger.witness.http import WitnessServer, WitnessService
    from lotledger.ledger.witness.state import Witness
    from lotledger.ledger.witness.submitter import WitnessSubmitter, WitnessTarget
    from lotledger.signing.cosignature import CosignatureSigner
    from lotledger.signing.keys import SigningKey

    _, ledger = make_world(tmp_path)
    signer = CosignatureSigner("w.example", SigningKey.generate())
    (tmp_path / "ws").mkdir()
    service = WitnessService(Witness(signer, [NoteVerifier.from_string(ledger.log_verifier_key)]), tmp_path / "ws")
    httpd = WitnessServer(("127.0.0.1", 0), service)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        cp = ledger.sign_checkpoint_now()
        impostor = CosignatureVerifier.from_string(CosignatureSigner("w.example", SigningKey.generate()).verifier_key)
        wrong = WitnessSubmitter(ledger, [WitnessTarget(url, impostor)])
        with pytest.raises(Exception, match="without a cosignature by its configured key"):
            wrong.submit(wrong.tracks[0], cp)
        assert ledger.cosignatures(cp.size) == []

        # The witness has cosigned this size already: a fresh submitter says `old 0`, learns the
        # size from the 409, and asks again with it.
        right = WitnessSubmitter(ledger, [WitnessTarget(url, CosignatureVerifier.from_string(signer.verifier_key))])
        right.submit(right.tracks[0], cp)
        assert right.tracks[0].known_size == cp.size and len(ledger.cosignatures(cp.size)) == 1
        served = ledger.cosigned_checkpoint().note
        assert open_cosignatures(served, [CosignatureVerifier.from_string(signer.verifier_key)])[1]
    finally:
        httpd.shutdown()
        httpd.server_close()
        ledger.close()
