"""C2SP signed notes and tlog-checkpoint bodies (wire formats other verifiers depend on).

A note is a body (UTF-8 lines, each ending in a newline), a blank line, and one or more
signature lines `— <key name> <base64(4-byte key hash || signature)>`. For Ed25519 the key hash
is the first 4 bytes of SHA-256(name || 0x0A || 0x01 || public key) and the verifier key
string is `<name>+<key hash hex>+<base64(0x01 || public key)>`. A checkpoint body is the
origin, the tree size in decimal, and the root hash in base64, then optional extension lines.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from lotledger.signing.errors import InvalidKey, InvalidNote, InvalidSignature
from lotledger.signing.keys import SigningKey, VerifyKey

ALG_ED25519 = 0x01
MAX_SIGNATURES = 100
SIG_PREFIX = "\u2014 "
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,19}")
_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


def _b64decode(text: str, what: str) -> bytes:
    if not _B64.fullmatch(text):
        raise InvalidNote(f"{what} is not standard base64")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise InvalidNote(f"{what} is not standard base64") from e


def _valid_name(name: str) -> bool:
    return bool(name) and not any(c.isspace() or c == "+" for c in name)


def ed25519_key_hash(name: str, public_raw: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes((ALG_ED25519,)) + public_raw).digest()[:4]


@dataclass(frozen=True)
class Checkpoint:
    """A C2SP tlog-checkpoint body."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def body(self) -> bytes:
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode(), *self.extensions]
        return "".join(line + "\n" for line in lines).encode()

    @classmethod
    def from_body(cls, body: bytes) -> Checkpoint:
        """Raises InvalidNote on any deviation from the spec."""
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InvalidNote("checkpoint is not UTF-8") from e
        if not text.endswith("\n"):
            raise InvalidNote("checkpoint body must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise InvalidNote("checkpoint needs an origin, a size and a root hash")
        origin, size_text, root_text, *extensions = lines
        if not origin or origin != origin.strip():
            raise InvalidNote("checkpoint origin line is empty or padded")
        if not _DECIMAL.fullmatch(size_text):
            raise InvalidNote(f"checkpoint size {size_text[:30]!r} is not a decimal number")
        root_hash = _b64decode(root_text, "checkpoint root hash")
        if len(root_hash) != 32:
            raise InvalidNote(f"checkpoint root hash is {len(root_hash)} bytes, not 32")
        if any(not e for e in extensions):
            raise InvalidNote("checkpoint has an empty extension line")
        return cls(origin, int(size_text), root_hash, tuple(extensions))


@dataclass(frozen=True)
class Signature:
    name: str
    key_hash: bytes
    signature: bytes


class NoteSigner:
    """Signs note bodies under a key name (for a log: its origin)."""

    def __init__(self, name: str, key: SigningKey):
        if not _valid_name(name):
            raise InvalidKey(f"key name {name!r} must be non-empty with no spaces or '+'")
        self.name = name
        self.key = key
        self.key_hash = ed25519_key_hash(name, key.public.raw)
        self.verifier_key = (
            f"{name}+{self.key_hash.hex()}+{base64.b64encode(bytes((ALG_ED25519,)) + key.public.raw).decode()}"
        )

    def sign(self, body: bytes) -> str:
        sig = base64.b64encode(self.key_hash + self.key.sign(body)).decode()
        return f"{SIG_PREFIX}{self.name} {sig}\n"


class NoteVerifier:
    """Checks signatures of one named Ed25519 key."""

    def __init__(self, name: str, key: VerifyKey):
        if not _valid_name(name):
            raise InvalidKey(f"key name {name!r} must be non-empty with no spaces or '+'")
        self.name = name
        self.key = key
        self.key_hash = ed25519_key_hash(name, key.raw)

    @classmethod
    def from_key(cls, name: str, key: VerifyKey) -> NoteVerifier:
        return cls(name, key)

    @classmethod
    def from_string(cls, vkey: str) -> NoteVerifier:
        """Parse `name+hash+base64(0x01||key)`. Raises InvalidKey."""
        parts = vkey.strip().split("+", 2)  # the base64 key may itself contain "+"
        if len(parts) != 3:
            raise InvalidKey("a verifier key reads name+keyhash+base64key")
        name, hash_hex, key_b64 = parts
        try:
            key_hash = bytes.fromhex(hash_hex)
            blob = base64.b64decode(key_b64, validate=True)
        except (ValueError, binascii.Error) as e:
            raise InvalidKey(f"malformed verifier key: {e}") from e
        if len(hash_hex) != 8 or len(blob) != 33 or blob[0] != ALG_ED25519:
            raise InvalidKey("verifier key must be an Ed25519 key (algorithm byte 0x01, 32-byte key, 8-hex-digit hash)")
        verifier = cls(name, VerifyKey(blob[1:]))
        if verifier.key_hash != key_hash:
            raise InvalidKey("verifier key hash does not match its name and key")
        return verifier

    def verify(self, body: bytes, signature: bytes) -> bool:
        try:
            self.key.verify(signature, body)
        except InvalidSignature:
            return False
        return True


def sign_note(body: bytes, *signers: NoteSigner) -> bytes:
    if not body.endswith(b"\n"):
        raise InvalidNote("a note body ends with a newline")
    if not signers:
        raise InvalidNote("a note needs at least one signature")
    return body + b"\n" + "".join(s.sign(body) for s in signers).encode()


def add_signatures(note: bytes, *signers: NoteSigner) -> bytes:
    body, _ = parse_note(note)
    return note + "".join(s.sign(body) for s in signers).encode()


def parse_note(note: bytes) -> tuple[bytes, list[Signature]]:
    """Split a note into its body and signature lines (structure only). Raises InvalidNote."""
    try:
        text = note.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidNote("note is not UTF-8") from e
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise InvalidNote("note contains control characters")
    split = text.rfind("\n\n")
    if split < 0:
        raise InvalidNote("note has no blank line before its signatures")
    body, sig_text = text[: split + 1], text[split + 2 :]
    if not sig_text.endswith("\n"):
        raise InvalidNote("note must end with a newline")
    lines = sig_text[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise InvalidNote(f"note has more than {MAX_SIGNATURES} signatures")
    sigs = []
    for line in lines:
        if not line.startswith(SIG_PREFIX):
            raise InvalidNote("signature line does not start with an em dash and a space")
        name, sep, b64 = line[len(SIG_PREFIX) :].partition(" ")
        if not sep or not _valid_name(name) or " " in b64:
            raise InvalidNote("malformed signature line")
        blob = _b64decode(b64, "signature")
        if len(blob) < 5:
            raise InvalidNote("signature too short")
        sigs.append(Signature(name, blob[:4], blob[4:]))
    return body.encode(), sigs


def open_note(note: bytes, verifiers: Sequence[NoteVerifier]) -> tuple[bytes, list[Signature]]:
    """The body and the signatures that verified. Fails closed: raises InvalidNote with no
    verifiers, when a known key's signature does not verify, or when no known key signed."""
    if not verifiers:
        raise InvalidNote("no verifier keys given")
    body, sigs = parse_note(note)
    known = {(v.name, v.key_hash): v for v in verifiers}
    verified = []
    for sig in sigs:
        verifier = known.get((sig.name, sig.key_hash))
        if verifier is None:
            continue
        if not verifier.verify(body, sig.signature):
            raise InvalidNote(f"signature by {sig.name} does not verify")
        verified.append(sig)
    if not verified:
        raise InvalidNote("note is not signed by any trusted key")
    return body, verified


def open_checkpoint(note: bytes, verifier: NoteVerifier) -> Checkpoint:
    """A checkpoint signed by the log's key, whose origin is the key's name. Raises InvalidNote."""
    body, _ = open_note(note, [verifier])
    checkpoint = Checkpoint.from_body(body)
    if checkpoint.origin != verifier.name:
        raise InvalidNote(f"checkpoint origin {checkpoint.origin!r} is not the log {verifier.name!r}")
    return checkpoint
