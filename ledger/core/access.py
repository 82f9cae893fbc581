"""Who may do what over the wire: the caller's identity (from its mTLS certificate) and the
one read rule. Pure: no gRPC, no LMDB; the servicer hands in what it read, and where a
rule needs the trace index (does a lot concern the caller?) lotledger.trace.service answers
that one question and this module decides.

Identity. With mTLS on, the server requires a client certificate signed by its client CA;
the participant it names is the SAN URI `lotledger:participant:<id>`, or, for a certificate
with no such URI, its subject CN. A certificate naming two different participants names none.

Writes. The identity must equal the record's submitter (even with a valid signature by the
submitter's key: a stolen key alone does not let another partner write), and an admin record
(ParticipantRegistered, KeyRevoked, LocationRegistered) needs a caller whose registered role
is admin, on top of the signature policy (lotledger.ledger.core.policy).

Reads (the rule, in one place):

| caller                                   | may read                                               |
|------------------------------------------|--------------------------------------------------------|
| mTLS off (plaintext loopback: the demo)  | everything, as before                                  |
| no identity, or an unregistered one      | nothing (gRPC health checking only)                    |
| role admin, qa or auditor                | everything                                             |
| any other registered participant         | checkpoints, consistency proofs and GetKey (public     |
| (manufacturer, supplier, distributor,    | by nature, see below); the entries it is *party to*    |
| customer, scanner): a *partner*          | (GetEntry, and GetInclusionProof for them); Trace,     |
|                                          | Recall and CommonSources of lots that *concern* it;    |
|                                          | the alerts on such lots. Never ListEntries (the whole  |
|                                          | log is for auditors, QA and admins).                   |

- A record is *its* (the participant is party to it) when it submitted it, or the record
  names it as a counterparty: a shipment's from/to participant, a receipt's participant, a
  material receipt's supplier.
- A lot *concerns* a participant when the lot is its own (`lot_owner`: it produced the lot,
  or first received it in a material receipt), or another participant's entry behind the lot
  names it as counterparty (the lot was shipped to or by it, or received from it as
  supplier): one step up and one step down. Mentioning a lot opens nothing: a shipment,
  receipt or scan that names someone else's lot, even before that lot is made, does not make
  it the writer's.
- A record id or a supplier lot code a partner may not read and one that does not exist get
  the same refusal.
- A partner's trace reaches one step (lotledger.trace.service PARTNER_DEPTH): whom its lot
  went to or came from, not the rest of another participant's chain.
- An entry is readable when it is the caller's, or it names a lot that concerns the caller.
- Checkpoints and consistency proofs are public by nature in a transparency log: they carry
  a tree size and hashes, nothing about any record, and every participant (and witness)
  needs them to check that the log it relies on only grows. GetKey maps a key id (a hash
  seen in an entry the caller could read) to its participant: what a partner needs to check
  the signatures on the entries it can read.
- The manufacturer is a partner here, not a full reader: a plant's own people who trace
  and recall across the whole log get the qa role (least privilege).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from lotledger.ledger.core.policy import ADMIN_KINDS
from lotledger.ledger.core.validation import lot_key
from lotledger.ledger.errors import PermissionDenied, Unauthenticated
from lotledger.v1 import records_pb2

PARTICIPANT_URI_PREFIX = "lotledger:participant:"  # the same prefix lotledger.signing.certs writes
FULL_READERS = frozenset({"admin", "qa", "auditor"})


@dataclass(frozen=True)
class Caller:
    """Who is calling. `tls` False: plaintext transport, no identity to check (loopback
    only). `participant`: the id the client certificate names, or None. `role`: that
    participant's registered role, or None if it is not registered."""

    tls: bool
    participant: str | None = None
    role: str | None = None

    @property
    def reads_everything(self) -> bool:
        return not self.tls or self.role in FULL_READERS

    def __str__(self) -> str:
        return f"participant {self.participant!r}" if self.participant else "an anonymous caller"


OPEN = Caller(tls=False)


def participant_of(auth: Mapping[str, Sequence[bytes]]) -> str | None:
    """The participant id a verified client certificate names, from gRPC's auth context
    (`x509_subject_alternative_name`, `x509_common_name`); None when it names none or names
    two different ones."""
    uris = {
        v.decode("utf-8", "replace")[len(PARTICIPANT_URI_PREFIX) :]
        for v in auth.get("x509_subject_alternative_name", ())
        if v.startswith(PARTICIPANT_URI_PREFIX.encode())
    }
    if len(uris) > 1:
        return None
    if uris:
        return uris.pop() or None
    names = {v.decode("utf-8", "replace") for v in auth.get("x509_common_name", ())}
    return names.pop() if len(names) == 1 else None


def caller_from(auth: Mapping[str, Sequence[bytes]], role_of: Callable[[str], str | None], *, mtls: bool) -> Caller:
    """The Caller for a gRPC auth context. `mtls`: the server requires client certificates
    (then a call without TLS, which cannot happen, would be an anonymous caller: fail
    closed); without it every caller is OPEN. `role_of` gives a registered participant's
    role name, None for an unknown id."""
    if not mtls:
        return OPEN
    if b"ssl" not in auth.get("transport_security_type", ()):
        return Caller(tls=True)
    participant = participant_of(auth)
    return Caller(tls=True, participant=participant, role=role_of(participant) if participant else None)


def require_known(caller: Caller) -> None:
    """Any read or write needs a registered identity when mTLS is on.

    Raises Unauthenticated (no identity in the certificate) or PermissionDenied (not registered).
    """
    if not caller.tls:
        return
    if caller.participant is None:
        raise Unauthenticated(
            "the client certificate names no participant (SAN URI lotledger:participant:<id> or CN)",
            reason="NO_IDENTITY",
        )
    if caller.role is None:
        raise PermissionDenied(
            f"the client certificate names participant {caller.participant!r}, which is not registered in this log",
            reason="UNKNOWN_PARTICIPANT",
        )


def check_submission(caller: Caller, record: records_pb2.Record, kind: str) -> None:
    """May this caller submit this record? (The signature and the key's owner are checked
    by admission and the registry; this is the transport identity.)

    Raises Unauthenticated or PermissionDenied (IDENTITY_MISMATCH, ADMIN_REQUIRED).
    """
    if not caller.tls:
        return
    require_known(caller)
    if caller.participant != record.submitter:
        raise PermissionDenied(
            f"the client certificate identifies participant {caller.participant!r}, but the record's submitter "
            f"is {record.submitter!r}: a participant submits only its own records, whoever's key signed them",
            reason="IDENTITY_MISMATCH",
            field="submitter",
        )
    if kind in ADMIN_KINDS and caller.role != "admin":
        raise PermissionDenied(
            f"{kind} records need a caller with the admin role; {caller} has role {caller.role!r}",
            reason="ADMIN_REQUIRED",
            field=kind,
        )


def is_party(participant: str, record: records_pb2.Record) -> bool:
    """True when `participant` submitted `record` or the record names it as a counterparty."""
    if record.submitter == participant:
        return True
    kind = record.WhichOneof("body")
    if kind == "shipment":
        return participant in (record.shipment.from_participant, record.shipment.to_participant)
    if kind == "receipt":
        return record.receipt.participant == participant
    if kind == "material_received":
        return record.material_received.supplier == participant
    if kind == "correction":
        return is_party(participant, record.correction.corrected)
    return False


def _named_by_another(participant: str, record: records_pb2.Record) -> bool:
    """Another participant's record names `participant` as its counterparty."""
    if record.submitter == participant:
        return False
    kind = record.WhichOneof("body")
    if kind == "correction":
        return _named_by_another(participant, record.correction.corrected)
    return is_party(participant, record)


def lot_owner(lot: str, records_behind_lot: Iterable[records_pb2.Record]) -> str | None:
    """Whose lot is it? The participant that produced it (a production run with it among its
    outputs, or a produce scan of it); else the one that first received it (a material
    receipt); else, for a lot nobody made or received in this log (a supplier's own lot), the
    first that shipped it from itself. Never whoever merely mentioned it first: a shipment
    naming a lot that someone else makes, even before it is made, does not make it the
    shipper's. `records_behind_lot`: in log order."""
    received: str | None = None
    shipped: str | None = None
    for record in records_behind_lot:
        kind = record.WhichOneof("body")
        if kind == "production_run" and any(lot_key(o.lot) == lot for o in record.production_run.outputs):
            return record.submitter
        if kind == "scan" and record.scan.meaning == records_pb2.SCAN_MEANING_PRODUCE:
            g = record.scan.gs1
            if g.gtin and g.lot and lot_key(records_pb2.LotId(gtin=g.gtin, lot=g.lot)) == lot:
                return record.submitter
        if kind == "material_received" and received is None and lot_key(record.material_received.lot) == lot:
            received = record.submitter
        if kind == "shipment" and shipped is None and record.shipment.from_participant == record.submitter:
            if any(lot_key(item.lot) == lot for item in record.shipment.lots):
                shipped = record.submitter
    return received or shipped


def lot_concerns(caller: Caller, lot: str, records_behind_lot: Sequence[records_pb2.Record]) -> bool:
    """Does `lot` concern the caller, given the records behind it in log order (the trace
    index's seqs, oldest first)? Yes when the lot is the caller's own (`lot_owner`: it made
    the lot or first received it), or another participant's record names the caller as its
    counterparty (shipped it to or from the caller, received it from the caller as supplier):
    one step up and one step down. Mentioning a lot opens nothing: a shipment, receipt or
    scan naming someone else's lot (even before that lot is made) does not make it the
    writer's."""
    if caller.reads_everything:
        return True
    assert caller.participant is not None  # require_known ran; partners have an identity
    if lot_owner(lot, records_behind_lot) == caller.participant:
        return True
    return any(_named_by_another(caller.participant, record) for record in records_behind_lot)


def require_lots(caller: Caller, lots: Iterable[str], concerns: Callable[[str], bool]) -> None:
    """Every lot named must concern the caller. Whether one lot does needs the trace index
    (which records are behind it), so `concerns` answers that for one lot (the trace service
    asks `lot_concerns` over the index); a full reader is never asked, so a lot unknown to the
    index reaches the query and is answered NOT_FOUND there, while a partner gets the same
    refusal whether the lot exists or not.

    Raises PermissionDenied (READ_NOT_ALLOWED, field "lot") for the first lot that does not concern it.
    """
    if caller.reads_everything:
        return
    for lot in lots:
        if not concerns(lot):
            raise refuse_lot(caller, lot)


def entry_record(entry_bytes: bytes) -> records_pb2.Record:
    """The record a stored entry carries, as its submitter wrote it (a correction stays a
    correction: `is_party` looks inside it). Committed entries were validated on the way in,
    so this decodes without re-checking.

    Raises google.protobuf.message.DecodeError only for bytes that are not an entry.
    """
    entry = records_pb2.Entry.FromString(entry_bytes)
    record: records_pb2.Record = records_pb2.Record.FromString(entry.signed_record.record_bytes)
    return record


def require_entry(
    caller: Caller, seq: int, record: records_pb2.Record, names_a_lot_of_the_caller: Callable[[], bool]
) -> None:
    """May the caller read entry `seq`, whose record is `record`? Yes for a full reader, when
    the record is the caller's (`is_party`), or when it names a lot that concerns the caller.
    The last question needs the trace index, so it comes as a callable, asked only when the
    first two answers are no (most reads of a partner are of its own entries).

    Raises PermissionDenied (READ_NOT_ALLOWED, field "seq").
    """
    if caller.reads_everything:
        return
    assert caller.participant is not None  # require_known ran; partners have an identity
    if is_party(caller.participant, record):
        return
    if not names_a_lot_of_the_caller():
        raise refuse_entry(caller, seq)


def require_full_reader(caller: Caller, what: str) -> None:
    """Raises Unauthenticated/PermissionDenied unless the caller reads everything."""
    require_known(caller)
    if not caller.reads_everything:
        raise PermissionDenied(
            f"{what} is for the admin, qa and auditor roles; {caller} has role {caller.role!r}",
            reason="READ_NOT_ALLOWED",
        )


def refuse_lot(caller: Caller, lot: str) -> PermissionDenied:
    """The refusal for a lot that does not concern the caller (the same whether the lot
    exists or not, so a partner cannot probe for other partners' lots)."""
    return PermissionDenied(
        f"lot {lot!r} does not concern {caller}: a partner reads the lots it shipped, received, supplied or made",
        reason="READ_NOT_ALLOWED",
        field="lot",
    )


def refuse_supplier_code(caller: Caller, code: str) -> PermissionDenied:
    """The refusal for a supplier lot code whose lots do not all concern the caller, or that no
    lot was received under: one answer for both, so a code cannot be probed for."""
    return PermissionDenied(
        f"supplier lot code {code!r} names no lot that concerns {caller}",
        reason="READ_NOT_ALLOWED",
        field="supplier_lot_codes",
    )


def refuse_record(caller: Caller, record_id: str) -> PermissionDenied:
    """The refusal for a record id a partner may not read, or that does not exist: one answer
    for both, so an id cannot be probed for."""
    return PermissionDenied(
        f"no record {record_id!r} that {caller} may read: a partner reads the entries it is party to, "
        "and those naming lots that concern it",
        reason="READ_NOT_ALLOWED",
        field="record_id",
    )


def refuse_entry(caller: Caller, seq: int) -> PermissionDenied:
    """The refusal for an entry the caller may not read (see `require_entry`)."""
    return PermissionDenied(
        f"entry {seq} does not concern {caller}: a partner reads the entries it is party to, "
        "and those naming lots that concern it",
        reason="READ_NOT_ALLOWED",
        field="seq",
    )
