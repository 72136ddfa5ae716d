"""The Alerting 2.x and Notifications plugins, emulated for the fault proxy (tests only).

No OpenSearch with these plugins runs here, and osmem-server has neither, so
:class:`PluginsEmulation` answers their REST APIs as their sources do (opensearch-project's
``alerting``, ``notifications`` and ``common-utils``: the REST handlers, ``Monitor.parse``,
``Action.parse``, ``Throttle.parse``, ``AlertingException.wrap``,
``ConfigIndexingActions``), for what ct-ingest uses:

- ``GET _cat/plugins``: one row per component of a one-node cluster;
- the monitors: ``POST _plugins/_alerting/monitors`` (the plugin picks the id; 201),
  ``PUT .../<id>`` (404 for an unknown one), ``GET .../<id>``, and ``_search``, which on
  Alerting before 3.2 answers 404 ``index_not_found_exception`` until the first monitor exists
  (the monitors live in the ``.opendistro-alerting-config`` index, created with it); a body
  ``Monitor.parse`` refuses is a 400 (a missing or malformed field) or a 500 (a field an
  action does not know), as ``AlertingException.wrap`` maps them;
- the Notifications channels: ``POST _plugins/_notifications/configs`` (with or without a
  ``config_id``; 409 when that id exists), ``PUT .../<id>`` (404 when it does not),
  ``GET .../<id>``.

The search evaluates the subset of the query language ct-ingest sends (``match_all``,
``bool`` filters, ``term``) against the stored document, and refuses any other query.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = ["PLUGINS", "PluginsEmulation"]

PLUGINS = (
    "opensearch-alerting",
    "opensearch-job-scheduler",
    "opensearch-notifications",
    "opensearch-notifications-core",
)
_MONITORS = "/_plugins/_alerting/monitors"
_CONFIGS = "/_plugins/_notifications/configs"
_INDEX = ".opendistro-alerting-config"
_ACTION_FIELDS = {
    "id", "name", "destination_id", "subject_template", "message_template",
    "throttle_enabled", "throttle", "action_execution_policy",
}  # fmt: skip
_MONITOR_TYPE = re.compile(r"[a-zA-Z_]*")
_CONFIG_TYPES = {"slack", "chime", "microsoft_teams", "webhook", "email", "sns", "ses_account"}
_VALID_ID = re.compile(r"[A-Za-z0-9+/_-]+")

Answer = tuple[int, Any]


class _Refused(Exception):
    """A request the plugin refuses: its status and the reason it gives."""

    def __init__(self, status: int, reason: str, etype: str = "alerting_exception") -> None:
        super().__init__(reason)
        self.status, self.reason, self.etype = status, reason, etype

    def answer(self) -> Answer:
        error = {"root_cause": [{"type": self.etype, "reason": self.reason}], "type": self.etype}
        error["reason"] = self.reason
        return self.status, {"error": error, "status": self.status}


def _require(ok: object, reason: str, status: int = 400) -> None:
    # Kotlin's require()/requireNotNull(): IllegalArgumentException, a 400 once wrapped;
    # status 500: any other exception (IllegalStateException, a lateinit never set).
    if not ok:
        raise _Refused(status, reason)


def _check_action(action: Any) -> None:
    _require(isinstance(action, dict), "Action is not an object", 500)
    unknown = set(action) - _ACTION_FIELDS
    _require(not unknown, f"Unexpected field: {sorted(unknown)}, while parsing action", 500)
    for name in ("name", "destination_id", "message_template"):
        _require(action.get(name) is not None, f"Action {name} is null")
    throttle = action.get("throttle")
    if action.get("throttle_enabled"):
        _require(throttle is not None, "Action throttle enabled but not set throttle value")
    if throttle is not None:
        _require(set(throttle) <= {"value", "unit"}, "Unexpected field, while parsing action", 500)
        unit = str(throttle.get("unit", "MINUTES")).upper()
        _require(unit == "MINUTES", "Only support MINUTES throttle unit currently")
        value = throttle.get("value")
        _require(value is not None, "Throttle value can't be null")
        _require(isinstance(value, int) and value > 0, "Can only set positive throttle period")


def _check_trigger(trigger: Any) -> None:
    inner = trigger.get("query_level_trigger") if isinstance(trigger, dict) else None
    if not isinstance(inner, dict):
        raise _Refused(400, "Illegal trigger type for query level monitor")
    for name in ("name", "severity", "condition"):
        _require(name in inner, f"lateinit property {name} has not been initialized", 500)
    script = (inner["condition"] or {}).get("script") or {}
    _require(
        script.get("lang", "painless") == "painless",
        "Invalid script language. Allowed languages are [painless]",
    )
    actions = inner.get("actions", [])
    _require(
        isinstance(actions, list), "Failed to parse object: expecting token of type [START_ARRAY]"
    )
    for action in actions:
        _check_action(action)


def check_monitor(body: Any) -> None:
    """Refuse what ``Monitor.parse`` and the index handler refuse (query-level monitors)."""
    _require(isinstance(body, dict), "Failed to parse object: expecting START_OBJECT")
    _require(isinstance(body.get("name"), str), "Monitor name is null")
    monitor_type = str(body.get("monitor_type", "query_level_monitor"))
    _require(_MONITOR_TYPE.fullmatch(monitor_type), "Monitor type should follow pattern", 500)
    period = (body.get("schedule") or {}).get("period") or {}
    _require(isinstance(period.get("interval"), int), "Monitor schedule is null")
    inputs = body.get("inputs")
    _require(
        isinstance(inputs, list), "Failed to parse object: expecting token of type [START_ARRAY]"
    )
    for item in inputs:
        search = item.get("search") if isinstance(item, dict) else None
        _require(isinstance(search, dict) and "indices" in search, "Invalid input type")
    triggers = body.get("triggers")
    _require(
        isinstance(triggers, list), "Failed to parse object: expecting token of type [START_ARRAY]"
    )
    for trigger in triggers:
        _check_trigger(trigger)


def _matches(query: dict[str, Any], doc: dict[str, Any]) -> bool:
    """Whether ``doc`` matches ``query`` (match_all, bool filter/must, term)."""
    (kind, spec), *more = query.items()
    if more or kind not in ("match_all", "bool", "term"):
        raise _Refused(400, f"query [{kind}] is not emulated", "parsing_exception")
    if kind == "bool":
        clauses = [*spec.get("filter", []), *spec.get("must", [])]
        return all(_matches(c, doc) for c in clauses)
    if kind == "term":
        ((path, want),) = spec.items()
        want = want.get("value") if isinstance(want, dict) else want
        node: Any = doc
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return bool(node == want)
    return True


@dataclass
class PluginsEmulation:
    """Alerting 2.x and Notifications, their state kept for the test to read."""

    monitors: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> stored doc
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)  # config_id -> config
    calls: list[tuple[str, str]] = field(default_factory=list)  # (method, path) in order
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, method: str, path: str, body: bytes) -> Answer | None:
        """The plugins' answer to a request, or None where it is not theirs."""
        if path == "/_cat/plugins" and method == "GET":
            return 200, [{"name": "node-1", "component": c, "version": "2.11.0.0"} for c in PLUGINS]
        if not path.startswith((_MONITORS, _CONFIGS)):
            return None
        with self._lock:
            self.calls.append((method, path))
            try:
                parsed = orjson.loads(body) if body else {}
                if path.startswith(_MONITORS):
                    return self._monitor(method, path[len(_MONITORS) :], parsed)
                return self._config(method, path[len(_CONFIGS) :], parsed)
            except _Refused as refused:
                return refused.answer()

    # -- Alerting ----------------------------------------------------------------------------
    def _hit(self, mid: str) -> dict[str, Any]:
        doc = self.monitors[mid]
        return {"_id": mid, "_version": doc["_version"], "_seq_no": doc["_seq_no"],
                "_primary_term": 1, "monitor": doc["monitor"]}  # fmt: skip

    def _monitor(self, method: str, rest: str, body: Any) -> Answer:
        if rest == "/_search" and method in ("GET", "POST"):
            if not self.monitors:  # Alerting < 3.2: the index is made with the first monitor
                reason = f"no such index [{_INDEX}]"
                raise _Refused(404, reason, "index_not_found_exception")
            hits = [
                {"_index": _INDEX, "_score": 1.0, **self._hit(mid), "_source": doc["monitor"]}
                for mid, doc in self.monitors.items()
                if _matches(body.get("query", {"match_all": {}}), doc)
            ]
            size = int(body.get("size", 10))
            total = {"value": len(hits), "relation": "eq"}
            return 200, {"timed_out": False, "hits": {"total": total, "hits": hits[:size]}}
        mid = rest.lstrip("/")
        if method == "GET" and mid:
            if mid not in self.monitors:
                raise _Refused(404, "Monitor not found.", "status_exception")
            return 200, self._hit(mid)
        if (method, bool(mid)) not in (("POST", False), ("PUT", True)):
            raise _Refused(405, f"no handler for [{method} {rest}]", "illegal_argument_exception")
        check_monitor(body)
        if method == "PUT" and mid not in self.monitors:
            raise _Refused(404, f"Monitor with {mid} is not found", "status_exception")
        now = int(time.time() * 1000)
        monitor = {"type": "monitor", "schema_version": 8, "monitor_type": "query_level_monitor",
                   **body, "last_update_time": now}  # fmt: skip
        monitor.setdefault("enabled_time", now if monitor.get("enabled", True) else None)
        version = self.monitors[mid]["_version"] + 1 if mid else 1
        mid = mid or uuid.uuid4().hex[:20]
        seq = sum(d["_version"] for d in self.monitors.values())
        self.monitors[mid] = {"_version": version, "_seq_no": seq, "monitor": monitor}
        return (201 if method == "POST" else 200), self._hit(mid)

    # -- Notifications -----------------------------------------------------------------------
    def _config(self, method: str, rest: str, body: Any) -> Answer:
        cid = rest.lstrip("/")
        if method == "GET" and cid:
            if cid not in self.configs:
                raise _Refused(404, f"NotificationConfig {cid} not found", "status_exception")
            item = {"config_id": cid, "last_updated_time_ms": 0, "created_time_ms": 0,
                    "config": self.configs[cid]}  # fmt: skip
            return 200, {"start_index": 0, "total_hits": 1, "total_hit_relation": "eq",
                         "config_list": [item]}  # fmt: skip
        if (method, bool(cid)) not in (("POST", False), ("PUT", True)):
            raise _Refused(405, f"no handler for [{method} {rest}]", "illegal_argument_exception")
        config = body.get("config")
        if not isinstance(config, dict):
            raise _Refused(400, "config field absent")
        _require(config.get("config_type") in _CONFIG_TYPES, "Invalid config type", 400)
        url = str((config.get(config["config_type"]) or {}).get("url", ""))
        _require(url.startswith(("http://", "https://")), "Invalid URL or unsupported", 400)
        if method == "PUT":
            if cid not in self.configs:
                raise _Refused(404, f"NotificationConfig {cid} not found", "status_exception")
            if self.configs[cid]["config_type"] != config["config_type"]:
                raise _Refused(
                    409, "Config type cannot be changed after creation", "status_exception"
                )
        else:
            cid = str(body.get("config_id") or uuid.uuid4().hex[:20])
            _require(_VALID_ID.fullmatch(cid), f"Invalid characters in id : {cid}")
            if cid in self.configs:
                reason = f"[{cid}]: version conflict, document already exists"
                raise _Refused(409, reason, "version_conflict_engine_exception")
        self.configs[cid] = config
        return 200, {"config_id": cid}
