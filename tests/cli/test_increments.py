"""Incremental bundles (`export --from SEQ`) and resumable verification (`verify --state DIR`):
a full bundle then an increment, verified with a state, ends exactly where a full verify does;
without a state an increment verifies and says what it could not check; an increment from
another checkpoint than the state's is refused; every tampered frame fails naming what; and a
record signed with a key after its revocation is refused by an increment verify that learned
the revocation from the key history frames."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from types import SimpleNamespace

import pytest
from cli_helpers import run, shipments_file
from forged_log import ForgedLog
from helpers import revocation, signed

from lotledger.audit.verify import BundleSource, verify_log
from lotledger.ledger.core.policy import ADMIN_KINDS
from lotledger.ledger.errors import VerificationFailed
from lotledger.ledger.tlog.bundle import MAGIC_INCREMENT, BundleWriter, Increment
from lotledger.ledger.verify.state import VerifierState, encode_state
from lotledger.ledger.verify.verifier import LogVerifier
from lotledger.signing.keys import SigningKey
from lotledger.signing.note import NoteSigner, NoteVerifier, sign_note
from lotledger.v1 import records_pb2

CORRECTION = {
    "recordId": "fix-a-3",
    "correction": {
        "correctsRecordId": "a-3",
        "reason": "the quantity was 12, not 12.5",
        "corrected": {
            "shipment": {
                "shipmentId": "SHIP-A-0003",
                "lots": [{"lot": {"gtin": "09520000000011", "lot": "L7"}, "quantity": {"amount": "12", "unit": "KGM"}}],
                "fromParticipant": "acme",
                "toParticipant": "plant",
                "shippedAt": "2026-01-05T10:00:00Z",
            }
        },
    },
}


@pytest.fixture
def grown(live: SimpleNamespace) -> SimpleNamespace:
    """A log that grew in two steps, with bundles of both: `full1` (the log up to the checkpoint
    of size s1), `inc` (an increment from s1 to s2: a key registration, shipments, and a
    correction of a record from before s1) and `full2` (the log up to s2)."""
    srv = ["--server", live.server.address]
    acme = ["--key", str(live.key), "--participant", "acme"]
    run("append", str(shipments_file(live.tmp / "a.jsonl", "a", 10)), *srv, *acme)
    s1 = live.server.ledger.sign_checkpoint_now().size
    bundles = live.tmp / "bundles"
    bundles.mkdir()
    run("export", "--out", str(bundles / "full1"), *srv, "--quiet")
    beta = live.tmp / "beta.key"
    run("keys", "generate", str(beta))
    admin = ["--key", str(live.data / "keys" / "admin.key")]
    run("keys", "register", "--id", "beta", "--role", "supplier", "--public-key", f"{beta}.pub", *srv, *admin)
    run("append", str(shipments_file(live.tmp / "b.jsonl", "b", 8)), *srv, *acme)
    (live.tmp / "fix.json").write_text(json.dumps(CORRECTION))
    run("append", str(live.tmp / "fix.json"), *srv, *acme)
    s2 = live.server.ledger.sign_checkpoint_now().size
    out = json.loads(run("export", "--out", str(bundles / "inc"), "--from", str(s1), *srv, "--json").stdout)
    assert (out["from_size"], out["tree_size"], out["key_history_entries"]) == (s1, s2, 2)
    run("export", "--out", str(bundles / "full2"), *srv, "--quiet")
    return SimpleNamespace(
        live=live, srv=srv, s1=s1, s2=s2, vkey=live.vkey, tmp=live.tmp, **{p.name: p for p in bundles.iterdir()}
    )


def verify(g: SimpleNamespace, *args: str, ok: bool = True) -> dict[str, object]:
    result = run("verify", "--log-key", g.vkey, "--json", "--quiet", *args, ok=ok)
    return json.loads(result.stdout) if ok else {"exit": result.exit_code, "stderr": result.stderr}


def frames(blob: bytes) -> list[tuple[bytes, int, int]]:
    """(tag, start, end) of each frame after the magic line, read independently of the code under test."""
    out, at = [], len(MAGIC_INCREMENT)
    while at < len(blob):
        (length,) = struct.unpack(">I", blob[at + 1 : at + 5])
        out.append((blob[at : at + 1], at, at + 5 + length))
        at += 5 + length
    return out


def test_full_bundle_then_increment_with_state_equals_a_full_verify(grown: SimpleNamespace) -> None:
    g, state = grown, grown.tmp / "state"
    first = verify(g, "--bundle", str(g.full1), "--state", str(state))
    assert (first["tree_size"], first["from_size"], first["state_saved"]) == (g.s1, 0, str(state / "verifier.state"))
    second = verify(g, "--bundle", str(g.inc), "--state", str(state))
    assert second["increment"] and second["complete"] and not second["not_checked"]
    assert (second["from_size"], second["tree_size"], second["entries_checked"]) == (g.s1, g.s2, g.s2 - g.s1)
    # the state after the increment is the one a full verification of the whole log saves, byte for byte
    whole = grown.tmp / "whole"
    full = verify(g, "--bundle", str(g.full2), "--state", str(whole))
    assert full["root_hash"] == second["root_hash"] and full["entries_checked"] == g.s2
    assert (state / "verifier.state").read_bytes() == (whole / "verifier.state").read_bytes()
    # a full bundle verified from a state checks only what is new (its first entries give the state's root)
    again = grown.tmp / "again"
    verify(g, "--bundle", str(g.full1), "--state", str(again))
    resumed = verify(g, "--bundle", str(g.full2), "--state", str(again))
    assert (resumed["from_size"], resumed["entries_checked"], resumed["complete"]) == (g.s1, g.s2 - g.s1, True)
    # and so does the live verify, from the same state: nothing new, nothing saved
    live = verify(g, *g.srv, "--state", str(state))
    assert (live["from_size"], live["entries_checked"], live["state_saved"]) == (g.s2, 0, None)


def test_increment_without_state_verifies_and_says_what_it_could_not_check(grown: SimpleNamespace) -> None:
    g = grown
    report = verify(g, "--bundle", str(g.inc))
    assert report["ok"] and report["increment"] and not report["complete"]
    assert (report["from_size"], report["tree_size"]) == (g.s1, g.s2)
    text = "\n".join(report["not_checked"])  # type: ignore[arg-type]
    assert f"record ids against the {g.s1} entries before the increment" in text
    assert "every key registration and revocation" in text
    assert f"1 corrections of records before entry {g.s1} (entries {g.s2 - 1})" in text
    human = run("verify", "--bundle", str(g.inc), "--log-key", g.vkey, "--quiet")
    assert "NOT a complete verification" in human.stdout and "not checked: record ids" in human.stderr
    empty = verify(g, "--bundle", str(g.inc), "--state", str(g.tmp / "empty"), ok=False)
    assert empty["exit"] == 2 and "holds no saved verification" in str(empty["stderr"])


def test_an_increment_from_another_checkpoint_than_the_states_is_refused(grown: SimpleNamespace) -> None:
    g = grown
    ahead = g.tmp / "ahead"
    verify(g, "--bundle", str(g.full2), "--state", str(ahead))
    err = verify(g, "--bundle", str(g.inc), "--state", str(ahead), ok=False)
    assert err[
        "exit"
    ] == 1 and f"starts at the checkpoint of size {g.s1} but the state was verified up to {g.s2}" in str(err["stderr"])
    assert f"lotledger export --from {g.s2}" in str(err["stderr"])
    empty = g.tmp / "empty.bundle"  # what that says to do, while the log has not grown: an empty increment
    run("export", "--out", str(empty), "--from", str(g.s2), *g.srv, "--quiet")
    report = verify(g, "--bundle", str(empty), "--state", str(ahead))
    assert (report["from_size"], report["entries_checked"], report["complete"]) == (g.s2, 0, True)
    earlier = next(cp.size for cp in g.live.server.ledger.checkpoints() if cp.size < g.s1)
    old = g.tmp / "old.bundle"
    run("export", "--out", str(old), "--to", str(earlier), *g.srv, "--quiet")
    behind = g.tmp / "behind"
    verify(g, "--bundle", str(old), "--state", str(behind))
    err = verify(g, "--bundle", str(g.inc), "--state", str(behind), ok=False)
    assert err["exit"] == 1 and f"but the state was verified up to {earlier}" in str(err["stderr"])


def test_export_from_a_size_with_no_checkpoint_says_so(grown: SimpleNamespace) -> None:
    g = grown
    issued = {cp.size for cp in g.live.server.ledger.checkpoints()}
    missing = next(n for n in range(1, g.s2) if n not in issued)
    result = run("export", "--out", str(g.tmp / "x"), "--from", str(missing), *g.srv, ok=False)
    assert result.exit_code == 2 and f"the log issued no checkpoint at tree size {missing}" in result.stderr
    result = run("export", "--out", str(g.tmp / "x"), "--from", str(g.s2), "--to", str(g.s1), *g.srv, ok=False)
    assert result.exit_code == 2 and "lies beyond" in result.stderr
    assert not (g.tmp / "x").exists()


def test_tampered_increment_frames_fail_naming_what(grown: SimpleNamespace) -> None:
    g = grown
    g.live.server.stop(grace=1)  # offline from here on
    blob = g.inc.read_bytes()
    spans = frames(blob)
    tags = b"".join(t for t, _, _ in spans)
    assert tags == b"HCPKLAA" + b"E" * (g.s2 - g.s1) + b"Z"
    by_tag = {t: (a, b) for t, a, b in reversed(spans)}  # the first frame of each tag

    def damaged(at: int) -> str:
        data = bytearray(blob)
        data[at] ^= 0x01
        path = g.tmp / "damaged.bundle"
        path.write_bytes(bytes(data))
        result = run("verify", "--bundle", str(path), "--log-key", g.vkey, "--quiet", ok=False)
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        return result.stderr

    assert f"the consistency proof from {g.s1} to {g.s2} does not hold" in damaged(by_tag[b"K"][0] + 5 + 40)
    assert f"the last leaf (entry {g.s1 - 1}) is not proven" in damaged(by_tag[b"L"][0] + 5 + 3)
    a0, a1 = by_tag[b"A"]
    assert "key history entry 0 is not in the log at the prior checkpoint" in damaged(a1 - 20)
    e0, _ = by_tag[b"E"]
    assert f"entry {g.s1}:" in damaged(e0 + 5 + 30)
    # the prior checkpoint, signed by another key under the log's name
    p0, p1 = by_tag[b"P"]
    body = blob[p0 + 5 : p1].split(b"\n\n", 1)[0] + b"\n"
    forged = sign_note(body, NoteSigner(g.vkey.split("+", 1)[0], SigningKey.generate()))
    path = g.tmp / "forged.bundle"
    path.write_bytes(blob[:p0] + b"P" + struct.pack(">I", len(forged)) + forged + blob[p1:])
    result = run("verify", "--bundle", str(path), "--log-key", g.vkey, "--quiet", ok=False)
    assert result.exit_code == 1 and "the prior checkpoint: checkpoint signature" in result.stderr


def test_a_key_history_frame_left_out_is_caught_with_a_state(grown: SimpleNamespace) -> None:
    g = grown
    blob = g.inc.read_bytes()
    spans = frames(blob)
    (_, a0, a1), (_, z0, z1) = spans[6], spans[-1]  # acme's key registration, the second A frame
    assert z1 == len(blob)
    trailer = b"Z" + struct.pack(">I", 16) + (1).to_bytes(8, "big") + (g.s2 - g.s1).to_bytes(8, "big")
    path = g.tmp / "cut.bundle"
    path.write_bytes(blob[:a0] + blob[a1:z0] + trailer)
    state = g.tmp / "state"
    verify(g, "--bundle", str(g.full1), "--state", str(state))
    err = verify(g, "--bundle", str(path), "--state", str(state), ok=False)
    assert err["exit"] == 1 and "the key history does not match the one verified before" in str(err["stderr"])
    assert "of the state is missing from the bundle's key history" in str(err["stderr"])
    # without a state, acme's key is unknown to the replay: its first record after the start is refused
    err = verify(g, "--bundle", str(path), ok=False)
    assert err["exit"] == 1 and f"entry {g.s1 + 1}: key " in str(err["stderr"])
    assert "is not registered" in str(err["stderr"])


def test_any_changed_byte_of_an_increment_fails(grown: SimpleNamespace) -> None:
    g = grown
    blob = g.inc.read_bytes()
    spans = frames(blob)
    entries = [(a, b) for t, a, b in spans if t == b"E"]
    # every byte before the first entry and of the trailer; a stride through the entries
    positions = set(range(entries[0][0])) | set(range(spans[-1][1], len(blob)))
    positions |= set(range(entries[0][0], spans[-1][1], 11))
    verifier = NoteVerifier.from_string(g.vkey)
    path = g.tmp / "flipped.bundle"
    for at in sorted(positions):
        data = bytearray(blob)
        data[at] ^= 0x20
        path.write_bytes(data)
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


# ---- a compromised log: a revoked key signs again, and the log signs that --------------------


def write_increment(log: ForgedLog, path: Path, start: int, *, leave_out: frozenset[int] = frozenset()) -> None:
    """An increment of a forged log from `start`, with its key history (but `leave_out`)."""
    increment = Increment(
        log.note(start),
        log.tree.consistency_proof(start, log.tree.size) if start < log.tree.size else [],
        log.tree.perfect(0, start - 1),
        log.tree.inclusion_proof(start - 1, start),
    )
    with path.open("wb") as f:
        writer = BundleWriter(f, note=log.note(), increment=increment)
        for seq, entry in enumerate(log.entries[:start]):
            record = records_pb2.Record.FromString(records_pb2.Entry.FromString(entry).signed_record.record_bytes)
            if record.WhichOneof("body") in ADMIN_KINDS and seq not in leave_out:
                writer.key_entry(seq, entry, log.tree.inclusion_proof(seq, start))
        for entry in log.entries[start:]:
            writer.entry(entry)
        writer.close()


def write_full(log: ForgedLog, path: Path, size: int) -> None:
    with path.open("wb") as f:
        writer = BundleWriter(f, note=log.note(size))
        for entry in log.entries[:size]:
            writer.entry(entry)
        writer.close()


def test_a_revoked_keys_later_record_is_refused_by_an_increment_that_carries_the_revocation(tmp_path: Path) -> None:
    log = ForgedLog()
    log.shipments(3, "a")
    revoked_at = log.add(signed(revocation("admin", log.acme.key_id), log.admin))
    start = len(log.entries)
    log.shipments(1, "after")  # the server would refuse this; a compromised log signs it anyway
    vkey = log.signer.verifier_key
    inc = tmp_path / "inc.bundle"
    write_increment(log, inc, start)
    result = run("verify", "--bundle", str(inc), "--log-key", vkey, "--quiet", ok=False)
    assert result.exit_code == 1
    assert f"entry {start}: key {log.acme.key_id} was revoked at entry {revoked_at}" in result.stderr
    # the revocation frame left out: alone, the increment cannot see it (and says so) ...
    write_increment(log, inc, start, leave_out=frozenset({revoked_at}))
    report = json.loads(run("verify", "--bundle", str(inc), "--log-key", vkey, "--json", "--quiet").stdout)
    assert not report["complete"] and any("one left out cannot be seen" in s for s in report["not_checked"])
    # ... but a verifier holding its own state at the increment's start refuses it
    state = tmp_path / "state"
    write_full(log, tmp_path / "full.bundle", start)
    run("verify", "--bundle", str(tmp_path / "full.bundle"), "--log-key", vkey, "--state", str(state), "--quiet")
    result = run("verify", "--bundle", str(inc), "--log-key", vkey, "--state", str(state), "--quiet", ok=False)
    assert result.exit_code == 1 and f"the key {log.acme.key_id} differs" in result.stderr


def test_a_damaged_or_foreign_state_is_refused_by_the_cli(tmp_path: Path) -> None:
    log = ForgedLog()
    log.shipments(2, "a")
    verifier = LogVerifier()
    for entry in log.entries:
        verifier.feed(entry)
    state = tmp_path / "state"
    state.mkdir()
    blob = b"".join(encode_state(VerifierState.capture(verifier, log.note(), log.vkey)))
    (state / "verifier.state").write_bytes(blob[:-1] + bytes([blob[-1] ^ 1]))
    bundle = tmp_path / "b"
    write_full(log, bundle, len(log.entries))
    result = run(
        "verify", "--bundle", str(bundle), "--log-key", log.signer.verifier_key, "--state", str(state), ok=False
    )
    assert result.exit_code == 1 and "verifier state: the checksum does not match" in result.stderr
    other = ForgedLog()
    (state / "verifier.state").write_bytes(blob)
    result = run(
        "verify", "--bundle", str(bundle), "--log-key", other.signer.verifier_key, "--state", str(state), ok=False
    )
    assert result.exit_code == 1 and "verifier state: it was saved for the log" in result.stderr
