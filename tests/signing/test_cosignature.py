"""C2SP tlog-cosignature/v1 (Ed25519, type 0x04): a golden cosigned checkpoint rebuilt by hand
from the spec (pyca, hashlib and base64 only), the public examples' timestamps, key types that
must never be confused, and every way a cosignature must fail."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lotledger.signing.cosignature import (
    MAX_TIMESTAMP,
    CosignatureSigner,
    CosignatureVerifier,
    cosignature_timestamp,
    cosigned_message,
    open_cosignatures,
)
from lotledger.signing.errors import InvalidKey, InvalidNote
from lotledger.signing.keys import SigningKey
from lotledger.signing.note import (
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    Signature,
    add_signatures,
    open_checkpoint,
    parse_note,
    sign_note,
)

GOLDEN = Path(__file__).parent / "golden"
ORIGIN = "example.com/lotledger"
LOG_SEED = bytes(range(32))  # the seed of golden/checkpoint.note
WITNESS = "witness.example.com/w1"
WITNESS_SEED = bytes(range(32, 64))
TIME = 1679315147  # the timestamp of the spec's example

# The example of c2sp.org/tlog-cosignature (its witness key is not published: structure only).
SPEC_NOTE = (
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n"
    "\u2014 example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
    "\u2014 witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
).encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _witness(name: str = WITNESS) -> CosignatureSigner:
    return CosignatureSigner(name, SigningKey.generate())


def _log_note(size: int = 5, root: bytes = hashlib.sha256(b"x").digest()) -> tuple[bytes, NoteSigner]:
    signer = NoteSigner(ORIGIN, SigningKey.from_raw_seed(LOG_SEED))
    return sign_note(Checkpoint(ORIGIN, size, root).body(), signer), signer


# ---- golden bytes ---------------------------------------------------------------------------


def test_golden_cosigned_checkpoint_matches_the_spec_by_hand() -> None:
    log_note = (GOLDEN / "checkpoint.note").read_bytes()
    body, _ = parse_note(log_note)
    signer = CosignatureSigner(WITNESS, SigningKey.from_raw_seed(WITNESS_SEED))
    line = signer.sign(body, TIME)

    # Rebuilt from tlog-cosignature and signed-note with pyca, hashlib and base64 only.
    private = Ed25519PrivateKey.from_private_bytes(WITNESS_SEED)
    public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    key_id = hashlib.sha256(WITNESS.encode() + b"\n" + b"\x04" + public).digest()[:4]
    message = b"cosignature/v1\n" + b"time 1679315147\n" + body
    expected = f"\u2014 {WITNESS} " + _b64(key_id + (TIME).to_bytes(8, "big") + private.sign(message)) + "\n"
    assert line == expected
    assert cosigned_message(body, TIME) == message

    cosigned = log_note + line.encode()
    assert (GOLDEN / "cosigned.note").read_bytes() == cosigned, "the cosignature wire format changed"

    vkey = WITNESS + "+" + key_id.hex() + "+" + _b64(b"\x04" + public)
    assert signer.verifier_key == vkey
    witness = CosignatureVerifier.from_string(vkey)
    assert witness.verifier_key == vkey and witness.key_hash == key_id
    text, cosigs = open_cosignatures(cosigned, [witness])
    assert text == body
    assert [(c.name, c.key_hash, c.timestamp, c.line) for c in cosigs] == [(WITNESS, key_id, TIME, line)]
    # The log's own signature still verifies on the cosigned note: the witness line is ignored.
    log_vkey = NoteSigner(ORIGIN, SigningKey.from_raw_seed(LOG_SEED)).verifier_key
    assert open_checkpoint(cosigned, NoteVerifier.from_string(log_vkey)).size == 5


def test_the_spec_examples_timestamps() -> None:
    _, sigs = parse_note(SPEC_NOTE)
    witness_line = sigs[1]
    assert witness_line.name == "witness.example.com/w1"
    assert witness_line.key_hash == base64.b64decode("jWbPPw==")
    assert cosignature_timestamp(witness_line) == 1679315147  # the "time" line of the spec's message
    # transparency-dev/formats note tests: a real cosignature and a plain (type 0x01) signature.
    real = base64.b64decode(
        "ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL+8qT7S5gxEHWWOworDcFiEBYJXORmnFBOBA=="
    )
    assert cosignature_timestamp(Signature("w", real[:4], real[4:])) == 1727964367
    plain = base64.b64decode(
        "eQjRQm6eSKzFoiYalgwCPXu2y3ijtg68is9M46JKxuZB+dRfTmeQeDBoXnvxZx2ugnkyV+MUMLXpWs1hPb/W/4xkNQY="
    )
    with pytest.raises(InvalidNote):
        cosignature_timestamp(Signature("w", plain[:4], plain[4:]))
    with pytest.raises(InvalidNote):
        cosignature_timestamp(Signature("w", b"1234", (2**63).to_bytes(8, "big") + bytes(64)))


# ---- keys -------------------------------------------------------------------------------------


def test_verifier_key_round_trip_and_types_never_mix() -> None:
    key = SigningKey.generate()
    cosigner = CosignatureSigner(WITNESS, key)
    log_signer = NoteSigner(WITNESS, key)  # the same key and name as a plain note signer
    assert cosigner.key_hash != log_signer.key_hash
    parsed = CosignatureVerifier.from_string(cosigner.verifier_key)
    assert parsed.key == key.public and parsed.name == WITNESS and parsed.verifier_key == cosigner.verifier_key
    assert parsed == CosignatureVerifier.from_key(WITNESS, key.public) and len({parsed, parsed}) == 1
    with pytest.raises(InvalidKey, match="0x01"):
        CosignatureVerifier.from_string(log_signer.verifier_key)
    with pytest.raises(InvalidKey, match="0x04"):
        NoteVerifier.from_string(cosigner.verifier_key)
    # A log signature line is not taken for a cosignature, nor a cosignature for a log signature.
    body = Checkpoint(WITNESS, 3, bytes(32)).body()
    both = sign_note(body, log_signer) + cosigner.sign(body, TIME).encode()
    assert open_cosignatures(sign_note(body, log_signer), [parsed])[1] == []
    assert [s.key_hash for s in parse_note(both)[1]] == [log_signer.key_hash, cosigner.key_hash]
    assert open_checkpoint(both, NoteVerifier.from_string(log_signer.verifier_key)).size == 3
    assert [c.name for c in open_cosignatures(both, [parsed])[1]] == [WITNESS]


@pytest.mark.parametrize(
    "vkey",
    [
        "w+00000000+" + _b64(b"\x04" + bytes(32)),  # wrong hash (and a small-order key)
        "w",
        "w+12345678",
        "w+1234567+" + _b64(b"\x04" + bytes(32)),
        "bad name+00000000+" + _b64(b"\x04" + bytes(32)),
    ],
)
def test_malformed_witness_keys(vkey: str) -> None:
    with pytest.raises(InvalidKey):
        CosignatureVerifier.from_string(vkey)


def test_small_order_witness_key_is_refused() -> None:
    blob = b"\x04" + (1).to_bytes(32, "little")
    vkey = "w+" + hashlib.sha256(b"w\n" + blob).digest()[:4].hex() + "+" + _b64(blob)
    with pytest.raises(InvalidKey, match="small order"):
        CosignatureVerifier.from_string(vkey)


# ---- verification ------------------------------------------------------------------------------


def test_open_cosignatures_verifies_only_given_witnesses_once_each_in_note_order() -> None:
    note, _ = _log_note()
    body = parse_note(note)[0]
    w1, w2, stranger = _witness("w1.example"), _witness("w2.example"), _witness("w3.example")
    cosigned = note + (w2.sign(body, 10) + stranger.sign(body, 11) + w1.sign(body, 12) + w2.sign(body, 13)).encode()
    given = [CosignatureVerifier.from_string(w.verifier_key) for w in (w1, w2)]
    _, cosigs = open_cosignatures(cosigned, given)
    assert [(c.name, c.timestamp) for c in cosigs] == [("w2.example", 10), ("w1.example", 12)]
    assert open_cosignatures(cosigned, [])[1] == []


def test_a_cosignature_over_another_checkpoint_fails_the_note() -> None:
    note, _ = _log_note(size=5)
    other, _ = _log_note(size=6)
    w = _witness()
    verifier = CosignatureVerifier.from_string(w.verifier_key)
    moved = note + w.sign(parse_note(other)[0], TIME).encode()
    with pytest.raises(InvalidNote, match="does not verify"):
        open_cosignatures(moved, [verifier])


def test_changing_the_timestamp_or_any_signature_byte_fails() -> None:
    note, _ = _log_note()
    w = _witness()
    verifier = CosignatureVerifier.from_string(w.verifier_key)
    line = w.sign(parse_note(note)[0], TIME)
    blob = base64.b64decode(line.split(" ")[-1])
    for i in range(4, len(blob)):  # every byte after the key hash: the timestamp and the signature
        changed = bytearray(blob)
        changed[i] ^= 0x01
        bad = f"\u2014 {WITNESS} {_b64(bytes(changed))}\n".encode()
        with pytest.raises(InvalidNote):
            open_cosignatures(note + bad, [verifier])
    short = f"\u2014 {WITNESS} {_b64(blob[:-1])}\n".encode()
    with pytest.raises(InvalidNote):
        open_cosignatures(note + short, [verifier])
    assert verifier.verify(parse_note(note)[0], blob[4:]) == TIME


def test_a_changed_checkpoint_body_fails() -> None:
    note, _ = _log_note(size=5)
    w = _witness()
    cosigned = note + w.sign(parse_note(note)[0], TIME).encode()
    with pytest.raises(InvalidNote):
        open_cosignatures(cosigned.replace(b"\n5\n", b"\n6\n", 1), [CosignatureVerifier.from_string(w.verifier_key)])


def test_ambiguous_witness_keys_are_refused() -> None:
    a, b = SigningKey.generate(), SigningKey.generate()
    va, vb = CosignatureVerifier.from_key("w", a.public), CosignatureVerifier.from_key("w", b.public)
    vb.key_hash = va.key_hash  # a forced collision of name and key hash
    note, _ = _log_note()
    with pytest.raises(InvalidNote, match="share the name"):
        open_cosignatures(note, [va, vb])


def test_only_checkpoints_are_cosigned() -> None:
    w = _witness()
    for body in (b"hello\n", b"origin\n5\n\n", b"origin\n-1\n" + _b64(bytes(32)).encode() + b"\n", b""):
        with pytest.raises(InvalidNote):
            w.sign(body, TIME)
    body = Checkpoint(ORIGIN, 1, bytes(32)).body()
    for t in (-1, MAX_TIMESTAMP + 1, True, 1.5):
        with pytest.raises(InvalidNote):
            w.sign(body, t)  # type: ignore[arg-type]
    assert w.sign(body, MAX_TIMESTAMP) and w.sign(body, 0)
    ext = Checkpoint(ORIGIN, 1, bytes(32), ("extension line",)).body()
    verifier = CosignatureVerifier.from_string(w.verifier_key)
    line = w.sign(ext, TIME)  # extension lines are part of what is signed
    blob = base64.b64decode(line.split(" ")[-1])
    assert verifier.verify(ext, blob[4:]) == TIME
    assert verifier.verify(Checkpoint(ORIGIN, 1, bytes(32), ("extension lime",)).body(), blob[4:]) is None


def test_add_signatures_and_cosignatures_compose() -> None:
    """A note cosigned by a witness can still take another log signature and keeps the
    cosignature byte for byte (as Go's note.Sign keeps unknown lines)."""
    note, log_signer = _log_note()
    w = _witness()
    cosigned = note + w.sign(parse_note(note)[0], TIME).encode()
    again = add_signatures(cosigned, NoteSigner("mirror.example", SigningKey.generate()))
    assert again.startswith(note[: note.index(b"\n\n") + 2])
    assert w.verifier_key and open_cosignatures(again, [CosignatureVerifier.from_string(w.verifier_key)])[1]
    assert open_checkpoint(again, NoteVerifier.from_string(log_signer.verifier_key)).size == 5
