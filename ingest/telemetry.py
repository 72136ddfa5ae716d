"""What a person sees: structlog lines (JSON off a terminal), a progress bar on one, the summary."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any, TextIO

import structlog
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ingest.engine import RunStats

__all__ = ["configure_logging", "progress", "summary_line", "use_console"]


class _Stderr:
    """Resolves ``sys.stderr`` at write time, so lines land above a live progress bar."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def use_console(log_format: str, stream: TextIO | None = None) -> bool:
    """True when output is for a person: ``console``, or ``auto`` on a terminal."""
    if log_format == "auto":
        return (stream or sys.stderr).isatty()
    return log_format == "console"


def configure_logging(log_format: str, *, verbose: bool = False) -> bool:
    """Configure structlog once for the process; returns True in console mode."""
    console = use_console(log_format)
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if console:
        processors.append(
            structlog.dev.ConsoleRenderer(
                colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
            )
        )
        level = logging.DEBUG if verbose else logging.WARNING
    else:
        processors += [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
        level = logging.DEBUG if verbose else logging.INFO
    # Libraries' own loggers: only real problems, and never request details.
    for name in ("opensearch", "urllib3", "botocore", "aiobotocore"):
        logging.getLogger(name).setLevel(logging.ERROR)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=_Stderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    return console


def _fields(stats: RunStats) -> dict[str, Any]:
    rate = stats.records_seen / stats.elapsed if stats.elapsed > 0 else 0.0
    ctl = stats.sink.controller if stats.sink else None
    return {
        "events": f"{stats.indexed:,} events",
        "mb": f"{stats.bytes_fetched / 1e6:,.1f} MB",
        "rate": f"{rate:,.0f} ev/s",
        "bulk": f"bulk {ctl.bytes / 2**20:.1f} MiB x{ctl.in_flight}" if ctl else "bulk -",
    }


@asynccontextmanager
async def progress(
    stats: RunStats, *, enabled: bool, label: str = "backfill"
) -> AsyncIterator[None]:
    """A live progress bar (objects, events, MB, events/s, ETA) while the body runs."""
    if not enabled:
        yield
        return
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=16),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f} objects"),
        TextColumn("{task.fields[events]}"),
        TextColumn("{task.fields[mb]}"),
        TextColumn("{task.fields[rate]}"),
        TextColumn("{task.fields[bulk]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(compact=True),
        console=Console(stderr=True),
        transient=False,
    )

    def refresh(task: Any) -> None:
        total = max(stats.listing.objects - stats.objects_already_done, 1)
        done = stats.objects_done + stats.objects_failed
        listing = "" if stats.listing.done else " (listing…)"
        bar.update(
            task, total=total, completed=done, description=f"{label}{listing}", **_fields(stats)
        )

    with bar:
        task = bar.add_task(label, total=1, **_fields(stats))

        async def ticker() -> None:
            while True:
                refresh(task)
                await asyncio.sleep(0.25)

        tick = asyncio.create_task(ticker())
        try:
            yield
        finally:
            tick.cancel()
            with suppress(asyncio.CancelledError):
                await tick
            refresh(task)


def summary_line(stats: RunStats, *, status: str) -> str:
    """The one closing line: what was seen, where it went, and that the books balance."""
    s, lst = stats, stats.listing
    rate = s.records_seen / s.elapsed if s.elapsed > 0 else 0.0
    balance = "=" if s.balanced else "!="
    return (
        f"ct-ingest {status}: records seen {s.records_seen:,} {balance} indexed {s.indexed:,}"
        f" + dead-lettered {s.deadlettered:,} + skipped {s.skipped:,}"
        f" | objects: {s.objects_done:,} done, {s.objects_failed:,} dead-lettered,"
        f" {s.objects_already_done:,} already done,"
        + (
            f" {s.objects_failed_earlier:,} failed in earlier runs (not retried),"
            if s.objects_failed_earlier
            else ""
        )
        + f" {lst.skipped_keys:,} keys and"
        f" {lst.skipped_prefixes:,} prefixes skipped"
        f" | {s.already_indexed:,} were already in the index"
        + (f", {s.enrich_failed:,} indexed with enrichment errors" if s.enrich_failed else "")
        + f" | {s.bytes_fetched / 1e6:,.1f} MB in {s.elapsed:,.1f} s, {rate:,.0f} events/s"
    )
