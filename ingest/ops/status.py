"""``ct-ingest status``: progress of the last (or running) run, from the checkpoint ledger alone.

The figures are plain values (:class:`LedgerStatus`, :class:`RunFigures`); the CLI renders them
as a table or as JSON (:meth:`LedgerStatus.as_dict`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ingest.checkpoint import Ledger, RunRow, Status
from ingest.errors import ConfigError

__all__ = ["FAILED_KEYS", "LedgerStatus", "RunFigures", "ledger_status"]

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
