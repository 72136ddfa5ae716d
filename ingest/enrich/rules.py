"""The enrichment rules, loaded once from ``rules.toml`` beside this file."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources

__all__ = ["ResourceRule", "Rules", "load_rules"]


@dataclass(frozen=True, slots=True)
class ResourceRule:
    source: str
    path: tuple[str, ...]
    type: str
    id: str


@dataclass(frozen=True, slots=True)
class Rules:
    read_prefixes: tuple[str, ...]
    sign_in_sources: frozenset[str]
    sign_in_types: frozenset[str]
    not_write_types: frozenset[str]
    clickops_noise: re.Pattern[str]
    cloudformation_invokers: frozenset[str]
    console_user_agents: tuple[str, ...]
    console_user_agent_suffix: str
    iac: tuple[tuple[str, str], ...]
    cli: tuple[str, ...]
    sdk: tuple[tuple[str, str], ...]
    groups: dict[str, str]
    resources: dict[str, tuple[ResourceRule, ...]]  # by eventSource, "*" first in each


def _noise(patterns: list[str]) -> re.Pattern[str]:
    globs = [p if ":" in p else f"*:{p}" for p in patterns]
    return re.compile("|".join(f"(?:{fnmatch.translate(g)})" for g in globs))


@cache
def load_rules() -> Rules:
    raw = tomllib.loads(resources.files("ingest.enrich").joinpath("rules.toml").read_text())
    write, tool = raw["write"], raw["tool"]
    rules = [
        ResourceRule(r["source"], tuple(r["path"].split(".")), r["type"], r.get("id", "{value}"))
        for r in raw["resource"]
    ]
    anywhere = tuple(r for r in rules if r.source == "*")
    by_source: dict[str, tuple[ResourceRule, ...]] = {"*": anywhere}
    for r in rules:
        if r.source != "*":
            by_source[r.source] = (*by_source.get(r.source, anywhere), r)
    return Rules(
        read_prefixes=tuple(write["read_prefixes"]),
        sign_in_sources=frozenset(write["sign_in_sources"]),
        sign_in_types=frozenset(write["sign_in_types"]),
        not_write_types=frozenset(write["not_write_types"]),
        clickops_noise=_noise(raw["clickops"]["noise"]),
        cloudformation_invokers=frozenset(tool["cloudformation_invokers"]),
        console_user_agents=tuple(tool["console_user_agents"]),
        console_user_agent_suffix=tool["console_user_agent_suffix"],
        iac=tuple((k, m) for k, m in tool["iac"]),
        cli=tuple(tool["cli"]),
        sdk=tuple((k, m) for k, m in tool["sdk"]),
        groups=dict(tool["groups"]),
        resources=by_source,
    )
