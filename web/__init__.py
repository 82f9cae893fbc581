"""lotledger web: the read-only web app for QA (Flask over the gRPC ledger)."""
