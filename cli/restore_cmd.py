"""`lotledger restore DATA --from URL|DIR`: rebuild a primary's data directory from a tiled copy
of its log, verifying everything (the driver and its order of work: audit/restore.py)."""

from __future__ import annotations

from pathlib import Path

import click

from lotledger.cli.ca_cmd import log_key_passphrase, log_key_passphrase_option
from lotledger.cli.options import json_option, log_key_option, tls_options, verifier_key_arg
from lotledger.cli.output import Progress, emit_json, handles_errors, note


@click.command()
@click.argument("data_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--from",
    "source",
    required=True,
    metavar="URL|DIR",
    help="The tiled log to restore from (serve --publish DIR, or a copy of it), over HTTP(S) or in a directory.",
)
@log_key_option
@click.option(
    "--log-signing-key",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The log's signing key file (keys/log.key from the lost directory's backup), kept as it is.",
)
@log_key_passphrase_option
@click.option("--quiet", is_flag=True, help="No progress lines.")
@json_option
@tls_options
@handles_errors
def restore(
    data_dir: Path,
    source: str,
    log_key: str,
    log_signing_key: Path,
    log_key_passphrase_file: Path | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Rebuild DATA_DIR from a tiled copy of the log, verifying every entry and tile on the way;
    the restored server goes on appending from the copy's checkpoint."""
    from lotledger.audit.restore import restore as run_restore
    from lotledger.audit.tiles_http import open_tiles
    from lotledger.cli.verify_cmd import http_tls
    from lotledger.rpc.server import load_log_key
    from lotledger.signing.keys import read_private_file

    verifier = verifier_key_arg(log_key, "--log-key")
    signing = load_log_key(log_signing_key, log_key_passphrase(log_key_passphrase_file))
    pem = read_private_file(log_signing_key)
    store = open_tiles(source, tls=http_tls())
    try:
        report = run_restore(
            data_dir, store, verifier, signing, pem, progress=Progress("restored", None, enabled=not quiet)
        )
    finally:
        store.close()
    data = {
        "data_dir": str(report.data_dir),
        "origin": report.origin,
        "tree_size": report.tree_size,
        "root_hash": report.root_hash.hex(),
        "seconds": round(report.seconds, 3),
    }
    if as_json:
        emit_json(data)
        return
    note(
        f"restored {report.tree_size} entries of {report.origin} into {report.data_dir}, all verified; root "
        f"{report.root_hash.hex()} ({report.seconds:.2f}s). Serve it: lotledger serve {report.data_dir}"
    )
