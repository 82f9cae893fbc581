"""The ledger, above signing/ and below trace/: the rules, the log formats, the verifiers and
the one writer.

- core/: pure rules (validation, the role table, the key registry, read access, the one
  admission step).
- tlog/: pure log formats and Merkle math (RFC 6962 proofs, entries and the hash chain, tiles,
  tlog-proof, bundles).
- verify/: pure verifiers that trust no server.
- witness/: witnessing (the witness's state machine and HTTP server, the log's submitter).
- store.py: the one LMDB environment of a data directory, the only module that opens it.
- log.py: the single group-commit writer, checkpoints, reads and proofs (`Ledger`).
- errors.py: the one error hierarchy (LedgerError: the data is bad; StorageError: the store or
  process failed), mapped to gRPC status codes once, in lotledger.rpc.status.

core/, tlog/ and verify/ import no LMDB, no gRPC and neither store.py nor log.py (the contracts
in pyproject.toml keep it so), so a regulator's verifier runs the same code as the writer.
"""
