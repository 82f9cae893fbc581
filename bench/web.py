"""Time to first paint and to interactive of the web app's trace page, for traces of about 100,
1,000 and 10,000 nodes, in headless Debian chromium.

    python bench/web.py [--runs 5] [--sizes 100,1000,10000]

Builds one ledger (real signatures, the real append path) holding three fan-outs: a raw material
lot consumed into K production runs, each output lot shipped four times, so that the downstream
trace of the raw lot has about the wanted number of nodes. Serves it with the real gRPC server and
the real web app (waitress) in this process, loads /trace?lot=RAW in a fresh browser context per
run and reads the page's own marks:

- first paint: the browser's first-contentful-paint (page header and text, before the graph);
- graph painted: the trace first on screen: past 50 nodes a plain canvas picture of the layout
  (nodes, colors, edges), painted while Cytoscape sets up; below that, Cytoscape's first frame;
- interactive: Cytoscape's first frame, every node and edge drawn and clickable.

Beside them, the machine's floor: the same browser's first paint of an empty page from the
same server (what no page can beat), and the server side (both traces and the HTML) alone.
Needs the bench extra (`pip install '.[bench]'`) and Debian's chromium.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fanout import write_fan_outs  # noqa: E402
from workload import setup_participants  # noqa: E402

from lotledger.ledger.log import Ledger, LedgerConfig  # noqa: E402
from lotledger.rpc.client import LedgerClient  # noqa: E402
from lotledger.rpc.server import LedgerServer  # noqa: E402
from lotledger.signing.keys import SigningKey  # noqa: E402
from lotledger.signing.note import NoteVerifier  # noqa: E402


def wait_until(page: Any, expression: str, timeout: float) -> None:
    from test_browser import wait_until as wait

    wait(page, expression, timeout)


def measure(browser: Any, url: str) -> dict[str, float]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    try:
        page.goto(url)
        done = "performance.getEntriesByName('graph-interactive').length > 0 || document.title.startsWith('Search')"
        wait_until(page, f"({done}) && performance.getEntriesByName('first-contentful-paint').length > 0", 120)
        marks: dict[str, float] = page.evaluate(
            """() => {
              const at = (n) => (performance.getEntriesByName(n)[0] || {startTime: NaN}).startTime;
              const nav = performance.getEntriesByType('navigation')[0];
              return {fcp: at('first-contentful-paint'), painted: at('graph-painted'),
                      interactive: at('graph-interactive'), html: nav.responseEnd,
                      drawn: window.lotledgerGraph ? window.lotledgerGraph.nodes().length : 0,
                      nodes: JSON.parse(document.getElementById('graph-data')?.textContent || '{"nodes": []}').nodes.length};
            }"""
        )
        return marks
    finally:
        context.close()


def median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes", default="100,1000,10000")
    args = parser.parse_args()
    from speed import print_speed_of_day  # bench/speed.py: the machine's speed of the day

    print_speed_of_day()
    sizes = [int(s) for s in args.sizes.split(",")]

    from playwright.sync_api import sync_playwright
    from waitress.server import create_server

    from lotledger.web.app import create_app
    from lotledger.web.source import LedgerSource

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "web"))
    from test_browser import launch_chromium

    tmp = Path(tempfile.mkdtemp(prefix="lotledger-web-bench-"))
    try:
        started = time.perf_counter()
        keys = setup_participants(tmp / "data")
        ledger = Ledger(tmp / "data", SigningKey.load(tmp / "data" / "keys" / "log.key"))
        try:
            lots = write_fan_outs(ledger, keys["plant"], sizes)
        finally:
            ledger.close()
        print(f"ledger built in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        server = LedgerServer(tmp / "data", "127.0.0.1:0", config=LedgerConfig(checkpoint_interval=0.05)).start()
        source = LedgerSource(lambda: LedgerClient(server.address))
        vkey = NoteVerifier.from_key(
            "bench.example.com/lotledger", SigningKey.load(tmp / "data" / "keys" / "log.key").public
        )
        httpd: Any = create_server(create_app(source, vkey), host="127.0.0.1", port=0, threads=4)
        threading.Thread(target=httpd.run, daemon=True).start()
        base = f"http://127.0.0.1:{httpd.effective_port}"
        rows = []
        with sync_playwright() as p:
            browser = launch_chromium(p)
            floor = [measure(browser, base + "/search?q=")["fcp"] for _ in range(args.runs)]
            for size in sizes:
                url = f"{base}/trace?lot={lots[size]}"
                server_ms = []
                for _ in range(args.runs):
                    t = time.perf_counter()
                    source.trace(lots[size])
                    server_ms.append((time.perf_counter() - t) * 1000)
                runs = [measure(browser, url) for _ in range(args.runs)]
                rows.append((size, runs, statistics.median(server_ms)))
            browser.close()
        httpd.close()
        source.close()
        server.stop(grace=1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nweb trace page, headless chromium, median of {args.runs} runs (ms from navigation start)\n")
    print(
        f"{'nodes (drawn)':>15} {'server':>8} {'HTML in':>8} {'1st paint':>10} {'graph':>8} {'interactive':>12} {'target':>8}"
    )
    for size, runs, server_ms in rows:
        target = "< 1000" if size == 1000 else ""
        print(
            f"{int(runs[0]['nodes']):>6} ({int(runs[0]['drawn']):>6}) {server_ms:>8.0f} {median(runs, 'html'):>8.0f} {median(runs, 'fcp'):>10.0f}"
            f" {median(runs, 'painted'):>8.0f} {median(runs, 'interactive'):>12.0f} {target:>8}"
        )
    print("(drawn: a trace of more than 2,500 nodes opens collapsed to the hops that fit)")
    print(f"\nmachine floor: first paint of a near-empty page from the same server {statistics.median(floor):.0f} ms")
    print("server = both traces + alerts + layout over gRPC, in this process; graph = the trace first on screen")
    print("(a plain picture past 50 nodes); interactive = Cytoscape drawn and clickable; 2 shared cores")


if __name__ == "__main__":
    main()
