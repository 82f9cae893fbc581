"""Record decoding and validation: pure functions over bytes and messages, no I/O.

The same checks run when the server admits a record and when a regulator re-verifies the log
(with `now` set to the entry's `received_at`), so a record that was valid when it was accepted
stays valid for ever, and a verifier never has to trust the server's judgement.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote, unquote

from google.protobuf import unknown_fields
from google.protobuf.message import DecodeError, Message
from google.protobuf.timestamp_pb2 import Timestamp

from lotledger.ledger.core.rules import CURRENT, RULES_2, RULES_3
from lotledger.ledger.core.sizes import MAX_MESSAGE_BYTES as MAX_MESSAGE_BYTES  # re-exported
from lotledger.ledger.core.sizes import MAX_RECORD_BYTES as MAX_RECORD_BYTES
from lotledger.ledger.errors import InvalidRecord, RecordTooLarge
from lotledger.signing.errors import InvalidKey
from lotledger.signing.keys import VerifyKey
from lotledger.v1 import records_pb2

DEFAULT_MAX_SKEW = timedelta(minutes=10)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
EARLIEST_S = int(EARLIEST.timestamp())

RESERVED_PARTICIPANT = "sscc"
_PARTICIPANT_ID = re.compile(r"[a-z0-9][a-z0-9._:-]{0,63}")
_RECORD_ID = re.compile(r"[!-~]{1,128}")
_LOCATION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}")
_ITEM_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# GS1 AI 10: up to 20 characters of GS1 "CSET 82".
_GS1_LOT = re.compile(r"[!\"%-?A-Z_a-z]{1,20}")
_OTHER_LOT = re.compile(r"[!-~]{1,64}")
_NONZERO_DIGIT = re.compile(r"[1-9]")
# UN/ECE Recommendation 20 common codes are two or three upper-case letters or digits.
_UNIT = re.compile(r"[A-Z0-9]{2,3}")
_KEY_ID = re.compile(r"[0-9a-f]{64}")
_TEXT_LIMIT = 1024


class _Numbers:
    """The numeric patterns of one rules version."""

    def __init__(self, digit: str) -> None:
        d = digit
        self.decimal = re.compile(rf"-?{d}{{1,15}}(\.{d}{{1,9}})?")
        self.positive_decimal = re.compile(rf"{d}{{1,15}}(\.{d}{{1,9}})?")
        self.date = re.compile(rf"{d}{{4}}-{d}{{2}}-{d}{{2}}")
        self.sscc = re.compile(rf"{d}{{18}}")
        self.gln = re.compile(rf"{d}{{13}}")


# Rules 1 wrote `\d`, which matches every Unicode decimal digit: "1\u0660\u0660" (1, then two
# ARABIC-INDIC DIGIT ZERO) passed as an amount and Decimal() read it as 100. Logs written under
# rules 1 keep that reading for ever; rules 2 takes ASCII digits only.
_NUMBERS_1 = _Numbers(r"\d")
_NUMBERS_2 = _Numbers("[0-9]")

# Rules 2: code points no text may hold, identifier or free text. A fixed list, not Unicode
# categories: the answer must not change with the Unicode version of the Python a verifier runs.
# C0 controls are added per field (free text keeps tab and newline where lines make sense).
_INVISIBLE = (
    "\x7f-\x9f"  # DEL and the C1 controls (U+0085 NEXT LINE among them)
    "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"  # bidi marks, embeddings, overrides, isolates
    "\u200b-\u200d\u2060\ufeff"  # zero width space, non-joiner, joiner; word joiner; BOM
    "\u00ad\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u3164\uffa0"  # soft hyphen, CGJ, fillers
    "\u2028\u2029\u2061-\u2064\u206a-\u206f\ufff9-\ufffb"  # line separators, invisible operators
    "\ufe00-\ufe0f\U000e0000-\U000e007f\U000e0100-\U000e01ef"  # variation selectors, tag characters
)
# Identifiers also refuse the spaces that look like U+0020 but are not.
_ODD_SPACES = "\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000"
_IDENTIFIER_LIMIT = 128


def decode_record(record_bytes: bytes) -> records_pb2.Record:
    """Parse signed record bytes, refusing what we could not validate.

    Raises RecordTooLarge over MAX_RECORD_BYTES (63 KiB), InvalidRecord if the bytes are not a Record or carry
    fields this version does not know (a signature must not cover data nobody checked).
    """
    if len(record_bytes) > MAX_RECORD_BYTES:
        raise RecordTooLarge(
            f"record is {len(record_bytes)} bytes; the limit is {MAX_RECORD_BYTES}",
            reason="RECORD_TOO_LARGE",
            field="record_bytes",
        )
    try:
        record: records_pb2.Record = records_pb2.Record.FromString(record_bytes)
    except DecodeError as e:
        raise InvalidRecord(
            f"record_bytes is not a lotledger.v1.Record: {e}", reason="MALFORMED", field="record_bytes"
        ) from e
    refuse_unknown_fields(record, "record")
    return record


def refuse_unknown_fields(message: Message, path: str) -> None:
    """Refuse a message carrying fields this version does not know, anywhere inside it.

    The check is native (the size drops when upb discards unknown fields); only when it finds
    some does the slow walk run, to name the field for the error.
    """
    size = message.ByteSize()
    probe = type(message)()
    probe.CopyFrom(message)
    probe.DiscardUnknownFields()
    if probe.ByteSize() != size:
        where = _unknown_field_path(message, path) or path
        raise InvalidRecord(f"{where} has fields unknown to lotledger.v1", reason="UNKNOWN_FIELDS", field=where)


def _unknown_field_path(message: Message, path: str) -> str | None:
    if len(unknown_fields.UnknownFieldSet(message)):
        return path
    for descriptor, value in message.ListFields():
        if descriptor.message_type is None:
            continue
        items = enumerate(value) if descriptor.is_repeated else [(None, value)]
        for i, item in items:
            found = _unknown_field_path(item, f"{path}.{descriptor.name}" + (f"[{i}]" if i is not None else ""))
            if found:
                return found
    return None


def is_participant_id(value: str) -> bool:
    return _PARTICIPANT_ID.fullmatch(value) is not None


def record_kind(record: records_pb2.Record) -> str:
    """The name of the body oneof field that is set ("" when none is)."""
    return record.WhichOneof("body") or ""


def gtin_check_digit_ok(gtin: str) -> bool:
    """GS1 mod-10 check digit over a string of digits (any GTIN length): weights 3, 1, 3...
    from the digit before the check digit leftwards. Summed over ASCII byte slices, because
    every record's lots pass here on the verifier's hot path."""
    if not gtin.isdigit() or not gtin.isascii():
        return False
    digits = gtin.encode("ascii")
    triple, single = digits[-2::-2], digits[-3::-2]
    total = 3 * (sum(triple) - 48 * len(triple)) + sum(single) - 48 * len(single)
    return (10 - total % 10) % 10 == digits[-1] - 48


@functools.lru_cache(maxsize=16)
def _control_characters(allow: str) -> re.Pattern[str]:
    """Matches any C0 control character not in `allow`."""
    return re.compile("[" + "".join(re.escape(chr(c)) for c in range(0x20) if chr(c) not in allow) + "]")


@functools.lru_cache(maxsize=16)
def _refused_characters(allow: str, identifier: bool) -> re.Pattern[str]:
    """Rules 2: matches a C0 control character not in `allow`, DEL, a C1 control, a bidi or
    invisible formatting character, and in an identifier a space other than U+0020."""
    c0 = "".join(re.escape(chr(c)) for c in range(0x20) if chr(c) not in allow)
    return re.compile("[" + c0 + _INVISIBLE + (_ODD_SPACES if identifier else "") + "]")


def code_point(ch: str) -> str:
    """`U+202E RIGHT-TO-LEFT OVERRIDE`: how an error names a character (controls have no name)."""
    name = unicodedata.name(ch, "") or ("(control)" if unicodedata.category(ch) == "Cc" else "")
    return f"U+{ord(ch):04X} {name}".rstrip()


def _first_non_ascii(value: str) -> int:
    return next(i for i, ch in enumerate(value) if not ch.isascii())


_PLAIN = re.compile(r"[A-Za-z0-9._~-]*")


def _escape(part: str) -> str:
    # Most lot codes need no escaping; quote() is slow enough to matter on the index's path.
    if part.isascii() and part.isalnum():  # a C-speed check for the usual case
        return part
    return part if _PLAIN.fullmatch(part) else quote(part, safe="")


def lot_key(lot: records_pb2.LotId) -> str:
    """The lot key of DESIGN section 3: the GS1 Digital Link path, else item/<code>/lot/<lot>."""
    gtin, code = lot.gtin, lot.lot  # one upb read each: this runs for every lot of every record
    if gtin:
        return f"01/{gtin}/10/{_escape(code)}"
    return f"item/{_escape(lot.item_code)}/lot/{_escape(code)}"


def parse_lot_key(key: str) -> records_pb2.LotId:
    """The inverse of lot_key. Raises InvalidRecord for anything else."""
    parts = key.split("/")
    if len(parts) == 4 and parts[0] == "01" and parts[2] == "10":
        return records_pb2.LotId(gtin=parts[1], lot=unquote(parts[3]))
    if len(parts) == 4 and parts[0] == "item" and parts[2] == "lot":
        return records_pb2.LotId(item_code=unquote(parts[1]), lot=unquote(parts[3]))
    raise InvalidRecord(
        f"{key!r} is not a lot key (01/<gtin14>/10/<lot> or item/<code>/lot/<lot>)", reason="BAD_LOT_KEY", field="lot"
    )


def parse_quantity(q: records_pb2.Quantity, *, rules: int = CURRENT) -> tuple[Decimal, str]:
    """A validated quantity as (Decimal, unit), under the rules of the log it comes from;
    raises InvalidRecord."""
    _check_quantity(q, "quantity", rules >= RULES_2)
    return Decimal(q.amount), q.unit


# The latest time we turn into a datetime: far beyond any real record, and early enough that
# adding a skew window to it cannot overflow datetime (year 9999).
_LATEST_SECONDS = 253_000_000_000  # about year 9987


def timestamp_to_datetime(ts: Timestamp) -> datetime:
    """Raises InvalidRecord for a time datetime cannot hold (a served entry is untrusted bytes:
    its received_at must fail as that entry's error, never as an OverflowError)."""
    if not -62_135_596_800 <= ts.seconds <= _LATEST_SECONDS:
        raise InvalidRecord(f"timestamp {ts.seconds} s is out of range", reason="INVALID_TIME", field="timestamp")
    return datetime.fromtimestamp(ts.seconds + ts.nanos / 1e9, tz=UTC)


class _Checker:
    """Walks one record under one rules version; `path` prefixes keep every message naming its
    field. `strict` (rules 2 and later) adds the character rules and takes ASCII digits only."""

    def __init__(self, now: datetime, max_skew: timedelta, rules: int = CURRENT):
        self.latest = now + max_skew
        # Compared as integer seconds: a datetime per timestamp costs on the append path.
        self.latest_s = int(self.latest.timestamp())
        self.rules = rules
        self.strict = rules >= RULES_2
        self.numbers = _NUMBERS_2 if self.strict else _NUMBERS_1

    def fail(self, field: str, message: str, reason: str = "INVALID_FIELD") -> None:
        raise InvalidRecord(f"{field}: {message}", reason=reason, field=field)

    def text(
        self,
        value: str,
        field: str,
        *,
        required: bool = True,
        limit: int = _TEXT_LIMIT,
        allow: str = "\t\n",
        lines: bool = False,
    ) -> None:
        """Free text (names, addresses, notes): any Unicode, but under rules 2 in NFC, with no
        invisible or direction-changing characters, and tab and newline only where `lines`."""
        if required and not value:
            self.fail(field, "is required", "MISSING_FIELD")
        if len(value) > limit:
            self.fail(field, f"is longer than {limit} characters")
        if self.strict:
            # `allow` is what rules 1 took; rules 2 takes tab and newline only in text with lines.
            kept = allow.replace("\t", "").replace("\n", "") + ("\t\n" if lines else "")
            self.characters(value, field, allow=kept)
        elif _control_characters(allow).search(value):
            self.fail(field, "contains control characters")

    def identifier(self, value: str, field: str, *, required: bool = True, limit: int = _IDENTIFIER_LIMIT) -> None:
        """An identifier other records and partners name (a shipment, run, formula, document,
        supplier lot code): rules 1 checked it as free text; rules 2 also refuses every control
        character, any space but U+0020, and spaces at either end, so that two identifiers that
        look the same are the same."""
        if not self.strict:
            self.text(value, field, required=required, limit=limit)
            return
        if required and not value:
            self.fail(field, "is required", "MISSING_FIELD")
        if len(value) > limit:
            self.fail(field, f"is longer than {limit} characters")
        self.characters(value, field, allow="", identifier=True)
        if value[:1] == " " or value[-1:] == " ":
            self.fail(field, "starts or ends with a space (U+0020)", "INVALID_CHARACTERS")

    def characters(self, value: str, field: str, *, allow: str, identifier: bool = False) -> None:
        """Rules 2: refuse a refused code point (INVALID_CHARACTERS) and text not in Unicode
        NFC (NOT_NFC), naming the code point and its position."""
        found = _refused_characters(allow, identifier).search(value)
        if found:
            at = found.start()
            self.fail(
                field,
                f"contains {code_point(value[at])} at position {at}: control, invisible and direction-changing "
                "characters are refused",
                "INVALID_CHARACTERS",
            )
        # NFC is judged by the Unicode tables of the Python that runs this. Unicode's stability
        # policy keeps the answer fixed for every assigned character; only text holding a code
        # point unassigned in an older table could be judged apart by Pythons of different ages.
        if not value.isascii() and not unicodedata.is_normalized("NFC", value):
            nfc = unicodedata.normalize("NFC", value)
            at = next(
                (i for i, (a, b) in enumerate(zip(value, nfc, strict=False)) if a != b), min(len(value), len(nfc))
            )
            self.fail(
                field,
                f"is not in Unicode normalization form NFC: {code_point(value[at])} at position {at} "
                f"(NFC writes {' '.join(f'U+{ord(c):04X}' for c in nfc[at : at + 2])} there)",
                "NOT_NFC",
            )

    def pattern(self, value: str, regex: re.Pattern[str], field: str, what: str, *, required: bool = True) -> None:
        """Every pattern is ASCII: under rules 2 a refusal names the first other code point."""
        if not value:
            if required:
                self.fail(field, "is required", "MISSING_FIELD")
            return
        if not regex.fullmatch(value):
            if self.strict and not value.isascii():
                at = _first_non_ascii(value)
                self.fail(
                    field,
                    f"{value[:80]!r} is not {what}: {code_point(value[at])} at position {at} is not ASCII",
                    "INVALID_CHARACTERS",
                )
            if self.strict and (found := _refused_characters("", True).search(value)):
                at = found.start()
                self.fail(
                    field,
                    f"{value[:80]!r} is not {what}: it contains {code_point(value[at])} at position {at}",
                    "INVALID_CHARACTERS",
                )
            self.fail(field, f"{value[:80]!r} is not {what}")

    def participant(self, value: str, field: str, *, required: bool = True) -> None:
        self.pattern(value, _PARTICIPANT_ID, field, "a participant id ([a-z0-9][a-z0-9._:-]{0,63})", required=required)

    def location(self, value: str, field: str, *, required: bool = True) -> None:
        self.pattern(value, _LOCATION_ID, field, "a location id", required=required)

    def gtin(self, value: str, field: str) -> None:
        if len(value) != 14 or not value.isdigit() or not value.isascii():
            self.fail(
                field,
                f"{value[:80]!r} is not a GTIN-14 (14 digits; pad shorter GTINs with leading zeros)",
                "INVALID_GTIN",
            )
        if not gtin_check_digit_ok(value):
            self.fail(field, f"GTIN {value} has a wrong check digit", "INVALID_GTIN")

    def lot(self, lot: records_pb2.LotId, field: str, *, required: bool = True) -> None:
        if not lot.ByteSize():
            if required:
                self.fail(field, "is required", "MISSING_FIELD")
            return
        if bool(lot.gtin) == bool(lot.item_code):
            self.fail(field, "set exactly one of gtin and item_code")
        if lot.gtin:
            self.gtin(lot.gtin, f"{field}.gtin")
            self.pattern(lot.lot, _GS1_LOT, f"{field}.lot", "a GS1 lot number (1-20 characters of GS1 CSET 82)")
        else:
            self.pattern(lot.item_code, _ITEM_CODE, f"{field}.item_code", "an item code")
            self.pattern(lot.lot, _OTHER_LOT, f"{field}.lot", "a lot number (1-64 printable ASCII characters)")

    def gln(self, value: str, field: str) -> None:
        """An optional GLN: 13 digits with a GS1 check digit."""
        if value:
            self.pattern(value, self.numbers.gln, field, "a GLN (13 digits)")
            if not gtin_check_digit_ok(value):
                self.fail(field, f"GLN {value} has a wrong check digit", "INVALID_GLN")

    def sscc(self, value: str, field: str) -> None:
        """An SSCC: 18 digits with a GS1 check digit."""
        self.pattern(value, self.numbers.sscc, field, "an SSCC (18 digits)")
        if not gtin_check_digit_ok(value):
            self.fail(field, f"SSCC {value} has a wrong check digit", "INVALID_SSCC")

    def quantity(self, q: records_pb2.Quantity, field: str) -> None:
        if not q.ByteSize():
            self.fail(field, "is required", "MISSING_FIELD")
        _check_quantity(q, field, self.strict)

    def lots(self, items: Iterable[records_pb2.LotQuantity], field: str, *, required: bool = True) -> None:
        count = 0
        for i, item in enumerate(items):
            self.lot(item.lot, f"{field}[{i}].lot")
            self.quantity(item.quantity, f"{field}[{i}].quantity")
            count += 1
        if required and count == 0:
            self.fail(field, "needs at least one lot", "MISSING_FIELD")

    def time(self, ts: Timestamp, field: str, *, required: bool = True) -> None:
        if not ts.ByteSize() and not (ts.seconds or ts.nanos):
            if required:
                self.fail(field, "is required", "MISSING_FIELD")
            return
        if not 0 <= ts.nanos < 1_000_000_000:
            self.fail(field, "has nanos out of range")
        if EARLIEST_S <= ts.seconds < self.latest_s:
            return
        try:
            when = timestamp_to_datetime(ts)
        except (OverflowError, OSError, ValueError):
            self.fail(field, "is not a representable time")
            return
        if when < EARLIEST:
            self.fail(field, f"{when.isoformat()} is before {EARLIEST.date()}", "BAD_TIME")
        if when > self.latest:
            self.fail(field, f"{when.isoformat()} is in the future (limit {self.latest.isoformat()})", "FUTURE_TIME")

    def date(self, value: str, field: str, *, required: bool = False) -> None:
        if not value:
            if required:
                self.fail(field, "is required", "MISSING_FIELD")
            return
        if self.strict and not value.isascii():
            self.pattern(value, self.numbers.date, field, "a date (YYYY-MM-DD)")  # names the code point
        try:
            if not self.numbers.date.fullmatch(value):
                raise ValueError(value)
            date.fromisoformat(value)
        except ValueError:
            self.fail(field, f"{value[:40]!r} is not a date (YYYY-MM-DD)")

    def documents(self, docs: Iterable[records_pb2.DocumentRef], field: str) -> None:
        for i, doc in enumerate(docs):
            self.identifier(doc.type, f"{field}[{i}].type", limit=32)
            self.identifier(doc.number, f"{field}[{i}].number", limit=128)


def _check_quantity(q: records_pb2.Quantity, field: str, strict: bool) -> None:
    amount = q.amount
    if not (_NUMBERS_2 if strict else _NUMBERS_1).positive_decimal.fullmatch(amount):
        where = ""
        if strict and not amount.isascii():
            at = _first_non_ascii(amount)
            where = f": {code_point(amount[at])} at position {at} is not an ASCII digit"
        raise InvalidRecord(
            f"{field}.amount: {amount[:40]!r} is not a positive decimal ({'ASCII ' if strict else ''}digits, "
            f"optional '.', no sign or exponent){where}",
            reason="INVALID_QUANTITY",
            field=f"{field}.amount",
        )
    # The regex admits only unsigned decimals, so "greater than zero" means "has a non-zero digit".
    if not _NONZERO_DIGIT.search(q.amount):
        raise InvalidRecord(
            f"{field}.amount: must be greater than zero", reason="INVALID_QUANTITY", field=f"{field}.amount"
        )
    if not _UNIT.fullmatch(q.unit):
        raise InvalidRecord(
            f"{field}.unit: {q.unit[:20]!r} is not a UN/ECE Rec 20 unit code (e.g. KGM, LTR, H87)",
            reason="INVALID_UNIT",
            field=f"{field}.unit",
        )


def validate_record(
    record: records_pb2.Record,
    now: datetime,
    *,
    max_skew: timedelta = DEFAULT_MAX_SKEW,
    rules: int = CURRENT,
) -> None:
    """Check one record on its own (no log state). `now` is the server's clock at admission,
    or the entry's received_at when a verifier re-checks; `rules` is the version the log states
    at genesis (ledger/core/rules.py), so a log written under rules 1 is judged as it was written.
    Rules 2 adds: amounts, measurements, dates, SSCCs and GLNs in ASCII digits only; no control,
    invisible or direction-changing character in any text, all text in Unicode NFC, and
    identifiers free of odd spaces (INVALID_CHARACTERS, NOT_NFC, naming field and code point).
    Raises InvalidRecord."""
    c = _Checker(now, max_skew, rules)
    c.pattern(record.record_id, _RECORD_ID, "record_id", "a record id (1-128 printable ASCII characters, no spaces)")
    c.participant(record.submitter, "submitter")
    c.time(record.created_at, "created_at")
    kind = record_kind(record)
    if not kind:
        c.fail("body", "no record body is set (e.g. shipment, production_run)", "MISSING_FIELD")
    _BODY_CHECKS[kind](c, getattr(record, kind), kind)


def _material_received(c: _Checker, m: records_pb2.MaterialReceived, p: str) -> None:
    c.lot(m.lot, f"{p}.lot")
    c.participant(m.supplier, f"{p}.supplier")
    c.identifier(m.supplier_lot_code, f"{p}.supplier_lot_code", limit=64)
    c.quantity(m.quantity, f"{p}.quantity")
    c.time(m.received_at, f"{p}.received_at")
    c.location(m.location, f"{p}.location")
    c.documents(m.documents, f"{p}.documents")
    c.date(m.expiry_date, f"{p}.expiry_date")
    c.text(m.product_description, f"{p}.product_description", required=False, lines=True)


def _production_run(c: _Checker, m: records_pb2.ProductionRun, p: str) -> None:
    c.identifier(m.run_id, f"{p}.run_id")
    c.lots(m.inputs, f"{p}.inputs")
    c.lots(m.outputs, f"{p}.outputs")
    inputs = {lot_key(i.lot) for i in m.inputs}
    for i, out in enumerate(m.outputs):
        if lot_key(out.lot) in inputs:
            c.fail(f"{p}.outputs[{i}].lot", "a lot cannot be both an input and an output of one run")
    c.date(m.manufactured_on, f"{p}.manufactured_on", required=True)
    c.date(m.expiry_date, f"{p}.expiry_date")
    c.identifier(m.formula_id, f"{p}.formula_id", required=False, limit=64)
    c.location(m.location, f"{p}.location")
    c.time(m.started_at, f"{p}.started_at", required=False)
    c.time(m.completed_at, f"{p}.completed_at")
    c.text(m.product_description, f"{p}.product_description", required=False, lines=True)


def _quality_check(c: _Checker, m: records_pb2.QualityCheck, p: str) -> None:
    c.lot(m.lot, f"{p}.lot")
    c.text(m.check_name, f"{p}.check_name", limit=128)
    if m.result not in (records_pb2.QC_RESULT_PASS, records_pb2.QC_RESULT_FAIL, records_pb2.QC_RESULT_HOLD):
        c.fail(f"{p}.result", "must be QC_RESULT_PASS, QC_RESULT_FAIL or QC_RESULT_HOLD", "MISSING_FIELD")
    for i, ms in enumerate(m.measurements):
        c.text(ms.name, f"{p}.measurements[{i}].name", limit=128)
        c.pattern(ms.value, c.numbers.decimal, f"{p}.measurements[{i}].value", "a decimal number")
        c.identifier(ms.unit, f"{p}.measurements[{i}].unit", required=False, limit=16)
    c.identifier(m.spec_reference, f"{p}.spec_reference", required=False)
    c.text(m.signed_off_by, f"{p}.signed_off_by", limit=128)
    c.time(m.checked_at, f"{p}.checked_at")


def _shipment(c: _Checker, m: records_pb2.Shipment, p: str) -> None:
    c.identifier(m.shipment_id, f"{p}.shipment_id")
    c.lots(m.lots, f"{p}.lots")
    c.participant(m.from_participant, f"{p}.from_participant")
    c.location(m.from_location, f"{p}.from_location", required=False)
    c.participant(m.to_participant, f"{p}.to_participant")
    c.location(m.to_location, f"{p}.to_location", required=False)
    c.time(m.shipped_at, f"{p}.shipped_at")
    c.documents(m.documents, f"{p}.documents")


def _receipt(c: _Checker, m: records_pb2.Receipt, p: str) -> None:
    c.identifier(m.shipment_id, f"{p}.shipment_id")
    if c.strict:  # rules 3 names a shipment by owner and id: the owner is required
        c.participant(m.shipment_owner, f"{p}.shipment_owner", required=c.rules >= RULES_3)
    c.lots(m.lots, f"{p}.lots")
    c.participant(m.participant, f"{p}.participant")
    c.location(m.location, f"{p}.location", required=False)
    c.time(m.received_at, f"{p}.received_at")


def _scan(c: _Checker, m: records_pb2.Scan, p: str) -> None:
    c.identifier(m.device_id, f"{p}.device_id", limit=64)
    # GS1 data carries the group separator (ASCII 29) between fields: it is data here.
    c.text(m.raw_data, f"{p}.raw_data", limit=4096, allow="\x1d")
    g = m.gs1
    if g.gtin:
        c.gtin(g.gtin, f"{p}.gs1.gtin")
    if g.lot:
        c.pattern(g.lot, _GS1_LOT, f"{p}.gs1.lot", "a GS1 lot number")
    if g.sscc:
        c.sscc(g.sscc, f"{p}.gs1.sscc")
    if not (g.gtin or g.sscc):
        c.fail(f"{p}.gs1", "a scan needs a GTIN or an SSCC", "MISSING_FIELD")
    c.date(g.expiry_date, f"{p}.gs1.expiry_date")
    c.date(g.production_date, f"{p}.gs1.production_date")
    if g.HasField("net_weight"):
        c.quantity(g.net_weight, f"{p}.gs1.net_weight")
    if m.meaning == records_pb2.SCAN_MEANING_UNSPECIFIED or m.meaning not in records_pb2.ScanMeaning.values():
        c.fail(f"{p}.meaning", "must be RECEIVE, CONSUME, PRODUCE or SHIP", "MISSING_FIELD")
    c.location(m.location, f"{p}.location")
    c.time(m.scanned_at, f"{p}.scanned_at")


def _formula_revision(c: _Checker, m: records_pb2.FormulaRevision, p: str) -> None:
    c.identifier(m.formula_id, f"{p}.formula_id", limit=64)
    if m.version == 0:
        c.fail(f"{p}.version", "must be 1 or more", "MISSING_FIELD")
    if not m.components:
        c.fail(f"{p}.components", "needs at least one component", "MISSING_FIELD")
    for i, comp in enumerate(m.components):
        f = f"{p}.components[{i}]"
        if bool(comp.gtin) == bool(comp.item_code):
            c.fail(f, "set exactly one of gtin and item_code")
        if comp.gtin:
            c.gtin(comp.gtin, f"{f}.gtin")
        else:
            c.pattern(comp.item_code, _ITEM_CODE, f"{f}.item_code", "an item code")
        c.quantity(comp.quantity, f"{f}.quantity")
    c.text(m.change_note, f"{p}.change_note", limit=4096, lines=True)
    c.text(m.product_description, f"{p}.product_description", required=False, lines=True)


def _correction(c: _Checker, m: records_pb2.Correction, p: str) -> None:
    c.pattern(m.corrects_record_id, _RECORD_ID, f"{p}.corrects_record_id", "a record id")
    if c.strict:
        c.participant(m.corrects_submitter, f"{p}.corrects_submitter", required=False)
    c.text(m.reason, f"{p}.reason", limit=4096, lines=True)
    corrected = m.corrected
    kind = record_kind(corrected)
    if not kind:
        c.fail(f"{p}.corrected", "must carry the corrected record body", "MISSING_FIELD")
    if kind in ("correction", "participant_registered", "key_revoked", "location_registered", "recall_opened"):
        c.fail(f"{p}.corrected", f"a {kind} record cannot be corrected; append a new one")
    if corrected.record_id and corrected.record_id != m.corrects_record_id:
        c.fail(f"{p}.corrected.record_id", "must be empty or equal corrects_record_id")
    _BODY_CHECKS[kind](c, getattr(corrected, kind), f"{p}.corrected.{kind}")


def _aggregation(c: _Checker, m: records_pb2.Aggregation, p: str) -> None:
    c.sscc(m.parent_sscc, f"{p}.parent_sscc")
    if m.action not in (records_pb2.AGGREGATION_ACTION_ADD, records_pb2.AGGREGATION_ACTION_DELETE):
        c.fail(f"{p}.action", "must be ADD or DELETE", "MISSING_FIELD")
    c.lots(m.lots, f"{p}.lots", required=not m.child_ssccs)
    for i, s in enumerate(m.child_ssccs):
        c.sscc(s, f"{p}.child_ssccs[{i}]")
    c.location(m.location, f"{p}.location", required=False)
    c.time(m.aggregated_at, f"{p}.aggregated_at")


def _participant_registered(c: _Checker, m: records_pb2.ParticipantRegistered, p: str) -> None:
    c.participant(m.participant_id, f"{p}.participant_id")
    if c.rules >= RULES_3 and m.participant_id == RESERVED_PARTICIPANT:
        # SSCC shipments are `shipment:sscc/<sscc>`, beside `shipment:<owner>/<id>` (rules 3)
        c.fail(f"{p}.participant_id", f"{RESERVED_PARTICIPANT!r} is reserved (it names SSCC shipments)", "RESERVED_ID")
    if m.role not in records_pb2.Role.values() or m.role == records_pb2.ROLE_UNSPECIFIED:
        c.fail(f"{p}.role", "must be a role (ROLE_ADMIN, ROLE_SUPPLIER, ...)", "MISSING_FIELD")
    if len(m.public_key) != 32:
        c.fail(f"{p}.public_key", f"must be a raw 32-byte Ed25519 key, got {len(m.public_key)} bytes", "INVALID_KEY")
    try:
        VerifyKey.from_raw(m.public_key)
    except InvalidKey as e:
        c.fail(f"{p}.public_key", str(e), "INVALID_KEY")
    c.text(m.business_name, f"{p}.business_name", required=False)
    c.text(m.phone, f"{p}.phone", required=False, limit=64)
    c.text(m.address, f"{p}.address", required=False, lines=True)
    c.gln(m.gln, f"{p}.gln")


def _key_revoked(c: _Checker, m: records_pb2.KeyRevoked, p: str) -> None:
    c.pattern(m.key_id, _KEY_ID, f"{p}.key_id", "a key id (64 lowercase hex digits)")
    c.text(m.reason, f"{p}.reason", limit=1024, lines=True)


def _location_registered(c: _Checker, m: records_pb2.LocationRegistered, p: str) -> None:
    c.location(m.location_id, f"{p}.location_id")
    c.participant(m.participant_id, f"{p}.participant_id")
    c.text(m.name, f"{p}.name")
    c.text(m.address, f"{p}.address", required=False, lines=True)
    c.text(m.phone, f"{p}.phone", required=False, limit=64)
    c.gln(m.gln, f"{p}.gln")


def _recall_opened(c: _Checker, m: records_pb2.RecallOpened, p: str) -> None:
    c.identifier(m.recall_id, f"{p}.recall_id")
    if not m.lots:
        c.fail(f"{p}.lots", "name at least one lot", "MISSING_FIELD")
    for i, lot in enumerate(m.lots):
        c.lot(lot, f"{p}.lots[{i}]")
    c.text(m.reason, f"{p}.reason", limit=4096, lines=True)


_BODY_CHECKS: dict[str, Callable[[_Checker, Any, str], None]] = {
    "material_received": _material_received,
    "production_run": _production_run,
    "quality_check": _quality_check,
    "shipment": _shipment,
    "receipt": _receipt,
    "scan": _scan,
    "formula_revision": _formula_revision,
    "correction": _correction,
    "aggregation": _aggregation,
    "participant_registered": _participant_registered,
    "key_revoked": _key_revoked,
    "location_registered": _location_registered,
    "recall_opened": _recall_opened,
}
