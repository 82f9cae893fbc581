"""The servicer as an adapter, driven in-process by grpcio-testing (no network): it maps the
domain's answers to responses. grpcio-testing cannot carry rich error details
(abort_with_status is not implemented there), so every error path is tested on a real
loopback server in test_server.py, and the status table itself in test_status.py."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import grpc
import grpc_testing
import pytest
from google.protobuf.descriptor import MethodDescriptor
from helpers import make_world, shipment, signed

from lotledger.ledger.tlog import merkle
from lotledger.rpc import status
from lotledger.rpc.servicer import LedgerServicer
from lotledger.trace.live import LiveIndex
from lotledger.v1 import ledger_service_pb2 as pb
from lotledger.v1 import trace_pb2

SERVICE = pb.DESCRIPTOR.services_by_name["LedgerService"]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[SimpleNamespace]:
    world, ledger = make_world(tmp_path)
    pool = ThreadPoolExecutor(2)
    live = LiveIndex(ledger)
    server = grpc_testing.server_from_dictionary(
        {SERVICE: LedgerServicer(ledger, pool, live)}, grpc_testing.strict_real_time()
    )
    yield SimpleNamespace(server=server, ledger=ledger, live=live, world=world)
    live.close()
    ledger.close()
    pool.shutdown()


def unary(rig: SimpleNamespace, method: str, request: object) -> tuple[object, grpc.StatusCode, str]:
    rpc = rig.server.invoke_unary_unary(SERVICE.methods_by_name[method], (), request, 5)
    response, _, code, details = rpc.termination()
    return response, code, details


def test_get_checkpoint_maps_the_ledger_answer(rig: SimpleNamespace) -> None:
    rig.ledger.sign_checkpoint_now()
    response, code, _ = unary(rig, "GetCheckpoint", pb.GetCheckpointRequest())
    assert code == grpc.StatusCode.OK
    assert response.tree_size == rig.ledger.size and response.root_hash == rig.ledger.root(rig.ledger.size)


def test_get_entry_by_seq_returns_stored_bytes(rig: SimpleNamespace) -> None:
    response, code, _ = unary(rig, "GetEntry", pb.GetEntryRequest(seq=1))
    assert code == grpc.StatusCode.OK
    assert merkle.leaf_hash(response.entry) == response.leaf_hash == rig.ledger.entry(1)[1]


@pytest.mark.parametrize("method", list(SERVICE.methods), ids=lambda m: m.name)
def test_every_rpc_maps_its_errors_in_one_place(method: MethodDescriptor) -> None:
    """Each RPC wears the status table's decorator, the streaming kind for streamed answers,
    so no handler can let a domain error out as UNKNOWN (test_status.py tests the decorators)."""
    handler = getattr(LedgerServicer, method.name)
    mapper = status.maps_stream_errors if method.server_streaming else status.maps_errors
    assert handler.__code__.co_qualname == f"{mapper.__name__}.<locals>.mapped", f"{method.name} maps no errors"
    assert handler.__wrapped__.__name__ == method.name


def test_trace_rpcs_answer_from_the_index(rig: SimpleNamespace) -> None:
    result = rig.ledger.append(signed(shipment(record_id="s-unit"), rig.world.keys["acme"]))
    assert rig.live.wait_for(result.seq + 1)
    down = trace_pb2.TraceRequest(lot="01/09520000000011/10/L1", direction=trace_pb2.TRACE_DIRECTION_DOWNSTREAM)
    response, code, _ = unary(rig, "Trace", down)
    assert code == grpc.StatusCode.OK and [s.shipment_id for s in response.shipments] == ["acme/SH-s-unit"]
    response, code, _ = unary(rig, "ListAlerts", trace_pb2.ListAlertsRequest(rule="SHIPPED_WITHOUT_QC"))
    assert code == grpc.StatusCode.OK and [a.seq for a in response.alerts] == [result.seq]
