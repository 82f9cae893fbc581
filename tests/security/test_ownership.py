"""Partners who cannot rewrite each other (ledger/core/admission.py `check_ownership`, rules 2
and 3), on a real loopback server: findings 2, 3 and 5 of the
adversarial campaign, each refused with its status and reason and the log unchanged, and the
recall the plant sees left as the plant wrote it. The same rules run in every verifier
(tests/ledger/test_admission_differential.py)."""

from __future__ import annotations

from types import SimpleNamespace

import grpc
import pytest
from helpers import log_state, new_record, registration, shipment, signed

from lotledger.ledger.errors import LedgerError
from lotledger.signing.keys import SigningKey
from lotledger.v1 import records_pb2

LOT = "01/09520000000011/10/L1"  # the lot `shipment()` ships


def _shipped(submitter: str, shipment_id: str, *, sender: str | None = None, to: str = "plant") -> records_pb2.Record:
    record = shipment(submitter)
    record.shipment.shipment_id, record.shipment.to_participant = shipment_id, to
    record.shipment.from_participant = sender or submitter
    return record


def _received(submitter: str, shipment_id: str, owner: str) -> records_pb2.Record:
    record = new_record(submitter)
    r = record.receipt
    r.shipment_id, r.shipment_owner, r.participant, r.location = shipment_id, owner, submitter, "dock"
    r.lots.add().CopyFrom(shipment().shipment.lots[0])
    r.received_at.GetCurrentTime()
    return record


def _refused(
    served: SimpleNamespace,
    record: records_pb2.Record,
    key: SigningKey,
    code: grpc.StatusCode = grpc.StatusCode.PERMISSION_DENIED,
) -> LedgerError:
    before = log_state(served.ledger)
    with pytest.raises(LedgerError) as info:
        served.client.append(signed(record, key))
    assert log_state(served.ledger) == before
    cause = info.value.__cause__
    assert isinstance(cause, grpc.RpcError) and cause.code() == code
    return info.value


def _register(served: SimpleNamespace, pid: str, role: records_pb2.Role.ValueType) -> SigningKey:
    key = SigningKey.generate()
    served.client.append(signed(registration("admin", pid, role, key), served.world.admin))
    return key


def _consignees(served: SimpleNamespace) -> dict[str, tuple[str, bool]]:
    down = served.client.trace(LOT, "down")
    return {s.shipment_id: (s.to_participant, s.received) for s in down.shipments}


def test_a_supplier_cannot_take_over_the_plants_shipment(served: SimpleNamespace) -> None:
    """Finding 2: a supplier's own Shipment reusing the plant's id SH-9001 rewrote the recall.
    Under rules 3 each sender's SH-9001 is its own shipment: acme's is accepted and shows as
    acme's, and the plant's keeps its consignee; only the consignee records its receipt."""
    keys = served.world.keys
    distributor = _register(served, "dist", records_pb2.ROLE_DISTRIBUTOR)
    served.client.append(signed(_shipped("plant", "SH-9001", to="dist"), keys["plant"]))
    served.client.append(signed(_shipped("acme", "SH-9001"), keys["acme"]))
    assert _consignees(served) == {"plant/SH-9001": ("dist", False), "acme/SH-9001": ("plant", False)}
    # A third party's receipt cannot mark the plant's open shipment received...
    intruder = _register(served, "shop", records_pb2.ROLE_CUSTOMER)
    assert _refused(served, _received("shop", "SH-9001", "plant"), intruder).reason == "NOT_THE_CONSIGNEE"
    # ...and the consignee's does, of the plant's shipment and no other.
    served.client.append(signed(_received("dist", "SH-9001", "plant"), distributor))
    assert _consignees(served) == {"plant/SH-9001": ("dist", True), "acme/SH-9001": ("plant", False)}


def test_a_partner_cannot_squat_the_plants_next_shipment_id(served: SimpleNamespace) -> None:
    """Finding 5's shipment-id twin: under rules 2, a supplier that sent SH-9002 first made the
    plant's own SH-9002 fail (SHIPMENT_ID_TAKEN). Rules 3 name shipments by owner and id."""
    keys = served.world.keys
    _register(served, "dist", records_pb2.ROLE_DISTRIBUTOR)
    served.client.append(signed(_shipped("acme", "SH-9002", to="dist"), keys["acme"]))
    served.client.append(signed(_shipped("plant", "SH-9002", to="dist"), keys["plant"]))
    assert set(_consignees(served)) == {"acme/SH-9002", "plant/SH-9002"}


def test_a_receipt_must_name_the_shipments_owner(served: SimpleNamespace) -> None:
    keys = served.world.keys
    served.client.append(signed(_shipped("acme", "SH-9003"), keys["acme"]))
    refusal = _refused(served, _received("plant", "SH-9003", ""), keys["plant"], grpc.StatusCode.INVALID_ARGUMENT)
    assert (refusal.reason, refusal.field) == ("MISSING_FIELD", "receipt.shipment_owner")


def test_a_partner_cannot_ship_in_anothers_name(served: SimpleNamespace) -> None:
    """Finding 3: `acme` signed "plant shipped 150 of B-1 to acme"."""
    refusal = _refused(served, _shipped("acme", "SH-X", sender="plant", to="acme"), served.world.keys["acme"])
    assert (refusal.reason, refusal.field) == ("NOT_YOUR_SHIPMENT", "shipment.from_participant")


def test_a_receipt_written_before_the_shipment_cannot_mark_anothers_consignment_received(
    served: SimpleNamespace,
) -> None:
    """The time-reversed finding 2: a partner receipts the plant's next shipment id before the
    plant ships it (admission cannot judge a consignee it does not know yet, so the receipt is
    admitted and flagged). When the plant then ships SH-9005 to someone else, that receipt
    delivers nothing: the shipment stays open, and stoppable, in the plant's recall."""
    keys = served.world.keys
    squatter = _register(served, "dist", records_pb2.ROLE_DISTRIBUTOR)
    shop = _register(served, "shop", records_pb2.ROLE_CUSTOMER)
    served.client.append(signed(_received("dist", "SH-9005", "plant"), squatter))
    served.client.append(signed(_shipped("plant", "SH-9005", to="shop"), keys["plant"]))
    assert _consignees(served) == {"plant/SH-9005": ("shop", False)}
    recall = served.client.recall([LOT], "test")
    assert [(c.shipment_id, c.received) for c in recall.consignments] == [("plant/SH-9005", False)]
    served.client.append(signed(_received("shop", "SH-9005", "plant"), shop))
    assert _consignees(served) == {"plant/SH-9005": ("shop", True)}
