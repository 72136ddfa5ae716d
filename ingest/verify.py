"""``ct-ingest verify``: re-read the source and reconcile, object by object, the records in S3
against the documents in the index.

For each log file the filters select: the ``_id`` every record maps to (by the same rules as
the backfill, without enrichment) is looked up with ``mget`` (missing ones are reported), and
the documents whose ``ct.object`` names this file are listed (ones no record of the file maps to
are reported as unexpected). Records and objects that are in the dead-letter are counted
separately, not as missing. Memory is bounded: a few objects at a time, lookups in batches.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import structlog

from ingest import cluster, source
from ingest.config import S3Location, Settings
from ingest.deadletter import read_entries
from ingest.decode import expected_documents
from ingest.errors import SourceError
from ingest.listing import list_log_objects
from ingest.pipeline import in_shard
from ingest.retry import call_with_retry
from ingest.source import ObjectRef

__all__ = ["ObjectProblem", "VerifyReport", "verify"]

_log = structlog.get_logger("ingest.verify")
_BATCH = 500


@dataclass
class ObjectProblem:
    key: str
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    unreadable: str | None = None


@dataclass
class VerifyReport:
    objects: int = 0
    records: int = 0
    expected: int = 0
    found: int = 0
    missing: int = 0
    unexpected: int = 0
    deadlettered_records: int = 0
    deadlettered_objects: int = 0
    skipped: int = 0
    problems: list[ObjectProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.missing == 0 and self.unexpected == 0


def _dead_letters(path: Path, source_name: str) -> tuple[set[tuple[str, int]], set[str]]:
    records: set[tuple[str, int]] = set()
    objects: set[str] = set()
    for e in read_entries(path):
        if e.get("source") not in (None, source_name):
            continue
        if e.get("record_index") is None:
            objects.add(e["key"])
        else:
            records.add((e["key"], int(e["record_index"])))
    return records, objects


async def verify(settings: Settings, *, concurrency: int = 8) -> VerifyReport:
    report = VerifyReport()
    store = await source.open_store(settings.source)
    client = cluster.open_client(settings.sink)
    try:
        await call_with_retry(settings.sink.retry, lambda: cluster.ping(client))
        dead_records, dead_objects = _dead_letters(settings.deadletter_path, store.name)
        queue: asyncio.Queue[ObjectRef | None] = asyncio.Queue(maxsize=concurrency * 2)

        async def emit(ref: ObjectRef) -> None:
            if settings.shard is None or in_shard(ref.key, settings.shard):
                await queue.put(ref)

        async def lister() -> None:
            loc = settings.source.location
            await list_log_objects(
                store,
                loc.prefix if isinstance(loc, S3Location) else "",
                settings.filters,
                emit,
                concurrency=settings.source.concurrency,
                retry=settings.source.retry,
            )
            for _ in range(concurrency):
                await queue.put(None)

        async def checker() -> None:
            while (ref := await queue.get()) is not None:
                await _check(ref)

        async def _check(ref: ObjectRef) -> None:
            report.objects += 1
            try:
                data = await call_with_retry(settings.source.retry, partial(store.get, ref))
            except SourceError as exc:
                data, why = b"", str(exc)
            else:
                why = ""
            exp = await asyncio.to_thread(
                expected_documents,
                ref.key,
                data,
                index_prefix=settings.sink.index_prefix,
                exclude=settings.filters.exclude,
            )
            if why or exp.failed:
                if ref.key in dead_objects:
                    report.deadlettered_objects += 1
                else:
                    report.problems.append(ObjectProblem(ref.key, unreadable=why or exp.failed))
                    report.missing += 1
                return
            report.skipped += exp.skipped
            report.records += len(exp.ids) + len(exp.rejected) + exp.skipped
            problem = ObjectProblem(ref.key)
            for i in exp.rejected:
                if (ref.key, i) in dead_records:
                    report.deadlettered_records += 1
                else:
                    problem.missing.append(f"record {i} (not indexable, not dead-lettered)")
            wanted = [
                (idx, doc_id) for idx, doc_id, i in exp.ids if (ref.key, i) not in dead_records
            ]
            report.deadlettered_records += len(exp.ids) - len(wanted)
            report.expected += len(wanted)
            found = await _exists(client, wanted)
            report.found += len(found)
            problem.missing += [doc_id for _, doc_id in wanted if doc_id not in found]
            mine = await _ids_from_object(client, settings.sink.alias, ref.key, len(exp.ids))
            all_ids = {doc_id for _, doc_id, _ in exp.ids}
            problem.unexpected = sorted(mine - all_ids)
            report.missing += len(problem.missing)
            report.unexpected += len(problem.unexpected)
            if problem.missing or problem.unexpected:
                report.problems.append(problem)

        async with asyncio.TaskGroup() as tg:
            tg.create_task(lister())
            for _ in range(concurrency):
                tg.create_task(checker())
    finally:
        await client.close()
        await store.aclose()
    return report


async def _exists(client: Any, wanted: list[tuple[str, str]]) -> set[str]:
    found: set[str] = set()
    for i in range(0, len(wanted), _BATCH):
        docs = [
            {"_index": idx, "_id": doc_id, "_source": False}
            for idx, doc_id in wanted[i : i + _BATCH]
        ]
        res = await client.mget(body={"docs": docs})
        found.update(d["_id"] for d in res.get("docs", ()) if d.get("found"))
    return found


async def _ids_from_object(client: Any, alias: str, key: str, expected: int) -> set[str]:
    res = await client.search(
        index=alias,
        body={
            "query": {"term": {"ct.object": key}},
            "_source": False,
            "size": min(10_000, expected + 1_000),
        },
        params={"ignore_unavailable": "true"},
    )
    return {h["_id"] for h in res["hits"]["hits"]}
