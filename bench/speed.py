"""The speed of the day: two fixed pieces of work, timed at the top of every benchmark.

The machine is shared and its speed drifts from day to day, and interpreted work drifts more
than Ed25519 (which is native code): a benchmark's ratio to its same-run ceiling can move
although nothing in the code did. Printing these two figures beside every table makes a slow
day visible, and tells which kind of work it slowed.

- `python_loop_per_s`: iterations per second of a fixed pure-Python loop (attribute reads,
  a dict update, integer arithmetic: the interpreter's work, one core).
- `ed25519_verify_per_s`: verifications per second of one fixed batch of 500 Ed25519
  signatures over 300-byte messages with pyca/cryptography on one core (the ceiling of
  appending and verifying).

Each is the median of three runs (about 0.3 s in all).

    from speed import print_speed_of_day     # bench/ is on sys.path in every benchmark
    print_speed_of_day()                     # to stderr, before the table

    python bench/speed.py                    # the figures alone
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import TextIO

from lotledger.signing.keys import SigningKey, verify_record

LOOP_ITERATIONS = 200_000
VERIFY_BATCH = 500
_RUNS = 3


class _Point:
    __slots__ = ("x", "y")

    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y


def _python_loop() -> float:
    """Seconds for the fixed loop."""
    counts: dict[int, int] = {}
    p = _Point(1, 2)
    start = time.perf_counter()
    total = 0
    for i in range(LOOP_ITERATIONS):
        total += (i * p.x + p.y) % 7
        counts[i & 63] = total
    return time.perf_counter() - start


def _verify_batch() -> float:
    """Seconds for one batch of verifications (fixed keys and messages, made before timing)."""
    key = SigningKey.from_raw_seed(bytes(range(32)))
    raw = key.public.raw
    messages = [bytes([i % 256]) * 300 for i in range(VERIFY_BATCH)]
    signed = [(m, key.sign(b"lotledger/record/v1\n" + m)) for m in messages]
    start = time.perf_counter()
    for message, signature in signed:
        verify_record(raw, message, signature)
    return time.perf_counter() - start


def speed_of_day() -> dict[str, float]:
    """{"python_loop_per_s": ..., "ed25519_verify_per_s": ...}: the medians of three runs."""
    loop = statistics.median(_python_loop() for _ in range(_RUNS))
    verify = statistics.median(_verify_batch() for _ in range(_RUNS))
    return {"python_loop_per_s": LOOP_ITERATIONS / loop, "ed25519_verify_per_s": VERIFY_BATCH / verify}


def describe(speed: dict[str, float]) -> str:
    """One line for the top of a benchmark's table."""
    return (
        f"speed of the day: pure-Python loop {speed['python_loop_per_s'] / 1e6:.2f} M iterations/s, "
        f"Ed25519 verify batch {speed['ed25519_verify_per_s']:,.0f}/s (one core)"
    )


def print_speed_of_day(file: TextIO | None = None) -> dict[str, float]:
    """Measure and print the speed of the day (to stdout, above the table); returns the figures."""
    speed = speed_of_day()
    print(describe(speed), file=file or sys.stdout, flush=True)
    return speed


if __name__ == "__main__":
    print_speed_of_day()
