"""The README's five-minute walkthrough, run as written.

The commands come from the README itself: the server is the last part of the first set-up
command (`lotledger serve ./data --demo`), and the walkthrough is the fenced block after the
`<!-- walkthrough: ... -->` marker. Each command runs in bash in a fresh directory, against that
real server on a loopback port (the one change: LOTLEDGER_SERVER names the port, and the web
view gets a free port with --listen), and must exit 0. The key outputs are checked step by step,
so a README that changes a step fails here until this test is told what the step should print;
and every file the walkthrough leaves behind must be one that .gitignore covers.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lotledger.rpc.client import LedgerClient

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
MARKER = "<!-- walkthrough:"
BIN = Path(sys.executable).parent  # the installed `lotledger` and `lotledger-scan` live beside python


def fenced_block_after(text: str, start: int) -> str:
    """The body of the first fenced code block at or after `start`."""
    opening = text.index("```", start)
    body = text.index("\n", opening) + 1
    return text[body : text.index("\n```", body)]


def shell_commands(block: str) -> list[str]:
    """The commands of a shell block: comment and blank lines dropped, continued lines (a
    trailing backslash or pipe) and here-documents kept with their command."""
    lines, commands, i = block.splitlines(), [], 0
    while i < len(lines):
        command = lines[i]
        i += 1
        if not command.strip() or command.lstrip().startswith("#"):
            continue
        while command.rstrip().endswith(("\\", "|")):
            command += "\n" + lines[i]
            i += 1
        heredoc = re.search(r"<<'?(\w+)'?", command)
        if heredoc:
            while lines[i - 1].strip() != heredoc.group(1) or i - 1 == 0:
                command += "\n" + lines[i]
                i += 1
        commands.append(command)
    return commands


def setup_serve_command(readme: str) -> list[str]:
    """The server part of the README's first set-up command, with the venv's bin directory."""
    section = readme.index("## Set up")
    block = fenced_block_after(readme, section)
    assert "lotledger serve" in block, "the README's first set-up command no longer serves"
    serve = block.split("&&")[-1].strip()
    return [str(BIN / Path(word).name) if word.endswith("/lotledger") else word for word in shlex.split(serve)]


@dataclass
class Seen:
    """What the steps printed that later steps check against."""

    expected_seq: int
    seq: int | None = None
    leaf: str | None = None
    checked: set[str] = field(default_factory=set)


def step_checks(seen: Seen, tmp: Path) -> dict[str, Callable[[str], None]]:
    """For each step (by how its command starts), what its stdout must show."""

    def key_id(out: str) -> None:
        assert re.fullmatch(r"[0-9a-f]{64}\n", out), out
        assert (tmp / "walkthrough/acme.key").stat().st_mode & 0o077 == 0

    def registered(out: str) -> None:
        assert re.fullmatch(r"seq \d+  leaf [0-9a-f]{64}  record_id register/\S+\n", out), out

    def appended(out: str) -> None:
        match = re.fullmatch(r"seq (\d+)  leaf ([0-9a-f]{64})  record_id SH-1001\n", out)
        assert match, f"append's labelled line: {out!r}"
        seen.seq, seen.leaf = int(match.group(1)), match.group(2)
        assert seen.seq == seen.expected_seq, f"the README says `# prints: seq {seen.expected_seq}`, got {seen.seq}"

    def got(out: str) -> None:
        entry = json.loads(out)
        assert entry["seq"] == seen.seq and entry["leaf_hash"] == seen.leaf
        assert entry["record"]["shipment"]["shipment_id"] == "SH-1001" and entry["record"]["submitter"] == "acme"

    def proved(out: str) -> None:
        # the entry just appended, in the tree the latest signed checkpoint covers
        assert re.match(rf"entry {seen.seq} in tree of size \d+: leaf {seen.leaf}\n", out), out

    def checkpoint(out: str) -> None:
        note = (tmp / "walkthrough/head.note").read_text()
        assert note.startswith("demo.example.com/lotledger\n") and "\n\n\u2014 " in note

    def enrolled(out: str) -> None:
        assert (tmp / "walkthrough/scanner/device.key").stat().st_mode & 0o077 == 0

    def scanned(out: str) -> None:
        assert re.search(r"^spooled +#0 01/09520000000011/10/FL-2611$", out, re.M), out
        assert re.search(r"^accepted #0 -> entry \d+$", out, re.M), out

    def traced(out: str) -> None:
        assert "SH-1001" in out and "receive scan at plant-7/dock-2 by dock-2-scanner" in out, out

    def alerts(out: str) -> None:
        flagged = [line for line in out.splitlines() if "FL-2611" in line]
        assert any("SHIPPED_WITHOUT_QC" in line for line in flagged), out
        assert any("OVER_USED" in line for line in flagged), out

    def verified(out: str) -> None:
        assert out.startswith("OK: ") and "matches the signed checkpoint" in out, out

    def verified_since(out: str) -> None:
        assert out.startswith("OK: ") and "consistent with the checkpoint of size" in out, out

    return {
        "lotledger keys generate": key_id,
        "lotledger keys register --id acme": registered,
        "lotledger append": appended,
        "lotledger get --record-id": got,
        "lotledger proof inclusion": proved,
        "lotledger checkpoint": checkpoint,
        "lotledger-scan enroll": enrolled,
        "lotledger keys register --id dock-2-scanner": registered,
        "echo '(01)": scanned,
        "lotledger trace down": traced,
        "lotledger alerts": alerts,
        "lotledger verify --log-key data/log.vkey --since": verified_since,
        "lotledger verify --log-key data/log.vkey": verified,
    }


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def readme_server(tmp_path: Path) -> Iterator[str]:
    """The README's own serve command, started in tmp_path on a free loopback port."""
    address = f"127.0.0.1:{free_port()}"
    command = [*setup_serve_command(README.read_text()), "--listen", address]
    proc = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    client = LedgerClient(address)
    try:
        client.wait_ready(timeout=60)
    except Exception:
        proc.kill()
        raise AssertionError(f"{command}: {proc.communicate()[1].decode()}") from None
    finally:
        client.close()
    yield address
    proc.terminate()
    proc.wait(timeout=30)


def wait_for_page(url: str, proc: subprocess.Popen[str], timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                assert response.status == 200
                return str(response.read().decode())
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the web view did not answer at {url}: {proc.communicate()}") from None
            time.sleep(0.2)


def test_the_readme_walkthrough_runs_as_written(tmp_path: Path, readme_server: str) -> None:
    readme = README.read_text()
    assert MARKER in readme, "the README lost its walkthrough marker"
    block = fenced_block_after(readme, readme.index(MARKER))
    expected = re.search(r"# prints: seq (\d+)", block)
    assert expected, "the walkthrough says what `append` prints (# prints: seq N ...)"
    seen = Seen(expected_seq=int(expected.group(1)))
    checks = step_checks(seen, tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOTLEDGER_")}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", LOTLEDGER_SERVER=readme_server)
    exports = ""
    for command in shell_commands(block):
        if command.startswith("export "):
            exports += command + "\n"
            continue
        if command.startswith("lotledger web"):
            web = f"127.0.0.1:{free_port()}"
            proc = subprocess.Popen(
                ["bash", "-c", f"{exports}exec {command} --listen {web}"],
                cwd=tmp_path,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            try:
                page = wait_for_page(f"http://{web}/", proc)
                assert "<html" in page.lower()
            finally:
                proc.terminate()
                proc.wait(timeout=30)
            seen.checked.add("lotledger web")
            continue
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", exports + command],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"{command}\nexit {done.returncode}\n{done.stdout}\n{done.stderr}"
        for start, check in checks.items():
            if command.startswith(start):
                check(done.stdout)
                seen.checked.add(start)
                break
    missing = {*checks, "lotledger web"} - seen.checked
    assert not missing, f"the walkthrough no longer has these steps (update this test with the README): {missing}"

    # Everything the walkthrough wrote, the server's data included, is ignored by git.
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert any(p.endswith(".key") for p in written)
    if shutil.which("git") and (REPO / ".git").exists():
        ignored = subprocess.run(
            ["git", "-C", str(REPO), "check-ignore", "--no-index", "--stdin"],
            input="\n".join(written),
            capture_output=True,
            text=True,
        ).stdout.split()
        assert sorted(ignored) == written, f"not covered by .gitignore: {sorted(set(written) - set(ignored))}"


DEMO_MARKER = "<!-- checked: tests/docs/test_walkthrough.py runs this block against the demo server -->"


def test_the_docs_demo_examples_run_against_the_demo(tmp_path: Path, readme_server: str) -> None:
    """The QA pages' examples name the demo chain's lots: each marked block runs as written
    against the README's demo server, exits 0 and prints something."""
    blocks = [
        (page.relative_to(REPO), fenced_block_after(text, text.index(DEMO_MARKER)))
        for page in sorted((REPO / "docs").rglob("*.md"))
        if DEMO_MARKER in (text := page.read_text())
    ]
    assert len(blocks) >= 3
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOTLEDGER_")}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", LOTLEDGER_SERVER=readme_server)
    for page, block in blocks:
        for command in shell_commands(block):
            done = subprocess.run(
                ["bash", "-e", "-o", "pipefail", "-c", command],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0 and done.stdout.strip(), f"{page}: {command}\n{done.stdout}\n{done.stderr}"
