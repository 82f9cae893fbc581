"""Secrets: key files with unsafe permissions are refused with a message naming the file and
the fix; the log key can be an encrypted PEM whose passphrase comes from the environment or
a file; no RPC returns a private key."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cli_helpers import run
from mtls_helpers import Pki

from lotledger.rpc.client import ClientTls
from lotledger.rpc.server import LOG_KEY_PASSPHRASE_ENV, LedgerServer, ServerTls, is_loopback
from lotledger.signing.errors import InvalidKey, KeyFileError
from lotledger.signing.keys import SigningKey


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    (tmp_path / "ca").mkdir()
    return Pki(tmp_path / "ca")


def test_world_readable_tls_keys_are_refused(pki: Pki) -> None:
    cert, key = pki.issue("acme")
    os.chmod(key, 0o644)
    with pytest.raises(KeyFileError, match=rf"{key}.*chmod 600 {key}"):
        ClientTls.load(pki.dir / "ca.crt", cert, key)
    with pytest.raises(KeyFileError, match="chmod 600"):
        ServerTls.load(cert, key, pki.dir / "ca.crt")
    os.chmod(key, 0o600)
    assert ClientTls.load(pki.dir / "ca.crt", cert, key).key is not None


def test_world_readable_signing_key_is_refused_by_the_cli(tmp_path: Path) -> None:
    key = tmp_path / "acme.key"
    run("keys", "generate", str(key))
    os.chmod(key, 0o640)
    result = run("append", "-", "--key", str(key), "--participant", "acme", ok=False, input="{}")
    assert result.exit_code == 2
    assert f"chmod 600 {key}" in result.output


def test_world_readable_tls_key_is_refused_by_the_cli(pki: Pki) -> None:
    cert, key = pki.issue("acme")
    os.chmod(key, 0o604)
    result = run(
        "checkpoint",
        "--server",
        "127.0.0.1:9",
        "--tls-ca",
        str(pki.dir / "ca.crt"),
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(key),
        ok=False,
    )
    assert result.exit_code == 2 and f"chmod 600 {key}" in result.output


def test_ca_writes_keys_0600_and_refuses_a_readable_ca_key(tmp_path: Path) -> None:
    ca = tmp_path / "ca"
    run("ca", "init", str(ca))
    out = json.loads(run("ca", "issue", "--participant", "acme", str(ca), "--json").stdout)
    assert (os.stat(ca / "ca.key").st_mode & 0o777) == 0o600
    assert (os.stat(out["key"]).st_mode & 0o777) == 0o600
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(Path(out["cert"]).read_bytes())
    uris = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert uris.get_values_for_type(x509.UniformResourceIdentifier) == ["lotledger:participant:acme"]
    os.chmod(ca / "ca.key", 0o644)
    result = run("ca", "issue", "--participant", "globex", str(ca), ok=False)
    assert result.exit_code == 2 and "chmod 600" in result.output
    bad = run("ca", "issue", "--participant", "Not An Id", str(ca), ok=False)
    assert bad.exit_code == 2


def test_encrypted_log_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv(LOG_KEY_PASSPHRASE_ENV, "correct horse")
    run("init", str(data), "--origin", "enc.example.com/lotledger", "--encrypt-log-key")
    assert (data / "keys" / "log.key").read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    # with the passphrase from the environment
    LedgerServer(data, "127.0.0.1:0").stop(grace=0)
    # without it: a clear refusal naming the file and how to give the passphrase
    monkeypatch.delenv(LOG_KEY_PASSPHRASE_ENV)
    with pytest.raises(
        InvalidKey, match=rf"log key {data / 'keys' / 'log.key'} is encrypted.*{LOG_KEY_PASSPHRASE_ENV}"
    ):
        LedgerServer(data, "127.0.0.1:0")
    with pytest.raises(InvalidKey, match="cannot decrypt"):
        LedgerServer(data, "127.0.0.1:0", log_key_passphrase=b"wrong")
    # from a passphrase file (0600) through `serve`'s option: a wrong one exits 2 with the reason
    secret = tmp_path / "pass"
    secret.write_text("wrong\n")
    secret.chmod(0o600)
    result = run("serve", str(data), "--listen", "127.0.0.1:0", "--log-key-passphrase-file", str(secret), ok=False)
    assert result.exit_code == 2 and "cannot decrypt the log key" in result.output
    server = LedgerServer(data, "127.0.0.1:0", log_key_passphrase=b"correct horse")
    try:
        assert server.ledger.size == 1
    finally:
        server.stop(grace=0)
    assert SigningKey.load(data / "keys" / "admin.key")  # only the log key is encrypted


def test_plaintext_only_on_loopback(tmp_path: Path) -> None:
    assert is_loopback("127.0.0.1:50051") and is_loopback("[::1]:1") and is_loopback("localhost:1")
    assert not is_loopback("0.0.0.0:50051") and not is_loopback("10.1.2.3:1") and not is_loopback("plant.example:1")
    data = tmp_path / "data"
    run("init", str(data), "--origin", "x.example.com/lotledger")
    result = run("serve", str(data), "--listen", "0.0.0.0:0", ok=False)
    assert result.exit_code == 2 and "refusing to serve plaintext" in result.output
    partial = run("serve", str(data), "--listen", "0.0.0.0:0", "--tls-cert", str(data / "log.vkey"), ok=False)
    assert partial.exit_code == 2 and "needs all of" in partial.output


def test_no_rpc_returns_private_key_material(tmp_path: Path) -> None:
    """Every response field of the service is a public value: the generated descriptors carry
    no field that could hold a private key (a guard for future additions)."""
    from lotledger.v1 import ledger_service_pb2 as pb

    service = pb.DESCRIPTOR.services_by_name["LedgerService"]
    seen: set[str] = set()

    def walk(message: object) -> None:
        for f in message.fields:  # type: ignore[attr-defined]
            assert "private" not in f.name and "secret" not in f.name and "seed" not in f.name, f.full_name
            if f.message_type is not None and f.message_type.full_name not in seen:
                seen.add(f.message_type.full_name)
                walk(f.message_type)

    for method in service.methods:
        walk(method.output_type)
    assert seen
