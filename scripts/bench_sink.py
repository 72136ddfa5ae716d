#!/usr/bin/env python3
"""The main process's CPU per record on the sink's own path, against a floor in the same run.

    python scripts/bench_sink.py [--records 25000] [--repeat 5]

Decoded objects of small CloudTrail files (~40, ~180 and ~400 records, as the S3 part of
bench_pipeline writes them) go as the engine hands them over (one ``put_many`` per object)
through :class:`~ingest.sink.BulkSink` and :class:`~ingest.sink.OpenSearchBulkClient` into an
in-process stand-in for opensearch-py that answers every body "all created" as a JSON text,
parsed by the async client's own serializer: putting, bodies, parsing the answers, settling.
The floor is what cannot be avoided for the same documents: joining them into bodies of the
same size and parsing the same answers with orjson. Process CPU, best of ``--repeat``; no
sockets, so it measures the path's Python and nothing of the network or of S3.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from typing import Any

import orjson
import structlog

from ingest.cluster import open_client
from ingest.config import SinkConfig
from ingest.decode import Decoded, Document, decode_object
from ingest.sink import BulkSink, OpenSearchBulkClient, Outcome
from ingest.testing import synth


class _Answers:
    """opensearch-py's ``bulk`` as far as the sink sees it: every item created."""

    def __init__(self, loads: Callable[[str], Any]) -> None:
        self._loads = loads
        self._texts: dict[int, str] = {}  # built once per body length, outside the timing

    def text(self, items: int) -> str:
        if items not in self._texts:
            created = ",".join(['{"create":{"status":201}}'] * items)
            self._texts[items] = '{"errors":false,"items":[' + created + "]}"
        return self._texts[items]

    async def bulk(self, body: bytes, params: dict[str, str]) -> Any:
        return self._loads(self.text(body.count(b"\n") // 2))

    async def close(self) -> None:
        return None


class _Object:
    """The engine's per-object counting, as :class:`~ingest.engine._ObjectTask` does it."""

    def __init__(self, documents: int) -> None:
        self.pending = documents
        self.indexed = 0

    def settle(self, doc: Document, outcome: Outcome) -> None:
        self.indexed += outcome.indexed
        self.pending -= 1


def _decoded(records: int) -> list[Decoded]:
    out: list[Decoded] = []
    for n, per_file in enumerate((40, 180, 400)):
        for f in synth.generate(records // 3, seed=30 + n, days=1, per_file=per_file):
            out.append(decode_object(f.key, f.body, index_prefix="cloudtrail"))
    return out


def sink_path(objects: list[Decoded], answers: _Answers, config: SinkConfig) -> list[int]:
    """Every object through the sink; the documents of each body sent."""
    bodies: list[int] = []

    async def go() -> None:
        async with asyncio.TaskGroup() as tg:
            sink = BulkSink(OpenSearchBulkClient(answers), config, tg)
            for decoded in objects:
                await sink.put_many(decoded.documents, _Object(len(decoded.documents)))
            await sink.drain()
            assert sink.stats.created == sum(len(d.documents) for d in objects)

    original = answers.bulk

    async def counting(body: bytes, params: dict[str, str]) -> Any:
        bodies.append(body.count(b"\n") // 2)
        return await original(body, params)

    answers.bulk = counting  # type: ignore[method-assign]
    try:
        asyncio.run(go())
    finally:
        answers.bulk = original  # type: ignore[method-assign]
    return bodies


def floor(docs: list[Document], bodies: list[int], answers: _Answers) -> None:
    start = 0
    for n in bodies:
        b"".join(d.ndjson for d in docs[start : start + n])
        orjson.loads(answers.text(n))
        start += n


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.process_time()
        fn()
        times.append(time.process_time() - started)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=25_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(20))  # info and up
    objects = _decoded(args.records)
    docs = [d for decoded in objects for d in decoded.documents]
    config = SinkConfig(url="http://127.0.0.1:9200")
    client = open_client(config)
    answers = _Answers(client.transport.deserializer.serializers["application/json"].loads)
    asyncio.run(client.close())
    bodies = sink_path(objects, answers, config)  # also warms the answers' texts
    ours = best(lambda: sink_path(objects, answers, config), args.repeat)
    low = best(lambda: floor(docs, bodies, answers), args.repeat)
    n = len(docs)
    print(f"{len(objects)} objects, {n:,} documents in {len(bodies)} bodies")
    print(
        f"sink path {ours / n * 1e6:.2f} us/record; floor (join + orjson of the answers) "
        f"{low / n * 1e6:.2f} us/record: {ours / low:.1f}x the floor (process CPU, best of "
        f"{args.repeat})"
    )


if __name__ == "__main__":
    main()
