"""`lotledger serve --print-config` and `--config FILE`."""

from __future__ import annotations

from pathlib import Path

from cli_helpers import run

from lotledger.cli.output import ExitCode
from lotledger.rpc.limits import Limits, parse_limits


def test_print_config_shows_the_defaults_as_toml() -> None:
    out = run("serve", "--print-config").stdout
    assert parse_limits(out) == Limits()
    assert "[append]" in out and "rate = 2000.0" in out


def test_print_config_applies_the_file(tmp_path: Path) -> None:
    config = tmp_path / "limits.toml"
    config.write_text("[append]\nrate = 25\nstreams_per_participant = 2\n")
    limits = parse_limits(run("serve", "--config", str(config), "--print-config").stdout)
    assert limits.append_rate == 25.0 and limits.append_streams_per_participant == 2
    assert limits.append_burst == Limits().append_burst


def test_a_bad_config_file_is_a_usage_error(tmp_path: Path) -> None:
    config = tmp_path / "limits.toml"
    config.write_text("[append]\nrat = 25\n")
    result = run("serve", str(tmp_path / "data"), "--config", str(config), ok=False)
    assert result.exit_code == ExitCode.USAGE
    assert "unknown key 'rat' in [append]" in result.output
