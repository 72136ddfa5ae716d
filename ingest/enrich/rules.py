"""The enrichment rules, loaded once from ``rules.toml`` beside this file."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["EcsEventRule", "EcsRules", "ResourceRule", "Rules", "load_rules"]


@dataclass(frozen=True, slots=True)
class ResourceRule:
    source: str
    path: tuple[str, ...]
    type: str
    id: str


@dataclass(frozen=True, slots=True)
class EcsEventRule:
    """One ``[[ecs.event]]`` row: the events it matches and what it says about them."""

    match: re.Pattern[str]  # over "eventSource:eventName"
    category: tuple[str, ...] | None
    type: tuple[str, ...] | None
    entity: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EcsRules:
    """``[ecs]``: event.category and event.type by event source and event name."""

    default_category: tuple[str, ...]
    source_category: dict[str, tuple[str, ...]]
    type_prefixes: tuple[tuple[str, str], ...]
    default_type: tuple[str, ...]
    events: tuple[EcsEventRule, ...]
    # related.entity paths by "eventSource" and "eventSource:eventName"; each path a tuple of
    # keys, "[]" walking the items of a list
    related_entity: dict[str, tuple[tuple[str, ...], ...]]


@dataclass(frozen=True, slots=True, eq=False)  # hashed by identity: a key of the rule caches
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
    ecs: EcsRules


def _noise(patterns: list[str]) -> re.Pattern[str]:
    globs = [p if ":" in p else f"*:{p}" for p in patterns]
    return re.compile("|".join(f"(?:{fnmatch.translate(g)})" for g in globs))


def _tuple(value: list[str] | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(value)


def _ecs(raw: dict[str, Any]) -> EcsRules:
    return EcsRules(
        default_category=tuple(raw["default_category"]),
        source_category={k: tuple(v) for k, v in raw["source_category"].items()},
        type_prefixes=tuple((p, t) for p, t in raw["type_prefixes"]),
        default_type=tuple(raw["default_type"]),
        events=tuple(
            EcsEventRule(
                match=_noise([row["match"]]),
                category=_tuple(row.get("category")),
                type=_tuple(row.get("type")),
                entity=tuple(row.get("entity", ())),
            )
            for row in raw.get("event", ())
        ),
        related_entity={
            key: tuple(tuple(p.replace("[]", ".[]").split(".")) for p in paths)
            for key, paths in raw.get("related_entity", {}).items()
        },
    )


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
        ecs=_ecs(raw["ecs"]),
    )
