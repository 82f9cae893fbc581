"""The demo supply chain on a real loopback gRPC server, and the web app over it (shared by
the Flask-client tests and the browser tests)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from lotledger.cli.main import main
from lotledger.ledger.log import LedgerConfig
from lotledger.rpc.client import LedgerClient
from lotledger.rpc.server import LedgerServer
from lotledger.signing.note import NoteVerifier
from lotledger.web.source import LedgerSource


@pytest.fixture(scope="session")
def demo_ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(server address, data dir) of a running server over `lotledger demo`'s data."""
    data = tmp_path_factory.mktemp("web") / "demo"
    result = CliRunner().invoke(main, ["demo", str(data)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    server = LedgerServer(data, "127.0.0.1:0", config=LedgerConfig(checkpoint_interval=0.05)).start()
    try:
        yield server.address, data
    finally:
        server.stop(grace=1)


@pytest.fixture(scope="session")
def log_key(demo_ledger: tuple[str, Path]) -> NoteVerifier:
    return NoteVerifier.from_string((demo_ledger[1] / "log.vkey").read_text().strip())


@pytest.fixture(scope="session")
def source(demo_ledger: tuple[str, Path]) -> Iterator[LedgerSource]:
    s = LedgerSource(lambda: LedgerClient(demo_ledger[0]))
    try:
        yield s
    finally:
        s.close()
