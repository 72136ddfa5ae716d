"""``ct-ingest status``: progress of the last (or running) run, from the checkpoint ledger alone;
or, for a fleet of workers, from its queue and the index (:func:`queue_status`).

The figures are plain values (:class:`LedgerStatus`, :class:`RunFigures`,
:class:`QueueFigures`); the CLI renders them as a table or as JSON (``as_dict``).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ingest import cluster
from ingest.checkpoint import Ledger, RunRow, Status
from ingest.config import SinkConfig
from ingest.errors import ConfigError
from ingest.queue import open_queue
from ingest.retry import RetryPolicy

__all__ = [
    "FAILED_KEYS",
    "LedgerStatus",
    "QueueFigures",
    "RunFigures",
    "ledger_status",
    "queue_status",
]

FAILED_KEYS = 100  # failed objects named, at most


@dataclass(frozen=True, slots=True)
class RunFigures:
    """The last run's row, with its rate and, while it runs and the listing is done, an ETA."""

    id: int
    source: str
    host: str
    pid: int
    status: str
    started: str  # ISO-8601, UTC
    seconds: float
    listed: int
    listing_done: bool
    objects_done: int
    records: int
    indexed: int
    deadlettered: int
    skipped: int
    bytes: int
    events_per_second: float
    eta_seconds: int | None


@dataclass(frozen=True, slots=True)
class LedgerStatus:
    """Objects by status over all runs, the failed ones of the last run's source, the last run."""

    ledger: Path
    objects: dict[str, int]  # done, in_flight, pending, failed, indexed, ... (Ledger.totals)
    failed: list[str]  # the first FAILED_KEYS failed objects, by key
    run: RunFigures | None

    def as_dict(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "ledger": str(self.ledger),
            "objects": self.objects,
            "failed": self.failed,
        }
        if self.run is not None:
            info["run"] = asdict(self.run)
        return info


def ledger_status(path: Path, *, now: float | None = None) -> LedgerStatus:
    """The status of the ledger at ``path``; a :class:`ConfigError` when there is none there."""
    if not path.exists():
        raise ConfigError(f"no checkpoint ledger at {path}")
    with Ledger(path) as ledger:
        run = ledger.last_run()
        totals = ledger.totals(run.source if run else None)
        failed = ledger.keys(run.source, Status.FAILED)[:FAILED_KEYS] if run else []
    figures = None
    if run is not None:
        figures = _figures(run, totals, time.time() if now is None else now)
    return LedgerStatus(ledger=path, objects=totals, failed=failed, run=figures)


def _figures(run: RunRow, totals: dict[str, int], now: float) -> RunFigures:
    end = run.finished_at or (run.updated_at if run.status != "running" else now)
    elapsed = max(end - run.started_at, 1e-6)
    remaining = totals["pending"] + totals["in_flight"]
    obj_rate = run.objects_done / elapsed
    eta = None
    if run.status == "running" and run.listing_done and obj_rate > 0:
        eta = round(remaining / obj_rate)
    return RunFigures(
        id=run.id,
        source=run.source,
        host=run.host,
        pid=run.pid,
        status=run.status,
        started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(run.started_at)),
        seconds=round(elapsed, 1),
        listed=run.listed,
        listing_done=bool(run.listing_done),
        objects_done=run.objects_done,
        records=run.records,
        indexed=run.indexed,
        deadlettered=run.deadlettered,
        skipped=run.skipped,
        bytes=run.bytes,
        events_per_second=round(run.records / elapsed, 1),
        eta_seconds=eta,
    )


@dataclass(frozen=True, slots=True)
class QueueFigures:
    """A fleet's progress: the queue's approximate counts (SQS's attributes, up to a minute
    old), its redrive policy's dead-letter queue, and the documents behind the index alias."""

    queue: str
    waiting: int
    in_flight: int
    delayed: int
    dead_letter_queue: str | None  # None: the queue has no redrive policy
    dead_letter: int | None
    alias: str | None
    documents: int | None  # None: no --opensearch given

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def queue_status(
    url: str,
    *,
    retry: RetryPolicy,
    endpoint_url: str | None = None,
    region: str | None = None,
    profile: str | None = None,
    sink: SinkConfig | None = None,
) -> QueueFigures:
    """The depth of the queue at ``url`` and of its dead-letter queue, and with ``sink`` the
    number of documents behind its alias."""
    async with open_queue(
        url, retry=retry, endpoint_url=endpoint_url, region=region, profile=profile
    ) as queue:
        depth = await queue.depth()
        dlq = await queue.dead_letter()
        dead = await dlq.depth() if dlq is not None else None
    documents = None
    if sink is not None:
        client = cluster.open_client(sink)
        try:
            answer = await cluster.call(
                f"count {sink.alias}",
                lambda: client.count(index=sink.alias, params={"ignore_unavailable": "true"}),
                sink.retry,
            )
            documents = int(answer["count"])
        finally:
            await client.close()
    return QueueFigures(
        queue=url,
        waiting=depth.waiting,
        in_flight=depth.in_flight,
        delayed=depth.delayed,
        dead_letter_queue=dlq.url if dlq is not None else None,
        dead_letter=(dead.waiting + dead.in_flight + dead.delayed) if dead is not None else None,
        alias=sink.alias if sink is not None else None,
        documents=documents,
    )
