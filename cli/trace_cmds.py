"""`lotledger trace`, `recall`, `sources`, `alerts`: QA's commands. Trees and tables for
people, one JSON document with --json."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from lotledger.cli.evidence_cmd import evidence_option
from lotledger.cli.options import client_options, connect, key_option, participant_option
from lotledger.cli.output import ExitCode, emit_json, fail, handles_errors, note

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from lotledger.audit.evidence import EvidenceWritten
    from lotledger.rpc.client import LedgerClient
    from lotledger.v1 import trace_pb2


def _as_dict(message: Message) -> dict[str, Any]:
    from google.protobuf import json_format

    data: dict[str, Any] = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return data


def _evidence_written(written: EvidenceWritten) -> None:
    note(
        f"evidence: {written.entries} entries proven against the checkpoint of size {written.tree_size}, "
        f"written to {written.path}"
    )


def _qty(q: Any) -> str:
    return f"{q.amount} {q.unit}"


@click.group("trace")
def trace() -> None:
    """Trace a lot upstream (to its inputs and suppliers) or downstream (to its customers)."""


def _trace(direction: str, lot: str, depth: int, server: str, as_json: bool, evidence: Path | None) -> None:
    with connect(server) as client:
        response = client.trace(lot, direction, depth)
        if evidence is not None:
            from lotledger.audit.evidence import write_evidence

            query = {"command": "trace", "direction": direction, "lot": lot, "depth": depth}
            _evidence_written(write_evidence(client, query, _as_dict(response), evidence))
    if as_json:
        emit_json(_as_dict(response))
        return
    edges_into: dict[str, list[trace_pb2.TraceEdge]] = {}
    for e in response.edges:
        edges_into.setdefault(e.target if direction == "down" else e.source, []).append(e)
    for view in response.lots:
        indent = "  " * view.depth
        via = edges_into.get(view.lot, [])
        how = f"  [{via[0].kind} {_qty(via[0].quantity)}, entry {via[0].seq}]" if via and view.depth else ""
        expiry = f" exp {view.expiry_date}" if view.expiry_date else ""
        click.echo(f"{indent}{view.lot}  QC {view.qc_status}{expiry}{how}")
        for q in view.qc:
            click.echo(f"{indent}    qc {q.check_name}: {q.result}, signed off by {q.signed_off_by} (entry {q.seq})")
        for s in view.suppliers:
            click.echo(
                f"{indent}    from {s.supplier} lot {s.supplier_lot_code}, {_qty(s.quantity)}, "
                f"received {s.received_at.ToDatetime().date() if s.HasField('received_at') else '?'} (entry {s.seq})"
            )
        for scan in view.scans:
            when = scan.scanned_at.ToDatetime().isoformat(timespec="seconds") if scan.HasField("scanned_at") else "?"
            click.echo(
                f"{indent}    {scan.meaning} scan at {scan.location} by {scan.device_id}, {when} (entry {scan.seq})"
            )
        if view.run:
            click.echo(f"{indent}    made by {view.run}")
    for ship in response.shipments:
        lots = ", ".join(f"{i.lot} {_qty(i.quantity)}" for i in ship.lots)
        state = "received" if ship.received else "NOT YET RECEIVED"
        to = ship.to_participant or "(consignee not on record)"
        click.echo(f"shipment {ship.shipment_id}: {ship.from_participant} -> {to} ({lots}); {state}")
    note(f"{len(response.lots)} lots, {len(response.shipments)} shipments in {response.elapsed_ms:.2f} ms")


@trace.command("up")
@click.argument("lot")
@click.option("--depth", default=0, help="Levels to follow (0: all).")
@evidence_option
@client_options
@handles_errors
def trace_up(lot: str, depth: int, evidence_path: Path | None, server: str, as_json: bool) -> None:
    """Inputs of LOT, their inputs, ... down to the suppliers, with QC and quantities."""
    _trace("up", lot, depth, server, as_json, evidence_path)


@trace.command("down")
@click.argument("lot")
@click.option("--depth", default=0, help="Levels to follow (0: all).")
@evidence_option
@client_options
@handles_errors
def trace_down(lot: str, depth: int, evidence_path: Path | None, server: str, as_json: bool) -> None:
    """Lots made from LOT and every shipment of them, to the customers."""
    _trace("down", lot, depth, server, as_json, evidence_path)


@click.command("recall")
@click.argument("lots", nargs=-1)
@click.option(
    "--supplier-lot", "supplier_lots", multiple=True, help="A supplier's lot code: recall our lots made from it."
)
@click.option("--reason", default="", help="Why (kept in the report).")
@click.option(
    "--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path), help="Write consignees to a CSV file."
)
@click.option(
    "--open",
    "open_recall",
    is_flag=True,
    help="Also record the recall in the log (signed): later shipments of these lots raise alerts.",
)
@evidence_option
@key_option
@participant_option
@client_options
@handles_errors
def recall(
    lots: tuple[str, ...],
    supplier_lots: tuple[str, ...],
    reason: str,
    csv_path: Path | None,
    open_recall: bool,
    evidence_path: Path | None,
    key_path: str | None,
    participant: str | None,
    server: str,
    as_json: bool,
) -> None:
    """Every lot and consignee affected by LOTS: mass balances, open shipments, whom to call."""
    with connect(server) as client:
        if evidence_path is None:
            r = client.recall(lots, reason, supplier_lots)
        else:  # the downstream traces carry the edges the recall stands on
            from lotledger.audit.evidence import consistent_recall, write_evidence

            r, downstream = consistent_recall(client, lots, reason, supplier_lots)
            query = {"command": "recall", "lots": list(lots), "supplier_lots": list(supplier_lots), "reason": reason}
            _evidence_written(
                write_evidence(client, query, _as_dict(r), evidence_path, [_as_dict(d) for d in downstream])
            )
        if open_recall:
            _open_recall(client, r.triggers, reason, key_path, participant)
    if csv_path:
        from lotledger.trace.standards.recall_report import write_consignments_csv

        with csv_path.open("w", newline="", encoding="utf-8") as f:
            write_consignments_csv(f, r)
        note(f"consignments written to {csv_path}")
    if as_json:
        emit_json(_as_dict(r))
        return
    click.echo(f"recall of {', '.join(r.triggers)}" + (f": {reason}" if reason else ""))
    from lotledger.trace.standards.recall_report import balance_lines, consignment_lines

    click.echo(f"\naffected lots ({len(r.affected_lots)}):")
    for line in balance_lines(r):
        click.echo(f"  {line}")
    click.echo(f"\nconsignees to contact ({len(r.consignees)}): {', '.join(r.consignees)}")
    for line in consignment_lines(r) if r.consignments else ():
        click.echo(f"  {line}")
    note(f"answered in {r.elapsed_ms:.2f} ms over {r.index_size} entries")


def _open_recall(
    client: LedgerClient, triggers: Iterable[str], reason: str, key_path: str | None, participant: str | None
) -> None:
    if not key_path or not participant:
        fail(
            "--open signs a RecallOpened record: pass --key and --participant (a qa or manufacturer key)",
            ExitCode.USAGE,
        )
    from lotledger.ledger.core.records import sign
    from lotledger.ledger.core.validation import parse_lot_key
    from lotledger.signing.keys import SigningKey
    from lotledger.v1 import records_pb2

    record = records_pb2.Record(record_id=f"recall/{uuid.uuid4()}", submitter=participant)
    record.created_at.GetCurrentTime()
    opened = record.recall_opened
    opened.recall_id, opened.reason = record.record_id, reason or "recall"
    opened.lots.extend(parse_lot_key(k) for k in triggers)
    result = client.append(sign(record, SigningKey.load(key_path)))
    note(f"recall {record.record_id} recorded at entry {result.seq}")


@click.command("sources")
@click.argument("lots", nargs=-1, required=True)
@client_options
@handles_errors
def sources(lots: tuple[str, ...], server: str, as_json: bool) -> None:
    """Upstream lots and suppliers shared by complaint LOTS, most shared first."""
    with connect(server) as client:
        r = client.common_sources(lots)
    if as_json:
        emit_json(_as_dict(r))
        return
    from lotledger.trace.standards.recall_report import text_table

    rows = [[f"{s.reaches}/{len(lots)}", s.kind, s.key] for s in r.sources]
    for line in text_table(("REACHES", "KIND", "SOURCE"), rows, numeric=(0,)) if rows else ():
        click.echo(line)


@click.command("alerts")
@click.option("--rule", default="", help="Only this rule (e.g. SHIPPED_FAILING_QC).")
@click.option("--since", "since_seq", default=0, help="Only alerts from this entry on.")
@client_options
@handles_errors
def alerts(rule: str, since_seq: int, server: str, as_json: bool) -> None:
    """Irregularities flagged as entries committed (they never block an append)."""
    with connect(server) as client:
        r = client.alerts(since_seq, rule)
    if as_json:
        emit_json(_as_dict(r))
        return
    from lotledger.trace.standards.recall_report import text_table

    rows = [[str(a.seq), a.rule, a.message] for a in r.alerts]
    for line in text_table(("ENTRY", "RULE", "MESSAGE"), rows, numeric=(0,)) if rows else ():
        click.echo(line)
    note(f"{len(r.alerts)} alerts")
