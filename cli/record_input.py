"""Reading records for `lotledger append`: protobuf JSON mapping in, signed records out."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any, TextIO

from google.protobuf import json_format

from lotledger.cli.output import ExitCode, fail
from lotledger.ledger.core.records import sign
from lotledger.signing.keys import SigningKey
from lotledger.v1 import records_pb2


def parse_documents(stream: TextIO, name: str, *, lines: bool) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, object) for each record: one JSON document, or JSON Lines. Raises CommandFailed."""
    if not lines:
        text = stream.read()
        try:
            doc = json.loads(text)
        except json.JSONDecodeError:
            yield from _json_lines(text.splitlines(), name)  # `-` may carry JSON Lines
            return
        for i, item in enumerate(doc if isinstance(doc, list) else [doc]):
            yield f"{name}[{i}]", _object(item, f"{name}[{i}]")
        return
    yield from _json_lines(stream, name)


def _json_lines(lines: Any, name: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{name}:{number}"
        try:
            yield where, _object(json.loads(line), where)
        except json.JSONDecodeError as e:
            fail(f"{where}: not JSON: {e.msg}", ExitCode.USAGE)


def _object(item: Any, where: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        fail(f'{where}: a record must be a JSON object such as {{"shipment": {{...}}}}', ExitCode.USAGE)
    return item


def build_record(obj: dict[str, Any], where: str, participant: str | None) -> records_pb2.Record:
    """A Record from its JSON form, filling record_id (a UUID), submitter and created_at.
    Set record_id yourself to make re-running the same file idempotent."""
    record = records_pb2.Record()
    try:
        json_format.ParseDict(obj, record)
    except json_format.ParseError as e:
        fail(f"{where}: {e}", ExitCode.USAGE)
    if not record.record_id:
        record.record_id = str(uuid.uuid4())
    if not record.submitter:
        if not participant:
            fail(f"{where}: no submitter: pass --participant or set LOTLEDGER_PARTICIPANT", ExitCode.USAGE)
        record.submitter = participant
    if not record.HasField("created_at"):
        record.created_at.GetCurrentTime()
    return record


def signed_records(
    docs: Iterator[tuple[str, dict[str, Any]]], key: SigningKey, participant: str | None
) -> Iterator[tuple[str, records_pb2.Record, records_pb2.SignedRecord]]:
    for where, obj in docs:
        record = build_record(obj, where, participant)
        yield where, record, sign(record, key)
