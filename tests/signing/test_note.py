"""C2SP signed notes and checkpoints: the public example of Go's sumdb/note, a golden
checkpoint rebuilt by hand from the spec (with pyca and hashlib only), every structural
refusal, and properties over arbitrary input."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from lotledger.signing.errors import InvalidKey, InvalidNote
from lotledger.signing.keys import SigningKey, VerifyKey
from lotledger.signing.note import (
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    Signature,
    add_signatures,
    open_checkpoint,
    open_note,
    parse_note,
    sign_note,
)

# From the documentation of golang.org/x/mod/sumdb/note.
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
PETER_NOTE = (
    PETER_TEXT + "\n"
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
).encode()
GOLDEN = Path(__file__).parent / "golden" / "checkpoint.note"
ORIGIN = "example.com/lotledger"
SEED = bytes(range(32))
ROOT0 = bytes(32)


def _signer(name: str = ORIGIN) -> NoteSigner:
    return NoteSigner(name, SigningKey.generate())


def _verifier(signer: NoteSigner) -> NoteVerifier:
    return NoteVerifier.from_string(signer.verifier_key)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _vkey(name: str, blob: bytes) -> str:
    """A verifier key whose hash is right for `blob` (algorithm byte included), so that only the
    defect under test is wrong."""
    key_hash = hashlib.sha256(name.encode() + b"\n" + blob).digest()[:4]
    return f"{name}+{key_hash.hex()}+{_b64(blob)}"


# ---- the public example ---------------------------------------------------------------------


def test_go_sumdb_note_example_verifies() -> None:
    verifier = NoteVerifier.from_string(PETER_VKEY)
    assert verifier.name == "PeterNeumann" and verifier.key_hash == bytes.fromhex("c74f20a3")
    raw = base64.b64decode(PETER_VKEY.split("+", 2)[2])[1:]
    assert hashlib.sha256(b"PeterNeumann\n\x01" + raw).digest()[:4].hex() == "c74f20a3"
    body, sigs = open_note(PETER_NOTE, [verifier])
    assert body == PETER_TEXT.encode()
    assert [(s.name, s.key_hash) for s in sigs] == [("PeterNeumann", bytes.fromhex("c74f20a3"))]
    assert parse_note(PETER_NOTE) == (body, sigs)


def test_go_sumdb_note_example_fails_with_any_changed_character() -> None:
    verifier = NoteVerifier.from_string(PETER_VKEY)
    for i, c in enumerate(PETER_TEXT[:-1]):
        if c == "\n":
            continue
        changed = PETER_TEXT[:i] + ("X" if c != "X" else "Y") + PETER_TEXT[i + 1 :]
        with pytest.raises(InvalidNote):
            open_note(PETER_NOTE.replace(PETER_TEXT.encode(), changed.encode()), [verifier])


def test_go_sumdb_verifier_key_round_trips_exactly() -> None:
    verifier = NoteVerifier.from_string(PETER_VKEY)
    assert verifier.verifier_key == PETER_VKEY
    raw = base64.b64decode(PETER_VKEY.split("+", 2)[2])[1:]
    assert NoteVerifier.from_key("PeterNeumann", VerifyKey.from_raw(raw)).verifier_key == PETER_VKEY
    assert verifier.key == VerifyKey.from_raw(raw)
    # Go's ParseUint accepts an uppercase hash; the string we produce is lowercase.
    assert NoteVerifier.from_string(PETER_VKEY.replace("c74f20a3", "C74F20A3")).verifier_key == PETER_VKEY


# ---- golden checkpoint ----------------------------------------------------------------------


def test_golden_checkpoint_matches_the_spec_by_hand() -> None:
    root = hashlib.sha256(b"x").digest()
    note = sign_note(Checkpoint(ORIGIN, 5, root).body(), NoteSigner(ORIGIN, SigningKey.from_raw_seed(SEED)))

    # Rebuilt from the two specs with pyca, hashlib and base64 only, not lotledger's code.
    private = Ed25519PrivateKey.from_private_bytes(SEED)
    public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    body = f"{ORIGIN}\n5\n{_b64(root)}\n".encode()
    key_hash = hashlib.sha256(ORIGIN.encode() + b"\x0a" + b"\x01" + public).digest()[:4]
    expected = body + b"\n" + "\u2014 ".encode() + ORIGIN.encode() + b" "
    expected += _b64(key_hash + private.sign(body)).encode() + b"\n"
    assert note == expected
    assert GOLDEN.read_bytes() == note, "the checkpoint wire format changed"

    vkey = ORIGIN + "+" + key_hash.hex() + "+" + _b64(b"\x01" + public)
    assert NoteSigner(ORIGIN, SigningKey.from_raw_seed(SEED)).verifier_key == vkey
    verifier = NoteVerifier.from_string(vkey)
    assert verifier.verifier_key == vkey
    assert open_checkpoint(GOLDEN.read_bytes(), verifier) == Checkpoint(ORIGIN, 5, root)


def test_signer_attributes() -> None:
    key = SigningKey.from_raw_seed(SEED)
    signer = NoteSigner(ORIGIN, key)
    assert signer.name == ORIGIN
    assert signer.key_hash == hashlib.sha256(ORIGIN.encode() + b"\n\x01" + key.public.raw).digest()[:4]
    line = signer.sign(b"hello\n")
    sig = base64.b64decode(line.removeprefix(f"\u2014 {ORIGIN} ").removesuffix("\n"), validate=True)
    assert line.endswith("\n") and sig == signer.key_hash + key.sign(b"hello\n")
    assert NoteVerifier.from_key(ORIGIN, key.public).verify(b"hello\n", sig[4:])
    assert not NoteVerifier.from_key(ORIGIN, key.public).verify(b"hello!\n", sig[4:])
    assert not NoteVerifier.from_key(ORIGIN, key.public).verify(b"hello\n", sig[4:-1])


def test_verifier_key_round_trip_with_plus_in_base64() -> None:
    seen_plus = False
    for _ in range(40):
        signer = _signer()
        seen_plus |= "+" in signer.verifier_key.split("+", 2)[2]
        verifier = NoteVerifier.from_string(signer.verifier_key)
        assert verifier.key == signer.key.public and verifier.verifier_key == signer.verifier_key
    assert seen_plus


_RAW = base64.b64decode(PETER_VKEY.split("+", 2)[2])[1:]


@pytest.mark.parametrize(
    "vkey",
    [
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong hash
        "Peterneumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # hash for another name
        _vkey("PeterNeumann", b"\x02" + _RAW),  # algorithm 0x02, hash right for it
        _vkey("PeterNeumann", b"\x04" + _RAW),  # a cosignature key type
        _vkey("PeterNeumann", b"\x01" + _RAW[:31]),  # 31-byte key
        _vkey("PeterNeumann", b"\x01" + _RAW + b"\x00"),  # 33-byte key
        _vkey("PeterNeumann", b"\x01" + (1).to_bytes(32, "little")),  # small-order key
        _vkey("PeterNeumann", b"\x01" + (2).to_bytes(32, "little")),  # not a curve point
        _vkey("PeterNeumann", b""),  # no key at all
        "PeterNeumann+c74f20a3",  # two fields
        "PeterNeumann",
        "",
        "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # empty name
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # space in name
        "PeterNeumann+zz4f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # bad hex
        "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # 7 hex digits
        "PeterNeumann+0c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # 9 hex digits
        "PeterNeumann+c7 4f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # space in hex
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",  # bad padding
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq_LDE4izWy10TW",  # URL-safe alphabet
        PETER_VKEY + "\n",  # not stripped: callers strip what they read from files
        " " + PETER_VKEY,
    ],
)
def test_malformed_verifier_keys(vkey: str) -> None:
    with pytest.raises(InvalidKey):
        NoteVerifier.from_string(vkey)


@pytest.mark.parametrize("name", ["", "a b", "a+b", "a\tb", "a\u00a0b", "a\u3000b", "a\nb", "a\x01b", "\ud800"])
def test_invalid_key_names(name: str) -> None:
    key = SigningKey.generate()
    with pytest.raises(InvalidKey):
        NoteSigner(name, key)
    with pytest.raises(InvalidKey):
        NoteVerifier.from_key(name, key.public)


# ---- opening notes --------------------------------------------------------------------------


def test_refusals() -> None:
    signer, stranger = _signer(), _signer("other.example/log")
    verifier = _verifier(signer)
    body = Checkpoint(ORIGIN, 3, ROOT0).body()
    with pytest.raises(InvalidNote):
        open_note(body + b"\n", [verifier])  # no signatures
    with pytest.raises(InvalidNote):
        open_note(body, [verifier])  # no blank line either
    with pytest.raises(InvalidNote):
        open_note(sign_note(body, stranger), [verifier])  # only unknown signatures
    forged = sign_note(body, signer).replace(b"\n3\n", b"\n4\n")
    with pytest.raises(InvalidNote):
        open_note(forged, [verifier])  # a known key whose signature fails
    with pytest.raises(InvalidNote):
        open_note(sign_note(body, signer), [])  # fail closed
    with pytest.raises(InvalidNote):
        open_checkpoint(sign_note(body, signer), _verifier(stranger))


def test_bad_signature_with_matching_name_and_hash_fails_the_whole_note() -> None:
    signer, witness = _signer(), _signer("witness.example")
    body = Checkpoint(ORIGIN, 3, ROOT0).body()
    good = signer.sign(body)
    sig = base64.b64decode(good.split(" ")[2])
    bad = f"\u2014 {ORIGIN} {_b64(sig[:4] + bytes(64))}\n"
    for lines in ([bad], [good, bad], [bad, good], [witness.sign(body), bad]):
        with pytest.raises(InvalidNote):
            open_note(body + b"\n" + "".join(lines).encode(), [_verifier(signer), _verifier(witness)])


def test_unknown_signatures_are_ignored_even_sharing_name_or_hash() -> None:
    signer = _signer()
    body = Checkpoint(ORIGIN, 3, ROOT0).body()
    sig = base64.b64decode(signer.sign(body).split(" ")[2])
    same_name = f"\u2014 {ORIGIN} {_b64(bytes(4) + bytes(64))}\n"  # another key under the same name
    same_hash = f"\u2014 other.example {_b64(sig[:4] + bytes(64))}\n"  # the same hash, another name
    short = f"\u2014 other.example {_b64(b'abcd!')}\n"  # 5 bytes: the shortest well-formed signature
    note = body + b"\n" + (same_name + signer.sign(body) + same_hash + short).encode()
    text, sigs = open_note(note, [_verifier(signer)])
    assert text == body and [s.name for s in sigs] == [ORIGIN]
    assert [s.name for s in parse_note(note)[1]] == [ORIGIN, ORIGIN, "other.example", "other.example"]


def test_open_note_returns_each_verified_key_once_in_note_order() -> None:
    a, b, c = _signer(ORIGIN), _signer("w1.example"), _signer("w2.example")
    body = b"text\n"
    note = body + b"\n" + (b.sign(body) + a.sign(body) + b.sign(body) + c.sign(body)).encode()
    _, sigs = open_note(note, [_verifier(a), _verifier(b)])
    assert [s.name for s in sigs] == ["w1.example", ORIGIN]
    assert all(isinstance(s, Signature) and len(s.key_hash) == 4 and len(s.signature) == 64 for s in sigs)


def test_ambiguous_verifiers_are_refused() -> None:
    a, b = _signer(), _signer()
    va, vb = _verifier(a), _verifier(b)
    note = sign_note(b"text\n", a)
    assert open_note(note, [va, va])[1][0].name == ORIGIN  # the same key twice is fine
    vb.key_hash = va.key_hash  # a 32-bit key hash collision between two different keys
    with pytest.raises(InvalidNote):
        open_note(note, [va, vb])


def test_checkpoint_origin_must_be_the_verifier_name() -> None:
    key = SigningKey.generate()
    verifier = NoteVerifier.from_key(ORIGIN, key.public)
    # The right key, under the log's name, signing a checkpoint of another origin.
    with pytest.raises(InvalidNote):
        open_checkpoint(sign_note(Checkpoint("other.example/log", 3, ROOT0).body(), NoteSigner(ORIGIN, key)), verifier)
    # The same key reused under another name, for another log.
    impostor = NoteSigner("other.example/log", key)
    with pytest.raises(InvalidNote):
        open_checkpoint(sign_note(Checkpoint("other.example/log", 3, ROOT0).body(), impostor), verifier)
    # A signed body that is not a checkpoint.
    with pytest.raises(InvalidNote):
        open_checkpoint(sign_note(b"hello\n", NoteSigner(ORIGIN, key)), verifier)
    checkpoint = Checkpoint(ORIGIN, 3, ROOT0, ("ext one", "ext/two"))
    assert open_checkpoint(sign_note(checkpoint.body(), NoteSigner(ORIGIN, key)), verifier) == checkpoint


# ---- signing and cosigning ------------------------------------------------------------------


def test_add_signatures_keeps_the_first() -> None:
    a, b = _signer(), _signer("witness.example")
    first = sign_note(Checkpoint(ORIGIN, 1, ROOT0).body(), a)
    note = add_signatures(first, b)
    assert note.startswith(first)
    _, sigs = open_note(note, [_verifier(a), _verifier(b)])
    assert [s.name for s in sigs] == [ORIGIN, "witness.example"]
    assert open_note(note, [_verifier(a)])[1][0].name == ORIGIN
    assert open_note(note, [_verifier(b)])[1][0].name == "witness.example"
    assert len(parse_note(note)[1]) == 2
    assert add_signatures(note, b) == note  # re-cosigning replaces, never duplicates


def test_add_signatures_keeps_unknown_lines_byte_for_byte() -> None:
    a, b = _signer(), _signer("witness.example")
    body = b"text\n"
    odd = "\u2014 someone.else AAAAAAF=\n"  # unknown, and base64 with a stray bit: kept as is
    note = add_signatures(body + b"\n" + (odd + a.sign(body)).encode(), b)
    assert note == body + b"\n" + (odd + a.sign(body) + b.sign(body)).encode()


def test_add_signatures_refuses_malformed_notes() -> None:
    with pytest.raises(InvalidNote):
        add_signatures(b"text\n", _signer())
    with pytest.raises(InvalidNote):
        add_signatures(b"text\n\n- dash\n", _signer())


@pytest.mark.parametrize(
    "body",
    [b"", b"no newline", b"two\nlines", b"\xff\n", b"tab\there\n", b"cr\r\n", b"nul\x00\n", b"\xe2\x80\n"],
)
def test_sign_note_refuses_bodies_that_would_not_open(body: bytes) -> None:
    with pytest.raises(InvalidNote):
        sign_note(body, _signer())


def test_signature_count_limits() -> None:
    signers = [_signer(f"w{i}.example") for i in range(101)]
    with pytest.raises(InvalidNote):
        sign_note(b"text\n")
    with pytest.raises(InvalidNote):
        sign_note(b"text\n", *signers)
    note = sign_note(b"text\n", *signers[:100])
    assert len(open_note(note, [_verifier(s) for s in signers])[1]) == 100
    with pytest.raises(InvalidNote):
        parse_note(note + signers[100].sign(b"text\n").encode())
    with pytest.raises(InvalidNote):
        add_signatures(note, signers[100])


@pytest.mark.parametrize("body", [b"\n", b"a\n\nb\n", b"a\n\n", b"a\n\n\n", "\u2014 x y\n\n".encode(), b"\x7f+ \n"])
def test_bodies_with_blank_lines_round_trip(body: bytes) -> None:
    signer = _signer()
    assert open_note(sign_note(body, signer), [_verifier(signer)])[0] == body


# ---- structural refusals --------------------------------------------------------------------

_SIG = "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="


@pytest.mark.parametrize(
    "note",
    [
        b"",
        b"\n",
        b"\n\n",
        b"text\n\n",  # no signature lines
        b"text\n",
        ("text\n\n\u2014 PeterNeumann " + _SIG).encode(),  # no final newline
        ("text\n\n\u2014 PeterNeumann " + _SIG + "\n\n").encode(),  # empty signature line
        ("text\n\n-- PeterNeumann " + _SIG + "\n").encode(),  # not an em dash
        ("text\n\n\u2013 PeterNeumann " + _SIG + "\n").encode(),  # an en dash
        ("text\n\n\u2014PeterNeumann " + _SIG + "\n").encode(),  # no space after the dash
        ("text\n\n\u2014 PeterNeumann\n").encode(),  # no signature
        ("text\n\n\u2014 PeterNeumann \n").encode(),  # empty signature
        ("text\n\n\u2014  " + _SIG + "\n").encode(),  # empty name
        ("text\n\n\u2014 Peter+Neumann " + _SIG + "\n").encode(),  # '+' in name
        ("text\n\n\u2014 PeterNeumann " + _SIG + " \n").encode(),  # trailing space
        ("text\n\n\u2014 PeterNeumann " + _SIG[:-1] + "\n").encode(),  # bad padding
        ("text\n\n\u2014 PeterNeumann " + _SIG.replace("/", "_") + "\n").encode(),  # URL-safe base64
        ("text\n\n\u2014 PeterNeumann " + _b64(b"abcd") + "\n").encode(),  # 4 bytes: no signature
        ("text\n\n\u2014 PeterNeumann " + _SIG + "\r\n").encode(),  # CR
        ("te\x00xt\n\n\u2014 PeterNeumann " + _SIG + "\n").encode(),  # NUL in the text
        b"\xfftext\n\n\xe2\x80\x94 PeterNeumann " + _SIG.encode() + b"\n",  # not UTF-8
        b"text\n\n\xe2\x80 PeterNeumann " + _SIG.encode() + b"\n",  # a truncated em dash
        b"\xed\xa0\x80\n\n\xe2\x80\x94 PeterNeumann " + _SIG.encode() + b"\n",  # an encoded surrogate
    ],
)
def test_malformed_notes(note: bytes) -> None:
    verifier = NoteVerifier.from_string(PETER_VKEY)
    with pytest.raises(InvalidNote):
        parse_note(note)
    with pytest.raises(InvalidNote):
        open_note(note, [verifier])


# ---- checkpoint bodies ----------------------------------------------------------------------

_R = _b64(ROOT0).encode()


@pytest.mark.parametrize(
    "body",
    [
        b"o\n007\n" + _R + b"\n",  # leading zeros
        b"o\n00\n" + _R + b"\n",
        b"o\n-1\n" + _R + b"\n",  # sign
        b"o\n+1\n" + _R + b"\n",
        b"o\n 1\n" + _R + b"\n",
        b"o\n1 \n" + _R + b"\n",
        b"o\n1.0\n" + _R + b"\n",
        b"o\n0x1\n" + _R + b"\n",
        b"o\n\xd9\xa1\n" + _R + b"\n",  # ARABIC-INDIC DIGIT ONE: int() would take it
        b"o\n\n" + _R + b"\n",  # empty size
        b"o\n18446744073709551616\n" + _R + b"\n",  # 2**64
        b"o\n" + b"9" * 25 + b"\n" + _R + b"\n",
        b"o\n1\n" + _b64(bytes(31)).encode() + b"\n",  # root of 31 bytes
        b"o\n1\n" + _b64(bytes(33)).encode() + b"\n",
        b"o\n1\n" + _b64(ROOT0).encode().rstrip(b"=") + b"\n",  # unpadded
        b"o\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=\n",  # non-canonical: stray bits
        b"o\n1\n" + _b64(ROOT0).encode().replace(b"A", b"-", 1) + b"\n",  # not the standard alphabet
        b"o\n1\n" + _R,  # missing final newline
        b"o\n1\n" + _R + b"\n\n",  # empty extension line
        b"o\n1\n" + _R + b"\next\n\n",
        b"\n1\n" + _R + b"\n",  # empty origin
        b" o\n1\n" + _R + b"\n",  # padded origin
        b"o \n1\n" + _R + b"\n",
        b"o\n1\n",  # no root hash
        b"o\n",
        b"",
        b"o\r\n1\n" + _R + b"\n",  # control character
        b"\xff\n1\n" + _R + b"\n",  # not UTF-8
    ],
)
def test_malformed_checkpoint_bodies(body: bytes) -> None:
    with pytest.raises(InvalidNote):
        Checkpoint.from_body(body)


def test_checkpoint_bodies_that_parse() -> None:
    assert Checkpoint.from_body(b"o\n0\n" + _R + b"\n") == Checkpoint("o", 0, ROOT0)
    big = Checkpoint.from_body(b"example.com/log\n18446744073709551615\n" + _R + b"\nx y\n\xc3\xa9\n")
    assert big == Checkpoint("example.com/log", 2**64 - 1, ROOT0, ("x y", "\u00e9"))
    root = hashlib.sha256(b"x").digest()
    assert Checkpoint(ORIGIN, 5, root).body() == f"{ORIGIN}\n5\n{_b64(root)}\n".encode()


@pytest.mark.parametrize(
    "fields",
    [
        ("", 1, ROOT0, ()),
        (" o", 1, ROOT0, ()),
        ("o\nx", 1, ROOT0, ()),
        ("o", -1, ROOT0, ()),
        ("o", 2**64, ROOT0, ()),
        ("o", True, ROOT0, ()),
        ("o", 1, bytes(31), ()),
        ("o", 1, ROOT0, ("",)),
        ("o", 1, ROOT0, ("a\nb",)),
        ("o", 1, ROOT0, ("a\rb",)),
        ("\ud800", 1, ROOT0, ()),
    ],
)
def test_checkpoints_that_cannot_be_written_are_refused(fields: tuple[str, int, bytes, tuple[str, ...]]) -> None:
    with pytest.raises(InvalidNote):
        Checkpoint(*fields)


# ---- properties -----------------------------------------------------------------------------

_PETER_VERIFIER = NoteVerifier.from_string(PETER_VKEY)
_PIECES = [
    "\n",
    "\n\n",
    "\u2014 ",
    "\u2014",
    " ",
    "PeterNeumann",
    "PeterNeumann ",
    _SIG,
    "x08go/",
    "AAAA",
    "AAAAAAE=",
    "=",
    "+",
    "o",
    "0",
    "5",
    "007",
    "-1",
    _R.decode(),
    "\r",
    "\x00",
    "\u00e9",
    "\ud800",
]


def _note_like() -> st.SearchStrategy[bytes]:
    text = st.lists(st.sampled_from(_PIECES), max_size=12).map("".join)
    return text.map(lambda s: s.encode("utf-8", "surrogatepass"))


def _mutated(base: bytes) -> st.SearchStrategy[bytes]:
    def mutate(ops: list[tuple[int, int, int]]) -> bytes:
        data = bytearray(base)
        for kind, pos, value in ops:
            pos %= len(data) + 1
            if kind == 0 and pos < len(data):
                data[pos] = value
            elif kind == 1:
                data.insert(pos, value)
            elif pos < len(data):
                del data[pos]
        return bytes(data)

    op = st.tuples(st.integers(0, 2), st.integers(0, 10_000), st.integers(0, 255))
    return st.lists(op, min_size=1, max_size=4).map(mutate)


_CHECKPOINT_NOTE = sign_note(Checkpoint(ORIGIN, 5, hashlib.sha256(b"x").digest()).body(), _signer())
_ANY = st.one_of(
    st.binary(max_size=400),
    _note_like(),
    _mutated(PETER_NOTE),
    _mutated(_CHECKPOINT_NOTE),
    _mutated(Checkpoint(ORIGIN, 5, ROOT0, ("ext",)).body()),
)


@settings(max_examples=400, deadline=None)
@given(_ANY)
def test_parsers_raise_only_invalid_note(data: bytes) -> None:
    for fn in (parse_note, lambda d: open_note(d, [_PETER_VERIFIER]), Checkpoint.from_body):
        try:
            fn(data)
        except InvalidNote:
            pass


@settings(max_examples=300, deadline=None)
@given(_mutated(PETER_NOTE))
def test_a_changed_note_opens_only_with_the_same_text(data: bytes) -> None:
    try:
        body, sigs = open_note(data, [_PETER_VERIFIER])
    except InvalidNote:
        return
    assert body == PETER_TEXT.encode() and [s.name for s in sigs] == ["PeterNeumann"]


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=120), st.lists(st.sampled_from(["Peter", "+", "c74f20a3", "ARpc", "=", " "])).map("".join)
    )
)
def test_verifier_strings_raise_only_invalid_key(text: str) -> None:
    try:
        NoteVerifier.from_string(text)
    except InvalidKey:
        pass


_LINE = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\n", min_codepoint=0x20), max_size=30)


@settings(max_examples=200, deadline=None)
@given(
    origin=_LINE.filter(lambda s: s and s == s.strip()),
    size=st.integers(0, 2**64 - 1),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(_LINE.filter(bool), max_size=3).map(tuple),
)
def test_checkpoint_body_round_trips(origin: str, size: int, root: bytes, extensions: tuple[str, ...]) -> None:
    checkpoint = Checkpoint(origin, size, root, extensions)
    assert Checkpoint.from_body(checkpoint.body()) == checkpoint
    assert Checkpoint.from_body(checkpoint.body()).body() == checkpoint.body()


_SIGNER = NoteSigner(ORIGIN, SigningKey.from_raw_seed(SEED))


@settings(max_examples=100, deadline=None)
@given(st.lists(_LINE, min_size=1, max_size=5).map(lambda lines: "".join(line + "\n" for line in lines)))
def test_any_valid_text_signs_and_opens(text: str) -> None:
    body = text.encode()
    assert open_note(sign_note(body, _SIGNER), [_verifier(_SIGNER)])[0] == body
