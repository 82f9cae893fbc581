"""A real mTLS server on loopback, with certificates from lotledger's own CA code, over a
ledger holding a few partners' records: what the security tests attack."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import GTIN_B, make_world, material_received, quality_check, registration, shipment
from mtls_helpers import Pki

from lotledger.ledger.core.records import sign
from lotledger.ledger.log import LedgerConfig
from lotledger.rpc.client import LedgerClient
from lotledger.rpc.server import LedgerServer, ServerTls
from lotledger.signing.certs import save_issued
from lotledger.signing.keys import SigningKey
from lotledger.v1 import records_pb2


@pytest.fixture
def mtls(tmp_path: Path) -> Iterator[SimpleNamespace]:
    world, ledger = make_world(tmp_path)
    for pid, role in (("globex", records_pb2.ROLE_SUPPLIER), ("aud", records_pb2.ROLE_AUDITOR)):
        key = SigningKey.generate()
        ledger.append(sign(registration("admin", pid, role, key), world.admin))
        world.keys[pid] = key
    world.keys["admin"] = world.admin
    seqs = {
        "acme_ship": ledger.append(sign(shipment("acme"), world.keys["acme"])).seq,
        "plant_received": ledger.append(sign(material_received("plant"), world.keys["plant"])).seq,
        "qa_l1": ledger.append(sign(quality_check("qa1"), world.keys["qa1"])).seq,
        "globex_ship": ledger.append(sign(shipment("globex", gtin_=GTIN_B), world.keys["globex"])).seq,
    }
    ledger.close()
    pki = Pki(tmp_path / "ca")
    server_cert = pki.ca.issue_server(["127.0.0.1", "localhost"], now=datetime.now(UTC))
    save_issued(server_cert, pki.dir / "server.crt", pki.dir / "server.key")
    tls = ServerTls.load(pki.dir / "server.crt", pki.dir / "server.key", pki.dir / "ca.crt")
    server = LedgerServer(world.data_dir, "127.0.0.1:0", config=LedgerConfig(checkpoint_interval=0.05), tls=tls).start()
    clients: list[LedgerClient] = []

    def client(participant: str | None, **kw: object) -> LedgerClient:
        c = LedgerClient(server.address, timeout=5.0, tls=pki.tls(participant, **kw))
        clients.append(c)
        return c

    yield SimpleNamespace(world=world, server=server, pki=pki, client=client, seqs=seqs, tmp=tmp_path)
    for c in clients:
        c.close()
    server.stop(grace=1)
