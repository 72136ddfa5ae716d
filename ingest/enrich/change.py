"""Whether a call changed something, and whether it was a change made by hand in the console."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from ingest.enrich.ecs import mfa_used
from ingest.enrich.rules import Rules, load_rules

__all__ = ["change", "is_write"]


def _write_by_type(record: Mapping[str, Any], rules: Rules) -> bool:
    """Not ``readOnly``, not a sign-in, not an Insight."""
    if record.get("readOnly") is True or record.get("readOnly") == "true":
        return False
    kind = record.get("eventType")
    return kind not in rules.sign_in_types and kind not in rules.not_write_types


def _write_by_event(rules: Rules, source: Any, name: Any) -> bool:
    """Not a sign-in service, not a Get/Describe/List/Head call."""
    if source in rules.sign_in_sources:
        return False
    return isinstance(name, str) and bool(name) and not name.startswith(rules.read_prefixes)


def is_write(record: Mapping[str, Any], rules: Rules) -> bool:
    """Not ``readOnly``, not a Get/Describe/List/Head call, not a sign-in, not an Insight."""
    return _write_by_type(record, rules) and _write_by_event(
        rules, record.get("eventSource"), record.get("eventName")
    )


@lru_cache(maxsize=8192, typed=True)
def _by_event(rules: Rules, source: Any, name: Any) -> tuple[bool, bool]:
    """(a write as far as its source and name tell, console plumbing): cached per event."""
    noise = bool(rules.clickops_noise.match(f"{source}:{name}"))
    return _write_by_event(rules, source, name), noise


def change(record: Mapping[str, Any], ct: Mapping[str, Any]) -> dict[str, Any]:
    rules = load_rules()
    source, name = record.get("eventSource"), record.get("eventName")
    try:
        by_event: bool | None
        by_event, noise = _by_event(rules, source, name)
    except TypeError:  # an unhashable source or name (never in CloudTrail): not cached
        by_event, noise = None, bool(rules.clickops_noise.match(f"{source}:{name}"))
    write = _write_by_type(record, rules) and (
        _write_by_event(rules, source, name) if by_event is None else by_event
    )
    out: dict[str, Any] = {
        "is_write": write,
        "clickops": write and ct.get("tool") == "console" and not noise,
    }
    mfa = mfa_used(record)
    if mfa is not None:
        out["mfa_used"] = mfa
    return out
