"""Whether a call changed something, and whether it was a change made by hand in the console."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ingest.enrich.ecs import mfa_used
from ingest.enrich.rules import Rules, load_rules

__all__ = ["change", "is_write"]


def is_write(record: Mapping[str, Any], rules: Rules) -> bool:
    """Not ``readOnly``, not a Get/Describe/List/Head call, not a sign-in, not an Insight."""
    if record.get("readOnly") is True or record.get("readOnly") == "true":
        return False
    if (
        record.get("eventType") in rules.sign_in_types
        or record.get("eventType") in rules.not_write_types
    ):
        return False
    if record.get("eventSource") in rules.sign_in_sources:
        return False
    name = record.get("eventName")
    return isinstance(name, str) and bool(name) and not name.startswith(rules.read_prefixes)


def change(record: Mapping[str, Any], ct: Mapping[str, Any]) -> dict[str, Any]:
    rules = load_rules()
    write = is_write(record, rules)
    noise = bool(
        rules.clickops_noise.match(f"{record.get('eventSource')}:{record.get('eventName')}")
    )
    out: dict[str, Any] = {
        "is_write": write,
        "clickops": write and ct.get("tool") == "console" and not noise,
    }
    mfa = mfa_used(record)
    if mfa is not None:
        out["mfa_used"] = mfa
    return out
