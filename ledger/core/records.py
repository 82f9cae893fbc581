"""Building signed records: serialize once, sign those exact bytes (DESIGN section 3)."""

from __future__ import annotations

from lotledger.signing.keys import SigningKey, sign_record
from lotledger.v1 import records_pb2


def sign(record: records_pb2.Record, key: SigningKey) -> records_pb2.SignedRecord:
    """The only way lotledger signs a record: the bytes signed are the bytes sent and stored."""
    record_bytes = record.SerializeToString()
    return records_pb2.SignedRecord(
        record_bytes=record_bytes, key_id=key.key_id, signature=sign_record(key, record_bytes)
    )
