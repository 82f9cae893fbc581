"""`lotledger export-fsma` and `lotledger fsma-check`: the FDA FSMA 204 sortable spreadsheet
and the check for missing Key Data Elements. The driver (reading the log, writing .xlsx or
CSV files) is audit/fsma.py; the rows are trace/standards/fsma.py.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from datetime import date
from pathlib import Path

import click

from lotledger.cli.options import client_options, connect
from lotledger.cli.output import ExitCode, Progress, emit_json, fail, handles_errors, note


def _day(value: str | None, option: str) -> date | None:
    """The day an option names (None when not given); anything else is a usage error."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"{option}: {value!r} is not a date (YYYY-MM-DD)", ExitCode.USAGE)


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
    from lotledger.audit.fsma import build, trace_lots, write_csv, write_xlsx
    from lotledger.trace.standards.fsma import Filter as RowFilter

    if not lots and start is None and end is None:
        fail("say what to export: --lot LOT... and/or --from DATE --to DATE", ExitCode.USAGE)
    if out.suffix.lower() not in (".xlsx", ".csv", ""):
        fail(f"--out {out}: write FILE.xlsx, FILE.csv or a directory", ExitCode.USAGE)
    started = time.monotonic()
    keep = RowFilter(None, _day(start, "--from"), _day(end, "--to"))
    with connect(server) as client:
        if lots:
            keep.lots = trace_lots(client, lots)
        builder = build(client, keep, progress=Progress("entries", None, enabled=not as_json))
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
    from lotledger.audit.fsma import build, trace_lots
    from lotledger.trace.standards.fsma import Filter as RowFilter

    with connect(server) as client:
        wanted = trace_lots(client, lots) if lots else None
        builder = build(client, RowFilter(wanted), check=True, progress=Progress("entries", None, enabled=not as_json))
    findings = builder.missing()
    if as_json:
        emit_json({"complete": not findings, "missing": [asdict(f) for f in findings]})
    else:
        for f in findings:
            click.echo(f"entry {f.seq:<6} {f.kind:<18} {f.field}   ({f.record_id})")
    if findings:
        fail(f"{len(findings)} missing Key Data Elements in {len({f.seq for f in findings})} records")
    note("every Critical Tracking Event record has its Key Data Elements")
