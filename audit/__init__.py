"""Client-side drivers for the people who check the log: verification from a live server,
a data directory or a bundle (verify.py), the verifier's state directory (state_dir.py),
export to bundles (export.py) and to tlog-tiles (tiles.py), the monitor (monitor.py), evidence
files (evidence.py) and FSMA 204 reports (fsma.py). They do the I/O around the pure parts
(ledger/verify, ledger/tlog, trace/evidence.py, trace/standards) and raise lotledger errors;
they never print for a person or exit (cli/ does that)."""
