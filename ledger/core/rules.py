"""Versions of the admission rules. A log states in its genesis entry the version it was created
under (ParticipantRegistered.rules_version), and the writer and every verifier apply that
version for the whole log, so a log written under older rules verifies for ever.

- Rules 1: logs created before versions existed (the genesis names none).
- Rules 2: ownership. Record ids are scoped by their submitter; a shipment is sent by its
  submitter and its id is its own (another participant cannot reuse it); a receipt is made by
  the consignee and names the shipment by owner and id; identifiers refuse invisible and
  direction-changing characters, and amounts take ASCII digits only.
- Rules 3: shipments are named by owner and id. A shipment id is its sender's own (two
  participants may both have an `SH-1`, and neither can take the other's), a receipt must name
  the shipment's owner (`receipt.shipment_owner`), and a ship scan's shipment is named by its
  submitter and record id. The trace index labels a shipment `shipment:<owner>/<id>`.
  Participant id `sscc` is reserved (SSCC shipments are `shipment:sscc/<sscc>`).
"""

from __future__ import annotations

RULES_1 = 1
RULES_2 = 2
RULES_3 = 3
CURRENT = RULES_3
KNOWN = frozenset({RULES_1, RULES_2, RULES_3})


def of_genesis(stated: int) -> int:
    """The rules a log follows, from what its genesis record states (0: none, so rules 1)."""
    return stated or RULES_1


def scoped_shipments(log_rules: int) -> bool:
    """Whether a log under `log_rules` names shipments by owner and id (rules 3 and later)."""
    return log_rules >= RULES_3
