"""A log published as tiles by a real server (`serve --publish`), and a plain HTTP server
process serving that directory: what the readers of tests/tiles read."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from cli_helpers import run
from helpers import free_port, make_world, shipment, signed

from lotledger.ledger.log import LedgerConfig
from lotledger.rpc.client import LedgerClient, StreamRefusal
from lotledger.rpc.server import LedgerServer
from lotledger.signing.keys import SigningKey


def append(address: str, key: SigningKey, prefix: str, n: int) -> None:
    records = [signed(shipment(record_id=f"{prefix}-{i:05d}"), key) for i in range(n)]
    with LedgerClient(address, timeout=120) as client:
        outcomes = list(client.append_stream(iter(records)))
    assert not [o for o in outcomes if isinstance(o, StreamRefusal)]


def publish_log(
    tmp: Path, out: Path, batches: list[tuple[str, int]], *, world_dir: Path | None = None
) -> SimpleNamespace:
    """A world (tests/helpers.py) whose server publishes to `out`; `batches` appended, then stopped."""
    world, ledger = make_world(world_dir or tmp)
    ledger.close()
    server = LedgerServer(
        world.data_dir, "127.0.0.1:0", config=LedgerConfig(checkpoint_interval=0.05), publish=out
    ).start()
    try:
        for prefix, n in batches:
            append(server.address, world.keys["acme"], prefix, n)
        server.ledger.sign_checkpoint_now()  # the bundle and the tiles end at the same checkpoint
        bundle = tmp / "log.bundle"
        run("export", "--out", str(bundle), "--server", server.address, "--quiet")
    finally:
        server.stop(grace=1)
    vkey = tmp / "log.vkey"
    vkey.write_text(server.ledger.log_verifier_key + "\n")
    return SimpleNamespace(world=world, out=out, vkey=vkey, bundle=bundle)


def http_serve(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`python -m http.server` over `directory` (it answers If-Modified-Since with 304)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(directory)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.05)
    return proc, f"http://127.0.0.1:{port}/"


def serve_publishing(data_dir: Path, port: int, out: Path) -> subprocess.Popen[bytes]:
    """`lotledger serve DATA --publish OUT` as a process of its own, once it answers."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "lotledger.cli.main", "serve", str(data_dir), "--listen", f"127.0.0.1:{port}"]
        + ["--checkpoint-interval", "0.05", "--publish", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    with LedgerClient(f"127.0.0.1:{port}") as client:
        try:
            client.wait_ready(timeout=30)
        except Exception:
            proc.kill()
            raise AssertionError(proc.stderr.read().decode() if proc.stderr else "") from None
    return proc


@pytest.fixture(scope="session")
def tools() -> SimpleNamespace:
    """The helpers above, for test modules (a conftest is not importable by name here)."""
    return SimpleNamespace(
        append=append, publish_log=publish_log, http_serve=http_serve, serve_publishing=serve_publishing
    )


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """704 entries published as tiles (two full level-0 tiles, partials at levels 0 and 1),
    their export bundle, and an HTTP server process serving the directory."""
    tmp = tmp_path_factory.mktemp("published")
    log = publish_log(tmp, tmp / "pub", [("a", 700)])
    proc, url = http_serve(log.out)
    log.url = url
    yield log
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def copy_of(published: SimpleNamespace, tmp_path: Path) -> Path:
    """A copy of the published directory to damage."""
    target = tmp_path / "copy"
    shutil.copytree(published.out, target)
    return target
