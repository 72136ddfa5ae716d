"""The ``ct-ingest`` command line: the edge where the environment is read, settings are built
and exit codes decided.

The commands are thin adapters (parse, build settings, call the library, map the outcome to
an exit code): :mod:`ingest.cli.run` (backfill, tail, verify, demo), :mod:`ingest.cli.fleet`
(enqueue), :mod:`ingest.cli.admin`
(setup, status, config show), :mod:`ingest.cli.reports` (report, deadletter) and
:mod:`ingest.cli.sigma` (sigma convert, hunt); every option
is declared once, in :mod:`ingest.cli.options`; exit codes and the environment are in
:mod:`ingest.cli.common`.

Exit codes: 0 every record indexed or skipped by rule; 1 finished, but something went to the
dead-letter; 2 usage or configuration error; 3 aborted (e.g. OpenSearch unreachable after retries).
"""

from __future__ import annotations

import typer

from ingest.cli import admin, fleet, reports, run, sigma
from ingest.cli.common import (
    EXIT_ABORTED,
    EXIT_CONFIG,
    EXIT_DEADLETTER,
    EXIT_OK,
    PLAIN_HELP,
    environment,
    fail,
)
from ingest.cli.options import ConfigFile, Version
from ingest.errors import ConfigError

__all__ = ["EXIT_ABORTED", "EXIT_CONFIG", "EXIT_DEADLETTER", "EXIT_OK", "app", "main"]

app = typer.Typer(
    **PLAIN_HELP,
    name="ct-ingest",
    help="Move AWS CloudTrail archives from S3 into OpenSearch, fast and exactly once.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(ctx: typer.Context, version: Version = False, config: ConfigFile = None) -> None:
    """ct-ingest: CloudTrail → OpenSearch."""
    from ingest.configfile import load_default_map, resolve_path

    if ctx.resilient_parsing:
        return
    try:
        path = resolve_path(config, environment())
        if path is None:
            return
        if not path.is_file():
            raise ConfigError(f"config {path}: no such file")
        ctx.default_map = load_default_map(path, ctx.command, ctx)
    except ConfigError as exc:
        raise fail(str(exc), EXIT_CONFIG) from None
    ctx.meta["config_path"] = path


app.command()(run.backfill)
app.command()(admin.setup)
app.command()(run.tail)
app.command()(fleet.enqueue)
app.command()(admin.status)
app.command()(run.verify)
app.add_typer(reports.report_app, name="report")
app.add_typer(reports.deadletter_app, name="deadletter")
app.add_typer(admin.config_app, name="config")
app.add_typer(sigma.sigma_app, name="sigma")
app.command()(run.demo)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="ct-ingest")
