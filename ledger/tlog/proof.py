"""C2SP transparency log proofs (c2sp.org/tlog-proof): one entry's inclusion proof and the
checkpoint it leads to, as text that anyone holding the log's key can check offline. Pure.

    c2sp.org/tlog-proof@v1
    extra <base64>              (optional, opaque, never trusted)
    index <n>                   (decimal, no leading zeros)
    <base64 hash>               (zero or more: the RFC 6962 audit path, leaf side first)
    <empty line>
    <the checkpoint note, verbatim: body, blank line, log signature and any cosignatures>

lotledger writes no `extra` line (the entry bytes travel beside the proof, see
trace/evidence.py) but reads one, as the spec allows. Parsing is strict in what it takes (the
header, canonical decimal and base64, 32-byte hashes), because a proof is evidence: two
different texts must not mean the same proof.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass

from lotledger.ledger.errors import ProofError
from lotledger.ledger.tlog import merkle
from lotledger.signing.note import Checkpoint

HEADER = "c2sp.org/tlog-proof@v1"
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,19}")
_HASH_SIZE = 32


@dataclass(frozen=True)
class TlogProof:
    index: int
    hashes: tuple[bytes, ...]
    checkpoint: bytes  # the signed note, byte for byte as the log (and witnesses) signed it
    extra: bytes | None = None


def format_proof(index: int, hashes: Sequence[bytes], checkpoint: bytes, extra: bytes | None = None) -> bytes:
    """The proof text. Raises ProofError for a hash that is not 32 bytes or a negative index."""
    if index < 0:
        raise ProofError(f"index {index} is negative")
    lines = [HEADER]
    if extra is not None:
        lines.append("extra " + base64.b64encode(extra).decode())
    lines.append(f"index {index}")
    for h in hashes:
        if len(h) != _HASH_SIZE:
            raise ProofError(f"a proof hash has {len(h)} bytes, not {_HASH_SIZE}")
        lines.append(base64.b64encode(h).decode())
    return ("\n".join(lines) + "\n\n").encode() + checkpoint


def _b64(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ProofError(f"{what} is not base64: {text[:60]!r}") from e
    if base64.b64encode(raw).decode() != text:
        raise ProofError(f"{what} is not in canonical base64: {text[:60]!r}")
    return raw


def parse_proof(text: bytes) -> TlogProof:
    """Split a proof into its parts: structure only, nothing verified.

    Raises ProofError: not UTF-8, a wrong first line, a missing or non-canonical index, a hash
    line that is not canonical base64 of 32 bytes, or no empty line and checkpoint after them.
    """
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ProofError("a tlog-proof is UTF-8 text") from e
    header, sep, rest = decoded.partition("\n")
    if header != HEADER or not sep:
        raise ProofError(f"the first line of a tlog-proof must be {HEADER!r}, not {header[:60]!r}")
    extra = None
    line, sep, rest = rest.partition("\n")
    if line.startswith("extra "):
        extra = _b64(line[len("extra ") :], "the extra line")
        line, sep, rest = rest.partition("\n")
    number = line[len("index ") :] if line.startswith("index ") else ""
    if not sep or not _DECIMAL.fullmatch(number):
        raise ProofError(f"expected 'index <n>' (decimal, no leading zeros), found {line[:60]!r}")
    hashes: list[bytes] = []
    while True:
        line, sep, rest = rest.partition("\n")
        if not sep:
            raise ProofError("the proof has no empty line and checkpoint after its hashes")
        if not line:
            break
        h = _b64(line, f"proof hash {len(hashes)}")
        if len(h) != _HASH_SIZE:
            raise ProofError(f"proof hash {len(hashes)} has {len(h)} bytes, not {_HASH_SIZE}")
        hashes.append(h)
    if not rest:
        raise ProofError("the proof carries no checkpoint after its empty line")
    return TlogProof(int(number), tuple(hashes), rest.encode("utf-8"), extra)


def verify_proof(proof: TlogProof, leaf_hash: bytes, checkpoint: Checkpoint) -> None:
    """Raises ProofError unless the leaf is at `proof.index` in the tree `checkpoint` names.
    `checkpoint` must be the proof's own note, already opened with the log key: the caller
    checks the signature (and which checkpoint it expects), this checks the path."""
    merkle.verify_inclusion(proof.index, checkpoint.size, leaf_hash, list(proof.hashes), checkpoint.root_hash)
