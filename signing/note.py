"""C2SP signed notes (c2sp.org/signed-note) and tlog-checkpoint bodies (c2sp.org/tlog-checkpoint).

These are wire formats that other verifiers (Go's sumdb/note, witnesses, monitors) read, so
this module follows the specs and Go's reference implementation byte for byte, and is
stricter where the spec leaves room to be.

A note is a text (valid UTF-8, no ASCII control character but newline, ending in a newline),
a blank line, and one or more signature lines `— <key name> <base64(4-byte key hash ||
signature)>`, each ending in a newline; the text is separated from the signatures by the LAST
blank line. For Ed25519 the key hash is the first 4 bytes of SHA-256(name || 0x0A || 0x01 ||
public key), and the verifier key string is `<name>+<key hash hex>+<base64(0x01 || public key)>`.
A checkpoint body is the origin, the tree size in decimal, and the root hash in base64, each on
its own line, then optional non-empty extension lines.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from lotledger.signing.errors import InvalidKey, InvalidNote, InvalidSignature
from lotledger.signing.keys import PUBLIC_KEY_SIZE, SigningKey, VerifyKey

__all__ = [
    "ALG_ED25519",
    "HASH_SIZE",
    "MAX_SIGNATURES",
    "MAX_TREE_SIZE",
    "SIG_PREFIX",
    "Checkpoint",
    "NoteSigner",
    "NoteVerifier",
    "Signature",
    "add_signatures",
    "ed25519_key_hash",
    "open_checkpoint",
    "open_note",
    "parse_note",
    "parse_verifier_key",
    "sign_note",
]

ALG_ED25519 = 0x01
"""Signature type byte of Ed25519 in the C2SP signed-note registry."""
MAX_SIGNATURES = 100
"""Go's note.Open limit; the spec requires accepting at least 16."""
SIG_PREFIX = "\u2014 "
"""EM DASH, SPACE: the start of every signature line."""
HASH_SIZE = 32
"""lotledger's Merkle tree uses SHA-256, so a root hash is exactly 32 bytes."""
MAX_TREE_SIZE = 2**64 - 1
"""Tree sizes are uint64 in every other implementation (Go parses them with ParseUint(.., 64))."""

_KEY_HASH_SIZE = 4
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")  # ASCII controls other than newline
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,19}")
_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_HEX8 = re.compile(r"[0-9a-fA-F]{8}")
_ALG_NAMES = {0x01: "Ed25519 note signature", 0x04: "Ed25519 cosignature/v1"}


def _b64decode(text: str, what: str) -> bytes:
    """Strict standard base64 (RFC 4648 section 4, padded), like Go's StdEncoding. Raises InvalidNote."""
    if not _B64.fullmatch(text):
        raise InvalidNote(f"{what} is not standard base64")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise InvalidNote(f"{what} is not standard base64") from e


def _valid_name(name: str) -> bool:
    """A key name per the spec: non-empty, no Unicode space, no '+'. Also valid UTF-8 (a Python
    str may hold lone surrogates) and no control character, since a note carrying one is malformed."""
    if not name or "+" in name or _CONTROL.search(name):
        return False
    if any(c.isspace() for c in name):
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_text(text: bytes, what: str) -> str:
    """Decode note text: valid UTF-8 and no ASCII control character but newline. Raises InvalidNote."""
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidNote(f"{what} is not valid UTF-8") from e
    if _CONTROL.search(decoded):
        raise InvalidNote(f"{what} contains an ASCII control character other than newline")
    return decoded


def _check_body(body: bytes) -> None:
    """What a signer must refuse so that every note it emits opens: an empty text, one not
    ending in a newline, not UTF-8, or with control characters. Raises InvalidNote."""
    if not isinstance(body, bytes):
        raise InvalidNote(f"a note text is bytes, not {type(body).__name__}")
    if not body.endswith(b"\n"):
        raise InvalidNote("a note text must be non-empty and end with a newline")
    _check_text(body, "note text")


def ed25519_key_hash(name: str, public_raw: bytes) -> bytes:
    """The 4-byte key ID the spec recommends: SHA-256(name || 0x0A || 0x01 || public key)[:4]."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes((ALG_ED25519,)) + public_raw).digest()[:_KEY_HASH_SIZE]


def parse_verifier_key(vkey: str, alg: int) -> tuple[str, bytes]:
    """(name, 32-byte public key) of a verifier key `name+hash+base64(alg || key)`, as Go's
    note.NewVerifier reads it; shared by the log keys (0x01) and cosigner keys (0x04).

    Raises InvalidKey: not three '+'-separated fields, an invalid name, a hash that is not 8
    hex digits, key not base64, another algorithm byte, a key that is not 32 bytes, or a hash
    that does not match name and key. The key bytes are not checked as a curve point here:
    VerifyKey.from_raw does that.
    """
    if not isinstance(vkey, str):
        raise InvalidKey("a verifier key is a string")
    name, sep1, rest = vkey.partition("+")
    hash_hex, sep2, key_b64 = rest.partition("+")  # the base64 key may itself hold '+'
    if not sep1 or not sep2:
        raise InvalidKey("a verifier key reads name+keyhash+base64key")
    if not _valid_name(name):
        raise InvalidKey("verifier key name must be non-empty with no spaces, '+' or control characters")
    if not _HEX8.fullmatch(hash_hex):
        raise InvalidKey("verifier key hash must be 8 hex digits")
    try:
        blob = _b64decode(key_b64, "verifier key")
    except InvalidNote as e:
        raise InvalidKey("verifier key is not standard base64") from e
    if not blob or blob[0] != alg:
        found = f"0x{blob[0]:02x}" if blob else "missing"
        raise InvalidKey(f"verifier key algorithm is {found}, not 0x{alg:02x} ({_ALG_NAMES.get(alg, 'unknown')})")
    if len(blob) != 1 + PUBLIC_KEY_SIZE:
        raise InvalidKey(f"verifier key holds {len(blob) - 1} key bytes, not {PUBLIC_KEY_SIZE}")
    # As Go does: the hash covers name || 0x0A || the decoded blob, algorithm byte included.
    if hashlib.sha256(name.encode("utf-8") + b"\n" + blob).digest()[:_KEY_HASH_SIZE] != bytes.fromhex(hash_hex):
        raise InvalidKey("verifier key hash does not match its name and key")
    return name, blob[1:]


# ---- checkpoints ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A C2SP tlog-checkpoint body. Validated on construction, so that body() can only ever
    produce a body that from_body accepts (and from_body(c.body()) == c).

    Raises InvalidNote on construction if a field could not be written as the spec requires.
    """

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.origin, str) or not self.origin:
            raise InvalidNote("checkpoint origin must be a non-empty string")
        if self.origin != self.origin.strip() or "\n" in self.origin or _CONTROL.search(self.origin):
            raise InvalidNote("checkpoint origin has leading/trailing space or a control character")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or not 0 <= self.size <= MAX_TREE_SIZE:
            raise InvalidNote(f"checkpoint size must be an integer in [0, 2**64), got {self.size!r}")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != HASH_SIZE:
            raise InvalidNote(f"checkpoint root hash must be {HASH_SIZE} bytes")
        if not isinstance(self.extensions, tuple):
            raise InvalidNote("checkpoint extensions must be a tuple of lines")
        for line in self.extensions:
            if not isinstance(line, str) or not line or "\n" in line or _CONTROL.search(line):
                raise InvalidNote("checkpoint extension lines must be non-empty single lines")
        for field in (self.origin, *self.extensions):
            try:
                field.encode("utf-8")
            except UnicodeEncodeError as e:
                raise InvalidNote("checkpoint text is not valid UTF-8") from e

    def body(self) -> bytes:
        """The note text to sign: origin, size, base64 root hash, extensions, each + newline."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode("ascii"), *self.extensions]
        return "".join(line + "\n" for line in lines).encode("utf-8")

    @classmethod
    def from_body(cls, body: bytes) -> Checkpoint:
        """Parse a checkpoint body (typically the text returned by open_note).

        Stricter than Go's parsers on purpose, so that one checkpoint has one encoding:
        the size must be canonical decimal below 2**64 and the root hash canonical base64 of
        exactly 32 bytes.

        Raises InvalidNote on any deviation: not UTF-8, control characters, no final newline,
        fewer than 3 lines, an empty or space-padded origin, a size with a sign, leading zero
        or other non-digit, a root hash that is not canonical base64 of 32 bytes, or an empty
        extension line.
        """
        text = _check_text(body, "checkpoint")
        if not text.endswith("\n"):
            raise InvalidNote("checkpoint body must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise InvalidNote("checkpoint needs an origin, a size and a root hash line")
        origin, size_text, root_text, *extensions = lines
        if not origin or origin != origin.strip():
            raise InvalidNote("checkpoint origin line is empty or has leading/trailing space")
        if not _DECIMAL.fullmatch(size_text) or int(size_text) > MAX_TREE_SIZE:
            raise InvalidNote(f"checkpoint size {size_text[:30]!r} is not a canonical decimal uint64")
        root_hash = _b64decode(root_text, "checkpoint root hash")
        if len(root_hash) != HASH_SIZE:
            raise InvalidNote(f"checkpoint root hash is {len(root_hash)} bytes, not {HASH_SIZE}")
        if base64.b64encode(root_hash).decode("ascii") != root_text:
            raise InvalidNote("checkpoint root hash is not canonical base64")
        if any(not line for line in extensions):
            raise InvalidNote("checkpoint has an empty extension line")
        return cls(origin, int(size_text), root_hash, tuple(extensions))


# ---- signers and verifiers -----------------------------------------------------------------


@dataclass(frozen=True)
class Signature:
    """One signature line: the key name, the 4-byte key hash, and the signature bytes."""

    name: str
    key_hash: bytes
    signature: bytes


def _verifier_key_string(name: str, key_hash: bytes, public_raw: bytes) -> str:
    key_b64 = base64.b64encode(bytes((ALG_ED25519,)) + public_raw).decode("ascii")
    return f"{name}+{key_hash.hex()}+{key_b64}"


class NoteSigner:
    """Signs note texts with one Ed25519 key under one key name (for a log: its origin)."""

    __slots__ = ("key", "key_hash", "name", "verifier_key")

    def __init__(self, name: str, key: SigningKey) -> None:
        """Raises InvalidKey if `name` is not a valid key name (empty, a space, a '+'...)."""
        if not isinstance(name, str) or not _valid_name(name):
            raise InvalidKey(f"key name {name!r} must be non-empty UTF-8 with no spaces, '+' or control characters")
        self.name = name
        self.key = key
        self.key_hash = ed25519_key_hash(name, key.public.raw)
        self.verifier_key = _verifier_key_string(name, self.key_hash, key.public.raw)

    def sign(self, body: bytes) -> str:
        """The signature line over `body`, trailing newline included.

        Raises InvalidNote if `body` is not a valid note text (see sign_note).
        """
        _check_body(body)
        sig = base64.b64encode(self.key_hash + self.key.sign(body)).decode("ascii")
        return f"{SIG_PREFIX}{self.name} {sig}\n"

    def __repr__(self) -> str:
        return f"NoteSigner({self.verifier_key!r})"


class NoteVerifier:
    """Checks the signatures of one named Ed25519 key."""

    __slots__ = ("key", "key_hash", "name")

    def __init__(self, name: str, key: VerifyKey) -> None:
        """Prefer from_key or from_string. Raises InvalidKey for an invalid key name."""
        if not isinstance(name, str) or not _valid_name(name):
            raise InvalidKey(f"key name {name!r} must be non-empty UTF-8 with no spaces, '+' or control characters")
        self.name = name
        self.key = key
        self.key_hash = ed25519_key_hash(name, key.raw)

    @classmethod
    def from_key(cls, name: str, key: VerifyKey) -> NoteVerifier:
        """The verifier for `key` under `name`. Raises InvalidKey for an invalid key name."""
        return cls(name, key)

    @classmethod
    def from_string(cls, vkey: str) -> NoteVerifier:
        """Parse a verifier key `name+hash+base64(0x01 || key)` as Go's note.NewVerifier does.

        No whitespace is stripped: callers reading it from a file strip the newline. The hash
        may be written in either case (Go's ParseUint accepts both); it is checked anyway.

        Raises InvalidKey: not three '+'-separated fields, an invalid name, a hash that is not
        8 hex digits, key not base64, an algorithm byte other than 0x01, a key that is not 32
        bytes or not a valid Ed25519 public key, or a hash that does not match name and key.
        """
        name, raw = parse_verifier_key(vkey, ALG_ED25519)
        return cls(name, VerifyKey.from_raw(raw))

    @property
    def verifier_key(self) -> str:
        """The verifier key string, as from_string reads it (lowercase hash)."""
        return _verifier_key_string(self.name, self.key_hash, self.key.raw)

    def verify(self, body: bytes, sig: bytes) -> bool:
        """Whether `sig` (signature bytes, without the key hash) is this key's over `body`."""
        try:
            self.key.verify(sig, body)
        except InvalidSignature:
            return False
        return True

    def __repr__(self) -> str:
        return f"NoteVerifier({self.verifier_key!r})"


# ---- notes ---------------------------------------------------------------------------------


def _split(note: bytes) -> tuple[bytes, list[str], list[Signature]]:
    """Parse a note into its text, its raw signature lines (newline excluded) and their contents."""
    if not isinstance(note, bytes):
        raise InvalidNote(f"a note is bytes, not {type(note).__name__}")
    text = _check_text(note, "note")
    split = text.rfind("\n\n")
    if split < 0:
        raise InvalidNote("note has no blank line before its signatures")
    body, sig_text = text[: split + 1], text[split + 2 :]
    if not sig_text:
        raise InvalidNote("note has no signature lines")
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
        if not sep or not _valid_name(name):
            raise InvalidNote("signature line has no valid key name")
        blob = _b64decode(b64, "signature")
        if len(blob) < _KEY_HASH_SIZE + 1:
            raise InvalidNote("signature is shorter than a key hash and one byte")
        sigs.append(Signature(name, blob[:_KEY_HASH_SIZE], blob[_KEY_HASH_SIZE:]))
    return body.encode("utf-8"), lines, sigs


def parse_note(note: bytes) -> tuple[bytes, list[Signature]]:
    """Split a note into its text and its signature lines: structure only, nothing verified.

    Raises InvalidNote: not bytes or not UTF-8, an ASCII control character other than
    newline, no blank line, no signature lines, a missing final newline, a line without the
    em dash prefix, an invalid key name, bad base64, fewer than 5 decoded bytes, or more than
    100 signature lines.
    """
    body, _, sigs = _split(note)
    return body, sigs


def sign_note(body: bytes, *signers: NoteSigner) -> bytes:
    """The note: `body`, a blank line, and one signature line per signer, in order.

    `body` may contain blank lines (the spec allows them; the note splits at its last blank
    line, and signature lines never contain one).

    Raises InvalidNote: no signer, more than 100, or a body that is empty, does not end with
    a newline, is not UTF-8 or holds an ASCII control character other than newline.
    """
    _check_body(body)
    if not signers:
        raise InvalidNote("a note needs at least one signature")
    if len(signers) > MAX_SIGNATURES:
        raise InvalidNote(f"a note carries at most {MAX_SIGNATURES} signatures")
    return body + b"\n" + "".join(s.sign(body) for s in signers).encode("utf-8")


def add_signatures(note: bytes, *signers: NoteSigner) -> bytes:
    """Append the signers' lines to an existing note (e.g. witness cosignatures), keeping the
    existing lines byte for byte. Nothing is verified: the caller decides what to cosign.

    As in Go's note.Sign, an existing line by the same key (same name and key hash) as one of
    `signers` is dropped rather than duplicated, so re-cosigning is idempotent.

    Raises InvalidNote if `note` is malformed (see parse_note) or the result would carry more
    than 100 signatures.
    """
    body, lines, sigs = _split(note)
    replaced = {(s.name, s.key_hash) for s in signers}
    kept = [line for line, sig in zip(lines, sigs, strict=True) if (sig.name, sig.key_hash) not in replaced]
    if len(kept) + len(signers) > MAX_SIGNATURES:
        raise InvalidNote(f"a note carries at most {MAX_SIGNATURES} signatures")
    existing = "".join(line + "\n" for line in kept)
    return body + b"\n" + (existing + "".join(s.sign(body) for s in signers)).encode("utf-8")


def open_note(note: bytes, verifiers: Sequence[NoteVerifier]) -> tuple[bytes, list[Signature]]:
    """The note's text and its signatures that verified, one per known key, in note order.

    Fails closed, per the spec: a line whose name AND key hash match a known key must verify;
    lines of unknown keys are ignored (even if they share the name or the hash, not both).

    Raises InvalidNote: `verifiers` is empty, two different keys share a name and key hash,
    the note is malformed (see parse_note), a known key's signature does not verify (every
    line by it is checked, not just the first), or no known key signed.
    """
    if not verifiers:
        raise InvalidNote("no verifier keys given: refusing to accept any note")
    known: dict[tuple[str, bytes], NoteVerifier] = {}
    for v in verifiers:
        other = known.setdefault((v.name, v.key_hash), v)
        if other.key != v.key:
            raise InvalidNote(f"two verifier keys share the name {v.name!r} and key hash {v.key_hash.hex()}")
    body, _, sigs = _split(note)
    verified: list[Signature] = []
    seen: set[tuple[str, bytes]] = set()
    for sig in sigs:
        verifier = known.get((sig.name, sig.key_hash))
        if verifier is None:
            continue
        if not verifier.verify(body, sig.signature):
            raise InvalidNote(f"the signature by {sig.name!r} ({sig.key_hash.hex()}) does not verify")
        if (sig.name, sig.key_hash) not in seen:
            seen.add((sig.name, sig.key_hash))
            verified.append(sig)
    if not verified:
        raise InvalidNote("the note is not signed by any trusted key")
    return body, verified


def open_checkpoint(note: bytes, verifier: NoteVerifier) -> Checkpoint:
    """A checkpoint signed by the log's key, whose origin must be the key's name: in lotledger
    the log key's name IS the origin, so a note signed by the right key for another log (the
    same key reused under another name) is refused too.

    Raises InvalidNote (see open_note and Checkpoint.from_body, or the origin differs).
    """
    body, _ = open_note(note, [verifier])
    checkpoint = Checkpoint.from_body(body)
    if checkpoint.origin != verifier.name:
        raise InvalidNote(f"checkpoint origin {checkpoint.origin!r} is not the log {verifier.name!r}")
    return checkpoint
