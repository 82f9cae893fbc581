"""Export bundles: written from a live server, verified offline with only the log key, and
every kind of damage (truncation, reordering, any changed byte, a checkpoint signed by another
key) fails with a message naming what and where."""

from __future__ import annotations

import json
import struct
from types import SimpleNamespace

import pytest
from cli_helpers import run, shipments_file

from lotledger.audit.verify import BundleSource, verify_log
from lotledger.ledger.errors import VerificationFailed
from lotledger.ledger.tlog.bundle import MAGIC
from lotledger.signing.keys import SigningKey
from lotledger.signing.note import NoteSigner, NoteVerifier, sign_note


@pytest.fixture
def bundle(live: SimpleNamespace) -> SimpleNamespace:
    """A bundle of 14 entries (the admin's key registration, acme's, 12 shipments)."""
    srv = ["--server", live.server.address]
    lines = shipments_file(live.tmp / "many.jsonl", "b", 12)
    run("append", str(lines), *srv, "--key", str(live.key), "--participant", "acme")
    live.server.ledger.sign_checkpoint_now()
    path = live.tmp / "log.bundle"
    out = json.loads(run("export", "--out", str(path), *srv, "--json").stdout)
    live.server.stop(grace=1)  # from here on, offline
    return SimpleNamespace(path=path, blob=path.read_bytes(), size=out["tree_size"], vkey=live.vkey, tmp=live.tmp)


def frames(blob: bytes) -> list[tuple[int, int]]:
    """(start, end) of each frame after the magic line, read independently of the code under test."""
    out, at = [], len(MAGIC)
    while at < len(blob):
        (length,) = struct.unpack(">I", blob[at + 1 : at + 5])
        out.append((at, at + 5 + length))
        at += 5 + length
    return out


def verify_file(b: SimpleNamespace, blob: bytes) -> str:
    """Verify `blob` as a bundle through the CLI; return stderr of the failure."""
    path = b.tmp / "damaged.bundle"
    path.write_bytes(blob)
    result = run("verify", "--bundle", str(path), "--log-key", b.vkey, "--quiet", ok=False)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    return result.stderr


def test_a_bundle_verifies_offline(bundle: SimpleNamespace) -> None:
    assert bundle.size == 14
    report = json.loads(run("verify", "--bundle", str(bundle.path), "--log-key", bundle.vkey, "--json").stdout)
    assert report["ok"] and report["tree_size"] == 14 and report["signatures_checked"]
    assert not bundle.path.with_name(bundle.path.name + ".partial").exists()


def test_truncation_reordering_and_a_foreign_checkpoint_are_named(bundle: SimpleNamespace) -> None:
    blob = bundle.blob
    spans = frames(blob)
    header, checkpoint, entries, trailer = spans[0], spans[1], spans[2:-1], spans[-1]
    assert len(entries) == 14
    # cut inside an entry, between entries, and inside the trailer
    mid = entries[5][0] + 20
    err = verify_file(bundle, blob[:mid])
    assert "entry 5: bundle: the file is cut short inside the entry frame" in err and "after 5 entries" in err
    assert "cut short where a frame was due after 14 entries" in verify_file(bundle, blob[: trailer[0]])
    assert "cut short inside the trailer frame" in verify_file(bundle, blob[:-3])
    assert "cut short where a frame was due after 0 entries" in verify_file(bundle, blob[: checkpoint[1]])
    # two entries swapped: the first out of place is named
    (a0, a1), (b0, b1) = entries[3], entries[4]
    swapped = blob[:a0] + blob[b0:b1] + blob[a0:a1] + blob[b1:]
    assert "entry 3:" in verify_file(bundle, swapped)
    # the same checkpoint body, signed by someone else's key under the same name
    vkey_name = bundle.vkey.split("+", 1)[0]
    body = blob[checkpoint[0] + 5 : checkpoint[1]].split(b"\n\n", 1)[0] + b"\n"
    forged = sign_note(body, NoteSigner(vkey_name, SigningKey.generate()))
    framed = blob[checkpoint[0] : checkpoint[0] + 1] + struct.pack(">I", len(forged)) + forged
    err = verify_file(bundle, blob[: checkpoint[0]] + framed + blob[checkpoint[1] :])
    assert "checkpoint signature" in err
    assert header[0] == len(MAGIC)


def test_any_changed_byte_fails(bundle: SimpleNamespace) -> None:
    blob = bundle.blob
    spans = frames(blob)
    # every byte of the magic, header, checkpoint and trailer; a stride through the entries
    positions = set(range(spans[1][1])) | set(range(spans[-1][0], len(blob)))
    positions |= set(range(spans[1][1], spans[-1][0], 7))
    verifier = NoteVerifier.from_string(bundle.vkey)
    path = bundle.tmp / "flipped.bundle"
    for at in sorted(positions):
        damaged = bytearray(blob)
        damaged[at] ^= 0x20
        path.write_bytes(damaged)
        try:
            source = BundleSource(path)
        except VerificationFailed:
            continue
        try:
            with pytest.raises(VerificationFailed):
                verify_log(source, verifier)
        except BaseException as e:
            raise AssertionError(f"a change at byte {at} of {len(blob)} was not caught") from e
        finally:
            source.close()


def test_export_to_a_size_with_no_checkpoint_is_a_usage_error(live: SimpleNamespace) -> None:
    result = run(
        "export", "--out", str(live.tmp / "x.bundle"), "--to", "99999", "--server", live.server.address, ok=False
    )
    assert result.exit_code == 2 and "--to 99999: the log issued no checkpoint" in result.stderr
    assert not (live.tmp / "x.bundle").exists()
