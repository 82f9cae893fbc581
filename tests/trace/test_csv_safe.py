"""The spreadsheet-safe CSV writer (trace/standards/csv_safe.py): OWASP's formula starters get a
leading quote, plain numbers in numeric columns stay numbers, everything else is untouched."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lotledger.trace.standards import csv_safe


@pytest.mark.parametrize(
    "value",
    [
        '=HYPERLINK("https://evil.example","x")',
        "@SUM(1+1)",
        "+1 555 0100",
        "-2+3+cmd|' /C calc'!A0",
        "\t=1+1",
        "\r=1+1",
        "\n=1+1",
        "\uff1d1+1",
        "-12.5",  # in a text column
        "=",
    ],
)
def test_formula_starters_are_quoted(value: str) -> None:
    assert csv_safe.cell(value) == "'" + value


@pytest.mark.parametrize("value", ["-12.5", "-3", "12", "0.5"])
def test_plain_numbers_stay_numbers_in_numeric_columns(value: str) -> None:
    assert csv_safe.cell(value, numeric=True) == value


@pytest.mark.parametrize("value", ["-1+1", "-A1", "+5", "-1e3", "-\u0661"])
def test_numeric_columns_still_quote_what_is_not_a_plain_number(value: str) -> None:
    assert csv_safe.cell(value, numeric=True) == "'" + value


def test_other_values_pass() -> None:
    for value in ("SH-1", "B\u00e4ckerei", "", " =1", "'=1", "1=1"):
        assert csv_safe.cell(value) == value
    for value in (None, 3, -3, 2.5, Decimal("-1.5")):
        assert csv_safe.cell(value) is value
    assert csv_safe.cell(date(2026, 1, 5)) == "2026-01-05"


def test_booleans_and_times_read_as_other_systems_write_them() -> None:
    assert (csv_safe.cell(True), csv_safe.cell(False)) == ("true", "false")
    assert csv_safe.cell(datetime(2026, 10, 15, 8, 0, tzinfo=UTC)) == "2026-10-15T08:00:00Z"
    plus_two = datetime(2026, 10, 15, 10, 0, 0, 500000, tzinfo=timezone(timedelta(hours=2)))
    assert csv_safe.cell(plus_two) == "2026-10-15T10:00:00.500000+02:00"
    with pytest.raises(ValueError, match="without a zone"):
        csv_safe.cell(datetime(2026, 10, 15, 8, 0))


@given(st.lists(st.text(max_size=8) | st.integers(), min_size=1, max_size=5))
def test_a_row_reads_back_as_written_but_for_the_quote(row: list[object]) -> None:
    out = io.StringIO(newline="")
    csv_safe.writer(out).writerow(row)
    (back,) = list(csv.reader(io.StringIO(out.getvalue(), newline="")))
    for written, read in zip(row, back, strict=True):
        text = str(written)
        if isinstance(written, str) and text.startswith(csv_safe.FORMULA_STARTS):
            assert read == "'" + text
        else:
            assert read == text
