"""The trace index and what is asked of it, above ledger/ and below rpc/.

- index.py, csr.py: the rustworkx graph of lots and shipments, derived from the records and
  never the truth, and its edges as flat arrays for traversals.
- effects.py: what each record means to the index, in one place.
- records.py: where the index reads the records behind its seqs (the ledger, or a list).
- queries.py: trace up and down, recall, common sources, mass balance.
- alerts.py: irregularities to flag, never reasons to refuse.
- live.py, snapshot.py: keeping the index current with a live ledger, and its snapshots in
  their own LMDB environment.
- service.py: Trace, Recall, CommonSources and ListAlerts as domain calls for the servicer,
  with the read decisions that need the index; wire.py: the answers as lotledger.v1 messages.
- evidence.py: evidence files (a report with every entry behind it, each with its proof).
- standards/: the same data in the standards' shapes (EPCIS 2.0, FSMA 204).
"""
