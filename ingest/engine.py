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
import os
import tempfile
import time
import zlib
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from functools import partial

import orjson
import structlog

from ingest.checkpoint import Ledger, ObjectCounts, Status
from ingest.config import S3Location, Settings
from ingest.deadletter import DeadLetter
from ingest.decode import Decoded, Document, Rejected, Stream, decode_object, decode_span
from ingest.errors import SourceError, WorkerDied
from ingest.listing import Emit, ListingStats, list_log_objects
from ingest.pool import EXPANSION, ByteBudget, WorkerPool
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


class _ObjectTask:
    """One object's documents in flight, from one batch (a small object) or several (a large
    one); settles the object when it is closed (its last batch is in) and the last of its
    documents is settled."""

    __slots__ = (
        "_complete",
        "_reject",
        "closed",
        "documents",
        "existed",
        "failure",
        "indexed",
        "newest_event",
        "pending",
        "records",
        "ref",
        "rejected",
        "skipped",
        "started",
    )

    def __init__(
        self,
        ref: ObjectRef,
        complete: Callable[[_ObjectTask], None],
        reject: Callable[[ObjectRef, Document, Outcome], None],
    ) -> None:
        self.ref = ref
        self.pending = self.indexed = self.existed = 0
        self.records = self.documents = self.rejected = self.skipped = 0
        self.newest_event = ""
        self.closed = False
        self.failure: Rejected | None = None  # the rest of a large object could not be read
        self._complete = complete
        self._reject = reject
        self.started = time.monotonic()

    def add(self, batch: Decoded) -> None:
        self.records += batch.records
        self.documents += len(batch.documents)
        self.pending += len(batch.documents)
        self.rejected += len(batch.rejected)
        self.skipped += batch.skipped
        self.newest_event = max(self.newest_event, batch.newest_event)

    def close(self) -> None:
        self.closed = True
        if self.pending == 0:
            self._complete(self)

    def settle(self, doc: Document, outcome: Outcome) -> None:
        if outcome.indexed:
            self.indexed += 1
            self.existed += outcome.existed
        else:
            self._reject(self.ref, doc, outcome)
        self.pending -= 1
        if self.pending == 0 and self.closed:
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
        pool: WorkerPool,
        prepare_index: Callable[[str], Awaitable[None]] | None,
        spill_dir: str | None = None,
    ) -> None:
        self.prepare_index = prepare_index
        self.settings = settings
        self.store = store
        self.client = client
        self.ledger = ledger
        self.deadletter = deadletter
        self.stats = stats
        self.pool = pool
        self.spill_dir = spill_dir
        self.source = store.name
        conc = settings.source.concurrency
        self.fetch_q: asyncio.Queue[ObjectRef | None] = asyncio.Queue(maxsize=conc * 2)
        # (object, a batch of its documents, whether it is the object's last batch)
        self.index_q: asyncio.Queue[tuple[ObjectRef, Decoded, bool] | None] = asyncio.Queue(
            maxsize=max(2, settings.workers * 2)
        )
        self._tasks: dict[str, _ObjectTask] = {}  # large objects whose batches are coming in
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
        s = self.settings
        fn = partial(
            decode_object,
            ref.key,
            data,
            index_prefix=s.sink.index_prefix,
            exclude=s.filters.exclude,
            max_object_bytes=s.max_object_bytes,
            stream_above=s.stream_above,
            batch_bytes=s.batch_bytes,
            spill_dir=self.spill_dir,
            geoip=s.geoip,
        )
        return await self._in_pool(ref, fn)

    async def _in_pool(self, ref: ObjectRef, fn: Callable[[], Decoded]) -> Decoded:
        try:
            return await self.pool.run(fn, f"{self.source}/{ref.key}")
        except WorkerDied as exc:
            poison = Rejected(None, "PoisonObject", str(exc))
            return Decoded(ref.key, failed=True, rejected=[poison])

    async def _stream(self, ref: ObjectRef, head: Decoded, stream: Stream) -> None:
        """A large object's batches, one span at a time, into the index queue."""
        try:
            await self.index_q.put((ref, head, not stream.spans))
            for n, span in enumerate(stream.spans, 1):
                fn = partial(
                    decode_span,
                    ref.key,
                    stream.path,
                    span,
                    index_prefix=self.settings.sink.index_prefix,
                    exclude=self.settings.filters.exclude,
                    geoip=self.settings.geoip,
                )
                batch = await self._in_pool(ref, fn)
                await self.index_q.put((ref, batch, batch.failed or n == len(stream.spans)))
                if batch.failed:
                    break
        finally:
            os.unlink(stream.path)

    async def fetcher(self, remaining: list[int]) -> None:
        while (ref := await self.fetch_q.get()) is not _DONE and not self.stopping:
            await self.budget.acquire(ref.key, ref.size * EXPANSION)
            self.ledger.mark(self.source, [ref], Status.IN_FLIGHT)
            try:
                data = await self.store.get(ref)  # the store retries its own calls
            except SourceError as exc:
                self._object_failed(ref, "fetch", type(exc).__name__, str(exc))
                continue
            self.stats.bytes_fetched += len(data)
            decoded = await self._decode(ref, data)
            del data
            if decoded.stream is None:
                await self.index_q.put((ref, decoded, True))
            else:
                await self._stream(ref, decoded, decoded.stream)
        remaining[0] -= 1
        if remaining[0] == 0:  # the last fetcher to finish tells the indexer
            await self.index_q.put(_DONE)

    # -- indexing ---------------------------------------------------------------------------
    async def indexer(self, sink: BulkSink) -> None:
        # Bodies fill across objects; one not full goes after the sink's linger, or at drain.
        while (item := await self.index_q.get()) is not _DONE:
            ref, decoded, last = item
            self.stats.json_bytes += decoded.json_bytes
            task = self._tasks.pop(ref.key, None)
            if decoded.failed:
                bad = decoded.rejected[0]
                if task is None:
                    self._object_failed(ref, "decode", bad.error_type, bad.reason)
                else:  # a later batch of a large object: settled failed once the rest is
                    task.failure = bad
                    task.close()
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
            if task is None:
                task = _ObjectTask(ref, self._object_done, self._doc_rejected)
            if not last:
                self._tasks[ref.key] = task
            task.add(decoded)
            await sink.put_many(decoded.documents, task)
            if last:
                task.close()
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
        dead = task.rejected + (task.documents - task.indexed)
        if task.failure is not None:
            bad = task.failure
            self._deadletter(task.ref, "decode", bad.error_type, bad.reason, None)
        self.deadletter.sync()
        self.ledger.record(
            self.source,
            task.ref,
            Status.DONE if task.failure is None else Status.FAILED,
            ObjectCounts(
                records=task.records, indexed=task.indexed, deadlettered=dead, skipped=task.skipped
            ),
        )
        if task.failure is None:
            self.stats.objects_done += 1
        else:
            self.stats.objects_failed += 1
        self.stats.indexed += task.indexed
        self.stats.already_indexed += task.existed
        if task.newest_event > self.stats.newest_event:
            self.stats.newest_event = task.newest_event
        self._settled(task.ref)
        _log.info(
            "object_done",
            key=task.ref.key,
            records=task.records,
            indexed=task.indexed,
            already_indexed=task.existed,
            deadlettered=dead,
            skipped=task.skipped,
            bytes=task.ref.size,
            ms=round((time.monotonic() - task.started) * 1000),
        )


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
        pool = WorkerPool(settings.workers)
        stack.callback(pool.shutdown)
        # Large objects are inflated into files here, beside the ledger (on disk: /tmp may be
        # memory), and removed as soon as they are read; what a dead worker leaves goes here.
        spill_dir = stack.enter_context(
            tempfile.TemporaryDirectory(prefix=".spill-", dir=settings.state_path.parent)
        )
        run = _Pipeline(
            settings, store, client, ledger, deadletter, stats, pool, prepare_index, spill_dir
        )
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
