"""A wrong key file is named, with the kind of key that was expected (issue 20: a wrong
`--log-key` file said what a key looks like, not which file was wrong).

Real key files (made by `keys generate` and `init`), each given where another kind belongs;
every case fails before any server is needed, with exit 2 (usage).
"""

from __future__ import annotations

import json
from pathlib import Path

from cli_helpers import SHIPMENT, run

from lotledger.signing.keys import SigningKey


def keys_in(tmp_path: Path) -> tuple[Path, Path]:
    """A private key (0600) and its .pub, as `lotledger keys generate` writes them."""
    private = tmp_path / "acme.key"
    SigningKey.generate().save_pair(private)
    return private, Path(f"{private}.pub")


def test_a_public_key_given_as_the_log_key_names_the_file_and_the_kind(tmp_path: Path) -> None:
    _, public = keys_in(tmp_path)
    result = run("verify", "--log-key", str(public), "--data-dir", str(tmp_path), ok=False)
    assert result.exit_code == 2
    assert f"--log-key: the file {public} is not a log verifier key" in result.stderr
    assert "log.vkey" in result.stderr


def test_a_mistyped_log_key_value_is_quoted(tmp_path: Path) -> None:
    result = run("verify", "--log-key", "origin+zz+AAAA", "--data-dir", str(tmp_path), ok=False)
    assert result.exit_code == 2 and "the value 'origin+zz+AAAA' is not a log verifier key" in result.stderr


def test_a_public_key_given_as_the_signing_key_names_the_file_and_the_kind(tmp_path: Path) -> None:
    _, public = keys_in(tmp_path)
    public.chmod(0o600)  # past the permission check: the content is what is wrong
    record = tmp_path / "shipment.json"
    record.write_text(json.dumps(SHIPMENT))
    result = run("append", str(record), "--key", str(public), "--participant", "acme", ok=False)
    assert result.exit_code == 2
    assert f"{public}: expected an Ed25519 private key" in result.stderr


def test_a_private_key_given_as_the_public_key_names_the_file_and_the_kind(tmp_path: Path) -> None:
    private, _ = keys_in(tmp_path)
    admin = tmp_path / "admin.key"
    SigningKey.generate().save(admin)
    result = run(
        "keys", "register", "--id", "x", "--role", "supplier", "--public-key", str(private), "--key", str(admin),
        ok=False,
    )  # fmt: skip
    assert result.exit_code == 2
    assert f"{private}: expected an Ed25519 public key" in result.stderr


def test_tls_files_of_the_wrong_kind_are_named_before_connecting(tmp_path: Path) -> None:
    """gRPC would only report a failed handshake after the connect timeout."""
    ca = tmp_path / "ca"
    run("ca", "init", str(ca))
    run("ca", "issue", "--participant", "acme", str(ca))
    _, public = keys_in(tmp_path)
    public.chmod(0o600)
    good = {"--tls-ca": ca / "ca.crt", "--tls-cert": ca / "acme.crt", "--tls-key": ca / "acme.key"}
    for option, wrong, kind in (
        ("--tls-ca", public, "a CA certificate"),
        ("--tls-cert", ca / "acme.key", "a certificate"),
        ("--tls-key", public, "a private key"),
    ):
        given = {**good, option: wrong}
        args = [word for name, path in given.items() for word in (name, str(path))]
        result = run("get", "0", "--server", "127.0.0.1:9", *args, ok=False)
        assert result.exit_code == 2, result.output
        assert f"{option}: {wrong} is not {kind}" in result.stderr
