"""The pipeline: listing → fetching → decoding (worker processes) → bulk sink → checkpoint.

The I/O stages are long-lived coroutines in one ``asyncio.TaskGroup``, joined by bounded
queues, so a slow sink slows fetching and listing down instead of filling memory, and one
failure cancels the rest. CPU work (gunzip, JSON, shaping) runs in a process pool and hands
back ready NDJSON bytes, so the event loop only moves bytes.

An object is settled in the checkpoint only once every one of its documents is acknowledged by
OpenSearch or written to the dead-letter (which is fsynced first). Records seen always equal
indexed + dead-lettered + skipped by rule.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing
import signal
import time
import zlib
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import orjson
import structlog

from ingest import cluster, source
from ingest.checkpoint import Ledger, ObjectCounts, Status
from ingest.config import S3Location, Settings
from ingest.deadletter import DeadLetter
from ingest.decode import Decoded, Document, decode_object
from ingest.errors import SourceError
from ingest.listing import Emit, ListingStats, list_log_objects
from ingest.retry import call_with_retry
from ingest.sink import BulkClient, BulkSink, OpenSearchBulkClient, Outcome, SinkStats
from ingest.source import ObjectRef, ObjectStore

__all__ = ["Emit", "Produce", "RunStats", "execute_backfill", "root_cause", "run_backfill"]

_log = structlog.get_logger("ingest.pipeline")
_DONE = None  # queue sentinel

# A producer hands objects to the pipeline through ``emit`` and returns when it has no more.
Produce = Callable[[Emit], Awaitable[None]]


@dataclass(slots=True)
class RunStats:
    """Counters of one run; the progress display and the summary read them."""

    started: float = field(default_factory=time.monotonic)
    listing: ListingStats = field(default_factory=ListingStats)
    objects_already_done: int = 0
    objects_done: int = 0
    objects_failed: int = 0
    objects_failed_earlier: int = 0  # failed in an earlier run, not retried (no --retry-failed)
    bytes_fetched: int = 0
    json_bytes: int = 0
    records_seen: int = 0
    indexed: int = 0
    already_indexed: int = 0
    deadlettered: int = 0
    skipped: int = 0
    enrich_failed: int = 0
    objects_other_shard: int = 0
    newest_event: str = ""  # the newest eventTime indexed (ISO-8601, compares as text)
    stopped: bool = False  # a graceful stop (SIGINT/SIGTERM) ended the run early
    sink: SinkStats | None = None
    finished: float | None = None

    @property
    def elapsed(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def balanced(self) -> bool:
        return self.records_seen == self.indexed + self.deadlettered + self.skipped


# Compressed bytes of a CloudTrail file become roughly this many bytes in flight (JSON ~10x,
# parsed objects and bulk NDJSON on top), which is what the in-flight budget has to bound.
_EXPANSION = 12


class ByteBudget:
    """Bounds the bytes of objects between fetch and settle, whatever the archive's size.

    An object larger than the whole budget still goes, alone; nothing ever waits forever.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._held: dict[str, int] = {}
        self._freed = asyncio.Event()

    async def acquire(self, key: str, size: int) -> None:
        want = max(1, min(size, self.limit))
        while self.used and self.used + want > self.limit:
            self._freed.clear()
            await self._freed.wait()
        self.used += want
        self._held[key] = self._held.get(key, 0) + want

    def release(self, key: str) -> None:
        self.used -= self._held.pop(key, 0)
        self._freed.set()


class _ObjectTask:
    """One object's documents in flight; settles the object when the last one is settled."""

    __slots__ = (
        "_complete",
        "_reject",
        "decoded",
        "existed",
        "indexed",
        "pending",
        "ref",
        "started",
    )

    def __init__(
        self,
        ref: ObjectRef,
        decoded: Decoded,
        complete: Callable[[_ObjectTask], None],
        reject: Callable[[ObjectRef, Document, Outcome], None],
    ) -> None:
        self.ref = ref
        self.decoded = decoded
        self.pending = len(decoded.documents)
        self.indexed = 0
        self.existed = 0
        self._complete = complete
        self._reject = reject
        self.started = time.monotonic()

    def settle(self, doc: Document, outcome: Outcome) -> None:
        if outcome.indexed:
            self.indexed += 1
            self.existed += outcome.existed
        else:
            self._reject(self.ref, doc, outcome)
        self.pending -= 1
        if self.pending == 0:
            self._complete(self)


class _Run:
    def __init__(
        self,
        settings: Settings,
        store: ObjectStore,
        client: BulkClient,
        ledger: Ledger,
        deadletter: DeadLetter,
        stats: RunStats,
        executor: Executor | None,
        prepare_index: Callable[[str], Awaitable[None]] | None,
    ) -> None:
        self.prepare_index = prepare_index
        self.s = settings
        self.store = store
        self.client = client
        self.ledger = ledger
        self.dl = deadletter
        self.stats = stats
        self.executor = executor
        self.source = store.name
        conc = settings.source.concurrency
        self.fetch_q: asyncio.Queue[ObjectRef | None] = asyncio.Queue(maxsize=conc * 2)
        self.index_q: asyncio.Queue[tuple[ObjectRef, Decoded] | None] = asyncio.Queue(
            maxsize=max(2, settings.workers * 2)
        )
        self.stopping = False
        self.lister_task: asyncio.Task[None] | None = None
        self._pending: list[ObjectRef] = []
        self.in_progress: dict[str, ObjectRef] = {}  # emitted and not yet settled
        self._failed_earlier: set[str] = set()
        self.budget = ByteBudget(settings.inflight_bytes)
        self.produce: Produce = self._list
        self.on_settled: Callable[[ObjectRef], None] | None = None

    async def _list(self, emit: Emit) -> None:
        loc = self.s.source.location
        await list_log_objects(
            self.store,
            loc.prefix if isinstance(loc, S3Location) else "",
            self.s.filters,
            emit,
            concurrency=self.s.source.concurrency,
            retry=self.s.source.retry,
            stats=self.stats.listing,
        )

    def _settled(self, ref: ObjectRef) -> None:
        self.budget.release(ref.key)
        self.in_progress.pop(ref.key, None)
        if self.on_settled is not None:
            self.on_settled(ref)

    def request_stop(self) -> None:
        """Stop listing and fetching; what is already fetched is indexed and settled."""
        if self.stopping:
            return
        self.stopping = True
        self.stats.stopped = True
        if self.lister_task is not None:
            self.lister_task.cancel()
        while not self.fetch_q.empty():
            self.fetch_q.get_nowait()
        for _ in range(self.s.source.concurrency):
            self.fetch_q.put_nowait(_DONE)

    def _flush_pending(self) -> None:
        if self._pending:
            self.ledger.mark(self.source, self._pending, Status.PENDING)
            self._pending = []

    # -- listing ----------------------------------------------------------------------------
    async def _emit(self, ref: ObjectRef) -> None:
        if self.s.shard is not None and not in_shard(ref.key, self.s.shard):
            self.stats.objects_other_shard += 1
            return
        if ref.key in self.in_progress:
            return  # listed again (tail's overlapping polls) while still being processed
        status = self.ledger.settled_status(
            self.source, [ref], retry_failed=self.s.retry_failed
        ).get(ref.key)
        if status is not None:
            if status is Status.DONE:
                self.stats.objects_already_done += 1
            elif ref.key not in self._failed_earlier:  # tail lists a key again and again
                self._failed_earlier.add(ref.key)
                self.stats.objects_failed_earlier += 1
            self._settled(ref)  # e.g. an SQS message about an object a backfill already did
            return
        self.in_progress[ref.key] = ref
        self._pending.append(ref)
        if len(self._pending) >= 256:
            self._flush_pending()
        await self.fetch_q.put(ref)

    async def lister(self) -> None:
        await self.produce(self._emit)
        self._flush_pending()
        # Sentinels only on success: after a failure the task group cancels every stage, and a
        # put into a full queue in a cancelled task would wait forever.
        for _ in range(self.s.source.concurrency):
            await self.fetch_q.put(_DONE)

    # -- fetching and decoding --------------------------------------------------------------
    async def _decode(self, ref: ObjectRef, data: bytes) -> Decoded:
        fn = partial(
            decode_object,
            ref.key,
            data,
            index_prefix=self.s.sink.index_prefix,
            exclude=self.s.filters.exclude,
        )
        if self.executor is None:
            return await asyncio.to_thread(fn)
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn)

    async def fetcher(self, remaining: list[int]) -> None:
        while (ref := await self.fetch_q.get()) is not _DONE and not self.stopping:
            await self.budget.acquire(ref.key, ref.size * _EXPANSION)
            self.ledger.mark(self.source, [ref], Status.IN_FLIGHT)
            try:
                data = await call_with_retry(self.s.source.retry, partial(self.store.get, ref))
            except SourceError as exc:
                self._object_failed(ref, "fetch", type(exc).__name__, str(exc))
                continue
            self.stats.bytes_fetched += len(data)
            decoded = await self._decode(ref, data)
            del data
            await self.index_q.put((ref, decoded))
        remaining[0] -= 1
        if remaining[0] == 0:  # the last fetcher to finish tells the indexer
            await self.index_q.put(_DONE)

    # -- indexing ---------------------------------------------------------------------------
    async def indexer(self, sink: BulkSink) -> None:
        while True:
            try:
                item = self.index_q.get_nowait()
            except asyncio.QueueEmpty:
                await sink.flush()  # upstream is idle: send the partial batch now
                item = await self.index_q.get()
            if item is _DONE:
                break
            ref, decoded = item
            self.stats.json_bytes += decoded.json_bytes
            if decoded.failed:
                bad = decoded.rejected[0]
                self._object_failed(ref, "decode", bad.error_type, bad.reason)
                continue
            self.stats.records_seen += decoded.records
            self.stats.skipped += decoded.skipped
            self.stats.enrich_failed += decoded.enrich_failed
            for bad in decoded.rejected:
                self._deadletter(
                    ref, "decode", bad.error_type, bad.reason, bad.record_index, record=bad.record
                )
            if self.prepare_index is not None:
                for name in sorted({d.index_name for d in decoded.documents}):
                    await self.prepare_index(name)
            task = _ObjectTask(ref, decoded, self._object_done, self._doc_rejected)
            if not decoded.documents:
                self._object_done(task)
                continue
            for doc in decoded.documents:
                await sink.put(doc, task)
        await sink.drain()

    def _deadletter(
        self,
        ref: ObjectRef,
        stage: str,
        error_type: str,
        reason: str,
        record_index: int | None,
        *,
        index: str | None = None,
        doc_id: str | None = None,
        record: object = None,
    ) -> None:
        where = f"{self.source}/{ref.key}" + (
            f" record {record_index}" if record_index is not None else ""
        )
        _log.error("dead_lettered", stage=stage, object=where, error=error_type, reason=reason)
        self.dl.add(
            stage=stage,
            source=self.source,
            key=ref.key,
            error_type=error_type,
            reason=reason,
            record_index=record_index,
            index=index,
            doc_id=doc_id,
            record=record,
        )
        if record_index is not None:
            self.stats.deadlettered += 1

    def _doc_rejected(self, ref: ObjectRef, doc: Document, outcome: Outcome) -> None:
        source_line = doc.ndjson.split(b"\n", 2)[1]
        self._deadletter(
            ref,
            "index",
            outcome.error_type or "Rejected",
            outcome.reason or "",
            doc.record_index,
            index=doc.index_name,
            doc_id=doc.doc_id,
            record=orjson.loads(source_line),
        )

    def _object_failed(self, ref: ObjectRef, stage: str, error_type: str, reason: str) -> None:
        self._deadletter(ref, stage, error_type, reason, None)
        self.dl.sync()
        self.ledger.record(self.source, ref, Status.FAILED, ObjectCounts())
        self.stats.objects_failed += 1
        self._settled(ref)

    def _object_done(self, task: _ObjectTask) -> None:
        d = task.decoded
        dead = len(d.rejected) + (len(d.documents) - task.indexed)
        self.dl.sync()
        self.ledger.record(
            self.source,
            task.ref,
            Status.DONE,
            ObjectCounts(
                records=d.records, indexed=task.indexed, deadlettered=dead, skipped=d.skipped
            ),
        )
        self.stats.objects_done += 1
        self.stats.indexed += task.indexed
        self.stats.already_indexed += task.existed
        if d.newest_event and d.newest_event > self.stats.newest_event:
            self.stats.newest_event = d.newest_event
        self._settled(task.ref)
        _log.info(
            "object_done",
            key=task.ref.key,
            records=d.records,
            indexed=task.indexed,
            already_indexed=task.existed,
            deadlettered=dead,
            skipped=d.skipped,
            bytes=task.ref.size,
            ms=round((time.monotonic() - task.started) * 1000),
        )


def _worker_init() -> None:
    # Ctrl-C reaches the whole process group; the parent decides how to stop, not the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Decoding allocates millions of short-lived, acyclic dicts: the default gen-0 threshold
    # (700) runs the collector constantly for nothing. Measured +11 % transform throughput
    # (docs/benchmarks.md); freezing what the worker imported keeps it out of every scan.
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def _executor(workers: int) -> ProcessPoolExecutor | None:
    if workers == 0:
        return None
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["ingest.decode"])
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init)


async def run_backfill(
    settings: Settings,
    store: ObjectStore,
    client: BulkClient,
    ledger: Ledger,
    deadletter: DeadLetter,
    stats: RunStats | None = None,
    prepare_index: Callable[[str], Awaitable[None]] | None = None,
    stop: asyncio.Event | None = None,
    produce: Produce | None = None,
    on_settled: Callable[[ObjectRef], None] | None = None,
) -> RunStats:
    """Run the pipeline until ``produce`` (default: one listing of the source) has no more
    objects and every object it gave is settled, or until a terminal failure propagates.

    ``prepare_index`` is awaited once per index name before its first document is sent. Setting
    ``stop`` stops producing and fetching; the run ends once what was fetched is settled.
    ``on_settled`` hears of every object settled (done, failed, or found done in the ledger).
    """
    stats = stats if stats is not None else RunStats()
    async with AsyncExitStack() as stack:
        executor = _executor(settings.workers)
        if executor is not None:
            stack.callback(executor.shutdown, wait=True, cancel_futures=True)
        run = _Run(settings, store, client, ledger, deadletter, stats, executor, prepare_index)
        if produce is not None:
            run.produce = produce
        run.on_settled = on_settled
        watcher = asyncio.create_task(_watch(stop, run)) if stop is not None else None
        try:
            async with asyncio.TaskGroup() as tg:
                sink = BulkSink(client, settings.sink, tg)
                stats.sink = sink.stats
                run.lister_task = tg.create_task(run.lister(), name="lister")
                remaining = [settings.source.concurrency]
                for i in range(settings.source.concurrency):
                    tg.create_task(run.fetcher(remaining), name=f"fetcher-{i}")
                tg.create_task(run.indexer(sink), name="indexer")
        finally:
            if watcher is not None:
                watcher.cancel()
            stats.finished = time.monotonic()
            deadletter.sync()
    return stats


async def _watch(stop: asyncio.Event, run: _Run) -> None:
    await stop.wait()
    run.request_stop()


def in_shard(key: str, shard: tuple[int, int]) -> bool:
    """Whether ``key`` is in shard ``I`` of ``N`` (a stable hash, the same on every machine)."""
    index, count = shard
    return zlib.crc32(key.encode()) % count == index


def root_cause(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup):
        inner = [e for e in exc.exceptions if not isinstance(e, asyncio.CancelledError)]
        exc = (inner or list(exc.exceptions))[0]
    return exc


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


async def execute_backfill(
    settings: Settings, *, console: bool, ensure_template: bool = True, tail: Any = None
) -> RunStats:
    """Open every edge for ``settings``, run the backfill (or, given a
    :class:`~ingest.tail.TailConfig`, tail until stopped), close everything. The CLI and the
    demo both come through here."""
    from ingest import telemetry

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
        version = await call_with_retry(settings.sink.retry, lambda: cluster.ping(os_client))
        _log.info("opensearch_ready", url=settings.sink.url, version=version)
        if ensure_template:
            await cluster.ensure_template(os_client, settings.sink)
        mode = cluster.BackfillMode(os_client) if settings.backfill_mode and not tail else None
        produce, on_settled = None, None
        if tail is not None:
            produce, on_settled = await _tail_edges(
                stack, settings, tail, store, ledger, os_client, stats
            )
        run_id = ledger.start_run(store.name)
        keeper = asyncio.create_task(_keep_run_row(ledger, run_id, stats))
        outcome = "aborted"
        try:
            async with telemetry.progress(stats, enabled=console):
                await run_backfill(
                    settings,
                    store,
                    OpenSearchBulkClient(os_client),
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


async def _tail_edges(
    stack: AsyncExitStack,
    settings: Settings,
    tail: Any,
    store: ObjectStore,
    ledger: Ledger,
    os_client: Any,
    stats: RunStats,
) -> tuple[Produce, Callable[[ObjectRef], None] | None]:
    """The tail producer, the health pinger and the metrics server."""
    from ingest import metrics
    from ingest.tail import Health, poller, sqs_consumer

    health = Health(threshold=tail.unhealthy_after)
    health.ok("s3")
    health.ok("opensearch")
    in_progress: dict[str, ObjectRef] = {}
    if tail.sqs_queue_url:
        produce, hook = sqs_consumer(settings, store, tail, health)
    else:
        produce, hook = poller(settings, store, ledger, tail, health), None

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
            with contextlib.suppress(Exception):
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


async def _restore(mode: cluster.BackfillMode) -> None:
    """Restore index settings even while the run is being cancelled; log, never mask, failures."""
    try:
        await asyncio.shield(mode.restore())
    except Exception as exc:  # the run's own outcome matters more
        _log.error(
            "backfill_mode_restore_failed",
            indices=mode.touched,
            error=str(exc),
            hint="set refresh_interval and number_of_replicas back by hand, or rerun",
        )
