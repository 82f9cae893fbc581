"""The ledger: record validation and authorization, the hash chain, the Merkle tree and its
proofs, the LMDB store with its group-commit writer, and the gRPC servicer over them."""
