"""The `lotledger` command. Each command parses, calls the domain or the client, and prints."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from google.protobuf import json_format

from lotledger.audit.export import export_bundle
from lotledger.audit.state_dir import StateDir
from lotledger.audit.verify import BundleSource, DataDirSource, LiveSource, VerifyReport, verify_log
from lotledger.cli import ca_cmd, epcis_cmd, evidence_cmd, fsma_cmd, monitor_cmd, tiles_cmd, trace_cmds, web_cmd
from lotledger.cli.ca_cmd import log_key_passphrase, log_key_passphrase_option, serve_tls_options, server_tls
from lotledger.cli.limits_config import limits_options, load_limits, print_limits
from lotledger.cli.options import (
    DEFAULT_SERVER,
    F,
    client_options,
    connect,
    log_key_option,
    signer_options,
    tls_options,
    verifier_key_arg,
    witness_options,
    witness_quorum,
    witness_target_arg,
)
from lotledger.cli.output import ExitCode, Progress, emit_json, fail, handles_errors, note
from lotledger.cli.record_input import parse_documents, signed_records
from lotledger.cli.witness_cmd import witness
from lotledger.ledger import datadir
from lotledger.ledger.core import policy
from lotledger.ledger.core.records import sign
from lotledger.ledger.errors import ProofError
from lotledger.ledger.log import AppendResult, Ledger, LedgerConfig
from lotledger.ledger.tlog import merkle
from lotledger.rpc.client import StreamRefusal
from lotledger.signing.cosignature import CosignatureVerifier
from lotledger.signing.keys import SigningKey, VerifyKey
from lotledger.signing.note import NoteVerifier
from lotledger.v1 import records_pb2


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lotledger")
def main() -> None:
    """lotledger: a signed, hash-chained, Merkle-verifiable ledger for lot traceability."""


# ---- helpers ---------------------------------------------------------------------------------


def _load_signer(
    key_path: str | None, participant: str | None, *, default_participant: str | None = None
) -> tuple[SigningKey, str]:
    if not key_path:
        fail("no signing key: pass --key PATH or set LOTLEDGER_KEY", ExitCode.USAGE)
    participant = participant or default_participant
    if not participant:
        fail("no participant: pass --participant ID or set LOTLEDGER_PARTICIPANT", ExitCode.USAGE)
    return SigningKey.load(key_path), participant


def _result_json(r: AppendResult, record_id: str) -> dict[str, Any]:
    return {
        "record_id": record_id,
        "seq": r.seq,
        "leaf_hash": r.leaf_hash.hex(),
        "received_at": datetime.fromtimestamp(r.received_at_ns / 1e9, UTC).isoformat(),
        "duplicate": r.duplicate,
    }


# ---- init / serve -----------------------------------------------------------------------------


@main.command()
@click.argument("data_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--origin", required=True, help="The log's name, e.g. plant-7.example.com/lotledger.")
@click.option("--admin-id", default="admin", show_default=True, help="Participant id of the first admin.")
@click.option(
    "--encrypt-log-key",
    is_flag=True,
    help="Write the log key as an encrypted PEM; the passphrase comes from env LOTLEDGER_LOG_KEY_PASSPHRASE, "
    "--log-key-passphrase-file, or a prompt. `serve` then needs the same passphrase.",
)
@log_key_passphrase_option
@click.option("--json", "as_json", is_flag=True)
@handles_errors
def init(
    data_dir: Path,
    origin: str,
    admin_id: str,
    encrypt_log_key: bool,
    log_key_passphrase_file: Path | None,
    as_json: bool,
) -> None:
    """Create a ledger: the store, the log key, the first admin key, and entry 0."""
    passphrase = None
    if encrypt_log_key:
        passphrase = (
            log_key_passphrase(log_key_passphrase_file)
            or click.prompt("passphrase for the log key", hide_input=True, confirmation_prompt=True, err=True).encode()
        )
    _init(data_dir, origin, admin_id, as_json, log_key_passphrase=passphrase)


def _init(
    data_dir: Path, origin: str, admin_id: str, as_json: bool, *, log_key_passphrase: bytes | None = None
) -> None:
    made = datadir.create(data_dir, origin, admin_id=admin_id, log_key_passphrase=log_key_passphrase)
    if as_json:
        emit_json(
            {
                "origin": origin,
                "log_verifier_key": made.log_verifier_key,
                "admin_id": admin_id,
                "admin_key_id": made.admin_key_id,
            }
        )
    else:
        note(
            f"initialized {data_dir}: log key {made.log_key_path}, admin key {made.admin_key_path} "
            f"(participant {admin_id!r})"
        )
        note("the log's verifier key (give it to regulators; also in log.vkey):")
        click.echo(made.log_verifier_key)


@main.command()
@click.argument("data_dir", type=click.Path(file_okay=False, path_type=Path), required=False)
@click.option("--listen", default=DEFAULT_SERVER, show_default=True, metavar="HOST:PORT")
@click.option(
    "--checkpoint-interval",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0.01),
    help="Seconds between checkpoints while the log grows.",
)
@click.option(
    "--init", "init_origin", metavar="ORIGIN", help="Initialize DATA_DIR with this origin first if it holds no ledger."
)
@click.option("--demo", is_flag=True, help="With a new DATA_DIR: initialize it and load the demo supply chain.")
@click.option(
    "--witness",
    "witnesses",
    multiple=True,
    metavar="URL=VKEY",
    help="Submit each new checkpoint to this witness (c2sp.org/tlog-witness) and keep its cosignature.",
)
@serve_tls_options
@log_key_passphrase_option
@limits_options
@handles_errors
def serve(
    data_dir: Path | None,
    listen: str,
    checkpoint_interval: float,
    init_origin: str | None,
    demo: bool,
    witnesses: tuple[str, ...],
    tls_cert: Path | None,
    tls_key: Path | None,
    client_ca: Path | None,
    allow_plaintext: bool,
    log_key_passphrase_file: Path | None,
    config_path: Path | None,
    print_config: bool,
) -> None:
    """Serve a ledger over gRPC until SIGINT or SIGTERM. With --tls-cert, --tls-key and
    --client-ca: mTLS, every caller identified by its client certificate."""
    from lotledger.rpc.server import LedgerServer

    limits = load_limits(config_path)
    if print_config:
        print_limits(limits)
        return
    if data_dir is None:
        fail("serve needs DATA_DIR (or --print-config)", ExitCode.USAGE)
    tls = server_tls(listen, tls_cert, tls_key, client_ca, allow_plaintext)

    if (init_origin or demo) and not (data_dir / "ledger" / "data.mdb").exists():
        _init(data_dir, init_origin or DEMO_ORIGIN, "admin", False)
        if demo:
            _load_demo(data_dir)
    if not (data_dir / "keys" / "log.key").exists():
        fail(
            f"{data_dir} is not a ledger: run `lotledger init {data_dir} --origin NAME` (or serve --init NAME)",
            ExitCode.USAGE,
        )
    targets = [witness_target_arg(w, "--witness") for w in witnesses]
    try:
        server = LedgerServer(
            data_dir,
            listen,
            config=LedgerConfig(checkpoint_interval=checkpoint_interval),
            witnesses=targets,
            tls=tls,
            log_key_passphrase=log_key_passphrase(log_key_passphrase_file),
            limits=limits,
        ).start()
    except OSError as e:
        fail(str(e), ExitCode.USAGE)
    stopping = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    note(
        f"lotledger {server.ledger.origin}: {server.ledger.size} entries, serving on {server.address}"
        + (" (mTLS: client certificates required)" if server.tls else " (plaintext)")
    )
    note(f"log verifier key: {server.ledger.log_verifier_key}")
    for t in targets:
        note(f"witness {t.key.name}: submitting checkpoints to {t.endpoint}")
    stopping.wait()
    note("stopping: finishing calls in flight and the last checkpoint")
    try:
        server.stop()
    except Exception as e:  # noqa: BLE001 - a part failed to stop (a full disk, say): close the ledger all the same
        server.ledger.close()  # (a no-op if it has closed)
        fail(f"stopped, but not cleanly: {e} (what was acknowledged was on disk before)")


# ---- demo ----------------------------------------------------------------------------------

DEMO_ORIGIN = "demo.example.com/lotledger"


def _load_demo(data_dir: Path) -> int:
    from lotledger.cli.demo import save_demo_keys, write_demo
    from lotledger.rpc.server import load_log_key

    keys = data_dir / "keys"
    ledger = Ledger(data_dir, load_log_key(keys / "log.key"))
    try:
        written = write_demo(ledger, SigningKey.load(keys / "admin.key"))
        ledger.sign_checkpoint_now()
    finally:
        ledger.close()
    save_demo_keys(data_dir)
    note(f"demo supply chain: {written} records; participants' demo keys in {keys / 'demo'} (public seeds: demo only)")
    note(
        f"try: lotledger trace up 01/09520000000042/10/B-1001, or the web view: lotledger web --log-key {data_dir / 'log.vkey'}"
    )
    return written


@main.command()
@click.argument("data_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--origin", default=DEMO_ORIGIN, show_default=True)
@handles_errors
def demo(data_dir: Path, origin: str) -> None:
    """Create (or add to) a ledger with a small bakery supply chain to trace and recall.
    Run it while no server is serving DATA_DIR."""
    if not (data_dir / "ledger" / "data.mdb").exists():
        _init(data_dir, origin, "admin", False)
    _load_demo(data_dir)
    note(f"try: lotledger serve {data_dir}   then   lotledger trace down 01/09520000000042/10/B-1001")


# ---- keys -----------------------------------------------------------------------------------


@main.group()
def keys() -> None:
    """Generate, register and revoke participant keys."""


@keys.command("generate")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True)
@handles_errors
def keys_generate(path: Path, as_json: bool) -> None:
    """Write a new Ed25519 key to PATH (0600) and PATH.pub; print its key id."""
    if path.exists():
        fail(f"{path} exists; refusing to overwrite a key", ExitCode.USAGE)
    key = SigningKey.generate()
    key.save_pair(path)
    if as_json:
        emit_json({"key_id": key.key_id, "private_key": str(path), "public_key": f"{path}.pub"})
    else:
        click.echo(key.key_id)


def _append_one(server: str, record: records_pb2.Record, key: SigningKey, as_json: bool) -> None:
    with connect(server) as client:
        result = client.append(sign(record, key))
    if as_json:
        emit_json(_result_json(result, record.record_id))
    else:
        click.echo(
            f"seq {result.seq}  leaf {result.leaf_hash.hex()}{'  (already in the log)' if result.duplicate else ''}"
        )


@keys.command("register")
@click.option("--id", "participant_id", required=True, help="Participant id to register (or add a key to).")
@click.option("--role", required=True, type=click.Choice(sorted(policy.ROLES_BY_NAME)))
@click.option("--public-key", "public_key", required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--business-name", default="")
@click.option("--phone", default="")
@click.option("--address", default="")
@click.option("--gln", default="")
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
    key, submitter = _load_signer(key_path, participant, default_participant="admin")
    pub = VerifyKey.load(public_key)
    record = records_pb2.Record(record_id=f"register/{participant_id}/{pub.key_id[:16]}", submitter=submitter)
    record.created_at.GetCurrentTime()
    reg = record.participant_registered
    reg.participant_id, reg.role, reg.public_key = participant_id, policy.ROLES_BY_NAME[role], pub.raw
    reg.business_name, reg.phone, reg.address, reg.gln = business_name, phone, address, gln
    _append_one(server, record, key, as_json)
    if not as_json:
        note(f"registered key {pub.key_id} for {participant_id!r} as {role}")


@keys.command("revoke")
@click.argument("key_id")
@click.option("--reason", required=True)
@signer_options
@handles_errors
def keys_revoke(
    key_id: str, reason: str, server: str, key_path: str | None, participant: str | None, as_json: bool
) -> None:
    """Revoke a key from now on (records it signed before stay valid)."""
    key, submitter = _load_signer(key_path, participant, default_participant="admin")
    record = records_pb2.Record(record_id=f"revoke/{key_id[:32]}", submitter=submitter)
    record.created_at.GetCurrentTime()
    record.key_revoked.key_id, record.key_revoked.reason = key_id, reason
    _append_one(server, record, key, as_json)


# ---- append / get ---------------------------------------------------------------------------


@main.command()
@click.argument("file", type=click.File("r"))
@signer_options
@handles_errors
def append(file: Any, server: str, key_path: str | None, participant: str | None, as_json: bool) -> None:
    """Sign and append records from FILE: one JSON record ({"shipment": {...}}), a JSON list,
    or .jsonl (one per line, streamed); `-` reads stdin."""
    key, participant = _load_signer(key_path, participant)
    name = getattr(file, "name", "-")
    docs = parse_documents(file, name, lines=name.endswith(".jsonl"))
    prepared = list(signed_records(docs, key, participant))
    if not prepared:
        fail(f"{name}: no records", ExitCode.USAGE)
    results: list[dict[str, Any]] = []
    refused = 0
    with connect(server) as client:
        if len(prepared) == 1:
            outcomes: list[AppendResult | StreamRefusal] = [client.append(prepared[0][2])]
        else:
            outcomes = list(client.append_stream(s for _, _, s in prepared))
    for (where, record, _), outcome in zip(prepared, outcomes, strict=True):
        if isinstance(outcome, StreamRefusal):
            refused += 1
            err = outcome.error
            results.append(
                {
                    "record_id": record.record_id,
                    "where": where,
                    "error": {"reason": err.reason, "message": err.message, "field": err.field},
                }
            )
            if not as_json:
                note(f"{where}: refused: {err.message} [{err.reason}]")
        else:
            results.append(_result_json(outcome, record.record_id))
            if not as_json:
                dup = "  (already in the log)" if outcome.duplicate else ""
                click.echo(f"seq {outcome.seq}  leaf {outcome.leaf_hash.hex()}  {record.record_id}{dup}")
    if as_json:
        emit_json(results if len(results) > 1 else results[0])
    if refused:
        fail(f"{refused} of {len(prepared)} records refused", ExitCode.FAILED)


@main.command()
@click.argument("seq", type=int, required=False)
@click.option("--record-id", help="Look the entry up by record id instead of seq.")
@client_options
@handles_errors
def get(seq: int | None, record_id: str | None, server: str, as_json: bool) -> None:
    """Show one entry and its record."""
    if (seq is None) == (record_id is None):
        fail("give SEQ or --record-id", ExitCode.USAGE)
    with connect(server) as client:
        response = client.get_entry(seq=seq, record_id=record_id)
    entry = records_pb2.Entry.FromString(response.entry)
    record = records_pb2.Record.FromString(entry.signed_record.record_bytes)
    data = {
        "seq": response.seq,
        "leaf_hash": response.leaf_hash.hex(),
        "prev_hash": entry.prev_hash.hex(),
        "received_at": entry.received_at.ToJsonString(),
        "key_id": entry.signed_record.key_id,
        "signature": entry.signed_record.signature.hex(),
        "record": json_format.MessageToDict(record, preserving_proto_field_name=True),
    }
    if as_json:
        emit_json(data)
        return
    click.echo(f"entry {data['seq']}  received {data['received_at']}")
    click.echo(f"  leaf {data['leaf_hash']}\n  prev {data['prev_hash']}\n  key  {data['key_id']}")
    import json

    click.echo(json.dumps(data["record"], indent=2))


@main.command()
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the signed note to a file.")
@click.option("--size", default=0, help="The checkpoint issued at this tree size (default: latest).")
@client_options
@handles_errors
def checkpoint(out: Path | None, size: int, server: str, as_json: bool) -> None:
    """Print the latest signed checkpoint (a C2SP signed note)."""
    with connect(server) as client:
        cp = client.checkpoint(size)
    if out:
        out.write_bytes(cp.note)
        note(f"checkpoint of size {cp.size} written to {out}")
    if as_json:
        emit_json({"tree_size": cp.size, "root_hash": cp.root_hash.hex(), "note": cp.note.decode()})
    elif not out:
        click.echo(cp.note.decode(), nl=False)


# ---- proofs ----------------------------------------------------------------------------------


@main.group()
def proof() -> None:
    """Fetch and check Merkle proofs (RFC 9162)."""


@proof.command("inclusion")
@click.argument("seq", type=int)
@click.option("--size", default=0, help="Tree size (default: the latest checkpoint's).")
@client_options
@handles_errors
def proof_inclusion(seq: int, size: int, server: str, as_json: bool) -> None:
    """Prove that entry SEQ is in the tree of a given size."""
    with connect(server) as client:
        p = client.inclusion_proof(seq, size)
    try:
        merkle.verify_inclusion(p.seq, p.tree_size, p.leaf_hash, list(p.proof), p.root_hash)
        verified = True
    except ProofError:
        verified = False
    data = {
        "seq": p.seq,
        "tree_size": p.tree_size,
        "leaf_hash": p.leaf_hash.hex(),
        "root_hash": p.root_hash.hex(),
        "proof": [h.hex() for h in p.proof],
        "verified_against_stated_root": verified,
        "checkpoint": p.checkpoint.decode() if p.checkpoint else None,
    }
    if as_json:
        emit_json(data)
    else:
        click.echo(f"entry {p.seq} in tree of size {p.tree_size}: leaf {data['leaf_hash']}")
        click.echo(f"root {data['root_hash']}")
        for i, h in enumerate(p.proof):
            click.echo(f"  {i:2d} {h.hex()}")
    if not verified:
        fail("the proof does not verify against the server's stated root")


@proof.command("consistency")
@click.argument("old", type=int)
@click.argument("new", type=int)
@client_options
@handles_errors
def proof_consistency(old: int, new: int, server: str, as_json: bool) -> None:
    """Prove that the tree of size OLD is a prefix of the tree of size NEW."""
    with connect(server) as client:
        p = client.consistency_proof(old, new)
    try:
        merkle.verify_consistency(p.old_size, p.new_size, p.old_root, p.new_root, list(p.proof))
        verified = True
    except ProofError:
        verified = False
    data = {
        "old_size": p.old_size,
        "new_size": p.new_size,
        "old_root": p.old_root.hex(),
        "new_root": p.new_root.hex(),
        "proof": [h.hex() for h in p.proof],
        "verified_against_stated_roots": verified,
    }
    if as_json:
        emit_json(data)
    else:
        click.echo(f"tree {p.old_size} -> {p.new_size}\n  old root {data['old_root']}\n  new root {data['new_root']}")
        for i, h in enumerate(p.proof):
            click.echo(f"  {i:2d} {h.hex()}")
    if not verified:
        fail("the proof does not verify against the server's stated roots")


# ---- verify ----------------------------------------------------------------------------------


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
            ),
        )
    ):
        fn = option(fn)
    return tls_options(fn)


def _run_verification(
    verifier: NoteVerifier,
    *,
    data_dir: Path | None,
    bundle: Path | None,
    server: str,
    state_dir: Path | None,
    since_note: bytes | None = None,
    check_signatures: bool = True,
    progress: Progress | None = None,
    witnesses: Sequence[CosignatureVerifier] = (),
    quorum: int = 0,
    workers: int | None = None,
) -> tuple[VerifyReport, str | None]:
    """Verify the log from a data directory, a bundle or a live server (resuming from and saving
    to `state_dir` when given). Returns the report and where the new state was saved, if it was."""
    if data_dir is not None and bundle is not None:
        fail("pass --data-dir or --bundle, not both", ExitCode.USAGE)
    with contextlib.ExitStack() as stack:
        states = stack.enter_context(StateDir(state_dir)) if state_dir is not None else None
        state = states.load(verifier) if states is not None else None
        source: DataDirSource | BundleSource | LiveSource
        if data_dir is not None:
            source = DataDirSource(data_dir, min_cosignatures=quorum)
        elif bundle is not None:
            source = BundleSource(bundle)
        else:
            source = LiveSource(connect(server), min_cosignatures=quorum)
        stack.callback(source.close)
        if states is not None and state is None and source.increment() is not None:
            fail(
                f"{state_dir} holds no saved verification, and an increment bundle resumes from one: verify the log "
                "(or its bundles) up to where this one starts with --state first, or verify it without --state",
                ExitCode.USAGE,
            )
        report = verify_log(
            source,
            verifier,
            since_note=since_note,
            state=state,
            check_signatures=check_signatures,
            progress=progress,
            witnesses=witnesses,
            quorum=quorum,
            workers=workers,
        )
        saved = None
        if states is not None and report.state is not None and (state is None or report.state.note != state.note):
            states.save(report.state)
            saved = str(states.state_file)
    return report, saved


@main.command()
@log_key_option
@click.option(
    "--since",
    "since",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="An earlier checkpoint the log must extend.",
)
@log_source_options
@click.option(
    "--no-signatures",
    is_flag=True,
    help="Hash-only (fast; not for audits): checks each entry's framing, seq and prev_hash link, and the "
    "Merkle root and size against the signed checkpoint; NOT the records, signatures, key history or roles.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Processes for full verification (default: one per core, for logs of 20,000 entries or more).",
)
@witness_options
@click.option("--json", "as_json", is_flag=True)
@click.option("--quiet", is_flag=True, help="No progress lines.")
@handles_errors
def verify(
    log_key: str,
    since: Path | None,
    data_dir: Path | None,
    bundle: Path | None,
    no_signatures: bool,
    witness_keys: tuple[str, ...],
    quorum: int | None,
    state_dir: Path | None,
    workers: int | None,
    server: str,
    as_json: bool,
    quiet: bool,
) -> None:
    """Check the whole log with no trust in the server: every chain link, signature (against
    the key history as of each entry), record, the Merkle root against the signed checkpoint,
    and with --since, that the log extends that earlier checkpoint. With --witness, the
    checkpoint must carry cosignatures from --quorum of those witnesses. With --state, only what
    is new since the saved verification, with the same result as checking it all again."""
    verifier = verifier_key_arg(log_key, "--log-key")
    witnesses, quorum = witness_quorum(witness_keys, quorum)
    since_note = since.read_bytes() if since else None
    progress = Progress("verified", None, enabled=not quiet)
    if state_dir is not None and (no_signatures or since):
        fail(
            "--state keeps only full verifications, and pins the checkpoint the log must extend itself: "
            "drop --no-signatures and --since",
            ExitCode.USAGE,
        )
    report, saved = _run_verification(
        verifier,
        data_dir=data_dir,
        bundle=bundle,
        server=server,
        state_dir=state_dir,
        since_note=since_note,
        check_signatures=not no_signatures,
        progress=progress,
        witnesses=witnesses,
        quorum=quorum,
        workers=workers,
    )
    data = {
        "ok": True,
        "origin": report.origin,
        "tree_size": report.size,
        "root_hash": report.root_hash.hex(),
        "since_size": report.since_size,
        "signatures_checked": report.signatures_checked,
        "cosigned_by": list(report.cosigned_by),
        "from_size": report.from_size,
        "entries_checked": report.entries_checked,
        "increment": report.increment,
        "complete": not report.not_checked,
        "not_checked": report.not_checked,
        "state_saved": saved,
        "seconds": round(report.seconds, 3),
    }
    for line in report.not_checked:
        note(f"not checked: {line}")
    if as_json:
        emit_json(data)
    else:
        since_text = f", consistent with the checkpoint of size {report.since_size}" if report.since_size else ""
        sig_text = (
            "" if report.signatures_checked else " (hash chain and tree only: records and signatures NOT checked)"
        )
        what = f"{report.size} entries" if not report.from_size else f"entries {report.from_size} to {report.size - 1}"
        start = f" from the checkpoint of size {report.from_size}" if report.from_size else ""
        partial = "; NOT a complete verification (see above)" if report.not_checked else ""
        cosig_text = f", cosigned by {', '.join(report.cosigned_by)}" if report.cosigned_by else ""
        click.echo(
            f"OK: {what} of {report.origin} verified{start}{sig_text}; root {report.root_hash.hex()} "
            f"matches the signed checkpoint{cosig_text}{since_text}{partial} ({report.seconds:.2f}s)"
        )
    if saved:
        note(f"state saved in {state_dir}: verified up to {report.size} entries")


@keys.command("list")
@log_key_option
@log_source_options
@click.option("--json", "as_json", is_flag=True)
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
    verifier = verifier_key_arg(log_key, "--log-key")
    report, _ = _run_verification(
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


@main.command()
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="The bundle file to write.")
@click.option("--to", "tree_size", default=0, help="End at the checkpoint issued at this tree size (default: latest).")
@click.option(
    "--from",
    "from_size",
    default=0,
    type=click.IntRange(min=0),
    metavar="SEQ",
    help="An increment from the checkpoint the log issued at this tree size (default: the whole log).",
)
@click.option("--quiet", is_flag=True, help="No progress lines.")
@client_options
@handles_errors
def export(out: Path, tree_size: int, from_size: int, quiet: bool, server: str, as_json: bool) -> None:
    """Write the log, up to a signed checkpoint, to one self-contained bundle file that
    `lotledger verify --bundle FILE --log-key VKEY` checks offline; with --from SEQ, only the
    entries from SEQ on, with the proofs that tie them to the checkpoint of size SEQ."""
    with connect(server) as client:
        report = export_bundle(
            client,
            out,
            tree_size=tree_size,
            from_size=from_size,
            progress=Progress("exported", None, enabled=not quiet),
        )
    data = {
        "out": str(out),
        "origin": report.origin,
        "from_size": report.from_size,
        "tree_size": report.tree_size,
        "root_hash": report.root_hash.hex(),
        "key_history_entries": report.key_entries,
        "bytes": report.bytes_written,
        "seconds": round(report.seconds, 3),
    }
    if as_json:
        emit_json(data)
    else:
        mb = report.bytes_written / 1e6
        what = (
            f"{report.tree_size} entries"
            if not report.from_size
            else (
                f"entries {report.from_size} to {report.tree_size - 1} (and {report.key_entries} key history entries)"
            )
        )
        click.echo(
            f"{out}: {what} of {report.origin} up to the checkpoint with root "
            f"{report.root_hash.hex()} ({mb:.1f} MB in {report.seconds:.2f}s)"
        )


main.add_command(trace_cmds.trace)
main.add_command(trace_cmds.recall)
main.add_command(trace_cmds.sources)
main.add_command(trace_cmds.alerts)
main.add_command(tiles_cmd.export_tiles_command)
main.add_command(evidence_cmd.verify_evidence)
main.add_command(witness)
main.add_command(monitor_cmd.monitor)
main.add_command(epcis_cmd.import_epcis)
main.add_command(epcis_cmd.export_epcis)
main.add_command(fsma_cmd.export_fsma)
main.add_command(fsma_cmd.fsma_check)
main.add_command(ca_cmd.ca)
main.add_command(web_cmd.web)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
