"""Enrichment: pure functions that add namespaced fields (``ct.*`` and ECS fields) to a record.

Each enricher takes the record and the ``ct`` fields computed so far and returns new ``ct``
fields; :func:`enrich` runs them in order, each on its own, so one failing enricher costs only
its own fields (the failure is recorded in ``ct.enrich_errors`` and counted, the record is
still indexed). The rules (noise lists, user-agent markers, resource keys) are data, in
``rules.toml``; the fields are documented in ``mappings/README.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ingest.enrich.actor import actor
from ingest.enrich.change import change
from ingest.enrich.ecs import ecs_fields
from ingest.enrich.flat import flat
from ingest.enrich.resource import resource
from ingest.enrich.tool import tool

__all__ = ["ENRICHERS", "Enricher", "Enrichment", "enrich"]

Record = Mapping[str, Any]
Enricher = Callable[[Record, Mapping[str, Any]], Mapping[str, Any]]

ENRICHERS: tuple[tuple[str, Enricher], ...] = (
    ("actor", actor),
    ("tool", tool),
    ("change", change),
    ("resource", resource),
    ("flat", flat),
)


class Enrichment:
    """The fields to add to one document: the ``ct`` namespace, ECS fields, and any failures."""

    __slots__ = ("ct", "ecs", "errors")

    def __init__(self) -> None:
        self.ct: dict[str, Any] = {}
        self.ecs: dict[str, Any] = {}
        self.errors: list[str] = []


def enrich(record: Record, enrichers: tuple[tuple[str, Enricher], ...] | None = None) -> Enrichment:
    """Run every enricher (default: :data:`ENRICHERS`) on ``record``; never raises."""
    out = Enrichment()
    for name, fn in ENRICHERS if enrichers is None else enrichers:
        try:
            out.ct.update(fn(record, out.ct))
        except Exception as exc:
            out.errors.append(f"{name}: {type(exc).__name__}: {exc}"[:500])
    try:
        out.ecs = ecs_fields(record, out.ct)
    except Exception as exc:
        out.errors.append(f"ecs: {type(exc).__name__}: {exc}"[:500])
    return out
