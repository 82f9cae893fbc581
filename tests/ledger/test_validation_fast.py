"""The verifier's hot-path shortcuts in validation (the GS1 check digit summed over byte
slices, control characters found by a regex) must say exactly what the plain definitions say,
under rules 1 (C0 controls only) and rules 2 (controls, invisible and bidi characters, NFC)."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from lotledger.ledger.core.rules import RULES_1, RULES_2
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
    checker = _Checker(datetime.now(UTC), DEFAULT_MAX_SKEW, RULES_1)
    try:
        checker.text(value, "f", required=False, allow=allow)
        refused = False
    except InvalidRecord as e:
        refused = "control characters" in e.message
    assert refused == expected


def test_every_control_character_alone() -> None:
    checker = _Checker(datetime.now(UTC), DEFAULT_MAX_SKEW, RULES_1)
    for allow in ("\t\n", "\x1d"):
        for code in range(0x21):
            value = f"a{chr(code)}b"
            try:
                checker.text(value, "f", allow=allow)
                refused = False
            except InvalidRecord:
                refused = True
            assert refused == (code < 0x20 and chr(code) not in allow), (code, allow)


# Rules 2, by definition: the code points the issue names, plus the other invisible formatting
# characters of the fixed list in validation.py.
BIDI = {0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)}
ZERO_WIDTH = {0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF}
OTHER_INVISIBLE = {
    0x00AD, 0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, *range(0x180B, 0x1810), 0x3164, 0xFFA0,
    0x2028, 0x2029, *range(0x2061, 0x2065), *range(0x206A, 0x2070), *range(0xFFF9, 0xFFFC),
    *range(0xFE00, 0xFE10), *range(0xE0000, 0xE0080), *range(0xE0100, 0xE01F0),
}  # fmt: skip
ODD_SPACES = {0x00A0, 0x1680, *range(0x2000, 0x200B), 0x202F, 0x205F, 0x3000}
INTERESTING = [chr(c) for c in sorted(BIDI | ZERO_WIDTH | OTHER_INVISIBLE | ODD_SPACES)] + list(
    "é—\u2028e\u0301\u00b5\u212b\x85\x9f\xa0\x1d "
)


def refused_by_definition(value: str, allow: str, *, identifier: bool) -> bool:
    for ch in value:
        c = ord(ch)
        if c < 0x20 and ch not in allow or 0x7F <= c <= 0x9F or c in BIDI | ZERO_WIDTH | OTHER_INVISIBLE:
            return True
        if identifier and c in ODD_SPACES:
            return True
    if identifier and (value.startswith(" ") or value.endswith(" ")):
        return True
    return unicodedata.normalize("NFC", value) != value


@given(
    st.text(alphabet=st.characters(max_codepoint=0x7F) | st.sampled_from(INTERESTING), max_size=12),
    st.sampled_from(["\x1d", ""]),
    st.booleans(),
)
def test_rules_2_text_as_defined(value: str, allow: str, lines: bool) -> None:
    checker = _Checker(datetime.now(UTC), DEFAULT_MAX_SKEW, RULES_2)
    try:
        checker.text(value, "f", required=False, allow=allow, lines=lines)
        refused = False
    except InvalidRecord as e:
        assert e.reason in {"INVALID_CHARACTERS", "NOT_NFC"} and "U+" in e.message
        refused = True
    assert refused == refused_by_definition(value, allow + ("\t\n" if lines else ""), identifier=False)


@given(st.text(alphabet=st.characters(max_codepoint=0x7F) | st.sampled_from(INTERESTING), min_size=1, max_size=12))
def test_rules_2_identifiers_as_defined(value: str) -> None:
    checker = _Checker(datetime.now(UTC), DEFAULT_MAX_SKEW, RULES_2)
    try:
        checker.identifier(value, "f")
        refused = False
    except InvalidRecord as e:
        assert e.reason in {"INVALID_CHARACTERS", "NOT_NFC"}
        refused = True
    assert refused == refused_by_definition(value, "", identifier=True)


def test_every_refused_code_point_alone_under_rules_2() -> None:
    checker = _Checker(datetime.now(UTC), DEFAULT_MAX_SKEW, RULES_2)
    for code in [*range(0x20), *range(0x7F, 0xA0), *BIDI, *ZERO_WIDTH, *OTHER_INVISIBLE]:
        value = f"a{chr(code)}b"
        for identifier in (True, False):
            check = checker.identifier if identifier else lambda v, f: checker.text(v, f, lines=True)
            if chr(code) in "\t\n" and not identifier:
                check(value, "f")  # free text may hold lines
                continue
            try:
                check(value, "f")
            except InvalidRecord as e:
                assert e.reason == "INVALID_CHARACTERS" and f"U+{code:04X}" in e.message, (code, e.message)
            else:
                raise AssertionError(f"U+{code:04X} was accepted")
