"""Attacks on a real mTLS server (the table in docs/operators/mtls.md): each is refused with the status
it should get, and the log is unchanged."""

from __future__ import annotations

from types import SimpleNamespace

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from helpers import registration, revocation, shipment
from mtls_helpers import LOT_ACME, LOT_GLOBEX, expired

from lotledger.ledger.core.records import sign
from lotledger.ledger.errors import PermissionDenied, Unauthenticated, Unavailable
from lotledger.ledger.log import Ledger
from lotledger.rpc.client import ClientTls, LedgerClient, StreamRefusal
from lotledger.signing.certs import CertificateAuthority, save_issued
from lotledger.signing.keys import SigningKey
from lotledger.v1 import records_pb2


def settled_state(m: SimpleNamespace) -> tuple[int, bytes]:
    """(size, root) of the log itself (not of its latest checkpoint)."""
    ledger: Ledger = m.server.ledger
    return ledger.size, ledger.root(ledger.size)


# ---- writes -------------------------------------------------------------------------------


def test_own_identity_appends(mtls: SimpleNamespace) -> None:
    acme = mtls.client("acme")
    before = settled_state(mtls)
    result = acme.append(sign(shipment("acme"), mtls.world.keys["acme"]))
    assert result.seq == before[0]


def test_wrong_identity_with_valid_signature_is_refused(mtls: SimpleNamespace) -> None:
    """globex holds acme's signing key (a valid signature) but its own certificate."""
    globex = mtls.client("globex")
    before = settled_state(mtls)
    with pytest.raises(PermissionDenied) as refused:
        globex.append(sign(shipment("acme"), mtls.world.keys["acme"]))
    assert refused.value.reason == "IDENTITY_MISMATCH"
    assert "'globex'" in refused.value.message and "'acme'" in refused.value.message
    outcomes = list(globex.append_stream([sign(shipment("acme"), mtls.world.keys["acme"]) for _ in range(3)]))
    assert all(isinstance(o, StreamRefusal) and o.error.reason == "IDENTITY_MISMATCH" for o in outcomes)
    assert settled_state(mtls) == before


def test_forged_signature_is_refused(mtls: SimpleNamespace) -> None:
    acme = mtls.client("acme")
    before = settled_state(mtls)
    forged = sign(shipment("acme"), mtls.world.keys["acme"])
    forged.signature = bytes(64)
    with pytest.raises(Unauthenticated) as refused:
        acme.append(forged)
    assert refused.value.reason == "BAD_SIGNATURE"
    assert settled_state(mtls) == before


def test_revoked_key_is_refused(mtls: SimpleNamespace) -> None:
    admin, acme = mtls.client("admin"), mtls.client("acme")
    admin.append(sign(revocation("admin", mtls.world.keys["acme"].key_id), mtls.world.admin))
    before = settled_state(mtls)
    with pytest.raises(Unauthenticated) as refused:
        acme.append(sign(shipment("acme"), mtls.world.keys["acme"]))
    assert refused.value.reason == "KEY_REVOKED"
    assert settled_state(mtls) == before


def test_admin_action_needs_an_admin_certificate(mtls: SimpleNamespace) -> None:
    before = settled_state(mtls)
    newcomer = SigningKey.generate()
    # the admin's own key, sent by a partner: the identity is not the submitter
    with pytest.raises(PermissionDenied) as refused:
        mtls.client("acme").append(
            sign(registration("admin", "newco", records_pb2.ROLE_SUPPLIER, newcomer), mtls.world.admin)
        )
    assert refused.value.reason == "IDENTITY_MISMATCH"
    # a partner registering keys as itself, with its own key and certificate
    with pytest.raises(PermissionDenied) as refused:
        mtls.client("acme").append(
            sign(registration("acme", "newco", records_pb2.ROLE_SUPPLIER, newcomer), mtls.world.keys["acme"])
        )
    assert refused.value.reason == "ADMIN_REQUIRED"
    assert settled_state(mtls) == before
    # the admin, with the admin's certificate
    mtls.client("admin").append(
        sign(registration("admin", "newco", records_pb2.ROLE_SUPPLIER, newcomer), mtls.world.admin)
    )
    assert settled_state(mtls)[0] == before[0] + 1


@pytest.mark.parametrize("how", ["expired", "other CA", "no certificate"])
def test_bad_client_certificates_cannot_connect(mtls: SimpleNamespace, how: str) -> None:
    """The TLS handshake fails, so the client sees UNAVAILABLE (grpc reports a failed
    handshake as a connection failure); nothing reaches the servicer."""
    before = settled_state(mtls)
    if how == "expired":
        client = mtls.client("acme", **expired())
    elif how == "other CA":
        rogue = CertificateAuthority.create("rogue CA")
        save_issued(rogue.issue_participant("acme"), mtls.tmp / "rogue.crt", mtls.tmp / "rogue.key")
        client = LedgerClient(
            mtls.server.address,
            timeout=5.0,
            tls=ClientTls.load(mtls.pki.dir / "ca.crt", mtls.tmp / "rogue.crt", mtls.tmp / "rogue.key"),
        )
    else:
        client = mtls.client(None)
    with client:
        with pytest.raises(Unavailable):
            client.wait_ready(timeout=2)
        with pytest.raises(Unavailable):
            client.append(sign(shipment("acme"), mtls.world.keys["acme"]))
    assert settled_state(mtls) == before


def test_plaintext_client_cannot_talk_to_an_mtls_server(mtls: SimpleNamespace) -> None:
    with LedgerClient(mtls.server.address, timeout=3.0) as plain, pytest.raises(Unavailable):
        plain.checkpoint()


# ---- reads --------------------------------------------------------------------------------


def test_auditor_reads_everything(mtls: SimpleNamespace) -> None:
    aud = mtls.client("aud")
    size = mtls.server.ledger.size
    assert [s for s, _ in aud.list_entries(0, size)] == list(range(size))
    for seq in mtls.seqs.values():
        aud.get_entry(seq)
        aud.inclusion_proof(seq)
    aud.trace(LOT_GLOBEX, "down")
    aud.trace(LOT_ACME, "down")
    aud.recall([LOT_GLOBEX])


def test_partner_reads_what_concerns_it(mtls: SimpleNamespace) -> None:
    acme, s = mtls.client("acme"), mtls.seqs
    # its own shipment; the plant's receipt naming acme as supplier; QA's check of acme's lot
    for seq in (s["acme_ship"], s["plant_received"], s["qa_l1"]):
        assert acme.get_entry(seq).seq == seq
        assert acme.inclusion_proof(seq).seq == seq
    acme.trace(LOT_ACME, "down")
    acme.recall([LOT_ACME])
    acme.common_sources([LOT_ACME])
    # public by nature: checkpoints, consistency proofs, key lookups
    cp = acme.checkpoint()
    acme.consistency_proof(1, cp.size)
    acme.get_key(mtls.world.keys["globex"].key_id)


def test_partner_cannot_read_other_partners_business(mtls: SimpleNamespace) -> None:
    acme, globex, s = mtls.client("acme"), mtls.client("globex"), mtls.seqs
    for call in (
        lambda: acme.get_entry(s["globex_ship"]),
        lambda: acme.inclusion_proof(s["globex_ship"]),
        lambda: acme.trace(LOT_GLOBEX, "up"),
        lambda: acme.recall([LOT_GLOBEX]),
        lambda: acme.common_sources([LOT_GLOBEX]),
        lambda: acme.trace("01/09520000000035/10/NOPE", "down"),  # unknown lots look the same
        lambda: globex.get_entry(s["qa_l1"]),  # QA of acme's lot is none of globex's business
        lambda: globex.get_entry(s["plant_received"]),
        lambda: list(acme.list_entries(0, 2)),  # the whole log is for auditors, QA, admins
        lambda: list(acme.list_admin_entries(0, 2)),
    ):
        with pytest.raises(PermissionDenied) as refused:
            call()
        assert refused.value.reason == "READ_NOT_ALLOWED"


def test_unregistered_identity_gets_health_only(mtls: SimpleNamespace) -> None:
    ghost = mtls.client("ghost")
    for call in (ghost.checkpoint, lambda: ghost.get_entry(0), lambda: ghost.trace(LOT_ACME, "down"), ghost.alerts):
        with pytest.raises(PermissionDenied) as refused:
            call()
        assert refused.value.reason == "UNKNOWN_PARTICIPANT"
    before = settled_state(mtls)
    with pytest.raises(PermissionDenied):
        ghost.append(sign(shipment("ghost"), SigningKey.generate()))
    assert settled_state(mtls) == before
    health = health_pb2_grpc.HealthStub(ghost.channel)
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == health_pb2.HealthCheckResponse.SERVING


def test_rpc_status_of_a_refused_read_is_permission_denied(mtls: SimpleNamespace) -> None:
    """The status code on the wire, not just our error type."""
    from lotledger.v1 import ledger_service_pb2 as pb
    from lotledger.v1 import ledger_service_pb2_grpc as pb_grpc

    stub = pb_grpc.LedgerServiceStub(mtls.client("acme").channel)
    with pytest.raises(grpc.RpcError) as e:
        stub.GetEntry(pb.GetEntryRequest(seq=mtls.seqs["globex_ship"]), timeout=5)
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_limits_are_spent_by_the_certificate_identity(mtls: SimpleNamespace) -> None:
    """With mTLS the append rate and stream slots are charged to the participant the client
    certificate names (checked equal to the submitter before); without it, to the owner of the
    key the signature verified with."""
    from lotledger.ledger.core.access import OPEN, Caller
    from lotledger.rpc.ratelimit import UNVERIFIED

    servicer = mtls.server.servicer
    admitted = mtls.server.ledger.precheck(sign(shipment("acme"), mtls.world.keys["acme"]))
    assert servicer._participant_of(admitted, Caller(tls=True, participant="acme", role="supplier")) == "acme"
    assert servicer._participant_of(admitted, OPEN) == "acme"  # the key's owner
    unknown = mtls.server.ledger.precheck(sign(shipment("acme"), SigningKey.generate()))
    assert servicer._participant_of(unknown, OPEN) == UNVERIFIED


def test_writing_about_a_lot_does_not_open_it_to_the_writer(mtls: SimpleNamespace) -> None:
    """globex appends its own shipment naming acme's lot (accepted: irregularities are flagged,
    not refused). That must not make acme's lot "concern" globex: only the first record of a
    lot, or another participant's record naming globex, would."""
    globex = mtls.client("globex")
    claim = globex.append(sign(shipment("globex", gtin_=LOT_ACME.split("/")[1]), mtls.world.keys["globex"]))
    assert claim.seq > 0
    for call in (lambda: globex.trace(LOT_ACME, "up"), lambda: globex.recall([LOT_ACME])):
        with pytest.raises(PermissionDenied) as refused:
            call()
        assert refused.value.reason == "READ_NOT_ALLOWED"
    with pytest.raises(PermissionDenied):
        globex.get_entry(mtls.seqs["acme_ship"])  # acme's shipment of that lot stays acme's
    globex.get_entry(claim.seq)  # its own entry, it may read
