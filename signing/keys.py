"""Ed25519 keys: the only module of lotledger that imports pyca/cryptography.

Raw 32-byte public keys on the wire; PEM PKCS8 private keys on disk, written atomically with
mode 0600 from the first byte, and refused when group or others can read them. cryptography's
exceptions are translated here, once, into lotledger.signing.errors.
"""

from __future__ import annotations

import functools
import hashlib
import os
import stat
import tempfile
from pathlib import Path

from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from lotledger.signing.errors import InvalidKey, InvalidSignature, KeyFileError

RECORD_CONTEXT = b"lotledger/record/v1\n"
PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64


def key_id(public_raw: bytes) -> str:
    """Lowercase hex SHA-256 of the raw public key (DESIGN section 3). Raises InvalidKey."""
    if len(public_raw) != PUBLIC_KEY_SIZE:
        raise InvalidKey(f"an Ed25519 public key is {PUBLIC_KEY_SIZE} bytes, got {len(public_raw)}")
    return hashlib.sha256(public_raw).hexdigest()


@functools.lru_cache(maxsize=4096)
def _public(raw: bytes) -> Ed25519PublicKey:
    # from_public_bytes decodes the point; caching it keeps verification the only cost.
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as e:
        raise InvalidKey(f"not an Ed25519 public key: {e}") from e


class VerifyKey:
    """An Ed25519 public key."""

    def __init__(self, raw: bytes):
        if len(raw) != PUBLIC_KEY_SIZE:
            raise InvalidKey(f"an Ed25519 public key is {PUBLIC_KEY_SIZE} bytes, got {len(raw)}")
        self._key = _public(bytes(raw))
        self.raw = bytes(raw)
        self.key_id = key_id(self.raw)

    @classmethod
    def from_raw(cls, raw: bytes) -> VerifyKey:
        return cls(raw)

    def verify(self, signature: bytes, message: bytes) -> None:
        """Raises InvalidSignature."""
        if len(signature) != SIGNATURE_SIZE:
            raise InvalidSignature(f"an Ed25519 signature is {SIGNATURE_SIZE} bytes, got {len(signature)}")
        try:
            self._key.verify(signature, message)
        except _CryptoInvalidSignature as e:
            raise InvalidSignature("signature does not verify") from e

    def to_pem(self) -> bytes:
        return self._key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    @classmethod
    def from_pem(cls, data: bytes) -> VerifyKey:
        """Raises InvalidKey for anything but an Ed25519 public key."""
        try:
            key = serialization.load_pem_public_key(data)
        except (ValueError, UnsupportedAlgorithm) as e:
            raise InvalidKey(f"not a PEM public key: {e}") from e
        if not isinstance(key, Ed25519PublicKey):
            raise InvalidKey(f"expected an Ed25519 public key, got {type(key).__name__}")
        return cls(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> VerifyKey:
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise KeyFileError(f"cannot read public key {path}: {e.strerror}") from e
        return cls.from_pem(data)

    def save(self, path: str | os.PathLike[str]) -> None:
        _write_atomic(Path(path), self.to_pem(), 0o644)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VerifyKey) and other.raw == self.raw

    def __hash__(self) -> int:
        return hash(self.raw)


class SigningKey:
    """An Ed25519 private key. Never printed, logged or sent anywhere."""

    def __init__(self, key: Ed25519PrivateKey):
        self._key = key
        self.public = VerifyKey(
            key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        )
        self.key_id = self.public.key_id

    def __repr__(self) -> str:
        return f"SigningKey(key_id={self.key_id[:16]}...)"

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_raw_seed(cls, seed: bytes) -> SigningKey:
        """Deterministic keys for tests and golden files. Raises InvalidKey."""
        try:
            return cls(Ed25519PrivateKey.from_private_bytes(seed))
        except ValueError as e:
            raise InvalidKey(f"an Ed25519 seed is 32 bytes: {e}") from e

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def to_pem(self, passphrase: bytes | None = None) -> bytes:
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
        )
        return self._key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)

    @classmethod
    def from_pem(cls, data: bytes, passphrase: bytes | None = None) -> SigningKey:
        """Raises InvalidKey (not PEM, not Ed25519, wrong or missing passphrase)."""
        try:
            key = serialization.load_pem_private_key(data, password=passphrase)
        except (ValueError, TypeError, UnsupportedAlgorithm) as e:
            raise InvalidKey(f"cannot load the private key: {e}") from e
        if not isinstance(key, Ed25519PrivateKey):
            raise InvalidKey(f"expected an Ed25519 private key, got {type(key).__name__}")
        return cls(key)

    @classmethod
    def load(cls, path: str | os.PathLike[str], passphrase: bytes | None = None) -> SigningKey:
        """Raises KeyFileError (missing, unreadable, or open to group/others) or InvalidKey."""
        p = Path(path)
        try:
            mode = p.stat().st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise KeyFileError(
                    f"private key {p} is accessible by group or others (mode {stat.S_IMODE(mode):o}); run: chmod 600 {p}"
                )
            data = p.read_bytes()
        except OSError as e:
            raise KeyFileError(f"cannot read private key {p}: {e.strerror}") from e
        return cls.from_pem(data, passphrase)

    def save(self, path: str | os.PathLike[str], passphrase: bytes | None = None) -> None:
        _write_atomic(Path(path), self.to_pem(passphrase), 0o600)

    def save_pair(self, path: str | os.PathLike[str]) -> None:
        """Write the private key to `path` (0600) and the public key to `path.pub`."""
        self.save(path)
        self.public.save(f"{path}.pub")


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Temp file in the same directory (created with `mode`), fsync, rename, fsync the dir."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def sign_record(key: SigningKey, record_bytes: bytes) -> bytes:
    return key.sign(RECORD_CONTEXT + record_bytes)


def verify_record(public_raw: bytes, record_bytes: bytes, signature: bytes) -> None:
    """The hot path: ~6,000/s per core, and pyca releases the GIL while it runs.
    Raises InvalidSignature or InvalidKey."""
    if len(signature) != SIGNATURE_SIZE:
        raise InvalidSignature(f"an Ed25519 signature is {SIGNATURE_SIZE} bytes, got {len(signature)}")
    try:
        _public(public_raw).verify(signature, RECORD_CONTEXT + record_bytes)
    except _CryptoInvalidSignature as e:
        raise InvalidSignature("signature does not verify") from e
