from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest

from ingest.cluster import open_client
from ingest.config import SinkConfig
from ingest.decode import Document
from ingest.errors import SinkUnavailable, root_cause
from ingest.retry import RetryPolicy
from ingest.sink import BulkSink, Outcome
from ingest.testing.memory import MemoryCluster

FAST = RetryPolicy(attempts=4, initial=0.001, maximum=0.005, deadline=5)


class Collector:
    def __init__(self) -> None:
        self.outcomes: dict[str, Outcome] = {}

    def settle(self, doc: Document, outcome: Outcome) -> None:
        assert doc.doc_id not in self.outcomes, "settled twice"
        self.outcomes[doc.doc_id] = outcome


def _doc(i: int, pad: int = 100) -> Document:
    action = orjson.dumps({"create": {"_index": "cloudtrail-2024.03", "_id": f"id{i}"}})
    source = orjson.dumps({"eventID": f"id{i}", "pad": "x" * pad})
    return Document(f"id{i}", "cloudtrail-2024.03", i, action + b"\n" + source + b"\n")


def _run(cluster: MemoryCluster, docs: list[Document], **config: Any) -> Collector:
    owner = Collector()
    cfg = SinkConfig(url="http://127.0.0.1:9200", retry=FAST, **config)

    async def go() -> None:
        async with asyncio.TaskGroup() as tg:
            sink = BulkSink(cluster, cfg, tg)
            for d in docs:
                await sink.put(d, owner)
            await sink.drain()

    asyncio.run(go())
    return owner


class TestBulkSink:
    def test_bodies_respect_the_byte_cap(self) -> None:
        """Every document lands once; no body exceeds max_bulk_bytes, however the target grows."""
        cluster = MemoryCluster()
        docs = [_doc(i) for i in range(500)]
        owner = _run(cluster, docs, bulk_bytes=10_000, max_bulk_bytes=20_000, max_in_flight=3)
        assert len(cluster.docs) == 500
        assert all(o.indexed for o in owner.outcomes.values())
        assert max(cluster.bodies) <= 20_000
        assert sum(len(d.ndjson) for d in docs) == sum(cluster.bodies)  # nothing sent twice

    def test_existing_documents_count_as_indexed(self) -> None:
        """A 409 on create means already indexed: success, flagged existed, not overwritten."""
        cluster = MemoryCluster()
        cluster.docs["id1"] = {"original": True}
        owner = _run(cluster, [_doc(0), _doc(1)])
        assert Outcome(True, existed=True) == owner.outcomes["id1"]
        assert cluster.docs["id1"] == {"original": True}

    def test_item_429_is_retried_alone(self) -> None:
        """Items answered 429 are sent again and land; the others are not sent twice."""
        cluster = MemoryCluster(item_429_first={"id3", "id7"})
        owner = _run(cluster, [_doc(i) for i in range(10)])
        assert len(cluster.docs) == 10
        assert all(o.indexed and not o.existed for o in owner.outcomes.values())

    def test_rejected_items_go_to_the_owner_with_reason(self) -> None:
        """A mapping error is final and reported with its type and reason."""
        owner = _run(MemoryCluster(reject={"id2"}), [_doc(i) for i in range(4)])
        bad = owner.outcomes["id2"]
        assert (bad.indexed, bad.error_type) == (False, "mapper_parsing_exception")
        assert "failed to parse" in (bad.reason or "")
        assert sum(o.indexed for o in owner.outcomes.values()) == 3

    def test_oversized_document_is_rejected_without_sending(self) -> None:
        """A document larger than the hard cap is never sent."""
        cluster = MemoryCluster()
        owner = _run(cluster, [_doc(0, pad=5000), _doc(1)], bulk_bytes=1000, max_bulk_bytes=2000)
        assert (
            owner.outcomes["id0"].error_type,
            owner.outcomes["id0"].indexed,
        ) == ("TooLarge", False)
        assert list(cluster.docs) == ["id1"]

    def test_413_splits_the_body(self) -> None:
        """A 413 splits the body until the parts fit; every document still lands once."""
        cluster = MemoryCluster(max_body=1500)
        owner = _run(cluster, [_doc(i) for i in range(20)], bulk_bytes=8000)
        assert len(cluster.docs) == 20
        assert all(o.indexed for o in owner.outcomes.values())
        assert max(cluster.bodies) <= 1500

    def test_transient_request_failures_are_retried(self) -> None:
        """A whole-request 503 twice, then success: everything lands."""
        cluster = MemoryCluster(unavailable_times=2)
        owner = _run(cluster, [_doc(i) for i in range(5)])
        assert len(cluster.docs) == 5
        assert len(owner.outcomes) == 5

    def test_gives_up_after_the_policy(self) -> None:
        """When the cluster stays down, SinkUnavailable propagates and nothing is acknowledged."""
        cluster = MemoryCluster(unavailable_times=100)
        with pytest.raises(ExceptionGroup) as info:
            _run(cluster, [_doc(0)])
        assert info.group_contains(SinkUnavailable)
        assert cluster.docs == {}


def _timed(
    cluster: MemoryCluster, docs: list[Document], policy: RetryPolicy, **config: Any
) -> tuple[Collector, float, BaseException | None]:
    """Send ``docs`` under ``policy``: what each document became, the wall time, and the error
    the run ended with (``None`` when it drained)."""
    owner = Collector()
    cfg = SinkConfig(url="http://127.0.0.1:9200", retry=policy, **config)

    async def go() -> None:
        async with asyncio.TaskGroup() as tg:
            sink = BulkSink(cluster, cfg, tg)
            for d in docs:
                await sink.put(d, owner)
            await sink.drain()

    started = time.monotonic()
    try:
        asyncio.run(go())
    except ExceptionGroup as group:
        return owner, time.monotonic() - started, root_cause(group)
    return owner, time.monotonic() - started, None


ONE_SECOND = RetryPolicy(initial=0.05, maximum=0.25, deadline=1)


class TestRetryDeadline:
    def test_items_throttled_forever_are_dead_lettered_at_the_deadline(self) -> None:
        """Items answered 429 on every try are rejected RetriesExhausted within the deadline
        (plus a margin); the others land once and are never sent again."""
        cluster = MemoryCluster(item_429_always={"id2", "id7"})
        owner, elapsed, error = _timed(cluster, [_doc(i) for i in range(10)], ONE_SECOND)
        assert error is None
        assert elapsed < 3
        assert {"id2": "RetriesExhausted", "id7": "RetriesExhausted"} == {
            k: o.error_type for k, o in owner.outcomes.items() if not o.indexed
        }
        assert 10 == len(owner.outcomes)
        assert all(n == 1 for k, n in cluster.sent.items() if k not in {"id2", "id7"})
        assert cluster.sent["id2"] > 2  # retried until the deadline, not given up early

    def test_a_cluster_down_for_good_aborts_within_the_deadline(self) -> None:
        """Every request answered 503: SinkUnavailable ends the run within the deadline (plus a
        margin), with nothing settled."""
        cluster = MemoryCluster(unavailable_times=10**9)
        owner, elapsed, error = _timed(
            cluster, [_doc(i) for i in range(30)], ONE_SECOND, bulk_bytes=1000, max_in_flight=2
        )
        assert isinstance(error, SinkUnavailable)
        assert elapsed < 3
        assert {} == owner.outcomes

    def test_the_halves_of_a_413_share_the_batch_deadline(self) -> None:
        """A body split down to single documents, each answered 503 three times before it
        lands, would need several deadlines if each half had its own: the batch's one deadline
        ends it within a second (plus a margin)."""
        docs = [_doc(i) for i in range(16)]
        cluster = MemoryCluster(max_body=len(docs[0].ndjson), unavailable_per_body=3)
        policy = RetryPolicy(initial=0.2, maximum=0.5, deadline=1)
        owner, elapsed, error = _timed(cluster, docs, policy, bulk_bytes=100_000)
        assert isinstance(error, SinkUnavailable)
        assert elapsed < 3
        assert len(owner.outcomes) < 16

    def test_the_slot_is_free_while_items_wait(self) -> None:
        """While a batch backs off for its throttled items, another batch uses the only request
        slot: both finish within one deadline."""
        cluster = MemoryCluster(item_429_always={"id0"})
        docs = [_doc(i) for i in range(40)]
        owner, elapsed, error = _timed(
            cluster, docs, ONE_SECOND, bulk_bytes=1000, max_bulk_bytes=2000, max_in_flight=1
        )
        assert error is None
        assert elapsed < 3
        assert 39 == sum(o.indexed for o in owner.outcomes.values())


MIXES = {
    "429-items": {"item_429_rate": 0.4},
    "503-requests": {"unavailable_rate": 0.4},
    "413-splits": {"max_body": 700},
    "everything": {
        "item_429_rate": 0.3,
        "unavailable_rate": 0.3,
        "max_body": 900,
        "item_429_always": {"id3", "id31"},
        "reject": {"id5", "id40"},
    },
    "down-mid-run": {"item_429_rate": 0.3, "unavailable_rate": 0.85, "max_body": 900},
}


class TestSettledOnce:
    @pytest.mark.parametrize("seed", range(4))
    @pytest.mark.parametrize("mix", sorted(MIXES))
    def test_no_document_is_settled_twice(self, mix: str, seed: int) -> None:
        """Under 429 items, 503 requests and 413 splits, alone and mixed: every document is
        settled at most once (exactly once when the run drains), nothing that landed is sent
        again, and what was refused says why."""
        cluster = MemoryCluster(seed=seed, **MIXES[mix])  # type: ignore[arg-type]
        docs = [_doc(i) for i in range(60)]
        policy = RetryPolicy(initial=0.001, maximum=0.01, deadline=0.2)
        owner, elapsed, error = _timed(
            cluster, docs, policy, bulk_bytes=2500, max_bulk_bytes=5000, max_in_flight=3
        )
        assert error is None or isinstance(error, SinkUnavailable), error
        if error is None:
            assert {d.doc_id for d in docs} == set(owner.outcomes)
        assert not any(o.existed for o in owner.outcomes.values())  # a resend would be a 409
        assert {k for k, o in owner.outcomes.items() if o.indexed} <= set(cluster.docs)
        refused = {o.error_type for o in owner.outcomes.values() if not o.indexed}
        assert refused <= {"RetriesExhausted", "mapper_parsing_exception"}
        assert elapsed < 3


class _SlowCluster(MemoryCluster):
    """Takes 50 ms to answer each request."""

    async def bulk(self, body: bytes) -> dict[str, Any]:
        await asyncio.sleep(0.05)
        return await super().bulk(body)


class TestLinger:
    """A body fills across puts up to the controller's size; one not full waits the linger."""

    @staticmethod
    def _while_open(
        cluster: MemoryCluster, docs: list[Document], wait: float, gap: float = 0, **config: Any
    ) -> tuple[list[int], list[int]]:
        """Put ``docs`` ``gap`` seconds apart (the loop turns in between), sleep ``wait``
        seconds, then drain: the bodies sent before the drain, and all of them."""
        cfg = SinkConfig(url="http://127.0.0.1:9200", retry=FAST, **config)
        owner = Collector()
        before: list[int] = []

        async def go() -> None:
            async with asyncio.TaskGroup() as tg:
                sink = BulkSink(cluster, cfg, tg)
                for d in docs:
                    await sink.put(d, owner)
                    await asyncio.sleep(gap)
                await asyncio.sleep(wait)
                before.extend(cluster.bodies)
                await sink.drain()

        asyncio.run(go())
        assert {d.doc_id for d in docs} == {k for k, o in owner.outcomes.items() if o.indexed}
        return before, list(cluster.bodies)

    def test_bodies_fill_across_puts(self) -> None:
        """Documents put one at a time with the upstream idle in between go out in full bodies
        (all but the last within one document of the size); the last, partial, at drain."""
        docs = [_doc(i) for i in range(200)]
        size, total = max(len(d.ndjson) for d in docs), sum(len(d.ndjson) for d in docs)
        _, bodies = self._while_open(
            MemoryCluster(), docs, 0, bulk_bytes=20 * size, max_bulk_bytes=20 * size
        )
        assert all(b > 19 * size for b in bodies[:-1])
        assert len(bodies) <= total // (19 * size) + 1
        assert total == sum(bodies)

    def test_a_partial_body_waits_for_the_drain_within_the_linger(self) -> None:
        """With a long linger, three documents are held until the drain, then sent as one."""
        before, bodies = self._while_open(
            MemoryCluster(), [_doc(i) for i in range(3)], 0.2, linger_seconds=30
        )
        assert ([], 1) == (before, len(bodies))

    def test_a_partial_body_goes_after_the_linger(self) -> None:
        """A lone document is sent once the linger has passed, without a drain."""
        before, bodies = self._while_open(MemoryCluster(), [_doc(0)], 1.0, linger_seconds=0.05)
        assert (1, 1) == (len(before), len(bodies))

    def test_a_trickle_goes_after_ten_lingers(self) -> None:
        """Documents that keep coming, never idle for a linger, do not hold the body for ever:
        it goes once its first document has waited ten lingers."""
        before, bodies = self._while_open(
            MemoryCluster(), [_doc(i) for i in range(40)], 0, gap=0.03, linger_seconds=0.05
        )
        assert 2 <= len(before) <= len(bodies) < 40

    def test_a_busy_slot_lets_the_body_fill(self) -> None:
        """While the only request slot is busy, a body whose linger has passed keeps taking
        documents: it leaves full (or at the drain), not as a string of small ones."""
        docs = [_doc(i) for i in range(120)]
        size = len(docs[0].ndjson)
        _, bodies = self._while_open(
            _SlowCluster(),
            docs,
            0,
            bulk_bytes=40 * size,
            max_bulk_bytes=40 * size,
            max_in_flight=1,
            linger_seconds=0,
        )
        assert len(bodies) <= 5  # the first document alone, then full bodies


def _objects(cluster: MemoryCluster, *sizes: int, **config: Any) -> tuple[list[Collector], Any]:
    """One owner per object of ``sizes`` documents, each put in one call (as the engine does);
    every owner, and the sink's counters."""
    owners = [Collector() for _ in sizes]
    cfg = SinkConfig(url="http://127.0.0.1:9200", retry=FAST, **config)
    starts = [sum(sizes[:n]) for n in range(len(sizes))]
    stats: list[Any] = []

    async def go() -> None:
        async with asyncio.TaskGroup() as tg:
            sink = BulkSink(cluster, cfg, tg)
            stats.append(sink.stats)
            for owner, start, size in zip(owners, starts, sizes, strict=True):
                await sink.put_many([_doc(i) for i in range(start, start + size)], owner)
            await sink.drain()

    asyncio.run(go())
    return owners, stats[0]


class TestBulkAnswers:
    def test_all_created_settles_every_object(self) -> None:
        """An answer without errors settles every document of every object once, as created."""
        cluster = MemoryCluster()
        owners, stats = _objects(cluster, 40, 1, 75, bulk_bytes=6_000, max_bulk_bytes=12_000)
        assert [40, 1, 75] == [len(o.outcomes) for o in owners]
        assert all(o == Outcome(True) for c in owners for o in c.outcomes.values())
        assert (116, 116, 0) == (len(cluster.docs), stats.created, stats.rejected)
        assert len(cluster.bodies) > 1  # objects split across bodies and bodies across objects

    def test_mixed_answer_settles_each_item_by_its_status(self) -> None:
        """In an answer with errors, exactly the refused items are dead-lettered, a 409 is
        indexed as existing and a 429 is sent again; the others are created, across objects."""
        cluster = MemoryCluster(reject={"id3", "id12"}, item_429_first={"id8"})
        cluster.docs["id7"] = {"original": True}
        (first, second), stats = _objects(cluster, 5, 10)
        assert {"id3"} == {k for k, o in first.outcomes.items() if not o.indexed}
        assert {"id12"} == {k for k, o in second.outcomes.items() if not o.indexed}
        assert Outcome(True, existed=True) == second.outcomes["id7"]
        assert Outcome(True) == second.outcomes["id8"]
        assert (13, 12, 1, 2) == (len(cluster.docs), stats.created, stats.existed, stats.rejected)
        assert cluster.docs["id7"] == {"original": True}

    def test_an_object_split_by_413_still_lands_once(self) -> None:
        """A 413 for a body of one object's documents splits it until the parts fit."""
        cluster = MemoryCluster(max_body=1500)
        (owner,), stats = _objects(cluster, 20, bulk_bytes=8000)
        assert all(o == Outcome(True) for o in owner.outcomes.values())
        assert (20, 20) == (len(owner.outcomes), len(cluster.docs))
        assert max(cluster.bodies) <= 1500
        assert stats.splits > 0

    def test_client_parses_answers_with_orjson_and_big_numbers_as_before(self) -> None:
        """The async client reads answers with orjson; a number orjson refuses still parses."""
        client = open_client(SinkConfig(url="http://127.0.0.1:9200"))
        loads = client.transport.deserializer.loads
        answer = '{"errors":false,"items":[{"create":{"status":201}}]}'
        assert orjson.loads(answer) == loads(answer, "application/json")
        assert {"n": 2**70} == loads(f'{{"n": {2**70}}}', "application/json")
        asyncio.run(client.close())
