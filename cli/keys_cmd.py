"""`lotledger keys`: generate, register, revoke and list participant keys. The key list is the
key history as the verified log proves it, so `keys list` verifies first (verify_cmd.py).
Registering and revoking sign and append one record as `append` does (entry_cmds.py); those
helpers, the keys and the role table are imported when a command runs, not for `--help`."""

from __future__ import annotations

from pathlib import Path

import click

from lotledger.cli.options import log_key_option, log_source_options, signer_options, verifier_key_arg
from lotledger.cli.output import ExitCode, Progress, emit_json, fail, handles_errors, note

# sorted(lotledger.ledger.core.policy.ROLES_BY_NAME), the choices of `keys register --role`:
# importing the role table to build the option would load the generated messages for `--help`.
# tests/cli/test_startup.py checks that the two agree.
ROLE_NAMES = ("admin", "auditor", "customer", "distributor", "manufacturer", "qa", "scanner", "supplier")


@click.group()
def keys() -> None:
    """Generate, register and revoke participant keys."""


@keys.command("generate")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")
@handles_errors
def keys_generate(path: Path, as_json: bool) -> None:
    """Write a new Ed25519 key to PATH (0600) and PATH.pub; print its key id."""
    if path.exists():
        fail(f"{path} exists; refusing to overwrite a key", ExitCode.USAGE)
    from lotledger.signing.keys import SigningKey

    key = SigningKey.generate()
    key.save_pair(path)
    if as_json:
        emit_json({"key_id": key.key_id, "private_key": str(path), "public_key": f"{path}.pub"})
    else:
        click.echo(key.key_id)


@keys.command("register")
@click.option("--id", "participant_id", required=True, help="Participant id to register (or add a key to).")
@click.option("--role", required=True, type=click.Choice(ROLE_NAMES), help="What the participant may submit and read.")
@click.option(
    "--public-key",
    "public_key",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The participant's public key file (PEM, the .pub that `keys generate` wrote).",
)
@click.option("--business-name", default="", help="Business name, for FSMA 204 reports and recall contacts.")
@click.option("--phone", default="", help="Phone number, for FSMA 204 reports and recall contacts.")
@click.option("--address", default="", help="Postal address, for FSMA 204 reports and recall contacts.")
@click.option("--gln", default="", help="GS1 Global Location Number of the participant, if it has one.")
@signer_options
@handles_errors
def keys_register(
    participant_id: str,
    role: str,
    public_key: Path,
    business_name: str,
    phone: str,
    address: str,
    gln: str,
    server: str,
    key_path: str | None,
    participant: str | None,
    as_json: bool,
) -> None:
    """Register a participant's public key (signed by an admin key)."""
    from lotledger.cli.entry_cmds import append_one, load_signer
    from lotledger.ledger.core import policy
    from lotledger.signing.keys import VerifyKey
    from lotledger.v1 import records_pb2

    key, submitter = load_signer(key_path, participant, default_participant="admin")
    pub = VerifyKey.load(public_key)
    record = records_pb2.Record(record_id=f"register/{participant_id}/{pub.key_id[:16]}", submitter=submitter)
    record.created_at.GetCurrentTime()
    reg = record.participant_registered
    reg.participant_id, reg.role, reg.public_key = participant_id, policy.ROLES_BY_NAME[role], pub.raw
    reg.business_name, reg.phone, reg.address, reg.gln = business_name, phone, address, gln
    append_one(server, record, key, as_json)
    if not as_json:
        note(f"registered key {pub.key_id} for {participant_id!r} as {role}")


@keys.command("revoke")
@click.argument("key_id")
@click.option("--reason", required=True, help="Why the key is revoked (kept in the log).")
@signer_options
@handles_errors
def keys_revoke(
    key_id: str, reason: str, server: str, key_path: str | None, participant: str | None, as_json: bool
) -> None:
    """Revoke a key from now on (records it signed before stay valid). KEY_ID is the key id
    (lowercase hex) that `keys generate` printed and `keys list` shows."""
    from lotledger.cli.entry_cmds import append_one, load_signer
    from lotledger.v1 import records_pb2

    key, submitter = load_signer(key_path, participant, default_participant="admin")
    record = records_pb2.Record(record_id=f"revoke/{key_id[:32]}", submitter=submitter)
    record.created_at.GetCurrentTime()
    record.key_revoked.key_id, record.key_revoked.reason = key_id, reason
    append_one(server, record, key, as_json)


@keys.command("list")
@log_key_option
@log_source_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")
@click.option("--quiet", is_flag=True, help="No progress lines.")
@handles_errors
def keys_list(
    log_key: str,
    data_dir: Path | None,
    bundle: Path | None,
    state_dir: Path | None,
    server: str,
    as_json: bool,
    quiet: bool,
) -> None:
    """The key history as the log itself proves it: every participant key, who it belongs to,
    and the entries that registered and revoked it. The log is verified first (from a server,
    a data directory copy or a bundle; with --state only what is new), because a key list
    taken on the server's word would prove nothing."""
    from lotledger.cli.verify_cmd import run_verification

    verifier = verifier_key_arg(log_key, "--log-key")
    report, _ = run_verification(
        verifier,
        data_dir=data_dir,
        bundle=bundle,
        server=server,
        state_dir=state_dir,
        progress=Progress("verified", None, enabled=not quiet),
    )
    if report.state is None:
        fail(
            "this increment was verified without a saved state, so the key history before it is not complete: "
            "verify with --state DIR holding the verification it starts from",
            ExitCode.FAILED,
        )
    registry = report.state.registry
    history = sorted(registry.keys.values(), key=lambda k: k.registered_seq)
    if as_json:
        rows = [
            {
                "key_id": k.key_id,
                "participant": k.participant,
                "role": registry.participants[k.participant].role,
                "public_key": k.public_key.hex(),
                "registered_seq": k.registered_seq,
                "revoked_seq": k.revoked_seq,
                "revoke_reason": k.revoke_reason,
            }
            for k in history
        ]
        emit_json({"origin": report.origin, "tree_size": report.size, "keys": rows})
        return
    click.echo(f"{len(history)} keys in {report.origin}, verified up to {report.size} entries:")
    click.echo(f"{'KEY ID':<18} {'PARTICIPANT':<20} {'ROLE':<13} {'REGISTERED':<11} REVOKED")
    for k in history:
        revoked = f"entry {k.revoked_seq}: {k.revoke_reason}" if k.revoked_seq is not None else "-"
        role, registered = registry.participants[k.participant].role, f"entry {k.registered_seq}"
        click.echo(f"{k.key_id[:16] + '..':<18} {k.participant:<20} {role:<13} {registered:<11} {revoked}")
