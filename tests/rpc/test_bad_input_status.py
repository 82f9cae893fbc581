"""Every bad input gets its documented status, never UNKNOWN or INTERNAL, on a real loopback
server: the two findings (a Trace timestamp out of range, GetEntry with an empty record id),
then every RPC of lotledger.v1.LedgerService driven with out-of-range and malformed field
values by hypothesis. Refused appends leave the log as it was."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import SimpleNamespace

import grpc
import pytest
from google.protobuf import timestamp_pb2
from helpers import GTIN_A, error_info, log_state, shipment, signed
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lotledger.signing.keys import SigningKey
from lotledger.v1 import ledger_service_pb2 as pb
from lotledger.v1 import records_pb2, trace_pb2

# The codes the service documents for a request it refuses (docs/reference/status-codes.md, rpc/status.py).
DOCUMENTED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNAVAILABLE,
}
LOT = f"01/{GTIN_A}/10/L1"
SERVICE = pb.DESCRIPTOR.services_by_name["LedgerService"]
# Timestamp's own range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
TS_MIN, TS_MAX = -62_135_596_800, 253_402_300_799


@pytest.fixture
def s(serve: Callable[..., SimpleNamespace]) -> SimpleNamespace:
    return serve(append_rate=1e6, append_burst=10**6)


@pytest.mark.parametrize("which", ["since", "until"])
@pytest.mark.parametrize(
    "stamp",
    [
        timestamp_pb2.Timestamp(seconds=TS_MAX + 1),
        timestamp_pb2.Timestamp(seconds=TS_MIN - 1),
        timestamp_pb2.Timestamp(seconds=-(2**63)),
        timestamp_pb2.Timestamp(seconds=0, nanos=-1),
        timestamp_pb2.Timestamp(seconds=0, nanos=1_000_000_000),
    ],
    ids=["after-9999", "before-0001", "int64-min", "negative-nanos", "nanos-overflow"],
)
def test_trace_with_a_timestamp_out_of_range_is_invalid_argument(
    s: SimpleNamespace, which: str, stamp: timestamp_pb2.Timestamp
) -> None:
    request = trace_pb2.TraceRequest(lot=LOT, direction=trace_pb2.TRACE_DIRECTION_DOWNSTREAM)
    getattr(request, which).CopyFrom(stamp)
    with pytest.raises(grpc.RpcError) as info:
        s.stub().Trace(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    assert error_info(info.value).metadata["field"] == which
    assert which in (info.value.details() or "")


def test_trace_with_timestamps_at_the_edges_of_the_range_answers(s: SimpleNamespace) -> None:
    s.client().append(signed(shipment(), s.world.keys["acme"]))
    request = trace_pb2.TraceRequest(lot=LOT, direction=trace_pb2.TRACE_DIRECTION_DOWNSTREAM)
    request.since.seconds, request.until.seconds, request.until.nanos = TS_MIN, TS_MAX, 999_999_999
    assert [v.shipment_id for v in s.stub().Trace(request, timeout=10).shipments]


def test_get_entry_with_an_empty_record_id_is_invalid_argument(s: SimpleNamespace) -> None:
    with pytest.raises(grpc.RpcError) as info:
        s.stub().GetEntry(pb.GetEntryRequest(record_id=""), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    assert error_info(info.value).metadata["field"] == "record_id"


# ---- every RPC, with hypothesis ------------------------------------------------------------

U64 = st.one_of(
    st.sampled_from([0, 1, 2, 3, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**53, 2**63 - 1, 2**63, 2**64 - 1]),
    st.integers(0, 2**64 - 1),
)
U32 = st.one_of(st.sampled_from([0, 1, 2**31 - 1, 2**31, 2**32 - 1]), st.integers(0, 2**32 - 1))
TEXT = st.one_of(
    st.sampled_from(["", LOT, "item/x/lot/1", "01//10/", "../../etc", "\x00", "ä\u202e\U0001f600", " " * 300]),
    st.text(max_size=80),
    st.text(st.characters(max_codepoint=0x1F), max_size=20),
    st.text(max_size=5000),
)
BYTES = st.one_of(st.binary(max_size=300), st.sampled_from([b"", b"\x00" * 64, b"\xff" * 32]))
STAMP = st.builds(
    timestamp_pb2.Timestamp,
    seconds=st.one_of(st.integers(TS_MIN - 10, TS_MAX + 10), st.integers(-(2**63), 2**63 - 1)),
    nanos=st.one_of(st.integers(0, 999_999_999), st.integers(-(2**31), 2**31 - 1)),
)


def maybe(strategy: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.one_of(st.none(), strategy)


def signed_records(world: SimpleNamespace) -> st.SearchStrategy[records_pb2.SignedRecord]:
    """SignedRecords that the log must refuse: random bytes, a real record with a random
    signature or key id or a flipped byte, an empty one, one signed by a key the log does not
    know. The real records are made once, here, so that every draw is reproducible."""
    goods = [signed(shipment(), world.keys["acme"]) for _ in range(3)]
    stranger = signed(shipment(), SigningKey.generate())

    def with_signature(good: records_pb2.SignedRecord, signature: bytes) -> records_pb2.SignedRecord:
        return records_pb2.SignedRecord(record_bytes=good.record_bytes, key_id=good.key_id, signature=signature)

    def with_key_id(good: records_pb2.SignedRecord, key_id: str) -> records_pb2.SignedRecord:
        return records_pb2.SignedRecord(record_bytes=good.record_bytes, key_id=key_id, signature=good.signature)

    def flipped(good: records_pb2.SignedRecord, at: int, xor: int) -> records_pb2.SignedRecord:
        data = bytearray(good.record_bytes)
        data[at % len(data)] ^= xor
        return records_pb2.SignedRecord(record_bytes=bytes(data), key_id=good.key_id, signature=good.signature)

    good = st.sampled_from(goods)
    return st.one_of(
        st.builds(records_pb2.SignedRecord, record_bytes=BYTES, key_id=TEXT, signature=BYTES),
        st.just(records_pb2.SignedRecord()),
        st.just(stranger),
        st.builds(with_signature, good, BYTES.filter(lambda b: b not in {g.signature for g in goods})),
        st.builds(with_key_id, good, TEXT.filter(lambda t: t not in {g.key_id for g in goods})),
        st.builds(flipped, good, st.integers(0, 10_000), st.integers(1, 255)),
    )


def requests(world: SimpleNamespace) -> dict[str, st.SearchStrategy[object]]:
    """One strategy per RPC, each drawing requests with out-of-range and malformed fields."""
    record = signed_records(world)
    key_ids = sorted(k.key_id for k in world.keys.values())
    return {
        "Append": st.builds(pb.AppendRequest, signed_record=maybe(record)),
        "AppendStream": st.lists(
            st.builds(pb.AppendStreamRequest, signed_records=st.lists(record, max_size=4)), max_size=3
        ),
        "GetEntry": st.one_of(
            st.builds(pb.GetEntryRequest),
            st.builds(pb.GetEntryRequest, seq=U64),
            st.builds(pb.GetEntryRequest, record_id=TEXT),
        ),
        "ListEntries": st.builds(pb.ListEntriesRequest, start_seq=U64, end_seq=U64, admin_only=st.booleans()),
        "GetCheckpoint": st.builds(pb.GetCheckpointRequest, tree_size=U64, min_cosignatures=U32),
        "GetInclusionProof": st.builds(pb.GetInclusionProofRequest, seq=U64, tree_size=U64),
        "GetConsistencyProof": st.builds(pb.GetConsistencyProofRequest, old_size=U64, new_size=U64),
        "Trace": st.builds(
            trace_pb2.TraceRequest,
            lot=TEXT,
            direction=st.one_of(st.sampled_from([0, 1, 2]), st.integers(-(2**31), 2**31 - 1)),
            depth=U32,
            since=maybe(STAMP),
            until=maybe(STAMP),
        ),
        "Recall": st.builds(
            trace_pb2.RecallRequest,
            lots=st.lists(TEXT, max_size=4),
            supplier_lot_codes=st.lists(TEXT, max_size=4),
            reason=TEXT,
        ),
        "CommonSources": st.builds(trace_pb2.CommonSourcesRequest, lots=st.lists(TEXT, max_size=4)),
        "ListAlerts": st.builds(
            trace_pb2.ListAlertsRequest, since_seq=U64, rule=TEXT, limit=U32, lots=st.lists(TEXT, max_size=4)
        ),
        "GetKey": st.builds(pb.GetKeyRequest, key_id=st.one_of(TEXT, st.sampled_from(key_ids))),
    }


def call(stub: object, method: str, request: object) -> grpc.StatusCode:
    """Make the call; its status code (OK, or the code it was refused with)."""
    rpc = getattr(stub, method)
    descriptor = SERVICE.methods_by_name[method]
    try:
        if descriptor.client_streaming:
            assert isinstance(request, list)
            for _ in rpc(iter(request), timeout=20):
                pass
        elif descriptor.server_streaming:
            for _ in rpc(request, timeout=20):
                pass
        else:
            rpc(request, timeout=20)
    except grpc.RpcError as e:
        return e.code()
    return grpc.StatusCode.OK


def test_the_strategies_cover_every_rpc(s: SimpleNamespace) -> None:
    assert set(requests(s.world)) == {m.name for m in SERVICE.methods}


@pytest.mark.parametrize("mtls", [False, True], ids=["plaintext", "mtls-partner"])
def test_every_rpc_answers_bad_input_with_a_documented_status(
    serve: Callable[..., SimpleNamespace], mtls: bool
) -> None:
    """Hypothesis drives every RPC on one real server with out-of-range numbers, strings with
    control and non-ASCII characters, empty oneofs and random bytes: each answer is OK or a
    documented refusal, never UNKNOWN or INTERNAL, and no refused append changes the log.
    Over mTLS the caller is a partner (acme), so the read rules refuse some of it too."""
    s = serve(mtls=mtls, append_rate=1e6, append_burst=10**6)
    stub = s.stub("acme" if mtls else None)
    acme = s.world.keys["acme"]
    stub.Append(pb.AppendRequest(signed_record=signed(shipment(), acme)), timeout=10)  # LOT exists
    strategies = requests(s.world)
    methods = sorted(strategies)
    seen: dict[str, set[grpc.StatusCode]] = {m: set() for m in methods}

    @settings(
        max_examples=400,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
        database=None,
    )
    @given(st.sampled_from(methods).flatmap(lambda m: st.tuples(st.just(m), strategies[m])))
    def check(case: tuple[str, object]) -> None:
        method, request = case
        before = log_state(s.ledger)
        code = call(stub, method, request)
        seen[method].add(code)
        assert code in DOCUMENTED, f"{method}({request!r:.500}) answered {code.name}"
        if method in ("Append", "AppendStream"):
            assert log_state(s.ledger) == before, f"{method} changed the log"

    check()
    assert all(seen.values()), f"some RPC was never called: {seen}"


def sample(strategy: st.SearchStrategy[object]) -> Iterator[object]:
    """Draws outside a @given (for a quick look while debugging)."""
    while True:
        yield strategy.example()
