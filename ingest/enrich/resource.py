"""The primary resource of an event: one identifier (an ARN where one can be built) and its type."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from ingest.enrich.rules import ResourceRule, Rules, load_rules

__all__ = ["primary_resource", "resource"]

_Table = dict[str, tuple[tuple[str, tuple[str, ...], ResourceRule], ...]]


def _dig(value: Any, path: Sequence[str]) -> Any:
    for step in path:
        if isinstance(value, list):
            value = value[0] if value else None
        if isinstance(value, dict):
            value = value.get(step)
        else:
            return None
    if isinstance(value, list):
        value = value[0] if value else None
    return value


@lru_cache(maxsize=4)
def _table(rules: Rules) -> _Table:
    """Each source's rules as (top-level field, the rest of the path, rule)."""
    return {
        source: tuple((rule.path[0], rule.path[1:], rule) for rule in found)
        for source, found in rules.resources.items()
    }


_Keys = tuple[str, ...] | bool  # a payload's keys; True: not an object but there; False: absent


def _keys(payload: Any) -> _Keys:
    return tuple(payload) if payload.__class__ is dict else payload is not None


@lru_cache(maxsize=4096)
def _candidates(
    rules: Rules, source: str, request: _Keys, response: _Keys
) -> tuple[tuple[str, tuple[str, ...], ResourceRule], ...]:
    """The rules of ``source`` that can yield a value for a record whose payloads have these
    keys (cached: a call's payloads have the same keys call after call): a rule whose first
    step is not in its payload cannot."""
    table = _table(rules)
    payloads = {"requestParameters": request, "responseElements": response}
    return tuple(
        (top, rest, rule)
        for top, rest, rule in table.get(source) or table["*"]
        if (keys := payloads.get(top, True)) is True
        or (keys is not False and (not rest or rest[0] in keys))
    )


def primary_resource(record: Mapping[str, Any], rules: Rules) -> tuple[str, str | None] | None:
    """``(id, type)`` from ``resources[]``, else from the first rule for the event source."""
    listed = record.get("resources")
    if isinstance(listed, list):
        for item in listed:
            if isinstance(item, dict) and isinstance(item.get("ARN"), str) and item["ARN"]:
                kind = item.get("type")
                return item["ARN"], kind if isinstance(kind, str) else None
    source = record.get("eventSource")
    if not isinstance(source, str):
        return None
    for top, rest, rule in _candidates(
        rules, source, _keys(record.get("requestParameters")), _keys(record.get("responseElements"))
    ):
        value = record.get(top)
        if value is None:
            continue
        if len(rest) == 1 and value.__class__ is dict:  # the common shape, without the walk
            value = value.get(rest[0])
            if value is None:
                continue
            if isinstance(value, list):
                value = value[0] if value else None
        else:
            value = _dig(value, rest)
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value:
            continue
        if value.startswith("arn:"):
            return value, rule.type
        account = record.get("recipientAccountId") or ""
        region = record.get("awsRegion") or ""
        return rule.id.format(value=value, account=account, region=region), rule.type
    return None


def resource(record: Mapping[str, Any], ct: Mapping[str, Any]) -> dict[str, Any]:
    found = primary_resource(record, load_rules())
    if found is None:
        return {}
    rid, kind = found
    return {"resource": {"id": rid, "type": kind} if kind else {"id": rid}}
