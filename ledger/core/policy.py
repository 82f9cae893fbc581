"""Who may submit what: the one role-to-record-kind table (DESIGN section 5).

Kept apart from validation so the policy reads in one screen and changes in one place. The
table fails closed: a role that is not listed, or a kind not listed for it, is refused.
"""

from __future__ import annotations

from collections.abc import Mapping

from lotledger.v1 import records_pb2

ADMIN_KINDS = frozenset({"participant_registered", "key_revoked", "location_registered"})

ROLE_NAMES: Mapping[records_pb2.Role, str] = {
    records_pb2.ROLE_ADMIN: "admin",
    records_pb2.ROLE_MANUFACTURER: "manufacturer",
    records_pb2.ROLE_SUPPLIER: "supplier",
    records_pb2.ROLE_DISTRIBUTOR: "distributor",
    records_pb2.ROLE_CUSTOMER: "customer",
    records_pb2.ROLE_QA: "qa",
    records_pb2.ROLE_SCANNER: "scanner",
    records_pb2.ROLE_AUDITOR: "auditor",
}
ROLES_BY_NAME: Mapping[str, records_pb2.Role] = {name: value for value, name in ROLE_NAMES.items()}

# Record kinds are the names of the Record.body oneof fields.
ALLOWED_KINDS: Mapping[str, frozenset[str]] = {
    "admin": ADMIN_KINDS | {"correction", "recall_opened"},
    "manufacturer": frozenset(
        {
            "material_received",
            "production_run",
            "quality_check",
            "shipment",
            "receipt",
            "formula_revision",
            "aggregation",
            "scan",
            "correction",
            "recall_opened",
        }
    ),
    # A supplier states what it shipped to us; it cannot sign off our QC.
    "supplier": frozenset({"shipment", "correction"}),
    # Manufacturers and distributors may also relay their own systems' scans (EPCIS
    # commissioning and SSCC shipping observations import as Scan records).
    "distributor": frozenset({"receipt", "shipment", "aggregation", "scan", "correction"}),
    "customer": frozenset({"receipt", "correction"}),
    "qa": frozenset({"quality_check", "correction", "recall_opened"}),
    # A device's key signs scans and nothing else.
    "scanner": frozenset({"scan"}),
    "auditor": frozenset(),
}


def role_name(role: records_pb2.Role) -> str:
    """The lower-case name of a Role enum value; raises KeyError for UNSPECIFIED/unknown."""
    return ROLE_NAMES[role]


def may_submit(role: str, kind: str) -> bool:
    """True only if `role` is known and the table lists `kind` for it (fail closed)."""
    return kind in ALLOWED_KINDS.get(role, frozenset())
