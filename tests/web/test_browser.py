"""End to end in a real headless browser: Debian's chromium driven by Playwright (its own
driver; no browser download), against the demo ledger behind the real web app on waitress.

Each test saves screenshots to test-artifacts/web/ (or $LOTLEDGER_TEST_ARTIFACTS/web) and
fails on any console error or uncaught page error. Without /usr/bin/chromium the tests skip,
except with LOTLEDGER_REQUIRE_BROWSER set (`.ci/run` sets it, after installing chromium),
where that is a failure.
"""

from __future__ import annotations

import base64
import csv
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lotledger.signing.note import NoteVerifier
from lotledger.web.app import create_app
from lotledger.web.source import LedgerSource

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("LOTLEDGER_TEST_ARTIFACTS", "test-artifacts")) / "web"
B1001 = "01/09520000000042/10/B-1001"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def launch_chromium(playwright: Any) -> Any:
    """Debian's chromium with the flags this machine's closed network needs (shared with
    bench/web.py)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@pytest.fixture(scope="module")
def base_url(source: LedgerSource, log_key: NoteVerifier) -> Iterator[str]:
    from waitress.server import create_server

    httpd: Any = create_server(create_app(source, log_key), host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=httpd.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.effective_port}"
    finally:
        httpd.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        if os.environ.get("LOTLEDGER_REQUIRE_BROWSER"):
            pytest.fail("chromium is not installed: .ci/run installs Debian's chromium")
        pytest.skip("needs Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()


class Page:
    """A page that records console errors, and screenshots under the test's name."""

    def __init__(self, browser: Any, name: str):
        self.context = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.name = name
        ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def shot(self, label: str) -> None:
        self.page.screenshot(path=str(ARTIFACTS / f"{self.name}-{label}.png"), full_page=True)


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Page]:
    p = Page(browser, request.node.name.removeprefix("test_"))
    try:
        yield p
        assert p.errors == [], f"console errors: {p.errors}"
    finally:
        p.context.close()


def wait_until(page: Any, expression: str, timeout: float = 30.0) -> None:
    """Poll an expression from outside the page: Playwright's wait_for_function evaluates a string
    inside the page, which the app's Content-Security-Policy (no eval) rightly refuses."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        time.sleep(0.05)


def wait_for_graph(page: Any) -> None:
    wait_until(page, "performance.getEntriesByName('graph-interactive').length > 0")


def test_search_trace_click_a_node_and_open_its_record(base_url: str, page: Page) -> None:
    p = page.page
    p.goto(base_url + "/")
    page.shot("search")
    p.fill("#q", "(01)09520000000042(10)B-1001")
    p.press("#q", "Enter")
    p.wait_for_url(lambda url: "/trace?lot=" in url)
    wait_for_graph(p)
    assert p.inner_text("#center-lot") == B1001
    assert p.evaluate("window.lotledgerGraph.nodes().length") == 16
    page.shot("trace")
    # click the milk lot on the canvas itself: the panel shows its records and the trace re-centers
    box = p.locator("#graph").bounding_box()
    pos = p.evaluate(
        "(() => window.lotledgerGraph.getElementById('lot:01/09520000000028/10/MK-201').renderedPosition())()"
    )
    p.mouse.click(box["x"] + pos["x"], box["y"] + pos["y"])
    p.wait_for_url(lambda url: "MK-201" in url)
    p.wait_for_selector("#panel .record-row a")
    assert p.inner_text("#center-lot") == "01/09520000000028/10/MK-201"
    assert "EXPIRED_USE" in p.inner_text("#panel")
    page.shot("recentered")
    p.click("#panel .record-row a >> nth=0")
    p.wait_for_url("**/record/*")
    assert "Signed by" in p.inner_text("main")
    page.shot("record")


MK201 = "01/09520000000028/10/MK-201"

# What a reader of the first view sees, measured by Cytoscape itself (rendered pixels): the size
# of every label, every label's box, every node's box, and where the graph's box is.
GRAPH_FACTS = """() => {
  const cy = window.lotledgerGraph, z = cy.zoom();
  const box = (b) => ({x1: b.x1, y1: b.y1, x2: b.x2, y2: b.y2});
  const labelled = cy.elements().filter((e) => (e.isNode() ? e.data('text') : e.data('quantity')));
  return {
    zoom: z,
    width: cy.width(), height: cy.height(),
    labels: labelled.map((e) => ({
      id: e.id(), node: e.isNode(), text: e.isNode() ? e.data('text') : e.data('quantity'),
      px: parseFloat(e.style('font-size')) * z, hidden: parseFloat(e.style('min-zoomed-font-size')),
      box: box(e.renderedBoundingBox({includeNodes: false, includeEdges: false, includeLabels: true, includeOverlays: false})),
    })),
    nodes: cy.nodes().map((n) => ({
      id: n.id(), alerted: !!n.data('alerted'), center: n.hasClass('center'),
      x: n.renderedPosition('x'), y: n.renderedPosition('y'), w: n.renderedWidth(), h: n.renderedHeight(),
      box: box(n.renderedBoundingBox({includeLabels: false, includeOverlays: false})),
    })),
  };
}"""


def _overlap(a: dict[str, float], b: dict[str, float], slack: float = 0.5) -> bool:
    return (
        a["x1"] < b["x2"] - slack
        and b["x1"] < a["x2"] - slack
        and a["y1"] < b["y2"] - slack
        and b["y1"] < a["y2"] - slack
    )


def _alert_red(image: Any, x: float, y: float, direction: int) -> bool:
    """A pixel of the alert ring's red (#d50000, not QC FAIL's #c62828 fill) in the 9 pixels
    just outside a box's side at (x, y), going `direction` (-1 left, 1 right) away from it."""
    for step in range(1, 10):
        r, g, b = image.getpixel((round(x) + direction * step, round(y)))[:3]
        if r > 190 and g < 30 and b < 30:
            return True
    return False


@pytest.mark.parametrize("viewport", [(1366, 768), (1920, 1080)], ids=["1366x768", "1920x1080"])
@pytest.mark.parametrize("lot", [B1001, MK201], ids=["B-1001", "MK-201"])
def test_the_first_view_of_a_trace_is_readable(base_url: str, page: Page, viewport: tuple[int, int], lot: str) -> None:
    """At a laptop's and a desktop's screen: every label at least 11 px, no label on another
    or on a box it does not belong to, the whole trace in view, every flow pointing right, and
    the red alert border visible on every node that has one (the searched lot included)."""
    from PIL import Image

    p = page.page
    p.set_viewport_size({"width": viewport[0], "height": viewport[1]})
    p.goto(f"{base_url}/trace?lot={lot}")
    wait_for_graph(p)
    facts = p.evaluate(GRAPH_FACTS)
    small = [(x["text"], round(x["px"], 1)) for x in facts["labels"] if x["px"] < 11]
    assert small == [], f"labels under 11 px at zoom {facts['zoom']:.3f}"
    assert all(x["px"] > x["hidden"] for x in facts["labels"]), "every label is drawn"
    labels, nodes = facts["labels"], facts["nodes"]
    clashes = [
        (a["text"], b["text"]) for i, a in enumerate(labels) for b in labels[i + 1 :] if _overlap(a["box"], b["box"])
    ]
    assert clashes == [], "labels overlap"
    for x in labels:
        for n in nodes:
            inside = x["node"] and x["id"] == n["id"]
            if inside:  # a box's text stays in the box
                assert n["box"]["x1"] <= x["box"]["x1"] + 1 and x["box"]["x2"] <= n["box"]["x2"] + 1, x["text"]
                assert n["box"]["y1"] <= x["box"]["y1"] + 1 and x["box"]["y2"] <= n["box"]["y2"] + 1, x["text"]
            else:
                assert not _overlap(x["box"], n["box"]), f"{x['text']!r} lies on {n['id']}"
    for n in nodes:  # the whole trace in view
        assert n["box"]["x1"] >= 0 and n["box"]["y1"] >= 0, n["id"]
        assert n["box"]["x2"] <= facts["width"] and n["box"]["y2"] <= facts["height"], n["id"]
    graph = p.evaluate("JSON.parse(document.getElementById('graph-data').textContent)")
    at = {n["id"]: n for n in graph["nodes"]}
    assert all(at[e["source"]]["x"] < at[e["target"]]["x"] for e in graph["edges"]), "every flow points right"
    from lotledger.web.graph import crossings

    assert crossings(graph) == 0
    alerted = [n for n in nodes if n["alerted"]]
    assert alerted, "the demo has alerted lots in every trace here"
    shot = ARTIFACTS / f"{page.name}.png"
    p.locator("#graph").screenshot(path=str(shot))
    image = Image.open(shot).convert("RGB")
    for n in nodes:  # on each side of every alerted box, and of no other
        for side in (-1, 1):
            seen = _alert_red(image, n["x"] + side * n["w"] / 2, n["y"], side)
            assert seen == n["alerted"], f"alert ring on {n['id']}: expected {n['alerted']}, seen {seen}"
    (focus,) = [n for n in nodes if n["center"]]
    if lot == MK201:
        assert focus["alerted"], "MK-201 has EXPIRED_USE: its red ring shows inside the focus halo"


def test_node_clicks_make_history_entries(base_url: str, page: Page) -> None:
    """A click re-centres the trace and pushes a history entry: back, forward, reload and a
    copied link all show the lot the URL names."""
    p = page.page
    p.goto(f"{base_url}/trace?lot={B1001}")
    wait_for_graph(p)
    before = p.evaluate("history.length")
    box = p.locator("#graph").bounding_box()
    pos = p.evaluate(f"window.lotledgerGraph.getElementById('lot:{MK201}').renderedPosition()")
    p.mouse.click(box["x"] + pos["x"], box["y"] + pos["y"])
    p.wait_for_url(lambda url: "MK-201" in url)
    wait_until(p, f"document.getElementById('center-lot').textContent === '{MK201}'")
    assert p.evaluate("history.length") == before + 1
    assert p.title().startswith(f"Trace {MK201}")
    assert p.get_attribute("#recall-link", "href") == f"/recall?lot={MK201.replace('/', '%2F')}"
    p.go_back()
    p.wait_for_url(lambda url: "B-1001" in url)
    wait_until(p, f"document.getElementById('center-lot').textContent === '{B1001}'")
    wait_until(p, "window.lotledgerGraph.nodes().length === 16")
    p.go_forward()
    p.wait_for_url(lambda url: "MK-201" in url)
    wait_until(p, f"document.getElementById('center-lot').textContent === '{MK201}'")
    shared = p.url
    p.goto(shared)  # a bookmark or a link from a colleague
    wait_for_graph(p)
    assert p.inner_text("#center-lot") == MK201
    assert p.evaluate("window.lotledgerGraph.nodes('.center').id()") == f"lot:{MK201}"
    page.shot("after-back-forward")


@pytest.mark.parametrize("width", [1366, 390])
def test_codes_never_wrap_mid_code_and_roots_are_hex(base_url: str, page: Page, width: int) -> None:
    p = page.page
    p.set_viewport_size({"width": width, "height": 900})
    p.goto(base_url + "/alerts")
    keys = p.locator("#alert-table .key")
    assert keys.count() >= 8  # a lot column and at least a lot key and a record id per message
    lines = p.evaluate("Array.from(document.querySelectorAll('#alert-table .key'), (k) => k.getClientRects().length)")
    assert set(lines) == {1}, "every lot key and record id on one line"
    assert "[entry 38, record demo/ship/SH-5004]" in p.inner_text("#alert-table")
    page.shot(f"alerts-{width}")
    p.goto(base_url + "/status")
    assert re.fullmatch(r"[0-9a-f]{64}", p.inner_text("#root-hash"))
    p.click("#verify-checkpoint")
    result = p.wait_for_selector("#checkpoint-result .ok").inner_text()
    assert re.search(r"root [0-9a-f]{64}", result), result
    p.goto(base_url + "/record/30")
    p.click("button.verify")
    p.wait_for_selector(".verify-result[data-verified]")
    assert re.search(r"leaf [0-9a-f]{64}", p.inner_text(".verify-result"))


def test_graph_filters_and_keyboard(base_url: str, page: Page) -> None:
    p = page.page
    p.goto(f"{base_url}/trace?lot={B1001}")
    wait_for_graph(p)
    visible = "window.lotledgerGraph.nodes().length"
    p.select_option("#depth", "1")
    assert p.evaluate(visible) == 6  # the lot, its dough, its four shipments
    p.select_option("#depth", "0")
    p.uncheck("input[value=customer]")
    assert p.evaluate(visible) == 12
    # keyboard only: tab to the table's first row button and open it
    p.focus("#node-table tbody button")
    p.keyboard.press("Enter")
    p.wait_for_selector("#panel .record-row")
    page.shot("filtered")


def test_recall_and_csv_download(base_url: str, page: Page, tmp_path: Path) -> None:
    p = page.page
    p.goto(base_url + "/recall")
    p.fill("#supplier_lot", "D-88")
    p.fill("#reason", "Listeria in retained sample")
    p.click("form.recall-form button[type=submit]")
    p.wait_for_selector("#open-table")
    assert "plant/SH-5002" in p.inner_text("#open-table")
    assert "North Foods Distribution" in p.inner_text("#consignee-table")
    page.shot("recall")
    with p.expect_download() as info:
        p.click("#dl-csv")
    path = tmp_path / "recall.csv"
    info.value.save_as(path)
    rows = list(csv.DictReader(path.open()))
    assert {r["shipment_id"] for r in rows} >= {"plant/SH-5001", "plant/SH-5002"}
    assert info.value.suggested_filename.startswith("recall-consignments-")
    p.emulate_media(media="print")
    assert p.locator("header.top").is_hidden() and p.locator("#balance-table").is_visible()
    page.shot("recall-print")


def test_verify_a_record_in_the_browser(base_url: str, page: Page) -> None:
    p = page.page
    p.goto(base_url + "/record/30")
    p.click("button.verify")
    result = p.wait_for_selector(".verify-result[data-verified]")
    assert result.get_attribute("data-verified") == "yes"
    text = p.inner_text(".verify-result")
    assert "is included" in text and "signed by qa's registered key" in text
    assert "it is record demo/qc/B-1001/micro, a quality check by qa, created 2026-10-01T22:00:00.000Z" in text
    p.click(".verify-result summary")
    page.shot("verified")
    # a page that shows another record than the one the proof is for (as a lying server would)
    p.reload()
    p.evaluate("document.querySelector('button.verify').dataset.recordId = 'demo/qc/other'")
    p.click("button.verify")
    p.wait_for_selector(".verify-result[data-verified]")
    assert "the page shows record id demo/qc/other" in p.inner_text(".verify-result")
    # the same check beside every alert and every open shipment of a recall
    for path, row in (
        ("/alerts?rule=SHIPPED_FAILING_QC", "#alert-table"),
        ("/recall?supplier_lot=D-88", "#open-table"),
    ):
        p.goto(base_url + path)
        p.click(f"{row} button.verify >> nth=0")
        p.wait_for_selector(f"{row} .verify-result[data-verified]")
        assert p.get_attribute(f"{row} .verify-result[data-verified]", "data-verified") == "yes", path
    p.goto(base_url + "/status")
    p.click("#verify-checkpoint")
    assert "signed by the log key" in p.wait_for_selector("#checkpoint-result .ok").inner_text()


@pytest.mark.parametrize(
    "tamper", ["proof", "entry", "checkpoint", "key", "another-entry", "origin", "bad-signature-line"]
)
def test_a_tampered_proof_fails_visibly(base_url: str, page: Page, tamper: str, demo_ledger: tuple[str, Path]) -> None:
    """A proxy in the browser (Playwright's route) rewrites the server's answer. The last three
    are all made of valid parts: another entry's genuine proof; a checkpoint for another origin
    signed by the real log key; a note with a bad line under the log's name before a good one."""
    from lotledger.signing.keys import SigningKey
    from lotledger.signing.note import NoteSigner, parse_note

    p = page.page
    log_key = SigningKey.load(demo_ledger[1] / "keys" / "log.key")

    def flip(b64: str, at: int = 5) -> str:
        raw = bytearray(base64.b64decode(b64))
        raw[at] ^= 0x01
        return base64.b64encode(bytes(raw)).decode()

    def rewrite(route: Any) -> None:
        response = route.fetch()
        body = response.json()
        if tamper == "proof":
            body["proof"][0] = flip(body["proof"][0])
        elif tamper == "entry":
            body["entry"] = flip(body["entry"], 40)
        elif tamper == "checkpoint":
            lines = body["checkpoint"].split("\n")
            lines[1] = str(int(lines[1]) + 1)  # claim a bigger tree under the same signature
            body["checkpoint"] = "\n".join(lines)
        elif tamper == "key":  # the registration entry of another participant's key
            body["key_entry"] = p.request.get(f"{base_url}/api/proof/2").json()["key_entry"]
        elif tamper == "another-entry":
            body = p.request.get(f"{base_url}/api/proof/29").json()
        else:
            note_body, signatures = parse_note(body["checkpoint"].encode())
            if tamper == "origin":
                other = note_body.replace(b"demo.example.com/lotledger\n", b"other.example.com/log\n", 1)
                signed = NoteSigner("demo.example.com/lotledger", log_key).sign(other)
                body["checkpoint"] = other.decode() + "\n" + signed
            else:
                good = body["checkpoint"].split("\n\n", 1)[1]
                bad = NoteSigner("demo.example.com/lotledger", log_key).sign(b"something else\n")
                body["checkpoint"] = note_body.decode() + "\n" + bad + good
        route.fulfill(response=response, json=body)

    p.route("**/api/proof/30", rewrite)
    p.goto(base_url + "/record/30")
    p.click("button.verify")
    result = p.wait_for_selector(".verify-result[data-verified]")
    assert result.get_attribute("data-verified") == "no"
    assert p.locator(".verify-result .failed").is_visible()
    why = {
        "proof": "the proof leads to root",
        "entry": "the proof leads to root",
        "checkpoint": "does not verify",
        "key": "registers another key",
        "another-entry": "a proof for entry 29, not 30",
        "origin": "the checkpoint is for other.example.com/log",
        "bad-signature-line": "does not verify",
    }[tamper]
    shown = p.inner_text(".verify-result")
    assert "FAILED" in shown and why in shown, shown
    page.shot(tamper)


UNLABELLED = """() => Array.from(document.querySelectorAll('input, select, textarea, button'))
    .filter(el => el.type !== 'hidden' && el.offsetParent !== null)
    .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.textContent.trim())
    .map(el => el.outerHTML)"""


# Visible text smaller than 11 px (what the readers could not read).
SMALL_TEXT = """() => Array.from(document.querySelectorAll('body *'))
    .filter(el => Array.from(el.childNodes).some(c => c.nodeType === 3 && c.textContent.trim()))
    .filter(el => el.getClientRects().length && getComputedStyle(el).visibility !== 'hidden')
    .filter(el => parseFloat(getComputedStyle(el).fontSize) < 11)
    .map(el => `${el.tagName}.${el.className}: ${getComputedStyle(el).fontSize}`)"""


@pytest.mark.parametrize("width", [1400, 390])
def test_every_page_is_labelled_and_fits_the_screen(
    base_url: str, page: Page, width: int, source: LedgerSource
) -> None:
    p = page.page
    p.set_viewport_size({"width": width, "height": 900})
    pages = [
        "/",
        f"/trace?lot={B1001}",
        "/recall?supplier_lot=D-88",
        "/alerts?rule=EXPIRED_USE",
        "/status",
        "/record/30",
    ]
    for path in pages:
        p.goto(base_url + path)
        if path.startswith("/trace"):
            wait_for_graph(p)
        assert p.evaluate(UNLABELLED) == [], path
        assert p.evaluate(SMALL_TEXT) == [], path
        assert p.evaluate("document.querySelector('main h1') !== null"), path
        # nothing but wide tables (which scroll in their own box) may push the page sideways
        assert p.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), path
        name = path.strip("/").split("?")[0] or "search"
        page.shot(f"{width}-{name.replace('/', '-')}")
    p.goto(base_url + "/alerts?rule=EXPIRED_USE")
    assert p.locator("#alert-table tbody tr").count() == len(source.alerts("EXPIRED_USE")) >= 2


@pytest.fixture(scope="module")
def big_trace(tmp_path_factory: pytest.TempPathFactory, log_key: NoteVerifier) -> Iterator[tuple[str, str]]:
    """(base URL, raw lot) of a web app over a ledger whose raw lot reaches about 3,000 nodes."""
    from fanout import write_fan_outs
    from helpers import ORIGIN, make_world
    from waitress.server import create_server

    from lotledger.ledger.log import LedgerConfig
    from lotledger.rpc.client import LedgerClient
    from lotledger.rpc.server import LedgerServer

    world, ledger = make_world(tmp_path_factory.mktemp("big"))
    try:
        lot = write_fan_outs(ledger, world.keys["plant"], [3000])[3000]
    finally:
        ledger.close()
    server = LedgerServer(world.data_dir, "127.0.0.1:0", config=LedgerConfig(checkpoint_interval=0.05)).start()
    source = LedgerSource(lambda: LedgerClient(server.address))
    app = create_app(source, NoteVerifier.from_key(ORIGIN, world.log_key.public))
    httpd: Any = create_server(app, host="127.0.0.1", port=0, threads=4)
    threading.Thread(target=httpd.run, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.effective_port}", lot
    finally:
        httpd.close()
        source.close()
        server.stop(grace=1)


def test_a_trace_of_thousands_opens_collapsed_and_expands(big_trace: tuple[str, str], page: Page) -> None:
    base, lot = big_trace
    p = page.page
    p.goto(f"{base}/trace?lot={lot}")
    wait_for_graph(p)
    total = p.evaluate("JSON.parse(document.getElementById('graph-data').textContent).nodes.length")
    assert total > 2500
    assert p.input_value("#depth") == "1"
    assert p.evaluate("window.lotledgerGraph.nodes().length") == 601  # the raw lot, its supplier, 599 lots made from it
    assert p.locator("#graph canvas.preview").count() == 0  # the picture gave way to the graph
    assert "601 shown" in p.inner_text("#graph-summary")
    page.shot("collapsed")
    p.select_option("#depth", "0")
    wait_until(p, f"window.lotledgerGraph && window.lotledgerGraph.nodes().length === {total}", 60)
    p.uncheck("input[value=shipment]")
    wait_until(p, "window.lotledgerGraph && window.lotledgerGraph.nodes().length === 602")  # and the receiver
    page.shot("expanded-without-shipments")
