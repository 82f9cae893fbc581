"""Per-participant admission limits: a token bucket for the append rate and a counter of open
streams. Pure: no I/O, no threads of its own; time comes from an injectable clock so the
tests step it by hand.

Who "the participant" is comes from the caller. Until the server authenticates callers with
mTLS, the servicer charges the participant that owns the key a record's signature verified
with (a forger cannot spend another partner's budget), and records whose key is unknown at
precheck to one shared bucket, `UNVERIFIED`. With mTLS the servicer passes the certificate's
participant id instead; nothing here changes.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from lotledger.ledger.errors import ResourceExhausted

Clock = Callable[[], float]

# The bucket charged for records whose signing key the registry did not know at precheck.
UNVERIFIED = ""


@dataclass
class TokenBucket:
    """`rate` tokens per second up to `burst`; starts full. Not thread-safe on its own."""

    rate: float
    burst: float
    tokens: float
    updated: float

    @classmethod
    def full(cls, rate: float, burst: float, now: float) -> TokenBucket:
        return cls(rate, burst, burst, now)

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def take(self, now: float, n: float = 1.0) -> float:
        """Take `n` tokens if they are there and return 0.0; otherwise take nothing and return
        the seconds until they will be (math.inf if `n` exceeds the burst or the rate is 0)."""
        self._refill(now)
        if self.tokens >= n:
            self.tokens -= n
            return 0.0
        if n > self.burst or self.rate <= 0:
            return math.inf
        return (n - self.tokens) / self.rate

    def is_full(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= self.burst


class ParticipantLimiter:
    """The append rate and the open streams of each participant. Thread-safe.

    Buckets of participants that have been idle long enough to be full again are dropped, so
    the map stays as small as the set of recently active participants.
    """

    def __init__(self, rate: float, burst: float, max_streams: int, *, clock: Clock = time.monotonic):
        self.rate, self.burst, self.max_streams = rate, burst, max_streams
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, TokenBucket] = {}
        self._streams: dict[str, int] = {}
        self._next_sweep = clock()

    def take(self, participant: str, n: int = 1) -> None:
        """Charge `n` appends to `participant`. Raises ResourceExhausted (with `retry_after`)
        when its bucket does not hold them; nothing is charged then."""
        with self._lock:
            now = self._clock()
            self._sweep(now)
            bucket = self._buckets.get(participant)
            if bucket is None:
                bucket = self._buckets[participant] = TokenBucket.full(self.rate, self.burst, now)
            wait = bucket.take(now, n)
        if wait:
            who = f"participant {participant!r}" if participant != UNVERIFIED else "records with unregistered keys"
            hint = "never (more than the burst at once)" if math.isinf(wait) else f"in {wait:.3f} s"
            raise ResourceExhausted(
                f"append rate limit reached for {who} ({self.rate:g} records/s, burst {self.burst:g}); retry {hint}",
                reason="RATE_LIMITED",
                retry_after=None if math.isinf(wait) else wait,
            )

    def open_stream(self, participant: str) -> None:
        """Count one more open stream for `participant`. Raises ResourceExhausted at the limit."""
        with self._lock:
            open_now = self._streams.get(participant, 0)
            if open_now >= self.max_streams:
                raise ResourceExhausted(
                    f"participant {participant!r} already has {open_now} open append streams "
                    f"(limit {self.max_streams}); close one and retry",
                    reason="TOO_MANY_STREAMS",
                    retry_after=1.0,
                )
            self._streams[participant] = open_now + 1

    def close_stream(self, participant: str) -> None:
        with self._lock:
            left = self._streams.get(participant, 0) - 1
            if left > 0:
                self._streams[participant] = left
            else:
                self._streams.pop(participant, None)

    def open_streams(self, participant: str) -> int:
        with self._lock:
            return self._streams.get(participant, 0)

    def _sweep(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._next_sweep = now + max(1.0, self.burst / self.rate if self.rate > 0 else 60.0)
        for name in [p for p, b in self._buckets.items() if b.is_full(now)]:
            del self._buckets[name]
