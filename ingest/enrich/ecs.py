"""ECS-style fields that existing queries use. Most are field aliases in the mapping
(``event.action`` → ``eventName`` …); the two here need computing."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

__all__ = ["ecs_fields", "mfa_used", "outcome"]


def outcome(record: Mapping[str, Any]) -> str:
    if record.get("eventType") == "AwsCloudTrailInsight":
        return "unknown"
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


def ecs_fields(record: Mapping[str, Any], ct: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"event": {"outcome": outcome(record)}}
    ip = record.get("sourceIPAddress")
    address = _ip(ip) if isinstance(ip, str) else None
    if address is not None:
        out["source"] = {"ip": address}
    return out
