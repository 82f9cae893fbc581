"""The machine's own limits, measured in the same run as each benchmark (the machine is shared
and noisy, so a benchmark reports ratios to these rather than absolute targets)."""

from __future__ import annotations

import os
import tempfile
import threading
import time

import lmdb

from lotledger.signing.keys import SigningKey, verify_record


def ed25519_verify_rate(threads: int = 1, seconds: float = 1.5) -> float:
    """Ed25519 verifications per second with `threads` threads (pyca releases the GIL)."""
    key = SigningKey.generate()
    message = os.urandom(300)
    signature = key.sign(b"lotledger/record/v1\n" + message)
    raw = key.public.raw
    counts = [0] * threads

    def work(i: int) -> None:
        end = time.perf_counter() + seconds
        n = 0
        while time.perf_counter() < end:
            for _ in range(100):
                verify_record(raw, message, signature)
            n += 100
        counts[i] = n

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(counts) / (time.perf_counter() - start)


def lmdb_commit_rate(commits: int = 600) -> float:
    """Durable (sync, metasync) single-put LMDB commits per second in a temp directory."""
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as d:
        env = lmdb.open(d, map_size=1 << 30, sync=True, metasync=True, writemap=False)
        start = time.perf_counter()
        for i in range(commits):
            with env.begin(write=True) as txn:
                txn.put(i.to_bytes(8, "big"), b"x" * 300)
        rate = commits / (time.perf_counter() - start)
        env.close()
    return rate


def table(rows: list[tuple[str, str, str]]) -> str:
    """A plain-text table: what, figure, beside it."""
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = []
    for j, r in enumerate(rows):
        lines.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
