"""Discovery and listing: find the log files to fetch, pruning the key tree as early as possible.

Rather than one serial paginator over millions of keys, the walk lists ``AWSLogs/`` level by
level with a ``/`` delimiter (organizations, accounts, trail folders, regions, years, months,
days), drops every branch the filters exclude, and lists the surviving day prefixes in
parallel, ``concurrency`` requests at a time. Found objects are handed to ``emit`` as they
arrive, so fetching starts before listing ends; a slow consumer slows the listing down
(``emit`` awaits a bounded queue). The store retries its own calls (``ingest.retry``); the walk
never does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import date
from functools import partial

import structlog

from ingest.config import Filters
from ingest.layout import (
    AWSLOGS,
    Level,
    TrailKind,
    is_account,
    is_log_name,
    is_org,
    is_region,
    parse_log_key,
)
from ingest.source import ObjectRef, ObjectStore, Page

__all__ = [
    "DayHooks",
    "Emit",
    "ListingStats",
    "RegionPrefix",
    "list_day",
    "list_log_objects",
    "list_region_prefixes",
]

_log = structlog.get_logger("ingest.listing")

Emit = Callable[[ObjectRef], Awaitable[None]]


@dataclass(slots=True)
class ListingStats:
    """What the walk saw; ``skipped_keys`` + ``skipped_prefixes`` is what it left alone by rule."""

    list_calls: int = 0
    day_prefixes: int = 0
    objects: int = 0
    bytes: int = 0
    skipped_keys: int = 0
    skipped_prefixes: int = 0
    skipped_examples: list[str] = field(default_factory=list)
    done: bool = False

    def skip(self, what: str, *, prefix: bool) -> None:
        if prefix:
            self.skipped_prefixes += 1
        else:
            self.skipped_keys += 1
        if len(self.skipped_examples) < 5:
            self.skipped_examples.append(what)


@dataclass(frozen=True, slots=True)
class _Where:
    """What the path so far says; the next segment is at ``level``."""

    level: Level
    org: str | None = None
    account: str | None = None
    kind: str | None = None
    region: str | None = None
    year: int | None = None
    month: int | None = None


def _year_ok(f: Filters, year: int) -> bool:
    return (f.since is None or year >= f.since.year) and (f.until is None or year <= f.until.year)


def _month_ok(f: Filters, year: int, month: int) -> bool:
    lo = (f.since.year, f.since.month) if f.since else None
    hi = (f.until.year, f.until.month) if f.until else None
    return (lo is None or (year, month) >= lo) and (hi is None or (year, month) <= hi)


def _day_ok(f: Filters, day: date) -> bool:
    return (f.since is None or day >= f.since) and (f.until is None or day <= f.until)


def _descend(where: _Where, segment: str, f: Filters) -> _Where | bool | None:
    """The state below ``segment``: ``None`` if filtered out, ``False`` if not CloudTrail."""
    lv = where.level
    if lv is Level.ACCOUNT:
        if is_org(segment) and where.org is None:
            return replace(where, org=segment)
        if not is_account(segment):
            return False
        if f.accounts and segment not in f.accounts:
            return None
        return replace(where, level=Level.KIND, account=segment)
    if lv is Level.KIND:
        if segment == TrailKind.LOGS.value or (
            segment == TrailKind.INSIGHT.value and f.include_insight
        ):
            return replace(where, level=Level.REGION, kind=segment)
        return False
    if lv is Level.REGION:
        if not is_region(segment):
            return False
        if f.regions and segment not in f.regions:
            return None
        return replace(where, level=Level.YEAR, region=segment)
    if not (segment.isdigit() and len(segment) == (4 if lv is Level.YEAR else 2)):
        return False
    n = int(segment)
    if lv is Level.YEAR:
        return replace(where, level=Level.MONTH, year=n) if _year_ok(f, n) else None
    if where.year is None:
        return False
    if lv is Level.MONTH:
        if not 1 <= n <= 12:
            return False
        return replace(where, level=Level.DAY, month=n) if _month_ok(f, where.year, n) else None
    if where.month is None:
        return False
    try:
        day = date(where.year, where.month, n)
    except ValueError:
        return False
    return replace(where, level=Level.FILE) if _day_ok(f, day) else None


def _start(prefix: str, f: Filters) -> tuple[str, _Where] | None:
    """Where to begin: below ``AWSLogs/``, or deeper when the user's prefix already is."""
    at = prefix.find(AWSLOGS)
    if at < 0:
        return prefix + AWSLOGS, _Where(Level.ACCOUNT)
    base = prefix[: at + len(AWSLOGS)]
    where = _Where(Level.ACCOUNT)
    for segment in prefix[at + len(AWSLOGS) :].split("/"):
        if not segment:
            continue
        nxt = _descend(where, segment, f)
        if not isinstance(nxt, _Where):
            return None
        base, where = f"{base}{segment}/", nxt
    return base, where


@dataclass(frozen=True, slots=True)
class DayHooks:
    """What a caller that keeps its own progress by day (``enqueue``) hears from the walk:
    ``skip(prefix)`` before a day prefix is listed (True: leave it out), and ``listed(prefix)``
    once every one of its log files has been emitted."""

    skip: Callable[[str], bool]
    listed: Callable[[str], None]


@dataclass(frozen=True, slots=True)
class RegionPrefix:
    """Where one account's trail writes for one region: ``.../CloudTrail/REGION/``."""

    prefix: str
    account: str
    region: str


class _Walker:
    """Lists the tree level by level with a bounded number of requests in flight."""

    def __init__(
        self,
        store: ObjectStore,
        filters: Filters,
        concurrency: int,
        stats: ListingStats,
        days: DayHooks | None = None,
    ) -> None:
        self.store, self.filters, self.stats = store, filters, stats
        self.gate = asyncio.Semaphore(concurrency)
        self.days = days

    async def page(
        self,
        p: str,
        delimiter: str | None,
        token: str | None,
        start_after: str | None = None,
    ) -> Page:
        async with self.gate:
            self.stats.list_calls += 1
            return await self.store.list_page(
                p, delimiter=delimiter, token=token, start_after=start_after
            )

    async def walk(
        self, prefix: str, stop_at: Level, leaf: Callable[[str, _Where], Awaitable[None]]
    ) -> None:
        """Descend from ``prefix`` and call ``leaf`` for every prefix at level ``stop_at``."""

        async def down(p: str, where: _Where, tg: asyncio.TaskGroup) -> None:
            if where.level is stop_at:
                await leaf(p, where)
                return
            token: str | None = None
            while True:
                pg = await self.page(p, "/", token)
                for ref in pg.objects:  # keys beside the tree (ConfigWritabilityCheckFile, ...)
                    self.stats.skip(ref.key, prefix=False)
                for child in pg.prefixes:
                    nxt = _descend(where, child[len(p) :].rstrip("/"), self.filters)
                    if nxt is False:
                        self.stats.skip(child, prefix=True)
                    elif isinstance(nxt, _Where):
                        tg.create_task(down(child, nxt, tg))
                token = pg.next_token
                if not token:
                    return

        start = _start(prefix, self.filters)
        if start is not None:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(down(start[0], start[1], tg))


async def list_region_prefixes(
    store: ObjectStore,
    prefix: str,
    filters: Filters,
    *,
    concurrency: int = 32,
) -> list[RegionPrefix]:
    """Every account/region the trail writes to under ``prefix`` (what ``tail`` polls)."""
    found: list[RegionPrefix] = []

    async def leaf(p: str, where: _Where) -> None:
        found.append(RegionPrefix(p, where.account or "", p.rstrip("/").rsplit("/", 1)[-1]))

    await _Walker(store, filters, concurrency, ListingStats()).walk(prefix, Level.YEAR, leaf)
    return sorted(found, key=lambda r: r.prefix)


async def list_log_objects(
    store: ObjectStore,
    prefix: str,
    filters: Filters,
    emit: Emit,
    *,
    concurrency: int = 32,
    stats: ListingStats | None = None,
    days: DayHooks | None = None,
) -> ListingStats:
    """Walk the CloudTrail tree under ``prefix`` and ``emit`` every log file the filters keep
    (the store retries its own calls under the source's policy); ``days`` hears of each day
    prefix."""
    stats = stats if stats is not None else ListingStats()
    walker = _Walker(store, filters, concurrency, stats, days)
    await walker.walk(prefix, Level.FILE, partial(_files, walker, emit))
    stats.done = True
    _log.info(
        "listing_done",
        objects=stats.objects,
        bytes=stats.bytes,
        day_prefixes=stats.day_prefixes,
        list_calls=stats.list_calls,
        skipped_keys=stats.skipped_keys,
        skipped_prefixes=stats.skipped_prefixes,
    )
    return stats


async def _files(
    walker: _Walker, emit: Emit, p: str, where: _Where, *, start_after: str | None = None
) -> None:
    """Emit the log files directly under the day prefix ``p``."""
    stats = walker.stats
    if walker.days is not None and walker.days.skip(p):
        return
    stats.day_prefixes += 1
    token: str | None = None
    account, kind, region = where.account, where.kind, where.region
    if account is None or kind is None or region is None:  # a day prefix given (tail's polling)

        def is_log(key: str) -> bool:
            return parse_log_key(key) is not None and "/" not in key[len(p) :]
    else:  # the folders were checked on the way down: only the file name is left to check

        def is_log(key: str) -> bool:
            return is_log_name(key[len(p) :], account, kind, region)

    while True:
        pg = await walker.page(p, None, token, start_after)
        for ref in pg.objects:
            if not is_log(ref.key):
                stats.skip(ref.key, prefix=False)
                continue
            stats.objects += 1
            stats.bytes += ref.size
            await emit(ref)
        token = pg.next_token
        if not token:
            if walker.days is not None:
                walker.days.listed(p)
            return


async def list_day(
    store: ObjectStore,
    day_prefix: str,
    emit: Emit,
    *,
    start_after: str | None = None,
    stats: ListingStats | None = None,
) -> None:
    """Emit the log files of one day prefix, after ``start_after`` (``tail``'s polling)."""
    walker = _Walker(store, Filters(), 1, stats if stats is not None else ListingStats())
    await _files(walker, emit, day_prefix, _Where(Level.FILE), start_after=start_after)
