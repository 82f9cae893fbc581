"""Ed25519 keys: RFC 8032 vectors, key ids, record signatures, refused public keys, and PEM
files with safe permissions written atomically."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, rsa, x25519

from lotledger.signing import keys
from lotledger.signing.errors import InvalidKey, InvalidSignature, KeyFileError, SigningError
from lotledger.signing.keys import RECORD_CONTEXT, SigningKey, VerifyKey, key_id, sign_record, verify_record

# RFC 8032 section 7.1, tests 1 and 2: (seed, public key, message, signature).
RFC8032 = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
]

# The 8 canonical encodings of the points of small order (libsodium's blocklist). With the
# identity as public key, (R = identity, S = 0) verifies for every message under OpenSSL.
SMALL_ORDER = [
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
]
IDENTITY = bytes.fromhex(SMALL_ORDER[2])
NOT_ON_CURVE = (2).to_bytes(32, "little")  # (y^2 - 1) / (d y^2 + 1) is not a square for y = 2
NON_CANONICAL = bytes.fromhex("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")  # y = p

SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")  # SubjectPublicKeyInfo, id-Ed25519, BIT STRING
PKCS8_PREFIX = bytes.fromhex("302e020100300506032b657004220420")  # PrivateKeyInfo v0, id-Ed25519, seed


def _pem_der(pem: bytes, label: str) -> bytes:
    lines = pem.decode().strip().splitlines()
    assert lines[0] == f"-----BEGIN {label}-----" and lines[-1] == f"-----END {label}-----"
    return base64.b64decode("".join(lines[1:-1]))


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


@pytest.fixture
def umask() -> Iterator[Callable[[int], None]]:
    old = os.umask(0o022)
    os.umask(old)

    def set_umask(mask: int) -> None:
        os.umask(mask)

    yield set_umask
    os.umask(old)


# ---- ids, vectors, signatures ----------------------------------------------------------------


@pytest.mark.parametrize(("seed", "public", "message", "signature"), RFC8032)
def test_rfc8032_vectors(seed: str, public: str, message: str, signature: str) -> None:
    key = SigningKey.from_raw_seed(bytes.fromhex(seed))
    assert key.public.raw == bytes.fromhex(public)
    assert key.sign(bytes.fromhex(message)) == bytes.fromhex(signature)
    VerifyKey.from_raw(bytes.fromhex(public)).verify(bytes.fromhex(signature), bytes.fromhex(message))


def test_key_id_is_lowercase_hex_sha256_of_the_raw_key() -> None:
    raw = bytes.fromhex(RFC8032[0][1])
    expected = hashlib.sha256(raw).hexdigest()
    assert key_id(raw) == expected == expected.lower() and len(expected) == 64
    key = SigningKey.from_raw_seed(bytes.fromhex(RFC8032[0][0]))
    assert key.key_id == key.public.key_id == expected
    assert key_id(b"\x00" * 32) == hashlib.sha256(b"\x00" * 32).hexdigest()  # an id, not a validation
    for bad in (b"", b"\x01" * 31, b"\x01" * 33, raw + b"\x00"):
        with pytest.raises(InvalidKey):
            key_id(bad)


def test_record_signature_is_ed25519_over_context_and_bytes() -> None:
    assert RECORD_CONTEXT == b"lotledger/record/v1\n"
    key = SigningKey.from_raw_seed(bytes(range(32)))
    data = b"record bytes"
    sig = sign_record(key, data)
    assert sig == key.sign(b"lotledger/record/v1\nrecord bytes") and len(sig) == 64
    verify_record(key.public.raw, data, sig)
    key.public.verify(sig, RECORD_CONTEXT + data)
    with pytest.raises(InvalidSignature):
        verify_record(key.public.raw, data, key.sign(data))  # no context: not a record signature


def test_any_flipped_bit_fails() -> None:
    key = SigningKey.generate()
    data = b"lot 42 shipped to plant 7"
    sig = sign_record(key, data)
    for bit in range(len(data) * 8):
        with pytest.raises(InvalidSignature):
            verify_record(key.public.raw, _flip(data, bit), sig)
    for bit in range(512):
        with pytest.raises(InvalidSignature):
            verify_record(key.public.raw, data, _flip(sig, bit))
        with pytest.raises(InvalidSignature):
            key.public.verify(_flip(sig, bit), RECORD_CONTEXT + data)
    outcomes = []
    for bit in range(256):
        # A flipped key bit gives another valid key (InvalidSignature) or no key at all (InvalidKey).
        with pytest.raises((InvalidSignature, InvalidKey)) as info:
            verify_record(_flip(key.public.raw, bit), data, sig)
        outcomes.append(info.type)
    assert outcomes.count(InvalidSignature) > 64 and InvalidKey in outcomes


@pytest.mark.parametrize("length", [0, 1, 32, 63, 65, 128])
def test_signature_of_wrong_length_is_an_invalid_signature(length: int) -> None:
    key = SigningKey.generate()
    sig = (sign_record(key, b"r") * 2)[:length]
    with pytest.raises(InvalidSignature):
        verify_record(key.public.raw, b"r", sig)
    with pytest.raises(InvalidSignature):
        key.public.verify(sig, RECORD_CONTEXT + b"r")


@pytest.mark.parametrize("raw", [bytes.fromhex(h) for h in SMALL_ORDER] + [NOT_ON_CURVE, NON_CANONICAL])
def test_invalid_and_small_order_public_keys_are_refused(raw: bytes) -> None:
    with pytest.raises(InvalidKey):
        VerifyKey.from_raw(raw)
    with pytest.raises(InvalidKey):
        verify_record(raw, b"r", bytes(64))


def test_identity_key_cannot_be_used_to_forge() -> None:
    forged = IDENTITY + bytes(32)  # R = identity, S = 0: OpenSSL alone accepts it for any message
    for message in (b"", b"anything at all"):
        with pytest.raises(InvalidKey):
            verify_record(IDENTITY, message, forged)


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_public_key_of_wrong_length_is_refused(length: int) -> None:
    with pytest.raises(InvalidKey):
        VerifyKey.from_raw(b"\x09" * length)
    with pytest.raises(InvalidKey):
        verify_record(b"\x09" * length, b"r", bytes(64))


def test_verify_keys_compare_and_hash_by_raw_bytes() -> None:
    key = SigningKey.from_raw_seed(bytes(range(32)))
    a, b = VerifyKey.from_raw(key.public.raw), VerifyKey.from_pem(key.public.to_pem())
    other = SigningKey.generate().public
    assert a == b == key.public and hash(a) == hash(b) and len({a, b, key.public, other}) == 2
    assert a != other and a != key.public.raw


def test_seed_must_be_32_bytes() -> None:
    for seed in (b"", bytes(31), bytes(33)):
        with pytest.raises(InvalidKey):
            SigningKey.from_raw_seed(seed)


def test_verify_record_is_cached_and_thread_safe() -> None:
    assert keys._public.cache_info().maxsize == 4096
    signers = [SigningKey.generate() for _ in range(8)]
    jobs = [(k.public.raw, bytes([i]), sign_record(k, bytes([i]))) for i, k in enumerate(signers * 25)]

    def check(job: tuple[bytes, bytes, bytes]) -> tuple[bool, bool]:
        pub, data, sig = job
        verify_record(pub, data, sig)
        try:
            verify_record(pub, data + b"!", sig)
        except InvalidSignature:
            return True, True
        return True, False

    with ThreadPoolExecutor(4) as pool:
        assert all(ok and refused for ok, refused in pool.map(check, jobs))
    assert keys._public.cache_info().hits > 0


def test_private_key_never_shows_in_repr() -> None:
    seed = bytes(range(32))
    key = SigningKey.from_raw_seed(seed)
    text = repr(key) + str(key) + repr(key.public)
    assert key.key_id[:16] in repr(key)
    assert seed.hex() not in text and "PRIVATE" not in text and base64.b64encode(seed).decode() not in text


# ---- PEM ------------------------------------------------------------------------------------


def test_pem_encodings_are_standard() -> None:
    seed = bytes(range(32))
    key = SigningKey.from_raw_seed(seed)
    assert _pem_der(key.to_pem(), "PRIVATE KEY") == PKCS8_PREFIX + seed
    assert _pem_der(key.public.to_pem(), "PUBLIC KEY") == SPKI_PREFIX + key.public.raw
    assert _pem_der(key.to_pem(b"pw"), "ENCRYPTED PRIVATE KEY")  # PKCS8 EncryptedPrivateKeyInfo


def test_pem_round_trip_plain_and_with_passphrase() -> None:
    key = SigningKey.generate()
    assert SigningKey.from_pem(key.to_pem()).public == key.public
    encrypted = key.to_pem(passphrase=b"s3cret")
    assert b"ENCRYPTED" in encrypted and key.to_pem() not in encrypted
    assert SigningKey.from_pem(encrypted, passphrase=b"s3cret").public == key.public
    for bad in (b"wrong", b"s3cre", b""):
        with pytest.raises(InvalidKey):
            SigningKey.from_pem(encrypted, passphrase=bad)
    with pytest.raises(InvalidKey):
        SigningKey.from_pem(encrypted)  # passphrase missing
    with pytest.raises(InvalidKey):
        SigningKey.from_pem(key.to_pem(), passphrase=b"s3cret")  # given for a plain key
    with pytest.raises(InvalidKey):
        key.to_pem(passphrase=b"")  # never silently unencrypted
    assert VerifyKey.from_pem(key.public.to_pem()) == key.public


def _foreign_private_pems() -> list[bytes]:
    enc = (serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return [
        rsa.generate_private_key(public_exponent=65537, key_size=1024).private_bytes(*enc),
        x25519.X25519PrivateKey.generate().private_bytes(*enc),
        ed448.Ed448PrivateKey.generate().private_bytes(*enc),
        ec.generate_private_key(ec.SECP256R1()).private_bytes(*enc),
    ]


def test_foreign_and_garbage_keys_are_refused() -> None:
    garbage = [
        b"",
        b"junk",
        b"-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n",
        b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n",  # truncated
    ]
    public_pem = SigningKey.generate().public.to_pem()
    for pem in [*_foreign_private_pems(), *garbage, public_pem]:
        with pytest.raises(InvalidKey):
            SigningKey.from_pem(pem)
    spki = (serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    foreign_public = [
        rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key().public_bytes(*spki),
        x25519.X25519PrivateKey.generate().public_key().public_bytes(*spki),
        ed448.Ed448PrivateKey.generate().public_key().public_bytes(*spki),
    ]
    small_order_spki = (
        b"-----BEGIN PUBLIC KEY-----\n" + base64.b64encode(SPKI_PREFIX + IDENTITY) + b"\n-----END PUBLIC KEY-----\n"
    )
    for pem in [*foreign_public, *garbage, SigningKey.generate().to_pem(), small_order_spki]:
        with pytest.raises(InvalidKey):
            VerifyKey.from_pem(pem)


# ---- files ----------------------------------------------------------------------------------


def test_save_pair_writes_0600_private_and_0644_public(tmp_path: Path, umask: Callable[[int], None]) -> None:
    for mask in (0o000, 0o022, 0o077, 0o277):
        umask(mask)
        key = SigningKey.generate()
        path = tmp_path / f"k{mask:o}.key"
        key.save_pair(path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(Path(f"{path}.pub").stat().st_mode) == 0o644
        assert SigningKey.load(path).public == key.public
        assert VerifyKey.load(f"{path}.pub") == key.public
        assert _pem_der(Path(f"{path}.pub").read_bytes(), "PUBLIC KEY") == SPKI_PREFIX + key.public.raw
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        name for mask in ("0", "22", "77", "277") for name in (f"k{mask}.key", f"k{mask}.key.pub")
    ), "a temporary file was left behind"


def test_save_writes_only_the_private_file_and_accepts_str_paths(tmp_path: Path) -> None:
    key = SigningKey.generate()
    key.save(str(tmp_path / "only.key"))
    assert [p.name for p in tmp_path.iterdir()] == ["only.key"]
    key.save(tmp_path / "sub" / "dir" / "nested.key")  # parents are created
    assert SigningKey.load(tmp_path / "sub" / "dir" / "nested.key").public == key.public


def test_private_key_is_0600_from_creation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    created: list[tuple[str, int]] = []
    real_open = os.open

    def spy_open(path: Any, flags: int, mode: int = 0o777, *args: Any, **kwargs: Any) -> int:
        if flags & os.O_CREAT and str(path).startswith(str(tmp_path)):
            created.append((str(path), mode))
        return real_open(path, flags, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy_open)
    SigningKey.generate().save(tmp_path / "k.key", passphrase=b"pw")
    SigningKey.generate().save(tmp_path / "k2.key")
    monkeypatch.undo()
    assert len(created) == 2
    for path, mode in created:
        assert Path(path).parent == tmp_path and Path(path).name != "k.key"  # a temp file, then renamed
        assert mode & 0o077 == 0, f"{path} was created with mode {mode:o}"


def test_save_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "k.key"
    old = SigningKey.generate()
    old.save(path)
    os.chmod(path, 0o644)  # replaced, not rewritten in place: the new file is 0600 again
    new = SigningKey.generate()
    new.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and SigningKey.load(path).public == new.public

    def crash(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyFileError, match="No space left"):
        SigningKey.generate().save(path)
    monkeypatch.undo()
    assert SigningKey.load(path).public == new.public, "a failed save must leave the old key intact"
    assert [p.name for p in tmp_path.iterdir()] == ["k.key"], "a failed save must not leave a temp file"


def test_save_into_unwritable_place_is_a_key_file_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(KeyFileError):
        SigningKey.generate().save(blocker / "k.key")
    with pytest.raises(KeyFileError):
        SigningKey.generate().public.save(blocker / "k.pub")


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o620, 0o602, 0o610, 0o601, 0o666, 0o777])
def test_private_key_open_to_group_or_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "k.key"
    SigningKey.generate().save(path)
    os.chmod(path, mode)
    with pytest.raises(KeyFileError, match="chmod 600") as info:
        SigningKey.load(path)
    assert str(path) in str(info.value)


def test_owner_only_modes_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    key = SigningKey.generate()
    key.save(path, passphrase=b"pw")
    for mode in (0o600, 0o400):
        os.chmod(path, mode)
        assert SigningKey.load(path, passphrase=b"pw").public == key.public
    with pytest.raises(InvalidKey):
        SigningKey.load(path, passphrase=b"nope")
    with pytest.raises(InvalidKey):
        SigningKey.load(path)


def test_unreadable_key_files(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError):
        SigningKey.load(tmp_path / "missing.key")
    with pytest.raises(KeyFileError):
        VerifyKey.load(tmp_path / "missing.pub")
    (tmp_path / "dir").mkdir(mode=0o700)
    with pytest.raises(KeyFileError):
        SigningKey.load(tmp_path / "dir")
    garbage = tmp_path / "garbage.key"
    garbage.write_bytes(b"not a key")
    os.chmod(garbage, 0o600)
    with pytest.raises(InvalidKey):
        SigningKey.load(garbage)


def test_all_errors_are_signing_errors() -> None:
    for error in (InvalidKey, InvalidSignature, KeyFileError):
        assert issubclass(error, SigningError)
