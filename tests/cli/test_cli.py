"""The `lotledger` command end to end: init, serve (in-process, real loopback), keys,
append, get, checkpoint, proofs, verify live and from a data directory, tampering."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

from cli_helpers import SHIPMENT, run, shipments_file

from lotledger.v1 import records_pb2


def test_init_writes_keys_and_prints_the_verifier_key(tmp_path: Path) -> None:
    data = tmp_path / "d"
    result = run("init", str(data), "--origin", "x.example/log")
    vkey = result.stdout.strip()
    assert vkey.startswith("x.example/log+") and len(vkey.split("+", 2)[1]) == 8
    assert (data / "keys" / "log.key").stat().st_mode & 0o777 == 0o600
    assert (data / "keys" / "admin.key.pub").exists() and (data / "keys" / "log.key.pub").exists()
    again = run("init", str(data), "--origin", "x.example/log", ok=False)
    assert again.exit_code == 2 and "already holds a ledger" in again.stderr


def test_append_get_checkpoint_proof_verify(live: SimpleNamespace) -> None:
    srv = ["--server", live.server.address]
    record_file = live.tmp / "shipment.json"
    record_file.write_text(json.dumps(SHIPMENT))
    out = json.loads(
        run("append", str(record_file), *srv, "--key", str(live.key), "--participant", "acme", "--json").stdout
    )
    seq = out["seq"]
    assert len(out["leaf_hash"]) == 64
    got = json.loads(run("get", str(seq), *srv, "--json").stdout)
    assert got["record"]["shipment"]["shipment_id"] == "SH-100"
    by_id = json.loads(run("get", "--record-id", out["record_id"], *srv, "--json").stdout)
    assert by_id["seq"] == seq

    lines = live.tmp / "many.jsonl"
    lines.write_text("\n".join(json.dumps(SHIPMENT) for _ in range(25)) + "\n")
    many = json.loads(run("append", str(lines), *srv, "--key", str(live.key), "--participant", "acme", "--json").stdout)
    assert [m["seq"] for m in many] == list(range(seq + 1, seq + 26))

    live.server.ledger.sign_checkpoint_now()
    cp_file = live.tmp / "old.note"
    run("checkpoint", *srv, "--out", str(cp_file))
    assert cp_file.read_text().startswith("cli.example.com/lotledger\n")
    inc = json.loads(run("proof", "inclusion", str(seq), *srv, "--json").stdout)
    assert inc["verified_against_stated_root"] and inc["tree_size"] >= seq + 1
    con = json.loads(run("proof", "consistency", "1", str(seq + 1), *srv, "--json").stdout)
    assert con["verified_against_stated_roots"]

    run("append", str(record_file), *srv, "--key", str(live.key), "--participant", "acme")
    live.server.ledger.sign_checkpoint_now()
    report = json.loads(run("verify", "--log-key", live.vkey, *srv, "--since", str(cp_file), "--json").stdout)
    assert report["ok"] and report["tree_size"] == live.server.ledger.size
    assert report["since_size"] == int(cp_file.read_text().splitlines()[1])


def test_refused_append_exits_1_with_the_reason(live: SimpleNamespace) -> None:
    bad = json.loads(json.dumps(SHIPMENT))
    bad["shipment"]["lots"][0]["quantity"]["amount"] = "-4"
    f = live.tmp / "bad.json"
    f.write_text(json.dumps(bad))
    size = live.server.ledger.size
    result = run(
        "append", str(f), "--server", live.server.address, "--key", str(live.key), "--participant", "acme", ok=False
    )
    assert result.exit_code == 1
    assert "INVALID_QUANTITY" in result.stderr and "shipment.lots[0].quantity.amount" in result.stderr
    assert live.server.ledger.size == size


def test_unreachable_server_exits_3(tmp_path: Path) -> None:
    result = run("checkpoint", "--server", "127.0.0.1:1", ok=False)
    assert result.exit_code == 3 and result.stderr.startswith("error: ")


def test_verify_data_dir_names_the_tampered_entry(live: SimpleNamespace) -> None:
    srv = ["--server", live.server.address]
    lines = shipments_file(live.tmp / "many.jsonl", "tamper", 12)
    results = json.loads(
        run("append", str(lines), *srv, "--key", str(live.key), "--participant", "acme", "--json").stdout
    )
    live.server.ledger.sign_checkpoint_now()
    live.server.stop(grace=1)

    clean = run("verify", "--log-key", str(live.data / "log.vkey"), "--data-dir", str(live.data), "--json")
    assert json.loads(clean.stdout)["ok"]

    target = results[7]["seq"]
    copy = live.tmp / "copy"
    shutil.copytree(live.data, copy)
    mdb = copy / "ledger" / "data.mdb"
    blob = bytearray(mdb.read_bytes())
    needle = b"SHIP-TAMPER-0007"
    # Copy-on-write leaves stale copies of pages in the file: flip the byte in every copy,
    # so the live page is certainly among them.
    at = blob.find(needle)
    assert at >= 0
    while at >= 0:
        blob[at + len(needle) - 1] ^= 0x01
        at = blob.find(needle, at + 1)
    mdb.write_bytes(bytes(blob))
    result = run("verify", "--log-key", live.vkey, "--data-dir", str(copy), ok=False)
    assert result.exit_code == 1
    assert f"entry {target}:" in result.stderr
    assert "Traceback" not in result.output


def test_verify_with_the_wrong_log_key_fails(live: SimpleNamespace, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other_vkey = run("init", str(other), "--origin", "cli.example.com/lotledger").stdout.strip()
    result = run("verify", "--log-key", other_vkey, "--server", live.server.address, ok=False)
    assert result.exit_code == 1 and "checkpoint" in result.stderr


def test_revoked_key_is_refused_by_the_cli(live: SimpleNamespace) -> None:
    srv = ["--server", live.server.address]
    from lotledger.signing.keys import VerifyKey

    key_id = VerifyKey.load(Path(f"{live.key}.pub")).key_id
    run("keys", "revoke", key_id, "--reason", "laptop stolen", *srv, "--key", str(live.data / "keys" / "admin.key"))
    f = live.tmp / "s.json"
    f.write_text(json.dumps(SHIPMENT))
    result = run("append", str(f), *srv, "--key", str(live.key), "--participant", "acme", ok=False)
    assert result.exit_code == 1 and "KEY_REVOKED" in result.stderr
    assert records_pb2.ROLE_SUPPLIER  # the role table and the CLI share names

    # The key history, as the verified log proves it: who registered each key, and when it was revoked.
    live.server.ledger.sign_checkpoint_now()  # (the commands are quick now: do not race the 50 ms cadence)
    vkey = str(live.data / "log.vkey")
    listed = json.loads(run("keys", "list", "--log-key", vkey, *srv, "--json", "--quiet").stdout)["keys"]
    acme = next(k for k in listed if k["key_id"] == key_id)
    assert acme["participant"] == "acme" and acme["role"] == "supplier"
    assert acme["revoked_seq"] > acme["registered_seq"] > 0 and acme["revoke_reason"] == "laptop stolen"
    admin = listed[0]
    assert admin["registered_seq"] == 0 and admin["role"] == "admin" and admin["revoked_seq"] is None
    text = run("keys", "list", "--log-key", vkey, *srv, "--quiet").stdout
    assert f"entry {acme['revoked_seq']}: laptop stolen" in text and "acme" in text
    # ...the same from a bundle, and resumed from a saved state
    bundle = live.tmp / "log.bundle"
    run("export", "--out", str(bundle), *srv, "--quiet")
    offline = json.loads(run("keys", "list", "--log-key", vkey, "--bundle", str(bundle), "--json", "--quiet").stdout)
    assert offline["keys"] == listed
    state = ["--state", str(live.tmp / "state")]
    run("verify", "--log-key", vkey, *srv, *state, "--quiet")
    resumed = json.loads(run("keys", "list", "--log-key", vkey, *srv, *state, "--json", "--quiet").stdout)
    assert resumed["keys"] == listed
    other_vkey = run("init", str(live.tmp / "other"), "--origin", "other.example.com/lotledger").stdout.strip()
    other = run("keys", "list", "--log-key", other_vkey, *srv, ok=False)
    assert other.exit_code == 1 and "checkpoint" in other.stderr  # not this log's key: nothing listed


def test_serve_refuses_a_served_directory_and_a_taken_port(live: SimpleNamespace) -> None:
    import subprocess
    import sys

    def serve(data: Path, listen: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "lotledger.cli.main", "serve", str(data), "--listen", listen]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60)

    busy = serve(live.data, "127.0.0.1:0")
    assert busy.returncode == 3 and "in use by another lotledger process" in busy.stderr
    other = live.tmp / "other"
    run("init", str(other), "--origin", "other.example.com/lotledger")
    taken = serve(other, live.server.address)
    assert taken.returncode == 2 and f"cannot listen on {live.server.address}" in taken.stderr
    assert "Traceback" not in busy.stderr + taken.stderr
