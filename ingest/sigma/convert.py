"""Sigma rule files to OpenSearch queries for ct-ingest's index, one :class:`Converted` per rule.

A rule that cannot be read or expressed (bad YAML, an unknown modifier, a field the index does
not have, a rule for another log source) gives a :class:`Converted` with ``error`` set, never an
exception, so that one bad rule does not hide the others.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sigma.collection import SigmaCollection
from sigma.exceptions import SigmaError
from sigma.rule import SigmaRule

from ingest.sigma.backend import DslBackend, Query
from ingest.sigma.pipeline import pipeline

__all__ = ["Converted", "convert_paths", "rule_files"]

_SUFFIXES = (".yml", ".yaml")
_NAMESPACE = uuid.UUID("5f0c6a52-6d7e-4c36-9a51-2f1c7b0e8d14")  # ct-ingest's Sigma rules


@dataclass(frozen=True)
class Converted:
    """One rule and its query (``None`` and ``error`` set when it could not be converted)."""

    rule: str  # the rule file's path as given
    id: str  # the rule's id, or one derived from the file's path below the directory given
    title: str
    level: str | None
    tags: tuple[str, ...]
    query: dict[str, Any] | None
    error: str | None

    def to_json(self) -> dict[str, Any]:
        """The line ``sigma convert`` prints: the query, or the error."""
        head: dict[str, Any] = {"rule": self.rule, "id": self.id, "title": self.title}
        if self.error is not None:
            return {**head, "error": self.error}
        return {**head, "level": self.level, "tags": list(self.tags), "query": self.query}


def rule_files(paths: Sequence[Path]) -> Iterator[tuple[Path, str]]:
    """Each rule file with the name its id is derived from: files as given, directories searched
    recursively for ``*.yml``/``*.yaml`` in name order."""
    for path in paths:
        if path.is_dir():
            for found in sorted(p for p in path.rglob("*") if p.suffix in _SUFFIXES):
                if found.is_file():
                    yield found, found.relative_to(path).as_posix()
        else:
            yield path, path.name


def _error(path: Path, key: str, message: str, title: str = "") -> Converted:
    return Converted(str(path), _derived_id(key), title, None, (), None, message)


def _derived_id(key: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, key))


def _convert_rule(path: Path, key: str, rule: Any, backend: DslBackend, n: int) -> Converted:
    rule_id = str(rule.id) if getattr(rule, "id", None) else _derived_id(f"{key}#{n}")
    title = str(getattr(rule, "title", "") or "")
    level = str(rule.level) if getattr(rule, "level", None) else None
    tags = tuple(str(t) for t in getattr(rule, "tags", ()) or ())
    base = Converted(str(path), rule_id, title, level, tags, None, None)
    if not isinstance(rule, SigmaRule):
        return replace(base, error="correlation and filter rules are not supported")
    if rule.errors:
        return replace(base, error="; ".join(str(e) for e in rule.errors))
    try:
        queries: list[Query] = backend.convert_rule(rule)
    except SigmaError as exc:
        return replace(base, error=str(exc))
    except Exception as exc:  # a rule pySigma accepted but cannot convert; never a crash
        return replace(base, error=f"{type(exc).__name__}: {exc}")
    if not queries:
        return replace(base, error="no query: the rule only serves a correlation")
    query = queries[0] if len(queries) == 1 else _any_of(queries)
    return replace(base, query=query)


def _any_of(queries: list[Query]) -> Query:
    """A rule with several conditions matches where any of them does."""
    return {"bool": {"should": queries, "minimum_should_match": 1}}


def convert_file(path: Path, key: str | None = None) -> list[Converted]:
    """The rules of one file (a file may hold several YAML documents)."""
    key = key or path.name
    try:
        text = path.read_text(encoding="utf-8")
        collection = SigmaCollection.from_yaml(text, collect_errors=True)
    except (OSError, UnicodeDecodeError, SigmaError) as exc:
        return [_error(path, key, f"cannot read the rule: {exc}")]
    except Exception as exc:  # pySigma lets YAML and type errors of odd files through
        return [_error(path, key, f"cannot read the rule: {type(exc).__name__}: {exc}")]
    if not collection.rules:
        errors = "; ".join(str(e) for e in collection.errors) or "no rule in the file"
        return [_error(path, key, errors)]
    backend = DslBackend(pipeline(), collect_errors=False)
    return [_convert_rule(path, key, r, backend, n) for n, r in enumerate(collection.rules)]


def convert_paths(paths: Sequence[Path]) -> list[Converted]:
    """Every rule below ``paths`` (files, or directories searched recursively), converted."""
    return [c for path, key in rule_files(paths) for c in convert_file(path, key)]
