"""``ct-ingest verify``: re-read the source and reconcile, object by object, the records in S3
against the documents in the index.

For each log file the filters select: the ``_id`` every record maps to (by the same rules as
the backfill, without enrichment) is looked up with ``mget`` (missing ones are reported), and
the documents whose ``ct.object`` names this file are listed (ones no record of the file maps to
are reported as unexpected). Records and objects that are in the dead-letter are counted
separately, not as missing. Memory is bounded: a few objects at a time, lookups in batches.
The store retries its own calls, and every OpenSearch call goes through :func:`ingest.cluster.call`
under the sink's policy.

On a target that takes no custom ``_id`` (a Serverless TIMESERIES collection), documents are
matched by the fields they carry instead: the documents whose ``ct.object`` names the file,
by their ``eventID`` (a record without one by count). A record delivered by two objects is then
two documents, one per object; a document found more often than its object holds the record
is an *extra copy* (a request sent again after it was applied but unanswered): counted and
reported, not missing.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import structlog

from ingest import cluster, source, targets
from ingest.checkpoint import Ledger, Status
from ingest.config import S3Location, Settings
from ingest.deadletter import DeadLetter, read_entries
from ingest.decode import expected_documents
from ingest.engine import in_shard
from ingest.errors import SinkError, SourceError
from ingest.listing import list_log_objects
from ingest.retry import RetryPolicy
from ingest.source import ObjectRef, ObjectStore

__all__ = ["ObjectProblem", "VerifyReport", "verify"]

_log = structlog.get_logger("ingest.ops.verify")
_BATCH = 500


@dataclass
class ObjectProblem:
    key: str
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    unreadable: str | None = None


@dataclass
class VerifyReport:
    """Objects and records of the range, and where each went. The books balance:

    - ``objects = objects_read + deadlettered_objects + unreadable_objects``
    - ``records = documents + duplicates + deadlettered_records + skipped`` (records of the
      objects read), and ``documents = found + missing``.

    A *duplicate delivery* is a record whose ``eventID`` is indexed from another object (one
    API call logged by an organization trail and an account trail, or delivered twice): one
    document, not two, and neither found nor missing for this object.
    """

    objects: int = 0
    objects_read: int = 0
    records: int = 0
    found: int = 0
    missing: int = 0
    unexpected: int = 0
    duplicates: int = 0
    deadlettered_records: int = 0
    deadlettered_objects: int = 0
    unreadable_objects: int = 0  # unreadable and not in the dead-letter
    skipped: int = 0
    repaired: int = 0  # documents re-sent by --repair (a report after a repair keeps the count)
    copies: int = 0  # extra copies of documents (only where writes carry no _id)
    target: str = ""  # the cluster verified against, when it is not the default
    problems: list[ObjectProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.missing == 0 and self.unexpected == 0 and self.unreadable_objects == 0

    @property
    def documents(self) -> int:
        """The documents the range's records should have produced (each counted once)."""
        return self.found + self.missing

    @property
    def balanced(self) -> bool:
        read = self.objects_read + self.deadlettered_objects + self.unreadable_objects
        parts = self.documents + self.duplicates + self.deadlettered_records + self.skipped
        return self.objects == read and self.records == parts

    def summary_line(self) -> str:
        """The closing line of ``verify``: objects and records, each accounted for once."""
        verdict = "match" if self.ok else "MISMATCH"
        return (
            f"ct-ingest verify: {verdict}: {self.objects:,} objects = {self.objects_read:,} read"
            f" + {self.deadlettered_objects:,} dead-lettered as unreadable"
            f" + {self.unreadable_objects:,} unreadable and not dead-lettered;"
            f" {self.records:,} records = {self.documents:,} documents"
            f" + {self.duplicates:,} duplicate deliveries"
            f" + {self.deadlettered_records:,} dead-lettered + {self.skipped:,} skipped by rule;"
            f" documents: {self.found:,} found, {self.missing:,} missing,"
            f" {self.unexpected:,} unexpected"
            + (f"; {self.repaired:,} re-sent by --repair" if self.repaired else "")
            + (
                f"; {self.copies:,} extra copies (sent again after an unanswered request)"
                if self.copies
                else ""
            )
            + (f"; target: {self.target}" if self.target else "")
        )

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "problems"}
        out["ok"] = self.ok
        out["documents"] = self.documents
        out["problems"] = [p.__dict__ for p in self.problems]
        return out


def _dead_letters(
    path: Path, source_name: str, ledger_path: Path
) -> tuple[set[tuple[str, int]], set[str]]:
    """Records and whole objects in the dead-letter, plus the objects the ledger (if there is
    one) settled as failed."""
    records: set[tuple[str, int]] = set()
    objects: set[str] = set()
    for e in read_entries(path):
        if e.get("source") not in (None, source_name):
            continue
        if e.get("record_index") is None:
            objects.add(e["key"])
        else:
            records.add((e["key"], int(e["record_index"])))
    if ledger_path.exists():
        with Ledger(ledger_path) as ledger:
            objects.update(ledger.keys(source_name, Status.FAILED))
    return records, objects


class _Verifier:
    """One pass over the range; remembers what a repair needs."""

    def __init__(
        self,
        settings: Settings,
        store: ObjectStore,
        client: Any,
        target: targets.Target | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.client = client
        self.target = target or targets.Target()
        self.report = VerifyReport(target="" if self.target.is_default else self.target.describe())
        self.to_repair: dict[str, tuple[ObjectRef, set[str]]] = {}
        self._missing_ids: set[str] = set()
        self.dead_records, self.dead_objects = _dead_letters(
            settings.deadletter_path, store.name, settings.state_path
        )

    async def run(self, concurrency: int) -> VerifyReport:
        settings = self.settings
        queue: asyncio.Queue[ObjectRef | None] = asyncio.Queue(maxsize=concurrency * 2)

        async def emit(ref: ObjectRef) -> None:
            if settings.shard is None or in_shard(ref.key, settings.shard):
                await queue.put(ref)

        async def lister() -> None:
            loc = settings.source.location
            await list_log_objects(
                self.store,
                loc.prefix if isinstance(loc, S3Location) else "",
                settings.filters,
                emit,
                concurrency=settings.source.concurrency,
            )
            for _ in range(concurrency):
                await queue.put(None)

        async def checker() -> None:
            while (ref := await queue.get()) is not None:
                await self._check(ref)

        async with asyncio.TaskGroup() as tg:
            tg.create_task(lister())
            for _ in range(concurrency):
                tg.create_task(checker())
        return self.report

    async def _check(self, ref: ObjectRef) -> None:
        report, settings = self.report, self.settings
        report.objects += 1
        try:
            data = await self.store.get(ref)
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
            if ref.key in self.dead_objects:
                report.deadlettered_objects += 1
            else:
                report.problems.append(ObjectProblem(ref.key, unreadable=why or exp.failed))
                report.unreadable_objects += 1
            return
        report.objects_read += 1
        report.skipped += exp.skipped
        report.records += len(exp.ids) + len(exp.rejected) + exp.skipped
        problem = ObjectProblem(ref.key)
        for i in exp.rejected:
            if (ref.key, i) in self.dead_records:
                report.deadlettered_records += 1
            else:
                problem.missing.append(f"record {i} (not indexable, not dead-lettered)")
        wanted = [
            (idx, doc_id) for idx, doc_id, i in exp.ids if (ref.key, i) not in self.dead_records
        ]
        report.deadlettered_records += len(exp.ids) - len(wanted)
        retry = settings.sink.retry
        if not self.target.custom_ids:
            await self._check_by_fields(ref, exp.ids, wanted, problem)
            return
        try:
            owners = await _owners(self.client, wanted, retry)
        except SinkError as exc:  # an index left empty: the lookup by _id tells the kind
            if not targets.refuses_ids(str(exc)):
                raise
            self.target.kind = targets.Kind.SERVERLESS
            self.target.collection = targets.Collection.TIMESERIES
            _log.info("target_collection", target=self.target.describe())
            await self._check_by_fields(ref, exp.ids, wanted, problem)
            return
        seen: set[str] = set()
        missing: list[str] = []
        for _, doc_id in wanted:
            owner = owners.get(doc_id)
            if doc_id in seen or (owner is not None and owner not in ("", ref.key)):
                report.duplicates += 1  # delivered twice: the document is there once
            elif owner is None:
                if doc_id in self._missing_ids:
                    report.duplicates += 1  # missing, but already counted for another object
                else:
                    self._missing_ids.add(doc_id)
                    missing.append(doc_id)
            else:
                report.found += 1
            seen.add(doc_id)
        problem.missing += missing
        mine = await _ids_from_object(
            self.client, settings.sink.alias, ref.key, len(exp.ids), retry
        )
        problem.unexpected = sorted(mine - {doc_id for _, doc_id, _ in exp.ids})
        report.missing += len(problem.missing)
        report.unexpected += len(problem.unexpected)
        if missing:
            self.to_repair[ref.key] = (ref, set(missing))
        if problem.missing or problem.unexpected:
            report.problems.append(problem)

    async def _check_by_fields(
        self,
        ref: ObjectRef,
        expected: list[tuple[str, str, int]],
        wanted: list[tuple[str, str]],
        problem: ObjectProblem,
    ) -> None:
        """The documents of one object matched by ``eventID`` (no ``_id`` on this target)."""
        report = self.report
        held = Counter(
            await _event_ids_from_object(
                self.client,
                self.settings.sink.alias,
                ref.key,
                len(expected),
                self.settings.sink.retry,
            )
        )
        missing: list[str] = []
        for _, doc_id in wanted:
            key: str | None = doc_id
            if held[key] <= 0 and doc_id.startswith("sha256-"):
                key = None  # a record without eventID: matched by count
            if held[key] > 0:
                held[key] -= 1
                report.found += 1
            else:
                missing.append(doc_id)
        mine = {doc_id for _, doc_id, _ in expected}
        for key, extra in held.items():
            if extra <= 0:
                continue
            if key is None or key in mine:
                report.copies += extra
            else:
                problem.unexpected.append(key)
        problem.missing += missing
        report.missing += len(problem.missing)
        report.unexpected += len(problem.unexpected)
        if missing:
            self.to_repair[ref.key] = (ref, set(missing))
        if problem.missing or problem.unexpected:
            report.problems.append(problem)


async def verify(settings: Settings, *, repair: bool = False, concurrency: int = 8) -> VerifyReport:
    """Reconcile the range of ``settings`` against the index. With ``repair``, re-send the
    missing documents from their objects (``create``: idempotent), then verify again."""
    store = await source.open_store(settings.source)
    client = cluster.open_client(settings.sink)
    try:
        target = await targets.identify(client, settings.sink)
        await targets.learn_collection(client, settings.sink, target)
        checked = _Verifier(settings, store, client, target)
        report = await checked.run(concurrency)
        if not repair or not checked.to_repair:
            return report
        repaired = await _repair(settings, store, client, checked.to_repair, target)
        await cluster.call(
            f"POST {settings.sink.alias}/_refresh",
            partial(client.indices.refresh, index=settings.sink.alias, ignore_unavailable=True),
            settings.sink.retry,
        )
        report = await _Verifier(settings, store, client, target).run(concurrency)
        report.repaired = repaired
        return report
    finally:
        await client.close()
        await store.aclose()


async def _repair(
    settings: Settings,
    store: ObjectStore,
    client: Any,
    wanted: dict[str, tuple[ObjectRef, set[str]]],
    target: targets.Target,
) -> int:
    """Decode each object again and send its missing documents; returns how many landed.
    What the cluster refuses goes to the dead-letter like any refused document."""
    from ingest.decode import decode_object
    from ingest.sink import BulkSink, OpenSearchBulkClient, Outcome

    landed = 0
    deadletter = DeadLetter(settings.deadletter_path)

    class _Owner:
        def __init__(self, key: str) -> None:
            self.key = key

        def settle(self, doc: Any, outcome: Outcome) -> None:
            nonlocal landed
            if outcome.indexed:
                landed += 1
                return
            _log.error("repair_refused", object=self.key, id=doc.doc_id, reason=outcome.reason)
            deadletter.add(
                stage="index",
                source=store.name,
                key=self.key,
                error_type=outcome.error_type or "Rejected",
                reason=outcome.reason or "",
                record_index=doc.record_index,
                index=doc.index_name,
                doc_id=doc.doc_id,
                record=orjson.loads(doc.ndjson.split(b"\n", 2)[1]),
            )

    try:
        async with asyncio.TaskGroup() as tg:
            sink = BulkSink(OpenSearchBulkClient(client, target), settings.sink, tg)
            for key, (ref, ids) in sorted(wanted.items()):
                data = await store.get(ref)
                decoded = await asyncio.to_thread(
                    decode_object,
                    key,
                    data,
                    index_prefix=settings.sink.index_prefix,
                    exclude=settings.filters.exclude,
                )
                owner = _Owner(key)
                for doc in decoded.documents:
                    if doc.doc_id in ids:
                        await sink.put(doc, owner)
                _log.info("repair_object", key=key, documents=len(ids))
            await sink.drain()
    finally:
        deadletter.close()
    return landed


async def _owners(client: Any, wanted: list[tuple[str, str]], retry: RetryPolicy) -> dict[str, str]:
    """``_id`` → the object its document was indexed from (``""`` when the document does not
    say), for the ids that are in the index."""
    found: dict[str, str] = {}
    for i in range(0, len(wanted), _BATCH):
        docs = [
            {"_index": idx, "_id": doc_id, "_source": ["ct.object"]}
            for idx, doc_id in wanted[i : i + _BATCH]
        ]
        res = await cluster.call("mget", partial(client.mget, body={"docs": docs}), retry)
        for d in res.get("docs", ()):
            if d.get("found"):
                owner = (d.get("_source") or {}).get("ct", {}).get("object")
                found[d["_id"]] = owner if isinstance(owner, str) else ""
    return found


async def _hits_of_object(
    client: Any, alias: str, key: str, size: int, source: bool | list[str], retry: RetryPolicy
) -> list[dict[str, Any]]:
    """The documents whose ``ct.object`` is ``key`` (at most ``size``, at most 10,000)."""
    res = await cluster.call(
        f"search {alias} for {key}",
        partial(
            client.search,
            index=alias,
            body={
                "query": {"term": {"ct.object": key}},
                "_source": source,
                "size": min(10_000, size),
            },
            params={"ignore_unavailable": "true"},
        ),
        retry,
    )
    return list(res["hits"]["hits"])


async def _ids_from_object(
    client: Any, alias: str, key: str, expected: int, retry: RetryPolicy
) -> set[str]:
    hits = await _hits_of_object(client, alias, key, expected + 1_000, False, retry)
    return {h["_id"] for h in hits}


async def _event_ids_from_object(
    client: Any, alias: str, key: str, expected: int, retry: RetryPolicy
) -> list[str | None]:
    """The ``eventID`` of every document whose ``ct.object`` is ``key`` (None for a document
    without a usable one), copies included."""
    hits = await _hits_of_object(client, alias, key, 2 * expected + 1_000, ["eventID"], retry)
    out: list[str | None] = []
    for hit in hits:
        event_id = (hit.get("_source") or {}).get("eventID")
        usable = isinstance(event_id, str) and event_id and len(event_id.encode()) <= 512
        out.append(event_id if usable else None)
    return out
