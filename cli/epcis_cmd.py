"""`lotledger import-epcis` and `lotledger export-epcis`: files and the server around the pure
mapping of trace/standards/epcis.py."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from lotledger.cli.options import client_options, connect, signer_options
from lotledger.cli.output import ExitCode, emit_json, fail, handles_errors, note

if TYPE_CHECKING:
    from lotledger.ledger.tlog.entries import AppendResult
    from lotledger.rpc.client import LedgerClient, StreamRefusal
    from lotledger.trace.standards.epcis import ImportPlan, NativeRef
    from lotledger.v1 import records_pb2


def _plan_file(path: Path, participant: str) -> ImportPlan:
    from lotledger.ledger.errors import InvalidRecord
    from lotledger.trace.standards.epcis import ImportPlan, Problem, plan_import

    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        return ImportPlan(problems=[Problem(-1, "", "EPCIS_MALFORMED", f"not JSON: {e}")])
    try:
        return _plan(doc, participant) if _events_in(doc) >= PARALLEL_PLAN else plan_import(doc, participant)
    except InvalidRecord as e:
        return ImportPlan(problems=[Problem(-1, "", e.reason, e.message)])


# From this many events on, a document is mapped in two halves, the second in a process of its
# own: mapping (the event hash above all) is pure Python, about 100 us an event, and nothing can
# be appended before every event has mapped, so on two cores this halves the wait before the
# first append (bench/epcis.py). Below it, starting the process costs more than it saves.
PARALLEL_PLAN = 5000


def _events_in(doc: Any) -> int:
    from lotledger.trace.standards.epcis import document_events

    return len(document_events(doc)[0])


def _plan(doc: Any, participant: str) -> ImportPlan:
    """plan_import(doc, participant), the second half of the events mapped in another process
    (events map independently; both halves are created at the same moment). Raises
    EpcisUnmappable as plan_import does."""
    import os
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from lotledger.trace.standards.epcis import document_events, plan_import

    events, context = document_events(doc)
    if (os.cpu_count() or 1) < 2:
        return plan_import(doc, participant)
    half = len(events) // 2
    now = datetime.now(UTC)

    def part(chunk: list[Any]) -> dict[str, Any]:
        return {"@context": context, "type": "EPCISDocument", "epcisBody": {"eventList": chunk}}

    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        later = pool.submit(plan_import, part(events[half:]), participant, now)
        plan = plan_import(part(events[:half]), participant, now)
        second = later.result()
    plan.records += [(half + i, event_id, record) for i, event_id, record in second.records]
    plan.problems += [replace(p, index=half + p.index) if p.index >= 0 else p for p in second.problems]
    plan.native.update({half + i: ref for i, ref in second.native.items()})
    return plan


@click.command("import-epcis")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Map and print the records; append nothing.")
@signer_options
@handles_errors
def import_epcis(
    files: tuple[Path, ...], dry_run: bool, server: str, key_path: str | None, participant: str | None, as_json: bool
) -> None:
    """Import GS1 EPCIS 2.0 JSON/JSON-LD documents: each event becomes one signed record.
    Nothing is appended unless every event of every file maps; re-importing is a no-op.
    FILES are EPCISDocument or EPCISQueryDocument files."""
    from google.protobuf import json_format

    from lotledger.ledger.core.records import sign
    from lotledger.ledger.tlog.entries import AppendResult
    from lotledger.rpc.client import StreamRefusal
    from lotledger.signing.keys import SigningKey
    from lotledger.v1 import records_pb2

    if not key_path and not dry_run:
        fail("no signing key: pass --key PATH or set LOTLEDGER_KEY", ExitCode.USAGE)
    if not participant:
        fail("no participant: pass --participant ID or set LOTLEDGER_PARTICIPANT", ExitCode.USAGE)
    planned: list[tuple[str, int, str, records_pb2.Record]] = []
    natives: dict[int, NativeRef] = {}  # position in `planned` -> the native record it was exported from
    problems: list[dict[str, Any]] = []
    for path in files:
        plan = _plan_file(path, participant)
        natives.update(
            {len(planned) + n: plan.native[i] for n, (i, _, _) in enumerate(plan.records) if i in plan.native}
        )
        planned += [(str(path), i, event_id, record) for i, event_id, record in plan.records]
        for p in plan.problems:
            problems.append({"file": str(path), "index": p.index, "event_id": p.event_id, "reason": p.reason})
            problems[-1]["message"] = p.message
            where = (
                f"{path}" + (f" event {p.index}" if p.index >= 0 else "") + (f" ({p.event_id})" if p.event_id else "")
            )
            note(f"{where}: {p.message} [{p.reason}]")
    if problems:
        if as_json:
            emit_json({"appended": [], "problems": problems})
        fail(f"{len(problems)} event(s) cannot be mapped; nothing was appended", ExitCode.USAGE)
    if dry_run:
        rows = [
            {"file": f, "index": i, "event_id": e, "record": json_format.MessageToDict(r)} for f, i, e, r in planned
        ]
        if as_json:
            emit_json({"dry_run": True, "records": rows})
        else:
            for row in rows:
                click.echo(json.dumps(row, sort_keys=True))
        note(f"{len(rows)} record(s) would be appended")
        return
    assert key_path is not None
    key = SigningKey.load(key_path)
    results: list[dict[str, Any]] = []
    refused = 0
    with connect(server) as client:
        known = _held_natives(client, natives)  # exported from this log: already in it
        fresh = [n for n in range(len(planned)) if n not in known]
        appended = iter(client.append_stream(sign(planned[n][3], key) for n in fresh))
        outcomes: list[AppendResult | StreamRefusal] = [
            known[n] if n in known else next(appended) for n in range(len(planned))
        ]
        for n, ((_, _, _, record), outcome) in enumerate(zip(planned, outcomes, strict=True)):
            if isinstance(outcome, StreamRefusal) and outcome.error.reason == "RECORD_ID_CONFLICT":
                # The same event in another form (URN vs Digital Link): same hash, so a no-op.
                found = client.get_entry(record_id=record.record_id)
                entry = records_pb2.Entry.FromString(found.entry) if found.entry else None
                if entry is not None:
                    held = records_pb2.Record.FromString(entry.signed_record.record_bytes)
                    if held.epcis.event_hash_id == record.epcis.event_hash_id:
                        outcomes[n] = AppendResult(found.seq, found.leaf_hash, entry.received_at.ToNanoseconds(), True)
    for n, ((path_name, index, _event_id, record), outcome) in enumerate(zip(planned, outcomes, strict=True)):
        if isinstance(outcome, StreamRefusal):
            refused += 1
            err = outcome.error
            results.append({"file": path_name, "index": index, "record_id": record.record_id, "error": err.message})
            note(f"{path_name} event {index}: refused: {err.message} [{err.reason}]")
        else:
            results.append(
                {
                    "file": path_name,
                    "index": index,
                    "record_id": record.record_id,
                    "seq": outcome.seq,
                    "duplicate": outcome.duplicate,
                    "event_hash_id": record.epcis.event_hash_id,
                }
            )
            if n in known:
                results[-1]["record_id"] = natives[n].record_id
                results[-1]["submitter"] = natives[n].submitter
            if not as_json:
                dup = "  (already in the log)" if outcome.duplicate else ""
                if n in known:
                    dup = f"  (already in the log: {natives[n].submitter}'s record {natives[n].record_id})"
                click.echo(f"seq {outcome.seq}  {record.record_id}  {path_name}[{index}]{dup}")
    if as_json:
        emit_json({"appended": results, "problems": []})
    if refused:
        fail(f"{refused} of {len(planned)} records refused by the server", ExitCode.FAILED)


def _held_natives(client: LedgerClient, natives: dict[int, NativeRef]) -> dict[int, AppendResult]:
    """The events exported from records this log holds (same submitter, record id and content),
    as the no-op outcome an idempotent resend gets: importing a log's own export appends nothing."""
    from lotledger.ledger.errors import NotFound
    from lotledger.ledger.tlog.entries import AppendResult
    from lotledger.trace.standards.epcis import same_event
    from lotledger.v1 import records_pb2

    out: dict[int, AppendResult] = {}
    for n, ref in natives.items():
        try:
            found = client.get_entry(record_id=ref.record_id, submitter=ref.submitter)
        except NotFound:
            continue
        entry = records_pb2.Entry.FromString(found.entry)
        record = records_pb2.Record.FromString(entry.signed_record.record_bytes)
        if record.submitter == ref.submitter and same_event(record, ref):
            out[n] = AppendResult(found.seq, found.leaf_hash, entry.received_at.ToNanoseconds(), True)
    return out


def _day(value: str | None, option: str, end: bool) -> int | None:
    if not value:
        return None
    try:
        d = date.fromisoformat(value)
    except ValueError:
        fail(f"{option}: {value!r} is not a date (YYYY-MM-DD)", ExitCode.USAGE)
    start = datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()
    return int((start + (86400 if end else 0)) * 1_000_000)


def _names_lot(record: records_pb2.Record, key: str) -> bool:
    """Whether the record (or the record a correction carries) names the lot directly."""
    from lotledger.ledger.core.validation import lot_key
    from lotledger.v1 import records_pb2

    def walk(message: Any) -> bool:
        for descriptor, value in message.ListFields():
            if descriptor.message_type is None:
                continue
            items = value if descriptor.is_repeated else [value]
            for item in items:
                if isinstance(item, records_pb2.LotId) and lot_key(item) == key:
                    return True
                if walk(item):
                    return True
        return False

    g = record.scan.gs1 if record.HasField("scan") else None
    if g is not None and g.gtin and g.lot and lot_key(records_pb2.LotId(gtin=g.gtin, lot=g.lot)) == key:
        return True
    return walk(record)


@click.command("export-epcis")
@click.option("--lot", "lots", multiple=True, help="Only records naming this lot key (repeatable).")
@click.option("--from", "from_day", help="Only events on or after this date (YYYY-MM-DD, UTC).")
@click.option("--to", "to_day", help="Only events on or before this date (YYYY-MM-DD, UTC).")
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="The JSON-LD file to write."
)
@client_options
@handles_errors
def export_epcis(
    lots: tuple[str, ...], from_day: str | None, to_day: str | None, out: Path, server: str, as_json: bool
) -> None:
    """Write the matching records as one EPCIS 2.0 JSON-LD EPCISDocument; imported records
    give back their source events as they were."""
    from lotledger.trace.effects import event_time
    from lotledger.trace.standards.epcis import export_document
    from lotledger.v1 import records_pb2

    start, end = _day(from_day, "--from", False), _day(to_day, "--to", True)
    chosen: list[records_pb2.Record] = []
    with connect(server) as client:
        for _seq, entry_bytes in client.list_entries():
            entry = records_pb2.Entry.FromString(entry_bytes)
            record = records_pb2.Record.FromString(entry.signed_record.record_bytes)
            when = event_time(record.correction.corrected if record.HasField("correction") else record)
            if start is not None and when < start or end is not None and when >= end:
                continue
            if lots and not any(_names_lot(record, key) for key in lots):
                continue
            chosen.append(record)
    created = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    doc, skipped = export_document(chosen, created)
    out.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    count = len(doc["epcisBody"]["eventList"])
    note(f"{out}: {count} event(s); {skipped} record(s) have no EPCIS event (admin, formula, recall...)")
    if as_json:
        emit_json({"out": str(out), "events": count, "skipped": skipped})
