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
from helpers import make_world

from lotledger.ledger.tlog import merkle
from lotledger.rpc.servicer import LedgerServicer
from lotledger.trace.live import LiveIndex
from lotledger.v1 import ledger_service_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["LedgerService"]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[SimpleNamespace]:
    world, ledger = make_world(tmp_path)
    pool = ThreadPoolExecutor(2)
    live = LiveIndex(ledger)
    server = grpc_testing.server_from_dictionary(
        {SERVICE: LedgerServicer(ledger, pool, live)}, grpc_testing.strict_real_time()
    )
    yield SimpleNamespace(server=server, ledger=ledger)
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
