"""Where scans come from: a keyboard wedge (stdin), a serial port, a HID scanner, a photo.

Every source yields scans as text, one per scan, in the form a keyboard-wedge scanner types
them (GS1 data with ASCII 29 as the group separator, an AIM symbology id such as `]C1` in
front where the source knows it), so the rest of the station handles them all alike.

- Serial (USB CDC, RS-232): the port is put in canonical mode without echo at the baud rate
  given, and read a line at a time.
- HID (`/dev/hidraw*`) scanners in keyboard mode send 8-byte boot keyboard reports; we decode
  the US layout they emulate. Ctrl+] is the group separator (what GS1 scanners send in
  keyboard mode), Enter ends a scan.
- Images: `zxing-cpp` finds and decodes every barcode in a photo.
"""

from __future__ import annotations

import errno
import os
import stat
import termios
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

GS = "\x1d"


def device_lines(path: Path, baud: int = 9600) -> Iterator[str]:
    """Scans from a device path, a line each: a tty is set up as a serial line first. Ends when
    the device goes away (EIO: unplugged, or the other end of a pty closed)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOCTTY)
    if os.isatty(fd):
        _setup_serial(fd, baud)
    with os.fdopen(fd, "r", encoding="latin-1", newline=None) as stream:
        try:
            yield from stream
        except OSError as e:
            if e.errno != errno.EIO:
                raise


_BAUDS = {n: getattr(termios, f"B{n}") for n in (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)}


def _setup_serial(fd: int, baud: int) -> None:
    if baud not in _BAUDS:
        raise ValueError(f"baud rate {baud} is not one of {', '.join(map(str, _BAUDS))}")
    iflag, oflag, cflag, lflag, _, _, cc = termios.tcgetattr(fd)
    iflag = (iflag | termios.ICRNL) & ~(termios.IXON | termios.IXOFF | termios.ISTRIP)  # CR ends a scan too
    cflag |= termios.CREAD | termios.CLOCAL
    lflag = (lflag | termios.ICANON) & ~(termios.ECHO | termios.ECHONL | termios.ISIG | termios.IEXTEN)
    termios.tcsetattr(fd, termios.TCSANOW, [iflag, oflag, cflag, lflag, _BAUDS[baud], _BAUDS[baud], cc])


def is_hidraw(path: Path) -> bool:
    try:
        return stat.S_ISCHR(path.stat().st_mode) and path.name.startswith("hidraw")
    except OSError:
        return False


# HID keyboard usage ids (USB HID Usage Tables, page 0x07) -> (plain, shifted), US layout.
_KEYS: dict[int, tuple[str, str]] = {
    **{0x04 + i: (c, c.upper()) for i, c in enumerate("abcdefghijklmnopqrstuvwxyz")},
    **{0x1E + i: (d, s) for i, (d, s) in enumerate(zip("1234567890", "!@#$%^&*()", strict=True))},
    0x2C: (" ", " "),
    0x2D: ("-", "_"),
    0x2E: ("=", "+"),
    0x2F: ("[", "{"),
    0x30: ("]", "}"),
    0x31: ("\\", "|"),
    0x33: (";", ":"),
    0x34: ("'", '"'),
    0x35: ("`", "~"),
    0x36: (",", "<"),
    0x37: (".", ">"),
    0x38: ("/", "?"),
    0x2B: ("\t", "\t"),
}
_ENTER = (0x28, 0x58)  # Enter, keypad Enter
_CTRL, _SHIFT = 0x11, 0x22  # left|right Ctrl, left|right Shift bits of the modifier byte


def hid_scans(reports: Iterable[bytes]) -> Iterator[str]:
    """Decode 8-byte boot keyboard reports into scans. A key counts when it appears in a
    report, not while it is held (scanners send a key-up report between repeated characters)."""
    text: list[str] = []
    held: set[int] = set()
    for report in reports:
        if len(report) < 8:
            continue
        modifiers, keys = report[0], [k for k in report[2:8] if k > 3]
        for key in keys:
            if key in held:
                continue
            if key in _ENTER:
                if text:
                    yield "".join(text)
                text = []
            elif modifiers & _CTRL and key == 0x30:  # Ctrl+] = ASCII 29, the GS1 separator
                text.append(GS)
            elif key in _KEYS:
                text.append(_KEYS[key][1 if modifiers & _SHIFT else 0])
        held = set(keys)
    if text:
        yield "".join(text)


def hid_reports(stream: IO[bytes]) -> Iterator[bytes]:
    while report := stream.read(8):
        yield report


def hid_lines(path: Path) -> Iterator[str]:
    with open(path, "rb", buffering=0) as stream:
        yield from hid_scans(hid_reports(stream))


# AIM symbology ids for GS1 data, by the format zxing-cpp reports (the id zxing-cpp reads back
# from a Data Matrix carries ECI flags that scanners do not send).
_GS1_IDS = {"Code128": "]C1", "DataMatrix": "]d2", "QRCode": "]Q3"}


def image_scans(path: Path) -> list[str]:
    """Every barcode zxing-cpp finds in an image file, as a wedge scanner would type it.
    Raises OSError if the file cannot be read as an image."""
    import zxingcpp  # heavy, and only this command needs it
    from PIL import Image

    with Image.open(path) as image:
        found = zxingcpp.read_barcodes(image, text_mode=zxingcpp.TextMode.Plain)
    out = []
    for barcode in found:
        if barcode.content_type == zxingcpp.ContentType.GS1:
            name = barcode.format.name
            ident = "]e0" if name.startswith("DataBar") else _GS1_IDS.get(name, barcode.symbology_identifier)
            out.append(ident + barcode.text)
        else:
            out.append(barcode.text)
    return out
