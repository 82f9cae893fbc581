"""The web app over mTLS: an auditor's certificate reads the log; a partner's sees only what
the read rule gives it (and pages still render); no certificate gets an error page."""

from __future__ import annotations

from types import SimpleNamespace

from helpers import ORIGIN
from mtls_helpers import LOT_ACME, LOT_GLOBEX

from lotledger.rpc.client import LedgerClient
from lotledger.signing.note import NoteVerifier
from lotledger.web.app import create_app
from lotledger.web.source import LedgerSource


def _web(mtls: SimpleNamespace, participant: str | None):  # type: ignore[no-untyped-def]
    source = LedgerSource(lambda: LedgerClient(mtls.server.address, timeout=5.0, tls=mtls.pki.tls(participant)))
    verifier = NoteVerifier.from_key(ORIGIN, mtls.world.log_key.public)
    return source, create_app(source, verifier).test_client()


def test_auditor_reads_everything_a_partner_its_own_and_no_certificate_nothing(mtls: SimpleNamespace) -> None:
    source, web = _web(mtls, "aud")
    try:
        assert web.get("/trace", query_string={"lot": LOT_GLOBEX}).status_code == 200
        assert web.get(f"/api/proof/{mtls.seqs['globex_ship']}").json["key_entry"]["seq"] > 0
        assert "globex" in source.directory().participants
    finally:
        source.close()
    source, web = _web(mtls, "acme")
    try:
        assert web.get("/trace", query_string={"lot": LOT_ACME}).status_code == 200
        denied = web.get("/trace", query_string={"lot": LOT_GLOBEX})
        assert denied.status_code == 403 and b"READ_NOT_ALLOWED" in denied.data
        assert web.get("/status").status_code == 200  # checkpoints are public
    finally:
        source.close()
    source, web = _web(mtls, None)
    try:
        r = web.get("/alerts")  # the server wants a client certificate: the handshake fails
        assert r.status_code == 503 and b"did not answer" in r.data
    finally:
        source.close()
