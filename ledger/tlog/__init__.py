"""Pure log math and formats, like Go's sumdb/tlog: RFC 6962 Merkle hashing and proofs
(merkle.py), the entry framing and hash chain (entries.py), C2SP tlog-tiles (tiles.py) and
tlog-proof (proof.py), and the export bundles (bundle.py). No I/O: the functions take
primitives, so the published test vectors in vectors/ feed them directly."""
