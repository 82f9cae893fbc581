"""FSMA 204 export at a million records: rows/s and the whole export's seconds (target: a full
export of 1M records, a year of a mid-size plant, in under 60 s).

What the measured path includes: decoding each Entry and its Record from the bytes the server
streams (ListEntries), the FsmaBuilder (master data, lot origins, one row per lot per event),
and writing the .xlsx (trace/standards/xlsx.py) to a temporary file. Not included: the gRPC download (about
180,000 records/s streamed at 100 per message on this machine, CEILINGS.md: about 5.5 s per
million, overlapped with decoding by the client's read-ahead thread) and signing/appending the
records (built here directly as Entry bytes, unsigned, like bench/trace.py builds its index).

Ceilings measured in the same run: decoding alone, trace/standards/xlsx.py alone, and openpyxl's
write-only mode alone (why the export does not use it) on the same rows.

    python bench/fsma.py [--records 1000000]
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path

from lotledger.trace.standards.fsma import CTES, FsmaBuilder
from lotledger.trace.standards.xlsx import XlsxWriter
from lotledger.v1 import records_pb2 as r

GTINS = ["09520000000011", "09520000000028", "09520000000035", "09520000000042"]


def _entry(seq: int, record: r.Record) -> bytes:
    e = r.Entry(seq=seq)
    e.signed_record.record_bytes = record.SerializeToString()
    e.signed_record.key_id = "00" * 32
    return e.SerializeToString(deterministic=True)


def workload(n: int) -> list[bytes]:
    """Master data, then a repeating cycle of 10 records: 2 material receipts, a run (2 inputs,
    1 output), 4 shipments (2 of the output, 2 of inputs to distributors) and 3 receipts."""
    out = []
    for pid, name in [("farm", "Farm"), ("plant", "Plant"), ("dist", "Distributor")]:
        rec = r.Record(record_id=f"reg/{pid}", submitter="admin")
        reg = rec.participant_registered
        reg.participant_id, reg.role, reg.public_key = pid, r.ROLE_SUPPLIER, bytes([len(out)]) * 32
        reg.business_name, reg.phone, reg.address = name, "+1 555 0100", f"1 {name} Road"
        out.append(_entry(len(out), rec))
    for loc, pid in [("farm/shed", "farm"), ("plant/dock", "plant"), ("plant/line", "plant"), ("dc/1", "dist")]:
        rec = r.Record(record_id=f"loc/{loc}", submitter="admin")
        lr = rec.location_registered
        lr.location_id, lr.participant_id, lr.name, lr.address = loc, pid, loc, f"{loc} street"
        out.append(_entry(len(out), rec))
    t0 = 1_767_225_600  # 2026-01-01
    cycle = 0
    while len(out) < n:
        c, when = cycle, t0 + cycle * 31  # a year of seconds over ~1M records
        ins = [r.LotId(gtin=GTINS[c % 4], lot=f"M{c}a"), r.LotId(gtin=GTINS[(c + 1) % 4], lot=f"M{c}b")]
        made = r.LotId(gtin=GTINS[(c + 2) % 4], lot=f"P{c}")
        batch = []
        for i, lot in enumerate(ins):
            rec = r.Record(record_id=f"m/{c}/{i}", submitter="plant")
            m = rec.material_received
            m.lot.CopyFrom(lot)
            m.supplier, m.supplier_lot_code, m.location, m.product_description = "farm", f"F{c}", "plant/dock", "Leafy"
            m.quantity.amount, m.quantity.unit = "500", "KGM"
            m.received_at.FromSeconds(when)
            m.documents.add(type="BOL", number=f"B{c}-{i}")
            batch.append(rec)
        rec = r.Record(record_id=f"run/{c}", submitter="plant")
        p = rec.production_run
        p.run_id, p.location, p.product_description = f"R{c}", "plant/line", "Salad"
        for lot in ins:
            p.inputs.add(lot=lot, quantity=r.Quantity(amount="200", unit="KGM"))
        p.outputs.add(lot=made, quantity=r.Quantity(amount="390.5", unit="KGM"))
        p.completed_at.FromSeconds(when + 5)
        batch.append(rec)
        for i, lot in enumerate([made, made, *ins]):
            rec = r.Record(record_id=f"s/{c}/{i}", submitter="plant")
            s = rec.shipment
            s.shipment_id, s.from_participant, s.from_location = f"S{c}-{i}", "plant", "plant/dock"
            s.to_participant, s.to_location = "dist", "dc/1"
            s.lots.add(lot=lot, quantity=r.Quantity(amount="100", unit="KGM"))
            s.shipped_at.FromSeconds(when + 10)
            s.documents.add(type="BOL", number=f"S{c}-{i}")
            batch.append(rec)
        for i, lot in enumerate([made, made, ins[0]]):
            rec = r.Record(record_id=f"rc/{c}/{i}", submitter="dist")
            rc = rec.receipt
            rc.shipment_id, rc.participant, rc.location = f"S{c}-{i}", "dist", "dc/1"
            rc.lots.add(lot=lot, quantity=r.Quantity(amount="100", unit="KGM"))
            rc.received_at.FromSeconds(when + 20)
            batch.append(rec)
        for rec in batch[: n - len(out)]:
            out.append(_entry(len(out), rec))
        cycle += 1
    return out


def export(entries: list[bytes], path: Path) -> tuple[float, float, dict[str, int]]:
    """(seconds building rows, seconds writing the workbook, rows per sheet)."""
    t = time.perf_counter()
    builder = FsmaBuilder()
    gc.disable()  # as audit/fsma.py does
    entry, record = r.Entry.FromString, r.Record.FromString
    for seq, raw in enumerate(entries):
        builder.add(seq, record(entry(raw).signed_record.record_bytes))
    built = time.perf_counter() - t
    gc.enable()
    t = time.perf_counter()
    counts = {}
    with XlsxWriter(path) as w:
        for cte, columns, rows in builder.sheets():
            counts[cte] = w.sheet(cte, columns, rows)
    return built, time.perf_counter() - t, counts


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--sample", type=int, default=20_000, help="rows for the openpyxl ceiling")
    args = ap.parse_args()
    from speed import print_speed_of_day  # bench/speed.py: the machine's speed of the day

    print_speed_of_day()
    t = time.perf_counter()
    entries = workload(args.records)
    print(f"built {len(entries):,} entries in {time.perf_counter() - t:.1f} s (not measured)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "fsma.xlsx"
        built, written, counts = export(entries, out)
        total_rows = sum(counts.values())
        size = out.stat().st_size
        # Ceilings, same run.
        t = time.perf_counter()
        for raw in entries:
            r.Record.FromString(r.Entry.FromString(raw).signed_record.record_bytes)
        decode = len(entries) / (time.perf_counter() - t)
        builder = FsmaBuilder()
        for seq, raw in enumerate(entries[: args.sample * 2]):
            builder.add(seq, r.Record.FromString(r.Entry.FromString(raw).signed_record.record_bytes))
        cte, columns, rows = next(s for s in builder.sheets() if s[0] == CTES[0])
        rows = (rows * (args.sample // max(len(rows), 1) + 1))[: args.sample]
        t = time.perf_counter()
        with XlsxWriter(Path(tmp) / "alone.xlsx") as w:
            w.sheet(cte, columns, rows)
        ours = len(rows) / (time.perf_counter() - t)
        try:
            from openpyxl import Workbook

            t = time.perf_counter()
            wb = Workbook(write_only=True)
            ws = wb.create_sheet(cte)
            ws.append([c for c, _ in columns])
            for row in rows:
                ws.append(list(row))
            wb.save(Path(tmp) / "openpyxl.xlsx")
            opx = len(rows) / (time.perf_counter() - t)
        except ImportError:
            opx = float("nan")
    total = built + written
    print(f"\nFSMA export of {len(entries):,} records -> {total_rows:,} rows ({counts}), {size / 1e6:.0f} MB xlsx")
    print(f"{'stage':<44} {'seconds':>8} {'rows/s':>10}")
    print(f"{'decode + build rows (FsmaBuilder)':<44} {built:>8.1f} {total_rows / built:>10,.0f}")
    print(f"{'write .xlsx (trace/standards/xlsx.py)':<44} {written:>8.1f} {total_rows / written:>10,.0f}")
    print(f"{'whole export (target < 60 s)':<44} {total:>8.1f} {total_rows / total:>10,.0f}")
    print("\nceilings, same run")
    print(f"{'decode Entry + Record alone (records/s)':<44} {'':>8} {decode:>10,.0f}")
    print(f"{'trace/standards/xlsx.py alone, Shipping rows (24 cells)':<44} {'':>8} {ours:>10,.0f}")
    print(f"{'openpyxl write-only alone, same rows':<44} {'':>8} {opx:>10,.0f}")
    print(f"openpyxl would need {total_rows / opx:.0f} s for the rows alone")


if __name__ == "__main__":
    main()
