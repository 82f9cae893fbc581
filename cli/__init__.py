"""The `lotledger` and `lotledger-scan` commands (click), a face only: each command parses its
options, calls the domain, a driver in audit/ or the client, and prints.

main.py holds the command group and the log's own commands (init, serve, keys, append, get,
checkpoint, proof, verify, export); trace_cmds.py QA's (trace, recall, sources, alerts); each
`*_cmd.py` one family (ca, epcis, evidence, fsma, monitor, tiles, web, witness); demo.py the
demo supply chain; scan.py `lotledger-scan`. Shared pieces: options.py (the client options),
output.py (exit codes, stdout for data and stderr for people), record_input.py (records for
`append`), limits_config.py (serve's limits file).
"""
