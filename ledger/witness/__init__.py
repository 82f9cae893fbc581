"""Witnessing (c2sp.org/tlog-witness, tlog-cosignature): the witness's own state and checks,
the server's submitter of new checkpoints to witnesses, and the witness HTTP server."""
