"""The docs' command examples are checked against the commands themselves, where they are
self-contained (the README's walkthrough runs in full: test_walkthrough.py).

- every `lotledger ...` and `lotledger-scan ...` line in a code block or inline code span of
  README.md and docs/ names a command that exists, with options that command has (except in a
  paragraph that says the command is "not built yet" or no such command "exists yet");
- every TOML example is a limits file `serve --print-config --config` accepts;
- every reason the status-code page lists is a reason the code raises;
- the README's links into docs/ lead to pages that exist.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import click
import grpc
import pytest
from click.testing import CliRunner

from lotledger.cli.main import main as lotledger_main
from lotledger.cli.scan import main as scan_main

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
ROOTS: dict[str, click.Command] = {"lotledger": lotledger_main, "lotledger-scan": scan_main}
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
# A paragraph that says so may name commands that do not exist yet ("Not built yet: `lotledger
# mirror`", "No `lotledger mirror` exists yet").
PLANNED = re.compile(r"not built yet|exists yet", re.I)


def code_lines(text: str) -> list[str]:
    """Lines of shell code blocks (continuations joined) and inline code spans."""
    lines: list[str] = []
    for lang, body in FENCE.findall(text):
        if lang in ("", "sh", "bash", "console"):
            lines += re.sub(r"\\\n\s*", " ", body).splitlines()
    for paragraph in re.split(r"\n\s*\n", FENCE.sub("", text)):
        if not PLANNED.search(paragraph):
            lines += re.findall(r"`(lotledger[^`]*)`", paragraph)
    return lines


def invocations(line: str) -> list[list[str]]:
    """The `lotledger`/`lotledger-scan` invocations on one line, as words (after a pipe, `&&`
    or a variable assignment too), without the comment."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError:  # an unbalanced quote in prose: not a command line
        return []
    found: list[list[str]] = []
    current: list[str] | None = None
    for word in words:
        if word in ("|", "&&", ";"):
            current = None
        elif Path(word).name in ROOTS and current is None:
            current = [Path(word).name]
            found.append(current)
        elif current is not None:
            current.append(word)
    return found


def option_names(word: str) -> list[str]:
    """The options a word of an example names: `[--from`, `--to=SIZE`, `--tls-ca/--tls-cert`."""
    word = word.strip("[]()|.,")
    if not word.startswith("--"):
        return []
    return [part.split("=")[0] for part in word.split("/") if part.startswith("--")]


def resolve(words: list[str]) -> tuple[click.Command, list[str]] | None:
    """The command the words name, and the words after it; None for a placeholder command."""
    command = ROOTS[words[0]]
    rest = words[1:]
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        if rest[0].startswith("<") or rest[0].isupper():
            return None  # `lotledger <command> --help`
        ctx = click.Context(command, info_name=words[0])
        sub = command.get_command(ctx, rest[0])
        assert sub is not None, f"no command `{' '.join(words[: len(words) - len(rest) + 1])}`"
        command, rest = sub, rest[1:]
    return command, rest


def all_examples() -> list[tuple[str, list[str]]]:
    return [
        (f"{page.relative_to(REPO)}: {line.strip()}", words)
        for page in PAGES
        for line in code_lines(page.read_text())
        for words in invocations(line)
    ]


def test_the_docs_have_examples_to_check() -> None:
    examples = all_examples()
    assert len(examples) > 100
    assert {words[1] for _, words in examples if words[0] == "lotledger" and len(words) > 1} >= {
        "verify",
        "trace",
        "recall",
        "export-epcis",
        "witness",
        "ca",
    }


@pytest.mark.parametrize("where,words", all_examples(), ids=lambda v: "" if isinstance(v, list) else v[:90])
def test_each_example_names_real_commands_and_options(where: str, words: list[str]) -> None:
    resolved = resolve(words)
    if resolved is None:
        return
    command, rest = resolved
    known = {opt for param in command.params for opt in param.opts} | {"--help", "-h"}
    if isinstance(command, click.Group):
        known |= {"--version"}
    unknown = [name for word in rest for name in option_names(word) if name not in known]
    assert not unknown, f"{where}\n  `{command.name}` has no option {', '.join(unknown)}"


def toml_examples() -> list[tuple[str, str]]:
    return [
        (str(page.relative_to(REPO)), body)
        for page in PAGES
        for lang, body in FENCE.findall(page.read_text())
        if lang == "toml"
    ]


@pytest.mark.parametrize("where,body", toml_examples())
def test_each_toml_example_is_a_limits_file_the_server_accepts(where: str, body: str, tmp_path: Path) -> None:
    config = tmp_path / "limits.toml"
    config.write_text(body)
    result = CliRunner().invoke(lotledger_main, ["serve", "--print-config", "--config", str(config)])
    assert result.exit_code == 0, f"{where}: {result.output}"
    effective = tomllib.loads(result.output)
    for section, values in tomllib.loads(body).items():
        for key, value in values.items():
            assert effective[section][key] == value, f"{where}: [{section}] {key} not applied"


def test_the_reasons_on_the_status_code_page_are_reasons_the_code_raises() -> None:
    page = (REPO / "docs/reference/status-codes.md").read_text()
    source = "\n".join(
        path.read_text() for part in ("ledger", "rpc", "trace", "audit") for path in (REPO / part).rglob("*.py")
    )
    named = set(re.findall(r"`([A-Z][A-Z_]{3,})`", page)) - set(grpc.StatusCode.__members__)
    assert len(named) > 30
    missing = sorted(reason for reason in named if f'"{reason}"' not in source)
    assert not missing, f"status-codes.md lists reasons the code never raises: {missing}"


def test_the_readmes_links_lead_to_pages_that_exist() -> None:
    readme = (REPO / "README.md").read_text()
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    local = [link for link in links if not re.match(r"\w+://", link)]
    assert len(local) > 20
    missing = [link for link in local if not (REPO / link).exists()]
    assert not missing, f"README links to missing files: {missing}"
    assert len(readme.splitlines()) <= 200, "the README is a landing page: the rest belongs in docs/"


def test_the_readmes_test_command_is_the_one_ci_runs() -> None:
    """.ci/run runs the README's test command (on a normal install) and says which it is."""
    readme = (REPO / "README.md").read_text()
    setup = readme[readme.index("## Set up") : readme.index("## Five-minute walkthrough")]
    blocks = [body.strip() for _, body in FENCE.findall(setup)]
    assert len(blocks) == 2, "the README has exactly two set-up commands"
    ci = (REPO / ".ci/run").read_text()
    assert f"# README: {blocks[1]}\n" in ci
