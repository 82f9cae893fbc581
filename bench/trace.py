"""The trace index at scale, beside networkx on the same graph in the same run.

Builds a supply chain of N lots (default 1,000,000: raw materials, intermediates, finished
lots; each made lot consumes two earlier ones; a few raw lots are used very widely) plus
shipments of finished lots to a few thousand customers, through the real index code
(TraceIndex.apply on Record messages). Each engine runs in its own process so resident memory
is its own. Prints build time, resident memory, p50/p99 of upstream and downstream closures
on random lots, and a recall of a widely used raw-material lot.

    python bench/trace.py [--lots 1000000] [--samples 500]
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from ceilings import table  # noqa: E402

from lotledger.v1 import records_pb2  # noqa: E402


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def chain(n_lots: int, seed: int = 1) -> Iterator[records_pb2.Record]:
    """Records of the benchmark chain, in log order."""
    rng = random.Random(seed)
    n_raw = n_lots // 20
    n_mid = n_lots * 3 // 10
    n_fin = n_lots - n_raw - n_mid
    unit = records_pb2.Quantity(amount="10", unit="KGM")
    for i in range(n_raw):
        r = records_pb2.Record(record_id=f"m{i}", submitter="plant")
        m = r.material_received
        m.lot.item_code, m.lot.lot = f"RAW{i % 50}", f"R{i}"
        m.supplier, m.supplier_lot_code = f"sup{i % 200}", f"S{i}"
        m.quantity.CopyFrom(unit)
        yield r
    for i in range(n_mid):
        r = records_pb2.Record(record_id=f"p{i}", submitter="plant")
        run = r.production_run
        run.run_id = f"RUN-M{i}"
        picks = {rng.randrange(n_raw), rng.randrange(n_raw)}
        if i % 50 == 0:
            picks.add(0)  # raw lot R0 (say, salt) goes into every 50th intermediate
        for p in picks:
            item = run.inputs.add(quantity=unit)
            item.lot.item_code, item.lot.lot = f"RAW{p % 50}", f"R{p}"
        out = run.outputs.add(quantity=unit)
        out.lot.item_code, out.lot.lot = "MID", f"M{i}"
        yield r
    for i in range(n_fin):
        r = records_pb2.Record(record_id=f"f{i}", submitter="plant")
        run = r.production_run
        run.run_id = f"RUN-F{i}"
        for p in {rng.randrange(n_mid), rng.randrange(n_mid)}:
            item = run.inputs.add(quantity=unit)
            item.lot.item_code, item.lot.lot = "MID", f"M{p}"
        out = run.outputs.add(quantity=unit)
        out.lot.item_code, out.lot.lot = "FIN", f"F{i}"
        yield r
        if i % 3 == 0:
            s = records_pb2.Record(record_id=f"s{i}", submitter="plant")
            sh = s.shipment
            sh.shipment_id, sh.from_participant, sh.to_participant = f"SH{i}", "plant", f"cust{rng.randrange(3000)}"
            item = sh.lots.add(quantity=unit)
            item.lot.item_code, item.lot.lot = "FIN", f"F{i}"
            yield s


def edges_of(records: list[records_pb2.Record]) -> list[tuple[str, str]]:
    from lotledger.ledger.validation import lot_key

    out = []
    for r in records:
        kind = r.WhichOneof("body")
        if kind == "production_run":
            for i in r.production_run.inputs:
                for o in r.production_run.outputs:
                    out.append((lot_key(i.lot), lot_key(o.lot)))
        elif kind == "shipment":
            for item in r.shipment.lots:
                out.append((lot_key(item.lot), f"shipment:{r.shipment.shipment_id}"))
    return out


def pct(samples: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(samples, n=100)
    return q[49] * 1e3, q[98] * 1e3


def run_engine(engine: str, n_lots: int, samples: int) -> dict[str, float]:
    records = list(chain(n_lots))
    rng = random.Random(7)
    keys_up = [f"item/FIN/lot/F{rng.randrange(n_lots // 2)}" for _ in range(samples)]
    keys_down = [f"item/MID/lot/M{rng.randrange(n_lots // 4)}" for _ in range(samples)]
    wide = "item/RAW0/lot/R0"
    result: dict[str, float] = {}
    if engine == "rustworkx":
        from lotledger.trace.index import TraceIndex
        from lotledger.trace.queries import downstream, recall, upstream

        gc.collect()
        base = rss_mib()
        start = time.perf_counter()
        index = TraceIndex()
        for seq, r in enumerate(records):
            index.apply(seq, r)
        result["build_s"] = time.perf_counter() - start
        del records
        gc.collect()
        result["rss_mib"] = rss_mib() - base
        result["nodes"] = index.graph.num_nodes()
        result["edges"] = index.graph.num_edges()
        import tempfile

        from lotledger.trace.snapshot import SnapshotStore

        with tempfile.TemporaryDirectory() as tmp:
            store = SnapshotStore(Path(tmp))
            t = time.perf_counter()
            result["snapshot_mib"] = store.save(index, [], bytes(32)) / 2**20
            result["snapshot_save_s"] = time.perf_counter() - t
            t = time.perf_counter()
            loaded = store.load()
            result["snapshot_load_s"] = time.perf_counter() - t
            assert loaded is not None and loaded.size == index.size
            del loaded
            store.close()

        def up(k: str) -> int:
            return len(upstream(index, k).depth)

        def down(k: str) -> int:
            return len(downstream(index, k).depth)

        def wide_recall() -> int:
            return len(recall(index, [wide]).lots)
    else:
        import networkx as nx

        edges = edges_of(records)
        del records
        gc.collect()
        base = rss_mib()
        start = time.perf_counter()
        g = nx.DiGraph()
        g.add_edges_from(edges)
        result["build_s"] = time.perf_counter() - start
        del edges
        gc.collect()
        result["rss_mib"] = rss_mib() - base
        result["nodes"], result["edges"] = g.number_of_nodes(), g.number_of_edges()

        def walk(k: str, forward: bool) -> tuple[dict[str, int], dict[str, str | None], list[tuple[str, str]]]:
            # The same answer lotledger's trace gives: depth, parent and every edge.
            adj = g.succ if forward else g.pred
            depth: dict[str, int] = {k: 0}
            parent: dict[str, str | None] = {k: None}
            found: list[tuple[str, str]] = []
            queue = [k]
            for node in queue:
                for nxt in adj[node]:
                    found.append((node, nxt) if forward else (nxt, node))
                    if nxt not in depth:
                        depth[nxt], parent[nxt] = depth[node] + 1, node
                        queue.append(nxt)
            return depth, parent, found

        def up(k: str) -> int:
            return len(walk(k, False)[0])

        def down(k: str) -> int:
            return len(walk(k, True)[0])

        def wide_recall() -> int:
            return sum(1 for n in walk(wide, True)[0] if not n.startswith("shipment:"))

    for name, fn, keys in (("up", up, keys_up), ("down", down, keys_down)):
        times, sizes = [], []
        for k in keys:
            t = time.perf_counter()
            sizes.append(fn(k))
            times.append(time.perf_counter() - t)
        result[f"{name}_p50_ms"], result[f"{name}_p99_ms"] = pct(times)
        result[f"{name}_mean_nodes"] = sum(sizes) / len(sizes)
    t = time.perf_counter()
    result["recall_lots"] = wide_recall()
    result["recall_s"] = time.perf_counter() - t
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lots", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--engine", choices=["rustworkx", "networkx"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:
        print(json.dumps(run_engine(args.engine, args.lots, args.samples)))
        return
    res = {}
    for engine in ("rustworkx", "networkx"):
        print(f"running {engine}...", file=sys.stderr)
        out = subprocess.run(
            [sys.executable, __file__, "--engine", engine, "--lots", str(args.lots), "--samples", str(args.samples)],
            check=True,
            capture_output=True,
            text=True,
        )
        res[engine] = json.loads(out.stdout)
    rx_, nx_ = res["rustworkx"], res["networkx"]
    rows = [("what", "lotledger index (rustworkx)", "networkx, same graph")]
    rows.append(
        (
            "graph",
            f"{rx_['nodes']:,.0f} nodes, {rx_['edges']:,.0f} edges",
            f"{nx_['nodes']:,.0f} nodes, {nx_['edges']:,.0f} edges",
        )
    )
    rows.append(("build", f"{rx_['build_s']:.1f} s (from records, full index)", f"{nx_['build_s']:.1f} s (edges only)"))
    rows.append(
        (
            "restart: load the index snapshot",
            f"{rx_['snapshot_load_s']:.1f} s ({rx_['snapshot_mib']:.0f} MiB; saved in {rx_['snapshot_save_s']:.1f} s)",
            "",
        )
    )
    rows.append(("resident memory", f"{rx_['rss_mib']:.0f} MiB", f"{nx_['rss_mib']:.0f} MiB"))
    for d in ("up", "down"):
        rows.append(
            (
                f"{d}stream p50 / p99 (mean {rx_[d + '_mean_nodes']:.0f} nodes)",
                f"{rx_[d + '_p50_ms']:.2f} / {rx_[d + '_p99_ms']:.2f} ms",
                f"{nx_[d + '_p50_ms']:.2f} / {nx_[d + '_p99_ms']:.2f} ms ({nx_[d + '_p99_ms'] / rx_[d + '_p99_ms']:.1f}x at p99)",
            )
        )
    rows.append(
        (
            f"recall of a widely used raw lot ({rx_['recall_lots']:,.0f} lots)",
            f"{rx_['recall_s'] * 1e3:.0f} ms (with mass balances)",
            f"{nx_['recall_s'] * 1e3:.0f} ms (closure, no balances)",
        )
    )
    print(table(rows))


if __name__ == "__main__":
    main()
