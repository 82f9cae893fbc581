"""Running the `lotledger` command in-process, and the one record the CLI tests append."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from lotledger.cli.main import main

SHIPMENT = {
    "shipment": {
        "shipmentId": "SH-100",
        "lots": [{"lot": {"gtin": "09520000000011", "lot": "L7"}, "quantity": {"amount": "12.5", "unit": "KGM"}}],
        "fromParticipant": "acme",
        "toParticipant": "plant",
        "shippedAt": "2026-01-05T10:00:00Z",
    }
}


def run(*args: str, ok: bool = True, input: str | None = None) -> Result:
    result = CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, f"{args}: {result.output}"
    return result


def shipments_file(path: Path, prefix: str, n: int) -> Path:
    """`n` distinct shipments as a .jsonl file (record ids `<prefix>-<i>`)."""
    docs = []
    for i in range(n):
        doc = json.loads(json.dumps(SHIPMENT))
        doc["recordId"], doc["shipment"]["shipmentId"] = f"{prefix}-{i}", f"SHIP-{prefix.upper()}-{i:04d}"
        docs.append(json.dumps(doc))
    path.write_text("\n".join(docs) + "\n")
    return path
