"""The server's index of key history entries, which increment bundles are built from: every
registration and revocation, in log order, nothing else, across batches and ranges."""

from __future__ import annotations

from helpers import World, revocation, shipment, signed

from lotledger.ledger.log import Ledger


def test_admin_entries_are_the_key_history_in_order(world_ledger: tuple[World, Ledger]) -> None:
    world, ledger = world_ledger
    for _ in range(3):
        ledger.append(signed(shipment(), world.keys["acme"]))
    revoked = ledger.append(signed(revocation("admin", world.keys["qa1"].key_id), world.admin)).seq
    ledger.append(signed(shipment(), world.keys["acme"]))
    expected = [0, 1, 2, 3, revoked]
    for batch in (1, 2, 256):
        got = [seq for chunk in ledger.admin_entries(0, ledger.size, batch) for seq, _ in chunk]
        assert got == expected
    assert [s for c in ledger.admin_entries(2, revoked, 2) for s, _ in c] == [2, 3]
    assert [e for c in ledger.admin_entries(0, 1) for _, e in c] == [ledger.entry(0)[0]]
