"""In-memory edges for unit tests of the layers above them (the engine, the sink, the
operations): an :class:`~ingest.source.ObjectStore` over a dict of keys and a
:class:`~ingest.sink.BulkClient` with ``create`` semantics, both with injectable faults."""

from __future__ import annotations

import random
import zlib
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson

from ingest.errors import SinkUnavailable, SourceError, SourceUnavailable
from ingest.retry import RetryPolicy, call_with_retry
from ingest.sink import TooLarge
from ingest.source import ObjectRef, Page

__all__ = ["MemoryCluster", "MemoryStore"]

_FAST = RetryPolicy(initial=0.001, maximum=0.01, deadline=2)


class MemoryStore:
    """A bucket as a dict ``key -> bytes``; ``unavailable`` keys fail transiently that many
    times, ``missing`` keys are listed but answer 404 on GET.

    Like the real stores, it retries its own transient failures, under ``retry`` (by default
    a fast policy with a 2 s deadline); ``gets`` lists every attempt."""

    def __init__(
        self,
        objects: dict[str, bytes],
        *,
        name: str = "s3://memory",
        unavailable: dict[str, int] | None = None,
        missing: Iterable[str] = (),
        retry: RetryPolicy | None = None,
    ) -> None:
        self.objects = dict(objects)
        self._name = name
        self._unavailable = dict(unavailable or {})
        self._missing = set(missing)
        self._retry = retry or _FAST
        self.gets: list[str] = []

    @property
    def name(self) -> str:
        return self._name

    def ref(self, key: str) -> ObjectRef:
        body = self.objects[key]
        etag = f"{len(body):x}-{zlib.crc32(body):08x}"
        return ObjectRef(key, etag, len(body), datetime(2024, 3, 5, tzinfo=UTC))

    async def list_page(
        self,
        prefix: str,
        *,
        delimiter: str | None,
        token: str | None = None,
        start_after: str | None = None,
    ) -> Page:
        page = Page()
        prefixes: set[str] = set()
        for key in sorted(self.objects):
            if not key.startswith(prefix) or (start_after is not None and key <= start_after):
                continue
            rest = key[len(prefix) :]
            if delimiter and delimiter in rest:
                prefixes.add(prefix + rest.split(delimiter, 1)[0] + delimiter)
            else:
                page.objects.append(self.ref(key))
        page.prefixes = sorted(prefixes)
        return page

    async def get(self, ref: ObjectRef) -> bytes:
        return await call_with_retry(self._retry, lambda: self._get(ref))

    async def _get(self, ref: ObjectRef) -> bytes:
        self.gets.append(ref.key)
        if self._unavailable.get(ref.key, 0) > 0:
            self._unavailable[ref.key] -= 1
            raise SourceUnavailable(f"get {self._name}/{ref.key}: 503 SlowDown")
        if ref.key in self._missing or ref.key not in self.objects:
            raise SourceError(f"get {self._name}/{ref.key}: NoSuchKey")
        return self.objects[ref.key]

    async def aclose(self) -> None:
        return None


class MemoryCluster:
    """An in-memory implementation of the BulkClient interface with create semantics and faults.

    Faults, checked in this order: a body above ``max_body`` is answered 413; then the whole
    request is answered 503 for the first ``unavailable_times`` requests, for the first
    ``unavailable_per_body`` tries of each distinct body, and after that with probability
    ``unavailable_rate``; then each item: 429 the first time for ``item_429_first``,
    every time for ``item_429_always``, with probability ``item_429_rate`` for the others; 400
    for ``reject``. ``seed`` makes the random faults repeatable. ``sent`` counts, per document
    id, the answered requests that carried it."""

    def __init__(
        self,
        *,
        item_429_first: Iterable[str] = (),
        item_429_always: Iterable[str] = (),
        reject: Iterable[str] = (),
        max_body: int | None = None,
        unavailable_times: int = 0,
        unavailable_per_body: int = 0,
        unavailable_rate: float = 0.0,
        item_429_rate: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.bodies: list[int] = []
        self.sent: Counter[str] = Counter()
        self._item_429 = set(item_429_first)
        self._item_429_always = set(item_429_always)
        self._reject = set(reject)
        self._max_body = max_body
        self._unavailable = unavailable_times
        self._per_body = unavailable_per_body
        self._tries: Counter[bytes] = Counter()
        self._unavailable_rate = unavailable_rate
        self._item_429_rate = item_429_rate
        self._random = random.Random(seed)

    def _throttled(self, doc_id: str) -> bool:
        if doc_id in self._item_429:
            self._item_429.discard(doc_id)
            return True
        return doc_id in self._item_429_always or self._random.random() < self._item_429_rate

    async def bulk(self, body: bytes) -> dict[str, Any]:
        if self._max_body is not None and len(body) > self._max_body:
            raise TooLarge("bulk: HTTP 413")
        if self._unavailable:
            self._unavailable -= 1
            raise SinkUnavailable("bulk: HTTP 503")
        self._tries[body] += 1
        if self._tries[body] <= self._per_body:
            raise SinkUnavailable("bulk: HTTP 503")
        if self._random.random() < self._unavailable_rate:
            raise SinkUnavailable("bulk: HTTP 503")
        self.bodies.append(len(body))
        lines = body.splitlines()
        items = []
        for action_line, source_line in zip(lines[::2], lines[1::2], strict=True):
            meta = orjson.loads(action_line)["create"]
            doc_id = meta["_id"]
            self.sent[doc_id] += 1
            if self._throttled(doc_id):
                items.append(
                    {
                        "create": {
                            "_id": doc_id,
                            "status": 429,
                            "error": {"type": "es_rejected_execution_exception"},
                        }
                    }
                )
            elif doc_id in self._reject:
                items.append(
                    {
                        "create": {
                            "_id": doc_id,
                            "status": 400,
                            "error": {
                                "type": "mapper_parsing_exception",
                                "reason": "failed to parse field [x]",
                            },
                        }
                    }
                )
            elif doc_id in self.docs:
                items.append({"create": {"_id": doc_id, "status": 409}})
            else:
                self.docs[doc_id] = orjson.loads(source_line)
                items.append({"create": {"_id": doc_id, "status": 201}})
        return {"errors": any(i["create"]["status"] >= 300 for i in items), "items": items}

    async def aclose(self) -> None:
        return None
