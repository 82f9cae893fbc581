"""Fuzz targets: everything that parses untrusted bytes, each a function of one `bytes` that
either accepts the input or refuses it with our error types. Any other exception escapes and
is a finding. Used by the hypothesis tests (tests/ledger/test_fuzz.py) and the coverage-guided
runner (bench/fuzz.py, atheris)."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime

from lotledger.ledger.core.admission import precheck
from lotledger.ledger.errors import LedgerError
from lotledger.ledger.tlog import merkle
from lotledger.ledger.tlog.bundle import BundleReader
from lotledger.ledger.tlog.entries import decode_entry
from lotledger.ledger.tlog.proof import parse_proof, verify_proof
from lotledger.rpc.limits import parse_limits
from lotledger.scanner_client.gs1 import ScanRefused, parse_scan
from lotledger.signing.cosignature import CosignatureVerifier, open_cosignatures
from lotledger.signing.errors import SigningError
from lotledger.signing.keys import SigningKey
from lotledger.signing.note import Checkpoint, NoteSigner, NoteVerifier, open_checkpoint, parse_note
from lotledger.v1 import records_pb2

KEY = SigningKey.from_raw_seed(bytes(32))
ORIGIN = "fuzz.example.com/log"
VERIFIER = NoteVerifier.from_key(ORIGIN, KEY.public)
WITNESS = CosignatureVerifier.from_key("fuzz.example.com/w", SigningKey.from_raw_seed(bytes([1]) * 32).public)
NOW = datetime.now(UTC)
EXPECTED: tuple[type[Exception], ...] = (LedgerError, SigningError, ScanRefused)


def _lookup(key_id: str) -> bytes | None:
    return KEY.public.raw if key_id == KEY.key_id else None


def signed_record(data: bytes) -> None:
    signed = records_pb2.SignedRecord()
    try:
        signed.ParseFromString(data)
    except Exception:  # noqa: BLE001 - protobuf's DecodeError: what gRPC refuses before us
        return
    precheck(signed, NOW, _lookup)


def record_bytes(data: bytes) -> None:
    precheck(records_pb2.SignedRecord(record_bytes=data, key_id=KEY.key_id, signature=bytes(64)), NOW, _lookup)


def entry(data: bytes) -> None:
    decode_entry(data, 0, bytes(32))


def note(data: bytes) -> None:
    parse_note(data)
    open_checkpoint(data, VERIFIER)


def checkpoint_body(data: bytes) -> None:
    Checkpoint.from_body(data)


def cosigned_note(data: bytes) -> None:
    open_cosignatures(data, [WITNESS])


def tlog_proof(data: bytes) -> None:
    proof = parse_proof(data)
    verify_proof(proof, bytes(32), Checkpoint(ORIGIN, 5, bytes(32)))


def merkle_inputs(data: bytes) -> None:
    """A proof from arbitrary bytes: index, sizes and hashes of any shape."""
    index = int.from_bytes(data[:2] or b"\0", "big")
    size = int.from_bytes(data[2:4] or b"\0", "big")
    hashes = [data[i : i + 32] for i in range(4, len(data), 32)]
    leaf, root = (hashes[0] if hashes else b""), (hashes[-1] if hashes else b"")
    merkle.verify_inclusion(index, size, leaf, hashes[1:-1], root)
    merkle.verify_consistency(index, size, leaf, root, hashes[1:-1])


def bundle(data: bytes) -> None:
    reader = BundleReader(io.BytesIO(data))
    list(reader.key_history())
    for _ in reader.entries():
        pass


def scan(data: bytes) -> None:
    parse_scan(data.decode("utf-8", errors="replace"))


def limits_file(data: bytes) -> None:
    parse_limits(data.decode("utf-8", errors="replace"))


TARGETS: dict[str, Callable[[bytes], None]] = {
    f.__name__: f
    for f in (
        signed_record,
        record_bytes,
        entry,
        note,
        checkpoint_body,
        cosigned_note,
        tlog_proof,
        merkle_inputs,
        bundle,
        scan,
        limits_file,
    )
}


def run(target: Callable[[bytes], None], data: bytes) -> None:
    """Run one input: our refusals are fine, anything else propagates (a finding)."""
    try:
        target(data)
    except EXPECTED:
        pass


def seeds() -> dict[str, list[bytes]]:
    """A valid input per target, so mutation starts from something that parses."""
    from helpers import shipment

    from lotledger.ledger.core.records import sign
    from lotledger.ledger.tlog.bundle import BundleWriter
    from lotledger.ledger.tlog.entries import build_entry
    from lotledger.signing.note import sign_note

    body = Checkpoint(ORIGIN, 5, bytes(32)).body()
    signed_note = sign_note(body, NoteSigner(ORIGIN, KEY))
    rec = shipment("acme").SerializeToString()
    entry0 = build_entry(0, bytes(32), 1_767_225_600_000_000_000, sign(shipment("acme"), KEY))
    out = io.BytesIO()
    writer = BundleWriter(
        out, note=sign_note(Checkpoint(ORIGIN, 1, merkle.leaf_hash(entry0)).body(), NoteSigner(ORIGIN, KEY))
    )
    writer.entry(entry0)
    writer.close()
    return {
        "signed_record": [sign(shipment("acme"), KEY).SerializeToString()],
        "record_bytes": [rec],
        "entry": [entry0],
        "note": [signed_note],
        "checkpoint_body": [body],
        "cosigned_note": [signed_note],
        "tlog_proof": [b"c2sp.org/tlog-proof@v1\nindex 1\n" + b"AAAA\n\n" + signed_note],
        "merkle_inputs": [bytes(4 + 96)],
        "bundle": [out.getvalue()],
        "scan": [b"0109520000000011\x1d10L1", b"]C10109520000000011"],
        "limits_file": [b"[append]\nrate = 5\n"],
    }
