"""The regulator's toolkit, measured: verifying a bundle of 1,000,000 entries on both cores,
hash-only, and exporting a bundle from a real server over gRPC.

Builds once, and caches (in --cache, default $BENCH_CACHE or the temp directory), a valid
bundle of N entries with no server: a genesis admin, 10 participants (suppliers, a
manufacturer, QA, distributors, a customer, scanner devices), locations, then records of ten
kinds cycling through them (material received, production runs, QC, shipments, receipts,
scans, aggregations, formula revisions, corrections), a key rotation half way (the
manufacturer's first key revoked, a new one registered and used from then on) and a device
registered a third of the way; real Ed25519 signatures, made on every core, and a real
signed checkpoint. Then measures, each beside its ceiling measured in the same run:

  - full verification (`verify_log` over the bundle, signatures and everything, one worker
    process per core), beside the Ed25519 ceiling of two threads verifying in parallel
    (measured before and after it: the machine is noisy); target >= 60% of it. Also in CPU
    time: CPU seconds per entry (this process and its workers) beside CPU seconds per Ed25519
    verification, which holds still when other processes take turns on the cores;
  - the same on one process, over the first entries, for the speed-up;
  - hash-only verification (--no-signatures), beside SHA-256 of every leaf and node in one
    Python loop; target >= 200,000 entries/s;
  - `lotledger export` (export_bundle through a real `lotledger serve` process over gRPC) of a
    real data directory of --export-entries entries, in MB/s, beside the LMDB scan of the same
    entries and a raw write + fsync of as many bytes.

    python bench/verify.py [--entries 1000000] [--export-entries 100000] [--cache DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).parent))

from ceilings import ed25519_verify_rate  # noqa: E402
from workload import command, mixed_records, setup_participants  # noqa: E402

from lotledger.audit.export import export_bundle  # noqa: E402
from lotledger.audit.verify import BundleSource, VerifyReport, verify_log  # noqa: E402
from lotledger.ledger.core.records import sign  # noqa: E402
from lotledger.ledger.log import Ledger  # noqa: E402
from lotledger.ledger.store import Store  # noqa: E402
from lotledger.ledger.tlog.bundle import BundleReader, BundleWriter  # noqa: E402
from lotledger.ledger.tlog.entries import build_entry  # noqa: E402
from lotledger.ledger.verify.hashes import HashVerifier, perfect_root  # noqa: E402
from lotledger.ledger.verify.verifier import LogVerifier  # noqa: E402
from lotledger.rpc.client import LedgerClient  # noqa: E402
from lotledger.signing.files import atomic_file  # noqa: E402
from lotledger.signing.keys import SigningKey  # noqa: E402
from lotledger.signing.note import Checkpoint, NoteSigner, NoteVerifier, sign_note  # noqa: E402
from lotledger.v1 import records_pb2  # noqa: E402

T = TypeVar("T")
FORMAT_VERSION = 1  # bump when the generated log changes, so cached bundles are rebuilt
ORIGIN = "bench.example.com/lotledger"
GTINS = ["09520000000011", "09520000000028", "09520000000035", "09520000000042"]
STEP_NS = 100_000  # entries are 0.1 ms apart
LOCATIONS = ("plant-7/dock-1", "plant-7/line-2", "dist1/wh-1")
PARTICIPANTS = [  # (id, role, key name)
    ("acme", records_pb2.ROLE_SUPPLIER, "acme"),
    ("bolt", records_pb2.ROLE_SUPPLIER, "bolt"),
    ("plant", records_pb2.ROLE_MANUFACTURER, "plant-1"),
    ("qa1", records_pb2.ROLE_QA, "qa1"),
    ("dist1", records_pb2.ROLE_DISTRIBUTOR, "dist1"),
    ("dist2", records_pb2.ROLE_DISTRIBUTOR, "dist2"),
    ("cust1", records_pb2.ROLE_CUSTOMER, "cust1"),
    ("scan-1", records_pb2.ROLE_SCANNER, "scan-1"),
    ("scan-2", records_pb2.ROLE_SCANNER, "scan-2"),
    ("scan-3", records_pb2.ROLE_SCANNER, "scan-3"),
]
SETUP = 1 + len(PARTICIPANTS) + len(LOCATIONS)
KEY_NAMES = ["admin", *(k for _, _, k in PARTICIPANTS), "plant-2", "scan-4"]


def check_digit(body: str) -> str:
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return str((10 - total % 10) % 10)


# ---- the generated log ------------------------------------------------------------------------


class Plan:
    """Which record sits at which position of a log of n entries; the same in every process."""

    def __init__(self, n: int, t0_ns: int, seeds: dict[str, bytes]):
        if n < SETUP + 40:
            raise SystemExit(f"--entries must be at least {SETUP + 40}")
        self.n, self.t0_ns = n, t0_ns
        self.keys = {name: SigningKey.from_raw_seed(seed) for name, seed in seeds.items()}
        self.device_at = SETUP + (n - SETUP) // 3  # scan-4 registered
        self.revoke_at = SETUP + (n - SETUP) // 2  # plant-1 revoked...
        self.rotate_at = self.revoke_at + 1  # ...and plant-2 registered
        self.special = {self.device_at, self.revoke_at, self.rotate_at}

    def received_ns(self, p: int) -> int:
        return self.t0_ns + p * STEP_NS

    def kind(self, p: int) -> int:
        """The bulk kind of position p (p % 20, with rare kinds folded into common ones)."""
        k = p % 20
        if k == 18 and (p // 20) % 50:
            return 2  # a formula revision every 1,000 entries, else a production run
        if k == 19 and ((p // 20) % 10 or p - 17 < SETUP or (p - 17) in self.special):
            return 8  # a correction every 200 entries, else a scan
        return k

    def signed(self, p: int) -> bytes:
        """The SignedRecord bytes at position p."""
        key_name, record = self.record(p)
        return sign(record, self.keys[key_name]).SerializeToString()

    def _new(self, p: int, submitter: str) -> records_pb2.Record:
        record = records_pb2.Record(record_id=f"r{p}", submitter=submitter)
        record.created_at.FromNanoseconds(self.received_ns(p) - 1_000_000)
        return record

    def _register(self, p: int, pid: str, role: records_pb2.Role, key_name: str) -> records_pb2.Record:
        record = self._new(p, "admin")
        reg = record.participant_registered
        reg.participant_id, reg.role, reg.public_key = pid, role, self.keys[key_name].public.raw
        reg.business_name = f"{pid} Ltd"
        return record

    def record(self, p: int) -> tuple[str, records_pb2.Record]:
        """(key name, record) at position p."""
        if p == 0:
            return "admin", self._register(p, "admin", records_pb2.ROLE_ADMIN, "admin")
        if p <= len(PARTICIPANTS):
            pid, role, key_name = PARTICIPANTS[p - 1]
            return "admin", self._register(p, pid, role, key_name)
        if p < SETUP:
            record = self._new(p, "admin")
            loc = record.location_registered
            loc.location_id = LOCATIONS[p - 1 - len(PARTICIPANTS)]
            loc.participant_id = loc.location_id.split("/")[0].replace("plant-7", "plant")
            loc.name, loc.address = loc.location_id, "1 Example Road"
            return "admin", record
        if p == self.device_at:
            return "admin", self._register(p, "scan-4", records_pb2.ROLE_SCANNER, "scan-4")
        if p == self.revoke_at:
            record = self._new(p, "admin")
            record.key_revoked.key_id, record.key_revoked.reason = self.keys["plant-1"].key_id, "scheduled rotation"
            return "admin", record
        if p == self.rotate_at:
            return "admin", self._register(p, "plant", records_pb2.ROLE_MANUFACTURER, "plant-2")
        return self._bulk(p)

    def _bulk(self, p: int) -> tuple[str, records_pb2.Record]:
        plant = "plant-1" if p < self.revoke_at else "plant-2"
        ns = self.received_ns(p) - 1_000_000
        gtin, lot = GTINS[p % 4], f"L{p:07d}"
        dist = f"dist{1 + p // 20 % 2}"
        k = self.kind(p)
        if k in (0, 1, 17):
            record = self._new(p, "plant")
            m = record.material_received
            m.lot.gtin, m.lot.lot = gtin, lot
            m.supplier, m.supplier_lot_code, m.location = ("acme", "bolt")[p % 2], f"S-{p}", "plant-7/dock-1"
            m.quantity.amount, m.quantity.unit = "500.000", "KGM"
            m.received_at.FromNanoseconds(ns)
            m.documents.add(type="PO", number=f"PO-{p // 100}")
            m.expiry_date = "2027-06-30"
            return plant, record
        if k in (2, 3):
            record = self._new(p, "plant")
            run = record.production_run
            run.run_id, run.manufactured_on, run.location = f"RUN-{p}", "2026-11-20", "plant-7/line-2"
            run.inputs.add(lot=records_pb2.LotId(gtin=GTINS[0], lot=f"L{p - 2:07d}")).quantity.amount = "250"
            run.inputs[0].quantity.unit = "KGM"
            out = run.outputs.add(lot=records_pb2.LotId(gtin=GTINS[1], lot=lot))
            out.quantity.amount, out.quantity.unit = "240", "KGM"
            run.formula_id, run.formula_version = "BREAD-1", 3
            run.completed_at.FromNanoseconds(ns)
            return plant, record
        if k in (4, 16):
            record = self._new(p, "qa1")
            q = record.quality_check
            q.lot.gtin, q.lot.lot = GTINS[1], f"L{p - 2:07d}"
            q.check_name, q.signed_off_by = "moisture", "QA lead"
            q.result = records_pb2.QC_RESULT_PASS if p % 97 else records_pb2.QC_RESULT_HOLD
            q.measurements.add(name="moisture", value="12.4", unit="P1")
            q.checked_at.FromNanoseconds(ns)
            return "qa1", record
        if k in (5, 6, 14):
            sender, to = {5: (("acme", "bolt")[p % 2], "plant"), 6: ("plant", dist), 14: (dist, "cust1")}[k]
            record = self._new(p, sender)
            s = record.shipment
            s.shipment_id, s.from_participant, s.to_participant = f"SH-{p}", sender, to
            item = s.lots.add(lot=records_pb2.LotId(gtin=gtin, lot=lot))
            item.quantity.amount, item.quantity.unit = "100", "KGM"
            s.shipped_at.FromNanoseconds(ns)
            s.documents.add(type="BOL", number=f"BOL-{p}")
            return plant if sender == "plant" else sender, record
        if k in (7, 15):
            receiver = dist if k == 7 else "cust1"
            record = self._new(p, receiver)
            r = record.receipt
            r.shipment_id, r.participant = f"SH-{p - 1}", receiver
            item = r.lots.add(lot=records_pb2.LotId(gtin=gtin, lot=f"L{p - 1:07d}"))
            item.quantity.amount, item.quantity.unit = "100", "KGM"
            r.received_at.FromNanoseconds(ns)
            return receiver, record
        if k in (8, 9, 10, 11, 12, 19):
            devices = 4 if p > self.device_at else 3
            device = f"scan-{1 + p % devices}"
            record = self._new(p, device)
            sc = record.scan
            sc.device_id, sc.raw_data = device, f"01{gtin}10{lot}"
            sc.gs1.gtin, sc.gs1.lot = gtin, lot
            sc.meaning = (records_pb2.SCAN_MEANING_RECEIVE, records_pb2.SCAN_MEANING_SHIP)[p % 2]
            sc.location = "plant-7/dock-1"
            sc.scanned_at.FromNanoseconds(ns)
            return device, record
        if k == 13:
            record = self._new(p, dist)
            a = record.aggregation
            body = f"09520000{p:09d}"
            a.parent_sscc, a.action = body + check_digit(body), records_pb2.AGGREGATION_ACTION_ADD
            item = a.lots.add(lot=records_pb2.LotId(gtin=gtin, lot=f"L{p - 7:07d}"))
            item.quantity.amount, item.quantity.unit = "100", "KGM"
            a.location = "dist1/wh-1"
            a.aggregated_at.FromNanoseconds(ns)
            return dist, record
        if k == 18:
            record = self._new(p, "plant")
            f = record.formula_revision
            f.formula_id, f.version, f.change_note = "BREAD-1", 4 + p // 1000, "less salt"
            f.components.add(gtin=GTINS[0]).quantity.amount = "0.95"
            f.components[0].quantity.unit = "KGM"
            f.components.add(item_code="SALT").quantity.amount = "0.012"
            f.components[1].quantity.unit = "KGM"
            return plant, record
        assert k == 19, k
        original = self._bulk(p - 17)[1]  # the production run of this cycle
        record = self._new(p, "plant")
        c = record.correction
        c.corrects_record_id, c.reason = original.record_id, "input quantity misread"
        c.corrected.CopyFrom(original)
        c.corrected.production_run.inputs[0].quantity.amount = "260"
        return plant, record


_PLAN: Plan | None = None


def _init_worker(n: int, t0_ns: int, seeds: dict[str, bytes]) -> None:
    global _PLAN
    _PLAN = Plan(n, t0_ns, seeds)


def _sign_range(span: tuple[int, int]) -> list[bytes]:
    assert _PLAN is not None
    return [_PLAN.signed(p) for p in range(*span)]


def build_bundle(path: Path, n: int) -> str:
    """Write a valid bundle of n entries to `path`; returns the log's verifier key."""
    seeds = {name: secrets.token_bytes(32) for name in [*KEY_NAMES, "log"]}
    t0_ns = time.time_ns() - n * STEP_NS - 3_600 * 10**9
    log_signer = NoteSigner(ORIGIN, SigningKey.from_raw_seed(seeds["log"]))
    spans = [(a, min(a + 5_000, n)) for a in range(0, n, 5_000)]
    tree = HashVerifier()  # computes the root (and checks the chain it builds)
    plan = Plan(n, t0_ns, seeds)
    entries_tmp = path.with_name(path.name + ".entries")
    started = time.perf_counter()
    with (
        entries_tmp.open("wb") as tmp,
        multiprocessing.Pool(initializer=_init_worker, initargs=(n, t0_ns, seeds)) as pool,
    ):
        seq = 0
        for block in pool.imap(_sign_range, spans):
            out: list[bytes] = []
            for signed_bytes in block:
                signed = records_pb2.SignedRecord.FromString(signed_bytes)
                entry = build_entry(seq, tree.head, plan.received_ns(seq), signed)
                tree.feed_all([entry])
                out.append(len(entry).to_bytes(4, "big") + entry)
                seq += 1
            tmp.write(b"".join(out))
            if seq % 100_000 < 5_000:
                rate = seq / (time.perf_counter() - started)
                print(f"  generated {seq:,}/{n:,} entries ({rate:,.0f}/s)", file=sys.stderr)
    note = sign_note(Checkpoint(ORIGIN, n, tree.root()).body(), log_signer)
    with atomic_file(path, temp=path.with_name(path.name + ".partial")) as f, entries_tmp.open("rb") as tmp:
        writer = BundleWriter(f, note=note)
        while head := tmp.read(4):
            writer.entry(tmp.read(int.from_bytes(head, "big")))
        writer.close()
    entries_tmp.unlink()
    return log_signer.verifier_key


def cached_bundle(cache: Path, n: int) -> tuple[Path, str]:
    path = cache / f"verify-{n}-v{FORMAT_VERSION}.bundle"
    vkey_path = path.with_suffix(".vkey")
    if not (path.exists() and vkey_path.exists()):
        print(f"building a bundle of {n:,} entries in {path} (once; cached)...", file=sys.stderr)
        cache.mkdir(parents=True, exist_ok=True)
        vkey = build_bundle(path, n)
        vkey_path.write_text(vkey + "\n")
    return path, vkey_path.read_text().strip()


def verify_bundle(path: Path, log_key: NoteVerifier, *, check_signatures: bool = True) -> VerifyReport:
    """`lotledger verify --bundle PATH [--no-signatures]`, as the CLI runs it."""
    source = BundleSource(path)
    try:
        return verify_log(source, log_key, check_signatures=check_signatures)
    finally:
        source.close()


def bundle_entries(path: Path, limit: int) -> Iterator[bytes]:
    with path.open("rb") as f:
        for i, entry in enumerate(BundleReader(f).entries()):
            if i == limit:
                return
            yield entry


# ---- export through a real server ---------------------------------------------------------------


def cached_data_dir(cache: Path, n: int) -> Path:
    """A real data directory of about n entries (participants + mixed records), appended
    in-process through Ledger (verified, group-committed), cached."""
    data = cache / f"export-{n}-v{FORMAT_VERSION}"
    if (data / "complete").exists():
        return data
    shutil.rmtree(data, ignore_errors=True)
    print(f"building a data directory of {n:,} entries in {data} (once; cached)...", file=sys.stderr)
    keys = setup_participants(data, ORIGIN)
    records = mixed_records(keys, n - len(keys), prefix="x")
    ledger = Ledger(data, SigningKey.load(data / "keys" / "log.key"))
    try:

        def submit(part: list[records_pb2.SignedRecord]) -> None:
            for future in [ledger.submit(s) for s in part]:
                future.result(600)

        threads = [threading.Thread(target=submit, args=(records[i::2],)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ledger.sign_checkpoint_now()
    finally:
        ledger.close()
    (data / "log.vkey").write_text(ledger.log_verifier_key + "\n")
    (data / "complete").touch()
    return data


def lmdb_scan_mb_s(data: Path) -> tuple[float, int]:
    """MB/s of reading every entry of the data directory in one LMDB read transaction."""
    store = Store(data / "ledger", readonly=True)
    try:
        start, total = time.perf_counter(), 0
        with store.read() as txn:
            for _, value in store.iterate(txn, "entries"):
                total += len(value)
        return total / 1e6 / (time.perf_counter() - start), total
    finally:
        store.close()


def file_write_mb_s(directory: Path, size: int) -> float:
    """MB/s of writing `size` bytes in 1 MiB chunks and fsyncing: the client's side of export."""
    block = os.urandom(1 << 20)
    path = directory / "write-ceiling.bin"
    start = time.perf_counter()
    with path.open("wb") as f:
        for _ in range(max(1, size >> 20)):
            f.write(block)
        f.flush()
        os.fsync(f.fileno())
    rate = max(1, size >> 20) * len(block) / 1e6 / (time.perf_counter() - start)
    path.unlink()
    return rate


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def export_mb_s(data: Path, work: Path, runs: int = 3) -> tuple[float, int, float]:
    """(MB/s, entries, seconds) of export_bundle through a `lotledger serve` process: the
    median of `runs` exports, each to a fresh file."""
    port = free_port()
    server = subprocess.Popen(
        [*command("lotledger"), "serve", str(data), "--listen", f"127.0.0.1:{port}"],
        stderr=subprocess.DEVNULL,
    )
    try:
        with LedgerClient(f"127.0.0.1:{port}", timeout=600) as client:
            client.wait_ready(30)
            reports = []
            for _ in range(runs):
                (work / "export.bundle").unlink(missing_ok=True)
                reports.append(export_bundle(client, work / "export.bundle"))
    finally:
        server.terminate()
        server.wait(60)
    check = verify_bundle(
        work / "export.bundle",
        NoteVerifier.from_string((data / "log.vkey").read_text().strip()),
        check_signatures=False,
    )
    report = sorted(reports, key=lambda r: r.seconds)[len(reports) // 2]
    assert check.size == report.tree_size
    return report.bytes_written / 1e6 / report.seconds, report.tree_size, report.seconds


# ---- hashing ceiling ------------------------------------------------------------------------------


def sha256_entries_rate(entries: list[bytes]) -> float:
    """Entries/s of hashing each entry as a leaf and building the tree above them, and nothing else."""
    sha256 = hashlib.sha256
    start = time.perf_counter()
    leaves = [sha256(b"\x00" + e).digest() for e in entries]
    width = 1 << (len(leaves).bit_length() - 1)
    perfect_root(leaves[:width])
    return len(entries) / (time.perf_counter() - start)


def cpu_per_call(fn: Callable[[], T]) -> tuple[T, float]:
    """fn()'s result and the CPU seconds it took, in this process and in the child processes
    it started and waited for (the verification's workers). Unlike wall time, this hardly
    moves when other processes share the cores."""
    before = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    result = fn()
    after = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = sum(a.ru_utime - b.ru_utime + a.ru_stime - b.ru_stime for a, b in zip(after, before, strict=True))
    return result, cpu


def table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for j, r in enumerate(rows):
        lines.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--export-entries", type=int, default=100_000)
    parser.add_argument("--sequential-sample", type=int, default=30_000, help="entries verified on one process")
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(os.environ.get("BENCH_CACHE") or Path(tempfile.gettempdir()) / "lotledger-bench-cache"),
    )
    args = parser.parse_args()
    from speed import print_speed_of_day  # bench/speed.py: the machine's speed of the day

    print_speed_of_day()
    bundle, vkey = cached_bundle(args.cache, args.entries)
    log_key = NoteVerifier.from_string(vkey)
    mb = bundle.stat().st_size / 1e6
    n = args.entries

    print("measuring ceilings...", file=sys.stderr)
    verify1 = ed25519_verify_rate(1)
    started = time.perf_counter()
    verify2_before, verify_cpu = cpu_per_call(lambda: ed25519_verify_rate(2))
    verify_cpu_per_check = verify_cpu / (verify2_before * (time.perf_counter() - started))

    print(f"full verification of {n:,} entries...", file=sys.stderr)
    report, full_cpu = cpu_per_call(lambda: verify_bundle(bundle, log_key))
    full_rate = n / report.seconds
    full_cpu_per_entry = full_cpu / n
    verify2_after = ed25519_verify_rate(2)
    verify2 = (verify2_before + verify2_after) / 2

    sample = min(args.sequential_sample, n)
    print(f"full verification on one process, first {sample:,} entries...", file=sys.stderr)
    one = LogVerifier()
    start = time.perf_counter()
    one.feed_all(bundle_entries(bundle, sample))
    one_rate = sample / (time.perf_counter() - start)
    one_ceiling = ed25519_verify_rate(1)

    print(f"hash-only verification of {n:,} entries...", file=sys.stderr)
    hashes = verify_bundle(bundle, log_key, check_signatures=False)
    hash_rate = n / hashes.seconds
    assert hashes.root_hash == report.root_hash
    sha_rate = sha256_entries_rate(list(bundle_entries(bundle, 200_000)))

    work = Path(tempfile.mkdtemp(prefix="lotledger-bench-", dir=os.environ.get("BENCH_TMP")))
    try:
        data = cached_data_dir(args.cache, args.export_entries)
        print("export through a real server...", file=sys.stderr)
        scan_rate, scan_bytes = max(lmdb_scan_mb_s(data) for _ in range(2))  # warm: as the server reads it
        export_rate, exported, export_s = export_mb_s(data, work)
        write_rate = file_write_mb_s(work, scan_bytes)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    export_ceiling = min(scan_rate, write_rate)

    def met(ok: bool) -> str:
        return "yes" if ok else "NO"

    rows: list[tuple[str, ...]] = [
        ("what", "figure", "ceiling (same run)", "ratio", "target", "met?"),
        ("Ed25519 verify, 1 thread", f"{verify1:,.0f}/s", "", "", "", ""),
        (
            "Ed25519 verify, 2 threads",
            f"{verify2:,.0f}/s",
            f"before {verify2_before:,.0f}, after {verify2_after:,.0f}",
            f"{verify2 / verify1:.2f}x 1 thread",
            "",
            "",
        ),
        (
            f"full verify, 1 process, {sample:,} entries",
            f"{one_rate:,.0f}/s",
            f"{one_ceiling:,.0f}/s Ed25519, 1 thread",
            f"{one_rate / one_ceiling:.0%}",
            "",
            "",
        ),
        (
            f"full verify, {report.size:,} entries ({mb:,.0f} MB bundle), both cores",
            f"{full_rate:,.0f}/s ({report.seconds:.1f}s)",
            f"{verify2:,.0f}/s Ed25519, 2 threads",
            f"{full_rate / verify2:.0%}",
            ">= 60%",
            met(full_rate >= 0.6 * verify2),
        ),
        (
            "  the same, in CPU time per entry",
            f"{full_cpu_per_entry * 1e6:,.0f} us ({full_cpu / report.seconds:.2f} cores busy)",
            f"{verify_cpu_per_check * 1e6:,.0f} us per Ed25519 verify",
            f"{verify_cpu_per_check / full_cpu_per_entry:.0%}",
            "",
            "",
        ),
        (
            f"hash-only (--no-signatures), {hashes.size:,} entries",
            f"{hash_rate:,.0f}/s ({hashes.seconds:.1f}s)",
            f"{sha_rate:,.0f}/s SHA-256 leaves + nodes",
            f"{hash_rate / sha_rate:.0%}",
            ">= 200,000/s",
            met(hash_rate >= 200_000),
        ),
        (
            f"export over gRPC, {exported:,} entries (median of 3)",
            f"{export_rate:,.0f} MB/s ({export_s:.2f}s)",
            f"LMDB scan {scan_rate:,.0f} MB/s, write+fsync {write_rate:,.0f} MB/s",
            f"{export_rate / export_ceiling:.0%} of the lower",
            "",
            "",
        ),
    ]
    print(table(rows))


if __name__ == "__main__":
    main()
