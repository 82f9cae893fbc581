"""A recall answer as tables: the rows of the CSV that `lotledger recall --csv` writes and of
the web app's CSV and XLSX downloads, defined once so that every download says the same (and
the CSV written once, through the spreadsheet-safe writer of csv_safe.py).

Also the plain-text tables `lotledger recall`, `alerts` and `sources` print (`text_table`): one
heading over every column, zeros printed as zeros.

Pure: it reads a RecallResponse (and the participant directory for contact data).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import UTC
from typing import Any, NamedTuple

from lotledger.trace.standards import csv_safe
from lotledger.v1 import trace_pb2

# The XLSX column type of every sheet here (trace/standards/fsma.py's TEXT, which is not
# imported: it loads the trace index, and `lotledger recall` prints these tables without it).
TEXT = "text"


class Contact(NamedTuple):
    business_name: str = ""
    phone: str = ""
    address: str = ""


class Table(NamedTuple):
    name: str
    columns: Sequence[tuple[str, str]]
    rows: list[list[Any]]


CONSIGNMENT_COLUMNS = [
    "shipment_id",
    "from",
    "to",
    "to_location",
    "shipped_at",
    "lot",
    "quantity",
    "unit",
    "received",
    "documents",
    "entry",
]

# Plain numbers stay numbers in these columns; every other cell that looks like a formula is text.
CONSIGNMENT_NUMERIC = frozenset(CONSIGNMENT_COLUMNS.index(c) for c in ("quantity", "entry"))


def write_consignments_csv(stream: csv_safe.Writable, r: trace_pb2.RecallResponse) -> None:
    """The consignments CSV (a header, then `consignment_rows`) to a text stream opened with
    newline="": the one CSV of a recall, for the CLI and the web app alike."""
    w = csv_safe.writer(stream, CONSIGNMENT_NUMERIC)
    w.writerow(CONSIGNMENT_COLUMNS)
    w.writerows(consignment_rows(r))


def consignment_rows(r: trace_pb2.RecallResponse) -> Iterator[list[Any]]:
    """One row per lot per consignment, in CONSIGNMENT_COLUMNS order."""
    for c in r.consignments:
        shipped = csv_safe.iso_time(c.shipped_at.ToDatetime(UTC)) if c.HasField("shipped_at") else ""
        for item in c.lots:
            yield [
                c.shipment_id,
                c.from_participant,
                c.to_participant,
                c.to_location,
                shipped,
                item.lot,
                item.quantity.amount,
                item.quantity.unit,
                "true" if c.received else "false",  # as JSON writes it, in the CSV and the XLSX alike
                "; ".join(c.documents),
                c.seq,
            ]


def tables(r: trace_pb2.RecallResponse, contacts: Mapping[str, Contact]) -> list[Table]:
    """The recall as the sheets of a workbook: affected lots with their mass balance, whom to
    call, what is still on the road, what to quarantine."""
    balances = Table(
        "Affected lots",
        [(c, TEXT) for c in ("lot", "holder", "unit", "received", "consumed", "shipped", "on_hand", "unaccounted")],
        [
            [b.lot, b.participant, b.unit, b.received, b.consumed, b.shipped, b.on_hand, b.unaccounted]
            for b in r.balances
        ],
    )
    consignees = Table(
        "Consignees",
        [(c, TEXT) for c in ("participant", "business_name", "phone", "address")],
        [[p, *contacts.get(p, Contact())] for p in r.consignees],
    )
    shipped = Table("Consignments", [(c, TEXT) for c in CONSIGNMENT_COLUMNS], list(consignment_rows(r)))
    open_ = Table(
        "Open shipments",
        [(c, TEXT) for c in ("shipment_id", "from", "to", "to_location", "lots")],
        [
            [c.shipment_id, c.from_participant, c.to_participant, c.to_location, lots_text(c)]
            for c in r.consignments
            if not c.received
        ],
    )
    stock = Table(
        "Stock on hand",
        [(c, TEXT) for c in ("lot", "holder", "on_hand", "unit")],
        [[b.lot, b.participant, b.on_hand, b.unit] for b in r.balances if b.on_hand not in ("", "0")],
    )
    return [balances, consignees, shipped, open_, stock]


def lots_text(c: trace_pb2.ShipmentView) -> str:
    return ", ".join(f"{i.lot} {i.quantity.amount} {i.quantity.unit}".strip() for i in c.lots)


def text_table(headings: Sequence[str], rows: Sequence[Sequence[str]], numeric: Collection[int] = ()) -> list[str]:
    """Lines of a plain-text table for a terminal: every column under its own heading, as wide
    as its widest cell, numbers right-aligned. Cells are printed as given (a zero stays "0")."""
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(headings)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return [line(headings), *(line(row) for row in rows)]


def balance_lines(r: trace_pb2.RecallResponse) -> list[str]:
    """The mass balance of every affected lot, as `lotledger recall` prints it: UNACCOUNTED is
    upper-case because a non-zero there is what QA must chase."""
    return text_table(
        ("LOT", "HOLDER", "UNIT", "IN", "CONSUMED", "SHIPPED", "ON HAND", "UNACCOUNTED"),
        [
            [
                b.lot,
                b.participant,
                b.unit,
                *(v or "0" for v in (b.received, b.consumed, b.shipped, b.on_hand, b.unaccounted)),
            ]
            for b in r.balances
        ],
        numeric=range(3, 8),
    )


def consignment_lines(r: trace_pb2.RecallResponse) -> list[str]:
    """Every consignment of an affected lot, open ones flagged, as `lotledger recall` prints it."""
    return text_table(
        ("SHIPMENT", "SHIPPED", "FROM", "TO", "LOCATION", "LOTS", "STATE"),
        [
            [
                c.shipment_id,
                c.shipped_at.ToDatetime(UTC).date().isoformat() if c.HasField("shipped_at") else "?",
                c.from_participant,
                c.to_participant,
                c.to_location,
                lots_text(c),
                "received" if c.received else "OPEN - stop it",
            ]
            for c in r.consignments
        ],
    )
