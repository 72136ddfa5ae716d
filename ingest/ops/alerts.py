"""OpenSearch Alerting monitors, installed the way the Alerting and Notifications plugins take
them.

The monitors: four from ``mappings/alerts/`` (more than N ClickOps events in 24 h, a console
write to a resource matching a pattern, any root-user activity, console sign-ins without MFA)
and, with ``setup --sigma DIR``, one query monitor per Sigma rule (``sigma-rule.json`` around
the rule's query: its title, level as the trigger's severity, and tags). They post to one
webhook channel of the Notifications plugin.

Reruns update, never duplicate:

- the channel has a fixed ``config_id`` (:func:`channel_id`): updated with
  ``PUT _plugins/_notifications/configs/<id>``, created with ``POST`` (that id in the body)
  when the update answers 404;
- the Alerting plugin gives a new monitor an id of its own, so each monitor carries a stable
  key in ``ui_metadata.ct_ingest`` (the file's name, or ``sigma:<rule id>``, and the alias):
  a rerun reads every monitor, finds ours by that key, and updates it with
  ``PUT _plugins/_alerting/monitors/<id>``. Monitors of an earlier version (no key) are found
  by their names.

As the plugins answer: Alerting before 3.2 has no monitors index until the first monitor
exists, and its monitor search answers 404 ``index_not_found_exception`` meanwhile: no
monitors yet (3.2 answers an empty search). Whether a plugin is there at all is not read from
an error but asked beforehand (``ingest.targets.detect_plugins``). A monitor the plugin
refuses (a 400, or a 500 for a field it does not know) is a :class:`~ingest.errors.SinkError`
naming the monitor; any other failure comes out of the OpenSearch boundary
(:func:`ingest.cluster.opensearch_errors`) as :class:`~ingest.errors.SinkUnavailable` or
:class:`~ingest.errors.SinkError`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

import orjson

from ingest.cluster import opensearch_errors
from ingest.errors import SinkError

if TYPE_CHECKING:  # pySigma is imported only where rules are converted
    from ingest.sigma.convert import Converted

__all__ = [
    "MONITOR_FILES",
    "SEVERITY",
    "Installed",
    "channel_id",
    "install_alerts",
    "install_channel",
    "install_monitors",
    "monitor_key",
    "monitor_query",
    "render_monitors",
    "sigma_monitors",
]

MONITOR_FILES = (
    "clickops-volume.json",
    "console-write-to-resource.json",
    "root-activity.json",
    "console-signin-without-mfa.json",
)
# Sigma's levels as the Alerting plugin's trigger severities ("1" highest .. "5" lowest).
SEVERITY = {"critical": "1", "high": "2", "medium": "3", "low": "4", "informational": "5"}
_ALERTING = "/_plugins/_alerting/monitors"
_CONFIGS = "/_plugins/_notifications/configs"
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
# What monitors of versions before the ui_metadata key were called: name -> key.
_LEGACY_NAMES = (
    (re.compile(r"ct-ingest: more than \d+ ClickOps events in 24 h"), "clickops-volume"),
    (re.compile(r"ct-ingest: console write to .*"), "console-write-to-resource"),
    (re.compile(r"ct-ingest: root user activity"), "root-activity"),
    (re.compile(r"ct-ingest: console sign-in without MFA"), "console-signin-without-mfa"),
)


@dataclass(frozen=True, slots=True)
class Installed:
    """What one installation did."""

    created: int = 0
    updated: int = 0

    def __str__(self) -> str:
        return f"{self.created} created, {self.updated} updated"


def _render(name: str, values: dict[str, str]) -> dict[str, Any]:
    """A file of ``mappings/alerts/`` with its ``{placeholders}`` filled in (JSON-escaped)."""
    text = resources.files("ingest.mappings").joinpath("alerts", name).read_text()

    def fill(match: re.Match[str]) -> str:
        if match[1] not in values:
            return match[0]
        return orjson.dumps(values[match[1]]).decode()[1:-1]

    body: dict[str, Any] = orjson.loads(_PLACEHOLDER.sub(fill, text))
    return body


def _without_actions(monitor: dict[str, Any]) -> dict[str, Any]:
    for trigger in monitor["triggers"]:
        trigger["query_level_trigger"]["actions"] = []
    return monitor


def render_monitors(
    *,
    alias: str,
    threshold: int = 20,
    resource_pattern: str = "*:db:*prod*",
    lookback: str = "10m",
    channel_id: str = "",
) -> list[dict[str, Any]]:
    """The four monitor bodies, with their placeholders filled in; without a channel, their
    triggers have no actions (the alerts show in the Alerting dashboard only)."""
    values = {
        "alias": alias,
        "threshold": str(threshold),
        "resource_pattern": resource_pattern,
        "lookback": lookback,
        "channel_id": channel_id,
    }
    out = [_render(name, values) for name in MONITOR_FILES]
    return out if channel_id else [_without_actions(m) for m in out]


def sigma_monitors(
    rules: Iterable[Converted], *, alias: str, lookback: str = "10m", channel_id: str = ""
) -> tuple[list[dict[str, Any]], list[str]]:
    """One query monitor per converted rule, and a line for each rule that has none (not
    converted, or converted twice under one id)."""
    monitors: list[dict[str, Any]] = []
    skipped: list[str] = []
    seen: set[str] = set()
    for rule in rules:
        if rule.query is None:
            why = " ".join((rule.error or "no query").split())  # one line
            skipped.append(f"sigma: {rule.rule}: not converted: {why}")
            continue
        if rule.id in seen:
            skipped.append(f"sigma: {rule.rule}: skipped: rule id {rule.id} seen before")
            continue
        seen.add(rule.id)
        level = (rule.level or "medium").lower()
        monitor = _render(
            "sigma-rule.json",
            {
                "title": rule.title,
                "alias": alias,
                "lookback": lookback,
                "severity": SEVERITY.get(level, "3"),
                "level": level,
                "tags": ", ".join(rule.tags) or "no tags",
                "channel_id": channel_id,
                "rule_id": rule.id,
                "rule": rule.rule,
            },
        )
        monitor_query(monitor)["query"]["bool"]["filter"].append(rule.query)
        monitor["ui_metadata"]["ct_ingest"]["tags"] = list(rule.tags)
        monitors.append(monitor if channel_id else _without_actions(monitor))
    return monitors, skipped


def monitor_query(monitor: dict[str, Any]) -> dict[str, Any]:
    """The search a monitor runs (for tests and for dry runs)."""
    query: dict[str, Any] = monitor["inputs"][0]["search"]["query"]
    return query


def monitor_key(monitor: dict[str, Any]) -> tuple[str, str] | None:
    """A monitor's stable key (alias, key) from its ``ui_metadata``; for a monitor of an
    earlier version, from its name; None for a monitor that is not ct-ingest's."""
    meta = (monitor.get("ui_metadata") or {}).get("ct_ingest")
    if isinstance(meta, dict) and "key" in meta:
        return str(meta.get("alias", "")), str(meta["key"])
    name = str(monitor.get("name", ""))
    for pattern, key in _LEGACY_NAMES:
        if pattern.fullmatch(name):
            indices = monitor.get("inputs", [{}])[0].get("search", {}).get("indices", [""])
            return str(indices[0]), key
    return None


def channel_id(alias: str) -> str:
    """The webhook channel's fixed ``config_id`` (letters, digits, ``_`` and ``-`` only, as
    the Notifications plugin requires)."""
    return "ct-ingest-" + re.sub(r"[^A-Za-z0-9_-]", "-", alias) + "-webhook"


def _refusal(exc: Any) -> str:
    """The reason an OpenSearch error body gives (root cause first), or its status."""
    info = exc.info if isinstance(exc.info, dict) else {}
    error = info.get("error")
    if isinstance(error, dict):
        causes = error.get("root_cause") or [error]
        return str(causes[0].get("reason") or error.get("type"))[:300]
    return str(error or exc.error)[:300]


def install_channel(client: Any, *, alias: str, webhook: str) -> str:
    """Create or update the webhook channel; its ``config_id``."""
    from opensearchpy.exceptions import NotFoundError

    config_id = channel_id(alias)
    config = {
        "name": f"ct-ingest {alias} webhook",
        "description": "ct-ingest alerts",
        "config_type": "webhook",
        "is_enabled": True,
        "webhook": {"url": webhook},
    }
    with opensearch_errors(f"alerts: webhook channel {config_id}"):
        try:
            client.transport.perform_request(
                "PUT", f"{_CONFIGS}/{config_id}", body={"config": config}
            )
        except NotFoundError:
            client.transport.perform_request(
                "POST", _CONFIGS, body={"config_id": config_id, "config": config}
            )
    return config_id


def _existing(client: Any) -> dict[tuple[str, str], str]:
    """Our monitors on the cluster: stable key -> monitor id."""
    from opensearchpy.exceptions import NotFoundError

    body = {"size": 10_000, "query": {"bool": {"filter": [{"term": {"monitor.type": "monitor"}}]}}}
    with opensearch_errors("alerts: search the monitors"):
        try:
            found = client.transport.perform_request("POST", f"{_ALERTING}/_search", body=body)
        except NotFoundError as exc:
            if exc.error != "index_not_found_exception":
                raise
            return {}  # Alerting before 3.2: no monitors index before the first monitor
    out: dict[tuple[str, str], str] = {}
    for hit in found.get("hits", {}).get("hits", []):
        source = hit.get("_source") or {}
        key = monitor_key(source.get("monitor", source))
        if key is not None:
            out.setdefault(key, hit["_id"])
    return out


def install_monitors(client: Any, monitors: Sequence[dict[str, Any]]) -> Installed:
    """Create the monitors not on the cluster yet and update those that are (by key)."""
    from opensearchpy.exceptions import TransportError

    existing = _existing(client)
    created = updated = 0
    for monitor in monitors:
        key = monitor_key(monitor)
        found = existing.get(key) if key is not None else None
        what = f"alerts: monitor {monitor['name']!r}"
        with opensearch_errors(what):
            try:
                if found is None:
                    client.transport.perform_request("POST", _ALERTING, body=monitor)
                    created += 1
                else:
                    client.transport.perform_request("PUT", f"{_ALERTING}/{found}", body=monitor)
                    updated += 1
            except TransportError as exc:
                if exc.status_code in (400, 500):  # the plugin refused the body
                    raise SinkError(
                        f"{what} refused (HTTP {exc.status_code}): {_refusal(exc)}"
                    ) from exc
                raise
    return Installed(created, updated)


def install_alerts(
    client: Any, *, channel: str, alias: str, threshold: int, resource_pattern: str
) -> str:
    """Create or update the four monitors, posting to the webhook channel ``channel`` (see
    :func:`install_channel`); a one-line account."""
    monitors = render_monitors(
        alias=alias, threshold=threshold, resource_pattern=resource_pattern, channel_id=channel
    )
    done = install_monitors(client, monitors)
    return f"alerts: {len(monitors)} monitors ({done}), posting to webhook channel {channel}"
