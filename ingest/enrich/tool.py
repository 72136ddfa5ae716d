"""How a call was made: console, an IaC tool, the CLI, an SDK (with its language), a service."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from ingest.enrich.rules import Rules, load_rules

__all__ = ["classify_tool", "tool"]


def classify_tool(record: Mapping[str, Any], rules: Rules) -> tuple[str, str | None] | None:
    """``(tool, sdk language)``; ``None`` for records no caller made (Insights)."""
    if record.get("eventType") == "AwsCloudTrailInsight":
        return None
    ui = record.get("userIdentity")
    ui = ui if isinstance(ui, dict) else {}
    ua = record.get("userAgent")
    invoked_by = ui.get("invokedBy")
    return _classify(
        rules,
        invoked_by if isinstance(invoked_by, str) else "",
        record.get("sessionCredentialFromConsole") in ("true", True),
        ua if isinstance(ua, str) else "",
        ui.get("type") == "AWSService",
    )


@lru_cache(maxsize=4096)
def _classify(
    rules: Rules, invoked_by: str, from_console: bool, ua: str, aws_service: bool
) -> tuple[str, str | None]:
    """:func:`classify_tool` on the few values it reads (cached: they repeat)."""
    if invoked_by in rules.cloudformation_invokers:
        return "cloudformation", None
    if from_console:
        return "console", None
    for name, marker in rules.iac:
        if marker in ua:
            return name, None
    if any(marker in ua for marker in rules.cli):
        return "aws-cli", None
    if any(marker in ua for marker in rules.console_user_agents) or ua.endswith(
        rules.console_user_agent_suffix
    ):
        return "console", None
    if aws_service or ua == "AWS Internal" or (ua.endswith(".amazonaws.com") and " " not in ua):
        return "aws-service", None
    for language, marker in rules.sdk:
        if marker in ua:
            return "sdk", language
    return "other", None


@lru_cache(maxsize=64)
def _fields(rules: Rules, found: tuple[str, str | None]) -> dict[str, Any]:
    name, language = found
    out: dict[str, Any] = {"tool": name, "tool_group": rules.groups.get(name, "other")}
    if language:
        out["tool_language"] = language
    return out


def tool(record: Mapping[str, Any], ct: Mapping[str, Any]) -> dict[str, Any]:
    """``ct.tool``, ``ct.tool_group`` and ``ct.tool_language`` (a shared dict: do not change
    it)."""
    rules = load_rules()
    found = classify_tool(record, rules)
    return {} if found is None else _fields(rules, found)
