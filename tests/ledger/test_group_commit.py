"""A group of records queued as one (an AppendStream message: Ledger.enqueue_many) is admitted
record by record, in order, in one durable transaction, with the same answers each record would
get alone: duplicates inside the group and against the log, conflicts, refusals."""

from __future__ import annotations

from helpers import World, log_state, shipment, signed

from lotledger.ledger.errors import Conflict, Unauthenticated
from lotledger.ledger.log import Ledger
from lotledger.ledger.tlog.entries import AppendResult
from lotledger.signing.keys import SigningKey


def test_a_group_answers_each_record_in_order(world_ledger: tuple[World, Ledger]) -> None:
    world, ledger = world_ledger
    acme = world.keys["acme"]
    earlier = ledger.append(signed(shipment(record_id="before"), acme))
    same = signed(shipment(record_id="same"), acme)
    group = [
        signed(shipment(), acme),
        same,
        same,  # a resend inside the group: the first one's answer, as a duplicate
        signed(shipment(record_id="same", amount="2"), acme),  # the same id, other bytes
        signed(shipment(), SigningKey.generate()),  # a key nobody registered
        signed(shipment(record_id="before"), acme),  # an id the log holds, other bytes
        signed(shipment(), acme),
    ]
    size = ledger.size
    outcomes = ledger.enqueue_many([ledger.precheck(s) for s in group]).result(10)
    assert len(outcomes) == len(group)
    first, dup, again = outcomes[0], outcomes[1], outcomes[2]
    assert isinstance(first, AppendResult) and first.seq == size and not first.duplicate
    assert isinstance(dup, AppendResult) and dup.seq == size + 1 and not dup.duplicate
    assert isinstance(again, AppendResult) and again.duplicate and again.seq == dup.seq
    assert isinstance(outcomes[3], Conflict) and outcomes[3].reason == "RECORD_ID_CONFLICT"
    assert isinstance(outcomes[4], Unauthenticated)
    assert isinstance(outcomes[5], Conflict) and earlier.seq < size
    last = outcomes[6]
    assert isinstance(last, AppendResult) and last.seq == size + 2
    assert ledger.size == size + 3
    # All of it was one transaction: the answers carry one received_at.
    assert len({o.received_at_ns for o in outcomes if isinstance(o, AppendResult) and not o.duplicate}) == 1


def test_a_group_of_refusals_leaves_the_log_unchanged(world_ledger: tuple[World, Ledger]) -> None:
    world, ledger = world_ledger
    before = log_state(ledger)
    stranger = SigningKey.generate()
    outcomes = ledger.enqueue_many([ledger.precheck(signed(shipment(), stranger)) for _ in range(5)]).result(10)
    assert all(isinstance(o, Unauthenticated) for o in outcomes)
    assert log_state(ledger) == before
