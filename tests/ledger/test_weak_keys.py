"""A small-order Ed25519 key (the identity point accepts the signature (R=identity, S=0) for
every message under OpenSSL) can neither be registered nor sign anything."""

from __future__ import annotations

import pytest
from helpers import World, new_record, shipment, signed

from lotledger.ledger.errors import InvalidRecord, Unauthenticated
from lotledger.ledger.log import Ledger
from lotledger.signing.errors import InvalidKey
from lotledger.signing.keys import VerifyKey, key_id
from lotledger.v1 import records_pb2

IDENTITY = b"\x01" + bytes(31)  # the neutral point, encoded
FORGERY = IDENTITY + bytes(32)  # R = identity, S = 0


def test_small_order_key_is_refused_by_signing() -> None:
    with pytest.raises(InvalidKey):
        VerifyKey.from_raw(IDENTITY)


def test_small_order_key_cannot_be_registered(world_ledger: tuple[World, Ledger]) -> None:
    world, ledger = world_ledger
    record = new_record("admin")
    reg = record.participant_registered
    reg.participant_id, reg.role, reg.public_key = "mallory", records_pb2.ROLE_SUPPLIER, IDENTITY
    with pytest.raises(InvalidRecord) as info:
        ledger.append(signed(record, world.admin))
    assert info.value.reason == "INVALID_KEY"


def test_forged_signature_under_a_weak_key_id_is_refused(world_ledger: tuple[World, Ledger]) -> None:
    _, ledger = world_ledger
    body = shipment().SerializeToString()
    forged = records_pb2.SignedRecord(record_bytes=body, key_id=key_id(IDENTITY), signature=FORGERY)
    with pytest.raises(Unauthenticated):
        ledger.append(forged)
