"""Fixtures: a real LMDB ledger in tmp_path, and a real gRPC server on a loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import World, make_world

from lotledger.ledger.log import Ledger, LedgerConfig
from lotledger.rpc.client import LedgerClient
from lotledger.rpc.server import LedgerServer


@pytest.fixture
def world_ledger(tmp_path: Path) -> Iterator[tuple[World, Ledger]]:
    world, ledger = make_world(tmp_path)
    yield world, ledger
    ledger.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[SimpleNamespace]:
    """A world behind a real gRPC server on a loopback port, and a client to it."""
    world, ledger = make_world(tmp_path)
    ledger.close()
    server = LedgerServer(world.data_dir, "127.0.0.1:0", config=LedgerConfig(checkpoint_interval=0.05)).start()
    client = LedgerClient(server.address)
    client.wait_ready()
    yield SimpleNamespace(world=world, server=server, client=client, ledger=server.ledger)
    client.close()
    server.stop(grace=1)
