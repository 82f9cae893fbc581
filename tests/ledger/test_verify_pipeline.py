"""Full verification on worker processes must reach the one-thread verifier's verdict: the
same first failing entry, reason and message, whatever chunk it falls in, for keys
registered long before, in the same chunk, or in a chunk still in flight; and the
LogVerifier must use a worker's signature outcome only when it was reached with the key
registered as of the entry."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from helpers import registration, revocation, shipment, signed

from lotledger.ledger.errors import VerificationFailed
from lotledger.ledger.tlog import merkle
from lotledger.ledger.tlog.entries import ZERO_HASH, build_entry
from lotledger.ledger.verify import pipeline as verify_pipeline
from lotledger.ledger.verify.pipeline import feed_all_parallel
from lotledger.ledger.verify.verifier import LogVerifier, Prechecked
from lotledger.signing.keys import SigningKey
from lotledger.v1 import records_pb2

CHUNK = 8  # with 2 workers, up to 6 chunks (48 entries) in flight


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify_pipeline, "CHUNK", CHUNK)


class Log:
    """Entries written the way the server writes them, but with no checks at all."""

    def __init__(self) -> None:
        self.entries: list[bytes] = []
        self.head = ZERO_HASH
        self.admin, self.acme = SigningKey.generate(), SigningKey.generate()
        self.add(registration("admin", "admin", records_pb2.ROLE_ADMIN, self.admin), self.admin)
        self.add(registration("admin", "acme", records_pb2.ROLE_SUPPLIER, self.acme), self.admin)

    def add(self, record: records_pb2.Record, key: SigningKey, *, bad_signature: bool = False) -> int:
        s = signed(record, key)
        if bad_signature:
            s.signature = bytes([s.signature[0] ^ 1]) + s.signature[1:]
        return self.add_signed(s)

    def add_signed(self, s: records_pb2.SignedRecord, *, prev_hash: bytes | None = None) -> int:
        seq = len(self.entries)
        entry = build_entry(seq, self.head if prev_hash is None else prev_hash, time.time_ns(), s)
        self.entries.append(entry)
        self.head = merkle.leaf_hash(entry)
        return seq

    def shipments(self, n: int, key: SigningKey | None = None, submitter: str = "acme") -> None:
        for _ in range(n):
            self.add(shipment(submitter), key or self.acme)


def sequential(entries: list[bytes]) -> LogVerifier:
    verifier = LogVerifier()
    verifier.feed_all(entries)
    return verifier


def parallel(entries: list[bytes] | Iterator[bytes]) -> LogVerifier:
    verifier = LogVerifier()
    feed_all_parallel(verifier, entries, workers=2)
    return verifier


def same_failure(entries: list[bytes]) -> VerificationFailed:
    """Both verifiers fail, on the same entry, for the same reason, with the same message."""
    with pytest.raises(VerificationFailed) as one:
        sequential(entries)
    with pytest.raises(VerificationFailed) as two:
        parallel(entries)
    assert (two.value.seq, two.value.reason, str(two.value)) == (one.value.seq, one.value.reason, str(one.value))
    return two.value


def test_an_honest_log_gives_the_same_tree_and_key_history() -> None:
    log = Log()
    log.shipments(30)
    plant, device = SigningKey.generate(), SigningKey.generate()
    log.add(registration("admin", "plant", records_pb2.ROLE_MANUFACTURER, plant), log.admin)
    log.add(shipment("plant"), plant)  # registered in the same chunk
    log.shipments(20)
    log.add(shipment("plant"), plant)  # registered a few chunks ago
    log.add(registration("admin", "dev1", records_pb2.ROLE_SUPPLIER, device), log.admin)
    log.shipments(CHUNK)
    log.add(shipment("dev1"), device)  # registered in a chunk still in flight
    log.add(revocation("admin", log.acme.key_id), log.admin)
    log.shipments(10, plant, "plant")
    one, two = sequential(log.entries), parallel(log.entries)
    assert (
        (two.size, two.root(), two.head) == (one.size, one.root(), one.head) == (len(log.entries), one.root(), log.head)
    )
    assert two.registry.keys == one.registry.keys


def test_a_bad_signature_in_a_late_chunk() -> None:
    log = Log()
    log.shipments(45)
    bad = log.add(shipment(), log.acme, bad_signature=True)
    log.shipments(30)
    err = same_failure(log.entries)
    assert (err.seq, err.reason) == (bad, "BAD_SIGNATURE")


@pytest.mark.parametrize("gap", [1, CHUNK + 3], ids=["same-chunk", "chunk-in-flight"])
def test_a_bad_signature_by_a_key_registered_just_before(gap: int) -> None:
    log = Log()
    log.shipments(20)
    key = SigningKey.generate()
    log.add(registration("admin", "bolt", records_pb2.ROLE_SUPPLIER, key), log.admin)
    log.shipments(gap - 1)
    bad = log.add(shipment("bolt"), key, bad_signature=True)
    log.shipments(10)
    err = same_failure(log.entries)
    assert (err.seq, err.reason) == (bad, "BAD_SIGNATURE")


def test_a_revoked_key_used_at_k() -> None:
    log = Log()
    log.shipments(20)
    log.add(revocation("admin", log.acme.key_id), log.admin)
    used = log.add(shipment(), log.acme)
    log.shipments(20)
    err = same_failure(log.entries)
    assert (err.seq, err.reason) == (used, "KEY_REVOKED")


def test_a_bad_signature_by_a_revoked_key_is_reported_as_the_bad_signature() -> None:
    """The signature is checked before the key's status, on both paths."""
    log = Log()
    log.shipments(20)
    log.add(revocation("admin", log.acme.key_id), log.admin)
    bad = log.add(shipment(), log.acme, bad_signature=True)
    err = same_failure(log.entries)
    assert (err.seq, err.reason) == (bad, "BAD_SIGNATURE")


def test_a_broken_chain_at_k_and_what_comes_before_it() -> None:
    log = Log()
    log.shipments(30)
    broken = log.add_signed(signed(shipment(), log.acme), prev_hash=bytes(32))
    log.shipments(5)
    log.add(shipment(), log.acme, bad_signature=True)  # after the break: never reached
    err = same_failure(log.entries)
    assert (err.seq, err.reason) == (broken, "BROKEN_CHAIN")
    log = Log()
    log.shipments(10)
    bad = log.add(shipment(), log.acme, bad_signature=True)  # before it: reported first
    log.shipments(CHUNK)
    log.add_signed(signed(shipment(), log.acme), prev_hash=bytes(32))
    err = same_failure(log.entries)
    assert (err.seq, err.reason) == (bad, "BAD_SIGNATURE")


def test_an_invalid_record_and_an_unknown_key() -> None:
    log = Log()
    log.shipments(25)
    bad = log.add(shipment(gtin_="09520000000012"), log.acme)  # wrong check digit
    err = same_failure(log.entries)
    assert (err.seq, err.reason) == (bad, "INVALID_GTIN")
    log = Log()
    log.shipments(25)
    stranger = SigningKey.generate()
    early = log.add(shipment("bolt"), stranger, bad_signature=True)  # its key is registered only later
    log.add(registration("admin", "bolt", records_pb2.ROLE_SUPPLIER, stranger), log.admin)
    err = same_failure(log.entries)
    assert (err.seq, err.reason) == (early, "UNKNOWN_KEY")


def test_a_failing_source_comes_after_the_entries_it_yielded() -> None:
    log = Log()
    log.shipments(20)

    def source(entries: list[bytes]) -> Iterator[bytes]:
        yield from entries
        raise VerificationFailed("cut short", seq=len(entries), reason="TRUNCATED")

    with pytest.raises(VerificationFailed) as info:
        parallel(source(log.entries))
    assert (info.value.seq, info.value.reason) == (len(log.entries), "TRUNCATED")
    bad = log.add(shipment(), log.acme, bad_signature=True)
    with pytest.raises(VerificationFailed) as info:
        parallel(source(log.entries))
    assert (info.value.seq, info.value.reason) == (bad, "BAD_SIGNATURE")


def test_one_worker_runs_in_this_process() -> None:
    log = Log()
    log.shipments(3)
    bad = log.add(shipment(), log.acme, bad_signature=True)
    with pytest.raises(VerificationFailed) as info:
        feed_all_parallel(LogVerifier(), log.entries, workers=1)
    assert info.value.seq == bad


def test_a_worker_outcome_counts_only_for_the_key_registered_as_of_the_entry() -> None:
    log = Log()
    bad = log.add(shipment(), log.acme, bad_signature=True)
    prefix, entry = log.entries[:bad], log.entries[bad]
    other = SigningKey.generate().public.raw
    for outcome in (
        Prechecked(None, other, True),  # "verified", but with some other key
        Prechecked(None, None, None),  # not checked
        Prechecked(None, log.acme.public.raw, False),  # checked with the right key: failed
    ):
        verifier = sequential(prefix)
        with pytest.raises(VerificationFailed) as info:
            verifier.feed(entry, outcome)
        assert (info.value.seq, info.value.reason) == (bad, "BAD_SIGNATURE"), outcome
    # The right key's success is taken as it is (not checked twice): here, a lie is believed,
    # which is why only precheck_chunk may produce these outcomes.
    verifier = sequential(prefix)
    verifier.feed(entry, Prechecked(None, log.acme.public.raw, True))
    assert verifier.size == bad + 1


def test_a_resumed_verifier_on_workers_reaches_the_same_verdict() -> None:
    """From a saved state (or an increment's key history) the workers start knowing the keys
    the verifier knows, and a bad signature after the resume point is still the first failure."""
    log = Log()
    log.shipments(20)
    resume_at = len(log.entries)
    log.shipments(30)
    bad = log.add(shipment("acme"), log.acme, bad_signature=True)
    log.shipments(5)
    head = sequential(log.entries[:resume_at])

    def resumed() -> LogVerifier:
        return LogVerifier.resume(
            size=head.size,
            head=head.head,
            frontier=list(head.frontier),
            registry=head.registry.copy(),
            records=dict(head.records()),
            records_complete=True,
        )

    one, two = resumed(), resumed()
    with pytest.raises(VerificationFailed) as sequential_failure:
        one.feed_all(log.entries[resume_at:])
    with pytest.raises(VerificationFailed) as parallel_failure:
        feed_all_parallel(two, log.entries[resume_at:], workers=2)
    assert sequential_failure.value.seq == parallel_failure.value.seq == bad
    assert str(parallel_failure.value) == str(sequential_failure.value)
    directory = verify_pipeline._Directory.of(resumed())
    assert directory.keys == {kid: info.public_key for kid, info in head.registry.keys.items()}
    assert directory.admins == {log.admin.key_id}
