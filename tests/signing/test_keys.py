"""Ed25519 keys: ids, record signatures, PEM files with safe permissions."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa, x25519

from lotledger.signing.errors import InvalidKey, InvalidSignature, KeyFileError
from lotledger.signing.keys import RECORD_CONTEXT, SigningKey, VerifyKey, key_id, sign_record, verify_record


def test_key_id_is_sha256_of_the_raw_key() -> None:
    key = SigningKey.from_raw_seed(bytes(32))
    assert key.key_id == hashlib.sha256(key.public.raw).hexdigest() == key_id(key.public.raw)
    with pytest.raises(InvalidKey):
        key_id(b"short")


def test_record_signature_covers_context_and_bytes() -> None:
    key = SigningKey.generate()
    data = b"record bytes"
    sig = sign_record(key, data)
    verify_record(key.public.raw, data, sig)
    key.public.verify(sig, RECORD_CONTEXT + data)
    for bad_data, bad_sig, bad_key in [
        (b"record bytez", sig, key.public.raw),
        (data, sig[:-1] + bytes([sig[-1] ^ 1]), key.public.raw),
        (data, sig, SigningKey.generate().public.raw),
        (data, sig[:63], key.public.raw),
    ]:
        with pytest.raises(InvalidSignature):
            verify_record(bad_key, bad_data, bad_sig)
    with pytest.raises(InvalidSignature):
        key.public.verify(key.sign(data), RECORD_CONTEXT + data)  # no context: not a record signature


def test_pem_round_trip_modes_and_atomicity(tmp_path: Path) -> None:
    key = SigningKey.generate()
    path = tmp_path / "k.key"
    key.save_pair(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.key", "k.key.pub"]
    assert SigningKey.load(path).key_id == key.key_id
    assert VerifyKey.load(f"{path}.pub") == key.public
    key.save(tmp_path / "enc.key", passphrase=b"s3cret")
    assert SigningKey.load(tmp_path / "enc.key", passphrase=b"s3cret").key_id == key.key_id
    with pytest.raises(InvalidKey):
        SigningKey.load(tmp_path / "enc.key", passphrase=b"wrong")


def test_world_readable_private_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    SigningKey.generate().save(path)
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        SigningKey.load(path)
    with pytest.raises(KeyFileError):
        SigningKey.load(tmp_path / "missing.key")


def test_foreign_keys_are_refused(tmp_path: Path) -> None:
    rsa_pem = rsa.generate_private_key(public_exponent=65537, key_size=1024).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    x_pem = x25519.X25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    for pem in (rsa_pem, x_pem, b"-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n", b"junk"):
        with pytest.raises(InvalidKey):
            SigningKey.from_pem(pem)
    with pytest.raises(InvalidKey):
        VerifyKey.from_pem(b"junk")
    with pytest.raises(InvalidKey):
        VerifyKey(b"\x00" * 31)


def test_private_key_never_shows_in_repr() -> None:
    key = SigningKey.generate()
    assert "PRIVATE" not in repr(key) and key.key_id[:16] in repr(key)
