"""The gRPC service on a real loopback server: every bad input gets its status code and a
reason a partner can act on, and leaves the log exactly as it was (same size, same root)."""

from __future__ import annotations

from types import SimpleNamespace

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from helpers import error_info, log_state, new_record, quality_check, registration, revocation, shipment, signed

from lotledger.ledger.core.validation import MAX_RECORD_BYTES
from lotledger.ledger.tlog import merkle
from lotledger.ledger.tlog.entries import AppendResult
from lotledger.rpc.client import StreamRefusal
from lotledger.signing.keys import SigningKey
from lotledger.v1 import ledger_service_pb2 as pb
from lotledger.v1 import ledger_service_pb2_grpc as pb_grpc
from lotledger.v1 import records_pb2


def raw_append(s: SimpleNamespace, signed_record: records_pb2.SignedRecord) -> grpc.RpcError:
    """Call Append with the raw stub and return the error, so we see the wire status."""
    stub = pb_grpc.LedgerServiceStub(s.client.channel)
    with pytest.raises(grpc.RpcError) as info:
        stub.Append(pb.AppendRequest(signed_record=signed_record), timeout=10)
    return info.value


def test_append_and_read_back(served: SimpleNamespace) -> None:
    key = served.world.keys["acme"]
    record = shipment()
    result = served.client.append(signed(record, key))
    assert result.seq == 4 and not result.duplicate
    got = served.client.get_entry(seq=result.seq)
    entry = records_pb2.Entry.FromString(got.entry)
    assert entry.signed_record.record_bytes == record.SerializeToString()
    assert merkle.leaf_hash(got.entry) == result.leaf_hash == got.leaf_hash
    assert served.client.get_entry(record_id=record.record_id).seq == result.seq


def test_same_record_twice_returns_the_original_seq(served: SimpleNamespace) -> None:
    key = served.world.keys["acme"]
    s = signed(shipment(), key)
    first = served.client.append(s)
    before = log_state(served.ledger)
    again = served.client.append(s)
    assert (again.seq, again.leaf_hash, again.duplicate) == (first.seq, first.leaf_hash, True)
    assert log_state(served.ledger) == before


BAD_INPUTS = [
    "bad_signature",
    "unknown_key",
    "revoked_key",
    "someone_elses_key",
    "role_not_allowed",
    "malformed_record",
    "oversized_record",
    "invalid_gtin",
    "negative_quantity",
    "duplicate_id_different_content",
    "malformed_key_id",
]


def make_bad(case: str, s: SimpleNamespace) -> records_pb2.SignedRecord:
    keys = s.world.keys
    if case == "bad_signature":
        good = signed(shipment(), keys["acme"])
        return records_pb2.SignedRecord(record_bytes=good.record_bytes, key_id=good.key_id, signature=bytes(64))
    if case == "unknown_key":
        return signed(shipment(), SigningKey.generate())
    if case == "revoked_key":
        doomed = SigningKey.generate()
        s.client.append(signed(registration("admin", "gone", records_pb2.ROLE_SUPPLIER, doomed), s.world.admin))
        s.client.append(signed(revocation("admin", doomed.key_id), s.world.admin))
        return signed(shipment("gone"), doomed)
    if case == "someone_elses_key":
        return signed(shipment("plant"), keys["acme"])
    if case == "role_not_allowed":
        record = quality_check("acme")  # a supplier cannot sign off QC
        return signed(record, keys["acme"])
    if case == "malformed_record":
        key = keys["acme"]
        from lotledger.signing.keys import sign_record

        junk = b"\x0a\xff\xff\xff\xff\x0f"
        return records_pb2.SignedRecord(record_bytes=junk, key_id=key.key_id, signature=sign_record(key, junk))
    if case == "oversized_record":
        record = shipment()
        record.shipment.documents.add(type="NOTE", number="x" * 128)
        record.shipment.shipment_id = "S"
        big = signed(record, keys["acme"])
        return records_pb2.SignedRecord(
            record_bytes=big.record_bytes + b"\x00" * MAX_RECORD_BYTES, key_id=big.key_id, signature=big.signature
        )
    if case == "invalid_gtin":
        return signed(shipment(gtin_="09520000000019"), keys["acme"])
    if case == "negative_quantity":
        return signed(shipment(amount="-3"), keys["acme"])
    if case == "duplicate_id_different_content":
        s.client.append(signed(shipment(record_id="dup-1"), keys["acme"]))
        return signed(shipment(record_id="dup-1", amount="99"), keys["acme"])
    if case == "malformed_key_id":
        good = signed(shipment(), keys["acme"])
        return records_pb2.SignedRecord(record_bytes=good.record_bytes, key_id="ABC", signature=good.signature)
    raise AssertionError(case)


EXPECTED = {
    "bad_signature": (grpc.StatusCode.UNAUTHENTICATED, "BAD_SIGNATURE"),
    "unknown_key": (grpc.StatusCode.UNAUTHENTICATED, "UNKNOWN_KEY"),
    "revoked_key": (grpc.StatusCode.UNAUTHENTICATED, "KEY_REVOKED"),
    "someone_elses_key": (grpc.StatusCode.UNAUTHENTICATED, "KEY_NOT_SUBMITTERS"),
    "role_not_allowed": (grpc.StatusCode.PERMISSION_DENIED, "ROLE_NOT_ALLOWED"),
    "malformed_record": (grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED"),
    "oversized_record": (grpc.StatusCode.RESOURCE_EXHAUSTED, "RECORD_TOO_LARGE"),
    "invalid_gtin": (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_GTIN"),
    "negative_quantity": (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_QUANTITY"),
    "duplicate_id_different_content": (grpc.StatusCode.ALREADY_EXISTS, "RECORD_ID_CONFLICT"),
    "malformed_key_id": (grpc.StatusCode.UNAUTHENTICATED, "MALFORMED_KEY_ID"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_refused_and_changes_nothing(served: SimpleNamespace, case: str) -> None:
    bad = make_bad(case, served)
    before = log_state(served.ledger)
    err = raw_append(served, bad)
    code, reason = EXPECTED[case]
    assert err.code() == code, err.details()
    assert error_info(err).reason == reason
    assert err.details(), "the message must say why"
    assert log_state(served.ledger) == before


def test_field_is_named_in_error_info(served: SimpleNamespace) -> None:
    err = raw_append(served, signed(shipment(amount="-3"), served.world.keys["acme"]))
    assert error_info(err).metadata["field"] == "shipment.lots[0].quantity.amount"
    assert "shipment.lots[0].quantity.amount" in err.details()


def test_message_over_the_transport_limit_is_resource_exhausted(served: SimpleNamespace) -> None:
    huge = records_pb2.SignedRecord(record_bytes=b"\x00" * (5 * 1024 * 1024), key_id="0" * 64, signature=bytes(64))
    before = log_state(served.ledger)
    with grpc.insecure_channel(served.server.address) as channel:  # no client-side send limit
        stub = pb_grpc.LedgerServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.Append(pb.AppendRequest(signed_record=huge), timeout=10)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert log_state(served.ledger) == before


def test_stream_of_single_record_messages(served: SimpleNamespace) -> None:
    key = served.world.keys["acme"]
    outcomes = list(served.client.append_stream((signed(shipment(), key) for _ in range(30)), batch=1))
    seqs = [o.seq for o in outcomes if isinstance(o, AppendResult)]
    assert seqs == list(range(seqs[0], seqs[0] + 30))


def test_too_many_records_in_one_message_is_refused(served: SimpleNamespace) -> None:
    key = served.world.keys["acme"]
    one = signed(shipment(), key)
    request = pb.AppendStreamRequest(signed_records=[one] * 1001)
    stub = pb_grpc.LedgerServiceStub(served.client.channel)
    before = log_state(served.ledger)
    with pytest.raises(grpc.RpcError) as info:
        list(stub.AppendStream(iter([request]), timeout=10))
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert log_state(served.ledger) == before


def test_stream_answers_each_record_in_order_and_goes_on_after_a_refusal(served: SimpleNamespace) -> None:
    key = served.world.keys["acme"]
    records = [shipment() for _ in range(250)]
    stream = [signed(r, key) for r in records]
    stream[10] = signed(shipment(amount="-1"), key)
    stream[20] = signed(shipment(), SigningKey.generate())
    stream[230] = signed(shipment(amount="0"), key)
    outcomes = list(served.client.append_stream(stream))
    assert len(outcomes) == 250
    assert isinstance(outcomes[10], StreamRefusal) and outcomes[10].error.reason == "INVALID_QUANTITY"
    assert isinstance(outcomes[20], StreamRefusal) and outcomes[20].error.reason == "UNKNOWN_KEY"
    seqs = [o.seq for o in outcomes if isinstance(o, AppendResult)]
    assert isinstance(outcomes[230], StreamRefusal)
    assert seqs == sorted(seqs) and len(seqs) == 247
    assert seqs == list(range(seqs[0], seqs[0] + 247)), "stream order is log order"
    assert outcomes[10].index == 10 and outcomes[20].index == 20


def test_proofs_over_grpc_verify_against_the_signed_checkpoint(served: SimpleNamespace) -> None:
    key = served.world.keys["acme"]
    list(served.client.append_stream(signed(shipment(), key) for _ in range(20)))
    cp = served.ledger.sign_checkpoint_now()
    p = served.client.inclusion_proof(7, cp.size)
    merkle.verify_inclusion(7, cp.size, p.leaf_hash, list(p.proof), cp.root_hash)
    assert p.checkpoint == cp.note
    old = served.ledger.checkpoints()[0]
    c = served.client.consistency_proof(old.size, cp.size)
    merkle.verify_consistency(old.size, cp.size, old.root_hash, cp.root_hash, list(c.proof))


def test_out_of_range_and_not_found(served: SimpleNamespace) -> None:
    stub = pb_grpc.LedgerServiceStub(served.client.channel)
    with pytest.raises(grpc.RpcError) as info:
        stub.GetEntry(pb.GetEntryRequest(seq=10_000), timeout=5)
    assert info.value.code() == grpc.StatusCode.OUT_OF_RANGE
    with pytest.raises(grpc.RpcError) as info:
        stub.GetEntry(pb.GetEntryRequest(record_id="no-such-record"), timeout=5)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as info:
        stub.GetInclusionProof(pb.GetInclusionProofRequest(seq=0, tree_size=10_000), timeout=5)
    assert info.value.code() == grpc.StatusCode.OUT_OF_RANGE


def test_list_entries_streams_the_stored_bytes(served: SimpleNamespace) -> None:
    entries = list(served.client.list_entries(0, 0))
    assert [seq for seq, _ in entries] == list(range(served.ledger.size))
    for seq, data in entries:
        assert merkle.leaf_hash(data) == served.ledger.entry(seq)[1]


def test_health_and_reflection_are_on(served: SimpleNamespace) -> None:
    health = health_pb2_grpc.HealthStub(served.client.channel)
    reply = health.Check(health_pb2.HealthCheckRequest(service="lotledger.v1.LedgerService"), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(served.client.channel)
    responses = refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
    names = {s.name for r in responses for s in r.list_services_response.service}
    assert "lotledger.v1.LedgerService" in names


def test_new_records_need_registration_first(served: SimpleNamespace) -> None:
    """A key registered through the service can sign right after its registration commits."""
    key = SigningKey.generate()
    served.client.append(signed(registration("admin", "dist1", records_pb2.ROLE_DISTRIBUTOR, key), served.world.admin))
    record = new_record("dist1")
    r = record.receipt
    r.shipment_id, r.shipment_owner, r.participant = "SH-1", "acme", "dist1"
    r.lots.add(
        lot=records_pb2.LotId(gtin="09520000000011", lot="L1"), quantity=records_pb2.Quantity(amount="1", unit="KGM")
    )
    r.received_at.GetCurrentTime()
    assert served.client.append(signed(record, key)).seq > 0
