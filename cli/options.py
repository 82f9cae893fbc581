"""Options shared by the client commands, declared once.

Imported by every command module while click builds the command, so `--help` loads it: it
imports click and nothing heavy at module level. The client, the keys and the witness types
are imported by the functions that use them (tests/cli/test_startup.py keeps it so).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from lotledger.cli.output import ExitCode, fail

if TYPE_CHECKING:
    from lotledger.ledger.witness.submitter import WitnessTarget
    from lotledger.rpc.client import ClientTls, LedgerClient
    from lotledger.signing.cosignature import CosignatureVerifier
    from lotledger.signing.note import NoteVerifier

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_SERVER = "127.0.0.1:50051"

_TLS_META = "lotledger.tls"


def _remember_tls(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value:
        ctx.meta.setdefault(_TLS_META, {})[param.name] = value


def tls_options(fn: F) -> F:
    """--tls-ca, --tls-cert, --tls-key (and their env vars) for every command that talks to a
    server. They do not reach the command's signature: `connect` (and `client_tls`) read them
    from the click context, so a command gets mTLS by taking --server."""
    for name, env, text in (
        ("--tls-key", "LOTLEDGER_TLS_KEY", "This participant's TLS key, PEM, mode 0600"),
        ("--tls-cert", "LOTLEDGER_TLS_CERT", "This participant's client certificate, PEM (lotledger ca issue)"),
        ("--tls-ca", "LOTLEDGER_TLS_CA", "Connect with TLS, trusting the server certificate signed by this CA (PEM)"),
    ):
        fn = click.option(
            name,
            envvar=env,
            type=click.Path(dir_okay=False),
            metavar="PATH",
            expose_value=False,
            callback=_remember_tls,
            help=f"{text} (env {env}).",
        )(fn)
    return fn


def client_tls() -> ClientTls | None:
    """The TLS settings given to the running command, or None for plaintext. Exits with a
    usage error for --tls-cert/--tls-key without --tls-ca; raises KeyFileError."""
    ctx = click.get_current_context(silent=True)
    given: dict[str, str] = ctx.meta.get(_TLS_META, {}) if ctx is not None else {}
    if not given:
        return None
    if "tls_ca" not in given:
        fail("--tls-cert/--tls-key need --tls-ca (the CA that signed the server's certificate)", ExitCode.USAGE)
    from lotledger.rpc.client import ClientTls

    tls = ClientTls.load(given["tls_ca"], given.get("tls_cert"), given.get("tls_key"))
    # gRPC only says the handshake failed (after the connect timeout) when a file is of the
    # wrong kind: name the file and the kind expected instead, before connecting.
    for option, pem, begin, kind in (
        ("tls_ca", tls.ca, b"-----BEGIN CERTIFICATE-----", "a CA certificate (PEM, -----BEGIN CERTIFICATE-----)"),
        ("tls_cert", tls.cert, b"-----BEGIN CERTIFICATE-----", "a certificate (PEM, -----BEGIN CERTIFICATE-----)"),
        ("tls_key", tls.key, b"PRIVATE KEY-----", "a private key (PEM, -----BEGIN PRIVATE KEY-----)"),
    ):
        if pem is not None and begin not in pem:
            fail(f"--{option.replace('_', '-')}: {given[option]} is not {kind}", ExitCode.USAGE)
    return tls


def server_option(fn: F) -> F:
    """--server HOST:PORT, with the TLS options that go with it."""
    fn = click.option(
        "--server",
        envvar="LOTLEDGER_SERVER",
        default=DEFAULT_SERVER,
        show_default=True,
        metavar="HOST:PORT",
        help="Ledger server address (env LOTLEDGER_SERVER).",
    )(fn)
    return tls_options(fn)


key_option = click.option(
    "--key",
    "key_path",
    envvar="LOTLEDGER_KEY",
    type=click.Path(dir_okay=False),
    metavar="PATH",
    help="Private key that signs the records (env LOTLEDGER_KEY).",
)
participant_option = click.option(
    "--participant",
    envvar="LOTLEDGER_PARTICIPANT",
    metavar="ID",
    help="Participant id the records are submitted as (env LOTLEDGER_PARTICIPANT).",
)
log_key_option = click.option(
    "--log-key", required=True, metavar="VKEY", help="The log's verifier key (name+hash+key), or a file holding it."
)
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")


def connect(server: str, tls: ClientTls | None = None) -> LedgerClient:
    """A client to a server that answers, or Unavailable (exit 3) within 5 seconds. TLS
    comes from `tls`, else from the command's --tls-* options."""
    from lotledger.rpc.client import LedgerClient

    client = LedgerClient(server, tls=tls or client_tls())
    client.wait_ready(timeout=5.0)
    return client


def log_source_options(fn: F) -> F:
    """Where a verification reads the log (a server by default, a data directory copy or a
    bundle), and the saved state it resumes from: shared by `verify` and `keys list`."""
    for option in reversed(
        (
            click.option(
                "--data-dir",
                type=click.Path(file_okay=False, exists=True, path_type=Path),
                help="Verify a copy of a data directory, with no server.",
            ),
            click.option(
                "--bundle",
                type=click.Path(dir_okay=False, exists=True, path_type=Path),
                help="Verify an export bundle (lotledger export), offline.",
            ),
            click.option(
                "--state",
                "state_dir",
                type=click.Path(file_okay=False, path_type=Path),
                help="Resume from the verification saved in DIR (checking only what is new) and save this one there.",
            ),
            click.option(
                "--server",
                envvar="LOTLEDGER_SERVER",
                default=DEFAULT_SERVER,
                show_default=True,
                metavar="HOST:PORT",
                help="Verify the log this server serves (env LOTLEDGER_SERVER), unless --data-dir or --bundle.",
            ),
        )
    ):
        fn = option(fn)
    return tls_options(fn)


def client_options(fn: F) -> F:
    return server_option(json_option(fn))


def signer_options(fn: F) -> F:
    return server_option(key_option(participant_option(json_option(fn))))


def _key_text(value: str, option: str) -> str:
    """The key string itself (name+hash+key) or the contents of a file that holds it."""
    path = Path(value)
    if "+" not in value or path.is_file():
        try:
            return path.read_text().strip()
        except OSError as e:
            fail(
                f"{option}: {value!r} is neither a verifier key (name+hash+key) nor a readable file: {e}",
                ExitCode.USAGE,
            )
    return value


def _key_source(value: str) -> str:
    """How an error names a key option's value: the file it was read from, else the value."""
    return f"the file {value}" if Path(value).is_file() else f"the value {value!r}"


def verifier_key_arg(value: str, option: str) -> NoteVerifier:
    """A verifier key option (--log-key, --log...) takes the key string itself
    (name+hash+key) or a file that holds it. Exits with a usage error naming the option."""
    from lotledger.signing.errors import InvalidKey
    from lotledger.signing.note import NoteVerifier

    try:
        return NoteVerifier.from_string(_key_text(value, option))
    except InvalidKey as e:
        fail(
            f"{option}: {_key_source(value)} is not a log verifier key ({e}); expected the one line "
            "that `lotledger init` writes to DATA_DIR/log.vkey",
            ExitCode.USAGE,
        )


def witness_key_arg(value: str, option: str) -> CosignatureVerifier:
    """A witness's verifier key (name+hash+base64(0x04 || key), c2sp.org/tlog-cosignature),
    or a file that holds it. Exits with a usage error naming the option."""
    from lotledger.signing.cosignature import CosignatureVerifier
    from lotledger.signing.errors import InvalidKey

    try:
        return CosignatureVerifier.from_string(_key_text(value, option))
    except InvalidKey as e:
        fail(
            f"{option}: {_key_source(value)} is not a witness verifier key ({e}); expected the one line "
            "that `lotledger witness key` prints",
            ExitCode.USAGE,
        )


def witness_target_arg(value: str, option: str) -> WitnessTarget:
    """A witness a log submits to: `URL=VKEY` (the submission URL prefix, then its verifier key
    or a file holding it). Exits with a usage error naming the option."""
    url, sep, vkey = value.partition("=")
    if not sep or not url.startswith(("http://", "https://")):
        fail(f"{option}: {value!r} is not URL=VKEY with an http(s) URL", ExitCode.USAGE)
    from lotledger.ledger.witness.submitter import WitnessTarget

    return WitnessTarget(url, witness_key_arg(vkey, option))


def witness_options(fn: F) -> F:
    """--witness VKEY (repeatable) and --quorum N, for every command that checks a checkpoint."""
    fn = click.option(
        "--quorum", type=int, help="Cosignatures required from distinct --witness keys (default: all of them)."
    )(fn)
    return click.option(
        "--witness",
        "witness_keys",
        multiple=True,
        metavar="VKEY",
        help="A witness whose cosignature counts toward --quorum: its verifier key, or a file holding it.",
    )(fn)


def witness_quorum(witness_keys: tuple[str, ...], quorum: int | None) -> tuple[list[CosignatureVerifier], int]:
    """The distinct witnesses given and the quorum to require of them (default: all). A quorum
    that cannot be met is a usage error (exit 2), never a silently weaker check."""
    # Distinct by public key (a cosignature does not sign the witness's name).
    witnesses = list({w.key.raw: w for w in (witness_key_arg(k, "--witness") for k in witness_keys)}.values())
    if quorum is None:
        return witnesses, len(witnesses)
    if not witnesses:
        fail("--quorum needs --witness keys to count", ExitCode.USAGE)
    if not 1 <= quorum <= len(witnesses):
        if quorum < 1:
            fail(f"--quorum {quorum}: a quorum counts at least 1 cosignature", ExitCode.USAGE)
        fail(f"--quorum {quorum} cannot be met by {len(witnesses)} distinct --witness key(s)", ExitCode.USAGE)
    return witnesses, quorum
