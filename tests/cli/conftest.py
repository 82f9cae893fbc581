"""A real server on a loopback port with a freshly initialised data directory and one
registered supplier: what the CLI tests talk to."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from cli_helpers import run

from lotledger.ledger.log import LedgerConfig
from lotledger.rpc.server import LedgerServer


@pytest.fixture
def live(tmp_path: Path) -> Iterator[SimpleNamespace]:
    data = tmp_path / "data"
    out = json.loads(run("init", str(data), "--origin", "cli.example.com/lotledger", "--json").stdout)
    server = LedgerServer(data, "127.0.0.1:0", config=LedgerConfig(checkpoint_interval=0.05)).start()
    supplier_key = tmp_path / "acme.key"
    run("keys", "generate", str(supplier_key))
    run(
        "keys",
        "register",
        "--id",
        "acme",
        "--role",
        "supplier",
        "--public-key",
        f"{supplier_key}.pub",
        "--server",
        server.address,
        "--key",
        str(data / "keys" / "admin.key"),
    )
    yield SimpleNamespace(data=data, server=server, vkey=out["log_verifier_key"], key=supplier_key, tmp=tmp_path)
    server.stop(grace=1)
