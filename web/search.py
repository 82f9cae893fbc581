"""What a search box entry means: a lot key, a GTIN with a lot, a scanned barcode, or else a
supplier's lot code. Pure: the view asks the ledger only for what this could not decide.

Barcodes go through the scanner client's GS1 parser (biip underneath), so the web app reads a
scan exactly as a station on the floor would, check digits and all.
"""

from __future__ import annotations

from dataclasses import dataclass

from lotledger.ledger.core.validation import lot_key, parse_lot_key
from lotledger.ledger.errors import InvalidRecord
from lotledger.scanner_client.gs1 import GS, ScanRefused, parse_scan
from lotledger.v1 import records_pb2


@dataclass(frozen=True)
class Query:
    """`lot`: a lot key to open; else `supplier_lot_code` to resolve; `problem` says why an
    entry that looked like a barcode or GTIN was not usable."""

    lot: str = ""
    supplier_lot_code: str = ""
    problem: str = ""
    how: str = ""


def from_gtin(gtin: str, lot: str) -> Query:
    """A GTIN (8, 12, 13 or 14 digits, check digit verified) and a lot code."""
    gtin, lot = gtin.strip(), lot.strip()
    if not gtin or not lot:
        return Query(problem="give both a GTIN and a lot code")
    try:
        parsed = parse_scan(f"(01){gtin.zfill(14)}(10){lot}")
    except ScanRefused as e:
        return Query(problem=f"GTIN {gtin!r} with lot {lot!r}: {e}")
    return Query(lot=lot_key(records_pb2.LotId(gtin=parsed.gtin, lot=parsed.lot)), how="GTIN and lot")


def classify(text: str) -> Query:
    """One search box entry. Order matters: a lot key is also a Digital Link path, and a
    supplier's lot code can be anything, so it is what is left."""
    text = text.strip().replace("\\x1d", GS)
    if not text:
        return Query(problem="type a lot key, a GTIN and lot, a barcode or a supplier lot code")
    try:
        parse_lot_key(text)
        return Query(lot=text, how="lot key")
    except InvalidRecord:
        pass
    looks_like_barcode = text.startswith(("(", "]", "http://", "https://")) or (
        text[:2] in ("01", "02") and text[2:16].isdigit() and len(text) > 16
    )
    if looks_like_barcode or text.isdigit():
        try:
            scan = parse_scan(text)
        except ScanRefused as e:
            if looks_like_barcode:
                return Query(problem=f"barcode not readable: {e}")
        else:
            if scan.gtin and scan.lot:
                return Query(lot=lot_key(records_pb2.LotId(gtin=scan.gtin, lot=scan.lot)), how=f"barcode ({scan.form})")
            if looks_like_barcode:
                return Query(problem=f"the barcode ({scan.form}) names no lot: scan the one with the lot (AI 10)")
    return Query(supplier_lot_code=text, how="supplier lot code")
