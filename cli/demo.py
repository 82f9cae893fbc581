"""`lotledger demo`: a small, deterministic bakery supply chain, written through the real
append path (signed, validated, authorized, committed), so a newcomer has something to trace.

Suppliers deliver flour, milk and salt; the plant mixes dough and bakes bread and rolls; QA
signs off (the rolls fail and are shipped anyway); distributors pass bread on to shops; one
bread lot ships after its expiry; one shipment is still on the road. The participants' demo
keys are derived from public seeds: never use them for anything real.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

from lotledger.ledger.core.records import sign
from lotledger.ledger.log import Ledger
from lotledger.signing.keys import SigningKey
from lotledger.v1 import records_pb2 as r

FLOUR, MILK, SALT = "09520000000011", "09520000000028", "09520000000035"
BREAD, ROLLS = "09520000000042", "09520000000059"
START = datetime(2026, 10, 1, 6, 0, tzinfo=UTC)

PARTICIPANTS = [
    ("mill", r.ROLE_SUPPLIER, "Example Mill Ltd", "+1 555 0101", "1 Mill Road, Graintown"),
    ("dairy", r.ROLE_SUPPLIER, "Example Dairy Co-op", "+1 555 0102", "7 Meadow Lane, Cowley"),
    ("saltco", r.ROLE_SUPPLIER, "Example Salt Works", "+1 555 0103", "3 Shore Street, Brinehaven"),
    ("plant", r.ROLE_MANUFACTURER, "Example Bakery, plant 7", "+1 555 0107", "70 Oven Way, Crumbton"),
    ("qa", r.ROLE_QA, "Example Bakery QA lab", "+1 555 0108", "70 Oven Way, Crumbton"),
    ("dist-north", r.ROLE_DISTRIBUTOR, "North Foods Distribution", "+1 555 0201", "12 Depot Road, Northam"),
    ("dist-south", r.ROLE_DISTRIBUTOR, "South Fresh Logistics", "+1 555 0202", "9 Harbour Road, Southby"),
    ("shop-a", r.ROLE_CUSTOMER, "Corner Shop A", "+1 555 0301", "1 High Street, Northam"),
    ("cafe-d", r.ROLE_CUSTOMER, "Cafe D", "+1 555 0304", "4 Market Square, Northam"),
    ("shop-c", r.ROLE_CUSTOMER, "Shop C", "+1 555 0303", "3 Quay Street, Southby"),
]

LOCATIONS = [
    ("plant-7/dock", "plant", "Plant 7 receiving dock", "70 Oven Way, Crumbton", "+1 555 0170", "0952000000071"),
    ("plant-7/line-1", "plant", "Plant 7 mixing and baking line 1", "70 Oven Way, Crumbton", "", "0952000000088"),
    ("north/wh-1", "dist-north", "North Foods warehouse 1", "12 Depot Road, Northam", "+1 555 0211", ""),
    ("south/wh-1", "dist-south", "South Fresh warehouse 1", "9 Harbour Road, Southby", "", ""),
    ("shop-a", "shop-a", "Corner Shop A", "1 High Street, Northam", "", ""),
    ("cafe-d", "cafe-d", "Cafe D", "4 Market Square, Northam", "", ""),
    ("shop-c", "shop-c", "Shop C", "3 Quay Street, Southby", "", ""),
]


def demo_key(participant: str) -> SigningKey:
    return SigningKey.from_raw_seed(hashlib.sha256(f"lotledger-demo/{participant}".encode()).digest())


class _Writer:
    def __init__(self, ledger: Ledger, admin: SigningKey):
        self.ledger, self.admin = ledger, admin
        self.written = 0

    def add(self, record_id: str, submitter: str, when: datetime, key: SigningKey | None = None) -> r.Record:
        record = r.Record(record_id=f"demo/{record_id}", submitter=submitter)
        record.created_at.FromDatetime(when)
        self._pending = (record, key or demo_key(submitter))
        return record

    def commit(self) -> None:
        record, key = self._pending
        self.ledger.append(sign(record, key))
        self.written += 1


def _lot(gtin: str, lot: str) -> r.LotId:
    return r.LotId(gtin=gtin, lot=lot) if gtin.isdigit() else r.LotId(item_code=gtin, lot=lot)


def _q(amount: str, unit: str = "KGM") -> r.Quantity:
    return r.Quantity(amount=amount, unit=unit)


def write_demo(ledger: Ledger, admin: SigningKey) -> int:
    """Append the demo chain; returns the number of records written. Record ids are fixed,
    so running it twice adds nothing the second time."""
    w = _Writer(ledger, admin)
    t = START

    def at(hours: float) -> datetime:
        return t + timedelta(hours=hours)

    for pid, role, name, phone, address in PARTICIPANTS:
        reg = w.add(f"register/{pid}", "admin", at(0), admin).participant_registered
        reg.participant_id, reg.role, reg.public_key = pid, role, demo_key(pid).public.raw
        reg.business_name, reg.phone, reg.address = name, phone, address
        w.commit()
    # Location master data: what FSMA 204 location descriptions are made of (lotledger fsma-check).
    for loc, pid, name, address, phone, gln in LOCATIONS:
        rec = w.add(f"location/{loc}", "admin", at(0), admin).location_registered
        rec.location_id, rec.participant_id, rec.name = loc, pid, name
        rec.address, rec.phone, rec.gln = address, phone, gln
        w.commit()

    def receive(
        lot: str,
        gtin: str,
        supplier: str,
        supplier_lot: str,
        amount: str,
        unit: str,
        expiry: str,
        hours: float,
        desc: str,
    ) -> None:
        m = w.add(f"receive/{lot}", "plant", at(hours)).material_received
        m.lot.CopyFrom(_lot(gtin, lot))
        m.supplier, m.supplier_lot_code, m.location = supplier, supplier_lot, "plant-7/dock"
        m.quantity.CopyFrom(_q(amount, unit))
        m.received_at.FromDatetime(at(hours))
        m.expiry_date, m.product_description = expiry, desc
        m.documents.add(type="PO", number=f"PO-{lot}")
        w.commit()

    receive("FL-101", FLOUR, "mill", "M-5501", "1000", "KGM", "2027-03-01", 1, "Wheat flour T55")
    receive("FL-102", FLOUR, "mill", "M-5502", "800", "KGM", "2027-03-15", 2, "Wheat flour T55")
    receive("MK-201", MILK, "dairy", "D-88", "500", "LTR", "2026-10-20", 3, "Whole milk")
    receive("SA-301", SALT, "saltco", "S-7", "50", "KGM", "2029-01-01", 4, "Sea salt")

    def qc(lot: r.LotId, name: str, result: r.QcResult, hours: float, by: str = "Dr. A. Baker") -> None:
        q = w.add(f"qc/{lot.lot}/{name}", "qa", at(hours)).quality_check
        q.lot.CopyFrom(lot)
        q.check_name, q.result, q.signed_off_by, q.spec_reference = name, result, by, f"SPEC-{name.upper()}"
        q.checked_at.FromDatetime(at(hours))
        w.commit()

    qc(_lot(FLOUR, "FL-101"), "moisture", r.QC_RESULT_PASS, 5)
    qc(_lot(MILK, "MK-201"), "micro", r.QC_RESULT_PASS, 5)

    for version, note in [(1, "initial recipe"), (2, "salt reduced from 2.0% to 1.5%")]:
        f = w.add(f"formula/BREAD/{version}", "plant", at(6)).formula_revision
        f.formula_id, f.version, f.change_note, f.product_description = "BREAD", version, note, "White loaf 800 g"
        f.components.add(gtin=FLOUR, quantity=_q("60"))
        f.components.add(gtin=MILK, quantity=_q("25", "LTR"))
        f.components.add(gtin=SALT, quantity=_q("1.5" if version == 2 else "2"))
        w.commit()

    def run(
        run_id: str,
        inputs: list[tuple[r.LotId, r.Quantity]],
        outputs: list[tuple[r.LotId, r.Quantity]],
        hours: float,
        expiry: str,
        desc: str,
        formula: str = "",
        version: int = 0,
    ) -> None:
        p = w.add(f"run/{run_id}", "plant", at(hours)).production_run
        p.run_id, p.location, p.product_description = run_id, "plant-7/line-1", desc
        p.manufactured_on, p.expiry_date = at(hours).date().isoformat(), expiry
        p.formula_id, p.formula_version = formula, version
        for lot, q in inputs:
            p.inputs.add(lot=lot, quantity=q)
        for lot, q in outputs:
            p.outputs.add(lot=lot, quantity=q)
        p.started_at.FromDatetime(at(hours - 2))
        p.completed_at.FromDatetime(at(hours))
        w.commit()

    dough = _lot("DOUGH", "D-1")
    run(
        "R-1",
        [(_lot(FLOUR, "FL-101"), _q("300")), (_lot(MILK, "MK-201"), _q("100", "LTR")), (_lot(SALT, "SA-301"), _q("5"))],
        [(dough, _q("400"))],
        10,
        "2026-10-05",
        "Bread dough",
        "BREAD",
        2,
    )
    run(
        "R-2",
        [(dough, _q("400"))],
        [(_lot(BREAD, "B-1001"), _q("380"))],
        14,
        "2026-10-12",
        "White loaf 800 g",
        "BREAD",
        2,
    )
    run(
        "R-0",
        [(_lot(FLOUR, "FL-102"), _q("100")), (_lot(SALT, "SA-301"), _q("2"))],
        [(_lot(BREAD, "B-0999"), _q("95"))],
        15,
        "2026-10-08",
        "White loaf 800 g",
        "BREAD",
        1,
    )
    # Rolls made on 25 October use milk that expired on the 20th (alert), then fail QC.
    run(
        "R-3",
        [(_lot(FLOUR, "FL-102"), _q("200")), (_lot(MILK, "MK-201"), _q("80", "LTR"))],
        [(_lot(ROLLS, "RL-2001"), _q("260"))],
        24 * 24,
        "2026-11-01",
        "Milk rolls",
    )
    qc(_lot(BREAD, "B-1001"), "micro", r.QC_RESULT_PASS, 16)
    qc(_lot(BREAD, "B-0999"), "micro", r.QC_RESULT_PASS, 16)
    qc(_lot(ROLLS, "RL-2001"), "micro", r.QC_RESULT_FAIL, 24 * 24 + 2)

    def ship(sid: str, frm: str, to: str, loc: str, lots: list[tuple[r.LotId, r.Quantity]], hours: float) -> None:
        s = w.add(f"ship/{sid}", frm, at(hours)).shipment
        s.shipment_id, s.from_participant, s.to_participant, s.to_location = sid, frm, to, loc
        s.from_location = "plant-7/dock" if frm == "plant" else f"{frm.split('-')[1]}/wh-1"
        for lot, q in lots:
            s.lots.add(lot=lot, quantity=q)
        s.shipped_at.FromDatetime(at(hours))
        s.documents.add(type="BOL", number=f"BOL-{sid}")
        w.commit()

    def receipt(sid: str, who: str, loc: str, lots: list[tuple[r.LotId, r.Quantity]], hours: float) -> None:
        rc = w.add(f"receipt/{sid}", who, at(hours)).receipt
        rc.shipment_id, rc.participant, rc.location = sid, who, loc
        rc.shipment_owner = "plant"  # every received shipment of the demo is the plant's
        for lot, q in lots:
            rc.lots.add(lot=lot, quantity=q)
        rc.received_at.FromDatetime(at(hours))
        w.commit()

    b1001 = _lot(BREAD, "B-1001")
    ship("SH-5001", "plant", "dist-north", "north/wh-1", [(b1001, _q("200"))], 18)
    ship("SH-5002", "plant", "dist-south", "south/wh-1", [(b1001, _q("150"))], 18)  # still on the road
    receipt("SH-5001", "dist-north", "north/wh-1", [(b1001, _q("200"))], 22)
    ship("SH-7001", "dist-north", "shop-a", "shop-a", [(b1001, _q("120"))], 30)
    ship("SH-7002", "dist-north", "cafe-d", "cafe-d", [(b1001, _q("50"))], 30)
    # B-0999 expired on 8 October and leaves on the 15th.
    ship("SH-5004", "plant", "dist-south", "south/wh-1", [(_lot(BREAD, "B-0999"), _q("90"))], 14 * 24)
    receipt("SH-5004", "dist-south", "south/wh-1", [(_lot(BREAD, "B-0999"), _q("90"))], 14 * 24 + 5)
    ship("SH-7003", "dist-south", "shop-c", "shop-c", [(_lot(BREAD, "B-0999"), _q("40"))], 14 * 24 + 8)
    # The failed rolls are shipped anyway.
    ship("SH-5003", "plant", "dist-north", "north/wh-1", [(_lot(ROLLS, "RL-2001"), _q("250"))], 24 * 24 + 4)
    receipt("SH-5003", "dist-north", "north/wh-1", [(_lot(ROLLS, "RL-2001"), _q("250"))], 24 * 24 + 8)
    return w.written


def demo_keys_dir(data_dir: Path) -> Path:
    return data_dir / "keys" / "demo"


def save_demo_keys(data_dir: Path) -> None:
    """Write the demo participants' keys so that a newcomer can append as them."""
    for pid, *_ in PARTICIPANTS:
        path = demo_keys_dir(data_dir) / f"{pid}.key"
        if not path.exists():
            demo_key(pid).save_pair(path)
