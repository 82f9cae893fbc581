"""The ledger: `core/` (pure rules and the one admission step), `tlog/` (pure Merkle math and
log formats), `verify/` (pure verifiers), `witness/`, the LMDB environment (`store.py`) and the
single group-commit writer with its reader (`log.py`)."""
