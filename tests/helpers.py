"""Record builders and a small world (admin, supplier, manufacturer, QA) for the tests.
Real keys, real LMDB: nothing here is a mock."""

from __future__ import annotations

import itertools
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from lotledger.ledger.core.records import sign
from lotledger.ledger.errors import StorageError
from lotledger.ledger.log import Ledger, LedgerConfig
from lotledger.rpc.client import LedgerClient
from lotledger.signing.keys import SigningKey
from lotledger.v1 import records_pb2

ORIGIN = "test.example.com/lotledger"
# GS1 company prefix 952 is reserved for examples.
GTIN_A = "09520000000011"  # valid check digit
GTIN_B = "09520000000028"
_counter = itertools.count()


def gtin(n: int) -> str:
    """A valid GTIN-14 under the example prefix 952."""
    body = f"0952{n:09d}"
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return body + str((10 - total % 10) % 10)


def lot(gtin_: str = GTIN_A, number: str = "L1") -> records_pb2.LotId:
    return records_pb2.LotId(gtin=gtin_, lot=number)


def qty(amount: str = "10", unit: str = "KGM") -> records_pb2.Quantity:
    return records_pb2.Quantity(amount=amount, unit=unit)


def new_record(submitter: str, record_id: str | None = None) -> records_pb2.Record:
    record = records_pb2.Record(
        record_id=record_id or f"r-{next(_counter)}-{uuid.uuid4().hex[:8]}", submitter=submitter
    )
    record.created_at.GetCurrentTime()
    return record


def shipment(
    submitter: str = "acme", *, record_id: str | None = None, amount: str = "10", gtin_: str = GTIN_A
) -> records_pb2.Record:
    record = new_record(submitter, record_id)
    s = record.shipment
    s.shipment_id = f"SH-{record.record_id}"
    s.lots.add(lot=lot(gtin_), quantity=qty(amount))
    s.from_participant, s.to_participant = submitter, "plant"
    s.shipped_at.GetCurrentTime()
    return record


def material_received(
    submitter: str = "plant", *, record_id: str | None = None, lot_number: str = "L1"
) -> records_pb2.Record:
    record = new_record(submitter, record_id)
    m = record.material_received
    m.lot.CopyFrom(lot(GTIN_A, lot_number))
    m.supplier, m.supplier_lot_code, m.location = "acme", "ACME-77", "plant-7/dock-1"
    m.quantity.CopyFrom(qty("500"))
    m.received_at.GetCurrentTime()
    return record


def quality_check(submitter: str = "qa1") -> records_pb2.Record:
    record = new_record(submitter)
    q = record.quality_check
    q.lot.CopyFrom(lot())
    q.check_name, q.result, q.signed_off_by = "micro", records_pb2.QC_RESULT_PASS, "J. Doe"
    q.checked_at.GetCurrentTime()
    return record


def registration(admin: str, participant_id: str, role: int, key: SigningKey) -> records_pb2.Record:
    record = new_record(admin, f"register/{participant_id}/{key.key_id[:12]}")
    reg = record.participant_registered
    reg.participant_id, reg.role, reg.public_key = participant_id, role, key.public.raw
    return record


def revocation(admin: str, key_id: str) -> records_pb2.Record:
    record = new_record(admin, f"revoke/{key_id[:12]}")
    record.key_revoked.key_id, record.key_revoked.reason = key_id, "lost device"
    return record


@dataclass
class World:
    """A ledger with an admin, a supplier `acme`, a manufacturer `plant`, and QA `qa1`."""

    data_dir: Path
    log_key: SigningKey
    admin: SigningKey
    keys: dict[str, SigningKey] = field(default_factory=dict)


def make_world(tmp_path: Path, config: LedgerConfig | None = None) -> tuple[World, Ledger]:
    data_dir = tmp_path / "data"
    (data_dir / "keys").mkdir(parents=True)
    log_key, admin = SigningKey.generate(), SigningKey.generate()
    log_key.save_pair(data_dir / "keys" / "log.key")
    admin.save_pair(data_dir / "keys" / "admin.key")
    ledger = Ledger.initialize(
        data_dir, ORIGIN, log_key, admin, config=config or LedgerConfig(checkpoint_interval=0.05)
    )
    world = World(data_dir, log_key, admin)
    for pid, role in (
        ("acme", records_pb2.ROLE_SUPPLIER),
        ("plant", records_pb2.ROLE_MANUFACTURER),
        ("qa1", records_pb2.ROLE_QA),
    ):
        key = SigningKey.generate()
        ledger.append(sign(registration("admin", pid, role, key), admin))
        world.keys[pid] = key
    return world, ledger


def signed(record: records_pb2.Record, key: SigningKey) -> records_pb2.SignedRecord:
    return sign(record, key)


def log_state(ledger: Ledger) -> tuple[int, bytes]:
    """(size, root) of a ledger: what 'the log is unchanged' means in assertions."""
    return ledger.size, ledger.root(ledger.size)


def builders() -> Any:
    return SimpleNamespace(
        shipment=shipment,
        material_received=material_received,
        quality_check=quality_check,
        registration=registration,
        revocation=revocation,
        new_record=new_record,
        lot=lot,
        qty=qty,
        gtin=gtin,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lotledger.cli.main",
            "serve",
            str(data_dir),
            "--listen",
            f"127.0.0.1:{port}",
            "--checkpoint-interval",
            "0.05",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    client = LedgerClient(f"127.0.0.1:{port}")
    try:
        client.wait_ready(timeout=20)
    except StorageError:
        proc.kill()
        raise AssertionError(f"server did not start: {proc.stderr.read().decode() if proc.stderr else ''}") from None
    finally:
        client.close()
    return proc


def scan_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """`lotledger-scan ARGS` in a process of its own, as on a scanner device."""
    return subprocess.run(
        [sys.executable, "-m", "lotledger.cli.scan", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def error_info(err: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    """The ErrorInfo of a refused call (its reason and field): every refusal carries one."""
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None, f"{err.code()} without details: {err.details()}"
    info = error_details_pb2.ErrorInfo()
    assert any(d.Unpack(info) for d in status.details)
    return info
