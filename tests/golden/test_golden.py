"""Golden files: bytes written by the code of 2026-12-06 (tests/golden/make.sh) that every later
version must still read, check and, where it writes the same thing, write byte for byte.

These pin the formats other people's verifiers and saved states depend on: the bundle and its
increment, the verifier state, the evidence files, the tiles, and the JSON the verifiers print.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from lotledger.cli.main import main
from lotledger.ledger.tlog.bundle import BundleReader, BundleWriter
from lotledger.ledger.tlog.tiles import TileBuilder

DATA = Path(__file__).parent / "data"
VKEY = str(DATA / "log.vkey")


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout


def _without_time(doc: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in doc.items() if k != "seconds"}


def test_the_whole_bundle_verifies_with_the_same_report() -> None:
    code, out = _run("verify", "--bundle", str(DATA / "whole.bundle"), "--log-key", VKEY, "--json", "--quiet")
    assert code == 0, out
    expected = json.loads((DATA / "verify-whole.json").read_text())
    assert _without_time(json.loads(out)) == _without_time(expected)


@pytest.mark.parametrize("name", ["whole.bundle", "first.bundle", "increment.bundle"])
def test_bundles_read_and_rewrite_byte_for_byte(name: str) -> None:
    blob = (DATA / name).read_bytes()
    reader = BundleReader(io.BytesIO(blob))
    out = io.BytesIO()
    writer = BundleWriter(out, note=reader.note, increment=reader.increment)
    for item in reader.key_history():
        writer.key_entry(item.seq, item.entry, item.proof)
    for entry in reader.entries():
        writer.entry(entry)
    writer.close()
    assert out.getvalue() == blob


def test_a_verification_saves_the_same_state_bytes(tmp_path: Path) -> None:
    state = tmp_path / "state"
    code, out = _run("verify", "--bundle", str(DATA / "first.bundle"), "--log-key", VKEY, "--state", str(state))
    assert code == 0, out
    assert (state / "verifier.state").read_bytes() == (DATA / "state" / "verifier.state").read_bytes()


def test_an_increment_resumes_the_golden_state_and_saves_the_next(tmp_path: Path) -> None:
    state = tmp_path / "state"
    shutil.copytree(DATA / "state", state)
    code, out = _run(
        "verify", "--bundle", str(DATA / "increment.bundle"), "--log-key", VKEY, "--state", str(state), "--json"
    )
    assert code == 0, out
    report = json.loads(out)
    assert (report["ok"], report["from_size"], report["tree_size"], report["increment"]) == (True, 43, 48, True)
    assert (state / "verifier.state").read_bytes() == (DATA / "state-48" / "verifier.state").read_bytes()


def test_an_increment_without_state_still_verifies() -> None:
    code, out = _run("verify", "--bundle", str(DATA / "increment.bundle"), "--log-key", VKEY, "--json", "--quiet")
    assert code == 0, out
    assert json.loads(out)["entries_checked"] == 5


@pytest.mark.parametrize("name", ["evidence-down.json", "evidence-recall.json"])
def test_evidence_files_verify(name: str) -> None:
    code, out = _run("verify-evidence", str(DATA / name), "--log-key", VKEY, "--json")
    assert code == 0, out
    if name == "evidence-recall.json":
        assert json.loads(out) == json.loads((DATA / "verify-evidence-recall.json").read_text())


def test_tiles_are_the_bundles_entries_byte_for_byte() -> None:
    reader = BundleReader(io.BytesIO((DATA / "whole.bundle").read_bytes()))
    builder = TileBuilder()
    written: dict[str, bytes] = {}
    for entry in reader.entries():
        written.update((tile.path, data) for tile, data in builder.append(entry))
    written.update((tile.path, data) for tile, data in builder.partial())
    tiles = DATA / "tiles"
    on_disk = {str(p.relative_to(tiles)): p.read_bytes() for p in tiles.rglob("*") if p.is_file()}
    assert on_disk.pop("checkpoint") == reader.note
    assert on_disk == written


# ---- a log under rules 2, written by the released code (tests/golden/make-rules2.sh) ----------

RULES2 = Path(__file__).parent / "rules2"


def test_a_rules_2_log_verifies_with_the_same_report() -> None:
    vkey = str(RULES2 / "log.vkey")
    code, out = _run("verify", "--bundle", str(RULES2 / "whole.bundle"), "--log-key", vkey, "--json", "--quiet")
    assert code == 0, out
    expected = json.loads((RULES2 / "verify-whole.json").read_text())
    assert _without_time(json.loads(out)) == _without_time(expected)


@pytest.mark.parametrize("name", ["evidence-down.json", "evidence-recall.json"])
def test_a_rules_2_logs_evidence_verifies(name: str) -> None:
    """Its reports name shipments by id alone (`SH-G2`): rules 3's `<owner>/<id>` is not applied
    to a log that did not state rules 3."""
    code, out = _run("verify-evidence", str(RULES2 / name), "--log-key", str(RULES2 / "log.vkey"), "--json")
    assert code == 0, out
    doc = json.loads((RULES2 / name).read_text())
    assert all("/" not in s["shipment_id"] for s in doc["report"].get("shipments", []))
