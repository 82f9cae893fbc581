"""The driver of evidence files (trace/evidence.py says what one holds and checks it).

`--evidence FILE` on `lotledger trace up|down` and `lotledger recall` gathers every entry behind
the report, and the key registrations its signatures need, proves each against one signed
checkpoint and writes the file atomically beside the normal output (cli/trace_cmds.py);
`lotledger verify-evidence` (cli/evidence_cmd.py) checks one offline. All I/O lives here.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lotledger.ledger.errors import StorageError
from lotledger.rpc.client import Checkpointed, LedgerClient
from lotledger.signing.files import atomic_write
from lotledger.trace import evidence
from lotledger.v1 import trace_pb2


@dataclass(frozen=True)
class EvidenceWritten:
    """What write_evidence wrote: the file, how many entries it proves, and the size of the
    checkpoint behind every proof."""

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
    cadence, so one that covers a fresh report may be a moment away). Raises StorageError when
    none does within `wait` seconds."""
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
    StorageError/Unavailable (the server), LedgerError (it refused a request), OSError (`out`)."""
    entries = evidence.gather_entries(
        evidence.named_seqs(query, report, downstream),
        fetch=lambda seq: client.get_entry(seq=seq).entry,
        registered_at=lambda key_id: client.get_key(key_id).registered_seq,
        seq_of=lambda record_id, submitter: client.get_entry(record_id=record_id, submitter=submitter).seq,
    )
    cp = _checkpoint_covering(client, max(entries) + 1, wait)
    proofs = {}
    for seq in entries:
        p = client.inclusion_proof(seq, cp.size)
        if p.tree_size != cp.size:
            raise StorageError(f"the server proved entry {seq} in a tree of size {p.tree_size}, not {cp.size}")
        proofs[seq] = list(p.proof)
    data = evidence.dumps(evidence.assemble(query, report, cp.note, entries, proofs, downstream))
    atomic_write(out, data, temp=out.with_name(out.name + ".partial"))
    return EvidenceWritten(out, len(entries), cp.size)
