"""Export bundles: the log (or a stretch of it) in one self-contained file a regulator can take
away and verify offline with nothing but the log's public key.

Two formats, both length-prefixed streams written and read front to back in constant memory:

`lotledger-bundle/1`, the whole log up to a checkpoint:

    magic     b"lotledger-bundle/1\\n"
    frames    tag (1 ASCII byte) | length (u32, big-endian) | payload, in this order:
      H       header, canonical JSON (sorted keys, no spaces): {"format", "origin", "tree_size"}
      C       the signed checkpoint note the entries end at (C2SP signed note, as served)
      E ...   one frame per entry, the exact stored Entry bytes, seq 0, 1, 2, ... in order
      Z       trailer: the number of E frames (u64, big-endian); nothing may follow it

`lotledger-bundle/2`, an increment: the entries from tree size F (where the log issued a
checkpoint) to N, and what it takes to check them without the first F entries:

    magic     b"lotledger-bundle/2\\n"
      H       header: {"format", "from_size", "origin", "tree_size"}
      C       the signed checkpoint of size N the entries end at
      P       the prior signed checkpoint, of size F
      K       the consistency proof from F to N (RFC 9162; 32-byte hashes, none when N = F)
      L       the leaf hash of entry F-1, then its inclusion proof in the tree of size F: this
              gives the chain head and the Merkle frontier at F, proven against P's root
      A ...   the key history: every admin entry (participant and key registration, revocation,
              location) before F, in log order: seq (u64) | proof length (u8) | its inclusion
              proof in the tree of size F (32-byte hashes) | the exact stored Entry bytes
      E ...   entries F, F+1, ..., N-1
      Z       trailer: the number of A frames (u64) | the number of E frames (u64)

A full bundle stays `/1`, byte for byte as before, so every verifier that reads `/1` still
reads it; `/2` is only ever an increment (F > 0).

The checkpoint comes first so that a reader knows how many entries to expect. Nothing in the
file is trusted: the verifier takes the tree size and origin from the checkpoint only after its
signature verifies with the key the regulator holds (never one shipped in the file), and
recomputes the root from the entries. The header only repeats the checkpoints' origin and sizes
for people and tools that peek, and must match them byte for byte in canonical form, so that no
byte anywhere in a bundle can change without the verification failing. In a full bundle the key
history needs no frame of its own: it is the admin entries in the log itself, replayed in order
by the verifier, so a record signed by a key after its revocation fails exactly as in the live
verify. An increment carries those admin entries in A frames, each proven to be in the log at P;
what proofs cannot show is that none was left out, which a verifier holding its own state at F
checks by comparing (ledger/verify/increment.py).

Every way a bundle can be damaged is named: a frame cut short (TRUNCATED), an unknown or
misplaced frame (MALFORMED_BUNDLE), an entry out of order or altered (the entry's own checks:
WRONG_SEQ, BROKEN_CHAIN, BAD_SIGNATURE, ROOT_MISMATCH), a checkpoint signed by another key
(BAD_CHECKPOINT), and for increments a consistency proof that does not hold (NOT_CONSISTENT) or a
key history entry or last leaf that is not in the log at P (BAD_KEY_HISTORY, BAD_PRIOR).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from lotledger.ledger.errors import VerificationFailed

MAGIC = b"lotledger-bundle/1\n"
FORMAT = "lotledger-bundle/1"
MAGIC_INCREMENT = b"lotledger-bundle/2\n"
FORMAT_INCREMENT = "lotledger-bundle/2"
MAX_FRAME = 64 << 20  # far above any entry (records are capped well below): a bad length, not data
HASH = 32
_HEAD = struct.Struct(">cI")
_KEY_HEAD = struct.Struct(">QB")
_NAMES = {
    b"H": "header",
    b"C": "checkpoint",
    b"P": "prior checkpoint",
    b"K": "consistency proof",
    b"L": "last leaf",
    b"A": "key history",
    b"E": "entry",
    b"Z": "trailer",
}


def _name(tag: bytes) -> str:
    return f"{_NAMES[tag]} frame" if tag in _NAMES else f"unknown frame {tag!r}"


def _bad(message: str, reason: str = "MALFORMED_BUNDLE", seq: int | None = None) -> VerificationFailed:
    return VerificationFailed(f"bundle: {message}", reason=reason, seq=seq)


@dataclass(frozen=True)
class Increment:
    """What an increment bundle says about the log before its first entry (frames P, K, L).
    Unverified as read: ledger/verify/increment.py checks it against the log key."""

    prior_note: bytes
    consistency: list[bytes]
    last_leaf: bytes
    last_leaf_proof: list[bytes]


@dataclass(frozen=True)
class KeyHistoryEntry:
    """One A frame: an admin entry before the increment, with its inclusion proof at P."""

    seq: int
    entry: bytes
    proof: list[bytes]


class BundleWriter:
    """Writes one bundle to a binary file: a full one (`/1`), or with `increment` an increment
    (`/2`), whose key history entries (`key_entry`) come before its entries. `close()` writes
    the trailer (a bundle without it is refused as truncated)."""

    def __init__(self, out: BinaryIO, *, note: bytes, increment: Increment | None = None):
        self.out = out
        self.entries = 0
        self.key_entries = 0
        self.increment = increment
        self.origin, self.tree_size = _peek(note)
        if increment is None:
            out.write(MAGIC)
            self._frame(b"H", _header(self.origin, self.tree_size))
            self._frame(b"C", note)
            return
        _, self.from_size = _peek(increment.prior_note)
        out.write(MAGIC_INCREMENT)
        self._frame(b"H", _header(self.origin, self.tree_size, self.from_size))
        self._frame(b"C", note)
        self._frame(b"P", increment.prior_note)
        self._frame(b"K", b"".join(increment.consistency))
        self._frame(b"L", increment.last_leaf + b"".join(increment.last_leaf_proof))

    def _frame(self, tag: bytes, payload: bytes) -> None:
        self.out.write(_HEAD.pack(tag, len(payload)))
        self.out.write(payload)

    def key_entry(self, seq: int, entry_bytes: bytes, proof: list[bytes]) -> None:
        if self.increment is None or self.entries:
            raise ValueError("key history frames belong to an increment, before its entries")
        self._frame(b"A", _KEY_HEAD.pack(seq, len(proof)) + b"".join(proof) + entry_bytes)
        self.key_entries += 1

    def entry(self, entry_bytes: bytes) -> None:
        self._frame(b"E", entry_bytes)
        self.entries += 1

    def close(self) -> None:
        counts = self.entries.to_bytes(8, "big")
        if self.increment is not None:
            counts = self.key_entries.to_bytes(8, "big") + counts
        self._frame(b"Z", counts)


def _peek(note: bytes) -> tuple[str, int]:
    """Origin and tree size as a checkpoint note states them (unverified: see the module doc)."""
    lines = note.split(b"\n", 2)
    try:
        return lines[0].decode(), int(lines[1])
    except (IndexError, ValueError) as e:
        raise _bad("the checkpoint frame is not a checkpoint note (origin, tree size, root...)") from e


def _header(origin: str, tree_size: int, from_size: int | None = None) -> bytes:
    header: dict[str, str | int] = {"format": FORMAT, "origin": origin, "tree_size": tree_size}
    if from_size is not None:
        header.update(format=FORMAT_INCREMENT, from_size=from_size)
    return json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _hashes(payload: bytes, what: str) -> list[bytes]:
    if len(payload) % HASH:
        raise _bad(f"the {what} is {len(payload)} bytes, not a whole number of {HASH}-byte hashes")
    return [payload[i : i + HASH] for i in range(0, len(payload), HASH)]


class BundleReader:
    """Reads a bundle front to back: the checkpoint `note` (with the `origin` and `tree_size`
    it states, unverified) and, for an increment, `increment` and `from_size` on opening; then
    `key_history()` once (an increment's A frames; nothing for a full bundle), then `entries()`
    once."""

    def __init__(self, src: BinaryIO):
        self.src = src
        self.from_size = 0
        self._pending: tuple[bytes, bytes] | None = None
        magic = src.read(len(MAGIC))
        if magic not in (MAGIC, MAGIC_INCREMENT):
            raise _bad(f"not a {FORMAT} or {FORMAT_INCREMENT} file (the first line must name one of them)")
        header = self._expect(b"H", "header")
        self.note = self._expect(b"C", "signed checkpoint")
        self.origin, self.tree_size = _peek(self.note)
        self.increment: Increment | None = None
        self._key_history_read = magic == MAGIC
        self.key_entries = 0
        if magic == MAGIC_INCREMENT:
            prior = self._expect(b"P", "prior checkpoint")
            _, self.from_size = _peek(prior)
            consistency = _hashes(self._expect(b"K", "consistency proof"), "consistency proof")
            last = _hashes(self._expect(b"L", "last leaf"), "last leaf frame")
            if not last:
                raise _bad("the last leaf frame holds no leaf hash")
            self.increment = Increment(prior, consistency, last[0], last[1:])
        expected = _header(self.origin, self.tree_size, self.from_size if self.increment else None)
        if header != expected:
            sizes = f"{self.from_size} to {self.tree_size}" if self.increment else f"{self.tree_size}"
            raise _bad(f"the header does not match its checkpoints ({self.origin!r}, entries {sizes})")

    def _frame(self, entries: int | None = None) -> tuple[bytes, bytes]:
        """The next frame. `entries`: how many entries came before it, to name the place."""
        if self._pending is not None:
            frame, self._pending = self._pending, None
            return frame
        where = "" if entries is None else f" after {entries} entries"
        seq = None if entries is None else self.from_size + entries
        head = self.src.read(_HEAD.size)
        if len(head) != _HEAD.size:
            what = "in the middle of a frame's tag and length" if head else "where a frame was due"
            raise _bad(f"the file is cut short {what}{where}", "TRUNCATED", seq)
        tag, length = _HEAD.unpack(head)
        if length > MAX_FRAME:
            raise _bad(f"the {_name(tag)} claims {length} bytes, more than any frame may hold{where}", seq=seq)
        payload = self.src.read(length)
        if len(payload) != length:
            got = f"{len(payload)} of {length} bytes"
            raise _bad(f"the file is cut short inside the {_name(tag)} ({got}){where}", "TRUNCATED", seq)
        return tag, payload

    def _expect(self, tag: bytes, what: str) -> bytes:
        got, payload = self._frame()
        if got != tag:
            raise _bad(f"expected the {what} frame, found the {_name(got)}")
        return payload

    def key_history(self) -> Iterator[KeyHistoryEntry]:
        """An increment's key history entries in file order (their order and proofs are for
        the caller to check); nothing for a full bundle."""
        while not self._key_history_read:
            tag, payload = self._frame()
            if tag != b"A":
                self._pending = tag, payload
                self._key_history_read = True
                return
            n = self.key_entries
            if len(payload) < _KEY_HEAD.size:
                raise _bad(f"key history frame {n} is too short to hold a seq and a proof length")
            seq, count = _KEY_HEAD.unpack_from(payload)
            end = _KEY_HEAD.size + HASH * count
            if len(payload) <= end:
                raise _bad(f"key history frame {n} (entry {seq}) is too short for its {count} proof hashes and entry")
            self.key_entries += 1
            yield KeyHistoryEntry(seq, payload[end:], _hashes(payload[_KEY_HEAD.size : end], "proof"))

    def entries(self) -> Iterator[bytes]:
        """Each entry's bytes in order; checks the trailer after the last one."""
        if not self._key_history_read:
            raise RuntimeError("read an increment's key_history() before its entries()")
        count = 0
        first = self.from_size
        while True:
            tag, payload = self._frame(count)
            if tag == b"E":
                count += 1
                yield payload
                continue
            if tag != b"Z":
                raise _bad(f"unexpected {_name(tag)} after {count} entries", seq=first + count)
            if self.increment is None and (len(payload) != 8 or int.from_bytes(payload, "big") != count):
                raise _bad(f"the trailer counts {int.from_bytes(payload, 'big')} entries but the file holds {count}")
            counts = self.key_entries.to_bytes(8, "big") + count.to_bytes(8, "big")
            if self.increment is not None and payload != counts:
                stated = [int.from_bytes(payload[i : i + 8], "big") for i in range(0, len(payload), 8)]
                raise _bad(
                    f"the trailer counts {stated} (key history entries, entries) "
                    f"but the file holds [{self.key_entries}, {count}]"
                )
            if self.src.read(1):
                raise _bad("data after the trailer")
            return
