"""Size limits that the client and the server share, in a module that imports nothing, so a
client command does not load the validators to learn them."""

from __future__ import annotations

# 63 KiB, not 64: an Entry must fit the uint16 length of a C2SP tlog-tiles entry bundle (65,535
# bytes; ledger/tlog/tiles.py), and the Entry framing around the record bytes is at most 209 bytes
# (seq varint 11, prev_hash 34, received_at 24, SignedRecord header 4 + record_bytes header 4 +
# 64-char key_id 66 + 64-byte signature 66), so the largest entry is 64,721 bytes.
# tests/ledger/test_tiles.py builds that worst case.
MAX_RECORD_BYTES = 63 * 1024
# A stream message batches records up to about 1 MiB; 4 MiB leaves room and still refuses
# absurd messages before anything parses them.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
