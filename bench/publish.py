"""Live publication (`serve --publish DIR`) measured against the same server without it.

Starts `lotledger serve` as its own process on fresh data directories, alternately without and
with --publish (so the machine's noise falls on both alike), streams the same number of
pre-signed records of mixed kinds through one AppendStream each time, and prints, beside the
ceilings measured in the same run (Ed25519 verifications/s on one core, durable LMDB
commits/s):

  - AppendStream records/s without and with publication (best of --rounds each), and the
    ratio (target >= 95%);
  - how long after the last acknowledgement DIR's checkpoint covered every entry (at most a
    checkpoint period plus one publication pass), and the bytes published per entry;
  - then, on the last log published, full verification (`verify_log`, signatures and all, the
    same workers) from its export bundle, from the tiles directory, and from the tiles through
    a real nginx over HTTPS with an auditor's client certificate (`nginx-config`; skipped if
    nginx is not installed), target >= 80% of the bundle's rate; and `restore` of that log from
    the tiles through nginx into a new data directory (verify, write LMDB, fsck), and a mirror's
    first round over the same tiles (verify, spool, store, cosign).

    python bench/publish.py [--records 20000] [--rounds 2] [--checkpoint-interval 1.0]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from append import free_port, unlimited  # noqa: E402
from ceilings import ed25519_verify_rate, lmdb_commit_rate, table  # noqa: E402
from speed import describe, speed_of_day  # noqa: E402  (bench/speed.py: the speed of the day)
from workload import command, mixed_records, setup_participants  # noqa: E402

from lotledger.audit.export import export_bundle  # noqa: E402
from lotledger.audit.mirror import Mirror  # noqa: E402
from lotledger.audit.restore import restore  # noqa: E402
from lotledger.audit.tiles_http import DirectoryTiles, HttpTiles, HttpTls, TilesSource  # noqa: E402
from lotledger.audit.verify import BundleSource, EntrySource, verify_log  # noqa: E402
from lotledger.rpc.client import LedgerClient, StreamRefusal  # noqa: E402
from lotledger.signing.keys import SigningKey  # noqa: E402
from lotledger.signing.note import Checkpoint, NoteSigner, NoteVerifier, parse_note  # noqa: E402


def published_size(directory: Path) -> int:
    try:
        return Checkpoint.from_body(parse_note((directory / "checkpoint").read_bytes())[0]).size
    except FileNotFoundError:
        return 0


def one_run(
    work: Path, n: int, publish: bool, interval: float, tag: str, keep: bool = False
) -> tuple[float, float, int, float]:
    """(records/s through AppendStream, seconds from the last ack until DIR covered it, bytes
    published, server CPU seconds per record). Each run has its own data directory; with `keep`, the tiles stay in
    work/tiles-<tag> and the log's export bundle is written to work/log.bundle."""
    data = work / f"data-{tag}"
    keys = setup_participants(data)
    records = mixed_records(keys, n, prefix=tag)
    port = free_port()
    out = work / f"tiles-{tag}"
    argv = [*command("lotledger"), "serve", str(data), "--listen", f"127.0.0.1:{port}"]
    argv += ["--checkpoint-interval", str(interval), *unlimited(work)]
    if publish:
        argv += ["--publish", str(out)]
    server = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
    address = f"127.0.0.1:{port}"
    lag, nbytes, cpu = 0.0, 0, 0.0
    try:
        with LedgerClient(address) as client:
            client.wait_ready(30)
        cpu_start = cpu_seconds(server.pid)
        with LedgerClient(address, timeout=600) as client:
            start = time.perf_counter()
            outcomes = list(client.append_stream(iter(records)))
            seconds = time.perf_counter() - start
            done = time.perf_counter()
            refused = [o for o in outcomes if isinstance(o, StreamRefusal)]
            assert not refused, refused[:3]
            size = max(o.seq for o in outcomes if not isinstance(o, StreamRefusal)) + 1
        if publish:
            deadline = done + 60
            while published_size(out) < size and time.perf_counter() < deadline:
                time.sleep(0.005)
            lag = time.perf_counter() - done
            assert published_size(out) >= size, "publication did not catch up within 60 s"
        # The same idle time after the stream in both runs (a server also spends CPU waiting).
        time.sleep(max(0.0, done + interval + 1.0 - time.perf_counter()))
        cpu = cpu_seconds(server.pid) - cpu_start  # the appends, and the publication of every one of them
        if publish and keep:
            with LedgerClient(address, timeout=600) as client:
                export_bundle(client, work / "log.bundle", tree_size=published_size(out))
            (work / "log.vkey").write_text(log_vkey(data, out))
            shutil.copy2(data / "keys" / "log.key", work / "log.key")
    finally:
        server.terminate()
        server.wait(60)
    if publish:  # after the server stopped: it prunes partial tiles while it runs
        nbytes = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    shutil.rmtree(data, ignore_errors=True)
    if not keep:
        shutil.rmtree(out, ignore_errors=True)
    return n / seconds, lag, nbytes, cpu / n


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc): what the server spent,
    whatever else ran on the machine meanwhile."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def log_vkey(data: Path, out: Path) -> str:
    """The log's verifier key, from its key file and the origin its checkpoint names."""
    origin = Checkpoint.from_body(parse_note((out / "checkpoint").read_bytes())[0]).origin
    return NoteSigner(origin, SigningKey.load(data / "keys" / "log.key")).verifier_key


def readers(work: Path) -> list[tuple[str, str, str]]:
    """Full verification of the kept log from its bundle, its tiles directory, and its tiles
    through nginx over HTTPS; rows for the table."""
    vkey = NoteVerifier.from_string((work / "log.vkey").read_text())
    out = work / "tiles-keep"

    def timed(source: EntrySource) -> tuple[float, int]:
        start = time.perf_counter()
        report = verify_log(source, vkey, workers=2)
        return time.perf_counter() - start, report.size

    def from_bundle() -> tuple[float, int]:
        bundle = BundleSource(work / "log.bundle")
        try:
            return timed(bundle)
        finally:
            bundle.close()

    t_bundle, size = from_bundle()
    t_dir, _ = timed(TilesSource(DirectoryTiles(out)))
    t_bundle = min(t_bundle, from_bundle()[0])  # the first run also starts the worker processes
    t_dir = min(t_dir, timed(TilesSource(DirectoryTiles(out)))[0])
    rows = [
        (
            f"verify --bundle, {size:,} entries",
            f"{size / t_bundle:,.0f}/s",
            "best of 2; the ceiling for the rows below",
        ),
        ("verify --tiles DIR", f"{size / t_dir:,.0f}/s", f"best of 2; {t_bundle / t_dir:.0%} of --bundle"),
    ]
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx is None:
        return rows + [("verify --tiles https:// (nginx)", "skipped", "nginx is not installed")]
    ca, state, port = work / "ca", work / "nginx", free_port()
    lotledger = command("lotledger")
    subprocess.run([*lotledger, "ca", "init", str(ca)], check=True, capture_output=True)
    subprocess.run([*lotledger, "ca", "issue", str(ca), "--server", "127.0.0.1"], check=True, capture_output=True)
    subprocess.run([*lotledger, "ca", "issue", str(ca), "--participant", "auditor1"], check=True, capture_output=True)
    config = work / "nginx.conf"
    argv = [*lotledger, "nginx-config", str(out), "--listen", f"127.0.0.1:{port}", "--state", str(state)]
    argv += ["--out", str(config), "--tls-cert", str(ca / "server.crt"), "--tls-key", str(ca / "server.key")]
    argv += ["--client-ca", str(ca / "ca.crt"), "--reader", "auditor1"]
    argv += ["--user", "root"] if os.geteuid() == 0 else []
    subprocess.run(argv, check=True, capture_output=True)
    proc = subprocess.Popen([nginx, "-c", str(config), "-e", str(state / "error.log"), "-g", "daemon off;"])
    try:
        time.sleep(0.5)
        tls = HttpTls(ca / "ca.crt", ca / "auditor1.crt", ca / "auditor1.key")
        http = HttpTiles(f"https://127.0.0.1:{port}/", tls=tls)
        try:
            t_http, _ = timed(TilesSource(http))
            t_bundle = min(t_bundle, from_bundle()[0])  # interleaved: the machine's noise falls on both
            t_http = min(t_http, timed(TilesSource(http))[0])
            requests = http.requests // 2
            started = time.perf_counter()
            key_file = work / "log.key"
            restore(work / "restored", http, vkey, SigningKey.load(key_file), key_file.read_bytes())
            t_restore = time.perf_counter() - started
            started = time.perf_counter()
            mirror = Mirror(work / "mirror", "nginx", http, vkey, SigningKey.generate(), "bench-mirror")
            try:
                assert mirror.round().round.outcome == "verified"
            finally:
                mirror.close()
            t_mirror = time.perf_counter() - started
        finally:
            http.close()
    finally:
        proc.terminate()
        proc.wait(20)
    return rows + [
        (
            "verify --tiles https:// (nginx, mTLS)",
            f"{size / t_http:,.0f}/s",
            f"best of 2; {t_bundle / t_http:.0%} of --bundle (target >= 80%); {requests:,} requests per run",
        ),
        (
            "restore from the tiles through nginx",
            f"{size / t_restore:,.0f}/s",
            f"{t_restore:.1f} s; {t_bundle / t_restore:.0%} of --bundle (it verifies all, and writes LMDB and fsck)",
        ),
        (
            "mirror catching up through nginx (one round)",
            f"{size / t_mirror:,.0f}/s",
            f"{t_mirror:.1f} s; {t_bundle / t_mirror:.0%} of --bundle (target >= 80%; verify, spool, store, cosign)",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--checkpoint-interval", type=float, default=1.0)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="lotledger-bench-publish-", dir=os.environ.get("BENCH_TMP")))
    try:
        print("measuring ceilings...", file=sys.stderr)
        day = speed_of_day()
        verify1 = ed25519_verify_rate(1)
        commits = lmdb_commit_rate()
        without: list[tuple[float, float, int, float]] = []
        with_: list[tuple[float, float, int, float]] = []
        for r in range(args.rounds):
            for publish in (False, True) if r % 2 == 0 else (True, False):
                print(f"round {r + 1}: AppendStream {'with' if publish else 'without'} publication", file=sys.stderr)
                last = r == args.rounds - 1 and publish
                tag = "keep" if last else f"{r}{int(publish)}"
                run = one_run(work, args.records, publish, args.checkpoint_interval, tag, keep=last)
                (with_ if publish else without).append(run)
        verify1_after = ed25519_verify_rate(1)
        print("verifying the last log from its bundle, its tiles, and through nginx...", file=sys.stderr)
        reader_rows = readers(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    base = max(r[0] for r in without)
    rate_on, lag, nbytes, _ = max(with_)
    cpu_off, cpu_on = min(r[3] for r in without), min(r[3] for r in with_)
    rows = [
        ("what", "figure", "beside it"),
        ("Ed25519 verify, 1 core (ceiling)", f"{verify1:,.0f}/s", f"{verify1_after:,.0f}/s after the runs"),
        ("LMDB durable commits (ceiling)", f"{commits:,.0f}/s", "one fsync'd txn each"),
        (
            f"AppendStream, no publication ({args.records:,} records)",
            f"{base:,.0f}/s",
            f"best of {len(without)}: {', '.join(f'{x[0]:,.0f}' for x in without)}; {base / verify1:.0%} of one core's verify",
        ),
        (
            "AppendStream, --publish DIR",
            f"{rate_on:,.0f}/s",
            f"best of {len(with_)}: {', '.join(f'{x[0]:,.0f}' for x in with_)}; "
            f"{rate_on / base:.1%} of the rate without (target >= 95%)",
        ),
        (
            "server CPU per record, no publication",
            f"{cpu_off * 1e6:,.0f} us",
            f"least of {len(without)}; one Ed25519 verify is {1e6 / verify1:,.0f} us",
        ),
        (
            "server CPU per record, --publish DIR",
            f"{cpu_on * 1e6:,.0f} us",
            f"least of {len(with_)}; the CPU-bound rate with publication is {cpu_off / cpu_on:.1%} of without "
            "(CPU time on a shared machine is noisy too: compare runs)",
        ),
        (
            "publication lag after the last ack",
            f"{lag:.2f} s",
            f"checkpoint interval {args.checkpoint_interval:g} s (the publisher follows checkpoints)",
        ),
        ("tiles published", f"{nbytes / 1e6:.1f} MB", f"{nbytes / (args.records + 5):,.0f} bytes per entry"),
    ]
    rows += reader_rows
    rows.append(("bench/speed.py, at the start", describe(day).removeprefix("speed of the day: "), ""))
    print(table(rows))


if __name__ == "__main__":
    main()
