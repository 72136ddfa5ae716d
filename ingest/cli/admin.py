"""The commands around the runs: ``setup`` (templates, retention, dashboards, alerts),
``status`` (the ledger's figures, ``ingest.ops.status``) and ``config show`` (the effective
configuration, ``ingest.configfile.effective_options``)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ingest.cli.common import EXIT_ABORTED, EXIT_CONFIG, PLAIN_HELP, environment, fail
from ingest.cli.options import (
    Alerts,
    Alias,
    AwsAuth,
    AwsRegion,
    CaCerts,
    ClickopsThreshold,
    Codec,
    Dashboards,
    IndexPrefix,
    Insecure,
    Json,
    LogFormat,
    Opensearch,
    PasswordFile,
    Profile,
    RefreshInterval,
    Replicas,
    ResourcePattern,
    RetentionDays,
    RetryDeadline,
    Shards,
    ShowArgs,
    ShowCommand,
    SigmaRules,
    SqsQueueUrl,
    State,
    Target,
    Timeout,
    User,
    Webhook,
)
from ingest.config import (
    DEFAULT_ALIAS,
    DEFAULT_INDEX_PREFIX,
    DEFAULT_LOG_FORMAT,
    DEFAULT_RETRY_DEADLINE,
    DEFAULT_TIMEOUT,
    IndexConfig,
    build_sink,
    default_ledger_path,
    from_environment,
)
from ingest.errors import ConfigError, IngestError
from ingest.retry import RetryPolicy

if TYPE_CHECKING:
    from ingest.config import SinkConfig
    from ingest.targets import Target as Cluster

__all__ = ["config_app", "config_show", "setup", "status"]

_INDEX = IndexConfig()  # the index defaults


def setup(
    ctx: typer.Context,
    opensearch: Opensearch,
    index_prefix: IndexPrefix = DEFAULT_INDEX_PREFIX,
    alias: Alias = DEFAULT_ALIAS,
    shards: Shards = _INDEX.shards,
    replicas: Replicas = _INDEX.replicas,
    refresh_interval: RefreshInterval = _INDEX.refresh_interval,
    codec: Codec = _INDEX.codec,
    retention_days: RetentionDays = _INDEX.retention_days,
    timeout: Timeout = DEFAULT_TIMEOUT,
    retry_deadline: RetryDeadline = DEFAULT_RETRY_DEADLINE,
    insecure: Insecure = False,
    ca_certs: CaCerts = None,
    user: User = None,
    password_file: PasswordFile = None,
    aws_auth: AwsAuth = None,
    target: Target = "auto",
    aws_region: AwsRegion = None,
    profile: Profile = None,
    dashboards: Dashboards = None,
    alerts: Alerts = False,
    webhook: Webhook = None,
    clickops_threshold: ClickopsThreshold = 20,
    resource_pattern: ResourcePattern = "*:db:*prod*",
    sigma: SigmaRules = None,
    log_format: LogFormat = DEFAULT_LOG_FORMAT,
) -> None:
    """Install (or update) the index templates from mappings/, the retention policy, and on
    request the dashboards, the alert monitors and one monitor per Sigma rule."""
    from ingest import cluster, targets
    from ingest.telemetry import configure_logging

    configure_logging(log_format)
    try:
        sink = build_sink(ctx.params, environment())
        index = IndexConfig(
            shards=shards,
            replicas=replicas,
            refresh_interval=refresh_interval,
            codec=codec,
            retention_days=retention_days,
        )
    except ConfigError as exc:
        raise fail(str(exc), EXIT_CONFIG) from None

    async def _go() -> tuple[targets.Target, str, str]:
        client = cluster.open_client(sink)
        try:
            found = await targets.identify(client, sink)
            name = await targets.install_templates(client, sink, index, found)
            retention = await targets.install_retention(client, sink, index, found)
            if alerts or sigma:
                await targets.detect_plugins(client, sink, found)
            return found, name, retention
        finally:
            await client.close()

    if alerts and not webhook:
        raise fail("--alerts needs --webhook URL (Slack, Teams or any HTTP endpoint)", EXIT_CONFIG)
    try:
        found, name, retention = asyncio.run(_go())
    except IngestError as exc:
        raise fail(f"setup aborted: {exc}", EXIT_ABORTED) from None
    typer.echo(f"ct-ingest: target: {found.describe()}")
    typer.echo(f"ct-ingest: index template {name} installed for {index_prefix}* (alias {alias})")
    for note in found.notes():
        typer.echo(f"ct-ingest: {note}")
    typer.echo(f"ct-ingest: {retention}")
    if alerts or sigma:
        for line in _monitors(
            sink,
            found,
            alias=alias,
            webhook=webhook,
            alerts=alerts,
            sigma=sigma,
            threshold=clickops_threshold,
            resource_pattern=resource_pattern,
        ):
            typer.echo(f"ct-ingest: {line}")
    if dashboards:
        from ingest.ops.dashboards import import_saved_objects, saved_objects

        try:
            count = import_saved_objects(
                dashboards,
                saved_objects(alias, app=found.dashboards_app),
                username=sink.username,
                password=sink.password,
                verify=sink.verify_certs,
            )
        except IngestError as exc:
            raise fail(f"dashboards: {exc}", EXIT_ABORTED) from None
        typer.echo(
            f"ct-ingest: dashboards: {count} saved objects imported (overwrite) into "
            f"{found.dashboards_app} at {dashboards}"
        )


def _absent(found: Cluster, *components: str) -> str | None:
    """Why the plugins ``components`` are not there, or None when they are (or may be)."""
    from ingest.targets import Kind

    if found.kind is not Kind.OPENSEARCH:
        return (
            f"{found.describe()} has no OpenSearch Alerting and Notifications plugins "
            "(_plugins/_alerting)"
        )
    missing = [c for c in components if not found.has_plugin(c)]
    return (
        f"{found.describe()} runs no {' or '.join(missing)} (GET _cat/plugins)" if missing else None
    )


def _monitors(
    sink: SinkConfig,
    found: Cluster,
    *,
    alias: str,
    webhook: str | None,
    alerts: bool,
    sigma: Path | None,
    threshold: int,
    resource_pattern: str,
) -> list[str]:
    """Install the alert monitors and the Sigma rules' monitors; what was done, one line each
    (a plugin the cluster lacks is one line, and setup carries on)."""
    from ingest import cluster
    from ingest.ops import alerts as ops
    from ingest.targets import ALERTING, NOTIFICATIONS

    lines = []
    plugins = (ALERTING, NOTIFICATIONS) if webhook else (ALERTING,)
    if alerts and (why := _absent(found, ALERTING, NOTIFICATIONS)):
        lines.append(f"alerts: not installed: {why}")
        alerts = False
    if sigma and (why := _absent(found, *plugins)):
        lines.append(f"sigma: no monitors installed: {why}")
        sigma = None
    if not (alerts or sigma):
        return lines
    client = cluster.open_sync_client(sink)
    try:
        channel = ops.install_channel(client, alias=alias, webhook=webhook) if webhook else ""
        if alerts:
            lines.append(
                ops.install_alerts(
                    client,
                    channel=channel,
                    alias=alias,
                    threshold=threshold,
                    resource_pattern=resource_pattern,
                )
            )
        if sigma:
            lines += _sigma_monitors(client, sigma, alias=alias, channel=channel)
    except IngestError as exc:
        raise fail(f"setup aborted: {exc}", EXIT_ABORTED) from None
    finally:
        client.close()
    return lines


def _sigma_monitors(client: Any, rules: Path, *, alias: str, channel: str) -> list[str]:
    from ingest.ops.alerts import install_monitors, sigma_monitors
    from ingest.sigma.convert import convert_paths

    monitors, skipped = sigma_monitors(convert_paths([rules]), alias=alias, channel_id=channel)
    done = install_monitors(client, monitors)
    posting = (
        f", posting to webhook channel {channel}" if channel else " (no --webhook: alerts only)"
    )
    return [*skipped, f"sigma: {len(monitors)} rule monitors ({done}){posting}"]


def status(
    ctx: typer.Context,
    state: State = None,
    as_json: Json = False,
    sqs_queue_url: SqsQueueUrl = None,
    opensearch: Opensearch = "",
    alias: Alias = DEFAULT_ALIAS,
    user: User = None,
    password_file: PasswordFile = None,
    aws_auth: AwsAuth = None,
    aws_region: AwsRegion = None,
    profile: Profile = None,
    insecure: Insecure = False,
    ca_certs: CaCerts = None,
    retry_deadline: RetryDeadline = DEFAULT_RETRY_DEADLINE,
) -> None:
    """Progress of the last (or running) backfill, from the checkpoint ledger; with
    --sqs-queue-url, of a fleet of workers: the queue's depth, its dead-letter queue and (with
    --opensearch) the index's documents."""
    from rich.console import Console
    from rich.table import Table

    from ingest.ops.status import ledger_status

    if sqs_queue_url:
        _queue_status(ctx, sqs_queue_url, as_json=as_json)
        return
    try:
        info = ledger_status(state or default_ledger_path(environment()))
    except ConfigError as exc:
        raise fail(str(exc), EXIT_CONFIG) from None
    if as_json:
        typer.echo(json.dumps(info.as_dict(), indent=2))
        return
    totals = info.objects
    table = Table(title=f"ct-ingest status ({info.ledger})", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row(
        "objects done / in flight / pending / failed",
        " / ".join(f"{totals[k]:,}" for k in ("done", "in_flight", "pending", "failed")),
    )
    table.add_row(
        "events indexed / dead-lettered / skipped (all runs)",
        f"{totals['indexed']:,} / {totals['deadlettered']:,} / {totals['skipped']:,}",
    )
    table.add_row("bytes of settled objects", f"{totals['bytes_done'] / 1e6:,.1f} MB")
    if (r := info.run) is not None:
        table.add_row(
            "last run", f"#{r.id} {r.status} on {r.host} (pid {r.pid}), started {r.started}"
        )
        table.add_row("source", r.source)
        table.add_row(
            "this run: objects, events, MB",
            f"{r.objects_done:,} of {r.listed:,} listed, {r.records:,}, {r.bytes / 1e6:,.1f}",
        )
        table.add_row("rate", f"{r.events_per_second:,.0f} events/s")
        eta_text = "listing..." if r.status == "running" and not r.listing_done else "-"
        table.add_row("ETA", f"{r.eta_seconds:,} s" if r.eta_seconds is not None else eta_text)
    Console().print(table)
    if totals["failed"]:
        typer.echo(
            f"{totals['failed']:,} objects failed and are not retried by a rerun: see "
            "`ct-ingest deadletter summary`; rerun the backfill with `--retry-failed`"
        )
        for key in info.failed[:10]:
            typer.echo(f"  failed: {key}")


def _queue_status(ctx: typer.Context, url: str, *, as_json: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    from ingest.ops.status import queue_status

    env = environment()
    try:
        sink = build_sink(ctx.params, env) if ctx.params.get("opensearch") else None
        retry = RetryPolicy.within(ctx.params["retry_deadline"])
    except ConfigError as exc:
        raise fail(str(exc), EXIT_CONFIG) from None
    try:
        info = asyncio.run(
            queue_status(
                url,
                retry=retry,
                endpoint_url=from_environment(env).sqs_endpoint_url,
                region=ctx.params.get("aws_region"),
                profile=ctx.params.get("profile"),
                sink=sink,
            )
        )
    except IngestError as exc:
        raise fail(f"status: {exc}", EXIT_ABORTED) from None
    if as_json:
        typer.echo(json.dumps(info.as_dict(), indent=2))
        return
    table = Table(title=f"ct-ingest status ({url})", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("messages waiting / in flight / delayed", f"{info.waiting:,} / "
                  f"{info.in_flight:,} / {info.delayed:,}")  # fmt: skip
    dead = "no redrive policy" if info.dead_letter is None else f"{info.dead_letter:,}"
    table.add_row("messages on the dead-letter queue", dead)
    if info.documents is not None:
        table.add_row(f"documents in {info.alias}", f"{info.documents:,}")
    Console().print(table)


config_app = typer.Typer(**PLAIN_HELP, help="The effective configuration.", no_args_is_help=True)


@config_app.command("show")
def config_show(
    ctx: typer.Context,
    command: ShowCommand = "backfill",
    args: ShowArgs = None,
    as_json: Json = False,
) -> None:
    """Every option of COMMAND with its effective value (secrets masked) and where it came from:
    command line, environment, config file, or default."""
    from rich.console import Console
    from rich.table import Table

    from ingest.configfile import effective_options

    try:
        rows = effective_options(ctx.find_root(), command, args or [], environment())
    except ConfigError as exc:
        raise fail(str(exc), EXIT_CONFIG) from None
    if as_json:
        out: list[dict[str, Any]] = [{"option": o, "value": v, "source": w} for o, v, w in rows]
        typer.echo(json.dumps(out, default=str, indent=2))
        return
    table = Table(title=f"ct-ingest {command}: effective configuration")
    for column in ("option", "value", "from"):
        table.add_column(column)
    for option, value, where in rows:
        table.add_row(option, "-" if value is None else str(value), where)
    Console().print(table)
