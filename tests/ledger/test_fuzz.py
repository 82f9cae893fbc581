"""Property-based fuzzing of everything that parses untrusted bytes (tests/fuzz_targets.py):
random bytes and mutations of a valid input are accepted or refused with our error types,
never another exception. Bounded by the "ci" profile so the suite stays fast; set
HYPOTHESIS_PROFILE=long for a deeper run."""

from __future__ import annotations

import os

import pytest
from fuzz_targets import TARGETS, run, seeds
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

settings.register_profile("ci", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=20_000, deadline=None, suppress_health_check=list(HealthCheck))
PROFILE = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
SEEDS = seeds()


@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = draw(st.integers(0, len(data)))
        if op == "flip" and pos < len(data):
            data[pos] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del data[pos : pos + draw(st.integers(1, 16))]
        else:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_random_bytes_are_accepted_or_refused_with_our_errors(name: str) -> None:
    @PROFILE
    @given(st.binary(max_size=512))
    def check(data: bytes) -> None:
        run(TARGETS[name], data)

    check()


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_mutated_valid_inputs_are_accepted_or_refused_with_our_errors(name: str) -> None:
    @PROFILE
    @given(st.sampled_from(SEEDS[name]).flatmap(mutated))
    def check(data: bytes) -> None:
        run(TARGETS[name], data)

    check()


def test_the_seeds_are_what_the_targets_accept() -> None:
    for name in ("signed_record", "note", "checkpoint_body", "scan", "limits_file"):
        for seed in SEEDS[name]:
            TARGETS[name](seed)
