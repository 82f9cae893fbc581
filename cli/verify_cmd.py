"""`lotledger verify` and `export`: check the whole log trusting no server, and write it to a
bundle that verifies offline; and the verification `keys list` runs first. The verifiers and
the export driver (audit/) are imported by the commands that run them."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from lotledger.cli.options import (
    client_options,
    connect,
    log_key_option,
    log_source_options,
    verifier_key_arg,
    witness_options,
    witness_quorum,
)
from lotledger.cli.output import ExitCode, Progress, emit_json, fail, handles_errors, note

if TYPE_CHECKING:
    from lotledger.audit.tiles_http import HttpTls
    from lotledger.audit.verify import VerifyReport
    from lotledger.signing.cosignature import CosignatureVerifier
    from lotledger.signing.note import NoteVerifier


def run_verification(
    verifier: NoteVerifier,
    *,
    data_dir: Path | None,
    bundle: Path | None,
    server: str,
    state_dir: Path | None,
    since_note: bytes | None = None,
    check_signatures: bool = True,
    progress: Progress | None = None,
    witnesses: Sequence[CosignatureVerifier] = (),
    quorum: int = 0,
    workers: int | None = None,
    tiles: str | None = None,
) -> tuple[VerifyReport, str | None]:
    """Verify the log from a data directory, a bundle, a tiled log (URL or directory) or a live
    server (resuming from and saving to `state_dir` when given). Returns the report and where
    the new state was saved, if it was."""
    from lotledger.audit.state_dir import StateDir
    from lotledger.audit.tiles_http import TilesSource, open_tiles
    from lotledger.audit.verify import BundleSource, DataDirSource, LiveSource, verify_log

    if sum(x is not None for x in (data_dir, bundle, tiles)) > 1:
        fail("pass one of --data-dir, --bundle and --tiles", ExitCode.USAGE)
    with contextlib.ExitStack() as stack:
        states = stack.enter_context(StateDir(state_dir)) if state_dir is not None else None
        state = states.load(verifier) if states is not None else None
        source: DataDirSource | BundleSource | LiveSource | TilesSource
        if tiles is not None:
            store = open_tiles(tiles, tls=http_tls())
            stack.callback(store.close)
            source = TilesSource(store)
        elif data_dir is not None:
            source = DataDirSource(data_dir, min_cosignatures=quorum)
        elif bundle is not None:
            source = BundleSource(bundle)
        else:
            source = LiveSource(connect(server), min_cosignatures=quorum)
        stack.callback(source.close)
        if states is not None and state is None and source.increment() is not None:
            fail(
                f"{state_dir} holds no saved verification, and an increment bundle resumes from one: verify the log "
                "(or its bundles) up to where this one starts with --state first, or verify it without --state",
                ExitCode.USAGE,
            )
        report = verify_log(
            source,
            verifier,
            since_note=since_note,
            state=state,
            check_signatures=check_signatures,
            progress=progress,
            witnesses=witnesses,
            quorum=quorum,
            workers=workers,
        )
        saved = None
        if states is not None and report.state is not None and (state is None or report.state.note != state.note):
            states.save(report.state)
            saved = str(states.state_file)
    return report, saved


def http_tls() -> HttpTls | None:
    """HTTPS settings for --tiles from the same --tls-ca/--tls-cert/--tls-key the gRPC client
    takes (cli/options.py keeps them in the click context)."""
    from lotledger.audit.tiles_http import HttpTls
    from lotledger.cli.options import _TLS_META

    ctx = click.get_current_context(silent=True)
    given: dict[str, str] = ctx.meta.get(_TLS_META, {}) if ctx is not None else {}
    if not given:
        return None
    if ("tls_cert" in given) != ("tls_key" in given):
        fail("--tls-cert and --tls-key go together", ExitCode.USAGE)
    paths = {k: Path(v) for k, v in given.items()}
    return HttpTls(paths.get("tls_ca"), paths.get("tls_cert"), paths.get("tls_key"))


@click.command()
@log_key_option
@click.option(
    "--since",
    "since",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="An earlier checkpoint the log must extend.",
)
@log_source_options
@click.option(
    "--tiles",
    metavar="URL|DIR",
    help="Verify a C2SP tlog-tiles log (serve --publish, export-tiles) read over HTTP(S) or from a directory, "
    "with no server of ours; HTTPS uses --tls-ca, and --tls-cert/--tls-key for entry bundles behind mTLS.",
)
@click.option(
    "--no-signatures",
    is_flag=True,
    help="Hash-only (fast; not for audits): checks each entry's framing, seq and prev_hash link, and the "
    "Merkle root and size against the signed checkpoint; NOT the records, signatures, key history or roles.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Processes for full verification (default: one per core, for logs of 20,000 entries or more).",
)
@witness_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")
@click.option("--quiet", is_flag=True, help="No progress lines.")
@handles_errors
def verify(
    log_key: str,
    since: Path | None,
    data_dir: Path | None,
    bundle: Path | None,
    tiles: str | None,
    no_signatures: bool,
    witness_keys: tuple[str, ...],
    quorum: int | None,
    state_dir: Path | None,
    workers: int | None,
    server: str,
    as_json: bool,
    quiet: bool,
) -> None:
    """Check the whole log with no trust in the server: every chain link, signature (against
    the key history as of each entry), record, the Merkle root against the signed checkpoint,
    and with --since, that the log extends that earlier checkpoint. With --witness, the
    checkpoint must carry cosignatures from --quorum of those witnesses. With --state, only what
    is new since the saved verification, with the same result as checking it all again."""
    verifier = verifier_key_arg(log_key, "--log-key")
    witnesses, quorum = witness_quorum(witness_keys, quorum)
    since_note = since.read_bytes() if since else None
    progress = Progress("verified", None, enabled=not quiet)
    if state_dir is not None and (no_signatures or since):
        fail(
            "--state keeps only full verifications, and pins the checkpoint the log must extend itself: "
            "drop --no-signatures and --since",
            ExitCode.USAGE,
        )
    report, saved = run_verification(
        verifier,
        data_dir=data_dir,
        bundle=bundle,
        server=server,
        state_dir=state_dir,
        since_note=since_note,
        check_signatures=not no_signatures,
        progress=progress,
        witnesses=witnesses,
        quorum=quorum,
        workers=workers,
        tiles=tiles,
    )
    data = {
        "ok": True,
        "origin": report.origin,
        "tree_size": report.size,
        "root_hash": report.root_hash.hex(),
        "since_size": report.since_size,
        "signatures_checked": report.signatures_checked,
        "cosigned_by": list(report.cosigned_by),
        "from_size": report.from_size,
        "entries_checked": report.entries_checked,
        "increment": report.increment,
        "complete": not report.not_checked,
        "not_checked": report.not_checked,
        "state_saved": saved,
        "seconds": round(report.seconds, 3),
    }
    for line in report.not_checked:
        note(f"not checked: {line}")
    if as_json:
        emit_json(data)
    else:
        since_text = f", consistent with the checkpoint of size {report.since_size}" if report.since_size else ""
        sig_text = (
            "" if report.signatures_checked else " (hash chain and tree only: records and signatures NOT checked)"
        )
        what = f"{report.size} entries" if not report.from_size else f"entries {report.from_size} to {report.size - 1}"
        start = f" from the checkpoint of size {report.from_size}" if report.from_size else ""
        partial = "; NOT a complete verification (see above)" if report.not_checked else ""
        cosig_text = f", cosigned by {', '.join(report.cosigned_by)}" if report.cosigned_by else ""
        click.echo(
            f"OK: {what} of {report.origin} verified{start}{sig_text}; root {report.root_hash.hex()} "
            f"matches the signed checkpoint{cosig_text}{since_text}{partial} ({report.seconds:.2f}s)"
        )
    if saved:
        note(f"state saved in {state_dir}: verified up to {report.size} entries")


@click.command()
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="The bundle file to write.")
@click.option("--to", "tree_size", default=0, help="End at the checkpoint issued at this tree size (default: latest).")
@click.option(
    "--from",
    "from_size",
    default=0,
    type=click.IntRange(min=0),
    metavar="SEQ",
    help="An increment from the checkpoint the log issued at this tree size (default: the whole log).",
)
@click.option("--quiet", is_flag=True, help="No progress lines.")
@client_options
@handles_errors
def export(out: Path, tree_size: int, from_size: int, quiet: bool, server: str, as_json: bool) -> None:
    """Write the log, up to a signed checkpoint, to one self-contained bundle file that
    `lotledger verify --bundle FILE --log-key VKEY` checks offline; with --from SEQ, only the
    entries from SEQ on, with the proofs that tie them to the checkpoint of size SEQ."""
    from lotledger.audit.export import export_bundle

    with connect(server) as client:
        report = export_bundle(
            client,
            out,
            tree_size=tree_size,
            from_size=from_size,
            progress=Progress("exported", None, enabled=not quiet),
        )
    data = {
        "out": str(out),
        "origin": report.origin,
        "from_size": report.from_size,
        "tree_size": report.tree_size,
        "root_hash": report.root_hash.hex(),
        "key_history_entries": report.key_entries,
        "bytes": report.bytes_written,
        "seconds": round(report.seconds, 3),
    }
    if as_json:
        emit_json(data)
    else:
        mb = report.bytes_written / 1e6
        what = (
            f"{report.tree_size} entries"
            if not report.from_size
            else (
                f"entries {report.from_size} to {report.tree_size - 1} (and {report.key_entries} key history entries)"
            )
        )
        click.echo(
            f"{out}: {what} of {report.origin} up to the checkpoint with root "
            f"{report.root_hash.hex()} ({mb:.1f} MB in {report.seconds:.2f}s)"
        )
