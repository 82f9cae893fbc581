"""`lotledger init`, `serve` and `demo`: make a ledger and serve it. The server, the ledger and
the demo's records are imported by the commands that run them, not when click builds the
command (so `serve --help` answers at once)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import click

from lotledger.cli.ca_cmd import log_key_passphrase, log_key_passphrase_option, serve_tls_options, server_tls
from lotledger.cli.limits_config import limits_options, load_limits, print_limits
from lotledger.cli.options import DEFAULT_SERVER, witness_target_arg
from lotledger.cli.output import ExitCode, emit_json, fail, handles_errors, note


@click.command()
@click.argument("data_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--origin", required=True, help="The log's name, e.g. plant-7.example.com/lotledger.")
@click.option("--admin-id", default="admin", show_default=True, help="Participant id of the first admin.")
@click.option(
    "--encrypt-log-key",
    is_flag=True,
    help="Write the log key as an encrypted PEM; the passphrase comes from env LOTLEDGER_LOG_KEY_PASSPHRASE, "
    "--log-key-passphrase-file, or a prompt. `serve` then needs the same passphrase.",
)
@log_key_passphrase_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")
@handles_errors
def init(
    data_dir: Path,
    origin: str,
    admin_id: str,
    encrypt_log_key: bool,
    log_key_passphrase_file: Path | None,
    as_json: bool,
) -> None:
    """Create a ledger: the store, the log key, the first admin key, and entry 0.

    DATA_DIR is created (it must not hold a ledger yet); DATA_DIR/log.vkey is the verifier key
    to give to regulators and partners."""
    passphrase = None
    if encrypt_log_key:
        passphrase = (
            log_key_passphrase(log_key_passphrase_file)
            or click.prompt("passphrase for the log key", hide_input=True, confirmation_prompt=True, err=True).encode()
        )
    _init(data_dir, origin, admin_id, as_json, log_key_passphrase=passphrase)


def _init(
    data_dir: Path, origin: str, admin_id: str, as_json: bool, *, log_key_passphrase: bytes | None = None
) -> None:
    from lotledger.ledger import datadir

    made = datadir.create(data_dir, origin, admin_id=admin_id, log_key_passphrase=log_key_passphrase)
    if as_json:
        emit_json(
            {
                "origin": origin,
                "log_verifier_key": made.log_verifier_key,
                "admin_id": admin_id,
                "admin_key_id": made.admin_key_id,
            }
        )
    else:
        note(
            f"initialized {data_dir}: log key {made.log_key_path}, admin key {made.admin_key_path} "
            f"(participant {admin_id!r})"
        )
        note("the log's verifier key (give it to regulators; also in log.vkey):")
        click.echo(made.log_verifier_key)


@click.command()
@click.argument("data_dir", type=click.Path(file_okay=False, path_type=Path), required=False)
@click.option(
    "--listen",
    default=DEFAULT_SERVER,
    show_default=True,
    metavar="HOST:PORT",
    help="Address to serve gRPC on; plaintext only on loopback (see --allow-plaintext).",
)
@click.option(
    "--checkpoint-interval",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0.01),
    help="Seconds between checkpoints while the log grows.",
)
@click.option(
    "--init", "init_origin", metavar="ORIGIN", help="Initialize DATA_DIR with this origin first if it holds no ledger."
)
@click.option("--demo", is_flag=True, help="With a new DATA_DIR: initialize it and load the demo supply chain.")
@click.option(
    "--witness",
    "witnesses",
    multiple=True,
    metavar="URL=VKEY",
    help="Submit each new checkpoint to this witness (c2sp.org/tlog-witness) and keep its cosignature.",
)
@click.option(
    "--publish",
    "publish_dir",
    metavar="DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep a C2SP tlog-tiles copy of the log in DIR (checkpoint, hash tiles, entry bundles) as entries "
    "commit, for any web server to serve; repaired at start after a crash.",
)
@serve_tls_options
@log_key_passphrase_option
@limits_options
@handles_errors
def serve(
    data_dir: Path | None,
    listen: str,
    checkpoint_interval: float,
    init_origin: str | None,
    demo: bool,
    witnesses: tuple[str, ...],
    publish_dir: Path | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    client_ca: Path | None,
    allow_plaintext: bool,
    log_key_passphrase_file: Path | None,
    config_path: Path | None,
    print_config: bool,
) -> None:
    """Serve a ledger over gRPC until SIGINT or SIGTERM. With --tls-cert, --tls-key and
    --client-ca: mTLS, every caller identified by its client certificate. DATA_DIR is the
    ledger's directory (made by `lotledger init`, --init or --demo)."""
    from lotledger.ledger.log import LedgerConfig
    from lotledger.rpc.server import LedgerServer

    limits = load_limits(config_path)
    if print_config:
        print_limits(limits)
        return
    if data_dir is None:
        fail("serve needs DATA_DIR (or --print-config)", ExitCode.USAGE)
    tls = server_tls(listen, tls_cert, tls_key, client_ca, allow_plaintext)

    if (init_origin or demo) and not (data_dir / "ledger" / "data.mdb").exists():
        _init(data_dir, init_origin or DEMO_ORIGIN, "admin", False)
        if demo:
            _load_demo(data_dir)
    if not (data_dir / "keys" / "log.key").exists():
        fail(
            f"{data_dir} is not a ledger: run `lotledger init {data_dir} --origin NAME` (or serve --init NAME)",
            ExitCode.USAGE,
        )
    targets = [witness_target_arg(w, "--witness") for w in witnesses]
    try:
        server = LedgerServer(
            data_dir,
            listen,
            config=LedgerConfig(checkpoint_interval=checkpoint_interval),
            witnesses=targets,
            tls=tls,
            log_key_passphrase=log_key_passphrase(log_key_passphrase_file),
            limits=limits,
            publish=publish_dir,
        ).start()
    except OSError as e:
        fail(str(e), ExitCode.USAGE)
    stopping = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    note(
        f"lotledger {server.ledger.origin}: {server.ledger.size} entries, serving on {server.address}"
        + (" (mTLS: client certificates required)" if server.tls else " (plaintext)")
    )
    note(f"log verifier key: {server.ledger.log_verifier_key}")
    for t in targets:
        note(f"witness {t.key.name}: submitting checkpoints to {t.endpoint}")
    if server.publisher is not None:
        note(f"publishing tiles to {publish_dir} (size {server.publisher.size})")
    stopping.wait()
    note("stopping: finishing calls in flight and the last checkpoint")
    try:
        server.stop()
    except Exception as e:  # noqa: BLE001 - a part failed to stop (a full disk, say): close the ledger all the same
        server.ledger.close()  # (a no-op if it has closed)
        fail(f"stopped, but not cleanly: {e} (what was acknowledged was on disk before)")


# ---- demo ----------------------------------------------------------------------------------

DEMO_ORIGIN = "demo.example.com/lotledger"


def _load_demo(data_dir: Path) -> int:
    from lotledger.cli.demo import save_demo_keys, write_demo
    from lotledger.ledger.log import Ledger
    from lotledger.rpc.server import load_log_key
    from lotledger.signing.keys import SigningKey

    keys = data_dir / "keys"
    ledger = Ledger(data_dir, load_log_key(keys / "log.key"))
    try:
        written = write_demo(ledger, SigningKey.load(keys / "admin.key"))
        ledger.sign_checkpoint_now()
    finally:
        ledger.close()
    save_demo_keys(data_dir)
    note(f"demo supply chain: {written} records; participants' demo keys in {keys / 'demo'} (public seeds: demo only)")
    note(
        f"try: lotledger trace up 01/09520000000042/10/B-1001, or the web view: lotledger web --log-key {data_dir / 'log.vkey'}"
    )
    return written


@click.command()
@click.argument("data_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--origin", default=DEMO_ORIGIN, show_default=True, help="The log's name, if DATA_DIR is created here.")
@handles_errors
def demo(data_dir: Path, origin: str) -> None:
    """Create (or add to) a ledger with a small bakery supply chain to trace and recall.
    Run it while no server is serving DATA_DIR."""
    if not (data_dir / "ledger" / "data.mdb").exists():
        _init(data_dir, origin, "admin", False)
    _load_demo(data_dir)
    note(f"try: lotledger serve {data_dir}   then   lotledger trace down 01/09520000000042/10/B-1001")
