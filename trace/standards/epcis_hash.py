"""GS1 identifiers in EPCIS events, and the CBV 2.0 event hash ID (section 8.9): pure, no I/O.

Identifiers come as EPC URNs (`urn:epc:id:sgtin:`, `urn:epc:class:lgtin:`, `urn:epc:id:sscc:`,
`urn:epc:id:sgln:`, `urn:epc:id:pgln:`, `urn:epc:id:gdti:`) or as GS1 Digital Link URIs on any
domain. Both normalise to one canonical Digital Link URI on `https://id.gs1.org/`; the URN carries
the company prefix split, so the GS1 key is rebuilt from its parts with its check digit.

The event hash follows CBV 2.0 section 8.9 as the reference implementation
(github.com/RalphTro/epcis-event-hash-generator) computes it: a pre-hash string of the event
type, then the standard fields in the canonical order (lists sorted, times in UTC at millisecond
precision, identifiers as canonical Digital Link URIs, CBV values as web URIs), then the user
extensions sorted; `ni:///sha-256;<hex>?ver=CBV2.0` of its UTF-8 bytes. recordTime and eventID
are left out. The published examples are the test vectors (tests/epcis/test_event_hash.py).
"""

from __future__ import annotations

import functools
import hashlib
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from lotledger.ledger.errors import InvalidRecord

DL = "https://id.gs1.org/"
CBV = "https://ref.gs1.org/cbv/"
VOC = "https://ref.gs1.org/voc/"

# CBV vocabularies: field -> the web-URI stem a bare word or a CBV 1.x URN expands to.
_VOCAB = {
    "bizStep": ("BizStep-", "urn:epcglobal:cbv:bizstep:"),
    "disposition": ("Disp-", "urn:epcglobal:cbv:disp:"),
    "bizTransactionType": ("BTT-", "urn:epcglobal:cbv:btt:"),
    "sourceDestType": ("SDT-", "urn:epcglobal:cbv:sdt:"),
    "reason": ("ER-", "urn:epcglobal:cbv:er:"),
}
_URN_STEMS = {urn: CBV + stem for stem, urn in _VOCAB.values()}
_BARE = re.compile(r"[A-Za-z_]+")


def check_digit(body: str) -> str:
    """The GS1 mod-10 check digit for the digits of a key without it (weights 3, 1, 3... from
    the last digit leftwards; by slices, as every identifier of an import passes here)."""
    total = 3 * sum(map(int, body[::-1][::2])) + sum(map(int, body[::-1][1::2]))
    return str((10 - total % 10) % 10)


def _split(rest: str, parts: int) -> list[str] | None:
    fields = rest.split(".")
    return fields if len(fields) == parts and fields[0].isdigit() and 6 <= len(fields[0]) <= 12 else None


def urn_to_dl(uri: str) -> str | None:
    """The canonical Digital Link URI of an EPC URN, or None for anything else."""
    if not uri.startswith("urn:epc:"):
        return None
    scheme, _, rest = uri[8:].rpartition(":")
    if scheme in ("id:sgtin", "class:lgtin"):
        f = _split(rest, 3)
        if f is None or not f[1].isdigit() or len(f[0]) + len(f[1]) != 13 or not f[2]:
            return None
        body = f[1][:1] + f[0] + f[1][1:]
        ai = "21" if scheme == "id:sgtin" else "10"
        return f"{DL}01/{body}{check_digit(body)}/{ai}/{_dl_escape(f[2])}"
    if scheme == "id:sscc":
        f = _split(rest, 2)
        if f is None or not f[1].isdigit() or len(f[0]) + len(f[1]) != 17:
            return None
        body = f[1][:1] + f[0] + f[1][1:]
        return f"{DL}00/{body}{check_digit(body)}"
    if scheme == "id:sgln":
        f = _split(rest, 3)
        if f is None or not f[1].isdigit() and f[1] or len(f[0]) + len(f[1]) != 12:
            return None
        body = f[0] + f[1]
        ext = "" if f[2] in ("", "0") else f"/254/{_dl_escape(f[2])}"
        return f"{DL}414/{body}{check_digit(body)}{ext}"
    if scheme == "id:pgln":
        f = _split(rest, 2)
        if f is None or len(f[0]) + len(f[1]) != 12:
            return None
        body = f[0] + f[1]
        return f"{DL}417/{body}{check_digit(body)}"
    if scheme == "id:gdti":
        f = _split(rest, 3)
        if f is None or len(f[0]) + len(f[1]) != 12:
            return None
        body = f[0] + f[1]
        return f"{DL}253/{body}{check_digit(body)}{f[2]}"
    return None


def _dl_escape(value: str) -> str:
    # GS1 Digital Link table 7-1 characters an EPC URN may carry unescaped.
    for ch, esc in (("!", "%21"), ("(", "%28"), (")", "%29"), ("*", "%2A"), ("+", "%2B"), (",", "%2C"), (":", "%3A")):
        value = value.replace(ch, esc)
    return value


_DL_PATH = re.compile(r"https?://[^/]+(/.*?)?/((?:00|01|253|414|417)/[^?#]*)(?:[?#].*)?")


def dl_canonical(uri: str) -> str | None:
    """A GS1 Digital Link URI on any domain as its canonical form on id.gs1.org (no query)."""
    m = _DL_PATH.fullmatch(uri)
    return DL + m.group(2) if m else None


@functools.lru_cache(maxsize=1 << 16)
def canonical_id(uri: str) -> str:
    """An identifier in its canonical Digital Link form; other URIs unchanged. Cached: an
    import canonicalizes the same locations, parties and lots again and again."""
    return urn_to_dl(uri) or dl_canonical(uri) or uri


def vocab(field: str, value: str) -> str:
    """A CBV value (bare word or CBV 1.x URN) as its CBV 2.0 web URI; others unchanged."""
    stem, urn = _VOCAB[field]
    if value.startswith(urn):
        return CBV + stem + value[len(urn) :]
    if _BARE.fullmatch(value):
        return CBV + stem + value
    return value


def vocab_word(field: str, value: str) -> str:
    """The bare CBV word of a value in any of its three forms ("" if it is not a CBV value)."""
    full = vocab(field, value)
    stem = CBV + _VOCAB[field][0]
    return full[len(stem) :] if full.startswith(stem) else ""


# ---- time -------------------------------------------------------------------------------------

# re.ASCII: \d would take any Unicode digit (Arabic-Indic, fullwidth), and int() reads them.
_TIME = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})", re.ASCII)


def parse_time(value: Any, field: str) -> tuple[int, int]:
    """An ISO 8601 date-time with a zone as (unix seconds, nanos). Raises InvalidRecord."""
    m = _TIME.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        raise InvalidRecord(f"{field}: {str(value)[:60]!r} is not a date-time with a zone", reason="EPCIS_BAD_TIME")
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    try:
        when = datetime.fromisoformat(m.group(1) + zone)
    except ValueError as e:
        raise InvalidRecord(f"{field}: {value!r}: {e}", reason="EPCIS_BAD_TIME") from e
    return int(when.timestamp()), int((m.group(2) or "0").ljust(9, "0"))


def format_time(seconds: int, nanos: int) -> str:
    """UTC, `Z`, milliseconds, or more digits only when the time has them."""
    base = (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")
    frac = f"{nanos:09d}"
    frac = frac[:3] if frac[3:] == "000000" else frac[:6] if frac[6:] == "000" else frac
    return f"{base}.{frac}Z"


def _hash_time(value: str) -> str:
    try:
        seconds, nanos = parse_time(value, "time")
    except InvalidRecord:
        return value
    return format_time(seconds, nanos - nanos % 1_000_000)[:-5] + f".{nanos // 1_000_000:03d}Z"


# ---- the event hash ---------------------------------------------------------------------------

_QTY = [("epcClass", None), ("quantity", None), ("uom", None)]
# The CBV 2.0 canonical property order; a nested order says how a field's children are ordered.
_ORDER: list[tuple[str, Any]] = [
    ("eventTime", None),
    ("eventTimeZoneOffset", None),
    ("epcList", "epc"),
    ("parentID", None),
    ("inputEPCList", "epc"),
    ("childEPCs", "epc"),
    ("quantityList", _QTY),
    ("childQuantityList", _QTY),
    ("inputQuantityList", _QTY),
    ("outputEPCList", "epc"),
    ("outputQuantityList", _QTY),
    ("action", None),
    ("transformationID", None),
    ("bizStep", None),
    ("disposition", None),
    ("persistentDisposition", [("set", None), ("unset", None)]),
    ("readPoint", [("id", None)]),
    ("bizLocation", [("id", None)]),
    ("bizTransactionList", ("type", "bizTransaction")),
    ("sourceList", ("type", "source")),
    ("destinationList", ("type", "destination")),
]
_STANDARD = {name for name, _ in _ORDER}
_IGNORED = {"type", "@context", "eventID", "recordTime", "comment", "rdfs:comment", "sensorElementList"}
_VOCAB_FIELDS = {"bizStep": "bizStep", "disposition": "disposition", "set": "disposition", "unset": "disposition"}
_TYPE_VOCAB = {"bizTransaction": "bizTransactionType", "source": "sourceDestType", "destination": "sourceDestType"}


def _number(text: str) -> str:
    try:
        number = float(text)
    except ValueError:
        return text
    if number != number or number in (float("inf"), float("-inf")):
        return text
    return str(int(number)) if number == int(number) else str(number)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value).strip()
    return canonical_id(_number(text))


class _Namespaces:
    def __init__(self, context: Any):
        self.prefixes: dict[str, str] = {"gs1": VOC, "cbv": CBV, "epcis": "https://ref.gs1.org/epcis/"}
        for item in context if isinstance(context, list) else [context]:
            if isinstance(item, dict):
                self.prefixes.update({k: v for k, v in item.items() if isinstance(v, str)})

    def key(self, name: str) -> str:
        prefix, sep, local = name.partition(":")
        if sep and prefix in self.prefixes:
            return "{" + self.prefixes[prefix] + "}" + local
        return name


def _extension(ns: _Namespaces, key: str, value: Any) -> list[str]:
    """Pre-hash strings of one user extension (a list gives one per item)."""
    name = ns.key(key)
    if isinstance(value, list):
        return [s for item in value for s in _extension(ns, key, item)]
    if isinstance(value, dict):
        text = f"={_value(value['#text'])}" if "#text" in value else ""
        children = sorted(s for k, v in value.items() if not k.startswith(("@", "#")) for s in _extension(ns, k, v))
        return [name + text + "".join(children)]
    return [f"{name}={_value(value)}"]


def prehash(event: dict[str, Any], context: Any = None) -> str:
    """The CBV 2.0 section 8.9 pre-hash string of one event. Raises InvalidRecord for an event
    without a type."""
    kind = event.get("type")
    if not isinstance(kind, str) or not kind:
        raise InvalidRecord("an EPCIS event needs a type", reason="EPCIS_MALFORMED", field="type")
    ns = _Namespaces(event.get("@context", context))
    out = [f"eventType={kind}"]
    trailing: list[str] = []
    for name, order in _ORDER:
        if name not in event:
            continue
        value = event[name]
        if order is None:
            if name == "eventTime":
                out.append(f"{name}={_hash_time(str(value))}")
            elif name in _VOCAB_FIELDS:
                out.append(f"{name}={canonical_id(vocab(_VOCAB_FIELDS[name], str(value)))}")
            else:
                out.append(f"{name}={_value(value)}")
        elif order == "epc":
            items = sorted(f"epc={_value(v)}" for v in value or [])
            if items:
                out.append(name + "".join(items))
        elif order is _QTY:
            items = sorted(
                "quantityElement" + "".join(f"{k}={_value(q[k])}" for k, _ in _QTY if k in q) for q in value or []
            )
            if items:
                out.append(name + "".join(items))
        elif isinstance(order, tuple):  # bizTransactionList, sourceList, destinationList
            type_key, value_key = order
            items = []
            for item in value or []:
                text = ""
                if item.get(type_key):
                    text += f"type={vocab(_TYPE_VOCAB[value_key], str(item[type_key]))}"
                text += f"{value_key}={_value(item.get(value_key, ''))}"
                items.append(text)
            if items:
                out.append(name + "".join(sorted(items)))
        else:  # readPoint, bizLocation, persistentDisposition
            sub = [k for k, _ in order]
            parts = []
            for k in sub:
                if k not in value:
                    continue
                vals = value[k] if isinstance(value[k], list) else [value[k]]
                field = _VOCAB_FIELDS.get(k)
                parts += sorted(f"{k}={vocab(field, str(v)) if field else _value(v)}" for v in vals)
            if parts:
                out.append(name + "".join(parts))
            extra = sorted(s for k, v in value.items() if k not in sub for s in _extension(ns, k, v))
            if extra:
                trailing.append(name + "".join(extra))
    for key, value in event.items():
        if key in _STANDARD or key in _IGNORED:
            continue
        trailing += _extension(ns, key, value)
    return "".join(out) + "".join(sorted(trailing))


def event_hash_id(event: dict[str, Any], context: Any = None) -> str:
    """`ni:///sha-256;<hex>?ver=CBV2.0` of the event's pre-hash string."""
    digest = hashlib.sha256(prehash(event, context).encode("utf-8")).hexdigest()
    return f"ni:///sha-256;{digest}?ver=CBV2.0"
