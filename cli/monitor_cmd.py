"""`lotledger monitor`: follow a live log and check everything new against what was verified
before (the monitor itself is audit/monitor.py). One line per round on stdout; alerts on
stderr. With --once or by default a fork or failed check exits 1; with --keep-running it is
alerted once per distinct checkpoint and the watch goes on. An unreachable server exits 3 with
--once, and is retried at the next interval otherwise.
"""

from __future__ import annotations

import hashlib
import json
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from lotledger.cli.options import connect, log_key_option, server_option, verifier_key_arg
from lotledger.cli.output import ExitCode, Progress, fail, handles_errors, note

if TYPE_CHECKING:
    from lotledger.audit.monitor import Round


@click.command()
@server_option
@log_key_option
@click.option(
    "--state",
    "state_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the verified state and fork evidence are kept (created if missing).",
)
@click.option(
    "--interval", default=30.0, show_default=True, type=click.FloatRange(min=0.01), help="Seconds between rounds."
)
@click.option("--once", is_flag=True, help="One round, then exit: 0 ok, 1 fork or failed check, 3 unreachable.")
@click.option(
    "--keep-running", is_flag=True, help="On a fork or failed check, alert and keep watching instead of exiting 1."
)
@click.option(
    "--tiles",
    metavar="URL|DIR",
    help="Follow a C2SP tlog-tiles log (serve --publish) over HTTP(S) or in a directory instead of a server; "
    "HTTPS uses --tls-ca, and --tls-cert/--tls-key for entry bundles behind mTLS.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON line per round on stdout.")
@click.option("--quiet", is_flag=True, help="No progress lines.")
@handles_errors
def monitor(
    server: str,
    log_key: str,
    state_dir: Path,
    interval: float,
    once: bool,
    keep_running: bool,
    tiles: str | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Follow a live log: verify every new checkpoint and entry against the state kept in
    --state DIR, and keep both signed checkpoints as evidence if the log forks."""
    from lotledger.audit.monitor import LogAccess, Monitor, TilesLog, watch
    from lotledger.audit.state_dir import StateDir
    from lotledger.audit.tiles_http import TileStore, open_tiles
    from lotledger.cli.verify_cmd import http_tls
    from lotledger.rpc.client import LedgerClient

    verifier = verifier_key_arg(log_key, "--log-key")
    if once and keep_running:
        fail("--once and --keep-running exclude each other", ExitCode.USAGE)
    stopping = threading.Event()
    previous: dict[signal.Signals, Any] = {}
    if not once:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda _s, _f: stopping.set())
    alerted: set[bytes] = set()
    store: TileStore | None = open_tiles(tiles, tls=http_tls()) if tiles is not None else None

    def open_log() -> LedgerClient | LogAccess:
        return TilesLog(store) if store is not None else connect(server)

    try:
        with StateDir(state_dir) as states:
            watcher = Monitor(
                tiles or server,
                verifier,
                states,
                connect=open_log,
                progress=Progress("verified", None, enabled=not quiet),
            )
            watch(
                watcher,
                interval=interval,
                once=once,
                keep_running=keep_running,
                stopping=stopping,
                on_round=lambda result: _report(result, as_json, alerted, retrying=not once),
            )
    finally:
        if store is not None:
            store.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _report(result: Round, as_json: bool, alerted: set[bytes], *, retrying: bool) -> None:
    """One line per round on stdout; alerts on stderr, once per distinct served checkpoint."""
    if as_json:
        click.echo(json.dumps(result.json()))
    else:
        size = f" ({result.tree_size} entries)" if result.tree_size is not None else ""
        click.echo(f"{result.outcome}{size}: {result.message}")
    if result.outcome in ("fork", "failed"):
        key = hashlib.sha256((result.served_note or b"") + result.outcome.encode() + result.message.encode()).digest()
        if key not in alerted:
            alerted.add(key)
            kind = "FORK" if result.outcome == "fork" else "VERIFICATION FAILED"
            where = f"; evidence in {result.evidence}" if result.evidence else ""
            note(f"ALERT: {kind}: {result.message}{where}")
    elif result.outcome == "unreachable" and retrying:
        note(f"unreachable: {result.message}; retrying")
