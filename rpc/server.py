"""Assembles the gRPC server: the ledger servicer, health checking and reflection.

Service names come from the generated descriptors, never typed by hand. With `tls` the
server listens with TLS and requires a client certificate signed by the client CA (mTLS);
the servicer then checks every call against the identity the certificate names
(lotledger.ledger.core.access). Without it the transport is plaintext, which is meant for a
loopback address (the demo, the tests): `is_loopback` tells, and anything else is logged as
a warning here and refused by `lotledger serve` unless asked for.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from lotledger.ledger.log import Ledger, LedgerConfig
from lotledger.ledger.publish import Publisher
from lotledger.ledger.witness.submitter import WitnessSubmitter, WitnessTarget
from lotledger.rpc.gate import CallGate
from lotledger.rpc.limits import Limits
from lotledger.rpc.servicer import LedgerServicer
from lotledger.rpc.workers import PrecheckPool
from lotledger.signing.errors import InvalidKey, KeyFileError
from lotledger.signing.keys import SigningKey, read_private_file
from lotledger.trace.live import LiveIndex
from lotledger.trace.snapshot import SnapshotStore
from lotledger.v1 import ledger_service_pb2 as pb
from lotledger.v1 import ledger_service_pb2_grpc as pb_grpc

log = logging.getLogger("lotledger.server")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["LedgerService"].full_name
_HEALTH = health_pb2.DESCRIPTOR.services_by_name["Health"]
# The call gate (lotledger.rpc.gate) never cancels health Watch, which waits for a status change
# by design, and does not count health Check, which must answer whatever the caller's allowance.
HEALTH_WATCH = f"/{_HEALTH.full_name}/{_HEALTH.methods_by_name['Watch'].name}"
HEALTH_CHECK = f"/{_HEALTH.full_name}/{_HEALTH.methods_by_name['Check'].name}"
# py-lmdb releases the GIL inside each call; at the default 5 ms switch interval the writer
# then waits behind busy request threads (measured: 2,600 -> 88 commits/s). 0.2 ms keeps
# group commit flowing (see STYLE.md, "The GIL convoy").
SWITCH_INTERVAL = 0.0002


LOG_KEY_PASSPHRASE_ENV = "LOTLEDGER_LOG_KEY_PASSPHRASE"


@dataclass(frozen=True, repr=False)
class ServerTls:
    """The server's certificate chain and key, and the CA its clients' certificates must chain
    to (all PEM). repr shows no key material."""

    cert_chain: bytes
    private_key: bytes
    client_ca: bytes

    @classmethod
    def load(
        cls, cert: str | os.PathLike[str], key: str | os.PathLike[str], client_ca: str | os.PathLike[str]
    ) -> ServerTls:
        """Read the three files; the key must be 0600 (keys.read_private_file).

        Raises KeyFileError (unreadable, or a key others can read).
        """
        try:
            cert_pem, ca_pem = Path(cert).read_bytes(), Path(client_ca).read_bytes()
        except OSError as e:
            raise KeyFileError(f"cannot read {e.filename}: {e.strerror or e}") from e
        return cls(cert_pem, read_private_file(key), ca_pem)

    def __repr__(self) -> str:
        return "ServerTls(...)"


def is_loopback(listen: str) -> bool:
    """Is HOST:PORT a loopback address (127.0.0.0/8, ::1, localhost)? Plaintext is safe only there."""
    host = listen.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class LedgerServer:
    """A running server over one data directory. `port` is the bound port (ask for 0 in tests).

    `tls`: serve with mTLS (see the module doc). `log_key_passphrase`: decrypts an encrypted
    log key (keys/log.key); by default it is read from the environment variable
    LOTLEDGER_LOG_KEY_PASSPHRASE when that is set.

    Raises KeyFileError or InvalidKey (the log key cannot be loaded: the message names the
    file, and for an encrypted key the passphrase), OSError (cannot listen).
    """

    def __init__(
        self,
        data_dir: str | Path,
        listen: str = "127.0.0.1:50051",
        *,
        config: LedgerConfig | None = None,
        witnesses: Sequence[WitnessTarget] = (),
        tls: ServerTls | None = None,
        log_key_passphrase: bytes | None = None,
        limits: Limits | None = None,
        publish: str | Path | None = None,
    ):
        sys.setswitchinterval(SWITCH_INTERVAL)
        self.data_dir = Path(data_dir)
        self.limits = limits = limits or Limits()
        log_key = load_log_key(self.data_dir / "keys" / "log.key", log_key_passphrase)
        # The created_at window comes from the limits (the server's admission policy).
        config = replace(config or LedgerConfig(), max_skew=limits.max_future_skew, max_age=limits.max_age)
        self.ledger = Ledger(self.data_dir, log_key, config)
        self.verify_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="verify")
        # Large AppendStream messages are prechecked in worker processes, started when first needed.
        self.precheck_workers = PrecheckPool(os.cpu_count() or 2)
        self.live = LiveIndex(self.ledger, snapshots=SnapshotStore(self.data_dir / "index"))
        self.witnessing = WitnessSubmitter(self.ledger, witnesses)
        # `publish`: keep a C2SP tlog-tiles copy in that directory (ledger/publish.py), repaired at start.
        self.publisher = Publisher(self.ledger, Path(publish)) if publish is not None else None
        # Every call of every service passes the gate first (lotledger.rpc.gate): counted per
        # caller and in total from the moment it opens; silent or stuck streams are ended.
        self.gate = CallGate(limits, long_lived=[HEALTH_WATCH], uncounted=[HEALTH_CHECK])
        self.server = grpc.server(
            ThreadPoolExecutor(max_workers=limits.transport_max_workers, thread_name_prefix="grpc"),
            interceptors=[self.gate],
            options=[
                ("grpc.max_receive_message_length", limits.transport_max_message_bytes),
                ("grpc.so_reuseport", 0),
                ("grpc.http2.bdp_probe", limits.transport_bdp_probe),
            ],
            maximum_concurrent_rpcs=limits.transport_max_concurrent_rpcs,
        )
        self.servicer = servicer = LedgerServicer(
            self.ledger, self.verify_pool, self.live, limits, mtls=tls is not None, workers=self.precheck_workers
        )
        pb_grpc.add_LedgerServiceServicer_to_server(servicer, self.server)  # type: ignore[no-untyped-call]
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            self.server,
        )
        self.tls = tls is not None
        try:
            self.port = self._bind(listen, tls)
        except BaseException:
            self.gate.close()
            self.ledger.close()  # releases the data directory for whoever runs next
            raise
        host = listen.rsplit(":", 1)[0]
        self.address = f"{host}:{self.port}"

    def _bind(self, listen: str, tls: ServerTls | None) -> int:
        """Raises OSError when the address cannot be bound (taken by another server, say)."""
        try:
            if tls is None:
                if not is_loopback(listen):
                    log.warning(
                        "serving PLAINTEXT on %s, which is not a loopback address: anyone on the network can read "
                        "and write without a certificate; use --tls-cert/--tls-key/--client-ca",
                        listen,
                    )
                port: int = self.server.add_insecure_port(listen)
            else:
                credentials = grpc.ssl_server_credentials(
                    [(tls.private_key, tls.cert_chain)], root_certificates=tls.client_ca, require_client_auth=True
                )
                port = self.server.add_secure_port(listen, credentials)
        except RuntimeError as e:  # grpcio's "Failed to bind"
            raise OSError(f"cannot listen on {listen}: {e} (is another server using that address?)") from e
        if port == 0:
            raise OSError(f"cannot listen on {listen} (is another server using that address?)")
        return port

    def start(self) -> LedgerServer:
        """Raises RequestError (and closes the ledger) when the --publish directory is refused."""
        if self.publisher is not None:
            try:
                self.publisher.start()  # repairs DIR first: refused before anything is served
            except BaseException:
                self.gate.close()
                self.live.close()
                self.ledger.close()
                raise
        self.server.start()
        for name in ("", SERVICE_NAME):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self.witnessing.start()
        log.info("lotledger serving %s on %s (log size %d)", self.ledger.origin, self.address, self.ledger.size)
        return self

    def stop(self, grace: float = 5.0) -> None:
        """Refuse new calls, let running ones finish, then flush the writer and close LMDB.

        gRPC's shutdown event has been seen never to fire after a stream whose request failed
        to deserialize (a malformed protobuf), with no handler left running; so the wait is
        bounded, and the writer is flushed and LMDB closed either way."""
        self.health.enter_graceful_shutdown()
        if not self.server.stop(grace).wait(grace + 5.0):
            log.warning("gRPC did not report its shutdown within %.1f s; closing the ledger anyway", grace + 5.0)
        self.gate.close()
        self.witnessing.stop()
        if self.publisher is not None:
            self.publisher.stop()  # after the last call: publishes the last checkpoint
        self.live.close()  # its final snapshot reads the ledger, so before the ledger closes
        self.ledger.close()
        self.verify_pool.shutdown(wait=False)
        self.precheck_workers.close()

    def wait(self) -> None:
        self.server.wait_for_termination()


def load_log_key(path: Path, passphrase: bytes | None = None) -> SigningKey:
    """The log's signing key; an encrypted PEM is decrypted with `passphrase`, or else with
    LOTLEDGER_LOG_KEY_PASSPHRASE from the environment.

    Raises KeyFileError (unreadable, readable by others) or InvalidKey (with a message that
    says how to give the passphrase when the key is encrypted and none or a wrong one came).
    """
    if passphrase is None and os.environ.get(LOG_KEY_PASSPHRASE_ENV):
        passphrase = os.environ[LOG_KEY_PASSPHRASE_ENV].encode()
    try:
        return SigningKey.load(path, passphrase)
    except InvalidKey as e:
        how = f"set {LOG_KEY_PASSPHRASE_ENV} or pass --log-key-passphrase-file FILE"
        if passphrase is None:
            raise InvalidKey(f"the log key {path} is encrypted or unusable ({e}); if it is encrypted, {how}") from e
        raise InvalidKey(f"cannot decrypt the log key {path} with the passphrase given ({e}); {how}") from e
