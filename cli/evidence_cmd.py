"""`lotledger verify-evidence FILE --log-key VKEY`, and the `--evidence FILE` option that
`lotledger trace up|down` and `lotledger recall` share. Writing an evidence file is
audit/evidence.py; what one holds and how it is checked is trace/evidence.py.
"""

from __future__ import annotations

from pathlib import Path

import click

from lotledger.cli.options import log_key_option, verifier_key_arg, witness_options, witness_quorum
from lotledger.cli.output import emit_json, handles_errors

evidence_option = click.option(
    "--evidence",
    "evidence_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write an evidence file: every entry behind the report, each with its proof against one "
    "signed checkpoint (check it with lotledger verify-evidence).",
)


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
    With --witness, the checkpoint must also carry cosignatures from --quorum of those witnesses.
    FILE is what `trace` or `recall` wrote with --evidence."""
    from lotledger.trace import evidence

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
