"""Signed records of mixed kinds for the benchmarks, from a small set of participants."""

from __future__ import annotations

import sys
from importlib.metadata import entry_points
from pathlib import Path

from lotledger.ledger.core.records import sign
from lotledger.ledger.log import Ledger
from lotledger.signing.keys import SigningKey
from lotledger.v1 import records_pb2

GTINS = ["09520000000011", "09520000000028", "09520000000035", "09520000000042"]
PARTICIPANTS = {
    "acme": records_pb2.ROLE_SUPPLIER,
    "plant": records_pb2.ROLE_MANUFACTURER,
    "qa1": records_pb2.ROLE_QA,
    "dist1": records_pb2.ROLE_DISTRIBUTOR,
}


def command(name: str) -> list[str]:
    """The argv that starts the installed console script `name` (`lotledger`, `lotledger-scan`)
    with this interpreter. The benchmarks run the commands as their users do, as processes of
    their own, and find them by their entry points (pyproject.toml) instead of naming the
    modules behind them: nothing outside cli/ refers to cli/.

    Raises ValueError when lotledger is not installed with that script."""
    found = entry_points(group="console_scripts", name=name)
    if not found:
        raise ValueError(f"no console script {name!r}: install lotledger (pip install -e .)")
    return [sys.executable, "-m", next(iter(found)).module]


def setup_participants(data_dir: Path, origin: str = "bench.example.com/lotledger") -> dict[str, SigningKey]:
    """Initialize a ledger in `data_dir` and register one key per participant (then close it)."""
    (data_dir / "keys").mkdir(parents=True)
    log_key, admin = SigningKey.generate(), SigningKey.generate()
    log_key.save_pair(data_dir / "keys" / "log.key")
    ledger = Ledger.initialize(data_dir, origin, log_key, admin)
    keys = {}
    for pid, role in PARTICIPANTS.items():
        key = SigningKey.generate()
        record = records_pb2.Record(record_id=f"register/{pid}", submitter="admin")
        record.created_at.GetCurrentTime()
        reg = record.participant_registered
        reg.participant_id, reg.role, reg.public_key = pid, role, key.public.raw
        ledger.append(sign(record, admin))
        keys[pid] = key
    ledger.close()
    keys["admin"] = admin
    return keys


def _lq(container: object, gtin: str, lot: str, amount: str) -> None:
    item = container.add()  # type: ignore[attr-defined]
    item.lot.gtin, item.lot.lot = gtin, lot
    item.quantity.amount, item.quantity.unit = amount, "KGM"


def mixed_records(keys: dict[str, SigningKey], n: int, prefix: str = "r") -> list[records_pb2.SignedRecord]:
    """n signed records cycling through five kinds (about 250-350 bytes each)."""
    out = []
    for i in range(n):
        gtin = GTINS[i % len(GTINS)]
        lot = f"L{i:07d}"
        kind = i % 5
        if kind == 0:
            submitter = "plant"
            record = records_pb2.Record(record_id=f"{prefix}-{i}", submitter=submitter)
            m = record.material_received
            m.lot.gtin, m.lot.lot = gtin, lot
            m.supplier, m.supplier_lot_code, m.location = "acme", f"ACME-{i}", "plant-7/dock-1"
            m.quantity.amount, m.quantity.unit = "500.000", "KGM"
            m.received_at.GetCurrentTime()
            m.documents.add(type="PO", number=f"PO-{i}")
        elif kind == 1:
            submitter = "plant"
            record = records_pb2.Record(record_id=f"{prefix}-{i}", submitter=submitter)
            run = record.production_run
            run.run_id, run.manufactured_on, run.location = f"RUN-{i}", "2026-11-20", "plant-7/line-2"
            _lq(run.inputs, gtin, f"L{i - 1:07d}", "250")
            _lq(run.outputs, GTINS[(i + 1) % len(GTINS)], lot, "240")
            run.formula_id, run.formula_version = "BREAD-1", 3
            run.completed_at.GetCurrentTime()
        elif kind == 2:
            submitter = "qa1"
            record = records_pb2.Record(record_id=f"{prefix}-{i}", submitter=submitter)
            q = record.quality_check
            q.lot.gtin, q.lot.lot = gtin, lot
            q.check_name, q.result, q.signed_off_by = "moisture", records_pb2.QC_RESULT_PASS, "QA lead"
            q.measurements.add(name="moisture", value="12.4", unit="P1")
            q.checked_at.GetCurrentTime()
        elif kind == 3:
            submitter = "plant"
            record = records_pb2.Record(record_id=f"{prefix}-{i}", submitter=submitter)
            s = record.shipment
            s.shipment_id, s.from_participant, s.to_participant = f"SH-{i}", "plant", "dist1"
            _lq(s.lots, gtin, lot, "100")
            s.shipped_at.GetCurrentTime()
            s.documents.add(type="BOL", number=f"BOL-{i}")
        else:
            submitter = "dist1"
            record = records_pb2.Record(record_id=f"{prefix}-{i}", submitter=submitter)
            r = record.receipt
            r.shipment_id, r.participant, r.location = f"SH-{i - 1}", "dist1", "dist1/wh-1"
            r.shipment_owner = "plant"  # required from rules 3 on
            _lq(r.lots, gtin, lot, "100")
            r.received_at.GetCurrentTime()
        record.created_at.GetCurrentTime()
        out.append(sign(record, keys[submitter]))
    return out
