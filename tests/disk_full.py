"""A full disk, for real, in a process of its own: `lotledger` run with RLIMIT_FSIZE, so no file
it writes may grow past `limit` bytes. Python ignores SIGXFSZ, so a write past the limit fails
with EFBIG, and one that only partly fits comes back short, which LMDB reports as EIO: the two
answers a full disk gives a writer. (A small tmpfs would need root; a small LMDB map_size would
only reach MDB_MAP_FULL, not the failed write.)"""

from __future__ import annotations

import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from lotledger.ledger.errors import Unavailable
from lotledger.rpc.client import LedgerClient

LOTLEDGER = [sys.executable, "-m", "lotledger.cli.main"]


def file_size_limit(limit: int | None) -> Callable[[], None] | None:
    """A preexec_fn that caps the size of every file the child writes (None: no cap)."""
    if limit is None:
        return None

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return cap


def lotledger(*args: str, limit: int | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`lotledger ARGS` in a child process, its files capped at `limit` bytes."""
    return subprocess.run(
        [*LOTLEDGER, *args], capture_output=True, text=True, timeout=timeout, preexec_fn=file_size_limit(limit)
    )


def serve_process(data_dir: Path, port: int, *, limit: int | None = None) -> subprocess.Popen[str]:
    """`lotledger serve DATA_DIR` on a loopback port, its files capped at `limit` bytes; not
    waited for (see wait_serving)."""
    return subprocess.Popen(
        [*LOTLEDGER, "serve", str(data_dir), "--listen", f"127.0.0.1:{port}", "--checkpoint-interval", "0.05"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=file_size_limit(limit),
    )


def wait_serving(proc: subprocess.Popen[str], port: int, timeout: float = 20) -> bool:
    """True once the server answers health checks; False if the process ended first."""
    client = LedgerClient(f"127.0.0.1:{port}")
    try:
        for _ in range(int(timeout / 0.25)):
            if proc.poll() is not None:
                return False
            try:
                client.wait_ready(timeout=0.25)
                return True
            except Unavailable:  # not up yet
                continue
        raise AssertionError("the server neither started nor exited")
    finally:
        client.close()
