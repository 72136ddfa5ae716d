"""The command that feeds a fleet of workers: ``enqueue`` lists the source like a backfill and
sends the keys to SQS, for ``tail --sqs-queue-url`` workers (``ingest.enqueue``)."""

from __future__ import annotations

import asyncio

import typer

from ingest.cli.common import EXIT_CONFIG, EXIT_OK, environment, fail, run_job
from ingest.cli.options import (
    Account,
    AwsRegion,
    Concurrency,
    Fresh,
    IncludeInsight,
    KeysPerMessage,
    LogFormat,
    Profile,
    Region,
    RetryDeadline,
    Shard,
    Since,
    Source,
    SqsQueueUrl,
    State,
    Until,
    Verbose,
)
from ingest.config import (
    DEFAULT_CONCURRENCY,
    DEFAULT_LOG_FORMAT,
    DEFAULT_RETRY_DEADLINE,
    build_settings,
    default_state_dir,
    from_environment,
)
from ingest.errors import ConfigError

__all__ = ["enqueue"]

# enqueue writes to no cluster; the run settings it shares with backfill want one named.
_NO_CLUSTER = "http://127.0.0.1:9200"


def enqueue(
    ctx: typer.Context,
    source: Source,
    sqs_queue_url: SqsQueueUrl = None,
    state: State = None,
    since: Since = None,
    until: Until = None,
    account: Account = None,
    region: Region = None,
    include_insight: IncludeInsight = False,
    shard: Shard = None,
    keys_per_message: KeysPerMessage = 100,
    fresh: Fresh = False,
    concurrency: Concurrency = DEFAULT_CONCURRENCY,
    profile: Profile = None,
    aws_region: AwsRegion = None,
    retry_deadline: RetryDeadline = DEFAULT_RETRY_DEADLINE,
    log_format: LogFormat = DEFAULT_LOG_FORMAT,
    verbose: Verbose = False,
) -> None:
    """List the archive like backfill and send its keys to SQS for `tail --sqs-queue-url`
    workers; rerun to resume (days already sent are skipped)."""
    from ingest.enqueue import run_enqueue
    from ingest.telemetry import configure_logging

    env = environment()
    try:
        if not sqs_queue_url:
            raise ConfigError("enqueue needs --sqs-queue-url URL (the workers' queue)")
        settings = build_settings({**ctx.params, "opensearch": _NO_CLUSTER, "workers": 0}, env)
    except ConfigError as exc:
        raise fail(str(exc), EXIT_CONFIG) from None
    console = configure_logging(settings.log_format, verbose=verbose)
    environ = from_environment(env)

    def job() -> int:
        stats = asyncio.run(
            run_enqueue(
                settings,
                queue_url=sqs_queue_url,
                endpoint_url=environ.sqs_endpoint_url,
                progress_path=state or default_state_dir(environ) / "enqueue.sqlite",
                per_message=keys_per_message,
                fresh=fresh,
                console=console,
            )
        )
        typer.echo(stats.summary_line())
        return EXIT_OK

    raise typer.Exit(run_job(job))
