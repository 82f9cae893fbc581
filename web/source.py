"""What the web app reads from the ledger, over gRPC, as an auditor: one object so the Flask
views stay thin and tests can point the app at any server.

The app never writes: it holds no signing key and calls only read RPCs. With mTLS on, give it
an auditor's (or QA's) client certificate; the server's read rule (ledger/core/access.py) then lets
it see the whole log and nothing lets it append.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.json_format import MessageToDict

from lotledger.ledger.errors import NotFound, PermissionDenied
from lotledger.rpc.client import LedgerClient
from lotledger.signing.note import parse_note
from lotledger.v1 import records_pb2, trace_pb2
from lotledger.web.graph import trace_graph

_LOTS_PER_CALL = 1000


@dataclass
class Participant:
    participant_id: str
    role: str = ""
    business_name: str = ""
    phone: str = ""
    address: str = ""
    gln: str = ""


@dataclass
class Directory:
    """Participants as the admin entries registered them (contact data for a recall), kept
    current by reading only the admin entries added since the last look."""

    participants: dict[str, Participant] = field(default_factory=dict)
    next_seq: int = 0

    def add(self, seq: int, entry_bytes: bytes) -> None:
        record = records_pb2.Record.FromString(records_pb2.Entry.FromString(entry_bytes).signed_record.record_bytes)
        kind = record.WhichOneof("body")
        if kind == "participant_registered":
            p = record.participant_registered
            self.participants[p.participant_id] = Participant(
                p.participant_id,
                records_pb2.Role.Name(p.role).removeprefix("ROLE_").lower(),
                p.business_name,
                p.phone,
                p.address,
                p.gln,
            )
        self.next_seq = max(self.next_seq, seq + 1)

    def names(self) -> dict[str, str]:
        return {pid: p.business_name or pid for pid, p in self.participants.items()}


def entry_view(seq: int, entry_bytes: bytes) -> dict[str, Any]:
    """One entry as the record page shows it: who signed (participant and key id), when (the
    submitter's created_at and the log's received_at), what (the record as protobuf JSON)."""
    entry = records_pb2.Entry.FromString(entry_bytes)
    record = records_pb2.Record.FromString(entry.signed_record.record_bytes)
    body = record.WhichOneof("body") or ""
    return {
        "seq": seq,
        "kind": body,
        "record_id": record.record_id,
        "submitter": record.submitter,
        "key_id": entry.signed_record.key_id,
        "created_at": record.created_at.ToJsonString() if record.HasField("created_at") else "",
        "received_at": entry.received_at.ToJsonString(),
        "record": MessageToDict(record, preserving_proto_field_name=True),
    }


class LedgerSource:
    """The ledger as the web app sees it. `connect` makes a LedgerClient (with the TLS the
    command was given); one client is shared by the request threads (gRPC channels are)."""

    def __init__(self, connect: Callable[[], LedgerClient]) -> None:
        self._client = connect()
        self._directory = Directory()
        self._lock = threading.Lock()

    def close(self) -> None:
        self._client.close()

    @property
    def client(self) -> LedgerClient:
        return self._client

    def directory(self) -> Directory:
        """The registry as far as this client may read it: a partner's certificate may not list
        entries, and then pages show participant ids without contact data rather than failing."""
        with self._lock:  # only admin entries added since the last call are read
            try:
                for seq, entry in self._client.list_admin_entries(self._directory.next_seq, 0):
                    self._directory.add(seq, entry)
            except PermissionDenied:
                pass
            return self._directory

    def trace(self, lot: str, depth: int = 0) -> dict[str, Any]:
        """Both directions of `lot`, merged into the drawing (web/graph.py)."""
        up = self._client.trace(lot, "up", depth)
        down = self._client.trace(lot, "down", depth)
        lots = {v.lot for v in up.lots} | {v.lot for v in down.lots}
        keys = sorted(lots)  # in slices: a request must stay well under the server's message limit
        alerts = [
            a
            for i in range(0, len(keys), _LOTS_PER_CALL)
            for a in self._client.alerts(lots=keys[i : i + _LOTS_PER_CALL]).alerts
        ]
        graph = trace_graph(lot, up, down, alerts, self.directory().names())
        graph["elapsed_ms"] = round(up.elapsed_ms + down.elapsed_ms, 3)
        graph["index_size"] = max(up.index_size, down.index_size)
        return graph

    def find_by_supplier_lot(self, code: str) -> list[str]:
        """Our lots received under a supplier's lot code (the recall query resolves them)."""
        try:
            return list(self._client.recall([], "", [code]).triggers)
        except NotFound:
            return []

    def lot_exists(self, lot: str) -> bool:
        try:
            self._client.trace(lot, "up", 1)
        except NotFound:
            return False
        return True

    def recall(self, lots: Iterable[str], reason: str, supplier_lots: Iterable[str] = ()) -> trace_pb2.RecallResponse:
        return self._client.recall(list(lots), reason, list(supplier_lots))

    def alerts(self, rule: str = "", since_seq: int = 0) -> list[trace_pb2.Alert]:
        return list(self._client.alerts(since_seq=since_seq, rule=rule).alerts)

    def entry(self, seq: int) -> dict[str, Any]:
        got = self._client.get_entry(seq=seq)
        return entry_view(got.seq, got.entry)

    def status(self) -> dict[str, Any]:
        """The latest checkpoint: its size, root and every signature line on it (the log's and
        the witnesses' cosignatures), as the log serves it."""
        cp = self._client.checkpoint()
        body, signatures = parse_note(cp.note)
        return {
            "tree_size": cp.size,
            "root_hash": cp.root_hash.hex(),  # as `lotledger verify` prints it (the note has it in base64)
            "body": body.decode(),
            "signatures": [{"name": s.name, "key_hash": s.key_hash.hex()} for s in signatures],
            "note": cp.note.decode(),
        }

    def proof(self, seq: int) -> dict[str, Any]:
        """Everything the page needs to check one entry itself: the entry bytes, its inclusion
        proof and the signed checkpoint of that size, and the same for the entry that registered
        the signing key (so the page can check the record's signature against a key it has
        itself proven is in the log). Nothing here is trusted by the page."""
        got = self._client.get_entry(seq=seq)
        inclusion = self._client.inclusion_proof(seq)
        out: dict[str, Any] = {"seq": seq, **_proof_json(got.entry, inclusion)}
        key_id = records_pb2.Entry.FromString(got.entry).signed_record.key_id
        try:
            registered = self._client.get_key(key_id).registered_seq
        except NotFound:
            return out
        reg_entry = self._client.get_entry(seq=registered)
        reg_proof = self._client.inclusion_proof(registered, inclusion.tree_size)
        out["key_entry"] = {"seq": registered, **_proof_json(reg_entry.entry, reg_proof)}
        return out


def _proof_json(entry: bytes, proof: Any) -> dict[str, Any]:
    return {
        "entry": base64.b64encode(entry).decode(),
        "tree_size": proof.tree_size,
        "proof": [base64.b64encode(h).decode() for h in proof.proof],
        "checkpoint": proof.checkpoint.decode(),
    }
