"""Polling: per account/region prefix, list from the ledger's rewound watermark (or from
``--since`` where nothing is settled yet) to today, again every poll interval."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from ingest.config import S3Location, Settings
from ingest.errors import IngestError
from ingest.layout import parse_log_key
from ingest.listing import Emit, RegionPrefix, list_day, list_region_prefixes
from ingest.source import ObjectStore
from ingest.tail.config import DEFAULT_SINCE, Health, TailConfig, announce, stamp

__all__ = ["poll_region", "poller"]

_log = structlog.get_logger("ingest.tail")


def _stamp_key(day_prefix: str, name_prefix: str, when: datetime) -> str:
    return f"{day_prefix}{name_prefix}{when:%Y%m%dT%H%MZ}"


def _days(since: datetime, until: datetime) -> list[datetime]:
    day = datetime(since.year, since.month, since.day, tzinfo=UTC)
    out = []
    while day.date() <= until.date():
        out.append(day)
        day += timedelta(days=1)
    return out


async def poll_region(
    store: ObjectStore,
    region: RegionPrefix,
    newest: str | None,
    config: TailConfig,
    emit: Emit,
    now: datetime,
    fresh_since: datetime | None = None,
) -> None:
    """List one account/region from the rewound watermark to today; with nothing settled under
    the prefix yet, from ``fresh_since`` (default: a day before ``now``)."""
    kind = "CloudTrail-Insight" if "/CloudTrail-Insight/" in region.prefix else "CloudTrail"
    name_prefix = f"{region.account}_{kind}_{region.region}_"
    parsed = parse_log_key(newest) if newest else None
    if parsed is not None:
        stamp = parsed.key.rsplit("_", 2)[-2]
        try:
            mark = datetime.strptime(stamp, "%Y%m%dT%H%MZ").replace(tzinfo=UTC)
        except ValueError:
            mark = datetime(parsed.day.year, parsed.day.month, parsed.day.day, tzinfo=UTC)
        since = mark - config.rewind  # the ledger's watermark wins over --since
    else:
        since = fresh_since if fresh_since is not None else now - DEFAULT_SINCE
    for day in _days(since, now):
        day_prefix = f"{region.prefix}{day:%Y/%m/%d}/"
        start_after = (
            _stamp_key(day_prefix, name_prefix, since) if day.date() == since.date() else None
        )
        await list_day(store, day_prefix, emit, start_after=start_after)


async def _poll_all(
    store: ObjectStore,
    regions: list[RegionPrefix],
    ledger: Any,
    config: TailConfig,
    emit: Emit,
    settings: Settings,
    now: datetime,
    since: datetime,
    listed: dict[str, datetime],
) -> None:
    """Poll every region; ``listed`` remembers, per prefix, when it was last listed in full, so
    that a prefix with nothing settled (nothing written since ``since``) is not listed from
    ``since`` again on every poll."""
    gate = asyncio.Semaphore(settings.source.concurrency)

    async def one(r: RegionPrefix) -> None:
        async with gate:
            newest = ledger.newest_settled(store.name, r.prefix)
            fresh_since = since
            if r.prefix in listed:
                fresh_since = max(since, listed[r.prefix] - config.rewind)
            await poll_region(store, r, newest, config, emit, now, fresh_since)
            listed[r.prefix] = now

    async with asyncio.TaskGroup() as tg:
        for r in regions:
            tg.create_task(one(r))


def poller(
    settings: Settings,
    store: ObjectStore,
    ledger: Any,
    config: TailConfig,
    health: Health,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Callable[[Emit], Any]:
    """The polling producer: runs until cancelled (a stop request cancels it)."""

    async def produce(emit: Emit) -> None:
        loc = settings.source.location
        prefix = loc.prefix if isinstance(loc, S3Location) else ""
        since = config.since if config.since is not None else clock() - DEFAULT_SINCE
        resumes = ledger.newest_settled(store.name, prefix) is not None
        rewind = f"{config.rewind.total_seconds() / 60:g} min"
        announce(
            f"reading objects from {stamp(since)}"
            + (
                f" (where the ledger has settled files: from {rewind} before the newest)"
                if resumes
                else ""
            )
            + "; older ones: run backfill or pass --since",
            mode="poll",
            since=since.isoformat(),
            rewind_minutes=config.rewind.total_seconds() / 60,
            resumes_from_ledger=resumes,
        )
        regions: list[RegionPrefix] = []
        listed: dict[str, datetime] = {}
        discovered = float("-inf")
        while True:
            started = time.monotonic()
            try:
                if started - discovered > config.rediscover_seconds:
                    regions = await list_region_prefixes(
                        store, prefix, settings.filters, concurrency=settings.source.concurrency
                    )
                    discovered = started
                    _log.info("tail_discovered", regions=len(regions))
                await _poll_all(
                    store, regions, ledger, config, emit, settings, clock(), since, listed
                )
                health.ok("s3")
            except* IngestError as group:  # a failed poll is logged and tried again next interval
                _log.error("tail_poll_failed", error=str(group.exceptions[0])[:300])
            await asyncio.sleep(max(0.0, config.poll_interval - (time.monotonic() - started)))

    return produce
