"""`lotledger ca`: a small private CA for mTLS, for a plant that has none; and the options
`serve` and `init` take for TLS and for the log key's passphrase.

    lotledger ca init DIR [--name NAME]                 DIR/ca.key (0600), DIR/ca.crt
    lotledger ca issue --participant ID [--days N] DIR  DIR/ID.crt, DIR/ID.key (0600)
    lotledger ca issue --server HOST [--server H2] DIR  DIR/server.crt, DIR/server.key (0600)

Certificate building lives in lotledger.signing.certs; this module only reads options and
writes files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from lotledger.cli.options import F, json_option
from lotledger.cli.output import ExitCode, emit_json, fail, handles_errors, note

if TYPE_CHECKING:
    from lotledger.rpc.server import ServerTls

# Copies of lotledger.signing.certs.DEFAULT_DAYS and lotledger.rpc.server.LOG_KEY_PASSPHRASE_ENV,
# which the options' help shows: importing those modules to build the options would load
# cryptography's X.509 and the whole server for `--help`. tests/cli/test_startup.py checks them.
DEFAULT_DAYS = 365
LOG_KEY_PASSPHRASE_ENV = "LOTLEDGER_LOG_KEY_PASSPHRASE"


@click.group()
def ca() -> None:
    """A private certificate authority for mTLS: participant and server certificates."""


@ca.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", default="lotledger private CA", show_default=True, help="The CA's subject CN.")
@json_option
@handles_errors
def ca_init(directory: Path, name: str, as_json: bool) -> None:
    """Create a CA in DIRECTORY: ca.key (0600, keep it offline if you can) and ca.crt (give it
    to the server as --client-ca and to clients as --tls-ca)."""
    from lotledger.signing.certs import CA_CERT, CA_KEY, CertificateAuthority

    if (directory / CA_KEY).exists():
        fail(f"{directory / CA_KEY} exists; refusing to overwrite a CA key", ExitCode.USAGE)
    authority = CertificateAuthority.create(name)
    authority.save(directory)
    if as_json:
        emit_json({"ca_cert": str(directory / CA_CERT), "ca_key": str(directory / CA_KEY)})
    else:
        note(f"CA {name!r}: certificate {directory / CA_CERT}, key {directory / CA_KEY} (0600)")


@ca.command("issue")
@click.argument("directory", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--participant", metavar="ID", help="Issue a client certificate naming this participant id.")
@click.option(
    "--server",
    "hosts",
    multiple=True,
    metavar="HOST",
    help="Issue a server certificate for this DNS name or IP address (repeatable).",
)
@click.option(
    "--days",
    default=DEFAULT_DAYS,
    show_default=True,
    type=click.IntRange(min=1),
    help="Days the certificate is valid from now.",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Path prefix: writes OUT.crt and OUT.key.")
@json_option
@handles_errors
def ca_issue(
    directory: Path, participant: str | None, hosts: tuple[str, ...], days: int, out: Path | None, as_json: bool
) -> None:
    """Issue a participant (client) or server certificate signed by the CA in DIRECTORY."""
    from lotledger.ledger.core.validation import is_participant_id
    from lotledger.signing.certs import CertificateAuthority, save_issued

    if bool(participant) == bool(hosts):
        fail("pass --participant ID or --server HOST (not both)", ExitCode.USAGE)
    authority = CertificateAuthority.load(directory)
    if participant:
        if not is_participant_id(participant):
            fail(
                f"--participant: {participant!r} is not a participant id ([a-z0-9][a-z0-9._:-]{{0,63}})", ExitCode.USAGE
            )
        issued = authority.issue_participant(participant, days=days)
        prefix = out or directory / participant
    else:
        issued = authority.issue_server(list(hosts), days=days)
        prefix = out or directory / "server"
    cert_path, key_path = prefix.with_name(prefix.name + ".crt"), prefix.with_name(prefix.name + ".key")
    if key_path.exists():
        fail(f"{key_path} exists; refusing to overwrite a key", ExitCode.USAGE)
    save_issued(issued, cert_path, key_path)
    if as_json:
        emit_json({"cert": str(cert_path), "key": str(key_path), "days": days})
    else:
        who = f"participant {participant!r}" if participant else "server " + ", ".join(hosts)
        note(f"{who}: certificate {cert_path}, key {key_path} (0600), valid {days} days")


# ---- serve's TLS options, and the log key's passphrase ---------------------------------------


def serve_tls_options(fn: F) -> F:
    for option in reversed(
        (
            click.option(
                "--tls-cert",
                type=click.Path(dir_okay=False, exists=True, path_type=Path),
                help="The server's certificate (PEM): serve with mTLS.",
            ),
            click.option(
                "--tls-key",
                type=click.Path(dir_okay=False, exists=True, path_type=Path),
                help="The server certificate's key (PEM, mode 0600).",
            ),
            click.option(
                "--client-ca",
                type=click.Path(dir_okay=False, exists=True, path_type=Path),
                help="Require client certificates signed by this CA (PEM).",
            ),
            click.option(
                "--allow-plaintext",
                is_flag=True,
                help="Serve without TLS on an address that is not loopback (insecure: anyone on the network "
                "can read and write as far as signatures allow).",
            ),
        )
    ):
        fn = option(fn)
    return fn


def server_tls(
    listen: str, cert: Path | None, key: Path | None, client_ca: Path | None, allow_plaintext: bool
) -> ServerTls | None:
    """The TLS settings for `serve`, or None for plaintext, which is allowed on loopback, and
    elsewhere only with --allow-plaintext (and a warning). Exits with a usage error otherwise."""
    from lotledger.rpc.server import ServerTls, is_loopback

    given = [p for p in (cert, key, client_ca) if p is not None]
    if given and len(given) != 3:
        fail("mTLS needs all of --tls-cert, --tls-key and --client-ca", ExitCode.USAGE)
    if given:
        assert cert is not None and key is not None and client_ca is not None
        return ServerTls.load(cert, key, client_ca)
    if not is_loopback(listen):
        if not allow_plaintext:
            fail(
                f"refusing to serve plaintext on {listen}, which is not a loopback address: pass --tls-cert, "
                "--tls-key and --client-ca (lotledger ca), or --allow-plaintext if you must",
                ExitCode.USAGE,
            )
        note(
            f"WARNING: serving PLAINTEXT on {listen}: no transport security, no client identities; "
            "use --tls-cert/--tls-key/--client-ca"
        )
    return None


log_key_passphrase_option = click.option(
    "--log-key-passphrase-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help=f"File holding the log key's passphrase (mode 0600); default: env {LOG_KEY_PASSPHRASE_ENV}.",
)


def log_key_passphrase(path: Path | None) -> bytes | None:
    """The passphrase from --log-key-passphrase-file (a secret file: 0600, trailing newline
    dropped), else from the environment, else None. Raises KeyFileError."""
    if path is not None:
        from lotledger.signing.keys import read_private_file

        secret = read_private_file(path).rstrip(b"\r\n")
        if not secret:
            fail(f"--log-key-passphrase-file: {path} is empty", ExitCode.USAGE)
        return secret
    value = os.environ.get(LOG_KEY_PASSPHRASE_ENV)
    return value.encode() if value else None
