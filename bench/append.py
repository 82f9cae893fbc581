"""Durable, verified appends through a real server on loopback.

Starts `lotledger serve` as its own process on a fresh data directory (so the client's
signing and the server's verification do not share a GIL), pre-signs N records of mixed kinds,
and prints: appends/s through one AppendStream, through unary Append from 8 concurrent
clients, and beside them this machine's ceilings measured in the same run (Ed25519
verifications/s on one and two cores; durable LMDB commits/s).

    python bench/append.py [--records 20000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from ceilings import ed25519_verify_rate, lmdb_commit_rate, table  # noqa: E402
from workload import command, mixed_records, setup_participants  # noqa: E402

from lotledger.rpc.client import LedgerClient, StreamRefusal  # noqa: E402


def unlimited(work: Path) -> list[str]:
    """`serve` options for a benchmark: it measures throughput, not the per-participant append
    rate limit (rpc/limits.py), so that limit is lifted through a config file in `work`."""
    config = work / "bench-limits.toml"
    config.write_text("[append]\nrate = 1000000.0\nburst = 10000000\n")
    return ["--config", str(config)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="lotledger-bench-", dir=os.environ.get("BENCH_TMP")))
    try:
        print("measuring ceilings...", file=sys.stderr)
        verify1 = ed25519_verify_rate(1)
        verify2 = ed25519_verify_rate(2)
        commits = lmdb_commit_rate()

        data = work / "data"
        keys = setup_participants(data)
        port = free_port()
        server = subprocess.Popen(
            [*command("lotledger"), "serve", str(data), "--listen", f"127.0.0.1:{port}"] + unlimited(work),
            stderr=subprocess.DEVNULL,
        )
        address = f"127.0.0.1:{port}"
        try:
            with LedgerClient(address) as client:
                client.wait_ready(30)
            print(f"signing {2 * args.records} records...", file=sys.stderr)
            stream_batch = mixed_records(keys, args.records, prefix="s")
            unary_batch = mixed_records(keys, args.records, prefix="u")

            with LedgerClient(address, timeout=600) as client:
                start = time.perf_counter()
                outcomes = list(client.append_stream(iter(stream_batch)))
                stream_s = time.perf_counter() - start
            refused = [o for o in outcomes if isinstance(o, StreamRefusal)]
            assert not refused, refused[:3]

            per_client = len(unary_batch) // args.clients
            errors: list[BaseException] = []

            def unary(chunk: list) -> None:  # type: ignore[type-arg]
                try:
                    with LedgerClient(address) as c:
                        for s in chunk:
                            c.append(s)
                except BaseException as e:  # noqa: BLE001
                    errors.append(e)

            threads = [
                threading.Thread(target=unary, args=(unary_batch[i * per_client : (i + 1) * per_client],))
                for i in range(args.clients)
            ]
            start = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            unary_s = time.perf_counter() - start
            assert not errors, errors[:3]
        finally:
            server.terminate()
            server.wait(60)

        stream_rate = len(stream_batch) / stream_s
        unary_rate = per_client * args.clients / unary_s
        rows = [
            ("what", "figure", "beside it"),
            ("Ed25519 verify, 1 core (ceiling)", f"{verify1:,.0f}/s", ""),
            ("Ed25519 verify, 2 threads (ceiling)", f"{verify2:,.0f}/s", f"{verify2 / verify1:.2f}x one core"),
            ("LMDB durable commits (ceiling)", f"{commits:,.0f}/s", "one fsync'd txn each"),
            (
                f"AppendStream, {len(stream_batch):,} records",
                f"{stream_rate:,.0f}/s",
                f"{stream_rate / verify1:.0%} of one core's verify rate (target >= 60%)",
            ),
            (
                f"unary Append, {args.clients} clients",
                f"{unary_rate:,.0f}/s",
                f"target >= 1,000/s; {unary_rate / commits:.1f}x the single-commit rate",
            ),
        ]
        print(table(rows))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
