"""ECS-style fields that existing queries use. Most are field aliases in the mapping
(``event.action`` → ``eventName`` …); the two here need computing."""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Mapping
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
        if isinstance(value, Mapping) and value.get(key) == "Failure":
            return "failure"
    return "success"


def mfa_used(record: Mapping[str, Any]) -> bool | None:
    """For console sign-ins: whether MFA was used (``additionalEventData.MFAUsed``)."""
    if record.get("eventName") != "ConsoleLogin":
        return None
    extra = record.get("additionalEventData")
    used = extra.get("MFAUsed") if isinstance(extra, Mapping) else None
    return used == "Yes" if isinstance(used, str) else None


def ecs_fields(record: Mapping[str, Any], ct: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"event": {"outcome": outcome(record)}}
    ip = record.get("sourceIPAddress")
    if isinstance(ip, str):
        with contextlib.suppress(ValueError):  # "AWS Internal", "ec2.amazonaws.com", ...
            out["source"] = {"ip": str(ipaddress.ip_address(ip))}
    return out
