"""A real server on a loopback port with chosen limits, plaintext or mTLS, over the test world
(admin, acme, plant, qa1) plus an auditor `aud`: what the call-limit tests attack."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from helpers import make_world, registration
from mtls_helpers import Pki

from lotledger.ledger.core.records import sign
from lotledger.ledger.log import LedgerConfig
from lotledger.rpc.client import LedgerClient
from lotledger.rpc.limits import Limits
from lotledger.rpc.server import LedgerServer, ServerTls
from lotledger.signing.certs import save_issued
from lotledger.signing.keys import SigningKey
from lotledger.v1 import ledger_service_pb2_grpc as pb_grpc
from lotledger.v1 import records_pb2


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., SimpleNamespace]]:
    """serve(mtls=False, **limits): the world behind a real server with these limits.

    The result has `server`, `ledger`, `world`, `address`; `channel(participant)` opens a
    channel (plaintext, or mTLS with a certificate naming `participant`), `stub(participant)`
    a LedgerService stub on a new channel, `client(participant)` a LedgerClient. Everything
    opened is closed at the end."""
    servers: list[LedgerServer] = []
    closers: list[Callable[[], object]] = []

    def start(*, mtls: bool = False, **limits: Any) -> SimpleNamespace:
        world, ledger = make_world(tmp_path)
        key = SigningKey.generate()
        ledger.append(sign(registration("admin", "aud", records_pb2.ROLE_AUDITOR, key), world.admin))
        world.keys["aud"] = key
        world.keys["admin"] = world.admin
        ledger.close()
        pki = tls = None
        if mtls:
            pki = Pki(tmp_path / "ca")
            issued = pki.ca.issue_server(["127.0.0.1", "localhost"], now=datetime.now(UTC))
            save_issued(issued, pki.dir / "server.crt", pki.dir / "server.key")
            tls = ServerTls.load(pki.dir / "server.crt", pki.dir / "server.key", pki.dir / "ca.crt")
        server = LedgerServer(
            world.data_dir,
            "127.0.0.1:0",
            config=LedgerConfig(checkpoint_interval=0.05),
            tls=tls,
            limits=Limits(**limits),
        ).start()
        servers.append(server)
        credentials: dict[str, grpc.ChannelCredentials] = {}

        def channel(participant: str | None = None, **options: Any) -> grpc.Channel:
            opts = list(options.items())
            if pki is None:
                ch = grpc.insecure_channel(server.address, options=opts)
            else:
                who = participant or ""
                if who not in credentials:
                    t = pki.tls(participant)
                    credentials[who] = grpc.ssl_channel_credentials(t.ca, t.key, t.cert)
                ch = grpc.secure_channel(server.address, credentials[who], options=opts)
            closers.append(ch.close)
            return ch

        def stub(participant: str | None = None, **options: Any) -> pb_grpc.LedgerServiceStub:
            return pb_grpc.LedgerServiceStub(channel(participant, **options))

        def client(participant: str | None = None) -> LedgerClient:
            c = LedgerClient(server.address, timeout=10.0, tls=pki.tls(participant) if pki else None)
            closers.append(c.close)
            return c

        return SimpleNamespace(
            world=world,
            server=server,
            ledger=server.ledger,
            address=server.address,
            channel=channel,
            stub=stub,
            client=client,
        )

    yield start
    for close in reversed(closers):
        close()
    for server in servers:
        server.stop(grace=1)
