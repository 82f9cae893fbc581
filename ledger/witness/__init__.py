"""Witnessing (c2sp.org/tlog-witness, tlog-cosignature): the witness's pure state machine
(state.py), its HTTP server with the durable state file and fork evidence (http.py), and the
log's side, a background submitter of new checkpoints to its witnesses (submitter.py)."""
