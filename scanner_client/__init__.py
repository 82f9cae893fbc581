"""The scanner station: GS1 scan parsing with biip (gs1.py), where scans come from (stdin,
serial, HID, images: inputs.py), the device's own key (device.py), a scan at a station as a
signed Scan record (station.py), the durable LMDB spool (spool.py) and the in-order sender
that drains it through AppendStream (sender.py). `lotledger-scan` (cli/scan.py) drives it."""
