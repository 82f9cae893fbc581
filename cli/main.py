"""The `lotledger` command: the group, and where each of its commands lives.

The group is lazy (cli/lazy.py): a command's module is imported only when that command runs or
its own help is asked for, so `lotledger --help` imports click and this table, and `lotledger
get` the client and not the server. COMMANDS holds each command's name, import path and short
help (the first sentence of its docstring, which `lotledger --help` lists);
tests/cli/test_startup.py checks it against the commands themselves.
"""

from __future__ import annotations

import sys

import click

from lotledger.cli.lazy import LazyCommand, LazyGroup

COMMANDS = (
    LazyCommand(
        "alerts",
        "lotledger.cli.trace_cmds:alerts",
        "Irregularities flagged as entries committed (they never block an append).",
    ),
    LazyCommand(
        "append",
        "lotledger.cli.entry_cmds:append",
        'Sign and append records from FILE: one JSON record ({"shipment": {...}}), a JSON list, or .jsonl '
        "(one per line, streamed); `-` reads stdin.",
    ),
    LazyCommand(
        "ca",
        "lotledger.cli.ca_cmd:ca",
        "A private certificate authority for mTLS: participant and server certificates.",
    ),
    LazyCommand(
        "checkpoint",
        "lotledger.cli.entry_cmds:checkpoint",
        "Print the latest signed checkpoint (a C2SP signed note).",
    ),
    LazyCommand(
        "demo",
        "lotledger.cli.serve_cmd:demo",
        "Create (or add to) a ledger with a small bakery supply chain to trace and recall.",
    ),
    LazyCommand(
        "export",
        "lotledger.cli.verify_cmd:export",
        "Write the log, up to a signed checkpoint, to one self-contained bundle file that `lotledger verify "
        "--bundle FILE --log-key VKEY` checks offline; with --from SEQ, only the entries from SEQ on, with the "
        "proofs that tie them to the checkpoint of size SEQ.",
    ),
    LazyCommand(
        "export-epcis",
        "lotledger.cli.epcis_cmd:export_epcis",
        "Write the matching records as one EPCIS 2.0 JSON-LD EPCISDocument; imported records give back their "
        "source events as they were.",
    ),
    LazyCommand(
        "export-fsma",
        "lotledger.cli.fsma_cmd:export_fsma",
        "The FDA FSMA 204 electronic sortable spreadsheet: one sheet per Critical Tracking Event (Shipping, "
        "Receiving, Transformation), one row per lot per event, the Key Data Elements of 21 CFR 1.1340-1.1350 as "
        "columns, for LOTs' traces or the events between two days.",
    ),
    LazyCommand(
        "export-tiles",
        "lotledger.cli.tiles_cmd:export_tiles_command",
        "Write the log as a C2SP tlog-tiles directory (checkpoint, hash tiles, entry bundles) that an auditor "
        "mirrors as plain files and any tlog-tiles client reads.",
    ),
    LazyCommand(
        "fsma-check",
        "lotledger.cli.fsma_cmd:fsma_check",
        "Every record (in force) whose Critical Tracking Event lacks a required Key Data Element, by entry and field.",
    ),
    LazyCommand(
        "get",
        "lotledger.cli.entry_cmds:get",
        "Show one entry and its record.",
    ),
    LazyCommand(
        "import-epcis",
        "lotledger.cli.epcis_cmd:import_epcis",
        "Import GS1 EPCIS 2.0 JSON/JSON-LD documents: each event becomes one signed record.",
    ),
    LazyCommand(
        "init",
        "lotledger.cli.serve_cmd:init",
        "Create a ledger: the store, the log key, the first admin key, and entry 0.",
    ),
    LazyCommand(
        "keys",
        "lotledger.cli.keys_cmd:keys",
        "Generate, register and revoke participant keys.",
    ),
    LazyCommand(
        "mirror",
        "lotledger.cli.mirror_cmd:mirror",
        "Follow a tiled log into a verified copy in DATA_DIR (its own store), cosign each checkpoint it fully "
        "holds, and republish it with --publish.",
    ),
    LazyCommand(
        "monitor",
        "lotledger.cli.monitor_cmd:monitor",
        "Follow a live log: verify every new checkpoint and entry against the state kept in --state DIR, and "
        "keep both signed checkpoints as evidence if the log forks.",
    ),
    LazyCommand(
        "nginx-config",
        "lotledger.cli.nginx_cmd:nginx_config",
        "Write an nginx configuration serving the tiled log in DIR: checkpoint and hash tiles to anyone, entry "
        "bundles only to client certificates from --client-ca, with tlog-tiles' cache headers.",
    ),
    LazyCommand(
        "proof",
        "lotledger.cli.entry_cmds:proof",
        "Fetch and check Merkle proofs (RFC 9162).",
    ),
    LazyCommand(
        "recall",
        "lotledger.cli.trace_cmds:recall",
        "Every lot and consignee affected by LOTS: mass balances, open shipments, whom to call.",
    ),
    LazyCommand(
        "restore",
        "lotledger.cli.restore_cmd:restore",
        "Rebuild DATA_DIR from a tiled copy of the log, verifying every entry and tile on the way; the restored "
        "server goes on appending from the copy's checkpoint.",
    ),
    LazyCommand(
        "serve",
        "lotledger.cli.serve_cmd:serve",
        "Serve a ledger over gRPC until SIGINT or SIGTERM.",
    ),
    LazyCommand(
        "sources",
        "lotledger.cli.trace_cmds:sources",
        "Upstream lots and suppliers shared by complaint LOTS, most shared first.",
    ),
    LazyCommand(
        "trace",
        "lotledger.cli.trace_cmds:trace",
        "Trace a lot upstream (to its inputs and suppliers) or downstream (to its customers).",
    ),
    LazyCommand(
        "verify",
        "lotledger.cli.verify_cmd:verify",
        "Check the whole log with no trust in the server: every chain link, signature (against the key history "
        "as of each entry), record, the Merkle root against the signed checkpoint, and with --since, that the "
        "log extends that earlier checkpoint.",
    ),
    LazyCommand(
        "verify-evidence",
        "lotledger.cli.evidence_cmd:verify_evidence",
        "Check an evidence file offline, trusting only the log's key: the checkpoint's signature, each entry's "
        "inclusion proof and signature (by a key an included registration gave its submitter), and that every "
        "edge, lot and shipment of the report follows from the entries.",
    ),
    LazyCommand(
        "web",
        "lotledger.cli.web_cmd:web",
        "Serve QA's web view: lot search, trace graphs, recall reports with CSV/XLSX/FSMA downloads, alerts and "
        "log status; the pages check inclusion proofs against --log-key in the browser.",
    ),
    LazyCommand(
        "witness",
        "lotledger.cli.witness_cmd:witness",
        "Run a witness (c2sp.org/tlog-witness) that cosigns only consistent checkpoints.",
    ),
)


@click.group(cls=LazyGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lotledger")
def main() -> None:
    """lotledger: a signed, hash-chained, Merkle-verifiable ledger for lot traceability."""


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
