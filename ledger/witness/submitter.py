"""The log's side of witnessing: a background thread that submits each new checkpoint to the
log's witnesses (c2sp.org/tlog-witness `add-checkpoint`) and keeps the cosignatures they
return with that checkpoint.

It is never in the append path: it reads the ledger's latest checkpoint, asks the ledger for
a consistency proof, and hands verified cosignature lines to the writer, which stores them in
its next transaction. Appends never wait for a witness, and a witness that is down, slow or
refusing is retried with exponential backoff and logged, never allowed to stop the log.

Per witness it remembers the size that witness last cosigned for this log. At start that is
unknown: the first request says `old 0`, and the witness's 409 answer (its latest size, as
text/x.tlog.size) tells the right one; the request is then repeated with a proof from there.
A cosignature is stored only after it verifies with the witness key the operator configured,
over exactly the checkpoint the log signed.
"""

from __future__ import annotations

import http.client
import logging
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass

from lotledger.ledger.errors import LedgerError, StorageError, Unavailable
from lotledger.ledger.log import Ledger, SignedCheckpoint
from lotledger.ledger.witness.state import format_add_checkpoint
from lotledger.signing.cosignature import CosignatureVerifier, open_cosignatures
from lotledger.signing.errors import SigningError

log = logging.getLogger("lotledger.witnessing")

MAX_RESPONSE_BYTES = 64 << 10
SIZE_CONTENT_TYPE = "text/x.tlog.size"


@dataclass(frozen=True)
class WitnessTarget:
    """A witness the log submits to: its submission URL prefix and its verifier key."""

    url: str
    key: CosignatureVerifier

    @property
    def endpoint(self) -> str:
        return self.url.rstrip("/") + "/add-checkpoint"


class _Refused(Exception):
    """The witness answered, and not with a cosignature we can keep."""


@dataclass
class _Track:
    """What the log knows about one witness."""

    target: WitnessTarget
    known_size: int = 0  # the size the witness last cosigned for this log (0: unknown or never)
    cosigned_size: int = 0  # the latest of our checkpoints it cosigned in this process
    failures: int = 0
    next_try: float = 0.0


class WitnessSubmitter:
    """One daemon thread for all of a log's witnesses (one request at a time each)."""

    def __init__(
        self,
        ledger: Ledger,
        targets: Sequence[WitnessTarget],
        *,
        poll: float = 0.1,
        timeout: float = 10.0,
        max_backoff: float = 60.0,
    ):
        self.ledger = ledger
        self.tracks = [_Track(t) for t in targets]
        self.poll = poll
        self.timeout = timeout
        self.max_backoff = max_backoff
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lotledger-witnessing", daemon=True)

    def start(self) -> WitnessSubmitter:
        if self.tracks:
            self._thread.start()
        return self

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            cp = self.ledger.latest_checkpoint
            now = time.monotonic()
            for track in self.tracks:
                if self._stop.is_set():
                    return
                if cp is None or track.cosigned_size >= cp.size or now < track.next_try:
                    continue
                try:
                    self.submit(track, cp)
                except Unavailable:
                    return  # the ledger is closing
                except (_Refused, OSError, http.client.HTTPException, LedgerError, StorageError, SigningError) as e:
                    self._back_off(track, e)
            self._stop.wait(self.poll)

    def _back_off(self, track: _Track, error: Exception) -> None:
        track.failures += 1
        delay = min(self.max_backoff, 0.5 * 2 ** min(track.failures - 1, 16)) * random.uniform(0.8, 1.2)
        track.next_try = time.monotonic() + delay
        level = logging.ERROR if isinstance(error, _Refused) else logging.WARNING
        log.log(level, "witness %s (%s): %s; retrying in %.1fs", track.target.key.name, track.target.url, error, delay)

    def submit(self, track: _Track, cp: SignedCheckpoint) -> None:
        """Ask one witness to cosign `cp`, learning its size from a 409 at most twice, then
        store the verified cosignature. Raises _Refused, OSError or HTTPException (transport),
        LedgerError or StorageError."""
        for _ in range(3):
            old = track.known_size
            if old > cp.size:
                raise _Refused(
                    f"it has cosigned size {old} of this log, above our latest checkpoint {cp.size}: "
                    "this log was rolled back or forked, or another log uses its origin and key"
                )
            proof = self.ledger.consistency_proof(old, cp.size)[1] if 0 < old < cp.size else []
            status, body, content_type = self._post(track.target, format_add_checkpoint(old, proof, cp.note))
            if status == 200:
                self._keep(track, cp, body)
                return
            if status == 409 and content_type == SIZE_CONTENT_TYPE:
                size = _parse_size(body)
                if size is not None and size != old:
                    track.known_size = size
                    continue
            detail = body[:300].decode("utf-8", "replace").strip()
            if status == 422 or status == 409:
                raise _Refused(
                    f"refused our checkpoint of size {cp.size} as inconsistent with what it cosigned "
                    f"(HTTP {status}: {detail}): this log may have been forked or rolled back"
                )
            raise _Refused(f"refused our checkpoint of size {cp.size} (HTTP {status}: {detail})")
        raise _Refused("its cosigned size keeps changing under us (other submitters of this log?)")

    def _keep(self, track: _Track, cp: SignedCheckpoint, body: bytes) -> None:
        key = track.target.key
        try:
            _, cosigs = open_cosignatures(cp.note + body, [key])
        except SigningError as e:
            raise _Refused(f"answered 200 with no valid cosignature lines: {e}") from e
        if not cosigs:
            raise _Refused("answered 200 without a cosignature by its configured key")
        line = cosigs[0].line
        self.ledger.store_cosignature(cp.size, key.key_hash, key.name, line.encode("utf-8"))
        track.known_size = track.cosigned_size = cp.size
        if track.failures:
            log.info("witness %s cosigns again (size %d)", key.name, cp.size)
        track.failures, track.next_try = 0, 0.0

    def _post(self, target: WitnessTarget, body: bytes) -> tuple[int, bytes, str]:
        request = urllib.request.Request(
            target.endpoint, data=body, method="POST", headers={"Content-Type": "text/plain; charset=utf-8"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return int(response.status), response.read(MAX_RESPONSE_BYTES), response.headers.get_content_type()
        except urllib.error.HTTPError as e:
            with e:
                return e.code, e.read(MAX_RESPONSE_BYTES), e.headers.get_content_type()


def _parse_size(body: bytes) -> int | None:
    text = body.decode("ascii", "replace").strip()
    return int(text) if text.isdigit() and len(text) <= 20 else None
