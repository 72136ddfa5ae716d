"""The engine: listing → fetching → decoding (worker processes) → bulk sink → checkpoint.

The I/O stages are long-lived coroutines in one ``asyncio.TaskGroup``, joined by bounded
queues, so a slow sink slows fetching and listing down instead of filling memory, and one
failure cancels the rest. CPU work (gunzip, JSON, shaping) runs in a process pool and hands
back ready NDJSON bytes, so the event loop only moves bytes.

An object is settled in the checkpoint only once every one of its documents is acknowledged by
OpenSearch or written to the dead-letter (which is fsynced first). Records seen always equal
indexed + dead-lettered + skipped by rule.

The engine knows nothing of signals, files, servers or the terminal: its edges (an
:class:`~ingest.source.ObjectStore`, a :class:`~ingest.sink.BulkClient`, a ledger and a
dead-letter) are handed in, so it runs as well on the in-memory doubles of
:mod:`ingest.testing.memory` as on S3 and OpenSearch. Opening the edges, the run row, signals
and the backfill-mode settings are the runner's business (:mod:`ingest.runner`).
"""

from __future__ import annotations

import asyncio
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

import orjson
import structlog

from ingest.checkpoint import Ledger, ObjectCounts, Status
from ingest.config import S3Location, Settings
from ingest.deadletter import DeadLetter
from ingest.decode import Decoded, Document, decode_object
from ingest.errors import SourceError
from ingest.listing import Emit, ListingStats, list_log_objects
from ingest.sink import BulkClient, BulkSink, Outcome, SinkStats
from ingest.source import ObjectRef, ObjectStore
from ingest.targets import Target

__all__ = ["ByteBudget", "Emit", "Produce", "RunStats", "in_shard", "run_pipeline"]

_log = structlog.get_logger("ingest.engine")
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
    target: Target | None = None  # the cluster written to (ingest.targets), set by the runner
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


class _Pipeline:
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
        self.settings = settings
        self.store = store
        self.client = client
        self.ledger = ledger
        self.deadletter = deadletter
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
        loc = self.settings.source.location
        await list_log_objects(
            self.store,
            loc.prefix if isinstance(loc, S3Location) else "",
            self.settings.filters,
            emit,
            concurrency=self.settings.source.concurrency,
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
        for _ in range(self.settings.source.concurrency):
            self.fetch_q.put_nowait(_DONE)

    def _flush_pending(self) -> None:
        if self._pending:
            self.ledger.mark(self.source, self._pending, Status.PENDING)
            self._pending = []

    # -- listing ----------------------------------------------------------------------------
    async def _emit(self, ref: ObjectRef) -> None:
        if self.settings.shard is not None and not in_shard(ref.key, self.settings.shard):
            self.stats.objects_other_shard += 1
            return
        if ref.key in self.in_progress:
            return  # listed again (tail's overlapping polls) while still being processed
        status = self.ledger.settled_status(
            self.source, [ref], retry_failed=self.settings.retry_failed
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
        for _ in range(self.settings.source.concurrency):
            await self.fetch_q.put(_DONE)

    # -- fetching and decoding --------------------------------------------------------------
    async def _decode(self, ref: ObjectRef, data: bytes) -> Decoded:
        fn = partial(
            decode_object,
            ref.key,
            data,
            index_prefix=self.settings.sink.index_prefix,
            exclude=self.settings.filters.exclude,
            geoip=self.settings.geoip,
        )
        if self.executor is None:
            return await asyncio.to_thread(fn)
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn)

    async def fetcher(self, remaining: list[int]) -> None:
        while (ref := await self.fetch_q.get()) is not _DONE and not self.stopping:
            await self.budget.acquire(ref.key, ref.size * _EXPANSION)
            self.ledger.mark(self.source, [ref], Status.IN_FLIGHT)
            try:
                data = await self.store.get(ref)  # the store retries its own calls
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
        self.deadletter.add(
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
        self.deadletter.sync()
        self.ledger.record(self.source, ref, Status.FAILED, ObjectCounts())
        self.stats.objects_failed += 1
        self._settled(ref)

    def _object_done(self, task: _ObjectTask) -> None:
        d = task.decoded
        dead = len(d.rejected) + (len(d.documents) - task.indexed)
        self.deadletter.sync()
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


async def run_pipeline(
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
        run = _Pipeline(settings, store, client, ledger, deadletter, stats, executor, prepare_index)
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


async def _watch(stop: asyncio.Event, run: _Pipeline) -> None:
    await stop.wait()
    run.request_stop()


def in_shard(key: str, shard: tuple[int, int]) -> bool:
    """Whether ``key`` is in shard ``I`` of ``N`` (a stable hash, the same on every machine)."""
    index, count = shard
    return zlib.crc32(key.encode()) % count == index
