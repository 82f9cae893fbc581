"""Ed25519 keys: the only module of lotledger that imports pyca/cryptography.

Why one module: every other part of lotledger sees raw 32-byte public keys, 64-byte
signatures and the errors of lotledger.signing.errors, so swapping the crypto library, or
auditing how keys are handled, touches this file alone. cryptography's exceptions are
translated here, once, into ours.

On disk: private keys are PEM PKCS8 (unencrypted unless a passphrase is given), written
atomically with mode 0600 from the moment the file exists, and refused when group or others
have any access to them. Public keys are PEM SubjectPublicKeyInfo (`.pub`, mode 0644).
Nothing here prints or logs key material.
"""

from __future__ import annotations

import functools
import hashlib
import os
import stat
from pathlib import Path
from typing import TypeAlias

from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from lotledger.signing.errors import InvalidKey, InvalidSignature, KeyFileError
from lotledger.signing.files import atomic_write

__all__ = [
    "PUBLIC_KEY_SIZE",
    "RECORD_CONTEXT",
    "SEED_SIZE",
    "SIGNATURE_SIZE",
    "SigningKey",
    "VerifyKey",
    "key_id",
    "read_private_file",
    "sign_record",
    "verify_record",
    "write_private_file",
    "write_public_file",
]

RECORD_CONTEXT = b"lotledger/record/v1\n"
"""Prefix of every record signature, so that a record signature can never be replayed as a
signature over anything else (a checkpoint, a note) made with the same key, and vice versa."""

PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64
SEED_SIZE = 32

_PRIVATE_MODE = 0o600
_PUBLIC_MODE = 0o644
_PathLike: TypeAlias = str | os.PathLike[str]

# ---- Ed25519 point validation ------------------------------------------------------------
# OpenSSL accepts any 32 bytes as an Ed25519 public key. Two kinds must be refused here:
# encodings that are not a curve point at all (RFC 8032 section 5.1.3 says decoding fails), and
# the 8 points of small order: with the identity as public key, the signature
# (R = identity, S = 0) verifies for EVERY message under OpenSSL, so a registered weak key
# would let anyone sign as its owner. The check runs once per key (see _public's cache).
_P = 2**255 - 19
_D = (-121665 * pow(121666, -1, _P)) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _decode_point(raw: bytes) -> tuple[int, int] | None:
    """RFC 8032 5.1.3 point decoding; None if `raw` does not encode a point."""
    y = int.from_bytes(raw, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= _P:
        return None  # non-canonical encoding
    u = (y * y - 1) % _P
    v = (_D * y * y + 1) % _P
    x = (u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P)) % _P
    vxx = (v * x * x) % _P
    if vxx == (-u) % _P:
        x = (x * _SQRT_M1) % _P
    elif vxx != u:
        return None  # (y^2 - 1) / (d y^2 + 1) has no square root
    if x == 0 and sign:
        return None
    if x & 1 != sign:
        x = _P - x
    return x, y


def _is_small_order(point: tuple[int, int]) -> bool:
    """True when [8]P is the identity, i.e. P is one of the 8 points of order 1, 2, 4 or 8.

    Three doublings in projective coordinates (X:Y:Z), twisted Edwards with a = -1
    ("dbl-2008-bbjlp"); no inversions, so this costs a few microseconds.
    """
    x, y = point
    z = 1
    for _ in range(3):
        b = (x + y) * (x + y) % _P
        c = x * x % _P
        d = y * y % _P
        e = -c % _P
        f = (e + d) % _P
        j = (f - 2 * z * z) % _P
        x, y, z = (b - c - d) * j % _P, f * (e - d) % _P, f * j % _P
    return x == 0 and y == z


def _check_point(raw: bytes) -> None:
    """Raises InvalidKey unless `raw` is a canonical Ed25519 point of more than small order."""
    point = _decode_point(raw)
    if point is None:
        raise InvalidKey("not an Ed25519 public key: the 32 bytes do not encode a curve point")
    if _is_small_order(point):
        raise InvalidKey("refusing an Ed25519 public key of small order (it would accept forged signatures)")


@functools.lru_cache(maxsize=4096)
def _public(raw: bytes) -> Ed25519PublicKey:
    """The pyca key object for a raw key, validated once and then cached.

    Why cached: decoding and checking the point costs more than a verification, and the hot
    path sees the same few thousand participant keys over and over. lru_cache is thread-safe and holds no lock while the caller verifies. Failures raise
    and are therefore not cached.

    Raises InvalidKey.
    """
    if len(raw) != PUBLIC_KEY_SIZE:
        raise InvalidKey(f"an Ed25519 public key is {PUBLIC_KEY_SIZE} bytes, got {len(raw)}")
    _check_point(raw)
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, UnsupportedAlgorithm) as e:
        raise InvalidKey(f"not an Ed25519 public key: {e}") from e


def key_id(public_raw: bytes) -> str:
    """Lowercase hex SHA-256 of the 32-byte raw public key: how records and the registry name
    a key without carrying it. Only the length is checked (this is an identifier, not a
    validation; VerifyKey.from_raw validates).

    Raises InvalidKey if `public_raw` is not 32 bytes.
    """
    if len(public_raw) != PUBLIC_KEY_SIZE:
        raise InvalidKey(f"an Ed25519 public key is {PUBLIC_KEY_SIZE} bytes, got {len(public_raw)}")
    return hashlib.sha256(public_raw).hexdigest()


class VerifyKey:
    """An Ed25519 public key, validated on construction; equal and hashed by its raw bytes."""

    __slots__ = ("_key", "_key_id", "_raw")

    def __init__(self, raw: bytes) -> None:
        """Prefer VerifyKey.from_raw. Raises InvalidKey (see from_raw)."""
        raw = bytes(raw)
        self._key = _public(raw)
        self._raw = raw
        self._key_id = key_id(raw)

    @classmethod
    def from_raw(cls, raw: bytes) -> VerifyKey:
        """The key for 32 raw bytes as sent on the wire.

        Raises InvalidKey if `raw` is not 32 bytes, not a canonical curve point, or a
        small-order point (one that would accept forged signatures).
        """
        return cls(raw)

    @property
    def raw(self) -> bytes:
        """The 32-byte RFC 8032 encoding: what goes on the wire and into key ids."""
        return self._raw

    @property
    def key_id(self) -> str:
        """key_id(self.raw)."""
        return self._key_id

    def verify(self, signature: bytes, message: bytes) -> None:
        """Check an Ed25519 signature over exactly `message`.

        Raises InvalidSignature if it does not verify, including when it is not 64 bytes.
        """
        if len(signature) != SIGNATURE_SIZE:
            raise InvalidSignature(f"an Ed25519 signature is {SIGNATURE_SIZE} bytes, got {len(signature)}")
        try:
            self._key.verify(signature, message)
        except _CryptoInvalidSignature as e:
            raise InvalidSignature("Ed25519 signature does not verify") from e

    def to_pem(self) -> bytes:
        """PEM SubjectPublicKeyInfo, the form every other tool (openssl, ssh-keygen -m) reads."""
        return self._key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    @classmethod
    def from_pem(cls, data: bytes) -> VerifyKey:
        """Parse a PEM SubjectPublicKeyInfo.

        Raises InvalidKey for anything but a valid Ed25519 public key (garbage, RSA, X25519...).
        """
        try:
            key = serialization.load_pem_public_key(data)
        except (ValueError, TypeError, UnsupportedAlgorithm) as e:
            raise InvalidKey(f"not a PEM public key: {e}") from e
        if not isinstance(key, Ed25519PublicKey):
            raise InvalidKey(f"expected an Ed25519 public key, got {type(key).__name__}")
        return cls(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))

    @classmethod
    def load(cls, path: _PathLike) -> VerifyKey:
        """Read a `.pub` file written by save (public keys need no permission check).

        Raises KeyFileError if the file cannot be read, InvalidKey if it is not an Ed25519 key.
        """
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise KeyFileError(f"cannot read public key {os.fspath(path)}: {e.strerror or e}") from e
        try:
            return cls.from_pem(data)
        except InvalidKey as e:
            # Name the file and the kind expected: the caller may have several key files at hand.
            raise InvalidKey(
                f"{os.fspath(path)}: expected an Ed25519 public key (PEM, the .pub file beside a private key): {e}"
            ) from e

    def save(self, path: _PathLike) -> None:
        """Write to_pem() to `path` atomically, mode 0644 (public keys are meant to be shared).

        Raises KeyFileError if the file cannot be written.
        """
        _write_atomic(Path(path), self.to_pem(), _PUBLIC_MODE)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VerifyKey) and other._raw == self._raw

    def __hash__(self) -> int:
        return hash(self._raw)

    def __repr__(self) -> str:
        return f"VerifyKey(key_id={self._key_id[:16]}...)"


class SigningKey:
    """An Ed25519 private key. Its repr shows the key id only; nothing here prints, logs or
    returns the private bytes except to_pem, which exists to write the key file."""

    __slots__ = ("_key", "_public")

    def __init__(self, key: Ed25519PrivateKey) -> None:
        """Internal: use generate, from_raw_seed, from_pem or load."""
        self._key = key
        self._public = VerifyKey(
            key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        )

    @property
    def public(self) -> VerifyKey:
        """The matching public key."""
        return self._public

    @property
    def key_id(self) -> str:
        """The public key's id: lowercase hex SHA-256 of its raw bytes."""
        return self._public.key_id

    def __repr__(self) -> str:
        return f"SigningKey(key_id={self.key_id[:16]}...)"

    @classmethod
    def generate(cls) -> SigningKey:
        """A fresh key from the operating system's CSPRNG."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_raw_seed(cls, seed: bytes) -> SigningKey:
        """The key for a 32-byte RFC 8032 seed: deterministic keys for tests, golden files and
        the demo. Never derive production keys from guessable seeds.

        Raises InvalidKey if `seed` is not 32 bytes.
        """
        if len(seed) != SEED_SIZE:
            raise InvalidKey(f"an Ed25519 seed is {SEED_SIZE} bytes, got {len(seed)}")
        try:
            return cls(Ed25519PrivateKey.from_private_bytes(bytes(seed)))
        except (ValueError, UnsupportedAlgorithm) as e:
            raise InvalidKey(f"not an Ed25519 seed: {e}") from e

    def sign(self, message: bytes) -> bytes:
        """The 64-byte RFC 8032 (deterministic) Ed25519 signature over exactly `message`.

        Callers sign records through sign_record, which adds RECORD_CONTEXT.
        """
        return self._key.sign(message)

    def to_pem(self, passphrase: bytes | None = None) -> bytes:
        """PEM PKCS8, encrypted with `passphrase` (pyca's best available scheme) if one is given.

        Raises InvalidKey for an empty passphrase: silently writing an unencrypted key when the
        caller asked for encryption would be worse than failing.
        """
        encryption: serialization.KeySerializationEncryption
        if passphrase is None:
            encryption = serialization.NoEncryption()
        elif not passphrase:
            raise InvalidKey("the passphrase is empty; pass None for an unencrypted key")
        else:
            encryption = serialization.BestAvailableEncryption(passphrase)
        return self._key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)

    @classmethod
    def from_pem(cls, data: bytes, passphrase: bytes | None = None) -> SigningKey:
        """Parse a PEM PKCS8 private key, decrypting it with `passphrase` if it is encrypted.

        Raises InvalidKey: not PEM, not Ed25519 (RSA, X25519...), wrong passphrase, a
        passphrase missing for an encrypted key, or one given for an unencrypted key.
        """
        try:
            key = serialization.load_pem_private_key(data, password=passphrase)
        except (ValueError, TypeError, UnsupportedAlgorithm) as e:
            # pyca's messages name the problem (bad decrypt, no password...), never key bytes.
            raise InvalidKey(f"cannot load the private key: {e}") from e
        if not isinstance(key, Ed25519PrivateKey):
            raise InvalidKey(f"expected an Ed25519 private key, got {type(key).__name__}")
        return cls(key)

    @classmethod
    def load(cls, path: _PathLike, passphrase: bytes | None = None) -> SigningKey:
        """Read a private key file, refusing one that group or others can access at all.

        Why refuse rather than warn: a key that others could read must be presumed copied, and
        one they could write may have been replaced. The mode is checked on the open file
        descriptor, so the file checked is the file read.

        Raises KeyFileError (missing, unreadable, not a regular file, or mode not 0600/0400; the
        message names the file and says to run chmod 600) or InvalidKey (see from_pem).
        """
        data = read_private_file(path)
        try:
            return cls.from_pem(data, passphrase)
        except InvalidKey as e:
            # Name the file and the kind expected: the caller may have several key files at hand.
            raise InvalidKey(f"{os.fspath(path)}: expected an Ed25519 private key (PEM PKCS8): {e}") from e

    def save(self, path: _PathLike, passphrase: bytes | None = None) -> None:
        """Write to_pem(passphrase) to `path`: created 0600, fsynced, then renamed over `path`,
        so a crash leaves the old file or the new one, never a torn or readable one.
        Writes only the private file (see save_pair).

        Raises KeyFileError if it cannot be written, InvalidKey for an empty passphrase.
        """
        _write_atomic(Path(path), self.to_pem(passphrase), _PRIVATE_MODE)

    def save_pair(self, path: _PathLike, passphrase: bytes | None = None) -> None:
        """Write the private key to `path` (0600) and the public key to `path` + ".pub" (0644).

        Raises KeyFileError or InvalidKey, as save does.
        """
        self.save(path, passphrase)
        self._public.save(f"{os.fspath(path)}.pub")


def read_private_file(path: _PathLike) -> bytes:
    """The bytes of a secret file (a private key of any kind: record keys, TLS keys, the CA's),
    refusing one that group or others can access at all.

    Why refuse rather than warn: a key that others could read must be presumed copied, and
    one they could write may have been replaced. The mode is checked on the open file
    descriptor, so the file checked is the file read.

    Raises KeyFileError (missing, unreadable, not a regular file, or mode not 0600/0400; the
    message names the file and says to run chmod 600).
    """
    p = os.fspath(path)
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise KeyFileError(f"cannot read private key {p}: {e.strerror or e}") from e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise KeyFileError(f"private key {p} is not a regular file")
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyFileError(
                f"private key {p} is accessible by group or others (mode {stat.S_IMODE(st.st_mode):04o}); "
                f"fix it with: chmod 600 {p}"
            )
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    except OSError as e:
        raise KeyFileError(f"cannot read private key {p}: {e.strerror or e}") from e
    finally:
        os.close(fd)


def write_private_file(path: _PathLike, data: bytes) -> None:
    """Write a secret file atomically, mode 0600 from the moment it exists (see _write_atomic).

    Raises KeyFileError.
    """
    _write_atomic(Path(path), data, _PRIVATE_MODE)


def write_public_file(path: _PathLike, data: bytes) -> None:
    """Write a file meant to be shared (a certificate, a public key) atomically, mode 0644.

    Raises KeyFileError.
    """
    _write_atomic(Path(path), data, _PUBLIC_MODE)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write `data` over `path` with exactly `mode`, from the moment the file exists
    (signing/files.py: a new file beside it, fsynced, renamed over it, the directory fsynced).

    Missing parent directories are created (with the default mode). Raises KeyFileError.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data, mode=mode, exact_mode=True)
    except OSError as e:
        raise KeyFileError(f"cannot write key file {path}: {e.strerror or e}") from e


def sign_record(key: SigningKey, record_bytes: bytes) -> bytes:
    """Ed25519 over RECORD_CONTEXT + record_bytes: the signature a participant puts on a record."""
    return key.sign(RECORD_CONTEXT + record_bytes)


def verify_record(public_raw: bytes, record_bytes: bytes, signature: bytes) -> None:
    """Check a record signature made by sign_record.

    This is the admission hot path (~6,000/s per core): the pyca key object is cached per raw
    key, and no lock is held while pyca verifies (it releases the GIL), so threads scale.

    Raises InvalidSignature (does not verify, or not 64 bytes) or InvalidKey (`public_raw` is
    not a valid Ed25519 public key).
    """
    if len(signature) != SIGNATURE_SIZE:
        raise InvalidSignature(f"an Ed25519 signature is {SIGNATURE_SIZE} bytes, got {len(signature)}")
    key = _public(bytes(public_raw))
    try:
        key.verify(signature, RECORD_CONTEXT + record_bytes)
    except _CryptoInvalidSignature as e:
        raise InvalidSignature("record signature does not verify") from e
