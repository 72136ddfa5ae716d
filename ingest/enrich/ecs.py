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
from typing import Any, NamedTuple

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
    response = record.get("responseElements")
    if isinstance(response, dict) and response.get("ConsoleLogin") == "Failure":
        return "failure"
    details = record.get("serviceEventDetails")
    if isinstance(details, dict) and details.get("UserAuthentication") == "Failure":
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
        version = ".".join(p for p in (ua.major, ua.minor, ua.patch, ua.patch_minor) if p)
        if version:
            out["version"] = version
    if os_ is not None and os_.family != _OTHER:
        version = ".".join(p for p in (os_.major, os_.minor, os_.patch, os_.patch_minor) if p)
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


_NO_UI: dict[str, Any] = {}  # an absent object, read only


def _strs(items: list[Any]) -> list[str]:
    """The non-empty strings of ``items``, each once, in order (a ``related.*`` list)."""
    out: list[str] = []
    for item in items:
        if item and isinstance(item, str) and item not in out:
            out.append(item)
    return out


class _Identity(NamedTuple):
    user: dict[str, Any]  # user.email and user.name
    users: tuple[str, ...]  # related.user, each once
    head: tuple[str, ...]  # related.entity before the access key, each once
    tail: tuple[str, ...]  # and after it, none of the head


@lru_cache(maxsize=4096)  # untyped: a value that is not a string counts as absent
def _identity(
    kind: Any,
    principal: Any,
    user_name: Any,
    issuer_name: Any,
    issuer_arn: Any,
    arn: Any,
) -> _Identity:
    """What ``user.*`` and ``related.*`` take from the identity (cached: a principal makes
    many calls; the access key, which changes with each session, is added by the caller)."""
    user: dict[str, Any] = {}
    name = _s(user_name)
    issuer_name = _s(issuer_name)
    users: list[Any] = [name]
    head: list[Any] = [name]  # an IAM user's own name identifies it, as the reference has it
    if name and _EMAIL.match(name):  # an IAM user (or Identity Center user) named by e-mail
        user["email"] = name
    if kind == "AssumedRole" and isinstance(principal, str) and ":" in principal:
        session = principal.split(":", 1)[1]
        if session:
            users.append(session)
        # the session is an entity only when it names a person by e-mail (IAM Identity
        # Center); an instance id or a tool's session name is not one (as the reference)
        if session and _EMAIL.match(session):
            head.append(session)
            user["email"] = session
            users.append(session.split("@", 1)[0])
    users += (principal, issuer_name)
    head.append(issuer_arn)
    # the reference reads userName, then lets the session issuer's (the role) win
    if issuer_name or name:
        user["name"] = issuer_name or name
    heads = _strs(head)
    # not the account: the reference names it only as a call's target (GetCallerIdentity)
    tail = [t for t in _strs([arn, issuer_name]) if t not in heads]
    return _Identity(user, tuple(_strs(users)), tuple(heads), tuple(tail))


def _add(values: list[str], item: Any) -> None:
    if item and isinstance(item, str) and item not in values:
        values.append(item)


def _user(
    ui: Mapping[str, Any],
    request: Mapping[str, Any],
    response: Mapping[str, Any],
    users: list[str],
    entities: list[str],
) -> dict[str, Any]:
    """``user.*`` (without ``user.id``, an alias of ``userIdentity.principalId``); adds what it
    finds for ``related.user`` and ``related.entity`` to ``users`` and ``entities``."""
    ctx = ui.get("sessionContext")
    issuer = ctx.get("sessionIssuer") if isinstance(ctx, dict) else None
    if not isinstance(issuer, dict):
        issuer = _NO_UI
    key = (
        ui.get("type"),
        ui.get("principalId"),
        ui.get("userName"),
        issuer.get("userName"),
        issuer.get("arn"),
        ui.get("arn"),
    )
    try:
        known = _identity(*key)
    except TypeError:  # an unhashable value (never in CloudTrail): not cached
        known = _identity.__wrapped__(*key)
    user = known.user
    users += known.users
    entities += known.head
    key_id = ui.get("accessKeyId")
    if key_id and isinstance(key_id, str) and key_id not in entities:
        entities.append(key_id)
        entities += (t for t in known.tail if t != key_id)
    else:
        entities += known.tail
    if not request and not response:  # most calls: nothing about another user or role
        return user
    target: dict[str, Any] = {}
    if target_name := _s(request.get("userName")):
        target["name"] = target_name
        _add(users, target_name)
    if target_id := _s(_m(response.get("user")).get("userId")):
        target["id"] = target_id
    if target:
        user = {**user, "target": target}
    if new_name := _s(request.get("newUserName")):
        user = {**user, "changes": {"name": new_name}}
        _add(users, new_name)
    return user


@lru_cache(maxsize=4096)
def _entity_paths(source: str, name: str) -> tuple[tuple[str, ...], ...]:
    """The ``[ecs.related_entity]`` paths of an event: its service's, then its own."""
    table = load_rules().ecs.related_entity
    return (*table.get(source, ()), *table.get(f"{source}:{name}", ()))


def _walk(value: Any, path: tuple[str, ...], entities: list[str]) -> None:
    """Adds the strings at ``path`` under ``value`` (``"[]"`` walks a list's items; a list of
    strings at the end adds each) to ``entities``."""
    for at, part in enumerate(path):
        if part == "[]":
            if isinstance(value, list):
                for item in value:
                    _walk(item, path[at + 1 :], entities)
            return
        if not isinstance(value, dict):
            return
        value = value.get(part)
    for item in value if isinstance(value, list) else (value,):
        _add(entities, item)


def _signed_in(extra: Any) -> dict[str, Any]:
    """``user.name`` (and ``user.email``) of an identity that names nobody, such as an
    ``IdentityCenterUser`` sign-in: the ``additionalEventData.UserName`` it signed in with."""
    name = _s(extra.get("UserName")) if isinstance(extra, dict) else None
    if name is None:
        return {}
    return {"name": name, "email": name} if _EMAIL.match(name) else {"name": name}


@lru_cache(maxsize=1024)  # untyped: a value that is not a string counts as absent
def _tls_of(version: Any, cipher: Any, host: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if version and isinstance(version, str) and "v" in version:
        protocol, _, number = version.partition("v")
        out.update(version=number, version_protocol=protocol.lower())
    if cipher and isinstance(cipher, str):
        out["cipher"] = cipher
    if host and isinstance(host, str):
        out["client"] = {"server_name": host}
    return out


def _tls(details: Mapping[str, Any]) -> dict[str, Any]:
    """``tls.*`` from ``tlsDetails`` (cached per value; the result is shared, do not change it)."""
    key = (
        details.get("tlsVersion"),
        details.get("cipherSuite"),
        details.get("clientProvidedHostHeader"),
    )
    try:
        return _tls_of(*key)
    except TypeError:  # an unhashable value (never a string): not cached
        return _tls_of.__wrapped__(*key)


@lru_cache(maxsize=8192)
def _event(source: str, name: str, result: str) -> dict[str, Any]:
    """``event.*`` (cached per event and outcome; the result is shared, do not change it)."""
    category, kind = categorize(source, name)
    return {"kind": "event", "category": list(category), "type": list(kind), "outcome": result}


@lru_cache(maxsize=4096)
def _cloud(account: str | None, source: str) -> dict[str, Any]:
    """``cloud.*`` (cached per account and service; the result is shared, do not change it)."""
    cloud: dict[str, Any] = (
        {"provider": "aws", "account": {"id": account}} if account else {"provider": "aws"}
    )
    if source.endswith(".amazonaws.com"):
        cloud["service"] = {"name": source.removesuffix(".amazonaws.com")}
    return cloud


def ecs_fields(record: Mapping[str, Any], ct: Mapping[str, Any]) -> dict[str, Any]:
    """The stored ECS fields of one record (see the module docstring for the aliases)."""
    get = record.get
    ui = get("userIdentity")
    if not isinstance(ui, dict):
        ui = _NO_UI
    source_name = get("eventSource")
    if not isinstance(source_name, str):
        source_name = ""
    event_name = get("eventName")
    out: dict[str, Any] = {
        "event": _event(
            source_name, event_name if isinstance(event_name, str) else "", outcome(record)
        )
    }
    request = get("requestParameters")
    if not isinstance(request, dict):
        request = _NO_UI
    response = get("responseElements")
    if not isinstance(response, dict):
        response = _NO_UI
    users: list[str] = []
    entities: list[str] = []
    if ui:
        user = _user(ui, request, response, users, entities)
        if "name" not in user and (signed_in := _signed_in(get("additionalEventData"))):
            user = {**user, **signed_in}
            _add(users, signed_in["name"])
        if user:
            out["user"] = user
    if request or response:
        group: dict[str, Any] = {}
        if group_name := _s(request.get("groupName")):
            group["name"] = group_name
        if group_id := _s(_m(response.get("group")).get("groupId")):
            group["id"] = group_id
        if group:
            out["group"] = group
    resources = get("resources")
    if isinstance(resources, list):
        for item in resources:
            if isinstance(item, dict):
                _add(entities, item.get("ARN"))
    for path in _entity_paths(source_name, event_name if isinstance(event_name, str) else ""):
        if (value := get(path[0])) is not None:
            _walk(value, path[1:], entities)

    out["cloud"] = _cloud(_s(get("recipientAccountId")) or _s(ui.get("accountId")), source_name)
    if ui.get("type") == "AWSService" and (invoked_by := _s(ui.get("invokedBy"))):
        out["service"] = {"name": invoked_by}

    address = None
    text = get("sourceIPAddress")
    if text and isinstance(text, str):
        address = _ip(text)
        if address is not None:
            out["source"] = {"ip": address, **geo_lookup(address)}
        elif _HOST.match(text):
            out["source"] = {"domain": text}

    agent = get("userAgent")
    if agent and isinstance(agent, str) and (parsed := user_agent(agent)):
        out["user_agent"] = parsed
    details = get("tlsDetails")
    if isinstance(details, dict) and (tls := _tls(details)):
        out["tls"] = tls
    related: dict[str, list[str]] = {}
    if users:
        related["user"] = users
    if address is not None:
        related["ip"] = [address]
    if entities:
        related["entity"] = entities
    if related:
        out["related"] = related
    return out
