"""`lotledger export-fsma` and `lotledger fsma-check`: the drivers of trace/fsma.py.

Both read the log's entries from the server (ListEntries, one stream in log order), decode
each record once and feed it to an `FsmaBuilder`, which also rebuilds the master data from
the admin records on the way. With --lot, the server's trace (upstream and downstream of
each lot) says which lots the FDA's request covers. The rows go to an .xlsx workbook (one
sheet per Critical Tracking Event, cli/xlsx.py) or to one CSV file per CTE.
"""

from __future__ import annotations

import csv
import gc
import time
from collections.abc import Iterable
from dataclasses import asdict
from datetime import date
from pathlib import Path

import click

from lotledger.cli.options import client_options, connect
from lotledger.cli.output import ExitCode, Progress, emit_json, fail, handles_errors, note
from lotledger.rpc.client import LedgerClient
from lotledger.trace.standards.fsma import DATE, FsmaBuilder, Row
from lotledger.trace.standards.fsma import Filter as RowFilter
from lotledger.trace.standards.xlsx import XlsxWriter
from lotledger.v1 import records_pb2


def trace_lots(client: LedgerClient, lots: Iterable[str]) -> frozenset[str]:
    """The lots and everything upstream and downstream of them, as the server's trace says."""
    out: set[str] = set()
    for lot in lots:
        for direction in ("up", "down"):
            out.update(view.lot for view in client.trace(lot, direction).lots)
    return frozenset(out)


def build(client: LedgerClient, keep: RowFilter, *, check: bool = False, progress: bool = True) -> FsmaBuilder:
    """Stream every entry through a builder. Raises Unavailable/StorageError (the server)."""
    builder = FsmaBuilder(keep, check)
    gc.disable()  # a million row tuples: the collector would walk them again and again
    try:
        _feed(client, builder, progress)
    finally:
        gc.enable()
    return builder


def _feed(client: LedgerClient, builder: FsmaBuilder, progress: bool) -> None:
    shown = Progress("entries", None, enabled=progress)
    decode_entry, decode_record = records_pb2.Entry.FromString, records_pb2.Record.FromString
    for seq, entry in client.list_entries(0, 0):  # the log as it stands when the call starts
        builder.add(seq, decode_record(decode_entry(entry).signed_record.record_bytes))
        if seq % 50_000 == 0:
            shown(seq)


def _day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"{option}: {value!r} is not a date (YYYY-MM-DD)", ExitCode.USAGE)


def write_csv(builder: FsmaBuilder, out: Path) -> list[Path]:
    """One CSV per CTE: OUT.csv -> OUT-Shipping.csv, ...; a directory -> DIR/Shipping.csv, ..."""
    paths = []
    for cte, columns, rows in builder.sheets():
        if out.suffix.lower() == ".csv":
            path = out.with_name(f"{out.stem}-{cte}.csv")
        else:
            out.mkdir(parents=True, exist_ok=True)
            path = out / f"{cte}.csv"
        dates = [i for i, (_, t) in enumerate(columns) if t == DATE]
        with path.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow([name for name, _ in columns])
            for row in rows:
                w.writerow(_csv_row(row, dates))
        paths.append(path)
    return paths


def _csv_row(row: Row, dates: list[int]) -> list[object]:
    out = list(row)
    for i in dates:
        if out[i] is not None:
            out[i] = out[i].isoformat()  # type: ignore[attr-defined]
    return out


def write_xlsx(builder: FsmaBuilder, out: Path) -> dict[str, int]:
    counts = {}
    partial = out.with_name(out.name + ".partial")
    with XlsxWriter(partial) as w:
        for cte, columns, rows in builder.sheets():
            counts[cte] = w.sheet(cte, columns, rows)
    partial.replace(out)
    return counts


@click.command("export-fsma")
@click.option("--lot", "lots", multiple=True, help="A lot key: export its full trace (upstream and downstream).")
@click.option("--from", "start", help="First event day (YYYY-MM-DD, UTC), inclusive.")
@click.option("--to", "end", help="Last event day (YYYY-MM-DD, UTC), inclusive.")
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="FILE.xlsx (one sheet per CTE), or FILE.csv / DIR (one CSV per CTE).",
)
@client_options
@handles_errors
def export_fsma(
    lots: tuple[str, ...], start: str | None, end: str | None, out: Path, server: str, as_json: bool
) -> None:
    """The FDA FSMA 204 electronic sortable spreadsheet: one sheet per Critical Tracking Event
    (Shipping, Receiving, Transformation), one row per lot per event, the Key Data Elements of
    21 CFR 1.1340-1.1350 as columns, for LOTs' traces or the events between two days."""
    if not lots and start is None and end is None:
        fail("say what to export: --lot LOT... and/or --from DATE --to DATE", ExitCode.USAGE)
    if out.suffix.lower() not in (".xlsx", ".csv", ""):
        fail(f"--out {out}: write FILE.xlsx, FILE.csv or a directory", ExitCode.USAGE)
    started = time.monotonic()
    keep = RowFilter(None, _day(start, "--from"), _day(end, "--to"))
    with connect(server) as client:
        if lots:
            keep.lots = trace_lots(client, lots)
        builder = build(client, keep, progress=not as_json)
    if out.suffix.lower() == ".xlsx":
        counts = write_xlsx(builder, out)
        files = [str(out)]
    else:
        paths = write_csv(builder, out)
        counts = {cte: len(rows) for cte, _, rows in builder.sheets()}
        files = [str(p) for p in paths]
    seconds = time.monotonic() - started
    if as_json:
        emit_json({"files": files, "rows": counts, "lots": sorted(keep.lots or []), "seconds": round(seconds, 3)})
        return
    for cte, n in counts.items():
        click.echo(f"{cte:<15} {n:>9} rows")
    note(f"written to {', '.join(files)} in {seconds:.2f} s")


@click.command("fsma-check")
@click.option("--lot", "lots", multiple=True, help="Only records naming this lot or its trace (up and down).")
@client_options
@handles_errors
def fsma_check(lots: tuple[str, ...], server: str, as_json: bool) -> None:
    """Every record (in force) whose Critical Tracking Event lacks a required Key Data Element,
    by entry and field. Exits 1 if there is any."""
    with connect(server) as client:
        wanted = trace_lots(client, lots) if lots else None
        builder = build(client, RowFilter(wanted), check=True, progress=not as_json)
    findings = builder.missing()
    if as_json:
        emit_json({"complete": not findings, "missing": [asdict(f) for f in findings]})
    else:
        for f in findings:
            click.echo(f"entry {f.seq:<6} {f.kind:<18} {f.field}   ({f.record_id})")
    if findings:
        fail(f"{len(findings)} missing Key Data Elements in {len({f.seq for f in findings})} records")
    note("every Critical Tracking Event record has its Key Data Elements")
