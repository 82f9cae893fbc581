"""A witness (c2sp.org/tlog-witness): cosigns a log's checkpoint only if it is consistent with
the last one it cosigned for that log. A pure state machine, no I/O and no clock; the driver
(ledger/witness/http.py) serves HTTP, persists the state and writes the fork evidence.

What it prevents: a split view, a log showing two parties two different histories that are each
consistent on their own. A witness holds one (size, root) per log and moves it forward only
along a verified consistency proof, so two forks can never both be cosigned by it; a client
that demands a quorum of cosignatures from witnesses it trusts sees the same history as
everyone else, or nothing.

`add-checkpoint`, in the spec's order (each refusal a WitnessError with the spec's status):

  1. the request parses: `old <size>`, at most 63 proof hashes (base64, one per line), an empty
     line, then a signed checkpoint note (400);
  2. the checkpoint's origin is a log the witness knows (404);
  3. the note carries a valid signature by a key the witness holds for that origin (403);
  4. old size <= checkpoint size (400);
  5. old size = the size the witness last cosigned for the origin, 0 if never (409, with that
     size in the body as text/x.tlog.size so the client can retry);
  6. the proof is empty for old size 0, and otherwise a valid RFC 6962 consistency proof from
     the cosigned (size, root) to the checkpoint's (422); at equal sizes the roots must be equal
     (409).
A checkpoint refused at step 6 contradicts what the witness cosigned: the refusal carries
ForkEvidence (both signed notes and the proof), which the driver keeps.

Acceptance is two-phase so that the driver can make the new state durable BEFORE anyone sees
the cosignature (a witness restarted from an older state could otherwise cosign a fork):
add_checkpoint checks and returns an Accepted without changing anything; the driver persists
the state with it applied, then calls commit(), which re-checks that the state did not move in
between (the rollback race the spec describes).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lotledger.ledger.errors import LedgerError, ProofError
from lotledger.ledger.tlog import merkle
from lotledger.signing.cosignature import CosignatureSigner
from lotledger.signing.errors import InvalidNote
from lotledger.signing.note import Checkpoint, NoteVerifier, open_note, parse_note

__all__ = [
    "EMPTY_ROOT",
    "MAX_PROOF_LINES",
    "STATE_FORMAT",
    "Accepted",
    "AddCheckpoint",
    "Cosigned",
    "ForkEvidence",
    "Witness",
    "format_add_checkpoint",
    "parse_add_checkpoint",
    "state_from_json",
    "state_to_json",
]

MAX_PROOF_LINES = 63
"""The spec: a client MUST NOT send more than 63 consistency proof lines."""
EMPTY_ROOT = merkle.EMPTY_ROOT
"""RFC 6962: the root of the empty tree is SHA-256 of the empty string."""
STATE_FORMAT = "lotledger-witness-state/1"
EVIDENCE_FORMAT = "lotledger-fork-evidence/1"
_DECIMAL = re.compile(rb"0|[1-9][0-9]{0,19}")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# ---- the request body -------------------------------------------------------------------------


@dataclass(frozen=True)
class AddCheckpoint:
    """A parsed add-checkpoint request: nothing in it is verified yet."""

    old_size: int
    proof: tuple[bytes, ...]
    note: bytes


def _bad_request(message: str) -> WitnessError:
    return WitnessError(message, status=400, reason="MALFORMED_REQUEST")


def parse_add_checkpoint(body: bytes) -> AddCheckpoint:
    """Split an add-checkpoint body into old size, proof and note.

    Raises WitnessError(400): no empty line, an old size line that is not `old ` and a
    canonical decimal below 2**64, a proof line that is not standard base64 of 32 bytes, or
    more than 63 of them. The note itself is checked by add_checkpoint.
    """
    head, sep, note = body.partition(b"\n\n")
    if not sep:
        raise _bad_request("the request has no empty line between the proof and the checkpoint")
    lines = head.split(b"\n")
    first, proof_lines = lines[0], lines[1:]
    if not first.startswith(b"old ") or not _DECIMAL.fullmatch(first[4:]) or int(first[4:]) > 2**64 - 1:
        raise _bad_request("the first line must be `old <size>` in decimal with no leading zeros")
    if len(proof_lines) > MAX_PROOF_LINES:
        raise _bad_request(f"more than {MAX_PROOF_LINES} consistency proof lines")
    proof = []
    for i, line in enumerate(proof_lines):
        try:
            value = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError) as e:
            raise _bad_request(f"proof line {i + 1} is not standard base64") from e
        if len(value) != merkle.HASH_SIZE or base64.b64encode(value) != line:
            raise _bad_request(f"proof line {i + 1} is not the canonical base64 of a 32-byte hash")
        proof.append(value)
    return AddCheckpoint(int(first[4:]), tuple(proof), note)


def format_add_checkpoint(old_size: int, proof: Sequence[bytes], note: bytes) -> bytes:
    """The request body a log sends (the inverse of parse_add_checkpoint)."""
    lines = [f"old {old_size}".encode("ascii"), *(base64.b64encode(h) for h in proof)]
    return b"\n".join(lines) + b"\n\n" + note


# ---- state and evidence -------------------------------------------------------------------------


@dataclass(frozen=True)
class Cosigned:
    """The latest checkpoint a witness cosigned for one log, with the log's signed note, so
    that a later contradiction can be shown with both notes side by side."""

    origin: str
    size: int
    root_hash: bytes
    note: bytes

    def to_json(self) -> dict[str, Any]:
        return {"size": self.size, "root_hash": _b64(self.root_hash), "note": self.note.decode("utf-8")}

    @classmethod
    def from_json(cls, origin: str, data: Mapping[str, Any]) -> Cosigned:
        """Raises InvalidNote if the stored note does not match the stored size and root."""
        note = str(data["note"]).encode("utf-8")
        cp = Checkpoint.from_body(parse_note(note)[0])
        if (cp.origin, cp.size, _b64(cp.root_hash)) != (origin, data["size"], data["root_hash"]):
            raise InvalidNote(f"the stored state of {origin!r} does not match its stored note")
        return cls(origin, cp.size, cp.root_hash, note)


def state_to_json(state: Mapping[str, Cosigned]) -> dict[str, Any]:
    """The persisted form of a witness's state (origin -> latest cosigned), deterministic."""
    return {"format": STATE_FORMAT, "logs": {o: state[o].to_json() for o in sorted(state)}}


def state_from_json(data: Mapping[str, Any]) -> dict[str, Cosigned]:
    """Raises InvalidNote for another format or an entry whose note does not match it."""
    if data.get("format") != STATE_FORMAT:
        raise InvalidNote(f"witness state is not {STATE_FORMAT}")
    return {origin: Cosigned.from_json(origin, entry) for origin, entry in dict(data["logs"]).items()}


@dataclass(frozen=True)
class ForkEvidence:
    """A signed checkpoint the log issued that contradicts one it issued before (and the witness
    cosigned): two notes signed by the same log key that cannot both be true. The log must
    either produce a consistency proof between them or stand convicted of forking."""

    origin: str
    status: int
    reason: str
    message: str
    observed_at: int
    cosigned: Cosigned
    refused_note: bytes
    old_size: int
    proof: tuple[bytes, ...] = ()

    def to_json(self) -> dict[str, Any]:
        refused = Checkpoint.from_body(parse_note(self.refused_note)[0])
        return {
            "format": EVIDENCE_FORMAT,
            "origin": self.origin,
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
            "observed_at": self.observed_at,
            "cosigned": self.cosigned.to_json(),
            "refused": {"size": refused.size, "root_hash": _b64(refused.root_hash), "note": self.refused_note.decode()},
            "old_size": self.old_size,
            "proof": [_b64(h) for h in self.proof],
        }


class WitnessError(LedgerError):
    """A witness refuses a checkpoint (c2sp.org/tlog-witness add-checkpoint). `status` is the
    HTTP status the spec assigns; for 409 `latest_size` is the size the witness last cosigned
    (its response body); `evidence` is set when the refused checkpoint contradicts what the
    witness cosigned (a possible fork of the log, kept as proof)."""

    default_reason = "WITNESS_REFUSED"

    def __init__(
        self,
        message: str,
        *,
        status: int,
        reason: str | None = None,
        latest_size: int | None = None,
        evidence: ForkEvidence | None = None,
    ):
        super().__init__(message, reason=reason)
        self.status = status
        self.latest_size = latest_size
        self.evidence = evidence


@dataclass(frozen=True)
class Accepted:
    """A checkpoint that passed every check: the state to persist, then commit, then answer
    with `cosignature`."""

    state: Cosigned
    previous_size: int
    cosignature: str


# ---- the witness --------------------------------------------------------------------------------


class Witness:
    """One witness identity (its cosigning key) over a set of known logs. Not thread-safe:
    the driver serializes add_checkpoint, persisting and commit under one lock."""

    def __init__(
        self,
        signer: CosignatureSigner,
        logs: Iterable[NoteVerifier],
        state: Mapping[str, Cosigned] | None = None,
    ):
        """`logs`: the log keys the witness trusts; a log's origin is its key's name (several
        keys may share one origin, during a key rotation for example)."""
        self.signer = signer
        self.logs: dict[str, list[NoteVerifier]] = {}
        for key in logs:
            self.logs.setdefault(key.name, []).append(key)
        self.state: dict[str, Cosigned] = dict(state or {})

    def latest(self, origin: str) -> Cosigned | None:
        return self.state.get(origin)

    def handle(self, body: bytes, now: int) -> Accepted:
        """parse_add_checkpoint + add_checkpoint. Raises WitnessError."""
        request = parse_add_checkpoint(body)
        return self.add_checkpoint(request.old_size, request.proof, request.note, now)

    def add_checkpoint(self, old_size: int, proof: Sequence[bytes], note: bytes, now: int) -> Accepted:
        """Check a checkpoint for cosigning at time `now` (unix seconds); change nothing.

        Raises WitnessError with the spec's status: 400 malformed note or old size above the
        checkpoint's, 404 unknown origin, 403 no valid signature by the log's key, 409 old size
        is not the cosigned size (latest_size set) or same size with another root, 422 bad
        consistency proof. The 409 of another root and the 422 carry ForkEvidence.
        """
        try:
            body, _ = parse_note(note)
            checkpoint = Checkpoint.from_body(body)
        except InvalidNote as e:
            raise _bad_request(f"the checkpoint is not a valid signed note: {e}") from e
        keys = self.logs.get(checkpoint.origin)
        if not keys:
            raise WitnessError(f"unknown log {checkpoint.origin!r}", status=404, reason="UNKNOWN_LOG")
        try:
            open_note(note, keys)
        except InvalidNote as e:
            raise WitnessError(f"no valid signature by the log's key: {e}", status=403, reason="BAD_SIGNATURE") from e
        if old_size > checkpoint.size:
            raise _bad_request(f"old size {old_size} is above the checkpoint's size {checkpoint.size}")
        cosigned = self.state.get(checkpoint.origin)
        known = cosigned.size if cosigned else 0
        if old_size != known:
            raise WitnessError(
                f"old size {old_size} is not the size last cosigned for {checkpoint.origin!r} ({known})",
                status=409,
                reason="OLD_SIZE_MISMATCH",
                latest_size=known,
            )
        self._check_consistency(cosigned, checkpoint, old_size, tuple(proof), note, now)
        state = Cosigned(checkpoint.origin, checkpoint.size, checkpoint.root_hash, note)
        return Accepted(state, known, self.signer.sign(body, now))

    def _check_consistency(
        self,
        cosigned: Cosigned | None,
        checkpoint: Checkpoint,
        old_size: int,
        proof: tuple[bytes, ...],
        note: bytes,
        now: int,
    ) -> None:
        def refuse(status: int, reason: str, message: str) -> WitnessError:
            evidence = None
            if cosigned is not None:
                evidence = ForkEvidence(
                    checkpoint.origin, status, reason, message, now, cosigned, note, old_size, proof
                )
            return WitnessError(message, status=status, reason=reason, latest_size=old_size, evidence=evidence)

        if cosigned is None or cosigned.size == 0:
            # Old size 0: every tree extends the empty one, so there is nothing to prove (a
            # cosigned empty tree is no different from nothing cosigned yet).
            if proof:
                raise _bad_request("the consistency proof must be empty when the old size is 0")
            if checkpoint.size == 0 and checkpoint.root_hash != EMPTY_ROOT:
                raise WitnessError(
                    "a checkpoint of size 0 must carry the root of the empty tree", status=422, reason="BAD_PROOF"
                )
            return
        if checkpoint.size == cosigned.size:
            if checkpoint.root_hash != cosigned.root_hash:
                raise refuse(
                    409,
                    "FORK",
                    f"the log signed two different roots for size {checkpoint.size}: the checkpoint contradicts the "
                    "one this witness cosigned",
                )
            if proof:
                raise WitnessError("equal sizes need an empty consistency proof", status=422, reason="BAD_PROOF")
            return
        try:
            merkle.verify_consistency(cosigned.size, checkpoint.size, cosigned.root_hash, checkpoint.root_hash, proof)
        except ProofError as e:
            raise refuse(
                422,
                "NOT_CONSISTENT",
                f"the checkpoint of size {checkpoint.size} is not shown to extend the cosigned one of size "
                f"{cosigned.size}: {e.message}",
            ) from e

    def commit(self, accepted: Accepted) -> None:
        """Make an accepted checkpoint the latest cosigned one (after the driver persisted it).

        Raises WitnessError(409) if the state moved since add_checkpoint (another request won).
        """
        current = self.state.get(accepted.state.origin)
        if (current.size if current else 0) != accepted.previous_size:
            raise WitnessError(
                "the witness's state changed while the checkpoint was checked; retry",
                status=409,
                reason="OLD_SIZE_MISMATCH",
                latest_size=current.size if current else 0,
            )
        self.state[accepted.state.origin] = accepted.state

    def applied(self, accepted: Accepted) -> dict[str, Cosigned]:
        """The state as it will be after commit(accepted): what the driver persists first."""
        return {**self.state, accepted.state.origin: accepted.state}
