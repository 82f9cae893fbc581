"""The trace index at scale, beside networkx on the same graph in the same run.

Builds a supply chain of N lots (default 1,000,000) and prints what QA and a restarting server
would feel. The chain is shaped like a plant's: raw-material deliveries (5% of lots) are each
drawn on by about 24 mixing runs over the following days; each intermediate batch (30%) goes
into about 4 finished lots (65%), each made from 2 intermediates and 4 raw lots; finished lots
leave on pallets of 3 lots to one of 3,000 customers; one raw lot (salt) goes into every 50th
mix, another (yeast) into every 150th. That is about 3.1M edges.

The lotledger side runs the real code: TraceIndex.apply on Record messages, the snapshot
store, the queries, and record details read from a real LMDB store with the ledger's own
reader (`LedgerRecords`). networkx holds the same graph (edges with their seqs) and answers
the same traversal with the same algorithm. Each engine runs in its own process, so resident
memory is its own.

    python bench/trace.py [--lots 1000000] [--samples 2000]
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from ceilings import table  # noqa: E402
from speed import describe, print_speed_of_day, speed_of_day  # noqa: E402

from lotledger.v1 import records_pb2  # noqa: E402

WIDE = "item/SALT/lot/S0"  # in every 50th mix: about 30,000 lots downstream
MEDIUM = "item/YEAST/lot/Y0"  # in every 150th mix: about 10,000 lots downstream


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def chain(n_lots: int, seed: int = 1) -> Iterator[records_pb2.Record]:
    """Records of the benchmark chain, in log order (see the module docstring)."""
    rng = random.Random(seed)
    n_raw, n_mid = n_lots // 20, n_lots * 3 // 10
    n_fin = n_lots - n_raw - n_mid
    qty = records_pb2.Quantity(amount="10", unit="KGM")
    salt = records_pb2.Record(record_id="salt", submitter="plant")
    salt.material_received.lot.item_code, salt.material_received.lot.lot = "SALT", "S0"
    salt.material_received.supplier, salt.material_received.quantity.amount = "saltworks", "100000"
    salt.material_received.quantity.unit = "KGM"
    yield salt
    yeast = records_pb2.Record()
    yeast.CopyFrom(salt)
    yeast.record_id, yeast.material_received.lot.item_code, yeast.material_received.lot.lot = "yeast", "YEAST", "Y0"
    yield yeast
    raw_done = mid_done = fin_done = 0
    pallet: list[int] = []
    t = 1_790_000_000
    while fin_done < n_fin:
        # Deliveries keep a little ahead of the mixing, which keeps ahead of finishing.
        if raw_done < n_raw and raw_done * n_mid <= mid_done * n_raw + 40 * n_mid:
            r = records_pb2.Record(record_id=f"m{raw_done}", submitter="plant")
            m = r.material_received
            m.lot.item_code, m.lot.lot = f"RAW{raw_done % 40}", f"R{raw_done}"
            m.supplier, m.supplier_lot_code = f"sup{raw_done % 200}", f"S-{raw_done}"
            m.quantity.CopyFrom(qty)
            m.received_at.seconds = t
            raw_done += 1
            yield r
        elif mid_done < n_mid and mid_done * n_fin <= fin_done * n_mid + 20 * n_fin:
            r = records_pb2.Record(record_id=f"p{mid_done}", submitter="plant")
            run = r.production_run
            run.run_id = f"MIX-{mid_done}"
            for p in {raw_done - 1 - rng.randrange(min(raw_done, 100)) for _ in range(4)}:
                item = run.inputs.add(quantity=qty)
                item.lot.item_code, item.lot.lot = f"RAW{p % 40}", f"R{p}"
            if mid_done % 50 == 0:
                run.inputs.add(lot=salt.material_received.lot, quantity=qty)
            if mid_done % 150 == 75:
                run.inputs.add(lot=yeast.material_received.lot, quantity=qty)
            run.outputs.add(quantity=qty).lot.CopyFrom(records_pb2.LotId(item_code="MID", lot=f"M{mid_done}"))
            run.completed_at.seconds = t
            mid_done += 1
            yield r
        else:
            r = records_pb2.Record(record_id=f"f{fin_done}", submitter="plant")
            run = r.production_run
            run.run_id = f"FIN-{fin_done}"
            for p in {mid_done - 1 - rng.randrange(min(mid_done, 30)) for _ in range(2)}:
                item = run.inputs.add(quantity=qty)
                item.lot.item_code, item.lot.lot = "MID", f"M{p}"
            run.outputs.add(quantity=qty).lot.CopyFrom(records_pb2.LotId(item_code="FIN", lot=f"F{fin_done}"))
            run.completed_at.seconds = t
            pallet.append(fin_done)
            fin_done += 1
            yield r
            if len(pallet) == 3:
                s = records_pb2.Record(record_id=f"s{fin_done}", submitter="plant")
                sh = s.shipment
                sh.shipment_id, sh.from_participant = f"SH{fin_done}", "plant"
                sh.to_participant, sh.to_location = f"cust{rng.randrange(3000)}", "dock"
                for f in pallet:
                    sh.lots.add(quantity=qty).lot.CopyFrom(records_pb2.LotId(item_code="FIN", lot=f"F{f}"))
                sh.shipped_at.seconds = t
                pallet.clear()
                yield s
        t += 30


def pct(samples: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(samples, n=100)
    return q[49] * 1e3, q[98] * 1e3


def timed(fn: Callable[[str], int], keys: list[str]) -> tuple[float, float, float]:
    """p50 ms, p99 ms, mean result size (after an untimed warm-up on the first few keys, so
    that neither engine's first touch of its memory counts as its tail)."""
    for k in keys[:50]:
        fn(k)
    times, sizes = [], []
    for k in keys:
        t = time.perf_counter()
        sizes.append(fn(k))
        times.append(time.perf_counter() - t)
    p50, p99 = pct(times)
    return p50, p99, sum(sizes) / len(sizes)


def sample_keys(n_lots: int, samples: int) -> tuple[list[str], list[str]]:
    rng = random.Random(7)
    n_raw, n_mid = n_lots // 20, n_lots * 3 // 10
    n_fin = n_lots - n_raw - n_mid
    ups = [f"item/FIN/lot/F{rng.randrange(n_fin)}" for _ in range(samples)]
    downs = [f"item/RAW{i % 40}/lot/R{i}" for i in (rng.randrange(n_raw) for _ in range(samples))]
    return ups, downs


def run_lotledger(n_lots: int, samples: int, tmp: Path) -> dict[str, Any]:
    from lotledger.ledger.core.registry import Registry
    from lotledger.ledger.log import LogReader
    from lotledger.ledger.store import Store, u64
    from lotledger.trace.index import TraceIndex
    from lotledger.trace.live import settle
    from lotledger.trace.queries import affected, recall, trace
    from lotledger.trace.records import LedgerRecords, ListRecords
    from lotledger.trace.snapshot import SnapshotStore

    records = list(chain(n_lots))
    source = ListRecords(records)
    res: dict[str, Any] = {"entries": len(records)}
    gc.collect()
    base = rss_mib()
    start = time.perf_counter()
    index = TraceIndex(source)
    for seq, r in enumerate(records):
        index.apply(seq, r)
    res["build_s"] = time.perf_counter() - start
    gc.collect()
    res["rss_mib"] = rss_mib() - base
    res["nodes"], res["edges"] = index.graph.num_nodes(), index.graph.num_edges()

    # The entries on disk, read back by the ledger's own reader for every detail below.
    store = Store(tmp / "log")
    with store.write() as txn:
        for seq, r in enumerate(records):
            entry = records_pb2.Entry()
            entry.signed_record.record_bytes = r.SerializeToString()
            store.put(txn, "entries", u64(seq), entry.SerializeToString())
    index.records = disk = LedgerRecords(LogReader(store, Registry))
    del records, source
    gc.collect()

    snaps = SnapshotStore(tmp / "index")
    t = time.perf_counter()
    res["snapshot_mib"] = snaps.save(index, [], bytes(32)) / 2**20
    res["snapshot_save_s"] = time.perf_counter() - t
    t = time.perf_counter()
    loaded = snaps.load(disk)
    assert loaded is not None and loaded.size == index.size
    loaded.index.refresh_adjacency()  # as the server does before it answers: the index is ready
    res["snapshot_load_s"] = time.perf_counter() - t
    del loaded
    index.refresh_adjacency()
    settle()  # as the server does once its index is loaded

    ups, downs = sample_keys(n_lots, samples)
    for d, keys in (("up", ups), ("down", downs)):
        res[f"{d}_walk"] = timed(lambda k, d=d: len(trace(index, k, d, details=False).depth), keys)  # type: ignore[misc]
        res[f"{d}_full"] = timed(lambda k, d=d: len(trace(index, k, d).depth), keys)  # type: ignore[misc]
    res["down_closure"] = timed(lambda k: len(affected(index, [k])), downs)
    t = time.perf_counter()
    res["wide_closure_nodes"] = len(affected(index, [WIDE]))
    res["wide_closure_ms"] = (time.perf_counter() - t) * 1e3
    res["speed"] = speed_of_day()  # just before the recalls: interpreted work, as theirs is
    for name, key, runs in (("recall", WIDE, 7), ("recall_medium", MEDIUM, 21)):
        # From the sums and consignments the index keeps; beside it, the same report from the
        # records behind every lot and shipment (as recalls were made before), in the same run.
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            report = recall(index, [key], "bench")
            times.append(time.perf_counter() - t)
        res[f"{name}_ms"] = (statistics.median(times) * 1e3, max(times) * 1e3)
        t = time.perf_counter()
        old = recall(index, [key], "bench", from_records=True)
        res[f"{name}_records_ms"] = (time.perf_counter() - t) * 1e3
        assert old.lots == report.lots and old.consignments == report.consignments, "the two recalls differ"
        res[f"{name}_lots"], res[f"{name}_shipments"] = len(report.lots), len(report.consignments)
    store.close()
    snaps.close()
    return res


def run_networkx(n_lots: int, samples: int) -> dict[str, Any]:
    import networkx as nx

    from lotledger.trace.effects import SHIPMENT, effects

    edges = []
    for seq, r in enumerate(chain(n_lots)):
        effs = effects(r)
        kind = r.WhichOneof("body")
        if kind == "production_run":
            ins = {e.label for e in effs if e.role == "in"}
            outs = {e.label for e in effs if e.role == "out"}
            edges += [(i, o, {"seq": seq}) for i in ins for o in outs]
        elif kind == "shipment":
            ship = SHIPMENT + r.shipment.shipment_id
            edges += [(e.label, ship, {"seq": seq}) for e in effs if e.role == "shipped"]
    gc.collect()
    base = rss_mib()
    start = time.perf_counter()
    g = nx.MultiDiGraph()
    g.add_edges_from(edges)
    res: dict[str, Any] = {"build_s": time.perf_counter() - start}
    del edges
    gc.collect()
    res["rss_mib"] = rss_mib() - base
    res["nodes"], res["edges"] = g.number_of_nodes(), g.number_of_edges()
    gc.freeze()  # the same courtesy the lotledger side gets

    def walk(k: str, forward: bool) -> int:
        # lotledger's walk, line for line, on networkx: depth, parent and every edge with its seq.
        adj = g.succ if forward else g.pred
        seen = {k: 0}
        parent: dict[str, str] = {}
        found = []
        queue = [k]
        for node in queue:
            d = seen[node] + 1
            for nxt, keyed in adj[node].items():
                for data in keyed.values():
                    found.append((node, nxt, data["seq"]) if forward else (nxt, node, data["seq"]))
                if nxt not in seen:
                    seen[nxt], parent[nxt] = d, node
                    queue.append(nxt)
        return len(seen)

    ups, downs = sample_keys(n_lots, samples)
    res["up_walk"] = timed(lambda k: walk(k, False), ups)
    res["down_walk"] = timed(lambda k: walk(k, True), downs)
    res["down_closure"] = timed(lambda k: len(nx.descendants(g, k)) + 1, downs)
    t = time.perf_counter()
    res["wide_closure_nodes"] = len(nx.descendants(g, WIDE)) + 1
    res["wide_closure_ms"] = (time.perf_counter() - t) * 1e3
    return res


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lots", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--engine", choices=["lotledger", "networkx"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine == "lotledger":
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(run_lotledger(args.lots, args.samples, Path(tmp))))
        return
    if args.engine == "networkx":
        print(json.dumps(run_networkx(args.lots, args.samples)))
        return
    print_speed_of_day()
    res = {}
    for engine in ("lotledger", "networkx"):
        print(f"running {engine} on {args.lots:,} lots...", file=sys.stderr)
        cmd = [sys.executable, __file__, "--engine", engine, "--lots", str(args.lots), "--samples", str(args.samples)]
        res[engine] = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    a, b = res["lotledger"], res["networkx"]

    def ms(x: tuple[float, float, float]) -> str:
        return f"{x[0]:.3f} / {x[1]:.3f} ms"

    def vs(name: str) -> str:
        return f"{ms(b[name])} ({b[name][1] / a[name][1]:.1f}x at p99)"

    rows = [("what", "lotledger index (rustworkx)", "networkx, same graph, same query")]
    rows.append(("graph", f"{a['nodes']:,} nodes, {a['edges']:,} edges", f"{b['nodes']:,} nodes, {b['edges']:,} edges"))
    rows.append(
        (
            "build",
            f"{a['build_s']:.1f} s from {a['entries']:,} entries (decode, index, alert state)",
            f"{b['build_s']:.1f} s from a ready edge list ({b['build_s'] / a['build_s']:.1f}x)",
        )
    )
    rows.append(
        (
            "restart: load the index snapshot, build its edge arrays",
            f"{a['snapshot_load_s']:.1f} s ({a['snapshot_mib']:.0f} MiB; saved in {a['snapshot_save_s']:.1f} s)",
            f"({b['build_s'] / a['snapshot_load_s']:.1f}x faster than networkx builds)",
        )
    )
    rows.append(
        ("resident memory", f"{a['rss_mib']:.0f} MiB", f"{b['rss_mib']:.0f} MiB ({a['rss_mib'] / b['rss_mib']:.2f}x)")
    )
    for d, what in (("up", "finished lot"), ("down", "raw lot")):
        rows.append(
            (
                f"{d}stream walk of a {what}, p50 / p99 ({a[d + '_walk'][2]:.0f} nodes)",
                ms(a[d + "_walk"]),
                vs(d + "_walk"),
            )
        )
        rows.append(("  ... with details read from LMDB", ms(a[d + "_full"]), "(not asked of networkx)"))
    rows.append(("downstream closure of a raw lot, p50 / p99", ms(a["down_closure"]), vs("down_closure")))
    rows.append(
        (
            f"closure of a widely used raw lot ({a['wide_closure_nodes']:,} nodes)",
            f"{a['wide_closure_ms']:.1f} ms",
            f"{b['wide_closure_ms']:.1f} ms ({b['wide_closure_ms'] / a['wide_closure_ms']:.1f}x)",
        )
    )
    for name, what, runs in (("recall", "it", 7), ("recall_medium", "a less used raw lot", 21)):
        p50, worst = a[name + "_ms"]
        rows.append(
            (
                f"full recall of {what} ({a[name + '_lots']:,} lots, {a[name + '_shipments']:,} shipments), "
                f"p50 / max of {runs}",
                f"{p50:.0f} / {worst:.0f} ms (mass balances and consignees kept in the index)",
                f"the same report from the records in LMDB: {a[name + '_records_ms']:.0f} ms "
                f"({a[name + '_records_ms'] / p50:.1f}x)",
            )
        )
    rows.append(("  ... beside the recalls, the " + describe(a["speed"]), "", ""))
    print(table(rows))


if __name__ == "__main__":
    main()
