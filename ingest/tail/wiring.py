"""Plugging a tail into a run: its producer, the health pinger and the metrics server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

import structlog

from ingest import cluster, metrics
from ingest.checkpoint import Ledger
from ingest.config import Settings
from ingest.engine import Produce, RunStats
from ingest.errors import IngestError
from ingest.listing import Emit
from ingest.queue import open_queue
from ingest.source import ObjectRef, ObjectStore
from ingest.tail.config import Health, TailConfig
from ingest.tail.polling import poller
from ingest.tail.sqs import SqsConsumer

__all__ = ["open_tail"]

_log = structlog.get_logger("ingest.tail")


async def open_tail(
    stack: AsyncExitStack,
    settings: Settings,
    tail: TailConfig,
    store: ObjectStore,
    ledger: Ledger,
    os_client: Any,
    stats: RunStats,
) -> tuple[Produce, Callable[[ObjectRef], None] | None]:
    """The tail's producer (polling or SQS) wrapped to track what is in flight, its health
    pinger and its metrics server, opened on ``stack``; returns the producer and the hook to
    call on every settled object. With SQS, the queue's client is opened on ``stack`` too, and
    when the run is over the consumer deletes what is settled and releases what it holds."""

    health = Health(threshold=tail.unhealthy_after)
    health.ok("s3")
    health.ok("opensearch")
    in_progress: dict[str, ObjectRef] = {}
    produce: Callable[[Emit], Any]
    hook: Callable[[ObjectRef], None] | None = None
    if tail.sqs_queue_url:
        queue = await stack.enter_async_context(
            open_queue(
                tail.sqs_queue_url,
                retry=settings.source.retry,
                endpoint_url=tail.sqs_endpoint_url,
                region=settings.source.region,
                profile=settings.source.profile,
                read_timeout=tail.sqs_wait_seconds + 30,
            )
        )
        consumer = SqsConsumer(settings, store, tail, health, queue)
        stack.push_async_callback(consumer.aclose)  # before the client closes
        produce, hook = consumer.produce, consumer.on_settled
    else:
        produce = poller(settings, store, ledger, tail, health)

    def on_settled(ref: ObjectRef) -> None:
        in_progress.pop(ref.key, None)
        if hook is not None:
            hook(ref)

    async def tracked(emit: Emit) -> None:
        async def track(ref: ObjectRef) -> None:
            in_progress[ref.key] = ref
            await emit(ref)

        await produce(track)

    async def pinger() -> None:
        while True:
            with contextlib.suppress(IngestError):  # one try a round: unhealthy in time
                await cluster.ping(os_client)
                health.ok("opensearch")
            await asyncio.sleep(min(15.0, tail.unhealthy_after / 3))

    ping_task = asyncio.create_task(pinger())
    stack.callback(ping_task.cancel)
    if tail.metrics_port is not None:

        def oldest() -> Any:
            stamps = [r.last_modified for r in in_progress.values() if r.last_modified]
            return min(stamps) if stamps else None

        server = metrics.MetricsServer(
            metrics.RunCollector(stats, oldest), health.problems, tail.metrics_port
        )
        await server.start()
        stack.push_async_callback(server.stop)
        _log.info("metrics_listening", port=server.port, paths=["/metrics", "/healthz"])
    return tracked, on_settled
