"""ECS fields with the semantics of Elastic's AWS CloudTrail integration, so that prebuilt rules
and dashboards written against it answer on our index.

Only derived values are stored here; fields whose value is a CloudTrail field as written
(``event.action`` → ``eventName``, ``user.id`` → ``userIdentity.principalId``,
``source.address`` → ``sourceIPAddress`` …) are field aliases in the index template and must
not appear in the document. ``event.category`` and ``event.type`` come from the ``[ecs]``
table in ``rules.toml``. The field table is in ``mappings/README.md``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from ua_parser import parse as _parse_ua

from ingest.enrich.geo import lookup as geo_lookup
from ingest.enrich.rules import load_rules

__all__ = ["categorize", "ecs_fields", "mfa_used", "outcome", "user_agent"]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_HOST = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_OTHER = "Other"


def outcome(record: Mapping[str, Any]) -> str:
    """``failure`` for an error or a failed sign-in, else ``success`` (Insights too)."""
    if record.get("errorCode"):
        return "failure"
    for holder, key in (
        ("responseElements", "ConsoleLogin"),
        ("serviceEventDetails", "UserAuthentication"),
    ):
        value = record.get(holder)
        if isinstance(value, dict) and value.get(key) == "Failure":
            return "failure"
    return "success"


def mfa_used(record: Mapping[str, Any]) -> bool | None:
    """For console sign-ins: whether MFA was used (``additionalEventData.MFAUsed``)."""
    if record.get("eventName") != "ConsoleLogin":
        return None
    extra = record.get("additionalEventData")
    used = extra.get("MFAUsed") if isinstance(extra, dict) else None
    return used == "Yes" if isinstance(used, str) else None


@lru_cache(maxsize=8192)
def _ip(text: str) -> str | None:
    """The normalised address, or None for "AWS Internal", "ec2.amazonaws.com" and the like."""
    if not text or not (text[0].isdigit() or ":" in text):
        return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


@lru_cache(maxsize=4096)
def categorize(source: str, name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(event.category, event.type)`` of an event, by the ``[ecs]`` rules."""
    rules = load_rules().ecs
    key = f"{source}:{name}"
    row = next((r for r in rules.events if r.match.match(key)), None)
    category = (row.category if row else None) or rules.source_category.get(
        source, rules.default_category
    )
    kind = row.type if row else None
    if kind is None:
        prefix = next((t for p, t in rules.type_prefixes if name.startswith(p)), None)
        kind = (prefix,) if prefix else rules.default_type
    entity = row.entity if row else ()
    return category, (*entity, *(k for k in kind if k not in entity))


@lru_cache(maxsize=4096)
def user_agent(text: str) -> dict[str, Any]:
    """``user_agent.name/version/os/device`` parsed from a user-agent string (cached per
    string; the result is shared, so callers must not change it)."""
    parsed = _parse_ua(text)
    out: dict[str, Any] = {}
    ua, os_, device = parsed.user_agent, parsed.os, parsed.device
    if ua is not None and ua.family != _OTHER:
        out["name"] = ua.family
        version = ".".join(p for p in (ua.major, ua.minor, ua.patch) if p)
        if version:
            out["version"] = version
    if os_ is not None and os_.family != _OTHER:
        version = ".".join(p for p in (os_.major, os_.minor, os_.patch) if p)
        out["os"] = {"name": os_.family}
        if version:
            out["os"].update(version=version, full=f"{os_.family} {version}")
    if device is not None and device.family != _OTHER:
        out["device"] = {"name": device.family}
    return out


def _s(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _m(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _add(values: list[str], *items: str | None) -> None:
    for item in items:
        if item and item not in values:
            values.append(item)


def _user(record: Mapping[str, Any], ui: Mapping[str, Any], related: dict[str, list[str]]) -> Any:
    """``user.*`` (without ``user.id``, an alias of ``userIdentity.principalId``)."""
    user: dict[str, Any] = {}
    users, entities = related["user"], related["entity"]
    ctx = _m(ui.get("sessionContext"))
    issuer = _m(ctx.get("sessionIssuer"))
    principal = _s(ui.get("principalId"))
    name = _s(ui.get("userName"))
    issuer_name = _s(issuer.get("userName"))
    session = None
    if ui.get("type") == "AssumedRole" and principal and ":" in principal:
        session = principal.split(":", 1)[1] or None
    _add(users, name)
    if session:
        _add(users, session)
        _add(entities, session)
        if _EMAIL.match(session):
            user["email"] = session
            _add(users, session.split("@", 1)[0])
    _add(users, principal, issuer_name)
    _add(
        entities,
        _s(issuer.get("arn")),
        _s(ui.get("accessKeyId")),
        _s(ui.get("arn")),
        issuer_name,
        _s(ui.get("accountId")),
    )
    # the reference reads userName, then lets the session issuer's (the role) win
    if issuer_name or name:
        user["name"] = issuer_name or name
    request = _m(record.get("requestParameters"))
    response = _m(record.get("responseElements"))
    target: dict[str, Any] = {}
    if target_name := _s(request.get("userName")):
        target["name"] = target_name
        _add(users, target_name)
    if target_id := _s(_m(response.get("user")).get("userId")):
        target["id"] = target_id
    if target:
        user["target"] = target
    if new_name := _s(request.get("newUserName")):
        user["changes"] = {"name": new_name}
        _add(users, new_name)
    _add(entities, _s(request.get("roleArn")))
    return user


def _tls(details: Any) -> dict[str, Any]:
    if not isinstance(details, dict):
        return {}
    out: dict[str, Any] = {}
    version = _s(details.get("tlsVersion"))
    if version and "v" in version:
        protocol, _, number = version.partition("v")
        out.update(version=number, version_protocol=protocol.lower())
    if cipher := _s(details.get("cipherSuite")):
        out["cipher"] = cipher
    if host := _s(details.get("clientProvidedHostHeader")):
        out["client"] = {"server_name": host}
    return out


def ecs_fields(record: Mapping[str, Any], ct: Mapping[str, Any]) -> dict[str, Any]:
    """The stored ECS fields of one record (see the module docstring for the aliases)."""
    ui = _m(record.get("userIdentity"))
    source_name = _s(record.get("eventSource")) or ""
    event_name = _s(record.get("eventName")) or ""
    category, kind = categorize(source_name, event_name)
    event: dict[str, Any] = {
        "kind": "event",
        "category": list(category),
        "type": list(kind),
        "outcome": outcome(record),
    }
    out: dict[str, Any] = {"event": event}

    related: dict[str, list[str]] = {"user": [], "ip": [], "entity": []}
    if ui:
        user = _user(record, ui, related)
        if user:
            out["user"] = user
    request = _m(record.get("requestParameters"))
    group: dict[str, Any] = {}
    if group_name := _s(request.get("groupName")):
        group["name"] = group_name
    if group_id := _s(_m(_m(record.get("responseElements")).get("group")).get("groupId")):
        group["id"] = group_id
    if group:
        out["group"] = group
    resources = record.get("resources")
    if isinstance(resources, list):
        for item in resources:
            if isinstance(item, dict):
                _add(related["entity"], _s(item.get("ARN")))

    cloud: dict[str, Any] = {"provider": "aws"}
    account = _s(record.get("recipientAccountId")) or _s(ui.get("accountId"))
    if account:
        cloud["account"] = {"id": account}
    if source_name.endswith(".amazonaws.com"):
        cloud["service"] = {"name": source_name.removesuffix(".amazonaws.com")}
    out["cloud"] = cloud
    invoked_by = _s(ui.get("invokedBy"))
    if ui.get("type") == "AWSService" and invoked_by:
        out["service"] = {"name": invoked_by}

    text = _s(record.get("sourceIPAddress"))
    if text:
        address = _ip(text)
        if address is not None:
            source: dict[str, Any] = {"ip": address, **geo_lookup(address)}
            related["ip"].append(address)
            out["source"] = source
        elif _HOST.match(text):
            out["source"] = {"domain": text}

    agent = _s(record.get("userAgent"))
    if agent:
        parsed = user_agent(agent)
        if parsed:
            out["user_agent"] = parsed
    tls = _tls(record.get("tlsDetails"))
    if tls:
        out["tls"] = tls
    kept = {k: v for k, v in related.items() if v}
    if kept:
        out["related"] = kept
    return out
