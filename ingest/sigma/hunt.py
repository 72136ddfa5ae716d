"""Run converted Sigma rules on the index: hits per rule in a time window, with a few example
events each (time, API call, actor, source IP, the S3 object the record came from).

One search per rule, with ``track_total_hits`` so that the count is exact. A rule that reads the
payloads (``ct.flat.*``) on a cluster without ``flat_object`` (OpenSearch before 2.7,
Elasticsearch 7.10: the payloads are kept in ``_source`` but not searchable) is reported as an
error for that rule, not as zero hits; so is a query the cluster refuses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from rich.table import Table

from ingest.cluster import opensearch_errors
from ingest.errors import SinkError
from ingest.sigma.convert import Converted
from ingest.sigma.pipeline import FLAT_PREFIX

__all__ = ["Example", "Hunted", "flat_searchable", "hunt", "hunt_rule", "render_table"]

_SOURCE = [
    "@timestamp",
    "eventName",
    "eventSource",
    "sourceIPAddress",
    "ct.actor.name",
    "ct.object",
]
_NO_FLAT = (
    "the rule reads payload fields (requestParameters, responseElements, additionalEventData), "
    "which this cluster cannot search: it has no flat_object type (OpenSearch before 2.7, "
    "Elasticsearch 7.10)"
)


@dataclass(frozen=True)
class Example:
    """One event a rule found."""

    timestamp: str
    event_name: str
    actor: str
    source_ip: str
    file: str


@dataclass(frozen=True)
class Hunted:
    """A rule's outcome: its hits and examples, or why it could not run."""

    rule: Converted
    hits: int
    examples: tuple[Example, ...]
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        head = {"rule": self.rule.rule, "id": self.rule.id, "title": self.rule.title}
        if self.error is not None:
            return {**head, "error": self.error}
        return {
            **head,
            "level": self.rule.level,
            "hits": self.hits,
            "examples": [e.__dict__ for e in self.examples],
        }


def _example(hit: dict[str, Any]) -> Example:
    src = hit.get("_source", {})
    ct = src.get("ct", {})
    return Example(
        timestamp=str(src.get("@timestamp", "")),
        event_name=f"{src.get('eventSource', '').split('.')[0]}:{src.get('eventName', '')}",
        actor=str(ct.get("actor", {}).get("name") or ""),
        source_ip=str(src.get("sourceIPAddress", "")),
        file=str(ct.get("object", "")),
    )


def _reads_payloads(query: dict[str, Any]) -> bool:
    return f'"{FLAT_PREFIX}'.encode() in orjson.dumps(query)


def flat_searchable(client: Any, alias: str) -> bool:
    """Whether the indices behind ``alias`` map the payload copies as ``flat_object`` (true too
    when there is no index yet: nothing to say against it)."""
    with opensearch_errors(f"mapping of {alias}"):
        res = client.indices.get_field_mapping(
            index=alias, fields="ct.flat.request", params={"ignore_unavailable": "true"}
        )
    if not res:
        return True
    for index in res.values():
        spec = index.get("mappings", {}).get("ct.flat.request", {}).get("mapping", {})
        if spec.get("request", {}).get("type") == "flat_object":
            return True
    return False


def hunt_rule(
    client: Any,
    rule: Converted,
    *,
    alias: str,
    since: datetime,
    until: datetime,
    examples: int = 3,
) -> Hunted:
    """The hits of one converted rule in ``[since, until)`` and its newest ``examples``."""
    if rule.query is None:
        return Hunted(rule, 0, (), rule.error or "not converted")
    window = {"range": {"@timestamp": {"gte": since.isoformat(), "lt": until.isoformat()}}}
    body = {
        "size": examples,
        "track_total_hits": True,
        "query": {"bool": {"filter": [rule.query, window]}},
        "sort": [{"@timestamp": {"order": "desc"}}],
        "_source": _SOURCE,
    }
    try:
        with opensearch_errors(f"search {alias} for rule {rule.id}"):
            res = client.search(index=alias, body=body, params={"ignore_unavailable": "true"})
    except SinkError as exc:
        return Hunted(rule, 0, (), f"the cluster refused the query: {exc}")
    total = res["hits"]["total"]
    hits = int(total["value"] if isinstance(total, dict) else total)
    return Hunted(rule, hits, tuple(_example(h) for h in res["hits"]["hits"]))


def hunt(
    client: Any,
    rules: Sequence[Converted],
    *,
    alias: str,
    since: datetime,
    until: datetime,
    examples: int = 3,
) -> list[Hunted]:
    """Every rule's hits, in the order given; rules that need payload search get an error on a
    cluster that cannot do it."""
    flat = flat_searchable(client, alias)
    out = []
    for rule in rules:
        if rule.query is not None and not flat and _reads_payloads(rule.query):
            out.append(Hunted(rule, 0, (), _NO_FLAT))
        else:
            one = hunt_rule(client, rule, alias=alias, since=since, until=until, examples=examples)
            out.append(one)
    return out


def render_table(found: Sequence[Hunted]) -> Table:
    """Rules with hits first (most hits first), each with its examples; then the rest."""
    table = Table("rule", "level", "hits", "examples (time, call, actor, source IP, file)")
    for one in sorted(found, key=lambda h: (h.error is not None, -h.hits)):
        name = f"{one.rule.title}\n{one.rule.id}"
        if one.error is not None:
            table.add_row(name, one.rule.level or "", "error", one.error)
            continue
        lines = [
            f"{e.timestamp}  {e.event_name}  {e.actor or '-'}  {e.source_ip or '-'}  {e.file}"
            for e in one.examples
        ]
        table.add_row(name, one.rule.level or "", f"{one.hits:,}", "\n".join(lines))
    return table
