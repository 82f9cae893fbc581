"""`lotledger web`: the read-only web app (web/app.py) on waitress, talking to a ledger server
over gRPC as an auditor-role client."""

from __future__ import annotations

import signal
import threading
from typing import Any

import click

from lotledger.cli.options import connect, log_key_option, server_option, verifier_key_arg
from lotledger.cli.output import ExitCode, fail, handles_errors, note

DEFAULT_LISTEN = "127.0.0.1:8080"


@click.command("web")
@click.option("--listen", default=DEFAULT_LISTEN, show_default=True, metavar="HOST:PORT", help="Where to serve HTTP.")
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Listen on a non-loopback address. The app has no login of its own: anyone who reaches it reads "
    "what its auditor certificate may read, so put it behind your single sign-on proxy.",
)
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 64), help="HTTP worker threads.")
@log_key_option
@server_option
@handles_errors
def web(listen: str, allow_remote: bool, threads: int, log_key: str, server: str) -> None:
    """Serve QA's web view: lot search, trace graphs, recall reports with CSV/XLSX/FSMA downloads,
    alerts and log status; the pages check inclusion proofs against --log-key in the browser.
    Read-only: give it an auditor's client certificate (--tls-*) when the server uses mTLS."""
    from waitress.server import create_server

    from lotledger.rpc.server import is_loopback
    from lotledger.web.app import create_app
    from lotledger.web.source import LedgerSource

    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        fail(f"--listen: {listen!r} is not HOST:PORT", ExitCode.USAGE)
    if not is_loopback(listen) and not allow_remote:
        fail(
            f"--listen {listen}: not a loopback address; the web app has no login of its own. "
            "Pass --allow-remote to serve it anyway (behind an authenticating proxy).",
            ExitCode.USAGE,
        )
    verifier = verifier_key_arg(log_key, "--log-key")
    source = LedgerSource(lambda: connect(server))
    app = create_app(source, verifier)
    try:
        httpd: Any = create_server(app, host=host.strip("[]"), port=int(port), threads=threads, ident="lotledger")
    except OSError as e:
        source.close()
        fail(f"--listen {listen}: {e.strerror or e}", ExitCode.USAGE)
    stopping = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stopping.set()
        httpd.close()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    note(f"lotledger web on http://{host}:{httpd.effective_port}/ (read-only, ledger at {server})")
    try:
        httpd.run()
    except OSError:
        if not stopping.is_set():
            raise
    finally:
        source.close()
        note("stopped")
