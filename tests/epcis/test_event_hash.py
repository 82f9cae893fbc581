"""The CBV 2.0 event hash ID against the reference implementation's published vectors, and the
identifier normalisation it rests on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lotledger.trace.standards.epcis_hash import canonical_id, event_hash_id, prehash

DATA = Path(__file__).parent / "data"
VECTORS = json.loads((DATA / "hash_vectors.json").read_text())["vectors"]


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_published_event_hash_vectors(name: str) -> None:
    doc = json.loads((DATA / name).read_text())
    assert event_hash_id(doc["epcisBody"]["eventList"][0], doc["@context"]) == VECTORS[name]


def test_record_time_and_event_id_do_not_change_the_hash_but_a_field_does() -> None:
    doc = json.loads((DATA / "hash_vector_3.jsonld").read_text())
    event = doc["epcisBody"]["eventList"][0]
    base = event_hash_id(event, doc["@context"])
    assert (
        event_hash_id({**event, "eventID": "urn:uuid:1", "recordTime": "2021-01-01T00:00:00Z"}, doc["@context"]) == base
    )
    assert event_hash_id({**event, "disposition": "damaged"}, doc["@context"]) != base
    assert event_hash_id({**event, "eventTime": "2020-03-04T10:00:30.000Z"}, doc["@context"]) == base  # same instant


@pytest.mark.parametrize(
    ("urn", "dl"),
    [
        ("urn:epc:class:lgtin:4012345.012345.LOT-A", "https://id.gs1.org/01/04012345123456/10/LOT-A"),
        ("urn:epc:id:sgtin:0614141.011111.987", "https://id.gs1.org/01/00614141111114/21/987"),
        ("urn:epc:id:sscc:4012345.0000000111", "https://id.gs1.org/00/040123450000001112"),
        ("urn:epc:id:sgln:4012345.00011.0", "https://id.gs1.org/414/4012345000115"),
        ("urn:epc:id:sgln:4012345.00011.987", "https://id.gs1.org/414/4012345000115/254/987"),
        ("urn:epc:id:pgln:4012345.00000", "https://id.gs1.org/417/4012345000009"),
        (
            "https://brand.example.com/01/04012345123456/10/LOT-A?linkType=all",
            "https://id.gs1.org/01/04012345123456/10/LOT-A",
        ),
    ],
)
def test_urn_and_digital_link_normalise_to_one_form(urn: str, dl: str) -> None:
    assert canonical_id(urn) == dl
    assert canonical_id(dl) == dl


def test_prehash_sorts_lists() -> None:
    a = {
        "type": "ObjectEvent",
        "eventTime": "2020-01-01T00:00:00Z",
        "eventTimeZoneOffset": "+00:00",
        "action": "OBSERVE",
    }
    one = prehash({**a, "epcList": ["urn:epc:id:sscc:4012345.0000000222", "urn:epc:id:sscc:4012345.0000000111"]})
    two = prehash({**a, "epcList": ["urn:epc:id:sscc:4012345.0000000111", "urn:epc:id:sscc:4012345.0000000222"]})
    assert one == two
