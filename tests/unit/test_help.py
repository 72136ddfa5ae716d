"""Every help screen renders: the app's, and every command's and sub-command's, discovered from
the app itself so a new command cannot be forgotten."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from ingest.cli import app


def _command_paths(group: Any, ctx: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield prefix
    if hasattr(group, "list_commands"):
        for name in group.list_commands(ctx):
            sub = group.get_command(ctx, name)
            if sub is not None and not getattr(sub, "hidden", False):
                yield from _command_paths(sub, ctx, (*prefix, name))


def _all_paths() -> list[tuple[str, ...]]:
    root = typer.main.get_command(app)
    ctx = root.make_context("ct-ingest", [], resilient_parsing=True)
    return list(_command_paths(root, ctx))


PATHS = _all_paths()


class TestHelp:
    def test_every_command_is_discovered(self) -> None:
        """Discovery reaches the commands and the sub-commands of every group."""
        names = {" ".join(p) for p in PATHS}
        assert {"backfill", "tail", "verify", "setup", "report clickops", "deadletter replay"} <= (
            names
        )

    @pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "ct-ingest")
    def test_help_renders(self, path: tuple[str, ...]) -> None:
        """``--help`` exits 0 with a usage line and the command's options, whatever the markup
        characters in the help text (``[/PREFIX]``, ``[...]``)."""
        result = CliRunner().invoke(app, [*path, "--help"], catch_exceptions=True)
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(
            result.exception
        )
        assert 0 == result.exit_code, result.output
        assert "Usage:" in result.output
        assert "--help" in result.output

    @pytest.mark.parametrize("width", ["40", "200"])
    def test_help_renders_at_any_terminal_width(
        self, width: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Narrow and wide terminals both render the longest help screen."""
        monkeypatch.setenv("COLUMNS", width)
        result = CliRunner().invoke(app, ["backfill", "--help"], catch_exceptions=True)
        assert 0 == result.exit_code, result.output
        assert "[/PREFIX]" in result.output
