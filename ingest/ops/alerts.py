"""OpenSearch Alerting monitors from ``mappings/alerts/``, and their installation with a webhook.

Four query monitors: more than N ClickOps events in 24 h, a console write to a resource matching
a pattern (e.g. production RDS), any root-user activity, and console sign-ins without MFA. Each
posts to one webhook channel (Slack, Teams, any URL) through the Notifications plugin. Clusters
without the Alerting plugin are told about in one line, and setup carries on; any other failure
comes out of the OpenSearch boundary (:func:`ingest.cluster.opensearch_errors`) as
:class:`~ingest.errors.SinkUnavailable` or :class:`~ingest.errors.SinkError`.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import orjson

from ingest.cluster import opensearch_errors

__all__ = ["MONITOR_FILES", "install_alerts", "monitor_query", "render_monitors"]

MONITOR_FILES = (
    "clickops-volume.json",
    "console-write-to-resource.json",
    "root-activity.json",
    "console-signin-without-mfa.json",
)


def _escape(value: str) -> str:
    return orjson.dumps(value).decode()[1:-1]


def render_monitors(
    *,
    alias: str,
    threshold: int = 20,
    resource_pattern: str = "*:db:*prod*",
    lookback: str = "10m",
    channel_id: str = "",
) -> list[dict[str, Any]]:
    """The monitor bodies, with their placeholders filled in."""
    values = {
        "alias": alias,
        "threshold": str(threshold),
        "resource_pattern": resource_pattern,
        "lookback": lookback,
        "channel_id": channel_id,
    }
    out = []
    for name in MONITOR_FILES:
        text = resources.files("ingest.mappings").joinpath("alerts", name).read_text()
        for key, value in values.items():
            text = text.replace("{" + key + "}", _escape(value))
        out.append(orjson.loads(text))
    return out


def monitor_query(monitor: dict[str, Any]) -> dict[str, Any]:
    """The search a monitor runs (for tests and for dry runs)."""
    query: dict[str, Any] = monitor["inputs"][0]["search"]["query"]
    return query


def install_alerts(
    client: Any, *, webhook: str, alias: str, threshold: int, resource_pattern: str
) -> str:
    """Create the webhook channel and create or update the monitors; a one-line account."""
    from opensearchpy.exceptions import TransportError

    with opensearch_errors("alerts: install the webhook channel and the monitors"):
        try:
            channel = client.transport.perform_request(
                "POST",
                "/_plugins/_notifications/configs",
                body={
                    "config": {
                        "name": f"ct-ingest {alias} webhook",
                        "description": "ct-ingest alerts",
                        "config_type": "webhook",
                        "is_enabled": True,
                        "webhook": {"url": webhook},
                    }
                },
            )
            channel_id = channel["config_id"]
            existing = client.transport.perform_request(
                "POST",
                "/_plugins/_alerting/monitors/_search",
                body={"size": 100, "query": {"prefix": {"monitor.name.keyword": "ct-ingest: "}}},
            )
            by_name = {
                h["_source"]["name"]: h["_id"] for h in existing.get("hits", {}).get("hits", [])
            }
            for monitor in render_monitors(
                alias=alias,
                threshold=threshold,
                resource_pattern=resource_pattern,
                channel_id=channel_id,
            ):
                if monitor["name"] in by_name:
                    client.transport.perform_request(
                        "PUT",
                        f"/_plugins/_alerting/monitors/{by_name[monitor['name']]}",
                        body=monitor,
                    )
                else:
                    client.transport.perform_request(
                        "POST", "/_plugins/_alerting/monitors", body=monitor
                    )
        except TransportError as exc:
            if exc.status_code in (400, 404, 405):
                return (
                    f"alerts: this cluster has no Alerting/Notifications plugin "
                    f"(HTTP {exc.status_code}); no monitors installed"
                )
            raise  # translated by the boundary
    return (
        f"alerts: {len(MONITOR_FILES)} monitors installed, posting to webhook channel {channel_id}"
    )
