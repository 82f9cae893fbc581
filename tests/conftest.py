"""Fixtures: a real LMDB ledger in tmp_path, and a real gRPC server on a loopback port.

And the `integration` marker, set here so that no test file has to say it: a test is an
integration test when it, one of its fixtures (at any depth), or a helper it calls starts a
real server, another process or a browser. `pytest -m "not integration"` is the quick loop
over the pure code and in-process LMDB; plain `pytest` (what CI runs) runs everything.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

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


# What starts a server, a process or a browser, as it reads in test code: a LedgerServer, the
# subprocess module (CLI and server processes), Playwright, an HTTP server (waitress, the
# witness test's http.server). Helpers in tests/ whose source matches (helpers.start_server,
# helpers.scan_cli, a test module's own `serve` or `start_log`) then count by their names.
SPAWNS = r"LedgerServer\(|\bsubprocess\.|\bPopen\(|sync_playwright|create_server\(|serve_forever|HTTPServer\("
TESTS = Path(__file__).resolve().parent


@functools.cache
def _source(obj: Any) -> str:
    """The source of a function or class written under tests/, else ""."""
    try:
        if not Path(inspect.getsourcefile(obj) or "").resolve().is_relative_to(TESTS):
            return ""
        return inspect.getsource(obj)
    except (OSError, TypeError):
        return ""


@functools.cache
def _spawns(module: ModuleType) -> re.Pattern[str]:
    """SPAWNS, plus `name(` for each test-code function or class the module can call that spawns."""
    helpers = {n: o for n, o in vars(module).items() if (inspect.isfunction(o) or inspect.isclass(o)) and _source(o)}
    spawners: set[str] = set()
    while True:  # a helper that calls a spawning helper spawns too
        pattern = re.compile("|".join([SPAWNS, *(rf"\b{re.escape(n)}\(" for n in sorted(spawners))]))
        more = {n for n, o in helpers.items() if n not in spawners and pattern.search(_source(o))}
        if not more:
            return pattern
        spawners |= more


def _integration_reason(item: pytest.Function) -> str | None:
    if item.get_closest_marker("browser") or item.get_closest_marker("slow"):
        return "marked browser or slow"
    spawns = _spawns(item.module)
    if spawns.search(_source(item.function)):
        return "the test starts a server or process"
    for name, defs in item._fixtureinfo.name2fixturedefs.items():  # every fixture, at any depth
        for fixturedef in defs:
            home = inspect.getmodule(fixturedef.func)  # a conftest's helpers are its own imports
            if (_spawns(home) if home else spawns).search(_source(fixturedef.func)):
                return f"fixture {name!r} starts a server or process"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark integration tests (see the module docstring); `-m integration` lists them."""
    for item in items:
        if isinstance(item, pytest.Function) and (reason := _integration_reason(item)):
            item.add_marker(pytest.mark.integration(reason))
