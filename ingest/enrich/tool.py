"""How a call was made: console, an IaC tool, the CLI, an SDK (with its language), a service."""

from __future__ import annotations

from collections.abc import Mapping
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
    ua = ua if isinstance(ua, str) else ""
    invoked_by = ui.get("invokedBy")
    invoked_by = invoked_by if isinstance(invoked_by, str) else ""
    if invoked_by in rules.cloudformation_invokers:
        return "cloudformation", None
    if record.get("sessionCredentialFromConsole") in ("true", True):
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
    if (
        ui.get("type") == "AWSService"
        or ua == "AWS Internal"
        or (ua.endswith(".amazonaws.com") and " " not in ua)
    ):
        return "aws-service", None
    for language, marker in rules.sdk:
        if marker in ua:
            return "sdk", language
    return "other", None


def tool(record: Mapping[str, Any], ct: Mapping[str, Any]) -> dict[str, Any]:
    rules = load_rules()
    found = classify_tool(record, rules)
    if found is None:
        return {}
    name, language = found
    out: dict[str, Any] = {"tool": name, "tool_group": rules.groups.get(name, "other")}
    if language:
        out["tool_language"] = language
    return out
