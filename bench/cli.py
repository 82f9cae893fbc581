"""Start-up of the commands: every `--help` and the client commands, each as a whole process,
beside what any such process pays, measured in the same run.

Each command runs as its console script does (the three lines pip writes, found through the
entry point) as its own process, stdout and stderr thrown away; the figure is its median wall
time over --runs runs. Its ceiling runs just before it in every round, and the ratio is the
median over rounds of its time over the round's median ceiling (comparing within a round keeps
a ratio meaningful while a shared machine's speed drifts):

- help paths (`lotledger --help`, `lotledger CMD [SUB] --help` for every command the help lists,
  `lotledger-scan [CMD] --help`) beside `python -c "import click"`;
- client commands (get, checkpoint, proof, trace, recall, append) beside `python -c "import grpc,
  click, lotledger.v1.ledger_service_pb2_grpc"`, against one `lotledger serve DIR --demo` started
  here on a free loopback port.

Target: at most 1.5x for each. Every process gets the same fresh bytecode cache
(PYTHONPYCACHEPREFIX in the run's temp directory, filled by an untimed warm-up run), as an
installed package has: without one, an editable install compiles lotledger's sources in every
process. "Speed of the day" times a fixed pure-Python loop, to compare runs from different days.

    python bench/cli.py [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from append import free_port  # noqa: E402
from ceilings import table  # noqa: E402

from lotledger.rpc.client import LedgerClient  # noqa: E402

TARGET = 1.5
HELP_CEILING = [sys.executable, "-c", "import click"]
CLIENT_CEILING = [sys.executable, "-c", "import grpc, click, lotledger.v1.ledger_service_pb2_grpc"]
BREAD_LOT = "01/09520000000042/10/B-1001"  # the demo's bread lot (cli/demo.py)
SHIPMENT = {
    "shipment": {
        "shipmentId": "SH-BENCH",
        "lots": [{"lot": {"gtin": "09520000000011", "lot": "F-BENCH"}, "quantity": {"amount": "10", "unit": "KGM"}}],
        "fromParticipant": "mill",
        "toParticipant": "plant",
        "shippedAt": "2026-10-01T06:00:00Z",
    }
}


def script(name: str) -> list[str]:
    """The argv that does what the console script `name` does (pip's three lines), with this
    interpreter and without naming the module behind it. Raises ValueError if not installed."""
    found = entry_points(group="console_scripts", name=name)
    if not found:
        raise ValueError(f"no console script {name!r}: install lotledger (pip install -e .)")
    ep = next(iter(found))
    code = f"import sys; from {ep.module} import {ep.attr}; sys.argv[0] = {name!r}; sys.exit({ep.attr}())"
    return [sys.executable, "-c", code]


def speed_of_the_day(repeats: int = 5) -> float:
    """Seconds for a fixed pure-Python loop (median of `repeats`): how fast this machine runs
    interpreted code today."""
    times = []
    for _ in range(repeats):
        start, total = time.perf_counter(), 0
        for i in range(1_000_000):
            total += i * i % 7
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def wall(argv: list[str], env: dict[str, str]) -> float:
    """One whole process's wall seconds. Raises RuntimeError, with its stderr, if it fails."""
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{argv[3:]}: exit {done.returncode}: {done.stderr.decode(errors='replace')}")
    return took


def help_paths(argv: list[str], env: dict[str, str], path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """`path` and every command under it, read from the help itself (the "Commands:" section)."""
    yield path
    out = subprocess.run([*argv, *path, "--help"], env=env, capture_output=True, text=True, check=True).stdout
    section = out.partition("\nCommands:\n")[2]
    for line in section.splitlines():
        if found := re.match(r"  (\S+)", line):
            yield from help_paths(argv, env, (*path, found.group(1)))


def timed(
    commands: list[tuple[str, list[str]]], ceiling: list[str], runs: int, env: dict[str, str]
) -> tuple[dict[str, float], float, dict[str, float]]:
    """Median wall time of each command and of the ceiling, and each command's ratio: the
    median over rounds of its time over that round's median ceiling. A round runs the ceiling
    before every command, so each round's ceiling is many runs spread over the same seconds as
    the commands it is compared with. One untimed warm-up run of each first."""
    for _, argv in commands:
        wall(ceiling, env)
        wall(argv, env)
    ceilings: list[float] = []
    times: dict[str, list[float]] = {label: [] for label, _ in commands}
    ratios: dict[str, list[float]] = {label: [] for label, _ in commands}
    for round_ in range(runs):
        print(f"  round {round_ + 1}/{runs}", file=sys.stderr, end="\r")
        round_ceilings, round_times = [], {}
        for label, argv in commands:
            round_ceilings.append(wall(ceiling, env))
            round_times[label] = wall(argv, env)
        floor = statistics.median(round_ceilings)
        ceilings += round_ceilings
        for label, took in round_times.items():
            times[label].append(took)
            ratios[label].append(took / floor)
    return (
        {k: statistics.median(v) for k, v in times.items()},
        statistics.median(ceilings),
        {k: statistics.median(v) for k, v in ratios.items()},
    )


def rows_for(medians: dict[str, float], ratios: dict[str, float], beside: str) -> list[tuple[str, str, str]]:
    return [
        (label, f"{medians[label] * 1000:.0f} ms", f"{ratios[label]:.2f}x {beside}" + ("" if ratios[label] <= TARGET else "  OVER"))
        for label in medians
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    from speed import print_speed_of_day  # bench/speed.py: the machine's speed of the day

    print_speed_of_day()
    work = Path(tempfile.mkdtemp(prefix="lotledger-bench-", dir=os.environ.get("BENCH_TMP")))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    lotledger, scan = script("lotledger"), script("lotledger-scan")
    server = None
    try:
        speed = speed_of_the_day()
        print("help paths...", file=sys.stderr)
        help_commands = [
            (" ".join([name, *path, "--help"]), [*argv, *path, "--help"])
            for name, argv in (("lotledger", lotledger), ("lotledger-scan", scan))
            for path in help_paths(argv, env)
        ]
        help_medians, help_floor, help_ratios = timed(help_commands, HELP_CEILING, args.runs, env)

        print("client commands (serve --demo)...", file=sys.stderr)
        data, port = work / "demo", free_port()
        address = f"127.0.0.1:{port}"
        server = subprocess.Popen(
            [*lotledger, "serve", str(data), "--demo", "--listen", address],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        with LedgerClient(address) as client:
            client.wait_ready(60)
            size = client.checkpoint(0).size
        shipment = work / "shipment.json"
        shipment.write_text(json.dumps(SHIPMENT))
        srv = ["--server", address]
        signer = ["--key", str(data / "keys" / "demo" / "mill.key"), "--participant", "mill"]
        client_args = {
            "get 3": ["get", "3"],
            "get 3 --json": ["get", "3", "--json"],
            "checkpoint": ["checkpoint"],
            "proof inclusion 3": ["proof", "inclusion", "3"],
            f"proof consistency 3 {size}": ["proof", "consistency", "3", str(size)],
            "trace up LOT": ["trace", "up", BREAD_LOT],
            "trace down LOT": ["trace", "down", BREAD_LOT],
            "recall LOT": ["recall", BREAD_LOT],
            "append FILE (1 record)": ["append", str(shipment), *signer],  # a new record each run (no record id)
        }
        client_commands = [(f"lotledger {label}", [*lotledger, *a, *srv]) for label, a in client_args.items()]
        client_medians, client_floor, client_ratios = timed(client_commands, CLIENT_CEILING, args.runs, env)
    finally:
        if server is not None:
            server.terminate()
            server.wait(60)
        shutil.rmtree(work, ignore_errors=True)

    worst_help = max(help_ratios.values())
    worst_client = max(client_ratios.values())
    rows = [
        ("what", "median wall", "beside it"),
        ("speed of the day (fixed pure-Python loop)", f"{speed * 1000:.0f} ms", "to compare runs from different days"),
        ("ceiling: python -c 'import click'", f"{help_floor * 1000:.0f} ms", "for help paths"),
        (
            "ceiling: python -c 'import grpc, click, lotledger.v1...'",
            f"{client_floor * 1000:.0f} ms",
            "for client commands",
        ),
        *rows_for(help_medians, help_ratios, "import click"),
        *rows_for(client_medians, client_ratios, "the client ceiling"),
    ]
    print(table(rows))
    print(
        f"\nworst help path {worst_help:.2f}x, worst client command {worst_client:.2f}x "
        f"(target <= {TARGET}x; {args.runs} runs each, each run beside its round's ceiling)"
    )


if __name__ == "__main__":
    main()
