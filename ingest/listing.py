"""Discovery and listing: find the log files to fetch, pruning the key tree as early as possible.

Rather than one serial paginator over millions of keys, the walk lists ``AWSLogs/`` level by
level with a ``/`` delimiter (organizations, accounts, trail folders, regions, years, months,
days), drops every branch the filters exclude, and lists the surviving day prefixes in
parallel, ``concurrency`` requests at a time. Found objects are handed to ``emit`` as they
arrive, so fetching starts before listing ends; a slow consumer slows the listing down
(``emit`` awaits a bounded queue).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import date

import structlog

from ingest.config import Filters
from ingest.layout import AWSLOGS, Level, TrailKind, is_account, is_org, is_region, parse_log_key
from ingest.retry import RetryPolicy, call_with_retry
from ingest.source import ObjectRef, ObjectStore, Page

__all__ = ["ListingStats", "list_log_objects"]

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
            return replace(where, level=Level.REGION)
        return False
    if lv is Level.REGION:
        if not is_region(segment):
            return False
        if f.regions and segment not in f.regions:
            return None
        return replace(where, level=Level.YEAR)
    if not (segment.isdigit() and len(segment) == (4 if lv is Level.YEAR else 2)):
        return False
    n = int(segment)
    if lv is Level.YEAR:
        return replace(where, level=Level.MONTH, year=n) if _year_ok(f, n) else None
    assert where.year is not None
    if lv is Level.MONTH:
        if not 1 <= n <= 12:
            return False
        return replace(where, level=Level.DAY, month=n) if _month_ok(f, where.year, n) else None
    assert where.month is not None
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


async def list_log_objects(
    store: ObjectStore,
    prefix: str,
    filters: Filters,
    emit: Emit,
    *,
    concurrency: int = 32,
    retry: RetryPolicy | None = None,
    stats: ListingStats | None = None,
) -> ListingStats:
    """Walk the CloudTrail tree under ``prefix`` and ``emit`` every log file the filters keep."""
    stats = stats if stats is not None else ListingStats()
    policy = retry or RetryPolicy()
    gate = asyncio.Semaphore(concurrency)

    async def page(p: str, delimiter: str | None, token: str | None) -> Page:
        async with gate:
            stats.list_calls += 1
            return await call_with_retry(
                policy, lambda: store.list_page(p, delimiter=delimiter, token=token)
            )

    async def files(p: str) -> None:
        stats.day_prefixes += 1
        token: str | None = None
        while True:
            pg = await page(p, None, token)
            for ref in pg.objects:
                log_key = parse_log_key(ref.key)
                if log_key is None or "/" in ref.key[len(p) :]:
                    stats.skip(ref.key, prefix=False)
                    continue
                stats.objects += 1
                stats.bytes += ref.size
                await emit(ref)
            token = pg.next_token
            if not token:
                return

    async def walk(p: str, where: _Where, tg: asyncio.TaskGroup) -> None:
        if where.level is Level.FILE:
            await files(p)
            return
        token: str | None = None
        while True:
            pg = await page(p, "/", token)
            for ref in pg.objects:  # keys beside the tree (ConfigWritabilityCheckFile, ...)
                stats.skip(ref.key, prefix=False)
            for child in pg.prefixes:
                segment = child[len(p) :].rstrip("/")
                nxt = _descend(where, segment, filters)
                if nxt is False:
                    stats.skip(child, prefix=True)
                elif isinstance(nxt, _Where):
                    tg.create_task(walk(child, nxt, tg))
            token = pg.next_token
            if not token:
                return

    start = _start(prefix, filters)
    if start is not None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(walk(start[0], start[1], tg))
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
