"""Partners who cannot rewrite each other (rules 2, ledger/core/admission.py check_ownership),
on a real loopback server: findings 2 and 3 of the adversarial campaign, each refused with its
status and reason and the log unchanged. The same rules run in every verifier
(tests/ledger/test_admission_differential.py)."""

from __future__ import annotations

from types import SimpleNamespace

import grpc
import pytest
from helpers import log_state, new_record, registration, shipment, signed

from lotledger.ledger.errors import LedgerError
from lotledger.signing.keys import SigningKey
from lotledger.v1 import records_pb2


def _shipped(submitter: str, shipment_id: str, *, sender: str | None = None, to: str = "plant") -> records_pb2.Record:
    record = shipment(submitter)
    record.shipment.shipment_id, record.shipment.to_participant = shipment_id, to
    record.shipment.from_participant = sender or submitter
    return record


def _received(submitter: str, shipment_id: str) -> records_pb2.Record:
    record = new_record(submitter)
    r = record.receipt
    r.shipment_id, r.participant, r.location = shipment_id, submitter, "dock"
    r.lots.add().CopyFrom(shipment().shipment.lots[0])
    r.received_at.GetCurrentTime()
    return record


def _refused(served: SimpleNamespace, record: records_pb2.Record, key: SigningKey) -> LedgerError:
    before = log_state(served.ledger)
    with pytest.raises(LedgerError) as info:
        served.client.append(signed(record, key))
    assert log_state(served.ledger) == before
    cause = info.value.__cause__
    assert isinstance(cause, grpc.RpcError) and cause.code() == grpc.StatusCode.PERMISSION_DENIED
    return info.value


def test_a_supplier_cannot_take_over_the_plants_shipment(served: SimpleNamespace) -> None:
    """Finding 2: a supplier's own Shipment reusing the plant's id SH-9001 rewrote the recall."""
    keys = served.world.keys
    distributor = SigningKey.generate()
    served.client.append(
        signed(registration("admin", "dist", records_pb2.ROLE_DISTRIBUTOR, distributor), served.world.admin)
    )
    served.client.append(signed(_shipped("plant", "SH-9001", to="dist"), keys["plant"]))
    assert _refused(served, _shipped("acme", "SH-9001"), keys["acme"]).reason == "SHIPMENT_ID_TAKEN"
    # ...and a third party's receipt cannot mark the plant's open shipment received.
    intruder = SigningKey.generate()
    served.client.append(signed(registration("admin", "shop", records_pb2.ROLE_CUSTOMER, intruder), served.world.admin))
    assert _refused(served, _received("shop", "SH-9001"), intruder).reason == "NOT_THE_CONSIGNEE"
    served.client.append(signed(_received("dist", "SH-9001"), distributor))  # the consignee may


def test_a_partner_cannot_ship_in_anothers_name(served: SimpleNamespace) -> None:
    """Finding 3: `acme` signed "plant shipped 150 of B-1 to acme"."""
    refusal = _refused(served, _shipped("acme", "SH-X", sender="plant", to="acme"), served.world.keys["acme"])
    assert (refusal.reason, refusal.field) == ("NOT_YOUR_SHIPMENT", "shipment.from_participant")
