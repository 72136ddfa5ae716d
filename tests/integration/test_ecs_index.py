"""ECS fields in the index: the corpus files loaded by a backfill with --geoip-db and --asn-db
(decoding in a worker process), then found by term queries on the stored ECS fields and the
template's aliases, as Elastic's prebuilt rules and dashboards ask."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opensearchpy import OpenSearch

from ..fixtures.geoip import write_databases
from .helpers import backfill, count

pytestmark = pytest.mark.integration


def _term(field: str, value: Any) -> dict[str, Any]:
    return {"term": {field: value}}


def _leaf_fields(mapping: dict[str, Any]) -> int:
    n = 0
    for spec in mapping.get("properties", {}).values():
        n += 1 + len(spec.get("fields", {}))
        n += _leaf_fields(spec)
    return n


@pytest.fixture(scope="module")
def loaded(
    corpus: Path, opensearch_backend: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The corpus files in a fresh cluster, loaded once for this module with both databases."""
    state = tmp_path_factory.mktemp("ecs-state")
    city, asn = write_databases(tmp_path_factory.mktemp("geoip"))
    url = opensearch_backend.fresh()
    run = backfill(
        str(corpus / "files"),
        url,
        state,
        "--include-insight",
        "--geoip-db",
        str(city),
        "--asn-db",
        str(asn),
    )
    assert (0, 27, 0) == (run.code, run.done["indexed"], run.done["deadlettered"]), run.stderr
    yield url
    opensearch_backend.release()


class TestEcsInTheIndex:
    @pytest.mark.parametrize(
        ("field", "value", "expected"),
        [
            # stored fields; the counts are the corpus files' 27 records (tests/fixtures/README.md)
            ("event.kind", "event", 27),
            ("event.category", "authentication", 8),  # 7 STS calls and jane.doe's sign-in
            ("event.type", "creation", 1),  # raj.patel's CreateSnapshot
            ("event.outcome", "failure", 4),
            ("user.name", "AWSReservedSSO_AdministratorAccess_7c1e2f9a4b3d5e60", 6),
            ("user.email", "jane.doe@example.com", 6),
            ("cloud.account.id", "444455556666", 3),
            ("cloud.provider", "aws", 27),
            ("cloud.service.name", "sts", 7),
            ("related.ip", "203.0.113.58", 5),  # alice.ops's chain
            ("related.user", "alice.ops", 1),
            ("related.entity", "arn:aws:iam::111122223333:role/DeployRole", 3),
            ("tls.version", "1.3", 15),
            ("tls.version_protocol", "tls", 20),
            ("user_agent.name", "aws-cli", 7),
            ("user_agent.os.name", "Mac OS X", 4),
            ("service.name", "ec2.amazonaws.com", 1),
            ("source.geo.country_iso_code", "GB", 8),  # 203.0.113.0/24 in the test database
            ("source.geo.city_name", "London", 8),
            ("source.as.number", 64500, 8),
            ("source.as.organization.name", "Example Transit", 8),
            # field aliases of CloudTrail fields
            ("user.id", "AIDA3QJBMWF2X3CBDYNQM", 1),
            ("event.action", "ConsoleLogin", 1),
            ("event.provider", "signin.amazonaws.com", 1),
            ("source.address", "203.0.113.58", 5),
            ("cloud.region", "eu-west-1", 5),
        ],
    )
    def test_term_query(self, loaded: str, field: str, value: Any, expected: int) -> None:
        """A term query on an ECS field finds the documents the corpus says it should."""
        assert expected == count(loaded, query=_term(field, value))

    def test_geo_location_is_a_geo_point(self, loaded: str) -> None:
        """source.geo.location answers a distance query around London."""
        near = {"geo_distance": {"distance": "10km", "source.geo.location": "51.5,-0.1"}}
        assert 8 == count(loaded, query=near)

    def test_field_count_stays_well_under_the_limit(self, loaded: str) -> None:
        """The mapping, ECS fields and aliases included, stays well under 1,000 fields."""
        client = OpenSearch(hosts=[loaded])
        try:
            mappings = client.indices.get_mapping(index="cloudtrail")
        finally:
            client.close()
        counts = {name: _leaf_fields(body["mappings"]) for name, body in mappings.items()}
        assert counts
        assert {} == {name: n for name, n in counts.items() if n >= 400}
