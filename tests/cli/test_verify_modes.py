"""`lotledger verify --bundle` on worker processes (--workers) and hash-only (--no-signatures):
what each reports on real bundles with a real signed checkpoint, built here with no server."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from cli_helpers import run
from helpers import registration, shipment, signed

from lotledger.ledger.tlog import merkle
from lotledger.ledger.tlog.bundle import BundleWriter
from lotledger.ledger.tlog.entries import ZERO_HASH, build_entry
from lotledger.ledger.verify import pipeline as verify_pipeline
from lotledger.signing.keys import SigningKey
from lotledger.signing.note import Checkpoint, NoteSigner, sign_note
from lotledger.v1 import records_pb2

ORIGIN = "modes.example.com/lotledger"


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify_pipeline, "CHUNK", 8)


def entries(n: int, *, bad_signature_at: int | None = None) -> list[bytes]:
    admin, acme = SigningKey.generate(), SigningKey.generate()
    records = [
        signed(registration("admin", "admin", records_pb2.ROLE_ADMIN, admin), admin),
        signed(registration("admin", "acme", records_pb2.ROLE_SUPPLIER, acme), admin),
    ]
    records += [signed(shipment(), acme) for _ in range(n - 2)]
    if bad_signature_at is not None:
        s = records[bad_signature_at]
        s.signature = bytes([s.signature[0] ^ 1]) + s.signature[1:]
    out, head = [], ZERO_HASH
    for seq, s in enumerate(records):
        out.append(build_entry(seq, head, time.time_ns(), s))
        head = merkle.leaf_hash(out[-1])
    return out


def write_bundle(path: Path, log_key: SigningKey, items: list[bytes], root: bytes | None = None) -> Path:
    """A bundle whose checkpoint (over `root`, by default the entries' own) the log key signed."""
    root = root or merkle.root_from_leaf_hashes([merkle.leaf_hash(e) for e in items])
    note = sign_note(Checkpoint(ORIGIN, len(items), root).body(), NoteSigner(ORIGIN, log_key))
    with path.open("wb") as f:
        writer = BundleWriter(f, note=note)
        for e in items:
            writer.entry(e)
        writer.close()
    return path


def verify(path: Path, log_key: SigningKey, *flags: str, ok: bool = True) -> tuple[int, str, str]:
    vkey = NoteSigner(ORIGIN, log_key).verifier_key
    result = run("verify", "--bundle", str(path), "--log-key", vkey, "--quiet", "--json", *flags, ok=ok)
    assert "Traceback" not in result.output
    return result.exit_code, result.stdout, result.stderr


def test_workers_verify_and_name_the_first_bad_signature(tmp_path: Path) -> None:
    log_key = SigningKey.generate()
    good = write_bundle(tmp_path / "good.bundle", log_key, entries(60))
    _, out, _ = verify(good, log_key, "--workers", "2")
    report = json.loads(out)
    assert report["ok"] and report["tree_size"] == 60 and report["signatures_checked"]
    bad = write_bundle(tmp_path / "bad.bundle", log_key, entries(60, bad_signature_at=41))
    code, _, err = verify(bad, log_key, "--workers", "2", ok=False)
    assert code == 1 and "entry 41: signature does not verify" in err


def test_no_signatures_checks_the_chain_and_the_signed_root_only(tmp_path: Path) -> None:
    log_key = SigningKey.generate()
    items = entries(30, bad_signature_at=12)
    forged = write_bundle(tmp_path / "forged.bundle", log_key, items)
    _, out, _ = verify(forged, log_key, "--no-signatures")  # by definition: records are not looked at
    assert not json.loads(out)["signatures_checked"]
    code, _, err = verify(forged, log_key, ok=False)
    assert code == 1 and "entry 12" in err

    changed = list(entries(30))
    changed[20] = changed[20][:-3] + bytes([changed[20][-3] ^ 1]) + changed[20][-2:]
    path = write_bundle(tmp_path / "changed.bundle", log_key, changed)
    code, _, err = verify(path, log_key, "--no-signatures", ok=False)
    assert code == 1 and "entry 21: prev_hash" in err

    wrong_root = write_bundle(tmp_path / "root.bundle", log_key, entries(30), root=bytes(32))
    code, _, err = verify(wrong_root, log_key, "--no-signatures", ok=False)
    assert code == 1 and "differs from the signed checkpoint" in err
