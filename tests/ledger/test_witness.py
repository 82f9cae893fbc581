"""The witness state machine (c2sp.org/tlog-witness add-checkpoint) with real keys and real
Merkle trees: every status the spec names, forks refused with both signed notes as evidence,
the two-phase commit that closes the rollback race; the verifier's quorum check; and the
ledger keeping cosignatures with its checkpoints."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from helpers import make_world, shipment, signed

from lotledger.ledger.errors import NotFound, VerificationFailed
from lotledger.ledger.store import Store
from lotledger.ledger.tlog import merkle
from lotledger.ledger.verify.verifier import check_cosignatures
from lotledger.ledger.witness.state import (
    EMPTY_ROOT,
    MAX_PROOF_LINES,
    Witness,
    WitnessError,
    format_add_checkpoint,
    parse_add_checkpoint,
    state_from_json,
    state_to_json,
)
from lotledger.signing.cosignature import CosignatureSigner, CosignatureVerifier, open_cosignatures
from lotledger.signing.errors import InvalidNote
from lotledger.signing.keys import SigningKey
from lotledger.signing.note import Checkpoint, NoteSigner, NoteVerifier, open_checkpoint, parse_note, sign_note

ORIGIN = "plant-7.example.com/lotledger"
NOW = 1_760_000_000


class Log:
    """A log as far as a witness can tell: a Merkle tree and a key that signs checkpoints."""

    def __init__(self, key: SigningKey | None = None, origin: str = ORIGIN) -> None:
        self.signer = NoteSigner(origin, key or SigningKey.generate())
        self.tree = merkle.MemoryTree()

    @property
    def vkey(self) -> NoteVerifier:
        return NoteVerifier.from_string(self.signer.verifier_key)

    def grow(self, n: int, tag: str = "a") -> Log:
        for _ in range(n):
            self.tree.append(merkle.leaf_hash(f"{tag}-{self.tree.size}".encode()))
        return self

    def note(self, size: int | None = None, signer: NoteSigner | None = None) -> bytes:
        size = self.tree.size if size is None else size
        body = Checkpoint(self.signer.name, size, self.tree.root(size)).body()
        return sign_note(body, signer or self.signer)

    def proof(self, old: int, new: int | None = None) -> list[bytes]:
        return self.tree.consistency_proof(old, self.tree.size if new is None else new)

    def fork(self, at: int, tag: str) -> Log:
        """Another history from the same key: the first `at` leaves, then its own."""
        other = Log(self.signer.key, self.signer.name)
        for i in range(at):
            other.tree.append(self.tree.perfect(0, i))
        return other


def witness_for(*logs: Log) -> Witness:
    return Witness(CosignatureSigner("witness.example/w1", SigningKey.generate()), [log.vkey for log in logs])


def cosign(w: Witness, old: int, proof: list[bytes], note: bytes, now: int = NOW) -> str:
    accepted = w.add_checkpoint(old, proof, note, now)
    w.commit(accepted)
    return accepted.cosignature


def refused(w: Witness, old: int, proof: list[bytes], note: bytes) -> WitnessError:
    before = dict(w.state)
    with pytest.raises(WitnessError) as info:
        w.add_checkpoint(old, proof, note, NOW)
    assert w.state == before, "a refusal must not change the witness's state"
    return info.value


def verifier_of(w: Witness) -> CosignatureVerifier:
    return CosignatureVerifier.from_string(w.signer.verifier_key)


# ---- accepted ------------------------------------------------------------------------------


def test_first_checkpoint_then_consistent_growth() -> None:
    log = Log().grow(5)
    w = witness_for(log)
    line = cosign(w, 0, [], log.note())
    _, cosigs = open_cosignatures(log.note() + line.encode(), [verifier_of(w)])
    assert [(c.name, c.timestamp) for c in cosigs] == [("witness.example/w1", NOW)]
    assert (w.latest(ORIGIN).size, w.latest(ORIGIN).root_hash) == (5, log.tree.root(5))  # type: ignore[union-attr]

    log.grow(9)
    line = cosign(w, 5, log.proof(5), log.note(), NOW + 1)
    assert open_cosignatures(log.note() + line.encode(), [verifier_of(w)])[1][0].timestamp == NOW + 1
    assert w.latest(ORIGIN).size == 14  # type: ignore[union-attr]
    # The cosigned note still opens with the log key: cosignature lines are ignored there.
    assert open_checkpoint(log.note() + line.encode(), log.vkey).size == 14


def test_the_same_checkpoint_again_is_cosigned_again() -> None:
    log = Log().grow(3)
    w = witness_for(log)
    cosign(w, 0, [], log.note())
    line = cosign(w, 3, [], log.note(), NOW + 60)
    assert open_cosignatures(log.note() + line.encode(), [verifier_of(w)])[1][0].timestamp == NOW + 60
    assert refused(w, 3, [bytes(32)], log.note()).status == 422  # equal sizes take no proof


def test_request_body_round_trip() -> None:
    log = Log().grow(7)
    w = witness_for(log)
    cosign(w, 0, [], log.note(4))
    body = format_add_checkpoint(4, log.proof(4), log.note())
    request = parse_add_checkpoint(body)
    assert (request.old_size, list(request.proof), request.note) == (4, log.proof(4), log.note())
    assert body.startswith(b"old 4\n") and body.count(b"\n\n") == 2  # before the note and before its signatures
    assert w.handle(body, NOW).state.size == 7


def test_a_log_may_have_several_keys() -> None:
    old_key, new_key = Log().signer, NoteSigner(ORIGIN, SigningKey.generate())
    log = Log(old_key.key).grow(2)
    w = Witness(
        CosignatureSigner("w", SigningKey.generate()),
        [NoteVerifier.from_string(old_key.verifier_key), NoteVerifier.from_string(new_key.verifier_key)],
    )
    cosign(w, 0, [], log.note())
    log.grow(1)
    cosign(w, 2, log.proof(2), log.note(signer=new_key))
    assert w.latest(ORIGIN).size == 3  # type: ignore[union-attr]


# ---- refused, with the spec's status codes --------------------------------------------------------


def test_409_tells_the_size_last_cosigned() -> None:
    log = Log().grow(5)
    w = witness_for(log)
    cosign(w, 0, [], log.note())
    log.grow(2)
    for old in (0, 3, 6):
        e = refused(w, old, log.proof(old) if old else [], log.note())
        assert (e.status, e.latest_size, e.evidence) == (409, 5, None)
    fresh = witness_for(log)
    assert refused(fresh, 5, log.proof(5), log.note()).latest_size == 0  # never cosigned: 0


def test_422_bad_consistency_proof_keeps_evidence() -> None:
    log = Log().grow(6)
    w = witness_for(log)
    first = log.note()
    cosign(w, 0, [], first)
    log.grow(5)
    good = log.proof(6)
    for bad in ([], good[:-1], [*good, bytes(32)], [bytes(32)] + good[1:], list(reversed(good))):
        e = refused(w, 6, bad, log.note())
        assert e.status == 422 and e.reason == "NOT_CONSISTENT"
        assert e.evidence is not None and e.evidence.cosigned.note == first and e.evidence.refused_note == log.note()
    cosign(w, 6, good, log.note())  # the right proof is still accepted afterwards


def test_403_signature_by_another_key() -> None:
    log = Log().grow(4)
    w = witness_for(log)
    impostor = NoteSigner(ORIGIN, SigningKey.generate())  # the same origin, another key
    e = refused(w, 0, [], log.note(signer=impostor))
    assert (e.status, e.reason) == (403, "BAD_SIGNATURE")
    forged = log.note().replace(b"\n4\n", b"\n5\n", 1)  # the log's line no longer verifies
    assert refused(w, 0, [], forged).status == 403
    wrong_root = log.note()
    body_end = wrong_root.index(b"\n\n")
    tampered = wrong_root[:body_end].replace(base64.b64encode(log.tree.root(4)), base64.b64encode(bytes(32)))
    assert refused(w, 0, [], tampered + wrong_root[body_end:]).status == 403


def test_404_unknown_origin() -> None:
    log, other = Log().grow(2), Log(origin="other.example/log").grow(2)
    w = witness_for(log)
    e = refused(w, 0, [], other.note())
    assert (e.status, e.reason) == (404, "UNKNOWN_LOG")


@pytest.mark.parametrize(
    "body",
    [
        b"old 0\n",  # no empty line
        b"",
        b"old -1\n\n",
        b"old 01\n\n",
        b"old x\n\n",
        b"old  1\n\n",
        b"new 1\n\n",
        b"old 18446744073709551616\n\n",  # 2**64
        b"old 1\nnot base64!\n\n",
        b"old 1\n" + base64.b64encode(bytes(31)) + b"\n\n",
        b"old 1\n" + base64.b64encode(bytes(33)) + b"\n\n",
        b"old 1\n" + (base64.b64encode(bytes(32)) + b"\n") * (MAX_PROOF_LINES + 1) + b"\n",
    ],
)
def test_400_malformed_request(body: bytes) -> None:
    log = Log().grow(2)
    w = witness_for(log)
    with pytest.raises(WitnessError) as info:
        w.handle(body + log.note(), NOW)
    assert info.value.status == 400


def test_400_malformed_checkpoint_or_sizes() -> None:
    log = Log().grow(5)
    w = witness_for(log)
    for note in (b"", b"no signature\n", log.note()[:-1], log.note().replace(b"\n5\n", b"\n05\n", 1)):
        assert refused(w, 0, [], note).status == 400
    assert refused(w, 6, [], log.note()).status == 400  # old size above the checkpoint's
    assert refused(w, 0, [bytes(32)], log.note()).status == 400  # old 0 takes an empty proof
    cosign(w, 0, [], log.note())  # and the well-formed request is accepted


def test_same_size_different_root_is_a_fork() -> None:
    log = Log().grow(8)
    w = witness_for(log)
    cosigned = log.note()
    cosign(w, 0, [], cosigned)
    fork = log.fork(5, "b").grow(3, "b")
    assert fork.tree.size == 8 and fork.tree.root() != log.tree.root()
    e = refused(w, 8, [], fork.note())
    assert (e.status, e.reason, e.latest_size) == (409, "FORK", 8)
    assert e.evidence is not None
    evidence = e.evidence.to_json()
    assert evidence["cosigned"]["note"] == cosigned.decode() and evidence["refused"]["note"] == fork.note().decode()
    assert evidence["cosigned"]["size"] == evidence["refused"]["size"] == 8
    assert evidence["cosigned"]["root_hash"] != evidence["refused"]["root_hash"]


def test_a_forked_history_is_refused_whatever_proof_the_fork_offers() -> None:
    log = Log().grow(10)
    w = witness_for(log)
    cosign(w, 0, [], log.note())
    fork = log.fork(7, "b").grow(8, "b")  # 15 entries, agreeing with the cosigned log on 7
    for proof in (fork.proof(10), log.grow(5).proof(10), []):
        e = refused(w, 10, proof, fork.note())
        assert e.status == 422 and e.evidence is not None
        assert e.evidence.refused_note == fork.note() and e.evidence.old_size == 10
    # Both evidence notes are signed by the log's key: the log cannot disown either.
    assert open_checkpoint(e.evidence.cosigned.note, log.vkey).size == 10
    assert open_checkpoint(e.evidence.refused_note, log.vkey).size == 15


def test_empty_tree_checkpoints() -> None:
    log = Log()
    w = witness_for(log)
    assert log.tree.root(0) == EMPTY_ROOT
    cosign(w, 0, [], log.note(0))
    bad = sign_note(Checkpoint(ORIGIN, 0, bytes(32)).body(), log.signer)
    assert refused(witness_for(log), 0, [], bad).status == 422
    # After cosigning the empty tree, the log grows: every tree extends the empty one, so the
    # next checkpoint (old 0, empty proof) is cosigned, not refused as a fork.
    log.grow(3)
    cosign(w, 0, [], log.note())
    assert w.state[ORIGIN].size == 3


# ---- the two phases ------------------------------------------------------------------------------


def test_commit_refuses_a_state_that_moved_meanwhile() -> None:
    """The spec's rollback race: A (size N) and B (size N+K) are both checked against the same
    state; B commits first; A must then not roll the state back."""
    log = Log().grow(4)
    w = witness_for(log)
    cosign(w, 0, [], log.note())
    small = w.add_checkpoint(4, log.grow(2).proof(4), log.note(), NOW)
    large = w.add_checkpoint(4, log.grow(3).proof(4), log.note(), NOW)
    w.commit(large)
    with pytest.raises(WitnessError) as info:
        w.commit(small)
    assert (info.value.status, info.value.latest_size) == (409, 9)
    assert w.latest(ORIGIN).size == 9  # type: ignore[union-attr]


def test_add_checkpoint_changes_nothing_until_commit() -> None:
    log = Log().grow(4)
    w = witness_for(log)
    accepted = w.add_checkpoint(0, [], log.note(), NOW)
    assert w.latest(ORIGIN) is None and w.applied(accepted)[ORIGIN] == accepted.state
    w.commit(accepted)
    assert w.latest(ORIGIN) == accepted.state


def test_state_round_trips_and_refuses_a_tampered_file() -> None:
    log = Log().grow(4)
    w = witness_for(log)
    cosign(w, 0, [], log.note())
    data = json.loads(json.dumps(state_to_json(w.state)))
    assert state_from_json(data) == w.state
    restarted = Witness(w.signer, [log.vkey], state_from_json(data))
    assert refused(restarted, 0, [], log.note()).latest_size == 4
    data["logs"][ORIGIN]["size"] = 3
    with pytest.raises(InvalidNote):
        state_from_json(data)
    with pytest.raises(InvalidNote):
        state_from_json({"format": "something else", "logs": {}})


# ---- the verifier's quorum -------------------------------------------------------------------------


def test_check_cosignatures_quorum() -> None:
    log = Log().grow(3)
    note = log.note()
    body = parse_note(note)[0]
    w1, w2, w3 = (CosignatureSigner(f"w{i}.example", SigningKey.generate()) for i in (1, 2, 3))
    v1, v2, v3 = (CosignatureVerifier.from_string(w.verifier_key) for w in (w1, w2, w3))
    cosigned = note + (w1.sign(body, NOW) + w3.sign(body, NOW)).encode()

    assert [c.name for c in check_cosignatures(cosigned, [v1], 1)] == ["w1.example"]
    assert len(check_cosignatures(cosigned, [v1, v2, v3], 2)) == 2
    with pytest.raises(VerificationFailed, match="from 1 of the 2 given witnesses") as info:
        check_cosignatures(cosigned, [v1, v2], 2)
    assert info.value.reason == "NO_QUORUM"
    with pytest.raises(VerificationFailed, match="from 0 of the 1"):
        check_cosignatures(note, [v1], 1)
    for witnesses, quorum in (([v1], 0), ([v1], 2), ([v1, v1], 2), ([], 1), ([v1], -1)):
        with pytest.raises(VerificationFailed) as info:
            check_cosignatures(cosigned, witnesses, quorum)
        assert info.value.reason == "BAD_QUORUM"
    forged = note + w1.sign(Checkpoint(ORIGIN, 3, bytes(32)).body(), NOW).encode()
    with pytest.raises(VerificationFailed) as info:
        check_cosignatures(forged, [v1], 1)
    assert info.value.reason == "BAD_COSIGNATURE"
    # One witness's key under a second name: its line, copied under that name with that key
    # hash, verifies too (the name is not signed), so the two count as one witness.
    alias = CosignatureSigner("alias.example", w1.key)
    v_alias = CosignatureVerifier.from_string(alias.verifier_key)
    copied = cosigned + alias.sign(body, NOW).encode()
    with pytest.raises(VerificationFailed) as info:
        check_cosignatures(copied, [v1, v_alias], 2)
    assert info.value.reason == "BAD_QUORUM"


# ---- the ledger keeps cosignatures with its checkpoints ----------------------------------------------


def test_ledger_stores_and_serves_cosignatures(tmp_path: Path) -> None:
    world, ledger = make_world(tmp_path)
    try:
        first = ledger.sign_checkpoint_now()
        ledger.append(signed(shipment("acme"), world.keys["acme"]))
        second = ledger.sign_checkpoint_now()
        witnesses = [CosignatureSigner(f"w{i}", SigningKey.generate()) for i in (1, 2)]
        body1, body2 = parse_note(first.note)[0], parse_note(second.note)[0]
        for w in witnesses:
            ledger.store_cosignature(first.size, w.key_hash, w.name, w.sign(body1, NOW).encode())
        w1 = witnesses[0]
        ledger.store_cosignature(second.size, w1.key_hash, w1.name, w1.sign(body2, NOW).encode())
        ledger.store_cosignature(second.size, w1.key_hash, w1.name, w1.sign(body2, NOW + 5).encode())  # replaces
        with pytest.raises(NotFound):
            ledger.store_cosignature(second.size + 7, w1.key_hash, w1.name, b"x")

        verifiers = [CosignatureVerifier.from_string(w.verifier_key) for w in witnesses]
        latest = ledger.cosigned_checkpoint()
        assert latest.size == second.size and latest.note.startswith(second.note)
        assert [c.timestamp for c in open_cosignatures(latest.note, verifiers)[1]] == [NOW + 5]
        assert ledger.cosigned_checkpoint(min_cosignatures=1).size == second.size
        two = ledger.cosigned_checkpoint(min_cosignatures=2)
        assert two.size == first.size and len(open_cosignatures(two.note, verifiers)[1]) == 2
        assert ledger.cosigned_checkpoint(first.size).note == two.note
        with pytest.raises(NotFound):
            ledger.cosigned_checkpoint(min_cosignatures=3)
        log_key = NoteVerifier.from_string(ledger.log_verifier_key)
        assert open_checkpoint(two.note, log_key).size == first.size
    finally:
        ledger.close()


def test_an_older_store_without_cosignatures_opens_read_only(tmp_path: Path) -> None:
    world, ledger = make_world(tmp_path)
    ledger.close()
    store = Store(world.data_dir / "ledger")
    with store.write() as txn:
        txn.drop(store.dbs["cosignatures"], delete=True)  # as a data directory from before witnesses
    store.close()
    old = Store(world.data_dir / "ledger", readonly=True)
    try:
        assert "cosignatures" not in old.dbs
        with old.read() as txn:
            assert old.cosignature_lines(txn, 1) == [] and old.latest_cosigned_size(txn, 1) is None
            assert old.last(txn, "checkpoints") is not None
    finally:
        old.close()


def test_cosignature_key_layout_sorts_by_size(tmp_path: Path) -> None:
    """Sizes are big-endian first in the key, so 'the latest with N' walks back from the end."""
    from lotledger.ledger.store import cosignature_key

    keys = [
        cosignature_key(size, hashlib.sha256(name.encode()).digest()[:4], name) for size in (2, 256, 3) for name in "ab"
    ]
    assert sorted(keys)[0].startswith((2).to_bytes(8, "big")) and sorted(keys)[-1].startswith((256).to_bytes(8, "big"))
