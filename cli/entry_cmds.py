"""`lotledger append`, `get`, `checkpoint` and `proof`: the client commands on the log's
entries, and the signing helpers `keys register` and `keys revoke` share. Each imports the
client, the keys and the generated messages when it runs, so `--help` imports none of them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from lotledger.cli.options import client_options, connect, signer_options
from lotledger.cli.output import ExitCode, emit_json, fail, handles_errors, note

if TYPE_CHECKING:
    from lotledger.ledger.tlog.entries import AppendResult
    from lotledger.rpc.client import LedgerClient, StreamRefusal
    from lotledger.signing.keys import SigningKey
    from lotledger.v1 import records_pb2


def load_signer(
    key_path: str | None, participant: str | None, *, default_participant: str | None = None
) -> tuple[SigningKey, str]:
    """The key that signs and the participant it signs as; exits with a usage error without them."""
    if not key_path:
        fail("no signing key: pass --key PATH or set LOTLEDGER_KEY", ExitCode.USAGE)
    participant = participant or default_participant
    if not participant:
        fail("no participant: pass --participant ID or set LOTLEDGER_PARTICIPANT", ExitCode.USAGE)
    from lotledger.signing.keys import SigningKey

    return SigningKey.load(key_path), participant


def result_json(r: AppendResult, record_id: str) -> dict[str, Any]:
    return {
        "record_id": record_id,
        "seq": r.seq,
        "leaf_hash": r.leaf_hash.hex(),
        "received_at": datetime.fromtimestamp(r.received_at_ns / 1e9, UTC).isoformat(),
        "duplicate": r.duplicate,
    }


def human_result(r: AppendResult, record_id: str) -> str:
    """One labelled line per appended record, so that a reader (or a script using `--json`'s
    fields by name) never has to guess which unlabelled field is the record id."""
    dup = "  (already in the log)" if r.duplicate else ""
    return f"seq {r.seq}  leaf {r.leaf_hash.hex()}  record_id {record_id}{dup}"


def append_one(server: str, record: records_pb2.Record, key: SigningKey, as_json: bool) -> None:
    """Sign `record`, append it, and print where it landed."""
    from lotledger.ledger.core.records import sign

    with connect(server) as client:
        result = client.append(sign(record, key))
    if as_json:
        emit_json(result_json(result, record.record_id))
    else:
        click.echo(human_result(result, record.record_id))


# ---- append / get ---------------------------------------------------------------------------


@click.command()
@click.argument("file", type=click.File("r"))
@signer_options
@handles_errors
def append(file: Any, server: str, key_path: str | None, participant: str | None, as_json: bool) -> None:
    """Sign and append records from FILE: one JSON record ({"shipment": {...}}), a JSON list,
    or .jsonl (one per line, streamed); `-` reads stdin."""
    from lotledger.cli.record_input import parse_documents, signed_records
    from lotledger.rpc.client import StreamRefusal

    key, participant = load_signer(key_path, participant)
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
            results.append(result_json(outcome, record.record_id))
            if not as_json:
                click.echo(human_result(outcome, record.record_id))
    if as_json:
        emit_json(results if len(results) > 1 else results[0])
    if refused:
        fail(f"{refused} of {len(prepared)} records refused", ExitCode.FAILED)


@click.command()
@click.argument("seq", type=int, required=False)
@click.option("--record-id", help="Look the entry up by record id instead of seq.")
@click.option(
    "--submitter",
    default="",
    help="Whose record id (record ids are each submitter's own): needed only when two submitters used it.",
)
@client_options
@handles_errors
def get(seq: int | None, record_id: str | None, submitter: str, server: str, as_json: bool) -> None:
    """Show one entry and its record. SEQ is the entry's index in the log (from 0); or find
    it with --record-id."""
    from google.protobuf import json_format

    from lotledger.v1 import records_pb2

    if (seq is None) == (record_id is None):
        fail("give SEQ or --record-id", ExitCode.USAGE)
    with connect(server) as client:
        response = client.get_entry(seq=seq, record_id=record_id, submitter=submitter)
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


@click.command()
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


@click.group()
def proof() -> None:
    """Fetch and check Merkle proofs (RFC 9162)."""


# How long `proof inclusion` waits for a checkpoint over an entry that exists: the server signs
# one every --checkpoint-interval seconds (1 s by default) while the log grows.
CHECKPOINT_WAIT_SECONDS = 10.0


def wait_for_checkpoint_over(client: LedgerClient, seq: int) -> None:
    """Wait until the latest signed checkpoint covers entry `seq`, so that a proof asked for
    right after an append (a script, the README's walkthrough) proves that entry rather than
    failing OUT_OF_RANGE for the second before the next checkpoint. Raises NotFound (from the
    server) for an entry that does not exist; fails (exit 1) if none comes in time."""
    import time

    latest = client.checkpoint().size
    if latest > seq:
        return
    client.get_entry(seq=seq)  # an entry that does not exist is refused now, not after the wait
    deadline = time.monotonic() + CHECKPOINT_WAIT_SECONDS
    while latest <= seq:
        if time.monotonic() > deadline:
            fail(f"entry {seq} is in the log, but no signed checkpoint covers it yet (the latest covers {latest})")
        time.sleep(0.1)
        latest = client.checkpoint().size


@proof.command("inclusion")
@click.argument("seq", type=int, required=False)
@click.option("--record-id", help="Prove the entry that holds this record id (as `get --record-id` finds it).")
@click.option(
    "--submitter",
    default="",
    help="Whose record id (record ids are each submitter's own): needed only when two submitters used it.",
)
@click.option("--size", default=0, help="Tree size (default: the latest checkpoint's).")
@client_options
@handles_errors
def proof_inclusion(
    seq: int | None, record_id: str | None, submitter: str, size: int, server: str, as_json: bool
) -> None:
    """Prove that entry SEQ (or the entry of --record-id) is in the tree of a given size."""
    from lotledger.ledger.errors import ProofError
    from lotledger.ledger.tlog import merkle

    if (seq is None) == (record_id is None):
        fail("give SEQ or --record-id", ExitCode.USAGE)
    with connect(server) as client:
        if seq is None:
            seq = client.get_entry(record_id=record_id, submitter=submitter).seq
        if not size:
            wait_for_checkpoint_over(client, seq)
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
    from lotledger.ledger.errors import ProofError
    from lotledger.ledger.tlog import merkle

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
