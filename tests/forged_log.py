"""A log built entry by entry the way the server writes it, with checkpoints signed by its own
log key, and no admission checks at all: what a dishonest or compromised log could serve."""

from __future__ import annotations

import time

from helpers import new_record, registration, shipment, signed

from lotledger.ledger.tlog import merkle
from lotledger.ledger.tlog.entries import ZERO_HASH, build_entry
from lotledger.signing.keys import SigningKey
from lotledger.signing.note import Checkpoint, NoteSigner, NoteVerifier, sign_note
from lotledger.v1 import records_pb2

ORIGIN = "forged.example.com/lotledger"


class ForgedLog:
    """Entry 0 registers `admin`, entry 1 the supplier `acme`."""

    def __init__(self) -> None:
        self.signer = NoteSigner(ORIGIN, SigningKey.generate())
        self.vkey = NoteVerifier.from_string(self.signer.verifier_key)
        self.entries: list[bytes] = []
        self.tree = merkle.MemoryTree()
        self.head = ZERO_HASH
        self.admin, self.acme = SigningKey.generate(), SigningKey.generate()
        self.add(signed(registration("admin", "admin", records_pb2.ROLE_ADMIN, self.admin), self.admin))
        self.add(signed(registration("admin", "acme", records_pb2.ROLE_SUPPLIER, self.acme), self.admin))

    def add(self, signed_record: records_pb2.SignedRecord) -> int:
        seq = len(self.entries)
        entry = build_entry(seq, self.head, time.time_ns(), signed_record)
        self.entries.append(entry)
        self.head = merkle.leaf_hash(entry)
        self.tree.append(self.head)
        return seq

    def shipments(self, n: int, prefix: str) -> None:
        for i in range(n):
            self.add(signed(shipment(record_id=f"{prefix}-{i}"), self.acme))

    def note(self, size: int | None = None) -> bytes:
        """The signed checkpoint of the first `size` entries (default: all)."""
        size = self.tree.size if size is None else size
        return sign_note(Checkpoint(ORIGIN, size, self.tree.root(size)).body(), self.signer)


def correction_of(record_id: str, submitter: str = "acme") -> records_pb2.Record:
    record = new_record(submitter)
    record.correction.corrects_record_id, record.correction.reason = record_id, "typo"
    record.correction.corrected.CopyFrom(shipment(submitter, record_id=record_id))
    return record
