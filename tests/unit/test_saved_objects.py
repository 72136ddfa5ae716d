"""Every field a dashboard, saved search or alert monitor uses exists in the index template,
and every field they aggregate on is aggregatable."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

from ingest.ops.alerts import monitor_query, render_monitors
from ingest.ops.dashboards import saved_objects

_KUERY_FIELD = re.compile(r"([A-Za-z_@][\w.@]*)\s*:")


def _mapping() -> dict[str, str]:
    """dotted field name -> type, from the components and the index template."""
    out: dict[str, str] = {}

    def walk(props: dict[str, Any], prefix: str) -> None:
        for name, spec in props.items():
            full = f"{prefix}{name}"
            if "properties" in spec:
                walk(spec["properties"], f"{full}.")
            else:
                out[full] = spec.get("type", "object")
                for sub, sspec in spec.get("fields", {}).items():
                    out[f"{full}.{sub}"] = sspec["type"]

    base = resources.files("ingest.mappings")
    for part in ("component-cloudtrail.json", "component-enrichment.json", "index-template.json"):
        body = json.loads(base.joinpath(part).read_text())
        walk(body["template"].get("mappings", {}).get("properties", {}), "")
    return out


def _exists(field: str, mapping: dict[str, str]) -> bool:
    if field in mapping:
        return True
    return any(field.startswith(f"{f}.") for f, t in mapping.items() if t == "flat_object")


def _query_fields(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("term", "terms", "range", "wildcard", "prefix", "match") and isinstance(
                value, dict
            ):
                found.update(value)
            elif key == "exists" and isinstance(value, dict):
                found.add(value["field"])
            elif key == "sort" and isinstance(value, list):
                found.update(k for item in value for k in item)
            else:
                found |= _query_fields(value)
    elif isinstance(node, list):
        for item in node:
            found |= _query_fields(item)
    return found


class TestSavedObjects:
    def test_dashboard_fields_exist_and_aggregate(self) -> None:
        """Fields in visualizations, queries, columns and sorts are in the mapping; terms and
        histograms only use aggregatable types."""
        mapping = _mapping()
        used, aggregated = set(), set()
        for obj in saved_objects():
            attrs = obj["attributes"]
            meta = attrs.get("kibanaSavedObjectMeta", {}).get("searchSourceJSON")
            if meta:
                used.update(_KUERY_FIELD.findall(json.loads(meta)["query"]["query"]))
            if obj["type"] == "visualization":
                for agg in json.loads(attrs["visState"])["aggs"]:
                    if "field" in agg["params"]:
                        aggregated.add(agg["params"]["field"])
            if obj["type"] == "search":
                used.update(attrs["columns"])
                used.update(s[0] for s in attrs["sort"])
            if obj["type"] == "index-pattern":
                used.add(attrs["timeFieldName"])
        used |= aggregated
        assert set() == {f for f in used if not _exists(f, mapping)}
        assert set() == {f for f in aggregated if mapping[f] in ("text", "flat_object", "object")}
        assert {
            "ct.clickops",
            "ct.actor.name",
            "ct.resource.id",
            "ct.tool_group",
            "ct.mfa_used",
        } <= used

    def test_dashboards_reference_only_objects_that_exist(self) -> None:
        """Every panel and index reference points at an object in the file."""
        objects = saved_objects()
        ids = {(o["type"], o["id"]) for o in objects}
        refs = {(r["type"], r["id"]) for o in objects for r in o["references"]}
        assert set() == refs - ids
        assert {"ct-clickops", "ct-activity"} == {
            o["id"] for o in objects if o["type"] == "dashboard"
        }

    def test_index_pattern_follows_the_alias(self) -> None:
        """The index pattern's title is the configured alias."""
        [pattern] = [o for o in saved_objects("audit") if o["type"] == "index-pattern"]
        assert "audit" == pattern["attributes"]["title"]

    def test_monitor_fields_exist(self) -> None:
        """The four monitors query only mapped fields and fill in their settings."""
        mapping = _mapping()
        monitors = render_monitors(alias="cloudtrail", threshold=7, resource_pattern='*:db:"x"*')
        assert 4 == len(monitors)
        fields = set().union(*(_query_fields(monitor_query(m)) for m in monitors))
        assert set() == {f for f in fields if not _exists(f, mapping)}
        assert (
            "ctx.results[0].hits.total.value > 7"
            == (monitors[0]["triggers"][0]["query_level_trigger"]["condition"]["script"]["source"])
        )
        assert (
            '*:db:"x"*'
            == monitor_query(monitors[1])["query"]["bool"]["filter"][2]["wildcard"][
                "ct.resource.id"
            ]["value"]
        )


_VIS_DEFAULTS: dict[str, dict[str, Any]] = json.loads(
    (Path(__file__).parents[2] / "mappings" / "dashboards" / "vis-type-defaults.json").read_text()
)["types"]


def _missing(default: dict[str, Any], given: dict[str, Any], prefix: str = "") -> list[str]:
    """The keys (dotted, nested objects included) of ``default`` that ``given`` lacks."""
    out = []
    for key, value in default.items():
        if key not in given:
            out.append(f"{prefix}{key}")
        elif isinstance(value, dict) and value and isinstance(given[key], dict):
            out += _missing(value, given[key], f"{prefix}{key}.")
    return out


class TestSeriesParams:
    def test_the_shipped_defaults_are_opensearch_dashboards_own(self) -> None:
        """Area and line series defaults hold every key OSD's vislib types give a series."""
        keys = {"show", "type", "mode", "data", "valueAxis", "drawLinesBetweenPoints",
                "lineWidth", "showCircles", "interpolate"}  # fmt: skip
        for vtype in ("area", "line"):
            (series,) = _VIS_DEFAULTS[vtype]["seriesParams"]
            assert keys == set(series)
            assert (True, {"id": "1", "label": "Count"}) == (series["show"], series["data"])
        assert {"area", "line", "histogram", "horizontal_bar"} == set(_VIS_DEFAULTS)

    def test_every_point_series_visualization_has_complete_params(self) -> None:
        """Each area and bar chart carries every param its type defaults to, and each series
        entry every key of the default entry: shown, on a value axis the chart declares, for
        a metric it computes (OSD skips a series entry without show: true)."""
        checked = set()
        for obj in saved_objects():
            state = json.loads(obj["attributes"].get("visState", '{"type": ""}'))
            if state["type"] not in _VIS_DEFAULTS:
                continue
            defaults, params = _VIS_DEFAULTS[state["type"]], state["params"]
            assert [] == _missing(defaults, params), obj["id"]
            metrics = {a["id"] for a in state["aggs"] if a["schema"] == "metric"}
            axes = {a["id"] for a in params["valueAxes"]}
            for entry in params["seriesParams"]:
                assert [] == _missing(defaults["seriesParams"][0], entry), obj["id"]
                assert (True, True, True) == (
                    entry["show"],
                    entry["data"]["id"] in metrics,
                    entry["valueAxis"] in axes,
                ), obj["id"]
            checked.add(obj["id"])
        assert {"ct-changes-by-tool", "ct-clickops-over-time", "ct-root-activity",
                "ct-clickops-by-service-account"} == checked  # fmt: skip
