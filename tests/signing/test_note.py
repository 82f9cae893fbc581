"""C2SP signed notes and checkpoints: a public example from Go's sumdb/note, a golden
checkpoint rebuilt by hand from the spec, and every structural refusal."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lotledger.signing.errors import InvalidKey, InvalidNote
from lotledger.signing.keys import SigningKey
from lotledger.signing.note import (
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    add_signatures,
    open_checkpoint,
    open_note,
    parse_note,
    sign_note,
)

# From the documentation of golang.org/x/mod/sumdb/note.
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_NOTE = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
    "\n"
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
).encode()
GOLDEN = Path(__file__).parent / "golden" / "checkpoint.note"
ORIGIN = "example.com/lotledger"


def test_go_sumdb_note_example_verifies() -> None:
    verifier = NoteVerifier.from_string(PETER_VKEY)
    body, sigs = open_note(PETER_NOTE, [verifier])
    assert body.startswith(b"If you think") and [s.name for s in sigs] == ["PeterNeumann"]
    with pytest.raises(InvalidNote):
        open_note(PETER_NOTE.replace(b"problem,", b"problem;"), [verifier])


def test_golden_checkpoint_matches_the_spec_by_hand() -> None:
    key = SigningKey.from_raw_seed(bytes(range(32)))
    root = hashlib.sha256(b"x").digest()
    note = sign_note(Checkpoint(ORIGIN, 5, root).body(), NoteSigner(ORIGIN, key))
    # Rebuild it from the spec with nothing but hashlib and base64.
    body = f"{ORIGIN}\n5\n{base64.b64encode(root).decode()}\n".encode()
    key_hash = hashlib.sha256(ORIGIN.encode() + b"\n\x01" + key.public.raw).digest()[:4]
    expected = body + b"\n" + f"\u2014 {ORIGIN} {base64.b64encode(key_hash + key.sign(body)).decode()}\n".encode()
    assert note == expected
    assert GOLDEN.read_bytes() == note, "the checkpoint wire format changed"
    key_b64 = base64.b64encode(b"\x01" + key.public.raw).decode()
    vkey = f"{ORIGIN}+{key_hash.hex()}+{key_b64}"
    assert NoteSigner(ORIGIN, key).verifier_key == vkey
    assert open_checkpoint(note, NoteVerifier.from_string(vkey)) == Checkpoint(ORIGIN, 5, root)


def test_verifier_key_round_trip_with_plus_in_base64() -> None:
    for _ in range(20):
        signer = NoteSigner(ORIGIN, SigningKey.generate())
        assert NoteVerifier.from_string(signer.verifier_key).key.raw == signer.key.public.raw


@pytest.mark.parametrize(
    "vkey",
    [
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong hash
        "PeterNeumann+c74f20a3+AhpcAQcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong algorithm
        "PeterNeumann+c74f20a3",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+zz4f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ],
)
def test_malformed_verifier_keys(vkey: str) -> None:
    with pytest.raises(InvalidKey):
        NoteVerifier.from_string(vkey)


def test_refusals() -> None:
    key, other = SigningKey.generate(), SigningKey.generate()
    signer, stranger = NoteSigner(ORIGIN, key), NoteSigner("other.example/log", other)
    verifier = NoteVerifier.from_string(signer.verifier_key)
    body = Checkpoint(ORIGIN, 3, bytes(32)).body()
    with pytest.raises(InvalidNote):
        open_note(body + b"\n", [verifier])  # no signatures
    with pytest.raises(InvalidNote):
        open_note(sign_note(body, stranger), [verifier])  # only unknown signatures
    forged = sign_note(body, signer).replace(b"\n3\n", b"\n4\n")
    with pytest.raises(InvalidNote):
        open_note(forged, [verifier])  # a known key whose signature fails
    with pytest.raises(InvalidNote):
        open_note(sign_note(body, signer), [])  # fail closed
    # Same key, but the note is for another log.
    impostor = NoteSigner("other.example/log", key)
    with pytest.raises(InvalidNote):
        open_checkpoint(sign_note(Checkpoint("other.example/log", 3, bytes(32)).body(), impostor), verifier)


@pytest.mark.parametrize(
    "body",
    [
        b"o\n007\n" + base64.b64encode(bytes(32)) + b"\n",
        b"o\n-1\n" + base64.b64encode(bytes(32)) + b"\n",
        b"o\n1\n" + base64.b64encode(bytes(31)) + b"\n",
        b"o\n1\n" + base64.b64encode(bytes(32)),
        b"\n1\n" + base64.b64encode(bytes(32)) + b"\n",
        b"o\n1\n",
    ],
)
def test_malformed_checkpoint_bodies(body: bytes) -> None:
    with pytest.raises(InvalidNote):
        Checkpoint.from_body(body)


def test_add_signatures_keeps_the_first() -> None:
    a, b = NoteSigner(ORIGIN, SigningKey.generate()), NoteSigner("witness.example", SigningKey.generate())
    note = add_signatures(sign_note(Checkpoint(ORIGIN, 1, bytes(32)).body(), a), b)
    _, sigs = open_note(note, [NoteVerifier.from_string(a.verifier_key), NoteVerifier.from_string(b.verifier_key)])
    assert [s.name for s in sigs] == [ORIGIN, "witness.example"]
    assert len(parse_note(note)[1]) == 2


@given(st.binary(max_size=400))
def test_parsers_raise_only_invalid_note(data: bytes) -> None:
    verifier = NoteVerifier.from_string(PETER_VKEY)
    for fn in (parse_note, lambda d: open_note(d, [verifier]), Checkpoint.from_body):
        try:
            fn(data)
        except InvalidNote:
            pass
