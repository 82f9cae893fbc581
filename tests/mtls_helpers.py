"""mTLS test helpers: a CA directory issuing certificates with lotledger's own CA code, and
the lots of the security fixture (tests/security/conftest.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from helpers import GTIN_A, GTIN_B

from lotledger.rpc.client import ClientTls
from lotledger.signing.certs import CertificateAuthority, Issued, save_issued

LOT_ACME = f"01/{GTIN_A}/10/L1"  # acme shipped it to the plant
LOT_GLOBEX = f"01/{GTIN_B}/10/L1"  # globex shipped it to the plant


class Pki:
    """A CA directory and helpers to get certificates for participants."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.ca = CertificateAuthority.create("test CA")
        self.ca.save(directory)

    def issue(self, participant: str, **kw: object) -> tuple[Path, Path]:
        issued: Issued = self.ca.issue_participant(participant, **kw)  # type: ignore[arg-type]
        cert, key = self.dir / f"{participant}.crt", self.dir / f"{participant}.key"
        save_issued(issued, cert, key)
        return cert, key

    def tls(self, participant: str | None, **kw: object) -> ClientTls:
        if participant is None:
            return ClientTls(self.ca.cert_pem)
        cert, key = self.issue(participant, **kw)
        return ClientTls.load(self.dir / "ca.crt", cert, key)


def expired() -> dict[str, object]:
    """Issue arguments for a certificate that expired yesterday."""
    return {"now": datetime.now(UTC) - timedelta(days=3), "days": 1}
