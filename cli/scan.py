"""`lotledger-scan`: the station program on a scanner device.

    lotledger-scan enroll --device-id dock-2-scanner       # make the device key, print what to register
    lotledger-scan run --station plant-7/dock-2 --meaning receive   # one scan per line on stdin
    lotledger-scan run ... --input /dev/ttyACM0 --baud 9600  # or a serial / HID (/dev/hidraw0) scanner
    lotledger-scan image --station plant-7/dock-2 --meaning receive label.png  # barcodes in photos
    lotledger-scan status                                   # spooled, sent, refused (with reasons)
    lotledger-scan send                                     # drain the spool now, then exit
    lotledger-scan retry                                    # put refused scans back in line

Each scan line is answered on stdout: `spooled #n ...` once it is signed and on disk,
`accepted #n -> entry s` when the ledger has committed it, `refused ...` with the reason,
either here (bad data, never signed) or by the server (kept aside, see `status`).

`run` and `image` exit 0 when every line became a signed scan and the server refused none of
those it answered; 1 when a line was refused, at the station or by the server (`status` lists
both, apart); 2 for bad arguments, an unreadable input or a missing device key. Scans still
spooled at the end (the server away) are not a failure: they are sent by the next run or `send`.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import click

from lotledger.cli.options import client_tls, server_option
from lotledger.cli.output import ExitCode, fail, handles_errors

if TYPE_CHECKING:
    from lotledger.scanner_client.spool import Spool

# sorted(lotledger.scanner_client.station.MEANINGS), the choices of --meaning: importing the
# station to build the option would load the generated messages and the keys for `--help`.
# tests/cli/test_startup.py checks that the two agree. The station's parts are imported by the
# commands that use them.
MEANING_NAMES = ("consume", "produce", "receive", "ship")

EXIT_CODES = """\b
Exit codes:
  0  every line became a signed scan; the server refused none it answered
     (scans still spooled, the server away, are sent by the next run or `send`)
  1  a line was refused: at this station (not a scan it can read) or by the
     server; `lotledger-scan status` lists both, apart
  2  bad arguments, an unreadable input, or no device key in --data-dir"""


class StationRefusal(NamedTuple):
    """An input the station refused before any scan was made of it (an image with no barcode)."""

    line: str
    reason: str
    message: str


data_dir_option = click.option(
    "--data-dir",
    envvar="LOTLEDGER_SCAN_DIR",
    default="./scanner",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The device's own directory: key, spool (env LOTLEDGER_SCAN_DIR).",
)


def say(line: str) -> None:
    click.echo(line)
    sys.stdout.flush()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Turn barcode scans into ledger records signed by this device, and deliver them even
    when the network is not there."""


@main.command()
@data_dir_option
@click.option("--device-id", required=True, help="This device's participant id in the ledger.")
@handles_errors
def enroll(data_dir: Path, device_id: str) -> None:
    """Make this device's key (the private key never leaves DATA_DIR)."""
    from lotledger.scanner_client import device

    pub = device.enroll(data_dir, device_id)
    say(pub.read_text().rstrip())
    click.echo(
        f"\nDevice key made. An admin registers it with:\n"
        f"  lotledger keys register --id {device_id} --role scanner --public-key {pub} --key ADMIN_KEY\n"
        f"({pub} is public: copy it to the admin. device.key stays here.)",
        err=True,
    )


def station_options(f: Callable[..., None]) -> Callable[..., None]:
    for option in reversed(
        [
            data_dir_option,
            click.option(
                "--station", "location", required=True, help="Location id of this station, e.g. plant-7/dock-2."
            ),
            click.option("--meaning", required=True, type=click.Choice(MEANING_NAMES), help="What a scan here means."),
            click.option("--separator", default="", help="Character this scanner sends for the GS1 group separator."),
            click.option("--no-send", is_flag=True, help="Only spool; send later with `lotledger-scan send`."),
            click.option(
                "--drain-timeout", default=10.0, show_default=True, help="At end of input, seconds to wait for sends."
            ),
            server_option,
        ]
    ):
        f = option(f)
    return f


@main.command(epilog=EXIT_CODES)
@station_options
@click.option(
    "--input",
    "source",
    default="-",
    show_default=True,
    help="Where scans come from: - for stdin (a keyboard-wedge scanner), a serial port (/dev/ttyACM0), "
    "a HID scanner (/dev/hidraw0), or a file or FIFO of lines.",
)
@click.option("--baud", default=9600, show_default=True, help="Baud rate of a serial port.")
@handles_errors
def run(source: str, baud: int, **station: Any) -> None:
    """Read one scan per line: parse, sign, spool, send.

    A line is what a keyboard-wedge scanner types for one GS1 barcode, e.g.
    `(01)09520000000011(10)LOT-42(17)271231` (human-readable) or the raw form with
    the group separator (see --separator).
    """
    from lotledger.scanner_client.inputs import device_lines, hid_lines, is_hidraw

    if source == "-":
        _session(sys.stdin, **station)
    elif is_hidraw(Path(source)):
        _session(hid_lines(Path(source)), **station)
    else:
        _session(device_lines(Path(source), baud), **station)


@main.command(epilog=EXIT_CODES)
@station_options
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@handles_errors
def image(files: tuple[Path, ...], **station: Any) -> None:
    """Decode the barcodes in photos or label images (zxing-cpp) and handle each as a scan.

    FILES are image files (JPEG, PNG...), each with one or more barcodes."""
    from lotledger.scanner_client.inputs import image_scans

    def scans() -> Iterator[str | StationRefusal]:
        for path in files:
            try:
                found = image_scans(path)
            except OSError as e:
                yield StationRefusal(str(path), "UNREADABLE_IMAGE", str(e))
                continue
            if not found:
                yield StationRefusal(str(path), "NO_BARCODE", "no barcode found in the image")
            yield from found

    _session(scans(), **station)


def _session(
    lines: Iterable[str | StationRefusal],
    data_dir: Path,
    location: str,
    meaning: str,
    separator: str,
    no_send: bool,
    drain_timeout: float,
    server: str,
) -> None:
    from lotledger.scanner_client import device
    from lotledger.scanner_client.gs1 import ScanRefused, parse_scan
    from lotledger.scanner_client.sender import Sender
    from lotledger.scanner_client.spool import Spool
    from lotledger.scanner_client.station import Station

    station = Station(device.load(data_dir), location, meaning)
    spool = Spool(data_dir)
    before = spool.counts()
    stop = threading.Event()
    sender = Sender(spool, server, report=say, tls=client_tls())
    thread = threading.Thread(target=sender.run, args=(stop,), name="sender", daemon=True)
    if not no_send:
        thread.start()
    try:
        for line in lines:
            if isinstance(line, StationRefusal):
                spool.refuse_at_station(*line)
                say(f"refused  {line.line}: {line.reason}: {line.message}")
                continue
            raw = line.rstrip("\r\n")
            if not raw.strip():
                continue
            try:
                scan = parse_scan(raw, separator=separator)
            except ScanRefused as e:
                spool.refuse_at_station(raw, e.reason, str(e))
                say(f"refused  {raw!r}: {e.reason}: {e}")
                continue
            number = spool.next_number()
            spool.add(station.sign(scan, spool.epoch, number), number)
            say(f"spooled  #{number} {scan.lot_key or 'sscc ' + scan.sscc}")
        if not no_send:
            deadline = time.monotonic() + drain_timeout
            while spool.counts()["spooled"] and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        stop.set()
        spool.added.set()  # wake the sender if it is waiting for scans
        if thread.is_alive():
            thread.join(5)
        after = _summary(spool)
        spool.close()
    at_station = after["refused_at_station"] - before["refused_at_station"]
    by_server = after["refused"] - before["refused"]
    if at_station or by_server:
        fail(
            f"{at_station} refused at this station, {by_server} by the server in this session: "
            "see `lotledger-scan status`",
            ExitCode.FAILED,
        )


@main.command()
@data_dir_option
@server_option
@click.option("--timeout", default=60.0, show_default=True, help="Give up after this many seconds.")
@click.option("--batch", default=200, show_default=True, help="Scans per AppendStream message.")
@handles_errors
def send(data_dir: Path, server: str, timeout: float, batch: int) -> None:
    """Drain the spool now (in order), then exit."""
    from lotledger.scanner_client.sender import Sender
    from lotledger.scanner_client.spool import Spool

    spool = Spool(data_dir)
    sender = Sender(spool, server, batch=batch, report=say, tls=client_tls())
    stop = threading.Event()
    thread = threading.Thread(target=sender.run, args=(stop,), daemon=True)
    before = spool.counts()
    started = time.monotonic()
    thread.start()
    while spool.counts()["spooled"] and time.monotonic() < started + timeout:
        time.sleep(0.02)
    stop.set()
    spool.added.set()  # wake the sender if it is waiting for scans
    thread.join(5)
    after = spool.counts()
    answered = after["sent"] - before["sent"] + after["refused"] - before["refused"]
    elapsed = time.monotonic() - started
    click.echo(f"{answered} answered in {elapsed:.2f} s ({answered / max(elapsed, 1e-9):,.0f}/s)", err=True)
    _summary(spool)
    spool.close()
    if after["spooled"]:
        raise SystemExit(f"{after['spooled']} scans still spooled after {timeout:g} s: is the server at {server} up?")


@main.command()
@data_dir_option
@click.option("--last", default=20, show_default=True, help="How many of the station's refusals to list.")
@handles_errors
def status(data_dir: Path, last: int) -> None:
    """Counts; every scan the server refused, with its reason (fix the cause, then `retry`);
    and the last lines this station refused (not scans it can read: rescan them)."""
    from lotledger.scanner_client.spool import Spool

    spool = Spool(data_dir)
    say(_counts_line(spool.counts()))
    for r in spool.refused():
        say(f"refused by server   #{r.number} {r.record_id}: {r.reason}: {r.message}")
    for s in spool.refused_at_station(last):
        say(f"refused at station  {s.at} {s.line!r}: {s.reason}: {s.message}")
    spool.close()


@main.command()
@data_dir_option
@handles_errors
def retry(data_dir: Path) -> None:
    """Put refused scans back in line (after the cause was fixed, e.g. the key registered)."""
    from lotledger.scanner_client.spool import Spool

    spool = Spool(data_dir)
    say(f"{spool.retry_refused()} refused scans back in the spool")
    spool.close()


def _counts_line(c: dict[str, int]) -> str:
    return (
        f"spooled {c['spooled']}  sent {c['sent']}  "
        f"refused at station {c['refused_at_station']}  refused by server {c['refused']}"
    )


def _summary(spool: Spool) -> dict[str, int]:
    c = spool.counts()
    click.echo(_counts_line(c), err=True)
    return c


if __name__ == "__main__":
    main()
