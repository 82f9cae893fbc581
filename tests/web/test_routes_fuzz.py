"""Every web route, fed malformed and out-of-range path and query values, answers with a
documented status (web/app.py: 400 malformed, 404 not in the ledger or beyond any log) and the
error page or JSON that says why, never a 500. Hypothesis drives it over the real demo ledger."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lotledger.signing.note import NoteVerifier
from lotledger.web.app import create_app
from lotledger.web.source import LedgerSource

B1001 = "01/09520000000042/10/B-1001"
# What a route may answer to a client's input: OK, a redirect, or a documented client error.
DOCUMENTED = {200, 302, 400, 404}

NUMBERS = st.one_of(
    st.integers(min_value=0, max_value=2**70).map(str),
    st.sampled_from(
        [
            "18446744073709551615",  # 2**64 - 1: uint64's largest, beyond any log
            "18446744073709551616",  # 2**64
            "99999999999999999999",
            "4294967296",  # 2**32: past a uint32 depth
            "2147483648",
            "9" * 40,
            "-1",
            "+1",
            "0x10",
            "1e3",
            "1.5",
            " 1",
            "00000000000000000000001",
            "\u0661\u0662",  # Arabic-Indic digits
            "\uff11",  # fullwidth 1
            "\u00b2",  # superscript 2: str.isdigit() but not int()
            "",
        ]
    ),
)
TEXT = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=300),
    st.sampled_from(
        [
            "\x00",
            "\u202e",
            "%00",
            "..",
            "../../etc/passwd",
            B1001,
            B1001 + "\u202e",
            "01/09520000000042/10/" + "A" * 5000,
            "item//lot/",
            "01/x/10/y",
            "(01)09520000000042(10)B-1001",
            "(01)" + "9" * 30,
            "]C1" + "0" * 60,
            "https://id.gs1.org/01/09520000000042/10/B-1001",
            "https://id.gs1.org/01/" + "9" * 200,
            "\\x1d" * 50,
            "=HYPERLINK(1)",
        ]
    ),
)
ARGS = ("lot", "depth", "since", "rule", "q", "gtin", "gtin_lot", "supplier_lot", "reason")


@st.composite
def queries(draw: st.DrawFn) -> dict[str, list[str]]:
    names = draw(st.lists(st.sampled_from(ARGS), max_size=4, unique=True))
    out: dict[str, list[str]] = {}
    for name in names:
        values = st.one_of(NUMBERS, TEXT) if name in ("depth", "since", "gtin") else st.one_of(TEXT, NUMBERS)
        out[name] = draw(st.lists(values, min_size=1, max_size=3))
    return out


@pytest.fixture(scope="module")
def app(source: LedgerSource, log_key: NoteVerifier) -> Flask:
    return create_app(source, log_key)


@pytest.fixture(scope="module")
def web(app: Flask) -> Iterator[FlaskClient]:
    yield app.test_client()


def _routes(app: Flask) -> list[str]:
    return sorted(rule.rule for rule in app.url_map.iter_rules())


def _path(rule: str, value: str) -> str:
    return re.sub(r"<[^>]+>", quote(value, safe=""), rule)


def check(web: FlaskClient, path: str, query: dict[str, list[str]] | None = None) -> Any:
    r = web.get(path, query_string=query)
    assert r.status_code in DOCUMENTED, (path, query, r.status_code, r.data[:400])
    if r.status_code >= 400:
        if path.startswith("/api/"):
            assert r.json is not None and r.json["reason"] and r.json["error"], r.data[:200]
        elif not path.startswith("/static/"):
            assert b"<html" in r.data.lower() or b"<!doctype" in r.data.lower(), r.data[:200]
    return r


def test_the_fuzzed_routes_are_all_the_routes(app: Flask) -> None:
    """A new route must get a line in ROUTE_VALUES below (what its path takes)."""
    assert set(_routes(app)) == set(ROUTE_VALUES), set(_routes(app)) ^ set(ROUTE_VALUES)


ROUTE_VALUES: dict[str, st.SearchStrategy[str] | None] = {
    "/": None,
    "/search": None,
    "/trace": None,
    "/api/trace": None,
    "/record/<seq:seq>": NUMBERS,
    "/api/entry/<seq:seq>": NUMBERS,
    "/api/proof/<seq:seq>": NUMBERS,
    "/recall": None,
    "/recall.csv": None,
    "/recall.xlsx": None,
    "/recall-fsma.xlsx": None,
    "/alerts": None,
    "/status": None,
    "/healthz": None,
    "/static/<path:filename>": TEXT,
}


def test_a_20_digit_entry_number_is_a_404(web: FlaskClient) -> None:
    for path in ("/api/entry/", "/api/proof/", "/record/"):
        for number in ("12345678901234567890", "99999999999999999999", "18446744073709551616"):
            r = check(web, path + number)
            assert r.status_code == 404
    assert web.get("/api/entry/99999999999999999999").json["reason"] in {"NOT_FOUND", "OUT_OF_RANGE"}
    assert web.get("/api/entry/\u0661").status_code == 404  # not an entry number at all


def test_numbers_past_what_the_wire_holds_are_a_400(web: FlaskClient) -> None:
    for path in ("/api/trace", "/trace"):  # depth is a uint32
        assert check(web, path, {"lot": [B1001], "depth": ["4294967296"]}).status_code == 400
        assert check(web, path, {"lot": [B1001], "depth": ["4294967295"]}).status_code == 200
    r = check(web, "/alerts", {"since": ["18446744073709551616"]})  # since a uint64
    assert r.status_code == 400 and b"from 0 to 18446744073709551615" in r.data
    assert check(web, "/alerts", {"since": ["18446744073709551615"]}).status_code == 200


@pytest.mark.parametrize("rule", sorted(ROUTE_VALUES))
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)
@given(data=st.data())
def test_no_route_answers_500(web: FlaskClient, rule: str, data: st.DataObject) -> None:
    values = ROUTE_VALUES[rule]
    path = _path(rule, data.draw(values)) if values is not None else rule
    check(web, path, data.draw(queries()))
