"""The CLI over mTLS: `--tls-ca/--tls-cert/--tls-key` (or their env vars) on client commands,
`serve --tls-cert/--tls-key/--client-ca` in a real process, and the access rule's parsing."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from cli_helpers import run
from helpers import free_port
from mtls_helpers import LOT_ACME, LOT_GLOBEX

from lotledger.ledger.core import access
from lotledger.ledger.errors import PermissionDenied, Unauthenticated
from lotledger.v1 import records_pb2


def tls_args(m: SimpleNamespace, participant: str) -> list[str]:
    cert, key = m.pki.issue(participant)
    return [
        "--server",
        m.server.address,
        "--tls-ca",
        str(m.pki.dir / "ca.crt"),
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(key),
    ]


def test_client_commands_take_tls_options(mtls: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    acme = tls_args(mtls, "acme")
    cp = json.loads(run("checkpoint", *acme, "--json").stdout)
    assert cp["tree_size"] >= 1
    assert json.loads(run("get", str(mtls.seqs["acme_ship"]), *acme, "--json").stdout)["seq"] == mtls.seqs["acme_ship"]
    refused = run("get", str(mtls.seqs["globex_ship"]), *acme, ok=False)
    assert refused.exit_code == 1 and "READ_NOT_ALLOWED" in refused.output
    assert run("trace", "down", LOT_ACME, *acme, "--json").exit_code == 0
    assert run("trace", "down", LOT_GLOBEX, *acme, ok=False).exit_code == 1
    # env vars work as well as options
    aud = tls_args(mtls, "aud")
    for name, value in zip(("LOTLEDGER_TLS_CA", "LOTLEDGER_TLS_CERT", "LOTLEDGER_TLS_KEY"), aud[3::2], strict=True):
        monkeypatch.setenv(name, value)
    assert run("trace", "down", LOT_GLOBEX, "--server", mtls.server.address, "--json").exit_code == 0
    vkey = mtls.server.ledger.log_verifier_key
    assert run("verify", "--log-key", vkey, "--server", mtls.server.address).exit_code == 0


def test_client_without_certificate_exits_unreachable(mtls: SimpleNamespace) -> None:
    result = run("checkpoint", "--server", mtls.server.address, "--tls-ca", str(mtls.pki.dir / "ca.crt"), ok=False)
    assert result.exit_code == 3 and "TLS handshake" in result.output


def test_serve_with_mtls_in_a_process(tmp_path: Path) -> None:
    data, ca = tmp_path / "data", tmp_path / "ca"
    run("init", str(data), "--origin", "tls.example.com/lotledger")
    run("ca", "init", str(ca))
    run("ca", "issue", "--server", "127.0.0.1", str(ca))
    run("ca", "issue", "--participant", "admin", str(ca))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "lotledger.cli.main", "serve", str(data), "--listen", f"127.0.0.1:{port}"]
        + [
            "--tls-cert",
            str(ca / "server.crt"),
            "--tls-key",
            str(ca / "server.key"),
            "--client-ca",
            str(ca / "ca.crt"),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        args = ["--server", f"127.0.0.1:{port}", "--tls-ca", str(ca / "ca.crt")]
        admin = [*args, "--tls-cert", str(ca / "admin.crt"), "--tls-key", str(ca / "admin.key")]
        deadline = time.monotonic() + 20
        while run("checkpoint", *admin, "--json", ok=False).exit_code != 0:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.2)
        partner_key = tmp_path / "acme.key"
        run("keys", "generate", str(partner_key))
        run(
            "keys",
            "register",
            "--id",
            "acme",
            "--role",
            "supplier",
            "--public-key",
            f"{partner_key}.pub",
            "--key",
            str(data / "keys" / "admin.key"),
            *admin,
        )
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert "mTLS: client certificates required" in err


def test_participant_of_certificate_identities() -> None:
    def auth(**kw: list[bytes]) -> dict[str, list[bytes]]:
        return {"transport_security_type": [b"ssl"], **kw}

    assert access.participant_of(auth(x509_subject_alternative_name=[b"lotledger:participant:acme"])) == "acme"
    assert access.participant_of(auth(x509_common_name=[b"acme"])) == "acme"
    # a SAN URI wins over the CN; two different URIs name nobody; other SANs are ignored
    assert (
        access.participant_of(
            auth(
                x509_subject_alternative_name=[b"lotledger:participant:acme", b"plant.example"], x509_common_name=[b"x"]
            )
        )
        == "acme"
    )
    two = [b"lotledger:participant:acme", b"lotledger:participant:globex"]
    assert access.participant_of(auth(x509_subject_alternative_name=two)) is None
    roles = {"acme": "supplier"}.get
    assert access.caller_from({}, roles, mtls=False) == access.OPEN
    assert access.caller_from({}, roles, mtls=True) == access.Caller(tls=True)  # fails closed
    nobody = access.caller_from(auth(x509_subject_alternative_name=two), roles, mtls=True)
    with pytest.raises(Unauthenticated):
        access.require_known(nobody)
    with pytest.raises(PermissionDenied):
        access.require_known(access.caller_from(auth(x509_common_name=[b"ghost"]), roles, mtls=True))


def test_is_party() -> None:
    r = records_pb2.Record(record_id="x", submitter="plant")
    r.shipment.from_participant, r.shipment.to_participant = "plant", "dist"
    assert access.is_party("plant", r) and access.is_party("dist", r) and not access.is_party("acme", r)
    m = records_pb2.Record(record_id="y", submitter="plant")
    m.material_received.supplier = "acme"
    assert access.is_party("acme", m) and not access.is_party("globex", m)
