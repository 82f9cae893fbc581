"""Inclusion and consistency proofs at 1,000,000 entries, from the LMDB tree store.

Builds a ledger of N entries by writing entries and tree nodes in the store's own layout (the
append path would take minutes and is measured by bench/append.py), opens it with the real
Ledger, and prints p50/p99 of inclusion and consistency proofs for random positions, each
checked against the root, beside the cost of one SHA-256 node hash measured in the same run.

    python bench/proofs.py [--entries 1000000]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from ceilings import table  # noqa: E402

from lotledger.ledger.log import Ledger  # noqa: E402
from lotledger.ledger.store import Store, tree_key, u64  # noqa: E402
from lotledger.ledger.tlog import merkle  # noqa: E402
from lotledger.ledger.tlog.entries import ZERO_HASH, build_entry  # noqa: E402
from lotledger.signing.keys import SigningKey  # noqa: E402
from lotledger.v1 import records_pb2  # noqa: E402


def build(data_dir: Path, n: int, log_key: SigningKey) -> None:
    store = Store(data_dir / "ledger")
    signed = records_pb2.SignedRecord(record_bytes=os.urandom(280), key_id="0" * 64, signature=bytes(64))
    frontier: list[bytes] = []
    prev = ZERO_HASH
    now = time.time_ns()
    for chunk_start in range(0, n, 20_000):
        chunk_end = min(n, chunk_start + 20_000)
        with store.write() as txn:
            for seq in range(chunk_start, chunk_end):
                entry = build_entry(seq, prev, now, signed)
                leaf = merkle.leaf_hash(entry)
                frontier, nodes = merkle.append_leaf(frontier, seq, leaf)
                store.put_new(txn, "entries", u64(seq), entry, append=True)
                for level, index, node in nodes:
                    store.put_new(txn, "tree", tree_key(level, index), node)
                prev = leaf
            store.put(txn, "meta", b"size", u64(chunk_end))
        print(f"  built {chunk_end:,}", file=sys.stderr, end="\r")
    from lotledger.signing.note import Checkpoint, NoteSigner, sign_note

    origin = "bench.example.com/lotledger"
    with store.write() as txn:
        store.put(txn, "meta", b"origin", origin.encode())
        store.put(txn, "meta", b"log_public_key", log_key.public.raw)
        body = Checkpoint(origin, n, merkle.root_from_frontier(frontier, n)).body()
        store.put_new(txn, "checkpoints", u64(n), sign_note(body, NoteSigner(origin, log_key)))
    store.close()
    print(file=sys.stderr)


def percentiles(samples: list[float]) -> tuple[float, float]:
    qs = statistics.quantiles(samples, n=100)
    return qs[49], qs[98]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=2000)
    args = parser.parse_args()
    from speed import print_speed_of_day  # bench/speed.py: the machine's speed of the day

    print_speed_of_day()
    work = Path(tempfile.mkdtemp(prefix="lotledger-proofs-", dir=os.environ.get("BENCH_TMP")))
    try:
        log_key = SigningKey.generate()
        start = time.perf_counter()
        build(work / "data", args.entries, log_key)
        build_s = time.perf_counter() - start
        ledger = Ledger(work / "data", log_key)
        n = ledger.size
        cp = ledger.checkpoint()
        rng = random.Random(7)
        incl, cons = [], []
        for _ in range(args.samples):
            seq = rng.randrange(n)
            t = time.perf_counter()
            size, leaf, proof = ledger.inclusion_proof(seq, n)
            incl.append(time.perf_counter() - t)
            merkle.verify_inclusion(seq, size, leaf, proof, cp.root_hash)
            old = rng.randrange(1, n)
            t = time.perf_counter()
            _, cproof = ledger.consistency_proof(old, n)
            cons.append(time.perf_counter() - t)
            merkle.verify_consistency(old, n, ledger.root(old), cp.root_hash, cproof)
        ledger.close()
        node = b"\x01" + os.urandom(64)
        t = time.perf_counter()
        for _ in range(100_000):
            hashlib.sha256(node).digest()
        node_us = (time.perf_counter() - t) / 100_000 * 1e6
        ip50, ip99 = percentiles(incl)
        cp50, cp99 = percentiles(cons)
        rows = [
            ("what", "figure", "beside it"),
            (f"build {n:,} entries + tree (store layout)", f"{build_s:.1f} s", f"{n / build_s:,.0f} entries/s"),
            ("inclusion proof p50 / p99", f"{ip50 * 1e3:.3f} / {ip99 * 1e3:.3f} ms", "target p99 < 2 ms"),
            ("consistency proof p50 / p99", f"{cp50 * 1e3:.3f} / {cp99 * 1e3:.3f} ms", ""),
            (
                "SHA-256 node hash (ceiling unit)",
                f"{node_us:.2f} us",
                f"a proof of {n.bit_length()} nodes ~ {n.bit_length() * node_us:.0f} us of hashing",
            ),
        ]
        print(table(rows))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
