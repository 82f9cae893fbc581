"""A verifier's state, saved so that the next verification checks only what is new.

Pure (de)serialization, no I/O: the CLI (audit/state_dir.py) writes the bytes atomically and
reads them back. A state holds everything LogVerifier needs to go on from tree size N as if it
had just fed the first N entries (the hash-chain head, the Merkle frontier, the key history,
every record id with its submitter and kind) and the signed checkpoint of size N it was checked
against, so that "the log still extends what I verified" is a consistency check from that
checkpoint plus the new entries, never a re-download of the old ones.

Format `lotledger-verifier-state/1`, one file, read whole (the record ids are held in memory by
the verifier anyway); each record costs its id plus 5 bytes (a separator and a u32):

    magic     b"lotledger-verifier-state/1\\n"
    sections  tag (1 ASCII byte) | length (u64, big-endian) | payload, in this order:
      H  header, canonical JSON: {"format", "log_key", "origin", "pairs", "records", "tree_size"}
      C  the signed checkpoint note of size tree_size that the state was verified against
      T  the leaf hash of entry tree_size - 1 (the chain head), then the frontier: one 32-byte
         perfect-subtree hash per set bit of tree_size, largest first
      R  the key history (participants, keys, locations), canonical JSON
      P  the distinct (submitter, kind) pairs of the records, canonical JSON list of pairs
      I  the record ids in log order, UTF-8, joined by "\\n" (ids are printable ASCII, no spaces)
      X  for each record id, the index of its pair in P (u32, little-endian)
      S  SHA-256 of every byte before this section

Nothing here is trusted beyond what it costs to check: on reading, the checksum must match,
the log key must be the one the caller holds, the checkpoint's signature must verify with it,
and the frontier must give the checkpoint's root (so the state's root is the signed root at its
size). A state that fails any of these is refused (reason BAD_STATE, or WRONG_LOG for a state
of another log), never repaired.
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
from array import array
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from lotledger.ledger.core import rules
from lotledger.ledger.core.registry import KeyInfo, Location, Participant, Registry
from lotledger.ledger.errors import LedgerError, VerificationFailed
from lotledger.ledger.tlog import merkle
from lotledger.ledger.verify.verifier import LogVerifier, SeenRecord, check_consistency, open_signed_checkpoint
from lotledger.signing.note import Checkpoint, NoteVerifier

FORMAT = "lotledger-verifier-state/1"
MAGIC = b"lotledger-verifier-state/1\n"
_HEAD = struct.Struct(">cQ")
assert array("I").itemsize == 4, "the record pair index is stored as u32"
_ORDER = (b"H", b"C", b"T", b"R", b"P", b"I", b"X", b"S")
_NAMES = {
    b"H": "header",
    b"C": "checkpoint",
    b"T": "tree",
    b"R": "key history",
    b"P": "pairs",
    b"I": "record ids",
    b"X": "record pairs",
    b"S": "checksum",
}


def _bad(message: str, reason: str = "BAD_STATE") -> VerificationFailed:
    return VerificationFailed(f"verifier state: {message}", reason=reason)


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass
class VerifierState:
    """What a verification proved, as of one signed checkpoint (`note`, opened as `checkpoint`)."""

    log_key: str
    note: bytes
    checkpoint: Checkpoint
    head: bytes
    frontier: list[bytes]
    registry: Registry
    records: dict[str, SeenRecord]

    @property
    def size(self) -> int:
        return self.checkpoint.size

    @classmethod
    def capture(cls, verifier: LogVerifier, note: bytes, log_key: NoteVerifier) -> VerifierState:
        """The state of `verifier`, which has just been checked against the signed `note`.
        Shares the verifier's registry and records (no copy): capture after the last feed.

        Raises VerificationFailed: the verifier did not see every record before its start (an
        increment checked without a state cannot be resumed from: reason INCOMPLETE_STATE), or
        `note` is not the log's signed checkpoint of the verifier's tree (BAD_CHECKPOINT,
        SIZE_MISMATCH, ROOT_MISMATCH).
        """
        if not verifier.records_complete:
            raise _bad(
                "an increment verified without a saved state did not see the records before it; "
                "it cannot be saved as a state to resume from",
                "INCOMPLETE_STATE",
            )
        checkpoint = open_signed_checkpoint(note, log_key)
        verifier.check_checkpoint(checkpoint)
        return cls(
            log_key.verifier_key,
            note,
            checkpoint,
            verifier.head,
            list(verifier.frontier),
            verifier.registry,
            verifier.records(),
        )

    def resume(self, *, check_signatures: bool = True) -> LogVerifier:
        """A verifier that goes on from entry `size`; it shares this state's registry and records."""
        return LogVerifier.resume(
            size=self.size,
            head=self.head,
            frontier=self.frontier,
            registry=self.registry,
            records=self.records,
            check_signatures=check_signatures,
        )


FORK_REASONS = frozenset({"ROLLBACK", "NOT_CONSISTENT", "ROOT_MISMATCH"})
"""Failure reasons that mean the log's signed history is not the one verified before (a fork
or a rollback): the two signed checkpoints are then the evidence."""


def check_extends(held: Checkpoint, new: Checkpoint, proof: list[bytes] | None) -> None:
    """The log's checkpoint `new` must extend `held`, the one a state was verified against:
    not smaller, the same root at the same size, and a consistency proof that holds when the
    source gives one (without one, the new entries fed from the state's frontier must give the
    new root, which proves the same). Both checkpoints are already signature-checked.

    Raises VerificationFailed: ROLLBACK (smaller), NOT_CONSISTENT (another root or a bad proof).
    """
    if new.size < held.size:
        raise VerificationFailed(
            f"the log's checkpoint ({new.size} entries) is older than the one verified before ({held.size}): "
            "the log was rolled back or forked",
            reason="ROLLBACK",
        )
    if new.size == held.size and new.root_hash != held.root_hash:
        raise VerificationFailed(
            f"the log's checkpoint of {new.size} entries has another root ({new.root_hash.hex()}) than the one "
            f"verified before ({held.root_hash.hex()}): the log forked",
            reason="NOT_CONSISTENT",
        )
    if proof is not None:
        check_consistency(held, new, proof)


# ---- writing ---------------------------------------------------------------------------------


def encode_state(state: VerifierState) -> Iterator[bytes]:
    """The state file's bytes, in chunks (the record ids are one chunk: about 30 bytes each)."""
    pairs: dict[SeenRecord, int] = {}
    index = array("I")
    for seen in state.records.values():
        i = pairs.get(seen)
        if i is None:
            i = pairs[seen] = len(pairs)
        index.append(i)
    ids = "\n".join(state.records).encode()
    if ids.count(b"\n") != max(len(state.records) - 1, 0):
        raise ValueError("a record id holds a newline: records admitted by the verifier cannot")
    if sys.byteorder != "little":
        index.byteswap()
    header = {
        "format": FORMAT,
        "log_key": state.log_key,
        "origin": state.checkpoint.origin,
        "pairs": len(pairs),
        "records": len(state.records),
        "tree_size": state.size,
    }
    sections = (
        (b"H", _canonical(header)),
        (b"C", state.note),
        (b"T", state.head + b"".join(state.frontier)),
        (b"R", _canonical(_registry_json(state.registry))),
        (b"P", _canonical([[p.submitter, p.kind] for p in pairs])),
        (b"I", ids),
        (b"X", index.tobytes()),
    )
    digest = hashlib.sha256(MAGIC)
    yield MAGIC
    for tag, payload in sections:
        head = _HEAD.pack(tag, len(payload))
        digest.update(head)
        digest.update(payload)
        yield head
        yield payload
    yield _HEAD.pack(b"S", digest.digest_size) + digest.digest()


def _registry_json(registry: Registry) -> dict[str, Any]:
    keys = []
    for info in registry.keys.values():
        item = asdict(info)
        item["public_key"] = info.public_key.hex()
        keys.append(item)
    out: dict[str, Any] = {
        "participants": [asdict(p) for p in registry.participants.values()],
        "keys": keys,
        "locations": [asdict(loc) for loc in registry.locations.values()],
    }
    if registry.rules != rules.RULES_1:  # states of logs under rules 1 stay byte for byte as they were
        out["rules"] = registry.rules
    return out


# ---- reading ---------------------------------------------------------------------------------


def decode_state(blob: bytes, log_key: NoteVerifier) -> VerifierState:
    """Read a state written by encode_state, for the log `log_key` names.

    Raises VerificationFailed: reason WRONG_LOG for a state of another log; BAD_STATE for
    anything else (not a state file, cut short, a checksum that does not match, a checkpoint that
    does not verify with the log key, a frontier that does not give the checkpoint's root).
    """
    if not blob.startswith(MAGIC):
        raise _bad(f"not a {FORMAT} file")
    view = memoryview(blob)
    sections: dict[bytes, bytes] = {}
    at = len(MAGIC)
    for tag in _ORDER:
        if at + _HEAD.size > len(blob):
            raise _bad(f"the file is cut short before its {_NAMES[tag]} section")
        got, length = _HEAD.unpack_from(blob, at)
        if got != tag:
            raise _bad(f"expected the {_NAMES[tag]} section, found tag {got!r}")
        if at + _HEAD.size + length > len(blob):
            raise _bad(f"the file is cut short inside its {_NAMES[tag]} section")
        if tag == b"S" and hashlib.sha256(view[:at]).digest() != bytes(
            view[at + _HEAD.size : at + _HEAD.size + length]
        ):
            raise _bad("the checksum does not match: the file was damaged")
        at += _HEAD.size
        sections[tag] = bytes(view[at : at + length])
        at += length
    if at != len(blob):
        raise _bad("data after the checksum")
    try:
        header = json.loads(sections[b"H"])
        if header.get("format") != FORMAT:
            raise _bad(f"format {header.get('format')!r} is not {FORMAT}")
        if header["log_key"] != log_key.verifier_key:
            raise _bad(f"it was saved for the log {header['log_key']!r}, not {log_key.verifier_key!r}", "WRONG_LOG")
        size, count, npairs = int(header["tree_size"]), int(header["records"]), int(header["pairs"])
        registry = _registry_from_json(json.loads(sections[b"R"]))
        pairs = [SeenRecord(str(s), str(k)) for s, k in json.loads(sections[b"P"])]
    except (ValueError, KeyError, TypeError, AttributeError) as e:  # UnicodeDecodeError is a ValueError
        raise _bad(f"unreadable header or key history: {e}") from e
    note = sections[b"C"]
    try:
        checkpoint = open_signed_checkpoint(note, log_key)
    except LedgerError as e:
        raise _bad(f"its checkpoint does not verify with the log key: {e.message}") from e
    tree = sections[b"T"]
    if checkpoint.size != size or len(tree) != 32 * (1 + size.bit_count()):
        raise _bad(f"its checkpoint and tree are not of the {size} entries its header states")
    head, frontier = tree[:32], [tree[i : i + 32] for i in range(32, len(tree), 32)]
    if merkle.root_from_frontier(frontier, size) != checkpoint.root_hash:
        raise _bad("its frontier does not give the root of its signed checkpoint")
    if size % 2 and head != frontier[-1]:  # an odd tree's last subtree is its last leaf: the head
        raise _bad("its chain head is not the last leaf of its signed tree")
    try:
        ids = sections[b"I"].decode() if count else ""
    except UnicodeDecodeError as e:
        raise _bad(f"its record ids are not UTF-8: {e}") from e
    names = ids.split("\n") if count else []
    index = array("I")
    if len(sections[b"X"]) % index.itemsize == 0:
        index.frombytes(sections[b"X"])
    if sys.byteorder != "little":
        index.byteswap()
    if len(pairs) != npairs or len(names) != count or len(index) != count or (count and max(index) >= npairs):
        raise _bad(f"its record sections do not hold the {count} records its header states")
    records = dict(zip(names, map(pairs.__getitem__, index), strict=True))
    if len(records) != count:
        raise _bad("a record id appears twice")
    return VerifierState(log_key.verifier_key, note, checkpoint, head, frontier, registry, records)


def _registry_from_json(data: dict[str, Any]) -> Registry:
    registry = Registry()
    for p in data["participants"]:
        registry.participants[p["participant_id"]] = Participant(**p)
    for k in data["keys"]:
        registry.keys[k["key_id"]] = KeyInfo(**{**k, "public_key": bytes.fromhex(k["public_key"])})
    for loc in data["locations"]:
        registry.locations[loc["location_id"]] = Location(**loc)
    registry.rules = int(data.get("rules", rules.RULES_1))
    return registry
