"""`lotledger export-tiles DIR`: the log as a static C2SP tlog-tiles directory. The driver,
and the order of work that keeps DIR a complete tiled log, is audit/tiles.py."""

from __future__ import annotations

from pathlib import Path

import click

from lotledger.cli.options import client_options, connect, verifier_key_arg
from lotledger.cli.output import Progress, emit_json, handles_errors


@click.command("export-tiles")
@click.argument("directory", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--log-key",
    metavar="VKEY",
    help="Check the checkpoints' signatures with the log's verifier key (name+hash+key, or a file holding it).",
)
@click.option("--quiet", is_flag=True, help="No progress lines.")
@client_options
@handles_errors
def export_tiles_command(directory: Path, log_key: str | None, quiet: bool, server: str, as_json: bool) -> None:
    """Write the log as a C2SP tlog-tiles directory (checkpoint, hash tiles, entry bundles) that
    an auditor mirrors as plain files and any tlog-tiles client reads. Run again to bring DIR up
    to date: only new files are written, after checking that the log extends DIR's checkpoint."""
    from lotledger.audit.tiles import export_tiles

    verifier = verifier_key_arg(log_key, "--log-key") if log_key else None
    with connect(server) as client:
        report = export_tiles(client, directory, log_key=verifier, progress=Progress("tiled", None, enabled=not quiet))
    data = {
        "dir": str(directory),
        "origin": report.origin,
        "tree_size": report.tree_size,
        "root_hash": report.root_hash.hex(),
        "previous_size": report.previous_size,
        "entries_fetched": report.entries_fetched,
        "files_written": report.files_written,
        "files_kept": report.files_kept,
        "partials_pruned": report.partials_pruned,
        "bytes_written": report.bytes_written,
        "signature_checked": verifier is not None,
        "seconds": round(report.seconds, 3),
    }
    if as_json:
        emit_json(data)
        return
    since = "" if report.previous_size is None else f" (was {report.previous_size})"
    click.echo(
        f"{directory}: {report.tree_size} entries of {report.origin}{since}, root {report.root_hash.hex()}; "
        f"{report.files_written} files written ({report.bytes_written / 1e6:.1f} MB), "
        f"{report.partials_pruned} superseded partial tiles removed ({report.seconds:.2f}s)"
    )
