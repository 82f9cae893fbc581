"""The `lotledger` and `lotledger-scan` commands (click), a face only: each command parses its
options, calls the domain, a driver in audit/ or the client, and prints.

main.py holds the command group and its table of commands, which lazy.py's group imports only
when one runs or its own help is asked for: a command imports what it runs, and the modules
below import click and nothing heavy until a command body runs (tests/cli/test_startup.py;
bench/cli.py times it). serve_cmd.py makes and serves a ledger (init, serve, demo); keys_cmd.py
the keys; entry_cmds.py the log's entries (append, get, checkpoint, proof); verify_cmd.py verify
and export; trace_cmds.py QA's (trace, recall, sources, alerts); each other `*_cmd.py` one family
(ca, epcis, evidence, fsma, monitor, tiles, web, witness); demo.py the demo supply chain;
scan.py `lotledger-scan`. Shared pieces: options.py (the client options), output.py (exit codes,
stdout for data and stderr for people), record_input.py (records for `append`),
limits_config.py (serve's limits file).
"""
