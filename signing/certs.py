"""A small private certificate authority for mTLS: the CA, participant (client) certificates
and server certificates, built with `cryptography.x509`.

Why here, beside keys.py: like keys.py this module owns a slice of pyca/cryptography (X.509
and the ECDSA keys TLS uses), translates its exceptions into lotledger.signing.errors once,
and writes secrets through keys.write_private_file (0600, atomic). Record keys stay Ed25519
(keys.py); TLS keys are ECDSA P-256 because every TLS stack gRPC links (BoringSSL, OpenSSL)
takes them in certificates, for TLS 1.2 and 1.3 alike.

The identity a participant certificate carries (what the server compares with a record's
submitter) is the SAN URI `lotledger:participant:<id>` (PARTICIPANT_URI_PREFIX), and the
same id as the subject CN for tools that only show the CN. Building is pure (keys and times
come in, PEM bytes go out); the file layout of a CA directory is `ca.key` (0600) and `ca.crt`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lotledger.signing.errors import InvalidKey
from lotledger.signing.keys import read_private_file, write_private_file, write_public_file

PARTICIPANT_URI_PREFIX = "lotledger:participant:"
CA_KEY = "ca.key"
CA_CERT = "ca.crt"
DEFAULT_DAYS = 365
CA_DAYS = 3650
# Certificates start a little in the past, so a peer whose clock runs slightly behind accepts them.
BACKDATE = timedelta(minutes=5)


def participant_uri(participant_id: str) -> str:
    """The SAN URI naming a participant: `lotledger:participant:<id>`."""
    return PARTICIPANT_URI_PREFIX + participant_id


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key, both PEM (the key unencrypted: write it 0600)."""

    cert_pem: bytes
    key_pem: bytes


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class CertificateAuthority:
    """A CA key and its self-signed certificate; issues participant and server certificates."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate):
        self._key = key
        self.cert = cert

    def __repr__(self) -> str:
        return f"CertificateAuthority({self.cert.subject.rfc4514_string()})"

    @classmethod
    def create(cls, name: str, *, now: datetime | None = None, days: int = CA_DAYS) -> CertificateAuthority:
        """A new CA named `name` (its subject CN), valid for `days` from `now`."""
        now = now or datetime.now(UTC)
        key = _new_key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def save(self, directory: Path) -> None:
        """Write ca.key (0600) and ca.crt (0644) into `directory`. Raises KeyFileError."""
        write_private_file(directory / CA_KEY, _key_pem(self._key))
        write_public_file(directory / CA_CERT, self.cert_pem)

    @classmethod
    def load(cls, directory: Path) -> CertificateAuthority:
        """Read a CA directory written by save.

        Raises KeyFileError (missing, or ca.key readable by others) or InvalidKey (not a CA
        key and certificate of this module's kind, or the two do not match).
        """
        key_pem = read_private_file(directory / CA_KEY)
        try:
            cert = x509.load_pem_x509_certificate((directory / CA_CERT).read_bytes())
            key = serialization.load_pem_private_key(key_pem, password=None)
        except OSError as e:
            raise InvalidKey(f"cannot read {directory / CA_CERT}: {e.strerror or e}") from e
        except (ValueError, TypeError, UnsupportedAlgorithm) as e:
            raise InvalidKey(f"{directory} does not hold a usable CA: {e}") from e
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
            raise InvalidKey(f"{directory / CA_KEY} is not the key of {directory / CA_CERT}")
        return cls(key, cert)

    def _leaf(
        self,
        subject_cn: str,
        sans: list[x509.GeneralName],
        usage: x509.ObjectIdentifier,
        now: datetime,
        days: int,
    ) -> Issued:
        if days < 1:
            raise InvalidKey("a certificate must be valid for at least one day")
        key = _new_key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))

    def issue_participant(
        self, participant_id: str, *, days: int = DEFAULT_DAYS, now: datetime | None = None
    ) -> Issued:
        """A client certificate naming `participant_id` (SAN URI and CN), for TLS client auth.
        Raises InvalidKey for days < 1."""
        uri = x509.UniformResourceIdentifier(participant_uri(participant_id))
        return self._leaf(participant_id, [uri], ExtendedKeyUsageOID.CLIENT_AUTH, now or datetime.now(UTC), days)

    def issue_server(self, hosts: list[str], *, days: int = DEFAULT_DAYS, now: datetime | None = None) -> Issued:
        """A server certificate for `hosts` (DNS names or IP addresses, as SANs), for TLS
        server auth. Raises InvalidKey for no hosts or days < 1."""
        if not hosts:
            raise InvalidKey("a server certificate needs at least one host name or address")
        sans: list[x509.GeneralName] = []
        for host in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        return self._leaf(hosts[0], sans, ExtendedKeyUsageOID.SERVER_AUTH, now or datetime.now(UTC), days)


def save_issued(issued: Issued, cert_path: Path, key_path: Path) -> None:
    """Write a certificate (0644) and its key (0600), each atomically. Raises KeyFileError."""
    write_private_file(key_path, issued.key_pem)
    write_public_file(cert_path, issued.cert_pem)
