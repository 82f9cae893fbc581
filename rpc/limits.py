"""The server's limits: one configuration, safe defaults in code, read from a TOML file.

Pure: `parse_limits` takes the file's text, `limits_toml` renders the effective values (what
`lotledger serve --print-config` prints); reading the file is the CLI's job. Unknown keys and
unsafe values are refused, so a typo never silently leaves a limit at its default.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, fields, replace
from datetime import timedelta
from typing import Any

from lotledger.ledger.core.sizes import MAX_MESSAGE_BYTES, MAX_RECORD_BYTES
from lotledger.ledger.core.validation import DEFAULT_MAX_SKEW
from lotledger.ledger.errors import ConfigError


@dataclass(frozen=True)
class Limits:
    """Every limit the server enforces. Field names are `<section>_<key>` of the TOML file."""

    # [transport]: gRPC options
    transport_max_message_bytes: int = MAX_MESSAGE_BYTES  # one request, after which RESOURCE_EXHAUSTED
    transport_max_workers: int = 32  # request threads
    transport_max_concurrent_rpcs: int = 128  # calls beyond it are refused RESOURCE_EXHAUSTED by gRPC
    # HTTP/2 BDP probing (1 on, 0 off) grows each stream's receive window towards the link's
    # bandwidth-delay product: faster streams over long links, but a client that sends and reads
    # no answers can then park many MB per stream in gRPC's buffers (measured: 16 such streams
    # took the server from 70 MB to 0.2-1.4 GB; off, 130-150 MB). Off keeps a stream's window at
    # gRPC's 64 KiB, or the message being received.
    transport_bdp_probe: int = 0
    # [append]: per participant (the key's owner; the mTLS identity once that is on)
    append_rate: float = 2000.0  # records per second, refilled continuously
    append_burst: int = 20000  # records at once after an idle spell
    append_records_per_message: int = 1000
    append_records_per_stream: int = 1_000_000
    append_streams_per_participant: int = 4
    append_stream_window: int = 16  # messages in flight per stream before the server stops reading
    append_stream_window_bytes: int = 8 * 1024 * 1024  # and their bytes (one message always fits)
    append_stream_idle_seconds: float = 5.0  # a stream that sends nothing this long is ended (STREAM_IDLE)
    append_stream_stall_seconds: float = 30.0  # a stream whose client reads no answers this long is cancelled
    # [calls]: every call, of every service, counted from the moment it opens (lotledger.rpc.gate).
    # "Participant" is the identity the client certificate names; callers without one (no
    # certificate, or any caller of a plaintext server) share the anonymous allowance.
    calls_per_participant: int = 16  # calls of one participant open at once, streams included
    calls_streams_per_participant: int = 4  # streaming calls of one participant open at once
    calls_anonymous_calls: int = 16  # calls of all anonymous callers together
    calls_anonymous_streams: int = 4  # streaming calls of all anonymous callers together
    calls_max_streams: int = 16  # streaming calls of everyone, and at most half of max_workers (see `stream_slots`)
    calls_stream_idle_seconds: float = 10.0  # a stream waiting this long for its client's next message is cancelled
    calls_stream_stall_seconds: float = 30.0  # a stream whose client takes no answer this long is cancelled
    # [time]: created_at must lie in [now - max_age, now + max_future_skew] by the server's clock
    time_max_future_skew_seconds: float = DEFAULT_MAX_SKEW.total_seconds()
    time_max_age_seconds: float = 7 * 24 * 3600.0

    @property
    def stream_slots(self) -> int:
        """How many streaming calls may be open at once, all callers together: `calls_max_streams`,
        and never more than half the request threads. A stream holds its thread for as long as
        it is open (gRPC's sync server), so the other half is kept for unary calls and reads."""
        return max(1, min(self.calls_max_streams, self.transport_max_workers // 2))

    @property
    def max_future_skew(self) -> timedelta:
        return timedelta(seconds=self.time_max_future_skew_seconds)

    @property
    def max_age(self) -> timedelta:
        return timedelta(seconds=self.time_max_age_seconds)


SECTIONS = ("transport", "append", "calls", "time")
# The smallest value each limit may take: below it the service cannot work (or a record fits no message).
_MINIMUM: dict[str, float] = {
    "transport_max_message_bytes": MAX_RECORD_BYTES + 1024,
    "transport_max_workers": 2,
    "transport_max_concurrent_rpcs": 2,
    "transport_bdp_probe": 0,
    "append_rate": 0.001,
    "append_burst": 1,
    "append_records_per_message": 1,
    "append_records_per_stream": 1,
    "append_streams_per_participant": 1,
    "append_stream_window": 1,
    "append_stream_window_bytes": 64 * 1024,
    "append_stream_idle_seconds": 0.01,
    "append_stream_stall_seconds": 0.01,
    "calls_per_participant": 1,
    "calls_streams_per_participant": 1,
    "calls_anonymous_calls": 1,
    "calls_anonymous_streams": 1,
    "calls_max_streams": 1,
    "calls_stream_idle_seconds": 0.01,
    "calls_stream_stall_seconds": 0.01,
    "time_max_future_skew_seconds": 0.0,
    "time_max_age_seconds": 1.0,
}
_MAXIMUM: dict[str, float] = {"transport_max_message_bytes": 64 * 1024 * 1024, "transport_bdp_probe": 1}


def parse_limits(text: str, base: Limits | None = None) -> Limits:
    """The limits a TOML document sets, on top of `base` (the defaults). Raises ConfigError
    for bad TOML, an unknown section or key, a value of the wrong type, or one out of range."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"the limits file is not valid TOML: {e}") from e
    except (ValueError, TypeError, RecursionError) as e:  # tomllib's own, for pathological input
        raise ConfigError(f"the limits file cannot be read: {e}") from e
    types = {f.name: f.type for f in fields(Limits)}
    changes: dict[str, Any] = {}
    for section, table in doc.items():
        if section not in SECTIONS or not isinstance(table, dict):
            raise ConfigError(f"unknown section [{section}]; the sections are {', '.join(SECTIONS)}", field=section)
        for key, value in table.items():
            name = f"{section}_{key}"
            if name not in types:
                raise ConfigError(f"unknown key {key!r} in [{section}]", field=f"{section}.{key}")
            changes[name] = _checked(name, f"{section}.{key}", value, types[name])
    return replace(base or Limits(), **changes)


def _checked(name: str, where: str, value: Any, kind: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where} must be a number, not {value!r}", field=where)
    if kind in (int, "int") and not isinstance(value, int):
        raise ConfigError(f"{where} must be a whole number, not {value!r}", field=where)
    if not math.isfinite(value):
        raise ConfigError(f"{where} must be finite", field=where)
    low, high = _MINIMUM[name], _MAXIMUM.get(name, math.inf)
    if not low <= value <= high:
        bound = f"at least {low:g}" + (f" and at most {high:g}" if high != math.inf else "")
        raise ConfigError(f"{where} = {value!r} is out of range: it must be {bound}", field=where)
    return float(value) if kind in (float, "float") else int(value)


def limits_toml(limits: Limits) -> str:
    """The effective limits as a TOML document that `parse_limits` reads back to the same values."""
    lines = ["# lotledger serve limits (effective values)"]
    for section in SECTIONS:
        lines += ["", f"[{section}]"]
        for f in fields(limits):
            if f.name.startswith(section + "_"):
                value = getattr(limits, f.name)
                lines.append(f"{f.name[len(section) + 1 :]} = {value!r}")
    return "\n".join(lines) + "\n"
