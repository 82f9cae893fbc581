"""The driver of evidence files (trace/evidence.py says what one holds and checks it).

`--evidence FILE` on `lotledger trace up|down` and `lotledger recall` gathers every entry behind
the report, and the key registrations its signatures need, proves each against one signed
checkpoint and writes the file atomically beside the normal output; `lotledger verify-evidence
FILE --log-key VKEY` checks one offline. All I/O lives here.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from lotledger.cli.options import log_key_option, verifier_key_arg, witness_options, witness_quorum
from lotledger.cli.output import emit_json, handles_errors, note
from lotledger.ledger.errors import StorageError
from lotledger.rpc.client import Checkpointed, LedgerClient
from lotledger.trace import evidence
from lotledger.v1 import trace_pb2

evidence_option = click.option(
    "--evidence",
    "evidence_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write an evidence file: every entry behind the report, each with its proof against one "
    "signed checkpoint (check it with lotledger verify-evidence).",
)


@dataclass(frozen=True)
class EvidenceWritten:
    path: Path
    entries: int
    tree_size: int


def consistent_recall(
    client: LedgerClient, lots: Sequence[str], reason: str, supplier_lots: Sequence[str], attempts: int = 5
) -> tuple[trace_pb2.RecallResponse, list[trace_pb2.TraceResponse]]:
    """A recall and the downstream trace of each of its triggers, all answered at the same
    index size (the traces carry the edges the recall's evidence stands on). Raises
    StorageError if the log keeps growing between the calls."""
    for _ in range(attempts):
        r = client.recall(lots, reason, supplier_lots)
        downstream = [client.trace(t, "down") for t in r.triggers]
        if all(d.index_size == r.index_size for d in downstream):
            return r, downstream
    raise StorageError("the log kept growing while the recall's downstream traces were taken; try again")


def _checkpoint_covering(client: LedgerClient, size: int, wait: float) -> Checkpointed:
    """The latest checkpoint once it covers `size` entries (checkpoints follow the log on a
    cadence, so one that covers a fresh report may be a moment away)."""
    deadline = time.monotonic() + wait
    cp = client.checkpoint()
    while cp.size < size:
        if time.monotonic() > deadline:
            raise StorageError(f"no signed checkpoint covers entry {size - 1} yet (the latest is of size {cp.size})")
        time.sleep(0.05)
        cp = client.checkpoint()
    return cp


def write_evidence(
    client: LedgerClient,
    query: Mapping[str, Any],
    report: Mapping[str, Any],
    out: Path,
    downstream: Sequence[Mapping[str, Any]] = (),
    *,
    wait: float = 10.0,
) -> EvidenceWritten:
    """Gather, prove and write the evidence for `report` (its --json form). One checkpoint,
    fetched once the entries are known, backs every proof. The file appears under its name
    only once complete and synced (an interrupted write leaves `out.partial`). Raises
    StorageError/Unavailable (the server), LedgerError (it refused a request)."""
    entries = evidence.gather_entries(
        evidence.named_seqs(query, report, downstream),
        fetch=lambda seq: client.get_entry(seq=seq).entry,
        registered_at=lambda key_id: client.get_key(key_id).registered_seq,
        seq_of=lambda record_id: client.get_entry(record_id=record_id).seq,
    )
    cp = _checkpoint_covering(client, max(entries) + 1, wait)
    proofs = {}
    for seq in entries:
        p = client.inclusion_proof(seq, cp.size)
        if p.tree_size != cp.size:
            raise StorageError(f"the server proved entry {seq} in a tree of size {p.tree_size}, not {cp.size}")
        proofs[seq] = list(p.proof)
    data = evidence.dumps(evidence.assemble(query, report, cp.note, entries, proofs, downstream))
    partial = out.with_name(out.name + ".partial")
    with partial.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    partial.replace(out)
    note(f"evidence: {len(entries)} entries proven against the checkpoint of size {cp.size}, written to {out}")
    return EvidenceWritten(out, len(entries), cp.size)


@click.command("verify-evidence")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@log_key_option
@witness_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")
@handles_errors
def verify_evidence(file: Path, log_key: str, witness_keys: tuple[str, ...], quorum: int | None, as_json: bool) -> None:
    """Check an evidence file offline, trusting only the log's key: the checkpoint's signature,
    each entry's inclusion proof and signature (by a key an included registration gave its
    submitter), and that every edge, lot and shipment of the report follows from the entries.
    With --witness, the checkpoint must also carry cosignatures from --quorum of those witnesses."""
    verifier = verifier_key_arg(log_key, "--log-key")
    witnesses, quorum = witness_quorum(witness_keys, quorum)
    s = evidence.check_evidence(file.read_bytes(), verifier, witnesses=witnesses, quorum=quorum)
    if as_json:
        emit_json(
            {
                "ok": True,
                "command": s.command,
                "origin": s.origin,
                "tree_size": s.tree_size,
                "root_hash": s.root_hash.hex(),
                "entries": s.entries,
                "edges": s.edges,
                "lots": s.lots,
                "shipments": s.shipments,
            }
        )
        return
    click.echo(
        f"OK: {s.command} evidence holds: {s.edges} edges, {s.lots} lots and {s.shipments} shipments follow from "
        f"{s.entries} signed entries, each included in {s.origin} at size {s.tree_size} (root {s.root_hash.hex()})"
    )
