"""The pure rules of the ledger, with no I/O: record validation and decoding (validation.py),
the role-to-record-kind table (policy.py), the key history and master data (registry.py), the
caller's identity and the one read rule (access.py), building signed records (records.py), and
the one admission step (admission.py) that the writer and every verifier call, so that what the
server accepts is exactly what a regulator's verifier accepts."""
