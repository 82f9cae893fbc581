"""A large EPCIS document is mapped in two halves, the second in a process of its own
(cli/epcis_cmd.py `_plan`): the plan is the one mapping it whole gives, event by event,
problems and their indexes included."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[2] / "bench"))

from epcis import epcis_document  # noqa: E402

from lotledger.cli.epcis_cmd import _plan  # noqa: E402
from lotledger.trace.standards.epcis import ImportPlan, plan_import  # noqa: E402


def _comparable(plan: ImportPlan) -> tuple[Any, ...]:
    records = []
    for i, event_id, record in plan.records:
        record.ClearField("created_at")  # each run signs at its own moment
        records.append((i, event_id, record.SerializeToString(deterministic=True)))
    return records, plan.problems, plan.native


def test_two_halves_plan_as_the_whole_does() -> None:
    doc = epcis_document(400)
    events: list[dict[str, Any]] = doc["epcisBody"]["eventList"]  # type: ignore[index]
    events[7]["type"] = "NoSuchEvent"  # first half: a problem
    del events[301]["eventTime"]  # second half: a problem, whose index must be the document's
    whole = plan_import(doc, "plant")
    halves = _plan(doc, "plant")
    assert [p.index for p in halves.problems] == [7, 301]
    assert len(halves.records) == 398
    assert _comparable(halves) == _comparable(whole)
