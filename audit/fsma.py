"""The driver of the FDA FSMA 204 reports (trace/standards/fsma.py builds the rows): behind
`lotledger export-fsma`, `lotledger fsma-check` and the web app's FSMA download.

It reads the log's entries from the server (ListEntries, one stream in log order), decodes each
record once and feeds it to an `FsmaBuilder`, which also rebuilds the master data from the admin
records on the way. For lots named in a request, the server's trace (upstream and downstream of
each lot) says which lots it covers. The rows go to an .xlsx workbook (one sheet per Critical
Tracking Event, trace/standards/xlsx.py) or to one CSV file per CTE, each written atomically
and durably (signing/files.py): a reader never finds half a report under its name. The CSVs go
through trace/standards/csv_safe.py, so no partner's text runs as a spreadsheet formula.
"""

from __future__ import annotations

import gc
import io
from collections.abc import Callable, Iterable
from pathlib import Path

from lotledger.rpc.client import LedgerClient
from lotledger.signing.files import atomic_file, atomic_path
from lotledger.trace.standards import csv_safe
from lotledger.trace.standards.fsma import DATE, INTEGER, NUMBER, FsmaBuilder, Row
from lotledger.trace.standards.fsma import Filter as RowFilter
from lotledger.trace.standards.xlsx import XlsxWriter
from lotledger.v1 import records_pb2


def trace_lots(client: LedgerClient, lots: Iterable[str]) -> frozenset[str]:
    """The lots and everything upstream and downstream of them, as the server's trace says.
    Raises NotFound (an unknown lot), StorageError/Unavailable (the server)."""
    out: set[str] = set()
    for lot in lots:
        for direction in ("up", "down"):
            out.update(view.lot for view in client.trace(lot, direction).lots)
    return frozenset(out)


def build(
    client: LedgerClient,
    keep: RowFilter,
    *,
    check: bool = False,
    progress: Callable[[int], None] | None = None,
) -> FsmaBuilder:
    """Stream every entry through a builder; `progress` hears the entry count now and then.
    Raises Unavailable/StorageError (the server)."""
    builder = FsmaBuilder(keep, check)
    gc.disable()  # a million row tuples: the collector would walk them again and again
    try:
        _feed(client, builder, progress)
    finally:
        gc.enable()
    return builder


def _feed(client: LedgerClient, builder: FsmaBuilder, progress: Callable[[int], None] | None) -> None:
    decode_entry, decode_record = records_pb2.Entry.FromString, records_pb2.Record.FromString
    for seq, entry in client.list_entries(0, 0):  # the log as it stands when the call starts
        builder.add(seq, decode_record(decode_entry(entry).signed_record.record_bytes))
        if progress is not None and seq % 50_000 == 0:
            progress(seq)


def write_csv(builder: FsmaBuilder, out: Path) -> list[Path]:
    """One CSV per CTE: OUT.csv -> OUT-Shipping.csv, ...; a directory -> DIR/Shipping.csv, ...
    Each file is replaced whole. Raises OSError."""
    paths = []
    for cte, columns, rows in builder.sheets():
        if out.suffix.lower() == ".csv":
            path = out.with_name(f"{out.stem}-{cte}.csv")
        else:
            out.mkdir(parents=True, exist_ok=True)
            path = out / f"{cte}.csv"
        dates = [i for i, (_, t) in enumerate(columns) if t == DATE]
        numeric = [i for i, (_, t) in enumerate(columns) if t in (NUMBER, INTEGER)]
        with atomic_file(path) as f:
            text = io.TextIOWrapper(f, encoding="utf-8", newline="")
            w = csv_safe.writer(text, numeric)
            w.writerow([name for name, _ in columns])
            for row in rows:
                w.writerow(_csv_row(row, dates))
            text.flush()
            text.detach()  # atomic_file syncs and closes the file itself
        paths.append(path)
    return paths


def _csv_row(row: Row, dates: list[int]) -> list[object]:
    out = list(row)
    for i in dates:
        if out[i] is not None:
            out[i] = out[i].isoformat()  # type: ignore[attr-defined]
    return out


def write_xlsx(builder: FsmaBuilder, out: Path) -> dict[str, int]:
    """The workbook, one sheet per CTE, written to `out.partial` and renamed over `out` once
    complete and synced; returns the rows per CTE. Raises OSError."""
    counts = {}
    with atomic_path(out, temp=out.with_name(out.name + ".partial")) as partial, XlsxWriter(partial) as w:
        for cte, columns, rows in builder.sheets():
            counts[cte] = w.sheet(cte, columns, rows)
    return counts
