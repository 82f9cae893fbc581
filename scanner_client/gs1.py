"""GS1 barcode data as scanners deliver it, parsed with biip (no hand-written AI tables).

Keyboard-wedge scanners type what they read: GS1-128 and GS1 DataMatrix/QR with or without
their symbology identifier (`]C1`, `]d2`, `]Q3`), GS1 Digital Link URIs, plain GTINs and SSCCs,
and the human-readable form `(01)...(10)...` when someone keys it in. The group separator
(ASCII 29) that ends a variable-length field often arrives as some other character (many
scanners are set to send `|` or `~`), or not at all. Without it a variable-length lot
swallows whatever follows; what can be recognised (a date AI at the end of a lot) is refused
with a message that says so, because a wrong lot code in a signed, append-only ledger is
worse than a scan refused at the station.

Everything refused here is refused before signing: it never reaches the spool or the server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from biip import ParseConfig, ParseError, parse
from biip.gs1_element_strings import GS1ElementString
from biip.gs1_messages import GS1Message

GS = "\x1d"


class ScanRefused(ValueError):
    """A scan the station will not sign. `reason` is stable for machines."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ParsedScan:
    raw: str
    form: str  # "GS1 element string", "human-readable", "Digital Link", "GTIN", "SSCC"
    gtin: str = ""  # always GTIN-14
    lot: str = ""
    expiry_date: str = ""  # ISO 8601
    production_date: str = ""
    sscc: str = ""
    serial: str = ""
    net_weight_kg: str = ""  # decimal string, from AI 310n
    count: int = 0  # AI 30 or 37

    @property
    def lot_key(self) -> str:
        """The lot key of DESIGN section 3, or "" when the scan names no GTIN + lot."""
        from lotledger.ledger.core.validation import lot_key
        from lotledger.v1 import records_pb2

        return lot_key(records_pb2.LotId(gtin=self.gtin, lot=self.lot)) if self.gtin and self.lot else ""


# A variable-length field that ends in a date AI followed by a valid YYMMDD most likely ran
# into the next element string because the separator was lost.
_SWALLOWED_DATE = re.compile(r"(1[1-7])(\d{2})(0[1-9]|1[0-2])(\d{2})$", re.ASCII)
_DATE_AIS = {"11": "production date", "13": "packaging date", "15": "best before", "16": "sell by", "17": "expiry"}


def _iso(d: date | None) -> str:
    return d.isoformat() if d else ""


def parse_scan(raw: str, separator: str = "") -> ParsedScan:
    """Parse one scan. `separator`: the character this scanner sends for the group separator
    (besides ASCII 29 itself). Raises ScanRefused."""
    value = raw.rstrip("\r\n")
    if not value.strip():
        raise ScanRefused("empty scan", "EMPTY")
    if separator:
        if len(separator) != 1 or separator.isalnum():
            raise ScanRefused(f"separator {separator!r} must be one non-alphanumeric character", "BAD_CONFIG")
        value = value.replace(separator, GS)
    if value[:2] in ("]E", "]I") and value[3:].isdigit():  # EAN/UPC or ITF-14 with its symbology id
        value = value[3:]
    if value.isdigit() and len(value) in (8, 12, 13, 14):
        return _plain_gtin(raw, value)
    if value.isdigit() and len(value) == 18:
        return _fields(raw, "SSCC", _element_strings("00" + value))
    if value.startswith("("):
        try:
            message = GS1Message.parse_hri(value)
        except ParseError as e:
            raise ScanRefused(f"unreadable human-readable GS1 data: {e}", _reason(str(e))) from e
        if value.count("(") != len(message.element_strings):  # biip skips what it cannot read
            read = {f"({es.ai.ai})" for es in message.element_strings}
            unread = [f"({ai})" for ai in re.findall(r"\(([^)]*)\)", value) if f"({ai})" not in read]
            raise ScanRefused(f"unknown or unreadable application identifier {', '.join(unread)}", "UNKNOWN_AI")
        return _fields(raw, "human-readable", message.element_strings)
    if value.lower().startswith(("http://", "https://")):
        try:
            result = parse(value)
        except (ParseError, IndexError, ValueError, KeyError) as e:
            raise ScanRefused(f"unreadable Digital Link: {value[:60]!r}", "UNREADABLE") from e
        if result.gs1_digital_link_uri is None:
            raise ScanRefused(f"not a GS1 Digital Link URI: {result.gs1_digital_link_uri_error}", "UNREADABLE")
        return _fields(raw, "Digital Link", result.gs1_digital_link_uri.element_strings)
    return _fields(raw, "GS1 element string", _element_strings(value))


def _reason(error: str) -> str:
    text = error.lower()
    if "check digit" in text:
        return "BAD_CHECK_DIGIT"
    if "application identifier" in text:
        return "UNKNOWN_AI"
    return "UNREADABLE"


def _element_strings(value: str) -> list[GS1ElementString]:
    try:
        result = parse(value, config=ParseConfig(separator_chars=[GS]))
    except ParseError as e:
        raise ScanRefused(f"unreadable scan: {e}", _reason(str(e))) from e
    except (IndexError, ValueError, KeyError) as e:  # biip on a bare ']' (found by fuzzing), and the like
        raise ScanRefused(f"unreadable scan: {value[:40]!r}", "UNREADABLE") from e
    if result.gs1_message is None:
        error = str(result.gs1_message_error or "no GS1 element strings found")
        raise ScanRefused(f"not GS1 data: {error}", _reason(error))
    return list(result.gs1_message.element_strings)


def _plain_gtin(raw: str, digits: str) -> ParsedScan:
    result = parse(digits)
    if result.gtin is None:
        raise ScanRefused(f"GTIN {digits}: {result.gtin_error}", _reason(str(result.gtin_error)))
    return ParsedScan(raw, "GTIN", gtin=result.gtin.value.zfill(14))


def _fields(raw: str, form: str, element_strings: list[GS1ElementString]) -> ParsedScan:
    found: dict[str, str] = {}
    count = 0
    for es in element_strings:
        ai = es.ai.ai
        if es.gtin_error or es.sscc_error:
            problem = es.gtin_error or es.sscc_error
            raise ScanRefused(f"({ai}) {es.value}: {problem}", _reason(str(problem)))
        if ai in found and found[ai] != es.value:
            raise ScanRefused(f"({ai}) appears twice with different values", "AMBIGUOUS")
        if ai in ("01", "02"):
            found["gtin"] = es.value
        elif ai == "00":
            found["sscc"] = es.value
        elif ai == "10":
            found["lot"] = es.value
        elif ai == "17":
            found["expiry"] = _iso(es.date)
        elif ai == "11":
            found["production"] = _iso(es.date)
        elif ai == "21":
            found["serial"] = es.value
        elif ai.startswith("310") and es.decimal is not None:
            if not es.decimal:
                raise ScanRefused(
                    f"({ai}) net weight {es.value}: a weight of zero cannot be received or used", "ZERO_QUANTITY"
                )
            found["net_weight"] = format(es.decimal, "f")
        elif ai in ("30", "37"):
            if not es.value.isdigit():  # an empty count (found by fuzzing: the scan "30")
                raise ScanRefused(f"({ai}) count {es.value!r} is not a number", "UNREADABLE")
            count = int(es.value)
            if not count:
                raise ScanRefused(
                    f"({ai}) count {es.value}: a count of zero cannot be received or used", "ZERO_QUANTITY"
                )
        found[ai] = es.value
    for ai, what in (("10", "lot"), ("21", "serial")):
        if ai in found and (m := _SWALLOWED_DATE.search(found[ai])) and not any(k in found for k in _DATE_AIS):
            raise ScanRefused(
                f"the {what} {found[ai]!r} ends with what reads as ({m.group(1)}) {m.group(0)[2:]}, "
                f"a {_DATE_AIS.get(m.group(1), 'date')}: the group separator after the {what} was probably lost. "
                "Set the scanner to send one, or tell this station which character it sends instead (--separator)",
                "MISSING_SEPARATOR",
            )
    if not (found.get("gtin") or found.get("sscc")):
        raise ScanRefused("the scan carries neither a GTIN (01/02) nor an SSCC (00)", "NO_IDENTITY")
    return ParsedScan(
        raw,
        form,
        gtin=found.get("gtin", ""),
        lot=found.get("lot", ""),
        expiry_date=found.get("expiry", ""),
        production_date=found.get("production", ""),
        sscc=found.get("sscc", ""),
        serial=found.get("serial", ""),
        net_weight_kg=found.get("net_weight", ""),
        count=count,
    )
