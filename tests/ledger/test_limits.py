"""The limits' pure parts: the token bucket and the per-participant limiter on a hand-stepped
clock, and the configuration file (parse, refuse, print and read back)."""

from __future__ import annotations

import math
from dataclasses import fields

import pytest

from lotledger.ledger.errors import ConfigError, ResourceExhausted
from lotledger.rpc.limits import Limits, limits_toml, parse_limits
from lotledger.rpc.ratelimit import UNVERIFIED, ParticipantLimiter, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bucket_starts_full_refills_at_the_rate_and_caps_at_the_burst() -> None:
    bucket = TokenBucket.full(rate=10, burst=5, now=0.0)
    assert [bucket.take(0.0) for _ in range(5)] == [0.0] * 5
    assert bucket.take(0.0) == pytest.approx(0.1)  # one token in 1/rate s
    assert bucket.take(0.05) == pytest.approx(0.05)  # refused: nothing taken, half a token back
    assert bucket.take(0.1) == 0.0
    assert bucket.take(100.0, 5) == 0.0 and bucket.take(100.0) > 0  # capped at the burst
    assert bucket.take(100.0, 6) == math.inf  # more than the burst never fits


def test_bucket_ignores_a_clock_that_goes_back() -> None:
    bucket = TokenBucket.full(rate=1, burst=1, now=10.0)
    assert bucket.take(10.0) == 0.0
    assert bucket.take(5.0) == pytest.approx(1.0)
    assert bucket.take(11.0) == 0.0


def test_limiter_is_per_participant_and_says_when_to_retry() -> None:
    clock = Clock()
    limiter = ParticipantLimiter(rate=2, burst=2, max_streams=1, clock=clock)
    limiter.take("acme")
    limiter.take("acme")
    with pytest.raises(ResourceExhausted) as info:
        limiter.take("acme")
    assert info.value.reason == "RATE_LIMITED"
    assert info.value.retry_after == pytest.approx(0.5)
    assert "retry in 0.500 s" in info.value.message and "'acme'" in info.value.message
    limiter.take("plant")  # another participant has its own bucket
    limiter.take(UNVERIFIED)
    clock.now += 0.5
    limiter.take("acme")


def test_limiter_forgets_idle_participants() -> None:
    clock = Clock()
    limiter = ParticipantLimiter(rate=10, burst=10, max_streams=1, clock=clock)
    for i in range(50):
        limiter.take(f"p{i}")
    clock.now += 5
    limiter.take("late")
    assert set(limiter._buckets) == {"late"}


def test_limiter_counts_open_streams() -> None:
    limiter = ParticipantLimiter(rate=1, burst=1, max_streams=2)
    limiter.open_stream("acme")
    limiter.open_stream("acme")
    with pytest.raises(ResourceExhausted) as info:
        limiter.open_stream("acme")
    assert info.value.reason == "TOO_MANY_STREAMS" and info.value.retry_after
    limiter.open_stream("plant")
    limiter.close_stream("acme")
    limiter.open_stream("acme")
    assert limiter.open_streams("acme") == 2
    limiter.close_stream("acme")
    limiter.close_stream("acme")
    assert limiter.open_streams("acme") == 0


def test_config_sets_only_what_it_names() -> None:
    limits = parse_limits("[append]\nrate = 50\nburst = 100\n[time]\nmax_age_seconds = 3600\n")
    assert limits.append_rate == 50.0 and isinstance(limits.append_rate, float)
    assert limits.append_burst == 100 and limits.time_max_age_seconds == 3600.0
    assert limits.transport_max_message_bytes == Limits().transport_max_message_bytes


def test_printed_config_reads_back_to_the_same_limits() -> None:
    custom = parse_limits("[transport]\nmax_workers = 8\n[append]\nstream_idle_seconds = 2.5\n")
    assert parse_limits(limits_toml(custom)) == custom
    assert parse_limits(limits_toml(Limits())) == Limits()
    text = limits_toml(Limits())
    for f in fields(Limits):
        assert f.name.split("_", 1)[1] + " = " in text


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("[append]\nrat = 5\n", "append.rat"),
        ("[apend]\nrate = 5\n", "apend"),
        ("[append]\nrate = 'fast'\n", "append.rate"),
        ("[append]\nburst = 2.5\n", "append.burst"),
        ("[append]\nrate = 0\n", "append.rate"),
        ("[append]\nrate = nan\n", "append.rate"),
        ("[append]\nstreams_per_participant = true\n", "append.streams_per_participant"),
        ("[transport]\nmax_message_bytes = 1000\n", "transport.max_message_bytes"),
        ("[transport]\nmax_message_bytes = 1_000_000_000\n", "transport.max_message_bytes"),
        ("[calls]\nmax_streams = 0\n", "calls.max_streams"),
        ("[calls]\nstream_idle_seconds = -1\n", "calls.stream_idle_seconds"),
        ("[calls]\nanonymous = 3\n", "calls.anonymous"),
        ("rate = 5\n", "rate"),
        ("[append\n", None),
    ],
)
def test_bad_config_is_refused_naming_the_key(text: str, field: str | None) -> None:
    with pytest.raises(ConfigError) as info:
        parse_limits(text)
    assert info.value.field == field
