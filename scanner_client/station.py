"""A scan at a station becomes a signed `Scan` record (DESIGN section 3)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from lotledger.ledger.core.records import sign
from lotledger.scanner_client.device import Device
from lotledger.scanner_client.gs1 import ParsedScan
from lotledger.v1 import records_pb2

MEANINGS = {
    "receive": records_pb2.SCAN_MEANING_RECEIVE,
    "consume": records_pb2.SCAN_MEANING_CONSUME,
    "produce": records_pb2.SCAN_MEANING_PRODUCE,
    "ship": records_pb2.SCAN_MEANING_SHIP,
}


@dataclass(frozen=True)
class Station:
    device: Device
    location: str  # where the station stands, e.g. plant-7/dock-2 or plant-7/line-1
    meaning: str  # receive, consume, produce or ship

    def record(self, scan: ParsedScan, epoch: str, number: int, at: datetime | None = None) -> records_pb2.Record:
        record = records_pb2.Record(
            record_id=f"scan/{self.device.device_id}/{epoch}/{number}", submitter=self.device.device_id
        )
        when = at or datetime.now(UTC)
        record.created_at.FromDatetime(when)
        s = record.scan
        s.device_id, s.raw_data, s.meaning, s.location = (
            self.device.device_id,
            scan.raw,
            MEANINGS[self.meaning],
            self.location,
        )
        s.scanned_at.FromDatetime(when)
        g = s.gs1
        g.gtin, g.lot, g.sscc, g.serial = scan.gtin, scan.lot, scan.sscc, scan.serial
        g.expiry_date, g.production_date = scan.expiry_date, scan.production_date
        if scan.net_weight_kg:
            g.net_weight.amount, g.net_weight.unit = scan.net_weight_kg, "KGM"
        g.count = scan.count
        return record

    def sign(self, scan: ParsedScan, epoch: str, number: int, at: datetime | None = None) -> records_pb2.SignedRecord:
        return sign(self.record(scan, epoch, number, at), self.device.key)
