"""The configuration file: precedence (command line > environment > file > default), errors that
name the key, sections per command, masked secrets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from ingest.cli import app


def _show(tmp_path: Path, toml: str, *args: str, env: dict[str, str] | None = None) -> Any:
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml)
    result = CliRunner(env=env or {}).invoke(
        app, ["--config", str(cfg), "config", "show", "--json", *args]
    )
    assert 0 == result.exit_code, result.output
    return {row["option"]: (row["value"], row["source"]) for row in orjson.loads(result.stdout)}


class TestConfigFile:
    def test_precedence(self, tmp_path: Path) -> None:
        """A file value beats the default, the environment beats the file, the command line
        beats both."""
        toml = 'opensearch = "http://file:9200"\nconcurrency = 7\nbulk-mib = 3.0\n'
        got = _show(
            tmp_path,
            toml,
            "backfill",
            "--",
            "--bulk-mib",
            "1.5",
            env={"CT_INGEST_CONCURRENCY": "9"},
        )
        assert ("http://file:9200", f"config {tmp_path / 'c.toml'}") == got["--opensearch"]
        assert (9, "env CT_INGEST_CONCURRENCY") == got["--concurrency"]
        assert (1.5, "command line") == got["--bulk-mib"]
        assert (4, "default") == got["--max-in-flight"]

    def test_gzip_is_auto_until_a_file_env_or_flag_says(self, tmp_path: Path) -> None:
        """--gzip shows auto by default; the file's false, CT_INGEST_GZIP and --gzip or
        --no-gzip set it, in the usual order."""
        path = f"config {tmp_path / 'c.toml'}"
        assert ("auto", "default") == _show(tmp_path, "", "backfill")["--gzip"]
        assert (False, path) == _show(tmp_path, "gzip = false\n", "tail")["--gzip"]
        env = {"CT_INGEST_GZIP": "false"}
        assert (False, "env CT_INGEST_GZIP") == _show(tmp_path, "", "backfill", env=env)["--gzip"]
        got = _show(tmp_path, "gzip = false\n", "backfill", "--", "--gzip", env=env)
        assert (True, "command line") == got["--gzip"]

    def test_sections_apply_to_their_command(self, tmp_path: Path) -> None:
        """[tail] values reach tail, not backfill; nested sections reach grouped commands."""
        toml = "concurrency = 5\n[tail]\nconcurrency = 3\n[report.clickops]\ntop = 50\n"
        assert 5 == _show(tmp_path, toml, "backfill")["--concurrency"][0]
        assert 3 == _show(tmp_path, toml, "tail")["--concurrency"][0]
        assert 50 == _show(tmp_path, toml, "report.clickops")["--top"][0]

    def test_secrets_are_masked(self, tmp_path: Path) -> None:
        """The password and webhook never print."""
        got = _show(
            tmp_path,
            'webhook = "https://hooks.example.com/T000/SECRET"\n',
            "setup",
            env={"CT_INGEST_PASSWORD": "hunter2"},
        )
        assert ("*****", f"config {tmp_path / 'c.toml'}") == got["--webhook"]
        assert ("*****", "env CT_INGEST_PASSWORD") == got["(password)"]

    @pytest.mark.parametrize(
        ("toml", "message"),
        [
            ("concurency = 3\n", "unknown key 'concurency'"),
            ('concurrency = "many"\n', "concurrency: "),
            ("[backfil]\nx = 1\n", "unknown section [backfil]"),
            ('[tail]\nuntil = "30d"\n', "[tail] until: unknown key for this command"),
            ('account = "1111"\n', "account: "),
            ("not toml at all =\n", "not valid TOML"),
        ],
    )
    def test_errors_name_the_key(self, tmp_path: Path, toml: str, message: str) -> None:
        """A bad file is a configuration error (exit 2) whose message names the key."""
        cfg = tmp_path / "c.toml"
        cfg.write_text(toml)
        result = CliRunner().invoke(app, ["--config", str(cfg), "status"])
        assert 2 == result.exit_code
        assert message in result.stderr
