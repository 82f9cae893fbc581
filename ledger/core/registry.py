"""The key history: participants, their roles and keys, and location master data.

Pure state, derived from the admin records in the log and nothing else. The server keeps one
(rebuilt at start by replaying the admin entries) and every verifier rebuilds its own from the
entries it downloads, so "was this key valid for this submitter at entry N" has one answer
that needs no trust in the server.

Genesis: an empty registry accepts exactly one record, a ParticipantRegistered of role admin
signed by the very key it registers (entry 0, written by `lotledger init`); the log key's
signature on checkpoints is what anchors it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from lotledger.ledger.core import policy, rules
from lotledger.ledger.errors import Conflict, InvalidRecord, PermissionDenied, Unauthenticated
from lotledger.signing.keys import key_id as compute_key_id
from lotledger.v1 import records_pb2


@dataclass
class KeyInfo:
    key_id: str
    public_key: bytes
    participant: str
    registered_seq: int
    revoked_seq: int | None = None
    revoke_reason: str = ""


@dataclass
class Participant:
    participant_id: str
    role: str
    registered_seq: int
    business_name: str = ""
    phone: str = ""
    address: str = ""
    gln: str = ""
    key_ids: list[str] = field(default_factory=list)


@dataclass
class Location:
    location_id: str
    participant_id: str
    name: str
    address: str
    phone: str
    gln: str
    registered_seq: int


class Registry:
    """Participants, keys and locations as of some log position."""

    def __init__(self) -> None:
        self.participants: dict[str, Participant] = {}
        self.keys: dict[str, KeyInfo] = {}
        self.locations: dict[str, Location] = {}
        # The admission rules of the log (ledger/core/rules.py), as its genesis entry states them.
        self.rules = rules.RULES_1

    def copy(self) -> Registry:
        """A deep copy, so a writer can apply a batch tentatively and drop it if the commit fails."""
        return copy.deepcopy(self)

    def public_key(self, key_id: str) -> bytes | None:
        """The raw public key for a key id, registered or revoked (the mapping never changes:
        the id is the key's hash), or None if this registry never saw it."""
        info = self.keys.get(key_id)
        return info.public_key if info else None

    @property
    def is_empty(self) -> bool:
        return not self.keys

    def authorize(self, record: records_pb2.Record, key_id: str, public_key: bytes | None) -> None:
        """May this key sign this record now? Fails closed.

        `public_key` is the raw key the signature was verified with by the caller (None when
        the caller could not verify yet; only the genesis record can get here that way, and
        then its own registered key must be the signing key).

        Raises Unauthenticated (unknown, revoked or someone else's key) or PermissionDenied
        (the submitter's role may not submit this kind).
        """
        kind = record.WhichOneof("body") or ""
        if self.is_empty:
            self._authorize_genesis(record, key_id, kind)
            return
        info = self.keys.get(key_id)
        if info is None:
            raise Unauthenticated(
                f"key {key_id} is not registered; ask an admin to register it (lotledger keys register)",
                reason="UNKNOWN_KEY",
                field="key_id",
            )
        if info.revoked_seq is not None:
            raise Unauthenticated(
                f"key {key_id} was revoked at entry {info.revoked_seq}: {info.revoke_reason}",
                reason="KEY_REVOKED",
                field="key_id",
            )
        if info.participant != record.submitter:
            raise Unauthenticated(
                f"key {key_id} belongs to participant {info.participant!r}, not to submitter {record.submitter!r}",
                reason="KEY_NOT_SUBMITTERS",
                field="submitter",
            )
        role = self.participants[info.participant].role
        if not policy.may_submit(role, kind):
            raise PermissionDenied(
                f"participant {record.submitter!r} has role {role!r}, which may not submit {kind} records",
                reason="ROLE_NOT_ALLOWED",
                field=kind,
            )

    def _authorize_genesis(self, record: records_pb2.Record, key_id: str, kind: str) -> None:
        reg = record.participant_registered
        if (
            kind != "participant_registered"
            or reg.role != records_pb2.ROLE_ADMIN
            or reg.participant_id != record.submitter
            or compute_key_id(reg.public_key) != key_id
        ):
            raise Unauthenticated(
                "the log is empty: its first record must register an admin, signed by that admin's own key",
                reason="GENESIS_REQUIRED",
            )

    def check_and_apply(self, record: records_pb2.Record, seq: int) -> bool:
        """Apply an admin record at `seq`; returns True if it changed the registry.

        Checks everything before changing anything, so a refused record leaves the registry
        as it was. Raises Conflict (key or participant already registered differently) or
        InvalidRecord (revoking an unknown or already revoked key).
        """
        kind = record.WhichOneof("body")
        if kind == "participant_registered":
            self._register(record.participant_registered, seq)
        elif kind == "key_revoked":
            self._revoke(record.key_revoked, seq)
        elif kind == "location_registered":
            loc = record.location_registered
            if loc.participant_id not in self.participants:
                raise InvalidRecord(
                    f"location_registered.participant_id: participant {loc.participant_id!r} is not registered",
                    reason="UNKNOWN_PARTICIPANT",
                    field="location_registered.participant_id",
                )
            self.locations[loc.location_id] = Location(
                loc.location_id, loc.participant_id, loc.name, loc.address, loc.phone, loc.gln, seq
            )
        else:
            return False
        return True

    def _register(self, reg: records_pb2.ParticipantRegistered, seq: int) -> None:
        stated = rules.of_genesis(reg.rules_version) if self.is_empty else None
        if stated is not None and stated not in rules.KNOWN:
            raise InvalidRecord(
                f"participant_registered.rules_version: this lotledger knows rules {sorted(rules.KNOWN)}, "
                f"not {reg.rules_version}; verify this log with a newer lotledger",
                reason="UNKNOWN_RULES",
                field="participant_registered.rules_version",
            )
        if stated is None and reg.rules_version:
            raise InvalidRecord(
                "participant_registered.rules_version: only the genesis entry states the log's rules",
                reason="RULES_AFTER_GENESIS",
                field="participant_registered.rules_version",
            )
        kid = compute_key_id(reg.public_key)
        role = policy.role_name(reg.role)
        existing_key = self.keys.get(kid)
        if existing_key is not None:
            raise Conflict(
                f"key {kid} is already registered to {existing_key.participant!r} (entry {existing_key.registered_seq})",
                reason="KEY_ALREADY_REGISTERED",
                field="participant_registered.public_key",
            )
        participant = self.participants.get(reg.participant_id)
        if participant is not None and participant.role != role:
            raise Conflict(
                f"participant {reg.participant_id!r} is registered with role {participant.role!r}; "
                f"a participant's role does not change (register a new participant id)",
                reason="ROLE_CHANGE",
                field="participant_registered.role",
            )
        if participant is None:
            participant = Participant(reg.participant_id, role, seq)
            self.participants[reg.participant_id] = participant
        # Master data follows the newest registration that carries it.
        for name in ("business_name", "phone", "address", "gln"):
            value = getattr(reg, name)
            if value:
                setattr(participant, name, value)
        participant.key_ids.append(kid)
        self.keys[kid] = KeyInfo(kid, bytes(reg.public_key), reg.participant_id, seq)
        if stated is not None:
            self.rules = stated

    def _revoke(self, rev: records_pb2.KeyRevoked, seq: int) -> None:
        info = self.keys.get(rev.key_id)
        if info is None:
            raise InvalidRecord(
                f"key_revoked.key_id: key {rev.key_id} is not registered",
                reason="UNKNOWN_KEY",
                field="key_revoked.key_id",
            )
        if info.revoked_seq is not None:
            raise Conflict(
                f"key {rev.key_id} was already revoked at entry {info.revoked_seq}",
                reason="KEY_ALREADY_REVOKED",
                field="key_revoked.key_id",
            )
        info.revoked_seq = seq
        info.revoke_reason = rev.reason
