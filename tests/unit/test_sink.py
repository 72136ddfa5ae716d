from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from ingest.config import SinkConfig
from ingest.decode import Document
from ingest.errors import SinkUnavailable
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
