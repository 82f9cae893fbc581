"""Pure log math and formats, like Go's sumdb/tlog: RFC 6962 Merkle hashing and proofs, the
entry framing and hash chain, C2SP tiles and tlog-proof, and the export bundle. No I/O: the
functions take primitives, so published test vectors feed them directly."""
