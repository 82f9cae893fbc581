"""The pure rules of the ledger, with no I/O: record ids and GTINs, validation, the role table,
the key registry, read access, and the one admission step that the writer and every verifier
call, so that what the server accepts is exactly what a regulator's verifier accepts."""
