"""What people do with the dead-letter: ``ct-ingest deadletter summary`` groups its entries by
stage and reason; ``ct-ingest deadletter replay`` re-sends every entry that has a record,
removes what lands and keeps, with its new reason, what is still refused."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest.deadletter import Entry, read_entries, rewrite

__all__ = ["Group", "ReplayReport", "replay", "summarize"]


@dataclass
class Group:
    stage: str
    error_type: str
    count: int = 0
    objects: set[str] = field(default_factory=set)
    replayable: int = 0
    example: str = ""


def summarize(entries: list[Entry]) -> list[Group]:
    """Entries grouped by stage and error type, largest group first."""
    groups: dict[tuple[str, str], Group] = {}
    for e in entries:
        g = groups.setdefault((e["stage"], e["error_type"]), Group(e["stage"], e["error_type"]))
        g.count += 1
        g.objects.add(e["key"])
        g.replayable += e.get("record") is not None
        g.example = g.example or str(e.get("reason", ""))[:160]
    return sorted(groups.values(), key=lambda g: (-g.count, g.stage, g.error_type))


@dataclass
class ReplayReport:
    entries: int = 0
    indexed: int = 0
    already_there: int = 0
    still_rejected: int = 0
    not_replayable: int = 0  # whole objects: rerun the backfill with --retry-failed
    remaining: int = 0
    reasons: dict[str, int] = field(default_factory=lambda: defaultdict(int))


async def replay(path: Path, sink_config: Any, client: Any) -> ReplayReport:
    """Re-send every entry that has a record; remove what lands, keep (with the new reason)
    what is still refused. ``client`` is a :class:`~ingest.sink.BulkClient`."""
    from ingest.decode import Rejected, document_for, to_document
    from ingest.sink import BulkSink, Outcome

    entries = read_entries(path)
    report = ReplayReport(entries=len(entries))
    landed: set[str] = set()
    update: dict[str, Entry] = {}
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def keep(entry: Entry, error_type: str, reason: str) -> None:
        report.still_rejected += 1
        report.reasons[error_type] += 1
        update[entry["entry_id"]] = {
            **entry,
            "error_type": error_type,
            "reason": reason,
            "time": now,
            "replays": int(entry.get("replays", 0)) + 1,
        }

    class _Owner:
        def __init__(self, entry: Entry) -> None:
            self.entry = entry

        def settle(self, doc: Any, outcome: Outcome) -> None:
            if outcome.indexed:
                landed.add(self.entry["entry_id"])
                report.indexed += 1
                report.already_there += outcome.existed
            else:
                keep(self.entry, outcome.error_type or "Rejected", outcome.reason or "")

    async with asyncio.TaskGroup() as tg:
        sink = BulkSink(client, sink_config, tg)
        for e in entries:
            record = e.get("record")
            if record is None:
                report.not_replayable += 1
                continue
            if e["stage"] == "index" and e.get("index") and e.get("id"):
                doc = document_for(e["id"], e["index"], e.get("record_index") or 0, record)
            else:
                made = to_document(record, sink_config.index_prefix, e.get("record_index") or 0)
                if isinstance(made, Rejected):
                    keep(e, made.error_type, made.reason)
                    continue
                doc = made[0]
            await sink.put(doc, _Owner(e))
        await sink.drain()
    report.remaining = rewrite(path, landed, update)
    return report
