"""Start-up: a command imports only what it runs (cli/lazy.py, cli/main.py's table).

How fast that makes the commands is bench/cli.py's to say; these tests check what makes them
fast, in a fresh interpreter each: the modules loaded (sys.modules) after importing the
command, after every `--help`, and after real client commands against a real server. And that
the table `lotledger --help` lists the commands from agrees with the commands themselves.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from cli_helpers import SHIPMENT, run

from lotledger.cli.lazy import LazyGroup
from lotledger.cli.main import COMMANDS, main
from lotledger.cli.scan import main as scan
from lotledger.ledger.log import LedgerConfig
from lotledger.rpc.server import LedgerServer

# What only a server, the trace index or the web app needs: no client command loads it.
SERVER_SIDE = [
    "lotledger.rpc.server",
    "lotledger.rpc.servicer",
    "lotledger.trace.index",
    "lotledger.trace.queries",
    "numpy",
    "rustworkx",
    "lmdb",
    "flask",
]
# What a command needs to talk to a server, sign or decode records, and not to print its help.
CLIENT_SIDE = ["grpc", "google.protobuf", "cryptography", "lotledger.rpc.client", "lotledger.v1"]

# Runs in a fresh interpreter: import the commands, invoke each of argv[2]'s (program, args) in
# turn, and print which of argv[1]'s modules were loaded after the import and after each.
PROBE = """
import json, sys
from click.testing import CliRunner
from lotledger.cli.main import main
from lotledger.cli.scan import main as scan

watched, invocations = json.loads(sys.argv[1]), json.loads(sys.argv[2])
loaded = {"import": sorted(m for m in watched if m in sys.modules)}
for program, args in invocations:
    result = CliRunner().invoke(main if program == "lotledger" else scan, args)
    if result.exit_code != 0:
        sys.exit(f"{program} {args}: exit {result.exit_code}: {result.output}")
    loaded[" ".join([program, *args])] = sorted(m for m in watched if m in sys.modules)
print(json.dumps(loaded))
"""


def probe(watched: list[str], invocations: list[tuple[str, list[str]]]) -> dict[str, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(watched), json.dumps(invocations)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    loaded: dict[str, list[str]] = json.loads(done.stdout)
    return loaded


def first_to_load(loaded: dict[str, list[str]]) -> dict[str, list[str]]:
    """Each step that loaded a watched module, with what it loaded (the steps share a process)."""
    before: set[str] = set()
    found = {}
    for step, modules in loaded.items():
        if set(modules) - before:
            found[step] = sorted(set(modules) - before)
        before |= set(modules)
    return found


def help_paths(group: click.Group, path: list[str]) -> Iterator[list[str]]:
    """Every command and subcommand of `group`, as the arguments that ask for its help."""
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        yield [*path, name, "--help"]
        if isinstance(command, click.Group):
            yield from help_paths(command, [*path, name])


def test_help_loads_neither_the_server_nor_the_client() -> None:
    invocations = [("lotledger", ["--help"]), ("lotledger", ["--version"]), ("lotledger-scan", ["--help"])]
    invocations += [("lotledger", args) for args in help_paths(main, [])]
    invocations += [("lotledger-scan", args) for args in help_paths(scan, [])]
    assert len(invocations) > 40
    loaded = probe(SERVER_SIDE + CLIENT_SIDE, invocations)
    assert loaded["import"] == []
    assert first_to_load(loaded) == {}


@pytest.fixture(scope="module")
def client_commands_loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, list[str]]]:
    """What real client commands (each kind the benchmark times) loaded, against a real server."""
    tmp = tmp_path_factory.mktemp("startup")
    data, key, shipment = tmp / "data", tmp / "acme.key", tmp / "shipment.json"
    run("init", str(data), "--origin", "startup.example.com/lotledger")
    server = LedgerServer(data, "127.0.0.1:0", config=LedgerConfig(checkpoint_interval=0.05)).start()
    try:
        srv = ["--server", server.address]
        run("keys", "generate", str(key))
        admin = ["--key", str(data / "keys" / "admin.key")]
        run("keys", "register", "--id", "acme", "--role", "supplier", "--public-key", f"{key}.pub", *srv, *admin)
        shipment.write_text(json.dumps(SHIPMENT))
        lot = "01/09520000000011/10/L7"
        invocations = [
            ("lotledger", ["get", "--help"]),
            ("lotledger", ["get", "1", *srv]),
            ("lotledger", ["checkpoint", *srv]),
            ("lotledger", ["proof", "inclusion", "1", *srv]),
            ("lotledger", ["proof", "consistency", "1", "2", *srv]),
            ("lotledger", ["append", str(shipment), "--key", str(key), "--participant", "acme", *srv]),
            ("lotledger", ["trace", "down", lot, *srv]),
            ("lotledger", ["trace", "up", lot, *srv]),
            ("lotledger", ["recall", lot, *srv]),
        ]
        yield probe(SERVER_SIDE + CLIENT_SIDE, invocations)
    finally:
        server.stop(grace=1)


def test_client_commands_load_no_server(client_commands_loaded: dict[str, list[str]]) -> None:
    loaded = client_commands_loaded
    assert loaded["import"] == [] and loaded["lotledger get --help"] == []
    assert "grpc" in loaded[next(step for step in loaded if step.startswith("lotledger get 1"))]
    server_side = {step: [m for m in modules if m != "lmdb"] for step, modules in loaded.items()}
    assert first_to_load({step: [m for m in ms if m in SERVER_SIDE] for step, ms in server_side.items()}) == {}


def test_client_commands_load_no_lmdb(client_commands_loaded: dict[str, list[str]]) -> None:
    assert first_to_load({step: [m for m in ms if m == "lmdb"] for step, ms in client_commands_loaded.items()}) == {}


def listing(group: click.Group, width: int) -> str:
    """The Commands section of a group's help at a terminal width."""
    ctx = click.Context(group, info_name="lotledger", terminal_width=width)
    formatter = ctx.make_formatter()
    group.format_commands(ctx, formatter)
    return formatter.getvalue()


def test_the_table_is_the_commands() -> None:
    names = [entry.name for entry in COMMANDS]
    assert names == sorted(set(names))
    assert isinstance(main, LazyGroup) and list(main.lazy_commands) == names
    for entry in COMMANDS:
        command = entry.load()
        assert command.name == entry.name, entry.target
        assert entry.short_help == command.get_short_help_str(limit=10**6), entry.name


def test_listing_from_the_table_is_clicks_own_and_imports_nothing() -> None:
    """`lotledger --help` lists the commands from the table exactly as click would list the
    commands themselves, at any width (click shortens short help to fit)."""
    lazy = LazyGroup(lazy_commands=COMMANDS)
    eager = click.Group(commands=[entry.load() for entry in COMMANDS])
    for width in (50, 80, 100, 200):
        assert listing(lazy, width) == listing(eager, width)
    assert lazy.commands == {}  # listed, not loaded


def test_a_command_not_in_the_table_is_a_usage_error() -> None:
    result = run("no-such-command", ok=False)
    assert result.exit_code == 2 and "No such command 'no-such-command'" in result.output


def test_help_texts_copied_from_heavy_modules_still_match_them() -> None:
    """Option choices and defaults that `--help` shows are copied into cli/ so that building
    the options imports no heavy module; they must stay what those modules say."""
    from lotledger.cli import ca_cmd, keys_cmd
    from lotledger.cli import scan as scan_cmd
    from lotledger.ledger.core.policy import ROLES_BY_NAME
    from lotledger.rpc.server import LOG_KEY_PASSPHRASE_ENV
    from lotledger.scanner_client.station import MEANINGS
    from lotledger.signing.certs import DEFAULT_DAYS

    assert keys_cmd.ROLE_NAMES == tuple(sorted(ROLES_BY_NAME))
    assert scan_cmd.MEANING_NAMES == tuple(sorted(MEANINGS))
    assert ca_cmd.DEFAULT_DAYS == DEFAULT_DAYS
    assert ca_cmd.LOG_KEY_PASSPHRASE_ENV == LOG_KEY_PASSPHRASE_ENV


def test_the_module_runs_as_a_program(tmp_path: Path) -> None:
    """`python -m lotledger.cli.main` (what the tests and benchmarks start) is the same command."""
    done = subprocess.run(
        [sys.executable, "-m", "lotledger.cli.main", "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and "verify-evidence" in done.stdout
