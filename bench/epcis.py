"""EPCIS 2.0 import through the real append path, beside the AppendStream ceiling.

Starts `lotledger serve` on a fresh data directory, writes one EPCISDocument of N events
(receiving, transformation, shipping in turn; lots by LGTIN URN), and times `lotledger
import-epcis` on it as its own process (parse, map, event hash, sign, AppendStream, durable
commit). Beside it, in the same run, N pre-signed native records through one AppendStream
just before the import and N more just after (the machine is shared and noisy: the mean of the
two is the ceiling; target: the import at >= 75% of it). The speed of the day (bench/speed.py)
heads the table. bench/standards.py runs it with bench/fsma.py.

    python bench/epcis.py [--events 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from append import free_port, unlimited  # noqa: E402
from ceilings import table  # noqa: E402
from speed import print_speed_of_day  # noqa: E402
from workload import command, mixed_records, setup_participants  # noqa: E402

from lotledger.rpc.client import LedgerClient, StreamRefusal  # noqa: E402


def epcis_document(n: int) -> dict[str, object]:
    events = []
    for i in range(n):
        t = f"2026-01-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:{(i // 60) % 60:02d}.{i % 1000:03d}Z"
        base = {"eventTime": t, "eventTimeZoneOffset": "+00:00"}
        lot = f"urn:epc:class:lgtin:4012345.012345.E{i:07d}"
        if i % 3 == 0:
            events.append({**base, "type": "ObjectEvent", "action": "OBSERVE", "bizStep": "receiving",
                           "quantityList": [{"epcClass": lot, "quantity": 100, "uom": "KGM"}],
                           "bizLocation": {"id": "urn:epc:id:sgln:4012345.00011.0"},
                           "sourceList": [{"type": "owning_party", "source": "urn:epc:id:pgln:4012345.00000"}]})  # fmt: skip
        elif i % 3 == 1:
            events.append({**base, "type": "TransformationEvent", "transformationID": f"urn:uuid:run-{i}",
                           "inputQuantityList": [{"epcClass": lot, "quantity": 60, "uom": "KGM"}],
                           "outputQuantityList": [{"epcClass": lot.replace(".E", ".O"), "quantity": 50, "uom": "KGM"}],
                           "bizLocation": {"id": "urn:epc:id:sgln:4012345.00012.0"}})  # fmt: skip
        else:
            events.append({**base, "type": "ObjectEvent", "action": "OBSERVE", "bizStep": "shipping",
                           "quantityList": [{"epcClass": lot, "quantity": 40, "uom": "KGM"}],
                           "destinationList": [{"type": "owning_party", "destination": "urn:epc:id:pgln:0614141.00000"}]})  # fmt: skip
    return {
        "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2026-02-01T00:00:00.000Z",
        "epcisBody": {"eventList": events},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    print_speed_of_day()
    work = Path(tempfile.mkdtemp(prefix="lotledger-bench-epcis-", dir=os.environ.get("BENCH_TMP")))
    try:
        data = work / "data"
        keys = setup_participants(data)
        plant_key = work / "plant.key"
        keys["plant"].save_pair(plant_key)
        doc_path = work / "events.jsonld"
        doc_path.write_text(json.dumps(epcis_document(args.events)))
        port = free_port()
        address = f"127.0.0.1:{port}"
        server = subprocess.Popen(
            [*command("lotledger"), "serve", str(data), "--listen", address, *unlimited(work)],
            stderr=subprocess.DEVNULL,
        )
        try:
            with LedgerClient(address) as client:
                client.wait_ready(30)

            def stream(prefix: str) -> float:
                """Seconds for args.events native records through one AppendStream."""
                batch = mixed_records(keys, args.events, prefix=prefix)
                with LedgerClient(address, timeout=600) as client:
                    start = time.perf_counter()
                    outcomes = list(client.append_stream(iter(batch)))
                    elapsed = time.perf_counter() - start
                assert not [o for o in outcomes if isinstance(o, StreamRefusal)]
                return elapsed

            before_s = stream("c")
            cmd = [*command("lotledger"), "import-epcis", str(doc_path), "--server", address,
                   "--key", str(plant_key), "--participant", "plant", "--json"]  # fmt: skip
            start = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            import_s = time.perf_counter() - start
            if done.returncode:
                raise SystemExit(f"import failed: {done.stderr[-2000:]}")
            appended = json.loads(done.stdout)["appended"]
            assert len(appended) == args.events and not any(a["duplicate"] for a in appended)
            after_s = stream("d")
        finally:
            server.terminate()
            server.wait(60)
        ceiling = (args.events / before_s + args.events / after_s) / 2
        rows = [
            ("what", "figure", "beside it"),
            (
                f"AppendStream, {args.events:,} native records (ceiling)",
                f"{ceiling:,.0f}/s",
                f"mean of just before ({args.events / before_s:,.0f}/s) and just after ({args.events / after_s:,.0f}/s)",
            ),
            (
                f"import-epcis, {args.events:,} events (one process, end to end)",
                f"{args.events / import_s:,.0f} events/s",
                f"{import_s:.1f} s; {args.events / import_s / ceiling:.0%} of the ceiling (target >= 75%)",
            ),
        ]
        print(table(rows))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
