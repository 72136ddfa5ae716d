"""``--gzip`` for real: osmem-server (the loopback OpenSearch) takes gzipped bulk bodies and
stores what it stores from plain ones, a request sent again after a failure carries the bytes
gzipped for the first attempt, and the default (auto) gzips for every target but Serverless."""

from __future__ import annotations

import asyncio
import gzip
from pathlib import Path

import orjson
import pytest

from ingest.cluster import install_template, open_client
from ingest.config import SinkConfig
from ingest.decode import Document, Rejected, to_document
from ingest.retry import RetryPolicy
from ingest.sink import BulkSink, OpenSearchBulkClient, Outcome
from ingest.testing import synth
from ingest.testing.faultproxy import EMULATIONS, FaultProxy, Faults

from .helpers import all_docs, backfill

pytestmark = pytest.mark.integration


class _Indexed:
    def __init__(self) -> None:
        self.indexed = 0

    def settle(self, doc: Document, outcome: Outcome) -> None:
        self.indexed += outcome.indexed


def _documents(files: list[synth.SynthFile]) -> list[Document]:
    docs = []
    for f in files:
        for i, rec in enumerate(orjson.loads(gzip.decompress(f.body))["Records"]):
            made = to_document(rec, "cloudtrail-", i, f.key)
            if not isinstance(made, Rejected):
                docs.append(made[0])
    return docs


class TestGzipBodies:
    def test_osmem_stores_gzipped_bodies_as_plain_ones(
        self, opensearch_url: str, tmp_path: Path
    ) -> None:
        """A backfill with --gzip indexes every record of the archive, each document with the
        same fields as the same archive backfilled with --no-gzip."""
        logs = tmp_path / "logs"
        _, records = synth.write_tree(logs, synth.generate(300, seed=16, days=1, per_file=30))
        for name in ("plain", "gzip"):
            (tmp_path / name).mkdir()
        plain = backfill(
            str(logs), opensearch_url, tmp_path / "plain", "--index-prefix", "plain-", "--alias",
            "plain", "--no-gzip",
        )  # fmt: skip
        gzipped = backfill(str(logs), opensearch_url, tmp_path / "gzip", "--gzip")
        assert 0 == plain.code, plain.stderr[-2000:]
        assert 0 == gzipped.code, gzipped.stderr[-2000:]
        assert (records, 0) == (gzipped.done["indexed"], gzipped.done["deadlettered"])
        docs = all_docs(opensearch_url)
        assert records == len(docs)
        assert all_docs(opensearch_url, "plain") == docs
        assert {"eventName", "ct", "related", "@timestamp"} <= set(next(iter(docs.values())))

    def test_a_retried_request_resends_the_same_gzip(
        self, opensearch_url: str, tmp_path: Path
    ) -> None:
        """Through a proxy answering 429 to about half of the bulk requests: every request
        arrives gzipped, every document is indexed, and the bodies were gzipped once each
        (fewer compressions than requests)."""
        docs = _documents(list(synth.generate(600, seed=17, days=1, per_file=50)))
        with FaultProxy(opensearch_url, Faults(seed=3, whole_429=0.5)) as proxy:
            config = SinkConfig(
                url=proxy.url,
                compress=True,
                bulk_bytes=64 * 1024,
                max_bulk_bytes=64 * 1024,
                retry=RetryPolicy(initial=0.01, maximum=0.05, deadline=60),
            )

            async def go() -> tuple[int, int]:
                client = open_client(config)
                try:
                    await install_template(client, config)  # its bodies are gzipped too
                    connection = client.transport.get_connection()
                    before, owner = connection.compressed, _Indexed()
                    async with asyncio.TaskGroup() as tg:
                        sink = BulkSink(OpenSearchBulkClient(client), config, tg)
                        for doc in docs:
                            await sink.put(doc, owner)
                        await sink.drain()
                    return owner.indexed, connection.compressed - before
                finally:
                    await client.close()

            indexed, compressed = asyncio.run(go())
            seen = [s for s in proxy.seen if s.fault == "429"], len(proxy.seen)
        assert len(docs) == indexed
        assert len(docs) == len(all_docs(opensearch_url))
        assert all(s.gzip for s in proxy.seen)
        assert seen[0], "no request was answered 429: nothing was retried"
        assert seen[1] - len(seen[0]) == compressed


class TestGzipDefault:
    @pytest.mark.parametrize(
        ("flags", "emulation", "gzipped", "logged"),
        [
            ((), None, True, "on (auto)"),
            (("--no-gzip",), None, False, "off"),
            ((), "serverless-search", False, "off (auto)"),
            (("--target", "serverless-search"), None, False, "off (auto)"),
        ],
    )
    def test_auto_gzips_for_every_target_but_serverless(
        self,
        opensearch_url: str,
        tmp_path: Path,
        flags: tuple[str, ...],
        emulation: str | None,
        gzipped: bool,
        logged: str,
    ) -> None:
        """Without a flag, bulk bodies go gzipped to OpenSearch and plain to Serverless (found
        from the cluster's answers, or declared); --no-gzip sends them plain; every record is
        indexed either way, and the run's opensearch_ready line says which it was."""
        logs = tmp_path / "logs"
        _, records = synth.write_tree(logs, synth.generate(120, seed=18, days=1, per_file=20))
        with FaultProxy(opensearch_url, emulation=EMULATIONS.get(emulation or "")) as proxy:
            run = backfill(str(logs), proxy.url, tmp_path, *flags)
            bulk = [s.gzip for s in proxy.seen]
        assert (0, records) == (run.code, run.done["indexed"]), run.stderr[-2000:]
        assert records == len(all_docs(opensearch_url))
        assert {gzipped} == set(bulk)
        assert [logged] == [e["gzip"] for e in run.events("opensearch_ready")]
