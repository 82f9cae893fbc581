"""Export bundles: the log (or a prefix of it) in one self-contained file a regulator can take
away and verify offline with nothing but the log's public key.

Format `lotledger-bundle/1`, a length-prefixed stream, written and read front to back in
constant memory at any size:

    magic     b"lotledger-bundle/1\\n"
    frames    tag (1 ASCII byte) | length (u32, big-endian) | payload, in this order:
      H       header, canonical JSON (sorted keys, no spaces): {"format", "origin", "tree_size"}
      C       the signed checkpoint note the entries end at (C2SP signed note, as served)
      E ...   one frame per entry, the exact stored Entry bytes, seq 0, 1, 2, ... in order
      Z       trailer: the number of E frames (u64, big-endian); nothing may follow it

The checkpoint comes first so that a reader knows how many entries to expect. Nothing in the
file is trusted: the verifier takes the tree size and origin from the checkpoint only after its
signature verifies with the key the regulator holds (never one shipped in the file), and
recomputes the root from the entries. The header only repeats the checkpoint's origin and size
for people and tools that peek, and must match it byte for byte in canonical form, so that no
byte anywhere in a bundle can change without the verification failing. The key history needs no frame of its own: it is the admin entries (key
registrations and revocations) in the log itself, replayed in order by the verifier, so a
record signed by a key after its revocation fails exactly as in the live verify.

Every way a bundle can be damaged is named: a frame cut short (TRUNCATED), an unknown or
misplaced frame (MALFORMED_BUNDLE), an entry out of order or altered (the entry's own checks:
WRONG_SEQ, BROKEN_CHAIN, BAD_SIGNATURE, ROOT_MISMATCH), a checkpoint signed by another key
(BAD_CHECKPOINT).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from typing import BinaryIO

from lotledger.ledger.errors import VerificationFailed

MAGIC = b"lotledger-bundle/1\n"
FORMAT = "lotledger-bundle/1"
MAX_FRAME = 64 << 20  # far above any entry (records are capped well below): a bad length, not data
_HEAD = struct.Struct(">cI")
_NAMES = {b"H": "header", b"C": "checkpoint", b"E": "entry", b"Z": "trailer"}


def _name(tag: bytes) -> str:
    return f"{_NAMES[tag]} frame" if tag in _NAMES else f"unknown frame {tag!r}"


def _bad(message: str, reason: str = "MALFORMED_BUNDLE", seq: int | None = None) -> VerificationFailed:
    return VerificationFailed(f"bundle: {message}", reason=reason, seq=seq)


class BundleWriter:
    """Writes one bundle to a binary file; `close()` writes the trailer (a bundle without it is
    refused as truncated)."""

    def __init__(self, out: BinaryIO, *, note: bytes):
        self.out = out
        self.entries = 0
        self.origin, self.tree_size = _peek(note)
        out.write(MAGIC)
        self._frame(b"H", _header(self.origin, self.tree_size))
        self._frame(b"C", note)

    def _frame(self, tag: bytes, payload: bytes) -> None:
        self.out.write(_HEAD.pack(tag, len(payload)))
        self.out.write(payload)

    def entry(self, entry_bytes: bytes) -> None:
        self._frame(b"E", entry_bytes)
        self.entries += 1

    def close(self) -> None:
        self._frame(b"Z", self.entries.to_bytes(8, "big"))


def _peek(note: bytes) -> tuple[str, int]:
    """Origin and tree size as a checkpoint note states them (unverified: see the module doc)."""
    lines = note.split(b"\n", 2)
    try:
        return lines[0].decode(), int(lines[1])
    except (IndexError, ValueError) as e:
        raise _bad("the checkpoint frame is not a checkpoint note (origin, tree size, root...)") from e


def _header(origin: str, tree_size: int) -> bytes:
    header = {"format": FORMAT, "origin": origin, "tree_size": tree_size}
    return json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class BundleReader:
    """Reads a bundle front to back: the checkpoint `note` (with the `origin` and `tree_size`
    it states, unverified) on opening, then `entries()` once."""

    def __init__(self, src: BinaryIO):
        self.src = src
        if src.read(len(MAGIC)) != MAGIC:
            raise _bad(f"not a {FORMAT} file (the first line must be {MAGIC.decode().strip()!r})")
        header = self._expect(b"H", "header")
        self.note = self._expect(b"C", "signed checkpoint")
        self.origin, self.tree_size = _peek(self.note)
        if header != _header(self.origin, self.tree_size):
            raise _bad(f"the header does not match its checkpoint ({self.origin!r}, {self.tree_size} entries)")

    def _frame(self, entries: int | None = None) -> tuple[bytes, bytes]:
        """The next frame. `entries`: how many entries came before it, to name the place."""
        where = "" if entries is None else f" after {entries} entries"
        head = self.src.read(_HEAD.size)
        if len(head) != _HEAD.size:
            what = "in the middle of a frame's tag and length" if head else "where a frame was due"
            raise _bad(f"the file is cut short {what}{where}", "TRUNCATED", entries)
        tag, length = _HEAD.unpack(head)
        if length > MAX_FRAME:
            raise _bad(f"the {_name(tag)} claims {length} bytes, more than any frame may hold{where}", seq=entries)
        payload = self.src.read(length)
        if len(payload) != length:
            got = f"{len(payload)} of {length} bytes"
            raise _bad(f"the file is cut short inside the {_name(tag)} ({got}){where}", "TRUNCATED", entries)
        return tag, payload

    def _expect(self, tag: bytes, what: str) -> bytes:
        got, payload = self._frame()
        if got != tag:
            raise _bad(f"expected the {what} frame, found the {_name(got)}")
        return payload

    def entries(self) -> Iterator[bytes]:
        """Each entry's bytes in order; checks the trailer after the last one."""
        count = 0
        while True:
            tag, payload = self._frame(count)
            if tag == b"E":
                count += 1
                yield payload
                continue
            if tag != b"Z":
                raise _bad(f"unexpected {_name(tag)} after {count} entries", seq=count)
            if int.from_bytes(payload, "big") != count or len(payload) != 8:
                raise _bad(f"the trailer counts {int.from_bytes(payload, 'big')} entries but the file holds {count}")
            if self.src.read(1):
                raise _bad("data after the trailer")
            return
