"""The commands that read what the runs left: ``report clickops|principal`` (the index,
through ``ingest.ops.report``) and ``deadletter summary|replay`` (the dead-letter, through
``ingest.ops.replay``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from ingest.cli.common import (
    EXIT_ABORTED,
    EXIT_CONFIG,
    EXIT_DEADLETTER,
    EXIT_OK,
    PLAIN_HELP,
    environment,
    fail,
)
from ingest.cli.options import (
    Alias,
    AuthUser,
    AwsAuth,
    AwsRegion,
    CaCerts,
    DeadletterFile,
    Format,
    Gzip,
    IamDetails,
    IamUser,
    IndexPrefix,
    Insecure,
    Json,
    LogFormat,
    Opensearch,
    Output,
    PasswordFile,
    Profile,
    ReportSince,
    ReportUntil,
    RetryDeadline,
    Role,
    Timeout,
    Top,
    User,
)
from ingest.config import (
    DEFAULT_ALIAS,
    DEFAULT_INDEX_PREFIX,
    DEFAULT_LOG_FORMAT,
    DEFAULT_RETRY_DEADLINE,
    DEFAULT_TIMEOUT,
    SinkConfig,
    build_sink,
    default_deadletter_path,
)
from ingest.errors import ConfigError, IngestError, root_cause

__all__ = [
    "deadletter_app",
    "deadletter_replay",
    "deadletter_summary",
    "report_app",
    "report_clickops",
    "report_principal",
]

report_app = typer.Typer(
    **PLAIN_HELP, help="Reports from the index: ClickOps, least privilege.", no_args_is_help=True
)
deadletter_app = typer.Typer(
    **PLAIN_HELP, help="Look at and re-send what did not get indexed.", no_args_is_help=True
)


def _sink(options: dict[str, Any]) -> SinkConfig:
    try:
        return build_sink(options, environment())
    except ConfigError as exc:
        raise fail(str(exc), EXIT_CONFIG) from None


def _check_format(fmt: str) -> None:
    if fmt not in ("md", "csv", "json"):
        raise fail(f"--format {fmt!r}: expected md, csv or json", EXIT_CONFIG)


def _report(sink: SinkConfig, make: Callable[[Any], Any], fmt: str, output: Path | None) -> None:
    """Run ``make(client)`` on a blocking client and write its rendering to ``output``."""
    from ingest import cluster
    from ingest.ops.report import render

    client = cluster.open_sync_client(sink)
    try:
        result = make(client)
    except IngestError as exc:
        raise fail(f"report failed: {exc}", EXIT_ABORTED) from None
    finally:
        client.close()
    text = render(result, fmt)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"ct-ingest: report written to {output}", err=True)


@report_app.command("clickops")
def report_clickops(
    ctx: typer.Context,
    opensearch: Opensearch,
    since: ReportSince = "30d",
    until: ReportUntil = None,
    top: Top = 20,
    fmt: Format = "md",
    output: Output = None,
    alias: Alias = DEFAULT_ALIAS,
    timeout: Timeout = DEFAULT_TIMEOUT,
    insecure: Insecure = False,
    ca_certs: CaCerts = None,
    user: User = None,
    password_file: PasswordFile = None,
    aws_auth: AwsAuth = None,
    aws_region: AwsRegion = None,
    profile: Profile = None,
) -> None:
    """Console writes: totals and trend against the previous period, top users, resources,
    services and accounts, and the accounts with none."""
    from datetime import UTC, datetime

    from ingest.ops import report

    _check_format(fmt)
    sink = _sink(ctx.params)
    try:
        start, end = report.window(since, until, datetime.now(UTC))
    except ConfigError as exc:
        raise fail(str(exc), EXIT_CONFIG) from None
    _report(sink, lambda c: report.clickops_report(c, alias, start, end, top=top), fmt, output)


@report_app.command("principal")
def report_principal(
    ctx: typer.Context,
    opensearch: Opensearch,
    iam_user: IamUser = None,
    role: Role = None,
    since: ReportSince = "90d",
    until: ReportUntil = None,
    iam_details: IamDetails = None,
    fmt: Format = "md",
    output: Output = None,
    alias: Alias = DEFAULT_ALIAS,
    timeout: Timeout = DEFAULT_TIMEOUT,
    insecure: Insecure = False,
    ca_certs: CaCerts = None,
    user: AuthUser = None,
    password_file: PasswordFile = None,
    aws_auth: AwsAuth = None,
    aws_region: AwsRegion = None,
    profile: Profile = None,
) -> None:
    """The API actions a user or role actually used, also through the roles it assumed (across
    accounts), each with count and last use; with IAM details, the grants never used."""
    from datetime import UTC, datetime

    from ingest.ops import report

    _check_format(fmt)
    if (iam_user is None) == (role is None):
        raise fail("give exactly one of --user NAME or --role NAME", EXIT_CONFIG)
    sink = _sink(ctx.params)
    try:
        start, end = report.window(since, until, datetime.now(UTC))
        details = json.loads(iam_details.read_text()) if iam_details else None
    except (ConfigError, OSError, ValueError) as exc:
        raise fail(str(exc), EXIT_CONFIG) from None
    _report(
        sink,
        lambda c: report.principal_report(
            c, alias, user=iam_user, role=role, since=start, until=end, iam_details=details
        ),
        fmt,
        output,
    )


@deadletter_app.command("summary")
def deadletter_summary(file: DeadletterFile = None, as_json: Json = False) -> None:
    """Dead-letter entries grouped by stage and reason."""
    from rich.console import Console
    from rich.table import Table

    from ingest.deadletter import read_entries
    from ingest.ops.replay import summarize

    path = file or default_deadletter_path(environment())
    groups = summarize(read_entries(path))
    if as_json:
        rows = [
            {
                "stage": g.stage,
                "error_type": g.error_type,
                "count": g.count,
                "objects": len(g.objects),
                "replayable": g.replayable,
                "example": g.example,
            }
            for g in groups
        ]
        typer.echo(json.dumps({"file": str(path), "groups": rows}, indent=2))
        return
    table = Table(title=f"{sum(g.count for g in groups):,} dead-letter entries in {path}")
    for column in ("stage", "error", "entries", "objects", "replayable", "example reason"):
        table.add_column(
            column, justify="right" if column in ("entries", "objects", "replayable") else "left"
        )
    for g in groups:
        table.add_row(
            g.stage,
            g.error_type,
            f"{g.count:,}",
            f"{len(g.objects):,}",
            f"{g.replayable:,}",
            g.example,
        )
    Console().print(table)


@deadletter_app.command("replay")
def deadletter_replay(
    ctx: typer.Context,
    opensearch: Opensearch,
    file: DeadletterFile = None,
    index_prefix: IndexPrefix = DEFAULT_INDEX_PREFIX,
    alias: Alias = DEFAULT_ALIAS,
    timeout: Timeout = DEFAULT_TIMEOUT,
    retry_deadline: RetryDeadline = DEFAULT_RETRY_DEADLINE,
    insecure: Insecure = False,
    ca_certs: CaCerts = None,
    user: User = None,
    password_file: PasswordFile = None,
    aws_auth: AwsAuth = None,
    aws_region: AwsRegion = None,
    profile: Profile = None,
    gzip: Gzip = None,
    log_format: LogFormat = DEFAULT_LOG_FORMAT,
) -> None:
    """Re-send the dead-lettered records (after fixing the template or the records); what lands
    is removed from the file, what is still refused stays with its new reason."""
    from ingest import cluster
    from ingest.ops.replay import replay
    from ingest.sink import OpenSearchBulkClient
    from ingest.telemetry import configure_logging

    configure_logging(log_format)
    path = file or default_deadletter_path(environment())
    sink = _sink(ctx.params)
    if not path.exists():
        raise fail(f"no dead-letter file at {path}", EXIT_CONFIG)

    async def _go() -> Any:
        client = cluster.open_client(sink)
        try:
            await cluster.ping(client, sink.retry)
            await cluster.ensure_template(client, sink)
            return await replay(path, sink, OpenSearchBulkClient(client))
        finally:
            await client.close()

    try:
        report = asyncio.run(_go())
    except IngestError as exc:
        raise fail(
            f"replay aborted: {exc}; nothing was removed from {path}", EXIT_ABORTED
        ) from None
    except BaseExceptionGroup as group:
        raise fail(
            f"replay aborted: {root_cause(group)}; nothing was removed from {path}", EXIT_ABORTED
        ) from None
    typer.echo(
        f"ct-ingest replay: {report.entries:,} entries: {report.indexed:,} indexed "
        f"({report.already_there:,} were already there), {report.still_rejected:,} still refused, "
        f"{report.not_replayable:,} whole objects (rerun backfill with --retry-failed); "
        f"{report.remaining:,} left in {path}"
    )
    raise typer.Exit(EXIT_OK if report.still_rejected == 0 else EXIT_DEADLETTER)
