"""Replay and time, end to end on a real server: created_at outside the server's window is
refused; a record id reused by another participant is refused; the same signed record sent
again changes nothing; a revoked key's earlier records still verify as valid at the time."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import grpc
import pytest
from cli_helpers import run
from helpers import log_state, revocation, shipment, signed

from lotledger.ledger.errors import Conflict, InvalidRecord, Unauthenticated
from lotledger.ledger.tlog.entries import AppendResult
from lotledger.v1 import records_pb2


def at(record: records_pb2.Record, delta: timedelta) -> records_pb2.Record:
    record.created_at.FromDatetime(datetime.now(UTC) + delta)
    return record


@pytest.mark.parametrize(
    ("delta", "reason"),
    [(timedelta(hours=2), "FUTURE_TIME"), (timedelta(days=8), "STALE_TIME")],
    ids=["future", "stale"],
)
def test_created_at_outside_the_window_is_refused(served: SimpleNamespace, delta: timedelta, reason: str) -> None:
    acme = served.world.keys["acme"]
    before = log_state(served.ledger)
    sign_delta = delta if reason == "FUTURE_TIME" else -delta
    with pytest.raises(InvalidRecord) as info:
        served.client.append(signed(at(shipment(), sign_delta), acme))
    assert info.value.reason == reason and info.value.field == "created_at"
    assert log_state(served.ledger) == before
    # Inside the window (default: 10 minutes ahead, 7 days back) is fine.
    assert isinstance(served.client.append(signed(at(shipment(), timedelta(minutes=5)), acme)), AppendResult)
    assert isinstance(served.client.append(signed(at(shipment(), -timedelta(days=6)), acme)), AppendResult)


def test_a_replayed_record_changes_nothing(served: SimpleNamespace) -> None:
    acme = served.world.keys["acme"]
    original = signed(shipment(), acme)
    first = served.client.append(original)
    before = log_state(served.ledger)
    again = served.client.append(records_pb2.SignedRecord.FromString(original.SerializeToString()))
    assert again.duplicate and again.seq == first.seq and again.leaf_hash == first.leaf_hash
    assert log_state(served.ledger) == before


def test_record_ids_are_each_participants_own(served: SimpleNamespace) -> None:
    """Rules 2 scope record ids by submitter: a supplier that takes `po-4711` first cannot make
    the plant's own `po-4711` fail (finding 5 of the partners issue); reusing one's own id for
    other content is still a conflict."""
    acme, plant = served.world.keys["acme"], served.world.keys["plant"]
    served.client.append(signed(shipment("acme", record_id="po-4711"), acme))
    plants = shipment("plant", record_id="po-4711")
    plants.shipment.shipment_id = "PLANT-SH-1"  # (a shipment id is its owner's too)
    theirs = served.client.append(signed(plants, plant))
    assert not theirs.duplicate and served.ledger.seq_of("po-4711", "plant") == theirs.seq
    before = log_state(served.ledger)
    with pytest.raises(Conflict) as info:
        served.client.append(signed(shipment("acme", record_id="po-4711", amount="11"), acme))
    assert info.value.reason == "RECORD_ID_CONFLICT"
    assert log_state(served.ledger) == before
    cause = info.value.__cause__
    assert isinstance(cause, grpc.RpcError) and cause.code() == grpc.StatusCode.ALREADY_EXISTS


def test_a_revoked_keys_old_records_still_verify(served: SimpleNamespace) -> None:
    acme = served.world.keys["acme"]
    old = served.client.append(signed(shipment(), acme))
    served.client.append(signed(revocation("admin", acme.key_id), served.world.admin))
    before = log_state(served.ledger)
    with pytest.raises(Unauthenticated):
        served.client.append(signed(shipment(), acme))
    assert log_state(served.ledger) == before
    served.ledger.sign_checkpoint_now()
    vkey = served.ledger.log_verifier_key
    report = json.loads(run("verify", "--log-key", vkey, "--server", served.server.address, "--json").stdout)
    assert report["ok"] and report["tree_size"] == served.ledger.size > old.seq
