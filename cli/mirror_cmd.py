"""`lotledger mirror DATA --from URL|DIR`: follow a tiled log into a verified copy of its own,
cosign what it fully holds, and republish it (the mirror itself is audit/mirror.py). One line per
round on stdout; exit codes as `monitor`: with --once 0 mirrored (or unchanged), 1 a fork or a
failed check (nothing stored; fork evidence in DATA/state/forks/), 3 unreachable; without
--once, an unreachable source is retried and a fork or failed check exits 1."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Any

import click

from lotledger.cli.options import log_key_option, tls_options, verifier_key_arg
from lotledger.cli.output import ExitCode, Progress, fail, handles_errors, note


@click.command()
@click.argument("data_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--from", "source", required=True, metavar="URL|DIR", help="The tiled log to mirror (serve --publish).")
@log_key_option
@click.option(
    "--key",
    "key_path",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The mirror's own Ed25519 key (lotledger keys generate), which cosigns what it holds.",
)
@click.option("--name", help="The mirror's name in its cosignatures (default: mirror-<key id>).")
@click.option(
    "--publish",
    "publish_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Republish the mirrored log as tiles in DIR, its checkpoints cosigned by the mirror.",
)
@click.option(
    "--interval", default=30.0, show_default=True, type=click.FloatRange(min=0.01), help="Seconds between rounds."
)
@click.option("--once", is_flag=True, help="One round, then exit: 0 ok, 1 fork or failed check, 3 unreachable.")
@click.option("--json", "as_json", is_flag=True, help="One JSON line per round on stdout.")
@click.option("--quiet", is_flag=True, help="No progress lines.")
@tls_options
@handles_errors
def mirror(
    data_dir: Path,
    source: str,
    log_key: str,
    key_path: Path,
    name: str | None,
    publish_dir: Path | None,
    interval: float,
    once: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Follow a tiled log into a verified copy in DATA_DIR (its own store), cosign each
    checkpoint it fully holds, and republish it with --publish."""
    from lotledger.audit.mirror import Mirror
    from lotledger.audit.tiles_http import open_tiles
    from lotledger.cli.verify_cmd import http_tls
    from lotledger.signing.cosignature import CosignatureSigner
    from lotledger.signing.keys import SigningKey

    verifier = verifier_key_arg(log_key, "--log-key")
    key = SigningKey.load(key_path)
    name = name or f"mirror-{key.key_id[:8]}"
    stopping = threading.Event()
    previous: dict[signal.Signals, Any] = {}
    if not once:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda _s, _f: stopping.set())
    store = open_tiles(source, tls=http_tls())
    try:
        watcher = Mirror(
            data_dir,
            source,
            store,
            verifier,
            key,
            name,
            publish=publish_dir,
            progress=Progress("mirrored", None, enabled=not quiet),
        )
        note(f"mirror {name}: cosignature verifier key {CosignatureSigner(name, key).verifier_key}")
        try:
            while True:
                step = watcher.round()
                result = step.round
                if as_json:
                    click.echo(json.dumps({**result.json(), "cosigned": step.cosigned is not None}))
                else:
                    size = f" ({result.tree_size} entries)" if result.tree_size is not None else ""
                    click.echo(f"{result.outcome}{size}: {result.message}")
                if result.outcome == "unreachable":
                    if once:
                        fail(result.message, ExitCode.UNREACHABLE)
                    note(f"unreachable: {result.message}; retrying")
                elif result.outcome in ("fork", "failed"):
                    where = f"; evidence in {result.evidence}" if result.evidence else ""
                    fail(f"{result.message}{where} (nothing of this round was stored)")
                if once or stopping.wait(interval):
                    return
        finally:
            watcher.close()
    finally:
        store.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
