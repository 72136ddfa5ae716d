#!/usr/bin/env python3
"""Write mappings/dashboards/cloudtrail.ndjson: the OpenSearch Dashboards saved objects
(index pattern, visualizations, saved searches, the ClickOps and Activity dashboards).

The NDJSON is the artefact users import (``ct-ingest setup --dashboards URL``); this script is
how it is kept readable and consistent. Point-series visualizations (area, line, vertical and
horizontal bars) carry their type's complete defaults from ``vis-type-defaults.json`` (OpenSearch
Dashboards' own), with each ``seriesParams`` entry completed from the default entry: a saved
entry replaces the default one whole, and one without ``show: true`` draws nothing. Run it after
changing a visualization:

    python scripts/make_dashboards.py
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parents[1] / "mappings" / "dashboards"
OUT = HERE / "cloudtrail.ndjson"
DEFAULTS: dict[str, dict[str, Any]] = json.loads((HERE / "vis-type-defaults.json").read_text())[
    "types"
]
PATTERN = "ct-ingest-cloudtrail"
REF = [
    {"name": "kibanaSavedObjectMeta.searchSourceJSON.index", "type": "index-pattern", "id": PATTERN}
]


def source(query: str = "", filters: list[dict[str, object]] | None = None) -> str:
    return json.dumps(
        {
            "indexRefName": "kibanaSavedObjectMeta.searchSourceJSON.index",
            "query": {"query": query, "language": "kuery"},
            "filter": filters or [],
        }
    )


def terms(field: str, size: int = 10, schema: str = "segment", aid: str = "2") -> dict[str, object]:
    return {
        "id": aid,
        "enabled": True,
        "type": "terms",
        "schema": schema,
        "params": {
            "field": field,
            "size": size,
            "order": "desc",
            "orderBy": "1",
            "otherBucket": False,
            "missingBucket": False,
        },
    }


def histogram(aid: str = "2") -> dict[str, object]:
    return {
        "id": aid,
        "enabled": True,
        "type": "date_histogram",
        "schema": "segment",
        "params": {
            "field": "@timestamp",
            "interval": "auto",
            "min_doc_count": 1,
            "extended_bounds": {},
        },
    }


COUNT = {"id": "1", "enabled": True, "type": "count", "schema": "metric", "params": {}}


def point_series(vtype: str, params: dict[str, Any]) -> dict[str, Any]:
    """The type's default params with ``params`` over them; each ``seriesParams`` entry given
    is completed from the default entry (its ``data`` too)."""
    out = copy.deepcopy(DEFAULTS[vtype])
    given = dict(params)
    series = given.pop("seriesParams", None)
    out.update(given)
    if isinstance(series, list):
        (default,) = out["seriesParams"]
        out["seriesParams"] = [
            {**default, **entry, "data": {**default["data"], **entry.get("data", {})}}
            for entry in series
        ]
    return out


def vis(
    vid: str,
    title: str,
    vtype: str,
    aggs: list[dict[str, object]],
    query: str,
    params: dict[str, object] | None = None,
) -> dict[str, object]:
    state = {
        "title": title,
        "type": vtype,
        "aggs": [COUNT, *aggs],
        "params": point_series(vtype, params or {})
        if vtype in DEFAULTS
        else {"addTooltip": True, "addLegend": True, "legendPosition": "right", **(params or {})},
    }
    return {
        "type": "visualization",
        "id": vid,
        "attributes": {
            "title": title,
            "visState": json.dumps(state),
            "uiStateJSON": "{}",
            "description": "",
            "version": 1,
            "kibanaSavedObjectMeta": {"searchSourceJSON": source(query)},
        },
        "references": REF,
    }


def search(sid: str, title: str, query: str, columns: list[str]) -> dict[str, object]:
    return {
        "type": "search",
        "id": sid,
        "attributes": {
            "title": title,
            "description": "",
            "columns": columns,
            "sort": [["@timestamp", "desc"]],
            "version": 1,
            "kibanaSavedObjectMeta": {"searchSourceJSON": source(query)},
        },
        "references": REF,
    }


def dashboard(
    did: str, title: str, panels: list[tuple[str, str]], description: str
) -> dict[str, object]:
    panel_json, refs = [], []
    for i, (ptype, pid) in enumerate(panels):
        panel_json.append(
            {
                "panelIndex": str(i),
                "gridData": {"x": (i % 2) * 24, "y": (i // 2) * 15, "w": 24, "h": 15, "i": str(i)},
                "embeddableConfig": {},
                "version": "2.17.1",
                "panelRefName": f"panel_{i}",
            }
        )
        refs.append({"name": f"panel_{i}", "type": ptype, "id": pid})
    return {
        "type": "dashboard",
        "id": did,
        "attributes": {
            "title": title,
            "description": description,
            "panelsJSON": json.dumps(panel_json),
            "optionsJSON": json.dumps({"hidePanelTitles": False, "useMargins": True}),
            "version": 1,
            "timeRestore": False,
            "kibanaSavedObjectMeta": {
                "searchSourceJSON": json.dumps(
                    {"query": {"query": "", "language": "kuery"}, "filter": []}
                )
            },
        },
        "references": refs,
    }


COLUMNS = [
    "ct.actor.name",
    "eventName",
    "ct.resource.id",
    "recipientAccountId",
    "awsRegion",
    "sourceIPAddress",
    "event.outcome",
]
CLICKOPS = "ct.clickops:true"

objects: list[dict[str, object]] = [
    {
        "type": "index-pattern",
        "id": PATTERN,
        "attributes": {"title": "cloudtrail", "timeFieldName": "@timestamp"},
        "references": [],
    },
    # ClickOps
    vis(
        "ct-clickops-over-time",
        "ClickOps: console writes over time",
        "histogram",
        [histogram()],
        CLICKOPS,
    ),
    vis(
        "ct-clickops-by-user",
        "ClickOps: by user",
        "table",
        [terms("ct.actor.name", 20, "bucket")],
        CLICKOPS,
    ),
    vis(
        "ct-clickops-by-resource",
        "ClickOps: by resource",
        "table",
        [terms("ct.resource.id", 20, "bucket"), terms("ct.resource.type", 5, "bucket", "3")],
        CLICKOPS,
    ),
    vis(
        "ct-clickops-by-service-account",
        "ClickOps: by service and account",
        "horizontal_bar",
        [terms("eventSource", 15), terms("recipientAccountId", 10, "group", "3")],
        CLICKOPS,
    ),
    search("ct-clickops-latest", "ClickOps: latest console writes", CLICKOPS, COLUMNS),
    vis(
        "ct-changes-by-tool",
        "Changes by tool: console vs IaC vs CLI/SDK",
        "area",
        [histogram(), terms("ct.tool_group", 6, "group", "3")],
        "ct.is_write:true",
        {"seriesParams": [{"data": {"id": "1"}, "mode": "stacked", "type": "area"}]},  # completed
    ),
    # Activity / investigation
    vis("ct-events-by-tool", "Activity: events by tool", "pie", [terms("ct.tool", 10)], ""),
    vis(
        "ct-events-by-service",
        "Activity: events by service",
        "table",
        [terms("eventSource", 25, "bucket")],
        "",
    ),
    vis(
        "ct-failures-by-principal",
        "Activity: failed calls by principal",
        "table",
        [terms("ct.actor.name", 20, "bucket"), terms("errorCode", 10, "bucket", "3")],
        "event.outcome:failure",
    ),
    vis(
        "ct-signins-mfa",
        "Activity: console sign-ins with and without MFA",
        "pie",
        [terms("ct.mfa_used", 2)],
        "eventName:ConsoleLogin",
    ),
    vis(
        "ct-root-activity",
        "Activity: root user",
        "histogram",
        [histogram(), terms("eventName", 10, "group", "3")],
        "ct.actor.type:root",
    ),
    vis(
        "ct-top-source-ips",
        "Activity: top source IPs",
        "table",
        [terms("sourceIPAddress", 20, "bucket")],
        "",
    ),
    search(
        "ct-all-records",
        "Activity: all CloudTrail records",
        "",
        [
            "ct.actor.name",
            "eventSource",
            "eventName",
            "ct.tool",
            "recipientAccountId",
            "awsRegion",
            "sourceIPAddress",
            "errorCode",
        ],
    ),
]
objects += [
    dashboard(
        "ct-clickops",
        "CloudTrail: ClickOps",
        [
            ("visualization", "ct-clickops-over-time"),
            ("visualization", "ct-changes-by-tool"),
            ("visualization", "ct-clickops-by-user"),
            ("visualization", "ct-clickops-by-resource"),
            ("visualization", "ct-clickops-by-service-account"),
            ("search", "ct-clickops-latest"),
        ],
        "Changes made by hand in the AWS console, and the share of console vs IaC vs CLI/SDK.",
    ),
    dashboard(
        "ct-activity",
        "CloudTrail: activity and investigation",
        [
            ("visualization", "ct-events-by-tool"),
            ("visualization", "ct-events-by-service"),
            ("visualization", "ct-failures-by-principal"),
            ("visualization", "ct-signins-mfa"),
            ("visualization", "ct-root-activity"),
            ("visualization", "ct-top-source-ips"),
            ("search", "ct-all-records"),
        ],
        "Who did what, from where; failures, sign-ins, root.",
    ),
]

OUT.parent.mkdir(parents=True, exist_ok=True)
OUT.write_text("".join(json.dumps(o, sort_keys=True) + "\n" for o in objects))
print(f"wrote {len(objects)} saved objects to {OUT}")
