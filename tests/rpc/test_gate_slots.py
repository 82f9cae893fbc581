"""The call gate's counts, with no server: per participant, the anonymous allowance, the total
of streams (never more than half the request threads), and the refusals' reasons and
messages. The gate on a real server is tested in test_call_gate.py."""

from __future__ import annotations

import pytest

from lotledger.ledger.errors import ResourceExhausted
from lotledger.rpc.gate import ANONYMOUS, CallSlots
from lotledger.rpc.limits import Limits, limits_toml, parse_limits
from lotledger.rpc.status import LIMIT_REASONS


def refused(slots: CallSlots, who: str | None, *, stream: bool) -> ResourceExhausted:
    with pytest.raises(ResourceExhausted) as info:
        slots.enter(who, stream=stream)
    assert info.value.reason in LIMIT_REASONS and info.value.retry_after
    return info.value


def test_streams_per_participant_count_from_the_moment_they_open() -> None:
    slots = CallSlots(Limits(calls_streams_per_participant=2))
    slots.enter("aud", stream=True)
    slots.enter("aud", stream=True)
    error = refused(slots, "aud", stream=True)
    assert error.reason == "TOO_MANY_STREAMS"
    assert "'aud'" in error.message and "streams_per_participant = 2" in error.message
    slots.enter("aud", stream=False)  # unary calls still fit in the participant's calls
    slots.enter("acme", stream=True)  # another participant has its own allowance
    slots.leave("aud", stream=True)
    slots.enter("aud", stream=True)
    assert slots.open_streams_of("aud") == 2 and slots.open_calls("aud") == 3


def test_calls_per_participant_include_streams() -> None:
    slots = CallSlots(Limits(calls_per_participant=3))
    for stream in (True, True, False):
        slots.enter("plant", stream=stream)
    for stream in (True, False):
        error = refused(slots, "plant", stream=stream)
        assert error.reason == "TOO_MANY_CALLS" and "per_participant = 3" in error.message
    slots.leave("plant", stream=False)
    slots.enter("plant", stream=False)


def test_anonymous_callers_share_one_small_allowance() -> None:
    slots = CallSlots(Limits(calls_anonymous_calls=3, calls_anonymous_streams=1))
    slots.enter(ANONYMOUS, stream=True)
    error = refused(slots, ANONYMOUS, stream=True)
    assert error.reason == "TOO_MANY_STREAMS"
    assert "anonymous" in error.message and "client certificate" in error.message
    assert "anonymous_streams = 1" in error.message
    slots.enter(ANONYMOUS, stream=False)
    slots.enter(ANONYMOUS, stream=False)
    assert refused(slots, ANONYMOUS, stream=False).reason == "TOO_MANY_CALLS"
    slots.enter("acme", stream=True)  # identified callers do not spend it


def test_streams_never_take_more_than_half_the_threads() -> None:
    limits = Limits(transport_max_workers=8, calls_max_streams=16, calls_streams_per_participant=8)
    assert limits.stream_slots == 4
    slots = CallSlots(limits)
    for who in ("a", "b", "c", "d"):
        slots.enter(who, stream=True)
    error = refused(slots, "e", stream=True)
    assert error.reason == "SERVER_BUSY" and "max_streams" in error.message and "retry" in error.message
    slots.enter("e", stream=False)  # a unary call is not a stream
    slots.leave("a", stream=True)
    slots.enter("e", stream=True)
    assert slots.open_streams() == 4


def test_a_refusal_counts_nothing() -> None:
    slots = CallSlots(Limits(calls_max_streams=1))
    slots.enter("a", stream=True)
    refused(slots, "b", stream=True)
    assert slots.open_calls("b") == 0 and slots.open_streams_of("b") == 0 and slots.open_streams() == 1


def test_calls_limits_are_in_the_config_file() -> None:
    limits = parse_limits("[calls]\nper_participant = 5\nanonymous_streams = 2\nstream_idle_seconds = 3\n")
    assert limits.calls_per_participant == 5 and limits.calls_anonymous_streams == 2
    assert limits.calls_stream_idle_seconds == 3.0
    text = limits_toml(Limits())
    assert "[calls]" in text and "max_streams = 16" in text and "anonymous_streams = 4" in text
    assert parse_limits(text) == Limits()
