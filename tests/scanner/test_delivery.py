"""Store and forward: scans taken while the server is away arrive exactly once, in order,
even when the scanner process is killed mid-drain; refused scans are kept aside with the
reason. Real server processes, real LMDB spool, real device keys, the real CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import free_port, make_world, registration, revocation, scan_cli, shipment, signed, start_server

from lotledger.ledger.core.records import sign
from lotledger.ledger.errors import PermissionDenied
from lotledger.rpc.client import LedgerClient
from lotledger.scanner_client import device
from lotledger.scanner_client.gs1 import parse_scan
from lotledger.scanner_client.sender import Sender
from lotledger.scanner_client.spool import Spool
from lotledger.scanner_client.station import Station
from lotledger.v1 import records_pb2

GTIN = "09520000000011"
DEVICE = "dock-2-scanner"


def setup(tmp_path: Path, *, register: bool = True) -> tuple[Path, Path]:
    """A ledger (closed) with the device registered as a scanner, and the device's directory."""
    world, ledger = make_world(tmp_path)
    scanner_dir = tmp_path / "scanner"
    out = scan_cli("enroll", "--data-dir", str(scanner_dir), "--device-id", DEVICE)
    assert out.returncode == 0, out.stderr
    assert "lotledger keys register --id dock-2-scanner --role scanner" in out.stderr
    if register:
        key = device.load(scanner_dir).key
        ledger.append(sign(registration("admin", DEVICE, records_pb2.ROLE_SCANNER, key), world.admin))
    ledger.close()
    return world.data_dir, scanner_dir


def scans_in_log(address: str) -> list[tuple[int, str]]:
    with LedgerClient(address) as client:
        out = []
        for seq, raw in client.list_entries():
            record = records_pb2.Record.FromString(records_pb2.Entry.FromString(raw).signed_record.record_bytes)
            if record.WhichOneof("body") == "scan":
                out.append((seq, record.record_id))
        return out


def assert_exactly_once_in_order(found: list[tuple[int, str]], n: int) -> None:
    numbers = [int(rid.rsplit("/", 1)[1]) for _, rid in found]
    assert numbers == list(range(n)), "every scan once, in the order taken"


@pytest.mark.slow
def test_offline_scans_arrive_once_in_order_even_when_the_sender_is_killed(tmp_path: Path) -> None:
    data_dir, scanner_dir = setup(tmp_path)
    port = free_port()
    lines = "".join(f"]C101{GTIN}10LOT-{i}\x1d17271231\n" for i in range(1000))
    # The server is not running: all 1,000 are signed and spooled, none lost.
    out = scan_cli(
        "run", "--data-dir", str(scanner_dir), "--station", "plant-7/dock-2", "--meaning", "receive",
        "--server", f"127.0.0.1:{port}", "--no-send", stdin=lines,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("spooled  #") == 1000
    status = scan_cli("status", "--data-dir", str(scanner_dir))
    assert "spooled 1000  sent 0  refused at station 0  refused by server 0" in status.stdout

    server = start_server(data_dir, port)
    try:
        # Drain in small batches and kill the scanner process part-way through.
        sender = subprocess.Popen(
            [sys.executable, "-m", "lotledger.cli.scan", "send", "--data-dir", str(scanner_dir),
             "--server", f"127.0.0.1:{port}", "--batch", "5"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while len(scans_in_log(f"127.0.0.1:{port}")) < 150 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(sender.pid, signal.SIGKILL)
        sender.wait()
        partial = len(scans_in_log(f"127.0.0.1:{port}"))
        assert 150 <= partial < 1000, f"the kill must land mid-drain (got {partial})"
        # Restart the scanner: it resends what was not yet settled; the ledger keeps each once.
        out = scan_cli("send", "--data-dir", str(scanner_dir), "--server", f"127.0.0.1:{port}")
        assert out.returncode == 0, out.stderr
        assert_exactly_once_in_order(scans_in_log(f"127.0.0.1:{port}"), 1000)
        status = scan_cli("status", "--data-dir", str(scanner_dir))
        assert "spooled 0" in status.stdout and "refused at station 0  refused by server 0" in status.stdout
    finally:
        server.kill()
        server.wait()


def test_bad_scans_are_refused_at_the_station_and_never_spooled(tmp_path: Path) -> None:
    _, scanner_dir = setup(tmp_path, register=False)
    out = scan_cli(
        "run", "--data-dir", str(scanner_dir), "--station", "plant-7/dock-2", "--meaning", "receive",
        "--no-send", "--separator", "|", stdin=f"0109520000000012|10X\n01{GTIN}10A|17271231\n01{GTIN}9X1\n",
    )  # fmt: skip
    assert out.returncode == 1, "a refused line is a failed run, for the script or operator that ran it"
    assert "2 refused at this station, 0 by the server" in out.stderr
    assert "refused" in out.stdout and "BAD_CHECK_DIGIT" in out.stdout and "UNKNOWN_AI" in out.stdout
    assert out.stdout.count("spooled  #") == 1
    spool = Spool(scanner_dir)
    assert spool.counts()["spooled"] == 1 and spool.counts()["refused_at_station"] == 2
    assert [r.reason for r in spool.refused_at_station()] == ["BAD_CHECK_DIGIT", "UNKNOWN_AI"]
    spool.close()
    status = scan_cli("status", "--data-dir", str(scanner_dir))
    assert status.returncode == 0
    assert "spooled 1  sent 0  refused at station 2  refused by server 0" in status.stdout
    assert "refused at station" in status.stdout and "'0109520000000012|10X': BAD_CHECK_DIGIT" in status.stdout
    # A run where every line is a good scan exits 0.
    good = scan_cli(
        "run", "--data-dir", str(scanner_dir), "--station", "plant-7/dock-2", "--meaning", "receive",
        "--no-send", stdin=f"(01){GTIN}(10)OK-1\n",
    )  # fmt: skip
    assert good.returncode == 0, good.stderr


def test_a_run_whose_scans_the_server_refuses_exits_1_and_status_says_where(tmp_path: Path) -> None:
    data_dir, scanner_dir = setup(tmp_path, register=False)  # the device key is not registered
    port = free_port()
    server = start_server(data_dir, port)
    try:
        out = scan_cli(
            "run", "--data-dir", str(scanner_dir), "--station", "plant-7/dock-2", "--meaning", "receive",
            "--server", f"127.0.0.1:{port}", "--drain-timeout", "60",
            stdin=f"(01){GTIN}(10)R-1\n(01){GTIN}(10)R-2\nnot a scan\n",
        )  # fmt: skip
    finally:
        server.kill()
        server.wait()
    assert out.returncode == 1, out.stderr
    assert "1 refused at this station, 2 by the server in this session" in out.stderr
    assert out.stdout.count("UNKNOWN_KEY") == 2
    status = scan_cli("status", "--data-dir", str(scanner_dir))
    assert "spooled 0  sent 0  refused at station 1  refused by server 2" in status.stdout
    assert status.stdout.count("refused by server   #") == 2
    assert "refused at station" in status.stdout and "'not a scan'" in status.stdout


def test_refused_scans_are_kept_aside_then_retried(served, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    scanner_dir = tmp_path / "scanner"
    device.enroll(scanner_dir, DEVICE)
    dev = device.load(scanner_dir)
    spool = Spool(scanner_dir)
    station = Station(dev, "plant-7/dock-2", "receive")
    for n in range(3):
        spool.add(station.sign(parse_scan(f"01{GTIN}10R{n}"), spool.epoch, n), n)
    sender = Sender(spool, served.server.address)
    # The device is not registered yet: the server says no, and the scans are kept with why.
    drained = sender.drain_once()
    assert (drained.sent, drained.refused) == (0, 3)
    assert spool.counts()["refused"] == 3 and spool.counts()["spooled"] == 0
    assert {r.reason for r in spool.refused()} == {"UNKNOWN_KEY"}
    assert sender.drain_once().sent == 0, "refused scans are not retried on their own"
    # An admin registers the device; the operator puts the scans back in line.
    served.client.append(signed(registration("admin", DEVICE, records_pb2.ROLE_SCANNER, dev.key), served.world.admin))
    assert spool.retry_refused() == 3
    assert sender.drain_once().sent == 3
    assert spool.counts() == {"spooled": 0, "sent": 3, "refused": 0, "refused_at_station": 0, "taken": 3}
    # A scanner key signs scans and nothing else.
    ship = shipment("plant")
    ship.submitter = DEVICE
    with pytest.raises(PermissionDenied):
        served.client.append(sign(ship, dev.key))
    # A revoked device's later scans are refused and kept aside the same way.
    served.client.append(signed(revocation("admin", dev.key.public.key_id), served.world.admin))
    spool.add(station.sign(parse_scan(f"01{GTIN}10R9"), spool.epoch, 3), 3)
    assert sender.drain_once().refused == 1
    assert [r.reason for r in spool.refused()] == ["KEY_REVOKED"]
    sender.close()
    spool.close()


def test_a_rate_limited_drain_is_retried_never_set_aside(tmp_path: Path) -> None:
    """The server's per-participant append rate (RESOURCE_EXHAUSTED) is a "not now", like the
    server being away: the sender backs off and resends; no scan is kept aside as refused."""
    from lotledger.ledger.errors import ResourceExhausted
    from lotledger.ledger.log import LedgerConfig
    from lotledger.rpc.limits import Limits
    from lotledger.rpc.server import LedgerServer

    data_dir, scanner_dir = setup(tmp_path)
    server = LedgerServer(
        data_dir,
        "127.0.0.1:0",
        config=LedgerConfig(checkpoint_interval=0.05),
        limits=Limits(append_rate=20, append_burst=5),
    ).start()
    try:
        dev, spool = device.load(scanner_dir), Spool(scanner_dir)
        station = Station(dev, "plant-7/dock-2", "receive")
        for n in range(15):
            spool.add(station.sign(parse_scan(f"01{GTIN}10R{n}"), spool.epoch, n), n)
        sender = Sender(spool, server.address)
        limited, deadline = 0, time.monotonic() + 30
        while spool.counts()["spooled"] and time.monotonic() < deadline:
            try:
                sender.drain_once()
            except ResourceExhausted:
                limited += 1
                time.sleep(0.1)
        assert limited > 0, "the rate limit was reached"
        assert spool.counts()["refused"] == 0 and spool.counts()["sent"] == 15
        assert_exactly_once_in_order(scans_in_log(server.address), 15)
        sender.close()
        spool.close()
    finally:
        server.stop(grace=1)
