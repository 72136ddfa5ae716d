"""What the commands share: the exit codes, the environment, one-line errors, and the mapping
from how a run ended to an exit code.

Exit codes: 0 every record indexed or skipped by rule; 1 finished, but something went to the
dead-letter; 2 usage or configuration error; 3 aborted (e.g. OpenSearch unreachable after retries).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

import structlog
import typer

from ingest.errors import ConfigError, IngestError, root_cause
from ingest.telemetry import Verdict

__all__ = [
    "EXIT_ABORTED",
    "EXIT_CONFIG",
    "EXIT_DEADLETTER",
    "EXIT_OK",
    "PLAIN_HELP",
    "environment",
    "exit_code",
    "fail",
    "run_job",
]

EXIT_OK, EXIT_DEADLETTER, EXIT_CONFIG, EXIT_ABORTED = 0, 1, 2, 3

# Help text is plain text: rich markup in it (``[/PREFIX]``, ``[...]``) would be parsed as
# style tags and crash the help screen, so every Typer here renders help without markup.
PLAIN_HELP: dict[str, Any] = {"rich_markup_mode": None}

_log = structlog.get_logger("ingest.cli")


def environment() -> dict[str, str]:
    """The process environment: read here, and only here, and handed to the library."""
    return dict(os.environ)


def fail(message: str, code: int) -> typer.Exit:
    """Say ``message`` on stderr; the caller raises the returned exit."""
    typer.echo(f"ct-ingest: {message}", err=True)
    return typer.Exit(code)


def exit_code(verdict: Verdict, *, tail: bool = False) -> int:
    """A run's exit code: a tail ends by being stopped, so for a tail that is success."""
    if verdict is Verdict.STOPPED:
        return EXIT_OK if tail else EXIT_ABORTED
    return EXIT_DEADLETTER if verdict is Verdict.DEADLETTERS else EXIT_OK


def run_job(job: Callable[[], int]) -> int:
    """``job()``'s exit code, or the one of how it failed: interrupted 3, a configuration error
    2, anything else 3 (with the cause; logged as ``crashed`` when it is not one of ours)."""
    try:
        return job()
    except (KeyboardInterrupt, asyncio.CancelledError):
        typer.echo("ct-ingest: interrupted; run the same command again to resume", err=True)
        return EXIT_ABORTED
    except BaseException as exc:  # and exception groups: the root cause decides
        cause = root_cause(exc)
        if isinstance(cause, ConfigError):
            typer.echo(f"ct-ingest: {cause}", err=True)
            return EXIT_CONFIG
        if not isinstance(cause, IngestError):
            _log.exception("crashed", error=type(cause).__name__)
        typer.echo(
            f"ct-ingest aborted: {type(cause).__name__}: {cause}; "
            "fix the cause and run the same command again to resume",
            err=True,
        )
        return EXIT_ABORTED
