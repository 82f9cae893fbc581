"""The read-only web app (Flask): lot search, trace graph, recall report with downloads, alerts,
log status, and record pages whose inclusion proofs the browser checks itself.

Views are thin: they parse the query string, ask the LedgerSource (gRPC, web/source.py) and
render. Nothing here writes to the ledger. Every page is plain HTML that works without
JavaScript except the graph and the in-browser proof check; all scripts and styles are served
from the package (no CDN), and the Content-Security-Policy forbids anything else.

What a client sends never makes a 500. Statuses (JSON `{"error", "reason"}` under /api/, the
error page elsewhere): 400 for a malformed or out-of-range query value (a lot key, a number in
anything but ASCII digits or past what its wire field holds: depth a uint32, since a uint64, an
unknown alert rule, too many lots); 404 for what the ledger does not hold, including an entry
number past uint64 (`/api/entry/<n>`, `/api/proof/<n>`, `/record/<n>` take ASCII digits only);
403 when the ledger server refuses this reader, 429 when it rate-limits, 503 when it does not
answer. tests/web/test_routes_fuzz.py holds every route to it.
"""

from __future__ import annotations

import io
import re
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Flask, Response, abort, jsonify, redirect, render_template, request, send_file, url_for
from markupsafe import Markup, escape
from werkzeug.exceptions import HTTPException
from werkzeug.routing import BaseConverter, ValidationError

from lotledger.ledger.core.validation import parse_lot_key
from lotledger.ledger.errors import (
    LedgerError,
    NotFound,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
    StorageError,
    Unauthenticated,
)
from lotledger.signing.note import NoteVerifier
from lotledger.trace.alerts import RULES
from lotledger.trace.standards.recall_report import (
    Contact,
    Table,
    lots_text,
    tables,
    write_consignments_csv,
)
from lotledger.trace.standards.xlsx import XlsxWriter
from lotledger.web.search import classify, from_gtin
from lotledger.web.source import LedgerSource

HERE = Path(__file__).parent
MAX_RECALL_LOTS = 200
_WHOLE = re.compile(r"[0-9]{1,20}")
# What the wire holds (proto/lotledger/v1): entry numbers and since_seq are uint64, depth uint32.
MAX_SEQ = 2**64 - 1
MAX_DEPTH = 2**32 - 1
ALERT_PAGE = 2000  # rows on the alerts page; the filters narrow it
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'sha256-pgvDUBa4IjFA2yuSJ2cqcyxmNYJMborsd0ORcRv9vw8='; style-src-attr 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


class SeqConverter(BaseConverter):
    """An entry number in a path: ASCII digits (werkzeug's int takes any Unicode digit) up to
    uint64's largest. Anything else matches no route, so it is a 404: no entry has that number."""

    regex = "[0-9]{1,20}"
    part_isolating = True

    def to_python(self, value: str) -> int:
        seq = int(value)
        if seq > MAX_SEQ:
            raise ValidationError()
        return seq

    def to_url(self, value: int) -> str:
        return str(value)


def create_app(source: LedgerSource, log_key: NoteVerifier) -> Flask:
    """The app over one ledger. `log_key` is the trust anchor the pages check proofs against:
    the operator gives it (as for `lotledger verify`); it never comes from the ledger."""
    # instance_path given: Flask cannot find one for a module of a namespace package in an
    # editable install (and the app keeps no instance files).
    app = Flask("lotledger.web", root_path=str(HERE), instance_path=str(HERE / "instance"))
    app.config["JSON_SORT_KEYS"] = False
    app.url_map.converters["seq"] = SeqConverter
    app.jinja_env.globals["log_key"] = log_key.verifier_key
    app.jinja_env.filters["keys"] = keep_codes_whole

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        if request.path.startswith("/api/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(LedgerError)
    def _ledger_error(e: LedgerError) -> tuple[Any, int]:
        code = (
            404
            if isinstance(e, NotFound | OutOfRange)
            else 403
            if isinstance(e, PermissionDenied | Unauthenticated)
            else 429
            if isinstance(e, ResourceExhausted)
            else 400
        )
        return _problem(code, e.message, e.reason)

    @app.errorhandler(StorageError)
    def _unavailable(e: StorageError) -> tuple[Any, int]:
        return _problem(503, f"the ledger server did not answer: {e}", "UNAVAILABLE")

    @app.errorhandler(HTTPException)
    def _http(e: HTTPException) -> tuple[Any, int]:
        return _problem(e.code or 500, e.description or e.name, e.name.upper().replace(" ", "_"))

    @app.get("/")
    def index() -> str:
        return render_template("index.html", status=source.status(), q="")

    @app.get("/search")
    def search() -> Any:
        if request.args.get("gtin") or request.args.get("gtin_lot"):
            query = from_gtin(request.args.get("gtin", ""), request.args.get("gtin_lot", ""))
        else:
            query = classify(request.args.get("q", ""))
        q = request.args.get("q", "")
        if query.problem:
            return render_template("search.html", q=q, problem=query.problem, lots=[]), 400
        if query.lot:
            if not source.lot_exists(query.lot):
                return render_template(
                    "search.html", q=q, problem=f"no lot {query.lot} in the ledger (read as {query.how})", lots=[]
                ), 404
            return redirect(url_for("trace", lot=query.lot))
        lots = source.find_by_supplier_lot(query.supplier_lot_code)
        if len(lots) == 1:
            return redirect(url_for("trace", lot=lots[0]))
        problem = "" if lots else f"no lot key, barcode or supplier lot code matches {q!r}"
        return render_template("search.html", q=q, problem=problem, lots=lots), 200 if lots else 404

    @app.get("/trace")
    def trace() -> str:
        lot = _lot_arg()
        depth = _int_arg("depth", 0, MAX_DEPTH)
        graph = source.trace(lot, depth)
        return render_template("trace.html", lot=lot, graph=graph, depth=depth)

    @app.get("/api/trace")
    def api_trace() -> Response:
        return jsonify(source.trace(_lot_arg(), _int_arg("depth", 0, MAX_DEPTH)))

    @app.get("/record/<seq:seq>")
    def record(seq: int) -> str:
        return render_template("record.html", entry=source.entry(seq))

    @app.get("/api/entry/<seq:seq>")
    def api_entry(seq: int) -> Response:
        return jsonify(source.entry(seq))

    @app.get("/api/proof/<seq:seq>")
    def api_proof(seq: int) -> Response:
        return jsonify(source.proof(seq))

    @app.get("/recall")
    def recall() -> str:
        lots, supplier_lots, reason = _recall_args()
        if not lots and not supplier_lots:
            return render_template("recall.html", report=None, lots=[], supplier_lots=[], reason=reason)
        report = source.recall(lots, reason, supplier_lots)
        directory = source.directory()
        by_consignee: dict[str, list[Any]] = {}
        for c in report.consignments:
            by_consignee.setdefault(c.to_participant, []).append(c)
        return render_template(
            "recall.html",
            report=report,
            lots=lots,
            supplier_lots=supplier_lots,
            reason=reason,
            participants=directory.participants,
            by_consignee=by_consignee,
            lots_text=lots_text,
            query=request.query_string.decode(),
        )

    @app.get("/recall.csv")
    def recall_csv() -> Response:
        lots, supplier_lots, reason = _recall_args()
        report = source.recall(lots, reason, supplier_lots)
        out = io.StringIO(newline="")
        write_consignments_csv(out, report)
        return _download(out.getvalue().encode(), "recall-consignments.csv", "text/csv")

    @app.get("/recall.xlsx")
    def recall_xlsx() -> Response:
        lots, supplier_lots, reason = _recall_args()
        report = source.recall(lots, reason, supplier_lots)
        contacts = {
            pid: Contact(p.business_name, p.phone, p.address) for pid, p in source.directory().participants.items()
        }
        return _workbook(lambda path: _write_tables(XlsxWriter(path), tables(report, contacts)), "recall.xlsx")

    @app.get("/recall-fsma.xlsx")
    def recall_fsma() -> Response:
        from lotledger.audit.fsma import build, trace_lots, write_xlsx
        from lotledger.trace.standards.fsma import Filter

        lots, supplier_lots, reason = _recall_args()
        report = source.recall(lots, reason, supplier_lots)
        keep = Filter(trace_lots(source.client, report.triggers))
        builder = build(source.client, keep)
        return _workbook(lambda path: write_xlsx(builder, path), "recall-fsma204.xlsx")

    @app.get("/alerts")
    def alerts() -> str:
        rule = request.args.get("rule", "")
        if rule and rule not in RULES:
            abort(400, f"unknown rule {rule!r}: one of {', '.join(RULES)}")
        lot_filter = request.args.get("lot", "").strip()
        since = _int_arg("since", 0, MAX_SEQ)
        found = source.alerts(rule, since)
        if lot_filter:
            found = [a for a in found if lot_filter in a.lot]
        return render_template(
            "alerts.html",
            alerts=found[:ALERT_PAGE],
            total=len(found),
            rules=RULES,
            rule=rule,
            lot=lot_filter,
            since=since,
        )

    @app.get("/status")
    def status() -> str:
        return render_template("status.html", status=source.status())

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"ok": True})

    return app


# Lot keys (DESIGN section 3) and the record ids that alert messages end with.
_CODE = re.compile(r"(?:01/[0-9]{14}/10/|item/[^/\s]+/lot/)[^\s,;\[\]()]+|(?<=record )[^\s,;\[\]()]+")


def keep_codes_whole(text: str) -> Markup:
    """`text`, escaped, with every lot key and record id in a `<span class="key">` that does not
    break across lines: "01/0952…/10/" on one line and "MK-201" on the next reads as two codes."""
    out, at = [], 0
    for m in _CODE.finditer(text):
        out += [escape(text[at : m.start()]), Markup('<span class="key">%s</span>') % m.group()]
        at = m.end()
    out.append(escape(text[at:]))
    return Markup("").join(out)


def _problem(code: int, message: str, reason: str) -> tuple[Any, int]:
    if request.path.startswith("/api/"):
        return jsonify({"error": message, "reason": reason}), code
    return render_template("error.html", code=code, message=message, reason=reason), code


def _lot_arg() -> str:
    lot = request.args.get("lot", "").strip()
    if not lot:
        abort(400, "say which lot: ?lot=01/<gtin14>/10/<lot> or item/<code>/lot/<lot>")
    parse_lot_key(lot)  # InvalidRecord (400) names the expected forms
    return lot


def _int_arg(name: str, default: int, maximum: int) -> int:
    """A whole number in ASCII digits from 0 to `maximum` (what its field on the wire holds);
    aborts with 400 otherwise."""
    value = request.args.get(name, "")
    if not value:
        return default
    if not _WHOLE.fullmatch(value) or int(value) > maximum:  # not str.isdigit: it takes "²"
        abort(400, f"{name} must be a whole number from 0 to {maximum}, not {value[:40]!r}")
    return int(value)


def _recall_args() -> tuple[list[str], list[str], str]:
    lots = [x.strip() for v in request.args.getlist("lot") for x in v.split() if x.strip()]
    # One per line: a supplier's lot code is free text (commas included), a lot key has no spaces.
    supplier_lots = [x.strip() for v in request.args.getlist("supplier_lot") for x in v.splitlines() if x.strip()]
    if len(lots) + len(supplier_lots) > MAX_RECALL_LOTS:
        abort(400, f"at most {MAX_RECALL_LOTS} lots per recall")
    for lot in lots:
        parse_lot_key(lot)
    return lots, supplier_lots, request.args.get("reason", "")


def _download(data: bytes, name: str, mimetype: str) -> Response:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    stem, _, ext = name.rpartition(".")
    return send_file(io.BytesIO(data), mimetype=mimetype, as_attachment=True, download_name=f"{stem}-{stamp}.{ext}")


def _workbook(write: Callable[[Path], object], name: str) -> Response:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        write(path)
        data = path.read_bytes()
    return _download(data, name, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")


def _write_tables(writer: XlsxWriter, sheets: list[Table]) -> None:
    with writer as w:
        for t in sheets:
            w.sheet(t.name, t.columns, t.rows)
