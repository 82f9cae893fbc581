"""Durable, verified appends through a real server on loopback, with the trace index live.

Starts `lotledger serve` as its own process on a fresh data directory (so the client's
signing and the server's verification do not share a GIL), pre-signs N records of mixed kinds,
and prints, below the speed of the day (bench/speed.py): appends/s through one AppendStream
beside the two-core Ed25519 verify ceiling (target >= 75%), and unary Append from 8
concurrent clients beside an empty unary call (a health check) through the same server from
the same 8 clients (target >= 60%), all measured in the same run. The machine is shared and
noisy, so each is measured in rounds, each round between two measurements of its ceiling (their
mean is the ceiling of that round), and the round of median ratio is the one shown.

    python bench/append.py [--records 20000] [--clients 8] [--rounds 3]
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from ceilings import ed25519_verify_rate, lmdb_commit_rate, table  # noqa: E402
from speed import print_speed_of_day  # noqa: E402
from workload import command, mixed_records, setup_participants  # noqa: E402

from lotledger.ledger.tlog.entries import AppendResult  # noqa: E402
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


def in_parallel(clients: int, work: Callable[[int], None]) -> float:
    """Seconds for `clients` threads to run work(i) each; re-raises the first failure."""
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            work(i)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return elapsed


def empty_calls(address: str, clients: int, per_client: int) -> float:
    """Empty unary calls per second (health checks) from `clients` clients, each on its own
    channel as the unary appends are: what the transport itself costs per call."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    def work(_: int) -> None:
        with LedgerClient(address) as c:
            stub = health_pb2_grpc.HealthStub(c.channel)
            request = health_pb2.HealthCheckRequest()
            for _ in range(per_client):
                stub.Check(request, timeout=30)

    return clients * per_client / in_parallel(clients, work)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=20_000, help="records per kind of append, all rounds together")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="each figure is the median of this many rounds")
    args = parser.parse_args()

    print_speed_of_day()
    work = Path(tempfile.mkdtemp(prefix="lotledger-bench-", dir=os.environ.get("BENCH_TMP")))
    try:
        print("measuring ceilings...", file=sys.stderr)
        verify1 = ed25519_verify_rate(1)
        commits = lmdb_commit_rate()

        data = work / "data"
        keys = setup_participants(data)
        port = free_port()
        server = subprocess.Popen(
            [*command("lotledger"), "serve", str(data), "--listen", f"127.0.0.1:{port}"] + unlimited(work),
            stderr=subprocess.DEVNULL,
        )
        address = f"127.0.0.1:{port}"
        per_round = args.records // args.rounds
        per_client = per_round // args.clients
        streams: list[tuple[float, float]] = []  # (records/s, the two-core ceiling around it)
        unaries: list[tuple[float, float]] = []  # (records/s, empty calls/s around it)
        try:
            with LedgerClient(address) as client:
                client.wait_ready(30)
            print(f"signing {2 * args.records} records...", file=sys.stderr)
            stream_batch = mixed_records(keys, per_round * args.rounds, prefix="s")
            unary_batch = mixed_records(keys, per_client * args.clients * args.rounds, prefix="u")
            with LedgerClient(address, timeout=600) as client:  # starts the server's precheck workers
                warm = list(client.append_stream(iter(mixed_records(keys, 400, prefix="w"))))
            assert all(isinstance(o, AppendResult) for o in warm)

            for r in range(args.rounds):
                before = ed25519_verify_rate(2, seconds=1.0)
                with LedgerClient(address, timeout=600) as client:
                    start = time.perf_counter()
                    outcomes = list(client.append_stream(iter(stream_batch[r * per_round : (r + 1) * per_round])))
                    stream_s = time.perf_counter() - start
                after = ed25519_verify_rate(2, seconds=1.0)
                refused = [o for o in outcomes if isinstance(o, StreamRefusal)]
                assert not refused, refused[:3]
                streams.append((per_round / stream_s, (before + after) / 2))

            for r in range(args.rounds):
                chunk = unary_batch[r * per_client * args.clients : (r + 1) * per_client * args.clients]

                def unary(i: int, chunk: list[Any] = chunk) -> None:
                    with LedgerClient(address) as c:
                        for s in chunk[i * per_client : (i + 1) * per_client]:
                            c.append(s)

                empty_before = empty_calls(address, args.clients, per_client)
                unary_rate = per_client * args.clients / in_parallel(args.clients, unary)
                empty_after = empty_calls(address, args.clients, per_client)
                unaries.append((unary_rate, (empty_before + empty_after) / 2))
        finally:
            server.terminate()
            server.wait(60)

        def median_round(rounds: list[tuple[float, float]]) -> tuple[float, float, str]:
            """The round of median ratio: (figure, its ceiling, every round's ratio)."""
            ranked = sorted(rounds, key=lambda fc: fc[0] / fc[1])
            figure, ceiling = ranked[len(ranked) // 2]
            return figure, ceiling, ", ".join(f"{f / c:.0%}" for f, c in rounds)

        stream_rate, verify2, stream_ratios = median_round(streams)
        unary_rate, empty_rate, unary_ratios = median_round(unaries)
        rows = [
            ("what", "figure", "beside it"),
            ("Ed25519 verify, 1 core (ceiling)", f"{verify1:,.0f}/s", ""),
            ("LMDB durable commits (ceiling)", f"{commits:,.0f}/s", "one fsync'd txn each"),
            (
                "Ed25519 verify, 2 threads (ceiling)",
                f"{verify2:,.0f}/s",
                f"{verify2 / verify1:.2f}x one core; measured just before and after the round (mean)",
            ),
            (
                f"AppendStream, {per_round:,} records a round",
                f"{stream_rate:,.0f}/s",
                f"{stream_rate / verify2:.0%} of the two-core verify ceiling (target >= 75%); rounds: {stream_ratios}",
            ),
            (
                f"empty unary call (health check), {args.clients} clients (ceiling)",
                f"{empty_rate:,.0f}/s",
                "measured just before and after the round (mean)",
            ),
            (
                f"unary Append, {args.clients} clients, {per_client * args.clients:,} a round",
                f"{unary_rate:,.0f}/s",
                f"{unary_rate / empty_rate:.0%} of the empty call's rate (target >= 60%); rounds: {unary_ratios}",
            ),
        ]
        print(table(rows))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
