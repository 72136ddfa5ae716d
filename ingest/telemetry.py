"""What a person sees: structlog lines (JSON off a terminal), a progress bar on one, the summary
line, and a run's verdict with what to do about it (:func:`report_run`)."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from enum import StrEnum
from pathlib import Path
from typing import Any, TextIO

import structlog
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ingest.engine import RunStats

_log = structlog.get_logger("ingest.telemetry")

__all__ = [
    "Verdict",
    "configure_logging",
    "progress",
    "report_run",
    "summary_line",
    "use_console",
    "verdict",
]


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
        + _target_part(stats)
    )


def _target_part(stats: RunStats) -> str:
    """What the target changed, on any target but the default (OpenSearch 2.7 or newer)."""
    target = stats.target
    if target is None or target.is_default:
        return ""
    parts = [f" | target: {target.describe()}"]
    if not target.custom_ids:
        resent = stats.sink.resent_unanswered if stats.sink else 0
        parts.append(
            f"; written without _id: {resent:,} documents sent again after an unanswered"
            " request (each may be indexed twice)"
        )
    if not target.index_settings:
        parts.append("; backfill mode off")
    if target.flat_object is False:
        parts.append("; payloads not searchable (no flat_object)")
    return "".join(parts)


class Verdict(StrEnum):
    """How a run ended, in the words of its summary line."""

    DONE = "done"  # every record indexed or skipped by rule
    DEADLETTERS = "finished with dead-letters"  # something is in the dead-letter, now or before
    STOPPED = "stopped"  # a signal ended it early; what was in flight is settled


def _failed(stats: RunStats) -> bool:
    return bool(stats.deadlettered or stats.objects_failed or stats.objects_failed_earlier)


def verdict(stats: RunStats) -> Verdict:
    """The run's verdict: stopped wins, then dead-letters (of this run or earlier ones)."""
    if stats.stopped:
        return Verdict.STOPPED
    return Verdict.DEADLETTERS if _failed(stats) else Verdict.DONE


def report_run(stats: RunStats, *, deadletter: Path, tail: bool = False) -> Verdict:
    """Close a run: the summary line on stdout, the ``run_done`` event, and on stderr where the
    dead-letter is and what to do next. A tail ends by being stopped, so it is not told to
    resume. Returns the verdict, which the caller maps to an exit code."""
    status = verdict(stats)
    failed = _failed(stats)
    print(summary_line(stats, status=status), flush=True)
    _log.info(
        "run_done",
        status=str(status),
        records_seen=stats.records_seen,
        indexed=stats.indexed,
        deadlettered=stats.deadlettered,
        skipped=stats.skipped,
        objects_done=stats.objects_done,
        objects_failed=stats.objects_failed,
        objects_already_done=stats.objects_already_done,
        objects_failed_earlier=stats.objects_failed_earlier,
        objects_other_shard=stats.objects_other_shard,
        already_indexed=stats.already_indexed,
        enrich_failed=stats.enrich_failed,
        bytes_fetched=stats.bytes_fetched,
        bulk_requests=stats.sink.requests if stats.sink else 0,
        bulk_pushbacks=stats.sink.pushbacks if stats.sink else 0,
        bulk_latency_max=round(stats.sink.latency_max, 3) if stats.sink else 0,
        target=stats.target.describe() if stats.target else None,
        resent_unanswered=stats.sink.resent_unanswered if stats.sink else 0,
        keys_skipped=stats.listing.skipped_keys,
        prefixes_skipped=stats.listing.skipped_prefixes,
        seconds=round(stats.elapsed, 2),
        deadletter=str(deadletter) if failed else None,
    )
    notes = []
    if failed:
        notes.append(f"dead-letter entries are in {deadletter}")
    if stats.objects_failed_earlier:
        notes.append(
            f"{stats.objects_failed_earlier:,} objects failed in earlier runs and were not "
            "retried: see `ct-ingest deadletter summary`; rerun with `--retry-failed`"
        )
    if status is Verdict.STOPPED and not tail:
        notes.append(
            "stopped before the end; what was in flight is settled. "
            "Run the same command again to resume."
        )
    for note in notes:
        print(f"ct-ingest: {note}", file=sys.stderr, flush=True)
    return status
