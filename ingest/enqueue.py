"""``ct-ingest enqueue``: the fleet's producer. The same parallel, pruned listing as a backfill
(:func:`~ingest.listing.list_log_objects`), with the keys sent to SQS as S3 event notification
bodies, many keys a message and ten messages a ``send_message_batch``
(:func:`~ingest.tail.notification_bodies`), for workers running ``tail --sqs-queue-url``.

The queue, not a ledger, is the fleet's progress; enqueue keeps only its own, by day prefix,
in a small SQLite file: a day is recorded once every one of its keys is in a message SQS
accepted, so a restarted enqueue skips the days it already sent to the same queue (and shard)
and lists the rest again. Days younger than :data:`SETTLE_DAYS` are never recorded (CloudTrail
still writes into them), so a later run sends them again; so does ``fresh``. Sending a key
twice costs its worker a GET and a decode, and the index answers 409: nothing is duplicated.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from ingest import source
from ingest.config import S3Location, Settings
from ingest.engine import in_shard
from ingest.errors import CheckpointError, ConfigError, SourceError
from ingest.listing import DayHooks, ListingStats, list_log_objects
from ingest.private import touch_private
from ingest.queue import BATCH_ENTRIES, SqsQueue, open_queue
from ingest.source import ObjectRef
from ingest.tail import notification_bodies

__all__ = ["SETTLE_DAYS", "EnqueueStats", "run_enqueue"]

_log = structlog.get_logger("ingest.enqueue")

SETTLE_DAYS = 2  # a day prefix this young (UTC) may still get files: never recorded as sent
_SENDS_IN_FLIGHT = 4


@dataclass(slots=True)
class EnqueueStats:
    """What one enqueue listed and sent."""

    started: float = field(default_factory=time.monotonic)
    listing: ListingStats = field(default_factory=ListingStats)
    keys: int = 0  # sent in a message SQS accepted
    messages: int = 0
    batches: int = 0  # send_message_batch calls
    other_shard: int = 0
    days_sent: int = 0
    days_skipped: int = 0  # recorded as sent by an earlier run
    finished: float | None = None

    @property
    def elapsed(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    def summary_line(self) -> str:
        lst = self.listing
        return (
            f"ct-ingest enqueue: keys {self.keys:,} in {self.messages:,} messages"
            f" ({self.batches:,} send_message_batch calls)"
            + (f", {self.other_shard:,} keys of other shards left out" if self.other_shard else "")
            + f" | {lst.objects:,} keys, {lst.bytes / 1e6:,.1f} MB listed"
            f" | days: {self.days_sent:,} sent, {self.days_skipped:,} already sent (skipped)"
            f" | {self.elapsed:,.1f} s"
        )


class _Progress:
    """The days already sent, per queue and shard, in SQLite (one row a day prefix)."""

    def __init__(self, path: Path, queue: str, shard: str) -> None:
        self._queue, self._shard = queue, shard
        try:
            touch_private(path)
            self._db = sqlite3.connect(path, isolation_level=None)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS enqueued_days (queue TEXT, shard TEXT, prefix TEXT,"
                " keys INTEGER, at REAL, PRIMARY KEY (queue, shard, prefix))"
            )
        except (OSError, sqlite3.Error) as exc:
            raise CheckpointError(f"enqueue progress {path}: {exc}") from exc

    def forget(self) -> None:
        self._db.execute(
            "DELETE FROM enqueued_days WHERE queue = ? AND shard = ?", (self._queue, self._shard)
        )

    def sent(self, prefix: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM enqueued_days WHERE queue = ? AND shard = ? AND prefix = ?",
            (self._queue, self._shard, prefix),
        ).fetchone()
        return row is not None

    def record(self, prefix: str, keys: int) -> None:
        try:
            self._db.execute(
                "INSERT OR REPLACE INTO enqueued_days VALUES (?, ?, ?, ?, ?)",
                (self._queue, self._shard, prefix, keys, time.time()),
            )
        except sqlite3.Error as exc:
            raise CheckpointError(f"enqueue progress: {exc}") from exc

    def close(self) -> None:
        self._db.close()


def _day(prefix: str) -> date | None:
    try:
        y, m, d = prefix.rstrip("/").rsplit("/", 3)[-3:]
        return date(int(y), int(m), int(d))
    except ValueError:
        return None


class _Sender:
    """Packs emitted keys into messages, sends ten messages a call, and records a day once it
    is listed and every one of its keys is sent."""

    def __init__(
        self,
        queue: SqsQueue,
        bucket: str,
        progress: _Progress,
        stats: EnqueueStats,
        per_message: int,
        today: date,
    ) -> None:
        self._queue, self._bucket, self._progress = queue, bucket, progress
        self._stats, self._per_message = stats, per_message
        self._settled_before = today - timedelta(days=SETTLE_DAYS - 1)
        self._pending: list[ObjectRef] = []
        self._outstanding: Counter[str] = Counter()
        self._counts: Counter[str] = Counter()
        self._listed: set[str] = set()
        self._gate = asyncio.Semaphore(_SENDS_IN_FLIGHT)

    def skip(self, prefix: str) -> bool:
        if self._progress.sent(prefix):
            self._stats.days_skipped += 1
            return True
        return False

    def listed(self, prefix: str) -> None:
        self._listed.add(prefix)
        self._maybe_done(prefix)

    def _maybe_done(self, prefix: str) -> None:
        if prefix not in self._listed or self._outstanding[prefix]:
            return
        self._listed.discard(prefix)
        self._stats.days_sent += 1
        day = _day(prefix)
        if day is not None and day < self._settled_before:
            self._progress.record(prefix, self._counts.pop(prefix, 0))

    async def add(self, ref: ObjectRef) -> None:
        prefix = ref.key.rsplit("/", 1)[0] + "/"
        self._outstanding[prefix] += 1
        self._counts[prefix] += 1
        self._pending.append(ref)
        if len(self._pending) >= self._per_message * BATCH_ENTRIES:
            await self.flush()

    async def flush(self) -> None:
        refs, self._pending = self._pending, []
        bodies = list(notification_bodies(self._bucket, refs, per_message=self._per_message))
        for start in range(0, len(bodies), BATCH_ENTRIES):
            async with self._gate:
                await self._send(bodies[start : start + BATCH_ENTRIES])

    async def _send(self, batch: list[tuple[bytes, list[ObjectRef]]]) -> None:
        refused = await self._queue.send([body for body, _ in batch])
        self._stats.batches += 1
        if refused:  # entries SQS refused inside a successful answer: once more, then give up
            again = await self._queue.send([batch[i][0] for i in refused])
            self._stats.batches += 1
            if again:
                raise SourceError(
                    f"send_message_batch {self._queue.url}: SQS refused {len(again)} messages "
                    "twice; run the same command again to resume"
                )
        for _, refs in batch:
            self._stats.messages += 1
            self._stats.keys += len(refs)
            for ref in refs:
                prefix = ref.key.rsplit("/", 1)[0] + "/"
                self._outstanding[prefix] -= 1
                self._maybe_done(prefix)


async def run_enqueue(
    settings: Settings,
    *,
    queue_url: str,
    endpoint_url: str | None = None,
    progress_path: Path,
    per_message: int = 100,
    fresh: bool = False,
    console: bool = False,
    today: date | None = None,
) -> EnqueueStats:
    """List the source under ``settings``' filters (and shard) and send every log file's key to
    the queue at ``queue_url``; with ``fresh``, forget the days sent by earlier runs first."""
    loc = settings.source.location
    if not isinstance(loc, S3Location):
        raise ConfigError("enqueue needs an s3:// source: workers read the objects from S3")
    if not 1 <= per_message <= 500:
        raise ConfigError(f"--keys-per-message {per_message}: expected 1 to 500")
    stats = EnqueueStats()
    shard = f"{settings.shard[0]}/{settings.shard[1]}" if settings.shard else ""
    progress = _Progress(progress_path, queue_url, shard)
    try:
        if fresh:
            progress.forget()
        store = await source.open_store(settings.source)
        try:
            async with open_queue(
                queue_url,
                retry=settings.source.retry,
                endpoint_url=endpoint_url,
                region=settings.source.region,
                profile=settings.source.profile,
            ) as queue:
                sender = _Sender(
                    queue,
                    loc.bucket,
                    progress,
                    stats,
                    per_message,
                    today or datetime.now(UTC).date(),
                )

                async def emit(ref: ObjectRef) -> None:
                    if settings.shard is not None and not in_shard(ref.key, settings.shard):
                        stats.other_shard += 1
                        return
                    await sender.add(ref)

                async with _progress_bar(stats, enabled=console):
                    await list_log_objects(
                        store,
                        loc.prefix,
                        settings.filters,
                        emit,
                        concurrency=settings.source.concurrency,
                        stats=stats.listing,
                        days=DayHooks(skip=sender.skip, listed=sender.listed),
                    )
                    await sender.flush()
        finally:
            await store.aclose()
    finally:
        progress.close()
        stats.finished = time.monotonic()
    _log.info(
        "enqueue_done",
        keys=stats.keys,
        messages=stats.messages,
        batches=stats.batches,
        bytes_listed=stats.listing.bytes,
        days_sent=stats.days_sent,
        days_skipped=stats.days_skipped,
        other_shard=stats.other_shard,
        seconds=round(stats.elapsed, 2),
    )
    return stats


@asynccontextmanager
async def _progress_bar(stats: EnqueueStats, *, enabled: bool) -> AsyncIterator[None]:
    """A live line (keys listed and sent, messages, MB listed, days skipped) on a terminal."""
    if not enabled:
        yield
        return
    bar = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )

    def text() -> str:
        lst = stats.listing
        return (
            f"enqueue: {lst.objects:,} keys listed ({lst.bytes / 1e6:,.1f} MB), {stats.keys:,} "
            f"sent in {stats.messages:,} messages, {stats.days_skipped:,} days already sent"
        )

    with bar:
        task: Any = bar.add_task(text())

        async def ticker() -> None:
            while True:
                bar.update(task, description=text())
                await asyncio.sleep(0.25)

        tick = asyncio.create_task(ticker())
        try:
            yield
        finally:
            tick.cancel()
            bar.update(task, description=text())
