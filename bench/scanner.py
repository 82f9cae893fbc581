"""The scanner station: scans/s from stdin to the durable spool, and the spool's drain rate to a
local server beside that server's own AppendStream rate.

Runs the real `lotledger-scan` program as its own process (as on a device): `run --no-send`
with N GS1 scans on stdin (each parsed, signed with the device key and committed to the
LMDB spool before it is answered), then `send` against a real `lotledger serve` process. The
ceilings beside the figures are measured in the same run: durable LMDB commits/s (a scan
spooled one at a time costs one), Ed25519 signatures/s (the station signs each scan), and
the server's AppendStream rate for the same number of pre-signed scans from another device.

    python bench/scanner.py [--scans 5000]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from append import free_port, unlimited  # noqa: E402
from ceilings import lmdb_commit_rate, table  # noqa: E402
from workload import command, setup_participants  # noqa: E402

from lotledger.ledger.core.records import sign  # noqa: E402
from lotledger.ledger.log import Ledger  # noqa: E402
from lotledger.rpc.client import LedgerClient, StreamRefusal  # noqa: E402
from lotledger.scanner_client import device  # noqa: E402
from lotledger.scanner_client.gs1 import parse_scan  # noqa: E402
from lotledger.scanner_client.station import Station  # noqa: E402
from lotledger.signing.keys import SigningKey  # noqa: E402
from lotledger.v1 import records_pb2  # noqa: E402

GTIN = "09520000000011"
SCAN = command("lotledger-scan")


def register(data: Path, admin_key: SigningKey, devices: dict[str, SigningKey]) -> None:
    ledger = Ledger(data, SigningKey.load(data / "keys" / "log.key"))
    for name, key in devices.items():
        record = records_pb2.Record(record_id=f"register/{name}", submitter="admin")
        record.created_at.GetCurrentTime()
        reg = record.participant_registered
        reg.participant_id, reg.role, reg.public_key = name, records_pb2.ROLE_SCANNER, key.public.raw
        ledger.append(sign(record, admin_key))
    ledger.close()


def sign_rate(seconds: float = 1.0) -> float:
    key, n, start = SigningKey.generate(), 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        key.sign(b"x" * 200)
        n += 1
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scans", type=int, default=5000)
    args = parser.parse_args()
    from speed import print_speed_of_day  # bench/speed.py: the machine's speed of the day

    print_speed_of_day()
    n = args.scans
    work = Path(tempfile.mkdtemp(prefix="lotledger-bench-", dir=os.environ.get("BENCH_TMP")))
    try:
        print("measuring ceilings...", file=sys.stderr)
        commits, signs = lmdb_commit_rate(), sign_rate()
        data, station_dir = work / "data", work / "scanner"
        admin_key = setup_participants(data)["admin"]
        device.enroll(station_dir, "dock-1")
        other = SigningKey.generate()
        register(data, admin_key, {"dock-1": device.load(station_dir).key, "dock-2": other})

        # 1. stdin -> durable spool, as a wedge scanner feeds it (no server).
        lines = "".join(f"]C101{GTIN}10L{i}\x1d17271231\x1d3103{i % 1000 + 1:06d}\n" for i in range(n))
        print(f"spooling {n} scans...", file=sys.stderr)
        start = time.perf_counter()
        out = subprocess.run(
            [*SCAN, "run", "--data-dir", str(station_dir), "--station", "plant/dock-1", "--meaning", "receive",
             "--no-send"],
            input=lines, capture_output=True, text=True, check=True,
        )  # fmt: skip
        spool_s = time.perf_counter() - start
        assert out.stdout.count("spooled  #") == n, out.stdout[-500:]

        port = free_port()
        address = f"127.0.0.1:{port}"
        server = subprocess.Popen(
            [*command("lotledger"), "serve", str(data), "--listen", address, *unlimited(work)],
            stderr=subprocess.DEVNULL,
        )
        try:
            with LedgerClient(address) as client:
                client.wait_ready(30)
                # 2. The server's own AppendStream rate for n scans (pre-signed by another device).
                station = Station(device.Device("dock-2", other), "plant/dock-2", "receive")
                presigned = [
                    station.sign(parse_scan(f"]C101{GTIN}10M{i}\x1d3103{i % 1000 + 1:06d}"), "bench", i)
                    for i in range(n)
                ]
                start = time.perf_counter()
                outcomes = list(client.append_stream(iter(presigned)))
                stream_s = time.perf_counter() - start
                refused = [o for o in outcomes if isinstance(o, StreamRefusal)]
                assert not refused, refused[:2]
            # 3. The station drains its spool through the same server.
            print(f"draining {n} scans...", file=sys.stderr)
            start = time.perf_counter()
            out = subprocess.run(
                [*SCAN, "send", "--data-dir", str(station_dir), "--server", address, "--timeout", "600"],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            drain_s = time.perf_counter() - start
            assert f"spooled 0  sent {n}" in out.stderr, out.stderr
            inside_s = float(re.search(r"answered in ([0-9.]+) s", out.stderr).group(1))  # type: ignore[union-attr]
        finally:
            server.terminate()
            server.wait(60)
        spool_rate, stream_rate, drain_rate = n / spool_s, n / stream_s, n / drain_s
        rows = [
            ("what", "figure", "beside it"),
            ("LMDB durable commits (ceiling)", f"{commits:,.0f}/s", "one fsync'd txn each"),
            ("Ed25519 signatures, 1 core (ceiling)", f"{signs:,.0f}/s", "the station signs every scan"),
            (
                f"stdin -> durable spool, {n:,} scans",
                f"{spool_rate:,.0f}/s",
                f"target >= 1,000/s; whole process incl. start-up; {spool_rate / commits:.1f}x single commits",
            ),
            (f"server AppendStream, {n:,} scans", f"{stream_rate:,.0f}/s", "the drain's ceiling"),
            (
                f"spool -> server drain, {n:,} scans",
                f"{drain_rate:,.0f}/s",
                f"{drain_rate / stream_rate:.0%} of AppendStream, whole process incl. start-up",
            ),
            (
                "  the same, once connected",
                f"{n / inside_s:,.0f}/s",
                f"{n / inside_s / stream_rate:.0%} of AppendStream (target: at its rate)",
            ),
        ]
        print(table(rows))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
