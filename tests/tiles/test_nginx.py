"""A published log behind a real nginx (Debian's package) with the configuration `lotledger
nginx-config` writes: the checkpoint and hash tiles are public, with tlog-tiles' cache headers;
entry bundles go only to a client certificate from `lotledger ca` that may read the whole log;
`verify --tiles https://...` works through it with an auditor's certificate and is refused
without one.

Skipped only when nginx is not installed and LOTLEDGER_REQUIRE_NGINX is unset (.ci/run sets it
and installs nginx, so CI never skips)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from cli_helpers import run
from helpers import free_port

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
if NGINX is None and not os.environ.get("LOTLEDGER_REQUIRE_NGINX"):
    pytest.skip(
        "nginx is not installed (apt-get install nginx; CI sets LOTLEDGER_REQUIRE_NGINX)", allow_module_level=True
    )


def start_nginx(config: Path, state: Path, port: int) -> subprocess.Popen[bytes]:
    assert NGINX is not None, "LOTLEDGER_REQUIRE_NGINX is set but nginx is not installed"
    proc = subprocess.Popen(
        [NGINX, "-c", str(config), "-e", str(state / "error.log"), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"nginx exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("nginx did not listen")


@pytest.fixture(scope="module")
def behind_nginx(published: SimpleNamespace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    tmp = tmp_path_factory.mktemp("nginx")
    ca = tmp / "ca"
    run("ca", "init", str(ca))
    run("ca", "issue", str(ca), "--server", "127.0.0.1")
    for who in ("auditor1", "partner1"):
        run("ca", "issue", str(ca), "--participant", who)
    port = free_port()
    config, state = tmp / "nginx.conf", tmp / "state"
    args = ["nginx-config", str(published.out), "--listen", f"127.0.0.1:{port}", "--state", str(state)]
    args += ["--out", str(config), "--tls-cert", str(ca / "server.crt"), "--tls-key", str(ca / "server.key")]
    args += ["--client-ca", str(ca / "ca.crt"), "--reader", "auditor1"]
    if os.geteuid() == 0:
        args += ["--user", "root"]  # workers must read the test's 0700 temporary directory
    run(*args)
    proc = start_nginx(config, state, port)
    yield SimpleNamespace(url=f"https://127.0.0.1:{port}/", ca=ca, log=published, state=state)
    proc.terminate()
    proc.wait(20)


def client(env: SimpleNamespace, who: str | None = None) -> httpx.Client:
    ctx = ssl.create_default_context(cafile=str(env.ca / "ca.crt"))
    if who is not None:
        ctx.load_cert_chain(str(env.ca / f"{who}.crt"), str(env.ca / f"{who}.key"))
    return httpx.Client(base_url=env.url, verify=ctx)


def test_anonymous_reader_gets_checkpoint_and_hash_tiles_but_no_entry(behind_nginx: SimpleNamespace) -> None:
    out = behind_nginx.log.out
    with client(behind_nginx) as anonymous:
        cp = anonymous.get("checkpoint")
        assert cp.status_code == 200 and cp.content == (out / "checkpoint").read_bytes()
        assert cp.headers["cache-control"] == "public, max-age=1, must-revalidate"
        full = anonymous.get("tile/0/000")
        assert full.status_code == 200 and full.content == (out / "tile/0/000").read_bytes()
        assert full.headers["cache-control"] == "public, max-age=31536000, immutable"
        partial = anonymous.get("tile/1/000.p/2")
        assert partial.status_code == 200 and partial.headers["cache-control"] == "public, max-age=86400"
        for path in ("tile/entries/000", "tile/entries/002.p/192"):
            assert anonymous.get(path).status_code == 403, path
        # The publisher's hidden temporary files and anything outside the layout: not served.
        (out / "tile" / ".0.tmp").write_bytes(b"half written")
        try:
            assert anonymous.get("tile/.0.tmp").status_code == 404
        finally:
            (out / "tile" / ".0.tmp").unlink()
        assert anonymous.get("").status_code == 404
        # A conditional request for an unchanged checkpoint is a 304.
        again = anonymous.get("checkpoint", headers={"If-None-Match": cp.headers["etag"]})
        assert again.status_code == 304


def test_auditor_certificate_gets_entries_and_another_participant_does_not(behind_nginx: SimpleNamespace) -> None:
    out = behind_nginx.log.out
    with client(behind_nginx, "auditor1") as auditor:
        bundle = auditor.get("tile/entries/000")
        assert bundle.status_code == 200 and bundle.content == (out / "tile/entries/000").read_bytes()
        assert bundle.headers["cache-control"] == "private, max-age=31536000, immutable"
        assert auditor.get("tile/entries/002.p/192").status_code == 200
    with client(behind_nginx, "partner1") as partner:  # a valid certificate, not a reader of the whole log
        assert partner.get("tile/entries/000").status_code == 403
        assert partner.get("checkpoint").status_code == 200


def test_verify_tiles_through_nginx(behind_nginx: SimpleNamespace) -> None:
    log, ca = behind_nginx.log, behind_nginx.ca
    tls = ["--tls-ca", str(ca / "ca.crt")]
    auditor = ["--tls-cert", str(ca / "auditor1.crt"), "--tls-key", str(ca / "auditor1.key")]
    ok = run("verify", "--tiles", behind_nginx.url, "--log-key", str(log.vkey), "--json", "--quiet", *tls, *auditor)
    bundle = run("verify", "--bundle", str(log.bundle), "--log-key", str(log.vkey), "--json", "--quiet")
    got, want = json.loads(ok.stdout), json.loads(bundle.stdout)
    assert (got["tree_size"], got["root_hash"], got["entries_checked"]) == (
        want["tree_size"],
        want["root_hash"],
        want["entries_checked"],
    )
    anonymous = run("verify", "--tiles", behind_nginx.url, "--log-key", str(log.vkey), "--quiet", *tls, ok=False)
    assert anonymous.exit_code == 2 and "HTTP 403" in anonymous.stderr and "client certificate" in anonymous.stderr
    # The server's certificate must chain to the CA given: the system trust store knows nothing of it.
    untrusted = run("verify", "--tiles", behind_nginx.url, "--log-key", str(log.vkey), "--quiet", ok=False)
    assert untrusted.exit_code == 3 and "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr


def test_generated_config_refuses_entries_without_tls(published: SimpleNamespace, tmp_path: Path) -> None:
    port = free_port()
    config, state = tmp_path / "plain.conf", tmp_path / "state"
    args = ["nginx-config", str(published.out), "--listen", f"127.0.0.1:{port}", "--state", str(state)]
    args += ["--out", str(config)] + (["--user", "root"] if os.geteuid() == 0 else [])
    run(*args)
    proc = start_nginx(config, state, port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}/") as anyone:
            assert anyone.get("checkpoint").status_code == 200
            assert anyone.get("tile/0/000").status_code == 200
            assert anyone.get("tile/entries/000").status_code == 403
    finally:
        proc.terminate()
        proc.wait(20)
    bad = run(
        "nginx-config", str(published.out), "--listen", "127.0.0.1:1", "--state", str(state), "--reader", "a", ok=False
    )
    assert bad.exit_code == 2 and "needs --tls-cert" in bad.stderr
