"""C2SP tlog-cosignature/v1 with Ed25519 (c2sp.org/tlog-cosignature, signature type 0x04):
the timestamped signature a witness adds to a log's checkpoint note.

A cosignature is an ordinary signed-note signature line, `— <witness name> base64(key hash ||
timestamp || signature)`, so a cosigned checkpoint is the log's note with more lines, and every
note reader (ours, Go's sumdb/note) ignores the lines of keys it does not know. What differs
from a log signature (type 0x01, signing/note.py):

- the key hash is SHA-256(name || 0x0A || 0x04 || public key)[:4], and the verifier key string
  `<name>+<hash>+<base64(0x04 || public key)>`, so the same key can never be mistaken for a
  log key (a NoteVerifier refuses a 0x04 key, and a CosignatureVerifier a 0x01 key);
- the signed message is `cosignature/v1\\n` + `time <unix seconds>\\n` + the checkpoint body,
  and the signature bytes are the 8-byte big-endian timestamp followed by the 64-byte Ed25519
  signature. The message does not commit to the witness's name (the spec's reason why one key
  must serve one cosigner only).

Only checkpoints are cosigned: the body must parse as one (Checkpoint.from_body), as Go's
torchwood.CosignatureSigner requires, so a witness key can never be made to sign other text.
Pure: no clock is read here; callers pass the timestamp.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from lotledger.signing.errors import InvalidKey, InvalidNote, InvalidSignature
from lotledger.signing.keys import SIGNATURE_SIZE, SigningKey, VerifyKey
from lotledger.signing.note import SIG_PREFIX, Checkpoint, Signature, _valid_name, parse_note, parse_verifier_key

__all__ = [
    "ALG_COSIGNATURE_V1",
    "MAX_TIMESTAMP",
    "Cosignature",
    "CosignatureSigner",
    "CosignatureVerifier",
    "cosignature_key_hash",
    "cosignature_timestamp",
    "cosigned_message",
    "open_cosignatures",
]

ALG_COSIGNATURE_V1 = 0x04
"""Signature type byte of Ed25519 tlog-cosignature/v1 in the C2SP signed-note registry."""
MAX_TIMESTAMP = 2**63 - 1
"""The spec: a timestamp MUST NOT exceed 2^63 - 1 (Go reads it into an int64)."""
_HEADER = b"cosignature/v1\n"
_TIMESTAMPED_SIZE = 8 + SIGNATURE_SIZE


def cosignature_key_hash(name: str, public_raw: bytes) -> bytes:
    """The 4-byte key ID the spec mandates: SHA-256(name || 0x0A || 0x04 || public key)[:4]."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes((ALG_COSIGNATURE_V1,)) + public_raw).digest()[:4]


def _check_timestamp(timestamp: int) -> None:
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or not 0 <= timestamp <= MAX_TIMESTAMP:
        raise InvalidNote(f"a cosignature timestamp is an integer in [0, 2**63), got {timestamp!r}")


def cosigned_message(body: bytes, timestamp: int) -> bytes:
    """The exact bytes an Ed25519 cosignature signs: header line, time line, checkpoint body.

    Raises InvalidNote if `body` is not a checkpoint body (see Checkpoint.from_body) or the
    timestamp is out of range.
    """
    _check_timestamp(timestamp)
    Checkpoint.from_body(body)
    return _HEADER + b"time " + str(timestamp).encode("ascii") + b"\n" + body


def _verifier_key_string(name: str, key_hash: bytes, public_raw: bytes) -> str:
    key_b64 = base64.b64encode(bytes((ALG_COSIGNATURE_V1,)) + public_raw).decode("ascii")
    return f"{name}+{key_hash.hex()}+{key_b64}"


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _valid_name(name):
        raise InvalidKey(f"key name {name!r} must be non-empty UTF-8 with no spaces, '+' or control characters")


class CosignatureSigner:
    """Cosigns checkpoint bodies with one Ed25519 key under one witness name."""

    __slots__ = ("key", "key_hash", "name", "verifier_key")

    def __init__(self, name: str, key: SigningKey) -> None:
        """Raises InvalidKey if `name` is not a valid key name (empty, a space, a '+'...)."""
        _check_name(name)
        self.name = name
        self.key = key
        self.key_hash = cosignature_key_hash(name, key.public.raw)
        self.verifier_key = _verifier_key_string(name, self.key_hash, key.public.raw)

    def sign(self, body: bytes, timestamp: int) -> str:
        """The cosignature line over checkpoint `body` at `timestamp` (unix seconds), trailing
        newline included; append it to the log's note as it is.

        Raises InvalidNote if `body` is not a checkpoint body or the timestamp is out of range.
        """
        signature = self.key.sign(cosigned_message(body, timestamp))
        blob = self.key_hash + timestamp.to_bytes(8, "big") + signature
        return f"{SIG_PREFIX}{self.name} {base64.b64encode(blob).decode('ascii')}\n"

    def __repr__(self) -> str:
        return f"CosignatureSigner({self.verifier_key!r})"


class CosignatureVerifier:
    """Checks the cosignatures of one witness key (name + Ed25519 public key)."""

    __slots__ = ("key", "key_hash", "name")

    def __init__(self, name: str, key: VerifyKey) -> None:
        """Prefer from_key or from_string. Raises InvalidKey for an invalid key name."""
        _check_name(name)
        self.name = name
        self.key = key
        self.key_hash = cosignature_key_hash(name, key.raw)

    @classmethod
    def from_key(cls, name: str, key: VerifyKey) -> CosignatureVerifier:
        """The verifier for `key` under `name`. Raises InvalidKey for an invalid key name."""
        return cls(name, key)

    @classmethod
    def from_string(cls, vkey: str) -> CosignatureVerifier:
        """Parse a witness verifier key `name+hash+base64(0x04 || key)`.

        Raises InvalidKey: malformed (see note.parse_verifier_key), an algorithm byte other
        than 0x04 (a log's 0x01 key is refused: it would verify nothing), or a key that is not a
        valid Ed25519 public key.
        """
        name, raw = parse_verifier_key(vkey, ALG_COSIGNATURE_V1)
        return cls(name, VerifyKey.from_raw(raw))

    @property
    def verifier_key(self) -> str:
        """The verifier key string, as from_string reads it (lowercase hash)."""
        return _verifier_key_string(self.name, self.key_hash, self.key.raw)

    def verify(self, body: bytes, sig: bytes) -> int | None:
        """The timestamp of `sig` (the signature bytes after the key hash: timestamp ||
        Ed25519 signature) if it is this key's cosignature over checkpoint `body`, else None."""
        if len(sig) != _TIMESTAMPED_SIZE:
            return None
        timestamp = int.from_bytes(sig[:8], "big")
        try:
            self.key.verify(sig[8:], cosigned_message(body, timestamp))
        except (InvalidSignature, InvalidNote):
            return None
        return timestamp

    def matches(self, sig: Signature) -> bool:
        """Whether a signature line names this key (same name and key hash)."""
        return sig.name == self.name and sig.key_hash == self.key_hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CosignatureVerifier) and (other.name, other.key) == (self.name, self.key)

    def __hash__(self) -> int:
        return hash((self.name, self.key))

    def __repr__(self) -> str:
        return f"CosignatureVerifier({self.verifier_key!r})"


@dataclass(frozen=True)
class Cosignature:
    """One verified cosignature: who, when, and the line to carry it in a note."""

    name: str
    key_hash: bytes
    timestamp: int
    signature: bytes
    """The 64-byte Ed25519 signature."""

    @property
    def line(self) -> str:
        """The signature line, newline included (canonical base64 of the verified bytes)."""
        blob = self.key_hash + self.timestamp.to_bytes(8, "big") + self.signature
        return f"{SIG_PREFIX}{self.name} {base64.b64encode(blob).decode('ascii')}\n"


def cosignature_timestamp(sig: Signature) -> int:
    """The timestamp a cosignature line states, unverified (for display and freshness).

    Raises InvalidNote if the line is not the size of an Ed25519 cosignature or the timestamp
    is above 2**63 - 1.
    """
    if len(sig.signature) != _TIMESTAMPED_SIZE:
        raise InvalidNote(f"a cosignature is {_TIMESTAMPED_SIZE} bytes after the key hash, not {len(sig.signature)}")
    timestamp = int.from_bytes(sig.signature[:8], "big")
    if timestamp > MAX_TIMESTAMP:
        raise InvalidNote("cosignature timestamp is above 2**63 - 1")
    return timestamp


def open_cosignatures(note: bytes, witnesses: Sequence[CosignatureVerifier]) -> tuple[bytes, list[Cosignature]]:
    """The note's text and the valid cosignatures in it by `witnesses`, one per witness, in
    note order. The log's own signature is not checked here (open_checkpoint does that), and
    lines of other keys are ignored, as the signed-note spec requires.

    Fails closed like open_note: a line whose name AND key hash match a given witness must
    verify. An empty `witnesses` list yields no cosignatures (the caller's quorum decides).

    Raises InvalidNote: the note is malformed (see parse_note), two different keys share a name
    and key hash, or a given witness's line does not verify over the note's text.
    """
    known: dict[tuple[str, bytes], CosignatureVerifier] = {}
    for w in witnesses:
        other = known.setdefault((w.name, w.key_hash), w)
        if other.key != w.key:
            raise InvalidNote(f"two witness keys share the name {w.name!r} and key hash {w.key_hash.hex()}")
    body, sigs = parse_note(note)
    found: dict[tuple[str, bytes], Cosignature] = {}
    for sig in sigs:
        witness = known.get((sig.name, sig.key_hash))
        if witness is None:
            continue
        timestamp = witness.verify(body, sig.signature)
        if timestamp is None:
            raise InvalidNote(f"the cosignature by {sig.name!r} ({sig.key_hash.hex()}) does not verify")
        found.setdefault((sig.name, sig.key_hash), Cosignature(sig.name, sig.key_hash, timestamp, sig.signature[8:]))
    return body, list(found.values())
