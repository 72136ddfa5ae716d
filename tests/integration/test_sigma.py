"""Sigma rules on the index ct-ingest builds: the events of ``sigma_events`` loaded by a real
backfill into osmem-server (once for the module), each rule of ``tests/fixtures/sigma``
converted and run, and ``ct-ingest sigma hunt`` reading the same index."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opensearchpy import OpenSearch

from ingest.sigma import convert_paths
from ingest.sigma.hunt import hunt

from .helpers import backfill, cli
from .sigma_events import EVENTS, EXPECTED, write_archive

pytestmark = pytest.mark.integration
RULES = Path(__file__).resolve().parents[1] / "fixtures" / "sigma"


@pytest.fixture(scope="module")
def loaded(opensearch_backend: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The rule tests' events in a fresh cluster, loaded once for the module."""
    source = write_archive(tmp_path_factory.mktemp("sigma-archive"))
    url = opensearch_backend.fresh()
    run = backfill(str(source), url, tmp_path_factory.mktemp("sigma-state"))
    assert (0, len(EVENTS)) == (run.code, run.done["indexed"]), run.stderr
    OpenSearch(hosts=[url]).indices.refresh(index="_all")
    yield url
    opensearch_backend.release()


def _found(url: str, query: dict[str, Any]) -> set[str]:
    client = OpenSearch(hosts=[url])
    try:
        res = client.search(index="cloudtrail", body={"query": query, "size": 100})
    finally:
        client.close()
    return {h["_id"] for h in res["hits"]["hits"]}


class TestRulesOnTheIndex:
    @pytest.mark.parametrize("name", sorted(EXPECTED))
    def test_rule_finds_its_events_and_not_the_near_misses(self, loaded: str, name: str) -> None:
        """The converted rule's query finds exactly the events made to match it."""
        [converted] = convert_paths([RULES / f"{name}.yml"])
        assert converted.error is None
        assert converted.query is not None
        assert EXPECTED[name] == _found(loaded, converted.query)

    def test_every_rule_file_is_tested(self) -> None:
        """No rule in the fixtures without an expectation."""
        assert set(EXPECTED) == {p.stem for p in RULES.glob("*.yml")}


class TestHunt:
    def test_hunt_counts_hits_with_examples(self, loaded: str) -> None:
        """``sigma hunt --json``: one line per rule with its hits and example events."""
        run = cli(
            "sigma", "hunt", str(RULES), "--opensearch", loaded, "--since", "2026-01-01", "--json"
        )
        assert 0 == run.code, run.stderr
        lines = [json.loads(line) for line in run.stdout.splitlines()]
        hits = {Path(line["rule"]).stem: line["hits"] for line in lines}
        assert {name: len(ids) for name, ids in EXPECTED.items()} == hits
        [mfa] = [line for line in lines if line["title"] == "Console sign-in without MFA"]
        [example] = mfa["examples"]
        assert "signin:ConsoleLogin" == example["event_name"]
        assert "203.0.113.9" == example["source_ip"]
        assert example["file"].endswith("sigmaRuleTests01.json.gz")
        assert example["timestamp"].startswith("2026-11-20T10:")

    def test_hunt_table_and_window(self, loaded: str) -> None:
        """The table names each rule; a window after the events finds nothing."""
        run = cli(
            "sigma",
            "hunt",
            str(RULES / "mfa_nested.yml"),
            "--opensearch",
            loaded,
            "--since",
            "2026-11-21",
        )
        assert 0 == run.code, run.stderr
        assert "Console sign-in without MFA" in run.stdout
        assert " 0 " in run.stdout

    def test_payload_rules_on_a_cluster_without_flat_object(self, loaded: str) -> None:
        """Where the payload copies are not flat_object (older clusters), a rule that reads them
        is an error naming the cause, not zero hits; the others still run."""
        client = OpenSearch(hosts=[loaded])
        mapping = {
            "properties": {
                "ct": {"properties": {"flat": {"type": "object", "enabled": False}}},
                "eventName": {"type": "keyword"},
                "@timestamp": {"type": "date"},
            }
        }
        client.indices.create(
            index="legacy-1", body={"mappings": mapping, "aliases": {"legacy": {}}}
        )
        client.close()
        from datetime import UTC, datetime

        rules = convert_paths([RULES / "mfa_nested.yml", RULES / "contains_multiword.yml"])
        client = OpenSearch(hosts=[loaded])
        try:
            found = hunt(
                client,
                rules,
                alias="legacy",
                since=datetime(2026, 1, 1, tzinfo=UTC),
                until=datetime.now(UTC),
            )
        finally:
            client.close()
        assert "no flat_object" in (found[0].error or "")
        assert (None, 0) == (found[1].error, found[1].hits)
