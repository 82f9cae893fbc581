"""Scans from every source a station has: barcodes rendered by zxing-cpp's writer (GS1-128 and
GS1 DataMatrix) photographed, decoded, signed, sent to a real server and found by
`lotledger trace`; a serial port (a real pty); HID keyboard reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import zxingcpp
from click.testing import CliRunner
from helpers import registration, scan_cli, signed
from PIL import Image

from lotledger.cli.main import main as lotledger
from lotledger.scanner_client import device
from lotledger.scanner_client.gs1 import parse_scan
from lotledger.scanner_client.inputs import hid_scans, image_scans
from lotledger.v1 import records_pb2

FLOUR_GTIN, BREAD_GTIN = "09520000000011", "09520000000035"
DEVICE = "line-1-scanner"


def render(hri: str, fmt: zxingcpp.BarcodeFormat, path: Path, *, photo: bool = False) -> Path:
    """A label as zxing-cpp's writer draws it in GS1 mode; `photo`: on a grey background,
    scaled and turned a little, as a phone camera would see it."""
    barcode = zxingcpp.create_barcode(hri, fmt, gs1=True)
    image = Image.fromarray(__import__("numpy").asarray(barcode.to_image(scale=4)))
    if photo:
        canvas = Image.new("L", (image.width + 160, image.height + 160), 200)
        canvas.paste(image, (80, 80))
        image = canvas.resize((canvas.width * 3 // 2, canvas.height * 3 // 2)).rotate(7, expand=True, fillcolor=200)
    image.save(path)
    return path


def test_rendered_labels_decode_to_the_scans_a_wedge_scanner_would_type(tmp_path: Path) -> None:
    code128 = render(
        f"(01){FLOUR_GTIN}(10)F-77(17)271231(3103)025000", zxingcpp.BarcodeFormat.Code128, tmp_path / "a.png"
    )
    matrix = render(
        f"(01){BREAD_GTIN}(10)B9(21)S1(11)261120(30)24",
        zxingcpp.BarcodeFormat.DataMatrix,
        tmp_path / "b.png",
        photo=True,
    )
    (a,) = image_scans(code128)
    (b,) = image_scans(matrix)
    assert a == f"]C101{FLOUR_GTIN}10F-77\x1d172712313103025000"
    assert b.startswith("]d2") and "\x1d" in b
    flour, bread = parse_scan(a), parse_scan(b)
    assert (flour.lot_key, flour.expiry_date, flour.net_weight_kg) == (
        f"01/{FLOUR_GTIN}/10/F-77",
        "2027-12-31",
        "25.000",
    )
    assert (bread.lot_key, bread.serial, bread.production_date, bread.count) == (
        f"01/{BREAD_GTIN}/10/B9",
        "S1",
        "2026-11-20",
        24,
    )


def test_photographed_labels_reach_the_ledger_and_the_trace(served: SimpleNamespace, tmp_path: Path) -> None:
    scanner_dir = tmp_path / "scanner"
    assert scan_cli("enroll", "--data-dir", str(scanner_dir), "--device-id", DEVICE).returncode == 0
    key = device.load(scanner_dir).key
    served.client.append(signed(registration("admin", DEVICE, records_pb2.ROLE_SCANNER, key), served.world.admin))
    flour = render(f"(01){FLOUR_GTIN}(10)F-77(3103)025000", zxingcpp.BarcodeFormat.Code128, tmp_path / "f.png")
    bread = render(
        f"(01){BREAD_GTIN}(10)B9(17)261231", zxingcpp.BarcodeFormat.DataMatrix, tmp_path / "b.png", photo=True
    )
    blank = tmp_path / "blank.png"
    Image.new("L", (200, 200), 255).save(blank)
    address = served.server.address

    def station(meaning: str, *files: Path, code: int = 0) -> str:
        out = scan_cli(
            "image", "--data-dir", str(scanner_dir), "--station", "plant-7/line-1", "--meaning", meaning,
            "--server", address, *map(str, files),
        )  # fmt: skip
        assert out.returncode == code, out.stderr
        return out.stdout

    # At the line: the bread lot starts (produce), then the flour sack goes in (consume). The
    # blank photo is refused at the station: the run says so by its exit code.
    out = station("produce", bread, blank, code=1)
    assert "refused" in out and "NO_BARCODE" in out and "accepted #0" in out
    assert "accepted #1" in station("consume", flour)

    def trace(direction: str, lot: str) -> dict:  # type: ignore[type-arg]
        result = CliRunner().invoke(lotledger, ["trace", direction, lot, "--server", address, "--json"])
        assert result.exit_code == 0, result.output
        found: dict = json.loads(result.stdout)  # type: ignore[type-arg]
        return found

    up = trace("up", f"01/{BREAD_GTIN}/10/B9")
    assert [lot["lot"] for lot in up["lots"]] == [f"01/{BREAD_GTIN}/10/B9", f"01/{FLOUR_GTIN}/10/F-77"]
    (edge,) = up["edges"]
    assert edge["quantity"] == {"amount": "25", "unit": "KGM"}
    bread_view = up["lots"][0]
    assert bread_view["expiry_date"] == "2026-12-31"
    assert bread_view["scans"][0]["meaning"] == "produce" and bread_view["scans"][0]["raw_data"].startswith("]d2")
    down = trace("down", f"01/{FLOUR_GTIN}/10/F-77")
    assert f"01/{BREAD_GTIN}/10/B9" in [lot["lot"] for lot in down["lots"]]
    # People read it too.
    text = CliRunner().invoke(lotledger, ["trace", "up", f"01/{BREAD_GTIN}/10/B9", "--server", address])
    assert "produce scan at plant-7/line-1 by line-1-scanner" in text.stdout


def test_a_serial_scanner_on_a_tty(tmp_path: Path) -> None:
    scanner_dir = tmp_path / "scanner"
    device.enroll(scanner_dir, DEVICE)
    master, slave = os.openpty()
    port = os.ttyname(slave)
    proc = subprocess.Popen(
        [sys.executable, "-m", "lotledger.cli.scan", "run", "--data-dir", str(scanner_dir),
         "--station", "plant-7/dock-2", "--meaning", "receive", "--no-send", "--input", port, "--baud", "115200"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(1.0)  # let it open and set up the port
    # A serial scanner ends each scan with CR; the GS separator comes through as itself.
    os.write(master, f"]C101{FLOUR_GTIN}10S-1\x1d17271231\r01{FLOUR_GTIN}10S-2\r0109520000000012\r".encode())
    time.sleep(1.0)
    os.close(master)  # the scanner goes away: the station ends its input cleanly
    os.close(slave)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err  # the third line was refused
    assert out.count("spooled  #") == 2 and "BAD_CHECK_DIGIT" in out
    assert "1 refused at this station" in err


def _report(char: str) -> list[bytes]:
    """The key-down and key-up reports a HID scanner sends for one character."""
    keys = {c: (0x04 + i, 0) for i, c in enumerate("abcdefghijklmnopqrstuvwxyz")}
    keys.update({c.upper(): (k, 0x02) for c, (k, _) in list(keys.items())})
    keys.update({d: (0x1E + i, 0) for i, d in enumerate("1234567890")})
    keys.update({"-": (0x2D, 0), "]": (0x30, 0), "\x1d": (0x30, 0x01), "\n": (0x28, 0)})
    key, mods = keys[char]
    return [bytes([mods, 0, key, 0, 0, 0, 0, 0]), bytes(8)]


def test_hid_keyboard_reports_decode_to_scans() -> None:
    typed = f"]C101{FLOUR_GTIN}10Ab-1\x1d17271231\n01{FLOUR_GTIN}10X\n"
    reports = [r for c in typed for r in _report(c)]
    assert list(hid_scans(reports)) == [f"]C101{FLOUR_GTIN}10Ab-1\x1d17271231", f"01{FLOUR_GTIN}10X"]
    # Repeated characters arrive with a key-up between them; a held key is not repeated.
    held = [bytes([0, 0, 0x1E, 0, 0, 0, 0, 0])] * 3 + [bytes(8)] + [bytes([0, 0, 0x1E, 0, 0, 0, 0, 0])]
    assert list(hid_scans(held)) == ["11"]
