"""The runner: one run's lifecycle around the engine (:mod:`ingest.engine`).

It opens the edges (the ledger, the dead-letter, the S3 store, the OpenSearch client, and for
bulk writes a gzipping one unless the target is Serverless or ``--no-gzip`` is given), checks
the cluster and its templates, keeps the run's row in the ledger, turns the first SIGINT or
SIGTERM into a graceful drain and the second into a stop, switches the indices a backfill
writes into backfill mode and restores them however the run ends, and for ``tail`` adds its
producer, health pinger and metrics server (:func:`ingest.tail.open_tail`), whose settings
:func:`build_tail` makes from the tail command's options. The CLI and the demo both come
through :func:`run_backfill` and :func:`run_tail`.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Mapping
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Any

import structlog
from opensearchpy import AsyncOpenSearch

from ingest import cluster, source, targets, telemetry
from ingest.checkpoint import Ledger
from ingest.config import Settings, SinkConfig, from_environment
from ingest.deadletter import DeadLetter
from ingest.engine import RunStats, run_pipeline
from ingest.errors import ConfigError, IngestError
from ingest.sink import OpenSearchBulkClient
from ingest.tail import TailConfig, open_tail, parse_since

__all__ = ["build_tail", "run_backfill", "run_tail"]

_log = structlog.get_logger("ingest.runner")


async def run_backfill(
    settings: Settings, *, console: bool = False, ensure_template: bool = True
) -> RunStats:
    """Load the range of ``settings`` once: open every edge, run the engine until the listing
    is exhausted and every object settled (or a stop signal drained it), close everything."""
    return await _run(settings, console=console, ensure_template=ensure_template, tail=None)


async def run_tail(settings: Settings, tail: TailConfig) -> RunStats:
    """Keep the index current (polling or SQS, by ``tail``) until a signal stops the run."""
    return await _run(settings, console=False, ensure_template=True, tail=tail)


def build_tail(options: Mapping[str, Any], env: Mapping[str, str]) -> TailConfig:
    """``tail``'s own settings from its parsed options (``source``, ``since``,
    ``poll_interval``, ``rewind_minutes``, ``rediscover_minutes``, ``sqs_queue_url``,
    ``sqs_wait_seconds``, ``sqs_visibility``, ``exit_when_idle``, ``metrics_port``,
    ``unhealthy_after``; missing
    ones take :class:`TailConfig`'s defaults) and the SQS endpoint of ``env``. Its ``since`` is
    where reading starts (a timestamp), not the backfill's day filter: build the run's
    :class:`Settings` without it."""
    default = TailConfig()

    def get(key: str, fallback: Any = None) -> Any:
        value = options.get(key)
        return fallback if value is None else value

    poll_interval = get("poll_interval", default.poll_interval)
    rewind = get("rewind_minutes", default.rewind / timedelta(minutes=1))
    since, queue = get("since"), get("sqs_queue_url") or None
    if queue and not str(get("source", "")).startswith("s3://"):
        raise ConfigError("--sqs-queue-url needs an s3:// source")
    if poll_interval <= 0 or rewind < 0:
        raise ConfigError("--poll-interval must be positive and --rewind-minutes not negative")
    idle = get("exit_when_idle")
    if idle is not None and (not queue or idle <= 0):
        raise ConfigError("--exit-when-idle needs --sqs-queue-url and a positive number of seconds")
    if since and queue:
        raise ConfigError(
            f"--since {since!r} applies to polling; with --sqs-queue-url the queue's "
            "notifications decide what is read (run backfill for older objects)"
        )
    return TailConfig(
        since=parse_since(since) if since else None,
        poll_interval=poll_interval,
        rewind=timedelta(minutes=rewind),
        rediscover_seconds=get("rediscover_minutes", default.rediscover_seconds / 60) * 60,
        sqs_queue_url=queue,
        sqs_endpoint_url=from_environment(env).sqs_endpoint_url,
        sqs_wait_seconds=get("sqs_wait_seconds", default.sqs_wait_seconds),
        sqs_visibility=get("sqs_visibility", default.sqs_visibility),
        exit_when_idle=idle,
        metrics_port=get("metrics_port"),
        unhealthy_after=get("unhealthy_after", default.unhealthy_after),
    )


async def _run(
    settings: Settings, *, console: bool, ensure_template: bool, tail: TailConfig | None
) -> RunStats:
    stats = RunStats()
    async with AsyncExitStack() as stack:
        signals = _Signals(settings.drain_seconds)
        stack.callback(signals.close)
        ledger = stack.enter_context(Ledger(settings.state_path))
        deadletter = DeadLetter(settings.deadletter_path)
        stack.callback(deadletter.close)
        store = await source.open_store(settings.source)
        stack.push_async_callback(store.aclose)
        os_client = cluster.open_client(settings.sink)
        stack.push_async_callback(os_client.close)
        target = stats.target = await targets.identify(os_client, settings.sink)
        bulk_client, gzip = _bulk_client(stack, settings.sink, os_client, target)
        _log.info(
            "opensearch_ready", url=settings.sink.url, version=target.version or "?", gzip=gzip
        )
        if ensure_template:
            await targets.ensure_templates(os_client, settings.sink, target)
        mode = (
            cluster.BackfillMode(os_client, settings.sink.retry)
            if settings.backfill_mode and not tail and target.index_settings
            else None
        )
        produce, on_settled = None, None
        if tail is not None:
            produce, on_settled = await open_tail(
                stack, settings, tail, store, ledger, os_client, stats
            )
        run_id = ledger.start_run(store.name)
        keeper = asyncio.create_task(_keep_run_row(ledger, run_id, stats))
        outcome = "aborted"
        try:
            async with telemetry.progress(stats, enabled=console):
                await run_pipeline(
                    settings,
                    store,
                    OpenSearchBulkClient(bulk_client, target),
                    ledger,
                    deadletter,
                    stats,
                    prepare_index=mode.prepare if mode else None,
                    stop=signals.stop,
                    produce=produce,
                    on_settled=on_settled,
                )
            outcome = "stopped" if stats.stopped else "done"
        finally:
            keeper.cancel()
            _save_run(ledger, run_id, stats, outcome)
            if mode is not None:
                await _restore(mode)
    return stats


def _bulk_client(
    stack: AsyncExitStack, sink: SinkConfig, client: AsyncOpenSearch, target: targets.Target
) -> tuple[AsyncOpenSearch, str]:
    """The client bulk writes go through, and how the run's log says it: ``client`` (gzipping
    only with ``--gzip``) unless gzip is left to the target (:meth:`SinkConfig.gzips`) and it is
    not Serverless; then a gzipping client of its own (opened on ``stack``)."""
    gzip = sink.gzips(serverless=target.kind is targets.Kind.SERVERLESS)
    label = ("on" if gzip else "off") + (" (auto)" if sink.compress is None else "")
    if gzip and sink.compress is None:
        client = cluster.open_client(sink, gzip=True)
        stack.push_async_callback(client.close)
    return client, label


class _Signals:
    """SIGINT/SIGTERM: the first stops listing and fetching and lets what is in flight finish
    within ``drain_seconds``; the second (or the end of the drain) cancels at once."""

    def __init__(self, drain_seconds: float) -> None:
        self.stop = asyncio.Event()
        self._drain = drain_seconds
        self._main = asyncio.current_task()
        self._loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._main is None:
            return
        if self.stop.is_set():
            _log.warning("stopping_now", signal=sig.name)
            self._main.cancel()
            return
        _log.warning(
            "stopping",
            signal=sig.name,
            drain_seconds=self._drain,
            hint="finishing the objects in flight; send the signal again to stop at once",
        )
        self.stop.set()
        self._loop.call_later(self._drain, self._main.cancel)

    def close(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._loop.remove_signal_handler(sig)


async def _keep_run_row(ledger: Ledger, run_id: int, stats: RunStats) -> None:
    while True:
        await asyncio.sleep(2)
        _save_run(ledger, run_id, stats)


def _save_run(ledger: Ledger, run_id: int, stats: RunStats, status: str | None = None) -> None:
    ledger.update_run(
        run_id,
        status=status,
        finished=status is not None,
        listed=stats.listing.objects,
        listing_done=int(stats.listing.done),
        objects_done=stats.objects_done + stats.objects_failed,
        records=stats.records_seen,
        indexed=stats.indexed,
        deadlettered=stats.deadlettered,
        skipped=stats.skipped,
        bytes=stats.bytes_fetched,
    )


async def _restore(mode: cluster.BackfillMode) -> None:
    """Restore index settings even while the run is being cancelled; log, never mask, failures."""
    try:
        await asyncio.shield(mode.restore())
    except IngestError as exc:  # the run's own outcome matters more
        _log.error(
            "backfill_mode_restore_failed",
            indices=mode.touched,
            error=str(exc),
            hint="set refresh_interval and number_of_replicas back by hand, or rerun",
        )
