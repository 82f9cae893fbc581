"""The verifier's hot-path shortcuts in validation (the GS1 check digit summed over byte
slices, control characters found by a regex) must say exactly what the plain definitions say."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from lotledger.ledger.core.validation import DEFAULT_MAX_SKEW, _Checker, gtin_check_digit_ok
from lotledger.ledger.errors import InvalidRecord


def check_digit_by_definition(value: str) -> bool:
    if not value.isdigit() or not value.isascii():
        return False
    digits = [int(c) for c in value]
    total = sum(d * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits[:-1])))
    return (10 - total % 10) % 10 == digits[-1]


@given(st.text(alphabet="0123456789", max_size=20) | st.text(max_size=6))
def test_check_digit_as_defined(value: str) -> None:
    assert gtin_check_digit_ok(value) == check_digit_by_definition(value)


def test_check_digit_examples() -> None:
    assert gtin_check_digit_ok("09520000000011") and not gtin_check_digit_ok("09520000000012")
    assert gtin_check_digit_ok("0") and not gtin_check_digit_ok("") and not gtin_check_digit_ok("٠")


@given(
    st.text(alphabet=st.characters(max_codepoint=0x7F) | st.sampled_from("é—\x1d\u2028"), max_size=12),
    st.sampled_from(["\t\n", "\x1d", ""]),
)
def test_control_characters_as_defined(value: str, allow: str) -> None:
    expected = any(ord(c) < 0x20 and c not in allow for c in value)
    checker = _Checker(datetime.now(UTC), DEFAULT_MAX_SKEW)
    try:
        checker.text(value, "f", required=False, allow=allow)
        refused = False
    except InvalidRecord as e:
        refused = "control characters" in e.message
    assert refused == expected


def test_every_control_character_alone() -> None:
    checker = _Checker(datetime.now(UTC), DEFAULT_MAX_SKEW)
    for allow in ("\t\n", "\x1d"):
        for code in range(0x21):
            value = f"a{chr(code)}b"
            try:
                checker.text(value, "f", allow=allow)
                refused = False
            except InvalidRecord:
                refused = True
            assert refused == (code < 0x20 and chr(code) not in allow), (code, allow)
