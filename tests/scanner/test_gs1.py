"""What keyboard-wedge scanners send, and what the station makes of it (biip underneath)."""

from __future__ import annotations

import pytest

from lotledger.scanner_client.gs1 import ScanRefused, parse_scan

GTIN = "09520000000011"  # GS1 example prefix 952, valid check digit


@pytest.mark.parametrize(
    ("raw", "separator"),
    [
        (f"]C101{GTIN}10LOT-7\x1d17271231", ""),  # GS1-128 with ASCII 29
        (f"]C101{GTIN}10LOT-7|17271231", "|"),  # a scanner set to send '|' for GS
        (f"]C101{GTIN}10LOT-7~17271231", "~"),
        (f"]d201{GTIN}17271231\x1d10LOT-7", ""),  # GS1 DataMatrix, lot last
        (f"]Q301{GTIN}1727123110LOT-7", ""),  # GS1 QR, lot last needs no separator
        (f"01{GTIN}10LOT-7\x1d17271231", ""),  # no symbology identifier
        (f"(01){GTIN}(10)LOT-7(17)271231", ""),  # human-readable, keyed in
        (f"https://id.gs1.org/01/{GTIN}/10/LOT-7?17=271231", ""),  # GS1 Digital Link
    ],
)
def test_the_same_lot_from_every_form(raw: str, separator: str) -> None:
    scan = parse_scan(raw, separator=separator)
    assert (scan.gtin, scan.lot, scan.expiry_date) == (GTIN, "LOT-7", "2027-12-31")
    assert scan.lot_key == f"01/{GTIN}/10/LOT-7"
    assert scan.raw == raw


def test_line_endings_are_not_data() -> None:
    assert parse_scan(f"01{GTIN}10A1\r\n").lot == "A1"


def test_plain_gtin_and_sscc_and_weights() -> None:
    assert parse_scan("9520000000011").gtin == GTIN  # GTIN-13 as printed on a retail pack
    sscc = parse_scan("]C1" + "00" + "095200000000000011")
    assert sscc.sscc == "095200000000000011" and not sscc.gtin
    weighed = parse_scan(f"01{GTIN}3103000500\x1d10L9\x1d11260115\x1d21SER-1")
    assert (weighed.net_weight_kg, weighed.lot, weighed.production_date, weighed.serial) == (
        "0.500",
        "L9",
        "2026-01-15",
        "SER-1",
    )
    assert parse_scan(f"02{GTIN}3712\x1d10L9").count == 12
    # EAN-13 and ITF-14 with the symbology id a scanner may prefix.
    assert parse_scan("]E09520000000011").gtin == GTIN
    assert parse_scan("]I1" + GTIN).gtin == GTIN


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("0109520000000012" + "10LOT", "BAD_CHECK_DIGIT"),  # GTIN check digit 2 where 1 is right
        ("9520000000012", "BAD_CHECK_DIGIT"),
        ("00095200000000000014", "BAD_CHECK_DIGIT"),  # SSCC
        (f"01{GTIN}9X123", "UNKNOWN_AI"),
        ("(01)09520000000011(9X)123", "UNKNOWN_AI"),
        (f"01{GTIN}10LOT717271231", "MISSING_SEPARATOR"),  # the lot swallowed (17) 271231
        (f"01{GTIN}21SER115260131", "MISSING_SEPARATOR"),  # the serial swallowed (15) 260131
        ("3103000500", "NO_IDENTITY"),  # a weight alone names nothing
        ("hello world", "UNKNOWN_AI"),
        ("", "EMPTY"),
        (f"01{GTIN}10L1\x1d3103000000", "ZERO_QUANTITY"),  # a zero weight: never a valid Scan record
        (f"02{GTIN}3700\x1d10L1", "ZERO_QUANTITY"),
    ],
)
def test_refused_locally_with_a_reason(raw: str, reason: str) -> None:
    with pytest.raises(ScanRefused) as refused:
        parse_scan(raw)
    assert refused.value.reason == reason, str(refused.value)
    assert str(refused.value)  # a message a person at the station can act on


def test_missing_separator_says_what_to_do() -> None:
    with pytest.raises(ScanRefused, match="separator") as refused:
        parse_scan(f"01{GTIN}10LOT717271231")
    assert "(17) 271231" in str(refused.value)
    # the same scan with its separator is fine, and so is a lot that merely ends in digits
    assert parse_scan(f"01{GTIN}10LOT7\x1d17271231").lot == "LOT7"
    assert parse_scan(f"01{GTIN}10LOT7171").lot == "LOT7171"


def test_a_separator_setting_must_be_one_symbol() -> None:
    with pytest.raises(ScanRefused) as refused:
        parse_scan(f"01{GTIN}10A", separator="X")
    assert refused.value.reason == "BAD_CONFIG"


def test_a_bare_symbology_flag_is_refused() -> None:
    # Found by tests/ledger/test_fuzz.py: biip raised IndexError on "]".
    from lotledger.scanner_client.gs1 import ScanRefused, parse_scan

    for raw in ("]", "]C", "]d2"):
        try:
            parse_scan(raw)
        except ScanRefused as e:
            assert e.args


def test_an_empty_count_is_refused() -> None:
    # Found by bench/fuzz.py (atheris): int('') on the scan "30".
    import pytest

    from lotledger.scanner_client.gs1 import ScanRefused, parse_scan

    with pytest.raises(ScanRefused):
        parse_scan("30")
