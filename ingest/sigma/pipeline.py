"""The pySigma processing pipeline for ct-ingest's index: Sigma's CloudTrail field names mapped to
where ct-ingest indexes them.

CloudTrail's top-level fields and ``userIdentity.*`` keep their names; an alias of the template
resolves to the field it points at, and a ``text`` field (``userAgent``, ``errorMessage``) is
matched on its ``keyword`` sub-field, so that a value with spaces is one term. The payloads are
not mapped field by field: ``requestParameters.x`` is looked up in the ``flat_object`` copy
``ct.flat.request.x`` (:mod:`ingest.enrich.flat`), and a bare ``requestParameters`` is the whole
copy, whose every leaf value a ``contains`` searches. A few names SigmaHQ's rules use that
CloudTrail does not write are read as what they mean (``status`` as ``event.outcome``,
``src_ip`` as ``source.ip``, ``src_country`` as ``source.geo.country_iso_code``). Rules for
any log source other than ``product: aws, service: cloudtrail`` fail with a message saying so.

pySigma finds the pipeline as ``ct_ingest`` (``sigma.pipelines.ct_ingest``, shipped with the
package), e.g. ``sigma convert -p ct_ingest``.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from importlib import resources
from typing import Any

import orjson
from sigma.processing.conditions import LogsourceCondition
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from sigma.processing.transformations import (
    FieldFunctionTransformation,
    RuleFailureTransformation,
)

from ingest.enrich.flat import PAYLOADS

__all__ = ["FLAT_PREFIX", "field_types", "index_field", "pipeline"]

FLAT_PREFIX = "ct.flat."
_MAPPINGS = ("component-cloudtrail.json", "component-enrichment.json", "index-template.json")
# Names some SigmaHQ CloudTrail rules use that CloudTrail does not write, to the field that
# holds what they mean: the call's outcome, the caller's address and country.
_GENERIC = {
    "status": "event.outcome",
    "src_ip": "source.ip",
    "src_country": "source.geo.country_iso_code",
}
_NOT_CLOUDTRAIL = (
    "not a CloudTrail rule: ct-ingest's index holds logsource product: aws, service: cloudtrail"
)


def _leaves(properties: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    for name, spec in properties.items():
        if "properties" in spec:
            yield from _leaves(spec["properties"], f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", spec


@cache
def _specs() -> dict[str, dict[str, Any]]:
    """Every field the templates map (aliases included), by path, with its mapping."""
    out: dict[str, dict[str, Any]] = {}
    for name in _MAPPINGS:
        body = orjson.loads(resources.files("ingest.mappings").joinpath(name).read_bytes())
        out.update(_leaves(body["template"]["mappings"].get("properties", {})))
    return out


@cache
def field_types() -> dict[str, str]:
    """Index field path -> its type, for the fields a rule's mapped names can be (no aliases, no
    payload paths: those are the ``flat_object`` copies; ``text`` fields as their ``keyword``)."""
    out: dict[str, str] = {}
    for path, spec in _specs().items():
        target = index_field(path)
        if target == path:
            out[path] = spec["type"]
        elif target == f"{path}.keyword":
            out[target] = "keyword"
    return out


def index_field(name: str) -> str:
    """Where ct-ingest indexes the CloudTrail field ``name`` (unknown names stay as they are)."""
    head, dot, rest = name.partition(".")
    if name in _GENERIC:
        return _GENERIC[name]
    if head in PAYLOADS:
        return f"{FLAT_PREFIX}{PAYLOADS[head]}{dot}{rest}"
    spec = _specs().get(name)
    if spec is None:
        return name
    if spec["type"] == "alias":
        return index_field(spec["path"])
    if spec["type"] == "text" and "keyword" in spec.get("fields", {}):
        return f"{name}.keyword"
    return name


def _map(name: str | None) -> str:
    return index_field(name) if name else ""  # pySigma passes no None (apply_keyword is off)


def pipeline() -> ProcessingPipeline:
    """The pipeline: CloudTrail rules only, field names mapped to ct-ingest's index."""
    return ProcessingPipeline(
        name="ct-ingest CloudTrail index",
        priority=20,
        items=[
            ProcessingItem(
                identifier="ct_ingest_cloudtrail_only",
                transformation=RuleFailureTransformation(_NOT_CLOUDTRAIL),
                rule_conditions=[LogsourceCondition(product="aws", service="cloudtrail")],
                rule_condition_negation=True,
            ),
            ProcessingItem(
                identifier="ct_ingest_fields",
                transformation=FieldFunctionTransformation(mapping={}, transform_func=_map),
            ),
        ],
    )
