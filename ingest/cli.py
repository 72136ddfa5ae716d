"""The ``ct-ingest`` command line: the edge where settings are built and exit codes decided.

Exit codes: 0 every record indexed or skipped by rule; 1 finished, but something went to the
dead-letter; 2 usage or configuration error; 3 aborted (e.g. OpenSearch unreachable after retries).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from ingest import __version__
from ingest.config import (
    Filters,
    IndexConfig,
    MiB,
    Settings,
    SinkConfig,
    SourceConfig,
    default_state_dir,
    from_environment,
    parse_day,
    parse_location,
)
from ingest.errors import ConfigError, IngestError
from ingest.retry import RetryPolicy

__all__ = ["EXIT_ABORTED", "EXIT_CONFIG", "EXIT_DEADLETTER", "EXIT_OK", "app", "main"]

EXIT_OK, EXIT_DEADLETTER, EXIT_CONFIG, EXIT_ABORTED = 0, 1, 2, 3

# Help text is plain text: rich markup in it (``[/PREFIX]``, ``[...]``) would be parsed as
# style tags and crash the help screen, so every Typer here renders help without markup.
_PLAIN_HELP: dict[str, Any] = {"rich_markup_mode": None}

app = typer.Typer(
    **_PLAIN_HELP,
    name="ct-ingest",
    help="Move AWS CloudTrail archives from S3 into OpenSearch, fast and exactly once.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _env(name: str) -> str:
    return f"CT_INGEST_{name}"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ct-ingest {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            envvar=_env("CONFIG"),
            help="TOML file of option defaults (default: ~/.config/ct-ingest/config.toml).",
        ),
    ] = None,
) -> None:
    """ct-ingest: CloudTrail → OpenSearch."""
    from ingest.configfile import load_default_map, resolve_path

    if ctx.resilient_parsing:
        return
    try:
        path = resolve_path(config, os.environ)
        if path is None:
            return
        if not path.is_file():
            raise ConfigError(f"config {path}: no such file")
        ctx.default_map = load_default_map(path, ctx.command, ctx)
    except ConfigError as exc:
        raise _fail(str(exc), EXIT_CONFIG) from None
    ctx.meta["config_path"] = path


# Options shared by the commands that talk to OpenSearch.
OpenSearchOpt = Annotated[
    str,
    typer.Option(
        "--opensearch", envvar=_env("OPENSEARCH"), help="OpenSearch URL, http(s)://host:port."
    ),
]
IndexPrefixOpt = Annotated[
    str,
    typer.Option(
        "--index-prefix", envvar=_env("INDEX_PREFIX"), help="Prefix of the monthly indices."
    ),
]
AliasOpt = Annotated[
    str, typer.Option("--alias", envvar=_env("ALIAS"), help="Alias over all the indices.")
]
TimeoutOpt = Annotated[
    float,
    typer.Option(
        "--timeout", envvar=_env("TIMEOUT"), help="Per-request timeout to OpenSearch, seconds."
    ),
]
RetryDeadlineOpt = Annotated[
    float,
    typer.Option(
        "--retry-deadline",
        envvar=_env("RETRY_DEADLINE"),
        help="Seconds to keep retrying an unreachable S3 or OpenSearch before aborting.",
    ),
]
InsecureOpt = Annotated[
    bool,
    typer.Option("--insecure", envvar=_env("INSECURE"), help="Do not verify TLS certificates."),
]
CaCertsOpt = Annotated[
    Path | None, typer.Option("--ca-certs", envvar=_env("CA_CERTS"), help="CA bundle for TLS.")
]
UserOpt = Annotated[
    str | None,
    typer.Option(
        "--user", envvar=_env("USER"), help="Basic-auth user (password: CT_INGEST_PASSWORD)."
    ),
]
PasswordFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--password-file", envvar=_env("PASSWORD_FILE"), help="File holding the password."
    ),
]
AwsAuthOpt = Annotated[
    str | None,
    typer.Option(
        "--aws-auth",
        envvar=_env("AWS_AUTH"),
        help="Sign requests with SigV4: es (OpenSearch Service) or aoss (Serverless).",
    ),
]
GzipOpt = Annotated[
    bool, typer.Option("--gzip", envvar=_env("GZIP"), help="Compress request bodies.")
]
ProfileOpt = Annotated[
    str | None,
    typer.Option("--profile", envvar=["CT_INGEST_PROFILE", "AWS_PROFILE"], help="AWS profile."),
]
AwsRegionOpt = Annotated[
    str | None,
    typer.Option(
        "--aws-region",
        envvar=[_env("AWS_REGION"), "AWS_REGION", "AWS_DEFAULT_REGION"],
        help="AWS region (S3 client, SigV4 signing).",
    ),
]
LogFormatOpt = Annotated[
    str, typer.Option("--log-format", envvar=_env("LOG_FORMAT"), help="auto, json or console.")
]
VerboseOpt = Annotated[
    bool, typer.Option("--verbose", "-v", envvar=_env("VERBOSE"), help="Debug logs.")
]


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"ct-ingest: {message}", err=True)
    return typer.Exit(code)


def read_password(user: str | None, password_file: Path | None) -> str | None:
    """The basic-auth password: ``CT_INGEST_PASSWORD`` or the first line of ``--password-file``
    (never a command-line argument, where it would show in process lists and shell history)."""
    if not user:
        return None
    if password_file is not None:
        try:
            return password_file.read_text(encoding="utf-8").splitlines()[0]
        except (OSError, IndexError) as exc:
            raise ConfigError(f"--password-file {password_file}: cannot read a password") from exc
    return os.environ.get("CT_INGEST_PASSWORD") or None


def parse_shard(text: str) -> tuple[int, int]:
    """``I/N`` → (I, N)."""
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard {text!r}: expected I/N, e.g. 0/4") from None
    return index, count


def build_settings(
    *,
    source: str,
    opensearch: str,
    state: Path | None = None,
    deadletter: Path | None = None,
    since: str | None = None,
    until: str | None = None,
    accounts: list[str] | None = None,
    regions: list[str] | None = None,
    include_insight: bool = False,
    exclude: list[str] | None = None,
    concurrency: int = 32,
    workers: int | None = None,
    profile: str | None = None,
    aws_region: str | None = None,
    index_prefix: str = "cloudtrail-",
    alias: str = "cloudtrail",
    bulk_mib: float = 5.0,
    max_bulk_mib: float = 9.0,
    max_in_flight: int = 4,
    timeout: float = 50.0,
    bulk_target_seconds: float = 10.0,
    insecure: bool = False,
    ca_certs: Path | None = None,
    log_format: str = "auto",
    retry_deadline: float = 300.0,
    backfill_mode: bool = True,
    user: str | None = None,
    password_file: Path | None = None,
    aws_auth: str | None = None,
    compress: bool = False,
    retry_failed: bool = False,
    drain_seconds: float = 30.0,
    shard: str | None = None,
    inflight_mib: float = 384.0,
) -> Settings:
    """Settings for a backfill from already-parsed option values (the environment is read here)."""
    environment = from_environment(os.environ)
    state_path = state or default_state_dir(environment) / "ledger.sqlite"
    if retry_deadline <= 0:
        raise ConfigError(f"--retry-deadline must be positive, got {retry_deadline}")
    retry = RetryPolicy.within(retry_deadline)
    return Settings(
        source=SourceConfig(
            location=parse_location(source),
            profile=profile or None,  # an empty AWS_PROFILE means none
            endpoint_url=environment.s3_endpoint_url,
            region=aws_region,
            concurrency=concurrency,
            retry=retry,
        ),
        sink=SinkConfig(
            url=opensearch,
            index_prefix=index_prefix,
            alias=alias,
            bulk_bytes=int(bulk_mib * MiB),
            max_bulk_bytes=int(max_bulk_mib * MiB),
            max_in_flight=max_in_flight,
            target_seconds=bulk_target_seconds,
            timeout=timeout,
            verify_certs=not insecure,
            ca_certs=str(ca_certs) if ca_certs else None,
            retry=retry,
            username=user,
            password=read_password(user, password_file),
            aws_auth=aws_auth,
            aws_region=aws_region,
            aws_profile=profile or None,
            compress=compress,
        ),
        filters=Filters(
            since=parse_day(since) if since else None,
            until=parse_day(until) if until else None,
            accounts=frozenset(accounts or ()),
            regions=frozenset(regions or ()),
            include_insight=include_insight,
            exclude=tuple(exclude or ()),
        ),
        state_path=state_path,
        deadletter_path=deadletter or state_path.parent / "deadletter.jsonl",
        workers=(os.cpu_count() or 1) if workers is None else workers,
        log_format=log_format,
        backfill_mode=backfill_mode,
        retry_failed=retry_failed,
        drain_seconds=drain_seconds,
        shard=parse_shard(shard) if shard else None,
        inflight_bytes=int(inflight_mib * MiB),
    )


# Option names whose build_settings argument is named differently.
_RENAMED = {"account": "accounts", "region": "regions", "gzip": "compress"}


def settings_from_params(params: dict[str, Any], **overrides: Any) -> Settings:
    """Settings from a command's parsed options (``ctx.params``), so that every command that
    runs the pipeline builds them the same way; ``overrides`` win."""
    accepted = inspect.signature(build_settings).parameters
    kwargs = {_RENAMED.get(k, k): v for k, v in params.items() if _RENAMED.get(k, k) in accepted}
    kwargs.update(overrides)
    return build_settings(**kwargs)


def run_and_report(settings: Settings, *, console: bool, tail: Any = None) -> int:
    """Run a backfill (or a tail), print the summary line, and return the exit code."""
    import structlog

    from ingest.engine import RunStats
    from ingest.errors import root_cause
    from ingest.runner import run_backfill, run_tail
    from ingest.telemetry import summary_line

    log = structlog.get_logger("ingest.cli")
    stats: RunStats | None = None
    try:
        stats = asyncio.run(
            run_backfill(settings, console=console) if tail is None else run_tail(settings, tail)
        )
    except (KeyboardInterrupt, asyncio.CancelledError):
        typer.echo("ct-ingest: interrupted; run the same command again to resume", err=True)
        return EXIT_ABORTED
    except BaseException as exc:
        cause = root_cause(exc)
        if isinstance(cause, ConfigError):
            typer.echo(f"ct-ingest: {cause}", err=True)
            return EXIT_CONFIG
        if not isinstance(cause, IngestError):
            log.exception("crashed", error=type(cause).__name__)
        typer.echo(
            f"ct-ingest aborted: {type(cause).__name__}: {cause}; "
            "fix the cause and run the same command again to resume",
            err=True,
        )
        return EXIT_ABORTED
    failed = stats.deadlettered or stats.objects_failed or stats.objects_failed_earlier
    status = "finished with dead-letters" if failed else "done"
    if stats.stopped:
        status = "stopped"
    typer.echo(summary_line(stats, status=status))
    log.info(
        "run_done",
        status=status,
        records_seen=stats.records_seen,
        indexed=stats.indexed,
        deadlettered=stats.deadlettered,
        skipped=stats.skipped,
        objects_done=stats.objects_done,
        objects_failed=stats.objects_failed,
        objects_already_done=stats.objects_already_done,
        objects_failed_earlier=stats.objects_failed_earlier,
        objects_other_shard=stats.objects_other_shard,
        already_indexed=stats.already_indexed,
        enrich_failed=stats.enrich_failed,
        bytes_fetched=stats.bytes_fetched,
        bulk_requests=stats.sink.requests if stats.sink else 0,
        bulk_pushbacks=stats.sink.pushbacks if stats.sink else 0,
        bulk_latency_max=round(stats.sink.latency_max, 3) if stats.sink else 0,
        keys_skipped=stats.listing.skipped_keys,
        prefixes_skipped=stats.listing.skipped_prefixes,
        seconds=round(stats.elapsed, 2),
        deadletter=str(settings.deadletter_path) if failed else None,
    )
    if failed:
        typer.echo(f"ct-ingest: dead-letter entries are in {settings.deadletter_path}", err=True)
    if stats.objects_failed_earlier:
        typer.echo(
            f"ct-ingest: {stats.objects_failed_earlier:,} objects failed in earlier runs and were "
            "not retried: see `ct-ingest deadletter summary`; rerun with `--retry-failed`",
            err=True,
        )
    if stats.stopped and tail is not None:
        return EXIT_OK  # a tail ends by being stopped; what was in flight is settled
    if stats.stopped:
        typer.echo(
            "ct-ingest: stopped before the end; what was in flight is settled. "
            "Run the same command again to resume.",
            err=True,
        )
        return EXIT_ABORTED
    return EXIT_DEADLETTER if failed else EXIT_OK


@app.command()
def backfill(
    ctx: typer.Context,
    source: Annotated[
        str, typer.Argument(help="s3://BUCKET[/PREFIX] or a local directory laid out like it.")
    ],
    opensearch: OpenSearchOpt,
    state: Annotated[
        Path | None,
        typer.Option("--state", envvar=_env("STATE"), help="Checkpoint ledger (SQLite file)."),
    ] = None,
    deadletter: Annotated[
        Path | None,
        typer.Option(
            "--deadletter", envvar=_env("DEADLETTER"), help="Dead-letter file (JSON lines)."
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", envvar=_env("SINCE"), help="First day (YYYY-MM-DD or Nd)."),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", envvar=_env("UNTIL"), help="Last day, inclusive.")
    ] = None,
    account: Annotated[
        list[str] | None,
        typer.Option("--account", envvar=_env("ACCOUNT"), help="Only this account (repeat)."),
    ] = None,
    region: Annotated[
        list[str] | None,
        typer.Option("--region", envvar=_env("REGION"), help="Only this region (repeat)."),
    ] = None,
    include_insight: Annotated[
        bool,
        typer.Option(
            "--include-insight", envvar=_env("INCLUDE_INSIGHT"), help="Also CloudTrail-Insight/."
        ),
    ] = False,
    exclude: Annotated[
        list[str] | None,
        typer.Option(
            "--exclude",
            envvar=_env("EXCLUDE"),
            help="Skip records by eventSource:eventName glob, e.g. kms.amazonaws.com:Decrypt"
            " (repeat).",
        ),
    ] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", envvar=_env("CONCURRENCY"), help="Parallel S3 requests.")
    ] = 32,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", envvar=_env("WORKERS"), help="Decoding processes (0 = in-process)."
        ),
    ] = None,
    profile: ProfileOpt = None,
    aws_region: AwsRegionOpt = None,
    user: UserOpt = None,
    password_file: PasswordFileOpt = None,
    aws_auth: AwsAuthOpt = None,
    gzip: GzipOpt = False,
    index_prefix: IndexPrefixOpt = "cloudtrail-",
    alias: AliasOpt = "cloudtrail",
    bulk_mib: Annotated[
        float,
        typer.Option("--bulk-mib", envvar=_env("BULK_MIB"), help="Target bulk body size, MiB."),
    ] = 5.0,
    max_bulk_mib: Annotated[
        float,
        typer.Option(
            "--max-bulk-mib", envvar=_env("MAX_BULK_MIB"), help="Hard cap per bulk body, MiB."
        ),
    ] = 9.0,
    max_in_flight: Annotated[
        int,
        typer.Option(
            "--max-in-flight", envvar=_env("MAX_IN_FLIGHT"), help="Concurrent bulk requests."
        ),
    ] = 4,
    bulk_target_seconds: Annotated[
        float,
        typer.Option(
            "--bulk-target-seconds",
            envvar=_env("BULK_TARGET_SECONDS"),
            help="Bulk size and concurrency adapt to keep requests near this duration.",
        ),
    ] = 10.0,
    timeout: TimeoutOpt = 50.0,
    retry_deadline: RetryDeadlineOpt = 300.0,
    drain_seconds: Annotated[
        float,
        typer.Option(
            "--drain-seconds",
            envvar=_env("DRAIN_SECONDS"),
            help="On Ctrl-C/SIGTERM, time to finish the objects in flight before stopping.",
        ),
    ] = 30.0,
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard",
            envvar=_env("SHARD"),
            help="I/N: take only shard I of N of the objects (one process per shard).",
        ),
    ] = None,
    inflight_mib: Annotated[
        float,
        typer.Option(
            "--inflight-mib",
            envvar=_env("INFLIGHT_MIB"),
            help="Memory budget for objects being processed (estimated), MiB.",
        ),
    ] = 384.0,
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed",
            envvar=_env("RETRY_FAILED"),
            help="Fetch again the objects an earlier run could not read at all.",
        ),
    ] = False,
    backfill_mode: Annotated[
        bool,
        typer.Option(
            "--backfill-mode/--no-backfill-mode",
            envvar=_env("BACKFILL_MODE"),
            help="Turn refresh off and replicas to 0 on the indices written, restored at the end.",
        ),
    ] = True,
    insecure: InsecureOpt = False,
    ca_certs: CaCertsOpt = None,
    log_format: LogFormatOpt = "auto",
    verbose: VerboseOpt = False,
) -> None:
    """Load a CloudTrail archive into OpenSearch once; rerun to resume."""
    from ingest.telemetry import configure_logging

    try:
        settings = settings_from_params(ctx.params)
    except ConfigError as exc:
        raise _fail(str(exc), EXIT_CONFIG) from None
    console = configure_logging(settings.log_format, verbose=verbose)
    raise typer.Exit(run_and_report(settings, console=console))


@app.command()
def setup(
    opensearch: OpenSearchOpt,
    index_prefix: IndexPrefixOpt = "cloudtrail-",
    alias: AliasOpt = "cloudtrail",
    shards: Annotated[
        int, typer.Option("--shards", envvar=_env("SHARDS"), help="Primary shards per index.")
    ] = 1,
    replicas: Annotated[
        int, typer.Option("--replicas", envvar=_env("REPLICAS"), help="Replicas per index.")
    ] = 1,
    refresh_interval: Annotated[
        str,
        typer.Option("--refresh-interval", envvar=_env("REFRESH_INTERVAL"), help="e.g. 5s, 30s."),
    ] = "5s",
    codec: Annotated[
        str,
        typer.Option("--codec", envvar=_env("CODEC"), help="default or best_compression."),
    ] = "default",
    retention_days: Annotated[
        int,
        typer.Option(
            "--retention-days",
            envvar=_env("RETENTION_DAYS"),
            help="ISM policy: delete indices this many days after creation (0 = keep forever).",
        ),
    ] = 365,
    timeout: TimeoutOpt = 50.0,
    retry_deadline: RetryDeadlineOpt = 300.0,
    insecure: InsecureOpt = False,
    ca_certs: CaCertsOpt = None,
    user: UserOpt = None,
    password_file: PasswordFileOpt = None,
    aws_auth: AwsAuthOpt = None,
    aws_region: AwsRegionOpt = None,
    profile: ProfileOpt = None,
    dashboards: Annotated[
        str | None,
        typer.Option(
            "--dashboards",
            envvar=_env("DASHBOARDS"),
            help="OpenSearch Dashboards URL: import the ClickOps and Activity dashboards.",
        ),
    ] = None,
    alerts: Annotated[
        bool, typer.Option("--alerts", help="Install the Alerting monitors (needs --webhook).")
    ] = False,
    webhook: Annotated[
        str | None, typer.Option("--webhook", envvar=_env("WEBHOOK"), help="Where alerts post.")
    ] = None,
    clickops_threshold: Annotated[
        int,
        typer.Option("--clickops-threshold", help="Alert above this many ClickOps events in 24 h."),
    ] = 20,
    resource_pattern: Annotated[
        str,
        typer.Option("--resource-pattern", help="Alert on console writes to matching resources."),
    ] = "*:db:*prod*",
    log_format: LogFormatOpt = "auto",
) -> None:
    """Install (or update) the index templates from mappings/, the retention policy, and on
    request the dashboards and alert monitors."""
    from ingest import cluster
    from ingest.retry import call_with_retry
    from ingest.telemetry import configure_logging

    configure_logging(log_format)
    try:
        sink = SinkConfig(
            url=opensearch,
            index_prefix=index_prefix,
            alias=alias,
            timeout=timeout,
            verify_certs=not insecure,
            ca_certs=str(ca_certs) if ca_certs else None,
            retry=RetryPolicy.within(retry_deadline),
            username=user,
            password=read_password(user, password_file),
            aws_auth=aws_auth,
            aws_region=aws_region,
            aws_profile=profile,
        )
        index = IndexConfig(
            shards=shards,
            replicas=replicas,
            refresh_interval=refresh_interval,
            codec=codec,
            retention_days=retention_days,
        )
    except ConfigError as exc:
        raise _fail(str(exc), EXIT_CONFIG) from None

    async def _go() -> tuple[str, str]:
        client = cluster.open_client(sink)
        try:
            await call_with_retry(sink.retry, lambda: cluster.ping(client))
            name = await cluster.install_template(client, sink, index)
            return name, await cluster.install_ism_policy(client, sink, index)
        finally:
            await client.close()

    if alerts and not webhook:
        raise _fail("--alerts needs --webhook URL (Slack, Teams or any HTTP endpoint)", EXIT_CONFIG)
    try:
        name, retention = asyncio.run(_go())
    except IngestError as exc:
        raise _fail(f"setup aborted: {exc}", EXIT_ABORTED) from None
    typer.echo(f"ct-ingest: index template {name} installed for {index_prefix}* (alias {alias})")
    typer.echo(f"ct-ingest: {retention}")
    if alerts and webhook:
        from ingest.ops.alerts import install_alerts

        client = cluster.open_sync_client(sink)
        try:
            typer.echo(
                "ct-ingest: "
                + install_alerts(
                    client,
                    webhook=webhook,
                    alias=alias,
                    threshold=clickops_threshold,
                    resource_pattern=resource_pattern,
                )
            )
        except Exception as exc:
            raise _fail(f"alerts: {type(exc).__name__}: {str(exc)[:300]}", EXIT_ABORTED) from None
        finally:
            client.close()
    if dashboards:
        from ingest.ops.dashboards import import_saved_objects, saved_objects

        try:
            count = import_saved_objects(
                dashboards,
                saved_objects(alias),
                username=user,
                password=sink.password,
                verify=not insecure,
            )
        except IngestError as exc:
            raise _fail(f"dashboards: {exc}", EXIT_ABORTED) from None
        typer.echo(
            f"ct-ingest: dashboards: {count} saved objects imported (overwrite) into {dashboards}"
        )


@app.command()
def tail(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="s3://BUCKET[/PREFIX] (or a local directory).")],
    opensearch: OpenSearchOpt,
    state: Annotated[
        Path | None, typer.Option("--state", envvar=_env("STATE"), help="Checkpoint ledger.")
    ] = None,
    deadletter: Annotated[
        Path | None,
        typer.Option("--deadletter", envvar=_env("DEADLETTER"), help="Dead-letter file."),
    ] = None,
    poll_interval: Annotated[
        float,
        typer.Option(
            "--poll-interval", envvar=_env("POLL_INTERVAL"), help="Seconds between polls."
        ),
    ] = 60.0,
    rediscover_minutes: Annotated[
        float,
        typer.Option(
            "--rediscover-minutes",
            envvar=_env("REDISCOVER_MINUTES"),
            help="How often to look for new accounts and regions.",
        ),
    ] = 10.0,
    rewind_minutes: Annotated[
        float,
        typer.Option(
            "--rewind-minutes",
            envvar=_env("REWIND_MINUTES"),
            help="Re-list this far behind the newest settled file (late deliveries).",
        ),
    ] = 20.0,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            envvar=_env("SINCE"),
            help="Where accounts/regions with nothing in the ledger start (polling): "
            "YYYY-MM-DD, an ISO timestamp, Nd or Nh. Default: a day before start-up.",
        ),
    ] = None,
    sqs_queue_url: Annotated[
        str | None,
        typer.Option(
            "--sqs-queue-url",
            envvar=_env("SQS_QUEUE_URL"),
            help="Consume S3 event notifications from this queue instead of polling.",
        ),
    ] = None,
    sqs_wait_seconds: Annotated[
        int, typer.Option("--sqs-wait-seconds", envvar=_env("SQS_WAIT_SECONDS"))
    ] = 20,
    sqs_visibility: Annotated[
        int,
        typer.Option(
            "--sqs-visibility",
            envvar=_env("SQS_VISIBILITY"),
            help="Visibility timeout, extended while an object is processed.",
        ),
    ] = 300,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            envvar=_env("METRICS_PORT"),
            help="Serve /metrics (Prometheus) and /healthz on this port.",
        ),
    ] = None,
    unhealthy_after: Annotated[
        float,
        typer.Option(
            "--unhealthy-after",
            envvar=_env("UNHEALTHY_AFTER"),
            help="/healthz fails when S3 or OpenSearch are unreachable this long.",
        ),
    ] = 120.0,
    account: Annotated[list[str] | None, typer.Option("--account", envvar=_env("ACCOUNT"))] = None,
    region: Annotated[list[str] | None, typer.Option("--region", envvar=_env("REGION"))] = None,
    include_insight: Annotated[bool, typer.Option("--include-insight")] = False,
    exclude: Annotated[list[str] | None, typer.Option("--exclude", envvar=_env("EXCLUDE"))] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", envvar=_env("CONCURRENCY"))] = 16,
    workers: Annotated[int | None, typer.Option("--workers", envvar=_env("WORKERS"))] = None,
    profile: ProfileOpt = None,
    aws_region: AwsRegionOpt = None,
    user: UserOpt = None,
    password_file: PasswordFileOpt = None,
    aws_auth: AwsAuthOpt = None,
    gzip: GzipOpt = False,
    index_prefix: IndexPrefixOpt = "cloudtrail-",
    alias: AliasOpt = "cloudtrail",
    timeout: TimeoutOpt = 50.0,
    retry_deadline: Annotated[
        float,
        typer.Option(
            "--retry-deadline",
            envvar=_env("RETRY_DEADLINE"),
            help="Keep retrying an unreachable OpenSearch this long (tail: a day).",
        ),
    ] = 86_400.0,
    drain_seconds: Annotated[
        float, typer.Option("--drain-seconds", envvar=_env("DRAIN_SECONDS"))
    ] = 30.0,
    insecure: InsecureOpt = False,
    ca_certs: CaCertsOpt = None,
    log_format: LogFormatOpt = "auto",
    verbose: VerboseOpt = False,
) -> None:
    """Keep the index current: poll the bucket (or read S3 notifications from SQS) until stopped."""
    from datetime import timedelta

    from ingest.tail import TailConfig, parse_since
    from ingest.telemetry import configure_logging

    try:
        # --since is tail's own start point (a timestamp), not the backfill's day filter.
        settings = settings_from_params(ctx.params, backfill_mode=False, since=None)
        if sqs_queue_url and not source.startswith("s3://"):
            raise ConfigError("--sqs-queue-url needs an s3:// source")
        if poll_interval <= 0 or rewind_minutes < 0:
            raise ConfigError("--poll-interval must be positive and --rewind-minutes not negative")
        if since and sqs_queue_url:
            raise ConfigError(
                f"--since {since!r} applies to polling; with --sqs-queue-url the queue's "
                "notifications decide what is read (run backfill for older objects)"
            )
        start = parse_since(since) if since else None
    except ConfigError as exc:
        raise _fail(str(exc), EXIT_CONFIG) from None
    config = TailConfig(
        since=start,
        poll_interval=poll_interval,
        rewind=timedelta(minutes=rewind_minutes),
        rediscover_seconds=rediscover_minutes * 60,
        sqs_queue_url=sqs_queue_url or None,
        sqs_endpoint_url=from_environment(os.environ).sqs_endpoint_url,
        sqs_wait_seconds=sqs_wait_seconds,
        sqs_visibility=sqs_visibility,
        metrics_port=metrics_port,
        unhealthy_after=unhealthy_after,
    )
    configure_logging(settings.log_format, verbose=verbose)
    raise typer.Exit(run_and_report(settings, console=False, tail=config))  # no total: no bar


@app.command()
def status(
    state: Annotated[
        Path | None, typer.Option("--state", envvar=_env("STATE"), help="Checkpoint ledger.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
) -> None:
    """Progress of the last (or running) backfill, from the checkpoint ledger."""
    import time

    from rich.console import Console
    from rich.table import Table

    from ingest.checkpoint import Ledger, Status

    path = state or default_state_dir(from_environment(os.environ)) / "ledger.sqlite"
    if not path.exists():
        raise _fail(f"no checkpoint ledger at {path}", EXIT_CONFIG)
    with Ledger(path) as ledger:
        run = ledger.last_run()
        totals = ledger.totals(run.source if run else None)
        failed_keys = ledger.keys(run.source, Status.FAILED)[:100] if run else []
    info: dict[str, Any] = {"ledger": str(path), "objects": totals, "failed": failed_keys}
    if run is not None:
        end = run.finished_at or (run.updated_at if run.status != "running" else time.time())
        elapsed = max(end - run.started_at, 1e-6)
        remaining = totals["pending"] + totals["in_flight"]
        obj_rate = run.objects_done / elapsed
        eta = None
        if run.status == "running" and run.listing_done and obj_rate > 0:
            eta = round(remaining / obj_rate)
        info["run"] = {
            "id": run.id,
            "source": run.source,
            "host": run.host,
            "pid": run.pid,
            "status": run.status,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(run.started_at)),
            "seconds": round(elapsed, 1),
            "listed": run.listed,
            "listing_done": bool(run.listing_done),
            "objects_done": run.objects_done,
            "records": run.records,
            "indexed": run.indexed,
            "deadlettered": run.deadlettered,
            "skipped": run.skipped,
            "bytes": run.bytes,
            "events_per_second": round(run.records / elapsed, 1),
            "eta_seconds": eta,
        }
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    table = Table(title=f"ct-ingest status ({path})", show_header=False)
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
    if "run" in info:
        r = info["run"]
        table.add_row(
            "last run",
            f"#{r['id']} {r['status']} on {r['host']} (pid {r['pid']}), started {r['started']}",
        )
        table.add_row("source", r["source"])
        table.add_row(
            "this run: objects, events, MB",
            f"{r['objects_done']:,} of {r['listed']:,} listed, {r['records']:,}, "
            f"{r['bytes'] / 1e6:,.1f}",
        )
        table.add_row("rate", f"{r['events_per_second']:,.0f} events/s")
        eta_text = "listing..." if r["status"] == "running" and not r["listing_done"] else "-"
        table.add_row(
            "ETA", f"{r['eta_seconds']:,} s" if r["eta_seconds"] is not None else eta_text
        )
    Console().print(table)
    if totals["failed"]:
        typer.echo(
            f"{totals['failed']:,} objects failed and are not retried by a rerun: see "
            "`ct-ingest deadletter summary`; rerun the backfill with `--retry-failed`"
        )
        for key in failed_keys[:10]:
            typer.echo(f"  failed: {key}")


@app.command()
def verify(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="s3://BUCKET[/PREFIX] or a local directory.")],
    opensearch: OpenSearchOpt,
    state: Annotated[
        Path | None, typer.Option("--state", envvar=_env("STATE"), help="Checkpoint ledger.")
    ] = None,
    deadletter: Annotated[
        Path | None,
        typer.Option("--deadletter", envvar=_env("DEADLETTER"), help="Dead-letter file."),
    ] = None,
    since: Annotated[str | None, typer.Option("--since", envvar=_env("SINCE"))] = None,
    until: Annotated[str | None, typer.Option("--until", envvar=_env("UNTIL"))] = None,
    account: Annotated[list[str] | None, typer.Option("--account", envvar=_env("ACCOUNT"))] = None,
    region: Annotated[list[str] | None, typer.Option("--region", envvar=_env("REGION"))] = None,
    include_insight: Annotated[bool, typer.Option("--include-insight")] = False,
    exclude: Annotated[list[str] | None, typer.Option("--exclude", envvar=_env("EXCLUDE"))] = None,
    shard: Annotated[str | None, typer.Option("--shard", envvar=_env("SHARD"))] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", envvar=_env("CONCURRENCY"))] = 32,
    profile: ProfileOpt = None,
    aws_region: AwsRegionOpt = None,
    user: UserOpt = None,
    password_file: PasswordFileOpt = None,
    aws_auth: AwsAuthOpt = None,
    index_prefix: IndexPrefixOpt = "cloudtrail-",
    alias: AliasOpt = "cloudtrail",
    timeout: TimeoutOpt = 50.0,
    retry_deadline: RetryDeadlineOpt = 300.0,
    insecure: InsecureOpt = False,
    ca_certs: CaCertsOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON report.")] = False,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Re-send missing documents from their objects (idempotent), then verify again.",
        ),
    ] = False,
    log_format: LogFormatOpt = "auto",
) -> None:
    """Reconcile the source against the index, object by object; exit 0 only when they match."""
    from ingest.ops.verify import verify as run_verify
    from ingest.telemetry import configure_logging

    configure_logging(log_format)
    try:
        settings = settings_from_params(ctx.params, workers=0)
    except ConfigError as exc:
        raise _fail(str(exc), EXIT_CONFIG) from None
    try:
        report = asyncio.run(run_verify(settings, repair=repair))
    except IngestError as exc:
        raise _fail(f"verify aborted: {exc}", EXIT_ABORTED) from None
    except BaseExceptionGroup as group:
        from ingest.errors import root_cause

        raise _fail(f"verify aborted: {root_cause(group)}", EXIT_ABORTED) from None
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


report_app = typer.Typer(
    **_PLAIN_HELP, help="Reports from the index: ClickOps, least privilege.", no_args_is_help=True
)
app.add_typer(report_app, name="report")

FormatOpt = Annotated[str, typer.Option("--format", help="md, csv or json.")]
OutputOpt = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
]


def _sink_for_reading(
    opensearch: str,
    alias: str,
    timeout: float,
    insecure: bool,
    ca_certs: Path | None,
    user: str | None,
    password_file: Path | None,
    aws_auth: str | None,
    aws_region: str | None,
    profile: str | None,
) -> SinkConfig:
    try:
        return SinkConfig(
            url=opensearch,
            alias=alias,
            timeout=timeout,
            verify_certs=not insecure,
            ca_certs=str(ca_certs) if ca_certs else None,
            username=user,
            password=read_password(user, password_file),
            aws_auth=aws_auth,
            aws_region=aws_region,
            aws_profile=profile,
        )
    except ConfigError as exc:
        raise _fail(str(exc), EXIT_CONFIG) from None


def _emit_report(text: str, output: Path | None) -> None:
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"ct-ingest: report written to {output}", err=True)


def _check_format(fmt: str) -> None:
    if fmt not in ("md", "csv", "json"):
        raise _fail(f"--format {fmt!r}: expected md, csv or json", EXIT_CONFIG)


@report_app.command("clickops")
def report_clickops(
    opensearch: OpenSearchOpt,
    since: Annotated[str, typer.Option("--since", help="Start: 30d or YYYY-MM-DD.")] = "30d",
    until: Annotated[
        str | None, typer.Option("--until", help="End (exclusive); default now.")
    ] = None,
    top: Annotated[int, typer.Option("--top", help="Rows per ranking.")] = 20,
    fmt: FormatOpt = "md",
    output: OutputOpt = None,
    alias: AliasOpt = "cloudtrail",
    timeout: TimeoutOpt = 50.0,
    insecure: InsecureOpt = False,
    ca_certs: CaCertsOpt = None,
    user: UserOpt = None,
    password_file: PasswordFileOpt = None,
    aws_auth: AwsAuthOpt = None,
    aws_region: AwsRegionOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Console writes: totals and trend against the previous period, top users, resources,
    services and accounts, and the accounts with none."""
    from datetime import UTC, datetime

    from ingest import cluster
    from ingest.ops import report

    _check_format(fmt)
    sink = _sink_for_reading(
        opensearch,
        alias,
        timeout,
        insecure,
        ca_certs,
        user,
        password_file,
        aws_auth,
        aws_region,
        profile,
    )
    try:
        start, end = report.window(since, until, datetime.now(UTC))
    except ConfigError as exc:
        raise _fail(str(exc), EXIT_CONFIG) from None
    client = cluster.open_sync_client(sink)
    try:
        result = report.clickops_report(client, alias, start, end, top=top)
    except Exception as exc:
        raise _fail(
            f"report failed: {type(exc).__name__}: {str(exc)[:300]}", EXIT_ABORTED
        ) from None
    finally:
        client.close()
    _emit_report(report.render(result, fmt), output)


@report_app.command("principal")
def report_principal(
    opensearch: OpenSearchOpt,
    iam_user: Annotated[str | None, typer.Option("--user", help="IAM user name.")] = None,
    role: Annotated[str | None, typer.Option("--role", help="IAM role name.")] = None,
    since: Annotated[str, typer.Option("--since", help="Start: 90d or YYYY-MM-DD.")] = "90d",
    until: Annotated[str | None, typer.Option("--until")] = None,
    iam_details: Annotated[
        Path | None,
        typer.Option(
            "--iam-authorization-details",
            help="JSON of `aws iam get-account-authorization-details`: adds granted-but-unused.",
        ),
    ] = None,
    fmt: FormatOpt = "md",
    output: OutputOpt = None,
    alias: AliasOpt = "cloudtrail",
    timeout: TimeoutOpt = 50.0,
    insecure: InsecureOpt = False,
    ca_certs: CaCertsOpt = None,
    user: Annotated[
        str | None,
        typer.Option(
            "--auth-user",
            envvar=_env("USER"),
            help="Basic-auth user (password: CT_INGEST_PASSWORD).",
        ),
    ] = None,
    password_file: PasswordFileOpt = None,
    aws_auth: AwsAuthOpt = None,
    aws_region: AwsRegionOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """The API actions a user or role actually used, also through the roles it assumed (across
    accounts), each with count and last use; with IAM details, the grants never used."""
    from datetime import UTC, datetime

    from ingest import cluster
    from ingest.ops import report

    _check_format(fmt)
    if (iam_user is None) == (role is None):
        raise _fail("give exactly one of --user NAME or --role NAME", EXIT_CONFIG)
    sink = _sink_for_reading(
        opensearch,
        alias,
        timeout,
        insecure,
        ca_certs,
        user,
        password_file,
        aws_auth,
        aws_region,
        profile,
    )
    try:
        start, end = report.window(since, until, datetime.now(UTC))
        details = json.loads(iam_details.read_text()) if iam_details else None
    except (ConfigError, OSError, ValueError) as exc:
        raise _fail(str(exc), EXIT_CONFIG) from None
    client = cluster.open_sync_client(sink)
    try:
        result = report.principal_report(
            client, alias, user=iam_user, role=role, since=start, until=end, iam_details=details
        )
    except Exception as exc:
        raise _fail(
            f"report failed: {type(exc).__name__}: {str(exc)[:300]}", EXIT_ABORTED
        ) from None
    finally:
        client.close()
    _emit_report(report.render(result, fmt), output)


deadletter_app = typer.Typer(
    **_PLAIN_HELP, help="Look at and re-send what did not get indexed.", no_args_is_help=True
)
app.add_typer(deadletter_app, name="deadletter")

DeadletterFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--file",
        envvar=_env("DEADLETTER"),
        help="Dead-letter file (default: deadletter.jsonl in the state directory).",
    ),
]


def _deadletter_path(file: Path | None) -> Path:
    return file or default_state_dir(from_environment(os.environ)) / "deadletter.jsonl"


@deadletter_app.command("summary")
def deadletter_summary(
    file: DeadletterFileOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
) -> None:
    """Dead-letter entries grouped by stage and reason."""
    from rich.console import Console
    from rich.table import Table

    from ingest.deadletter import read_entries
    from ingest.ops.replay import summarize

    path = _deadletter_path(file)
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
    opensearch: OpenSearchOpt,
    file: DeadletterFileOpt = None,
    index_prefix: IndexPrefixOpt = "cloudtrail-",
    alias: AliasOpt = "cloudtrail",
    timeout: TimeoutOpt = 50.0,
    retry_deadline: RetryDeadlineOpt = 300.0,
    insecure: InsecureOpt = False,
    ca_certs: CaCertsOpt = None,
    user: UserOpt = None,
    password_file: PasswordFileOpt = None,
    aws_auth: AwsAuthOpt = None,
    aws_region: AwsRegionOpt = None,
    profile: ProfileOpt = None,
    gzip: GzipOpt = False,
    log_format: LogFormatOpt = "auto",
) -> None:
    """Re-send the dead-lettered records (after fixing the template or the records); what lands
    is removed from the file, what is still refused stays with its new reason."""
    from ingest import cluster
    from ingest.ops.replay import replay
    from ingest.retry import call_with_retry
    from ingest.sink import OpenSearchBulkClient
    from ingest.telemetry import configure_logging

    configure_logging(log_format)
    path = _deadletter_path(file)
    try:
        sink = SinkConfig(
            url=opensearch,
            index_prefix=index_prefix,
            alias=alias,
            timeout=timeout,
            verify_certs=not insecure,
            ca_certs=str(ca_certs) if ca_certs else None,
            retry=RetryPolicy.within(retry_deadline),
            username=user,
            password=read_password(user, password_file),
            aws_auth=aws_auth,
            aws_region=aws_region,
            aws_profile=profile,
            compress=gzip,
        )
    except ConfigError as exc:
        raise _fail(str(exc), EXIT_CONFIG) from None
    if not path.exists():
        raise _fail(f"no dead-letter file at {path}", EXIT_CONFIG)

    async def _go() -> Any:
        client = cluster.open_client(sink)
        try:
            await call_with_retry(sink.retry, lambda: cluster.ping(client))
            await cluster.ensure_template(client, sink)
            return await replay(path, sink, OpenSearchBulkClient(client))
        finally:
            await client.close()

    try:
        report = asyncio.run(_go())
    except IngestError as exc:
        raise _fail(
            f"replay aborted: {exc}; nothing was removed from {path}", EXIT_ABORTED
        ) from None
    except BaseExceptionGroup as group:
        from ingest.errors import root_cause

        raise _fail(
            f"replay aborted: {root_cause(group)}; nothing was removed from {path}", EXIT_ABORTED
        ) from None
    typer.echo(
        f"ct-ingest replay: {report.entries:,} entries: {report.indexed:,} indexed "
        f"({report.already_there:,} were already there), {report.still_rejected:,} still refused, "
        f"{report.not_replayable:,} whole objects (rerun backfill with --retry-failed); "
        f"{report.remaining:,} left in {path}"
    )
    raise typer.Exit(EXIT_OK if report.still_rejected == 0 else EXIT_DEADLETTER)


config_app = typer.Typer(**_PLAIN_HELP, help="The effective configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")

_SECRET_HINTS = ("password", "webhook", "token", "secret")


@config_app.command("show")
def config_show(
    ctx: typer.Context,
    command: Annotated[
        str, typer.Argument(help="backfill, tail, setup, report.clickops, ...")
    ] = "backfill",
    args: Annotated[
        list[str] | None,
        typer.Argument(help="The command's own options after --, as you would run it."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
) -> None:
    """Every option of COMMAND with its effective value (secrets masked) and where it came from:
    command line, environment, config file, or default."""
    from rich.console import Console
    from rich.table import Table

    root = ctx.find_root()
    group = root.command
    cmd: Any = group
    for part in command.split("."):
        cmd = cmd.get_command(root, part) if hasattr(cmd, "get_command") else None
        if cmd is None:
            raise _fail(f"no command {command!r}", EXIT_CONFIG)
    path = root.meta.get("config_path")
    parent = root
    default_map = root.default_map or {}
    for part in command.split(".")[:-1]:
        default_map = default_map.get(part, {})
    sub = cmd.make_context(
        command.split(".")[-1],
        list(args or []),
        parent=parent,
        resilient_parsing=True,
        default_map=default_map.get(command.split(".")[-1]),
    )
    rows = []
    for param in cmd.params:
        if not getattr(param, "opts", None) or param.name in ("help",):
            continue
        source = getattr(sub.get_parameter_source(param.name), "name", "DEFAULT")
        envvar = f"env {param.envvar}" if isinstance(param.envvar, str) else "env"
        where = {
            "COMMANDLINE": "command line",
            "ENVIRONMENT": envvar,
            "DEFAULT_MAP": f"config {path}",
        }.get(source, "default")
        value = sub.params.get(param.name)
        if value is not None and any(h in param.name for h in _SECRET_HINTS):
            value = "*****"
        rows.append((param.opts[0], value, where))
    password = os.environ.get("CT_INGEST_PASSWORD")
    rows.append(
        (
            "(password)",
            "*****" if password else None,
            "env CT_INGEST_PASSWORD" if password else "unset",
        )
    )
    if as_json:
        typer.echo(
            json.dumps(
                [{"option": o, "value": v, "source": w} for o, v, w in rows], default=str, indent=2
            )
        )
        return
    table = Table(title=f"ct-ingest {command}: effective configuration")
    for column in ("option", "value", "from"):
        table.add_column(column)
    for option, value, where in rows:
        table.add_row(option, "-" if value is None else str(value), where)
    Console().print(table)


@app.command()
def demo(
    events: Annotated[
        int, typer.Option("--events", help="Events in the generated archive.")
    ] = 20_000,
    keep_running: Annotated[
        bool, typer.Option("--keep-running", help="Leave the servers up and print their URLs.")
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the generated archive.")] = 7,
    log_format: LogFormatOpt = "auto",
) -> None:
    """Start S3 and OpenSearch on loopback, generate an archive, backfill it, answer questions."""
    from ingest.demo import run_demo

    raise typer.Exit(
        run_demo(events=events, keep_running=keep_running, seed=seed, log_format=log_format)
    )


def main() -> None:
    """Console-script entry point."""
    app(prog_name="ct-ingest")


if __name__ == "__main__":  # pragma: no cover
    main()
