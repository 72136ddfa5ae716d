"""The commands that read a source: ``backfill``, ``tail``, ``verify``, and the ``demo``.

Each parses its options, builds the settings (``ingest.config.build_settings``), calls the
library (``ingest.runner``, ``ingest.ops.verify``, ``ingest.demo``) and maps the outcome to an
exit code.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import typer

from ingest.cli.common import (
    EXIT_ABORTED,
    EXIT_CONFIG,
    EXIT_DEADLETTER,
    EXIT_OK,
    environment,
    exit_code,
    fail,
    run_job,
)
from ingest.cli.options import (
    Account,
    Alias,
    AsnDb,
    AwsAuth,
    AwsRegion,
    BackfillMode,
    BulkLingerMs,
    BulkMib,
    BulkTargetSeconds,
    CaCerts,
    Concurrency,
    Deadletter,
    DemoEvents,
    DemoSeed,
    DrainSeconds,
    Exclude,
    ExitWhenIdle,
    GeoipDb,
    Gzip,
    IncludeInsight,
    IndexPrefix,
    InflightMib,
    Insecure,
    Json,
    KeepRunning,
    LogFormat,
    MaxBulkMib,
    MaxInFlight,
    MaxObjectMib,
    MetricsPort,
    Opensearch,
    PasswordFile,
    PollInterval,
    Profile,
    RediscoverMinutes,
    Region,
    Repair,
    RetryDeadline,
    RetryFailed,
    RewindMinutes,
    Shard,
    Since,
    Source,
    SqsQueueUrl,
    SqsVisibility,
    SqsWaitSeconds,
    State,
    TailSince,
    Target,
    Timeout,
    UnhealthyAfter,
    Until,
    User,
    Verbose,
    Workers,
)
from ingest.config import (
    DEFAULT_ALIAS,
    DEFAULT_BULK_BYTES,
    DEFAULT_BULK_LINGER_SECONDS,
    DEFAULT_CONCURRENCY,
    DEFAULT_DRAIN_SECONDS,
    DEFAULT_INDEX_PREFIX,
    DEFAULT_INFLIGHT_BYTES,
    DEFAULT_LOG_FORMAT,
    DEFAULT_MAX_BULK_BYTES,
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_MAX_OBJECT_BYTES,
    DEFAULT_RETRY_DEADLINE,
    DEFAULT_TARGET_SECONDS,
    DEFAULT_TIMEOUT,
    MiB,
    build_settings,
)
from ingest.errors import ConfigError, IngestError, root_cause
from ingest.tail import TailConfig

__all__ = ["backfill", "demo", "tail", "verify"]

_TAIL = TailConfig()  # tail's own defaults


def backfill(
    ctx: typer.Context,
    source: Source,
    opensearch: Opensearch,
    state: State = None,
    deadletter: Deadletter = None,
    since: Since = None,
    until: Until = None,
    account: Account = None,
    region: Region = None,
    include_insight: IncludeInsight = False,
    exclude: Exclude = None,
    geoip_db: GeoipDb = None,
    asn_db: AsnDb = None,
    concurrency: Concurrency = DEFAULT_CONCURRENCY,
    workers: Workers = None,
    profile: Profile = None,
    aws_region: AwsRegion = None,
    user: User = None,
    password_file: PasswordFile = None,
    aws_auth: AwsAuth = None,
    target: Target = "auto",
    gzip: Gzip = None,
    index_prefix: IndexPrefix = DEFAULT_INDEX_PREFIX,
    alias: Alias = DEFAULT_ALIAS,
    bulk_mib: BulkMib = DEFAULT_BULK_BYTES / MiB,
    max_bulk_mib: MaxBulkMib = DEFAULT_MAX_BULK_BYTES / MiB,
    max_in_flight: MaxInFlight = DEFAULT_MAX_IN_FLIGHT,
    bulk_target_seconds: BulkTargetSeconds = DEFAULT_TARGET_SECONDS,
    bulk_linger_ms: BulkLingerMs = DEFAULT_BULK_LINGER_SECONDS * 1000,
    timeout: Timeout = DEFAULT_TIMEOUT,
    retry_deadline: RetryDeadline = DEFAULT_RETRY_DEADLINE,
    drain_seconds: DrainSeconds = DEFAULT_DRAIN_SECONDS,
    shard: Shard = None,
    inflight_mib: InflightMib = DEFAULT_INFLIGHT_BYTES / MiB,
    max_object_mib: MaxObjectMib = DEFAULT_MAX_OBJECT_BYTES / MiB,
    retry_failed: RetryFailed = False,
    backfill_mode: BackfillMode = True,
    insecure: Insecure = False,
    ca_certs: CaCerts = None,
    log_format: LogFormat = DEFAULT_LOG_FORMAT,
    verbose: Verbose = False,
) -> None:
    """Load a CloudTrail archive into OpenSearch once; rerun to resume."""
    from ingest.runner import run_backfill
    from ingest.telemetry import configure_logging, report_run

    try:
        settings = build_settings(ctx.params, environment())
    except ConfigError as exc:
        raise fail(str(exc), EXIT_CONFIG) from None
    console = configure_logging(settings.log_format, verbose=verbose)

    def job() -> int:
        stats = asyncio.run(run_backfill(settings, console=console))
        return exit_code(report_run(stats, deadletter=settings.deadletter_path))

    raise typer.Exit(run_job(job))


def tail(
    ctx: typer.Context,
    source: Source,
    opensearch: Opensearch,
    state: State = None,
    deadletter: Deadletter = None,
    poll_interval: PollInterval = _TAIL.poll_interval,
    rediscover_minutes: RediscoverMinutes = _TAIL.rediscover_seconds / 60,
    rewind_minutes: RewindMinutes = _TAIL.rewind / timedelta(minutes=1),
    since: TailSince = None,
    sqs_queue_url: SqsQueueUrl = None,
    sqs_wait_seconds: SqsWaitSeconds = _TAIL.sqs_wait_seconds,
    sqs_visibility: SqsVisibility = _TAIL.sqs_visibility,
    exit_when_idle: ExitWhenIdle = None,
    metrics_port: MetricsPort = None,
    unhealthy_after: UnhealthyAfter = _TAIL.unhealthy_after,
    account: Account = None,
    region: Region = None,
    include_insight: IncludeInsight = False,
    exclude: Exclude = None,
    geoip_db: GeoipDb = None,
    asn_db: AsnDb = None,
    concurrency: Concurrency = 16,
    workers: Workers = None,
    profile: Profile = None,
    aws_region: AwsRegion = None,
    user: User = None,
    password_file: PasswordFile = None,
    aws_auth: AwsAuth = None,
    target: Target = "auto",
    gzip: Gzip = None,
    index_prefix: IndexPrefix = DEFAULT_INDEX_PREFIX,
    alias: Alias = DEFAULT_ALIAS,
    bulk_linger_ms: BulkLingerMs = DEFAULT_BULK_LINGER_SECONDS * 1000,
    timeout: Timeout = DEFAULT_TIMEOUT,
    retry_deadline: RetryDeadline = 86_400.0,  # a day: a tail outlives outages
    drain_seconds: DrainSeconds = DEFAULT_DRAIN_SECONDS,
    max_object_mib: MaxObjectMib = DEFAULT_MAX_OBJECT_BYTES / MiB,
    insecure: Insecure = False,
    ca_certs: CaCerts = None,
    log_format: LogFormat = DEFAULT_LOG_FORMAT,
    verbose: Verbose = False,
) -> None:
    """Keep the index current: poll the bucket (or read S3 notifications from SQS) until stopped."""
    from ingest.runner import build_tail, run_tail
    from ingest.telemetry import configure_logging, report_run

    env = environment()
    try:
        # --since is tail's own start point (a timestamp), not the backfill's day filter.
        settings = build_settings({**ctx.params, "since": None, "backfill_mode": False}, env)
        config = build_tail(ctx.params, env)
    except ConfigError as exc:
        raise fail(str(exc), EXIT_CONFIG) from None
    configure_logging(settings.log_format, verbose=verbose)  # no total: no progress bar

    def job() -> int:
        stats = asyncio.run(run_tail(settings, config))
        return exit_code(
            report_run(stats, deadletter=settings.deadletter_path, tail=True), tail=True
        )

    raise typer.Exit(run_job(job))


def verify(
    ctx: typer.Context,
    source: Source,
    opensearch: Opensearch,
    state: State = None,
    deadletter: Deadletter = None,
    since: Since = None,
    until: Until = None,
    account: Account = None,
    region: Region = None,
    include_insight: IncludeInsight = False,
    exclude: Exclude = None,
    shard: Shard = None,
    concurrency: Concurrency = DEFAULT_CONCURRENCY,
    profile: Profile = None,
    aws_region: AwsRegion = None,
    user: User = None,
    password_file: PasswordFile = None,
    aws_auth: AwsAuth = None,
    target: Target = "auto",
    index_prefix: IndexPrefix = DEFAULT_INDEX_PREFIX,
    alias: Alias = DEFAULT_ALIAS,
    timeout: Timeout = DEFAULT_TIMEOUT,
    retry_deadline: RetryDeadline = DEFAULT_RETRY_DEADLINE,
    insecure: Insecure = False,
    ca_certs: CaCerts = None,
    as_json: Json = False,
    repair: Repair = False,
    log_format: LogFormat = DEFAULT_LOG_FORMAT,
) -> None:
    """Reconcile the source against the index, object by object; exit 0 only when they match."""
    from ingest.ops.verify import verify as run_verify
    from ingest.telemetry import configure_logging

    configure_logging(log_format)
    try:
        settings = build_settings({**ctx.params, "workers": 0}, environment())
    except ConfigError as exc:
        raise fail(str(exc), EXIT_CONFIG) from None
    try:
        report = asyncio.run(run_verify(settings, repair=repair))
    except IngestError as exc:
        raise fail(f"verify aborted: {exc}", EXIT_ABORTED) from None
    except BaseExceptionGroup as group:
        raise fail(f"verify aborted: {root_cause(group)}", EXIT_ABORTED) from None
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        for p in report.problems[:50]:
            what = p.unreadable or (
                f"{len(p.missing)} missing ({', '.join(p.missing[:3])}...)" if p.missing else ""
            ) + (f" {len(p.unexpected)} unexpected" if p.unexpected else "")
            typer.echo(f"  {p.key}: {what}")
        typer.echo(report.summary_line())
    raise typer.Exit(EXIT_OK if report.ok else EXIT_DEADLETTER)


def demo(
    events: DemoEvents = 20_000,
    keep_running: KeepRunning = False,
    seed: DemoSeed = 7,
    log_format: LogFormat = DEFAULT_LOG_FORMAT,
) -> None:
    """Start S3 and OpenSearch on loopback, generate an archive, backfill it, answer questions."""
    from ingest.demo import run_demo

    def job() -> int:
        verdict = run_demo(
            events=events, keep_running=keep_running, seed=seed, log_format=log_format
        )
        return EXIT_CONFIG if verdict is None else exit_code(verdict)

    raise typer.Exit(run_job(job))
