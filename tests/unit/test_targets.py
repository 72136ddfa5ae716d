"""Knowing the target: what each kind of cluster's answer to GET / identifies, the templates
shaped for it, and the bulk client's write path with and without _id."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from opensearchpy.exceptions import ConnectionError as OSConnectionError
from opensearchpy.exceptions import TransportError

from ingest.cluster import opensearch_errors, render_components, render_ism_policy
from ingest.config import IndexConfig, SinkConfig
from ingest.errors import SinkUnavailable
from ingest.ops.dashboards import saved_objects
from ingest.sink import OpenSearchBulkClient, unanswered
from ingest.targets import (
    ALERTING,
    NOTIFICATIONS,
    Collection,
    Kind,
    Target,
    _declared,
    from_root,
    refuses_ids,
)

OPENSEARCH_2_11 = {
    "version": {"distribution": "opensearch", "number": "2.11.0"},
    "tagline": "The OpenSearch Project: https://opensearch.org/",
}
OPENSEARCH_1_3 = {
    "version": {"distribution": "opensearch", "number": "1.3.14"},
    "tagline": "The OpenSearch Project: https://opensearch.org/",
}
COMPATIBILITY_MODE = {
    "version": {"number": "7.10.2", "build_type": "tar"},
    "tagline": "The OpenSearch Project: https://opensearch.org/",
}
ELASTICSEARCH_7_10 = {
    "version": {"number": "7.10.2", "build_flavor": "oss", "build_type": "tar"},
    "tagline": "You Know, for Search",
}


class TestFromRoot:
    @pytest.mark.parametrize(
        ("answer", "kind", "version", "flat_object", "compat"),
        [
            (OPENSEARCH_2_11, Kind.OPENSEARCH, "2.11.0", True, False),
            (OPENSEARCH_1_3, Kind.OPENSEARCH, "1.3.14", False, False),
            (COMPATIBILITY_MODE, Kind.OPENSEARCH, "", None, True),
            (ELASTICSEARCH_7_10, Kind.ELASTICSEARCH, "7.10.2", False, False),
            ({}, Kind.SERVERLESS, "", True, False),
        ],
    )
    def test_identifies(
        self,
        answer: dict[str, Any],
        kind: Kind,
        version: str,
        flat_object: bool | None,
        compat: bool,
    ) -> None:
        """The version object and tagline tell the distribution; compatibility mode's 7.10.2
        is OpenSearch of an unknown version, never Elasticsearch; 404 ({}) is Serverless."""
        got = from_root(answer)
        assert (kind, version, flat_object, compat) == (
            got.kind,
            got.version,
            got.flat_object,
            got.compatibility_mode,
        )

    def test_only_the_newest_opensearch_is_the_default(self) -> None:
        """OpenSearch 2.7 or newer changes nothing; the others carry notes."""
        assert from_root(OPENSEARCH_2_11).is_default
        assert [] == from_root(OPENSEARCH_2_11).notes()
        for answer in (OPENSEARCH_1_3, ELASTICSEARCH_7_10, {}):
            assert not from_root(answer).is_default
            assert from_root(answer).notes()


class TestDeclared:
    def test_serverless_from_the_endpoint_or_the_flag(self) -> None:
        """An *.aoss.amazonaws.com endpoint or --target serverless-* needs no GET /."""
        aoss = SinkConfig(url="https://abc123.eu-west-1.aoss.amazonaws.com")
        assert Target(Kind.SERVERLESS) == _declared(aoss)
        ts = SinkConfig(url="http://127.0.0.1:9200", target="serverless-timeseries")
        assert Target(Kind.SERVERLESS, collection=Collection.TIMESERIES) == _declared(ts)
        assert _declared(SinkConfig(url="https://search-x.eu-west-1.es.amazonaws.com")) is None


class TestPlugins:
    def test_the_plugins_once_known_decide(self) -> None:
        """Before _cat/plugins is asked, OpenSearch may have them; once asked, only what it
        lists; Elasticsearch and Serverless never have them under _plugins."""
        opensearch = from_root(OPENSEARCH_2_11)
        assert (True, True) == (opensearch.alerting, opensearch.has_plugin(NOTIFICATIONS))
        opensearch.plugins = frozenset({ALERTING, "opensearch-job-scheduler"})
        assert (True, False) == (opensearch.alerting, opensearch.has_plugin(NOTIFICATIONS))
        opensearch.plugins = frozenset()
        assert not opensearch.alerting
        for answer in (ELASTICSEARCH_7_10, {}):
            other = from_root(answer)
            other.plugins = frozenset({ALERTING, NOTIFICATIONS})
            assert not other.alerting


class TestTemplates:
    def test_without_flat_object_the_payload_copies_are_unindexed_objects(self) -> None:
        """Only ct.flat.* changes: mapped objects with indexing off, every other field kept."""
        config = SinkConfig(url="http://127.0.0.1:9200")
        full = render_components(config, IndexConfig())
        degraded = render_components(config, IndexConfig(), flat_object=False)
        assert b"flat_object" in orjson.dumps(full)
        assert b"flat_object" not in orjson.dumps(degraded)
        name = "ct-ingest-cloudtrail-enrichment"
        ct = degraded[name]["template"]["mappings"]["properties"]["ct"]["properties"]
        assert {"type": "object", "enabled": False} == ct["flat"]["properties"]["request"]
        ct["flat"] = full[name]["template"]["mappings"]["properties"]["ct"]["properties"]["flat"]
        assert full == degraded

    def test_the_retention_policy_in_open_distros_shape(self) -> None:
        """Elasticsearch 7.10's ISM (Open Distro) reads one ism_template object, OpenSearch's a
        list; the policy is otherwise the same."""
        config = SinkConfig(url="http://127.0.0.1:9200")
        plain = render_ism_policy(config, IndexConfig())
        legacy = render_ism_policy(config, IndexConfig(), opendistro=True)
        assert [legacy["policy"].pop("ism_template")] == plain["policy"].pop("ism_template")
        assert plain == legacy

    def test_serverless_templates_set_no_index_settings(self) -> None:
        """Serverless manages shards, replicas and refresh: the settings component is empty."""
        config = SinkConfig(url="http://127.0.0.1:9200")
        parts = render_components(config, IndexConfig(), index_settings=False)
        assert {} == parts["ct-ingest-cloudtrail-settings"]["template"]


class _Cluster:
    """The one call of opensearch-py's client the bulk client makes, answering as a TIMESERIES
    collection does: an item with an _id is refused, one without is created."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def bulk(self, body: bytes, params: Any = None) -> dict[str, Any]:
        self.bodies.append(body)
        actions = [orjson.loads(line) for line in body.splitlines()[::2]]
        items = [
            {"create": {"status": 400, "error": {"reason": "Document ID is not supported in "
                                                           "create/index operation request"}}}
            if "_id" in a["create"]
            else {"create": {"status": 201}}
            for a in actions
        ]  # fmt: skip
        return {"errors": True, "items": items}


def _body(*ids: str) -> bytes:
    return b"".join(
        orjson.dumps({"create": {"_index": "cloudtrail-2024.03", "_id": i}})
        + b"\n"
        + orjson.dumps({"eventID": i})
        + b"\n"
        for i in ids
    )


class TestWritePath:
    def test_a_refused_id_makes_the_target_timeseries_and_nothing_is_lost(self) -> None:
        """The first refusal re-sends the refused items at once without _id; the target is
        TIMESERIES from then on and later bodies go without _id in one request."""
        fake = _Cluster()
        client = OpenSearchBulkClient(fake, Target(Kind.SERVERLESS))
        first = asyncio.run(client.bulk(_body("a", "b")))
        assert [201, 201] == [i["create"]["status"] for i in first["items"]]
        assert Collection.TIMESERIES == client.target.collection
        asyncio.run(client.bulk(_body("c")))
        assert 3 == len(fake.bodies)
        assert b'"_id"' not in fake.bodies[1] + fake.bodies[2]
        assert [b'{"eventID":"c"}'] == fake.bodies[2].splitlines()[1::2]

    def test_refuses_ids_matches_only_that_refusal(self) -> None:
        """A mapping error is not mistaken for a TIMESERIES collection."""
        assert refuses_ids({"reason": "Document ID is not supported in create/index operation"})
        assert not refuses_ids({"type": "mapper_parsing_exception", "reason": "failed to parse"})


class TestKibana:
    def test_every_attribute_of_the_dashboards_is_one_kibana_knows(self) -> None:
        """Kibana 7.10 gets the same objects, no attribute dropped: a new attribute that only
        OpenSearch Dashboards knows fails here, not silently in Kibana."""
        assert saved_objects() == saved_objects(app="Kibana")


def _translated(exc: Exception) -> SinkUnavailable:
    try:
        with opensearch_errors("bulk"):
            raise exc
    except SinkUnavailable as out:
        return out
    raise AssertionError("not transient")


class TestUnanswered:
    @pytest.mark.parametrize(
        ("exc", "maybe_applied"),
        [
            (TimeoutError(), True),
            (OSConnectionError("N/A", "connection reset", Exception()), True),
            (TransportError(504, "gateway timeout", {}), True),
            (TransportError(503, "unavailable", {}), False),
            (TransportError(429, "too many requests", {}), False),
        ],
    )
    def test_which_failures_may_have_been_applied(
        self, exc: Exception, maybe_applied: bool
    ) -> None:
        """A timeout, a dropped connection or a 504 may hide an applied request (a resend can
        duplicate without _id); a 503 or 429 was refused before anything was applied."""
        assert maybe_applied == unanswered(_translated(exc))
