"""The payload fields of a document shaped for the index's mapping: the explicitly mapped ones
coerced to their mapped shape, and field names OpenSearch refuses renamed.

Both leave the record's other fields untouched and copy what they change (the record itself is
shared with the enrichers), and both look at a payload's JSON text first: most records need
neither, and a byte screen says so for the cost of one serialisation (shared with the flat
copies' screen, see :func:`ingest.enrich.flat.payload_text`).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from ingest.enrich.flat import payload_text

__all__ = ["GUARDED", "clean_payload_keys", "guard_shapes"]

# Fields inside the variable-shape payloads that the template maps explicitly (for CloudTracker
# and the principal report), with the shape the mapping expects. A record with another shape
# there would be rejected as a whole, so the value is coerced (an object or array becomes its JSON
# text, a scalar where an object is mapped becomes {"value": ...}) and the path is listed in
# ct.coerced. The record's other fields are untouched.
GUARDED: tuple[tuple[tuple[str, ...], str], ...] = (
    (("requestParameters", "roleArn"), "scalar"),
    (("requestParameters", "roleSessionName"), "scalar"),
    (("requestParameters", "bucketName"), "scalar"),
    (("responseElements", "credentials"), "object"),
    (("responseElements", "credentials", "accessKeyId"), "scalar"),
)


# The keys under each payload where a guarded path starts: most records have none of them.
_GUARD_ROOTS: tuple[tuple[str, frozenset[str]], ...] = tuple(
    (root, frozenset(path[1] for path, _ in GUARDED if path[0] == root))
    for root in dict.fromkeys(path[0] for path, _ in GUARDED)
)


def _fix(value: Any, want: str) -> tuple[bool, Any]:
    if want == "scalar" and isinstance(value, dict | list):
        return True, orjson.dumps(value).decode()
    if want == "object" and value is not None and not isinstance(value, dict):
        return True, {"value": value}
    return False, value


def guard_shapes(doc: dict[str, Any]) -> list[str]:
    """Coerce the explicitly mapped payload fields of ``doc`` to their mapped shape, copying the
    nested objects it changes; returns the coerced paths."""
    for root, keys in _GUARD_ROOTS:
        holder = doc.get(root)
        if isinstance(holder, dict) and not keys.isdisjoint(holder):
            break
    else:
        return []
    coerced = []
    for path, want in GUARDED:
        parents: list[Any] = [doc]
        for key in path[:-1]:
            parents.append(parents[-1].get(key) if isinstance(parents[-1], dict) else None)
        holder = parents[-1]
        if not isinstance(holder, dict) or path[-1] not in holder:
            continue
        changed, new = _fix(holder[path[-1]], want)
        if not changed:
            continue
        for depth in range(len(path) - 1, 0, -1):
            new = {**parents[depth], path[depth]: new}
        doc[path[0]] = new
        coerced.append(".".join(path))
    return coerced


_PAYLOADS = (
    "requestParameters",
    "responseElements",
    "additionalEventData",
    "serviceEventDetails",
    "insightDetails",
    "edgeDeviceDetails",
)


def _bad_key(key: str) -> bool:
    # OpenSearch refuses these field names even under dynamic: false
    return not key.strip() or key[0] == "." or key[-1] == "." or ".." in key


def _clean_keys(value: Any) -> Any:
    """A copy of ``value`` with the field names OpenSearch refuses renamed; ``None`` if none."""
    if isinstance(value, dict):
        changed = False
        out = {}
        for k, v in value.items():
            inner = _clean_keys(v)
            if inner is not None:
                v, changed = inner, True
            if _bad_key(k):
                k, changed = "_" + (k.strip().replace(".", "_") or "empty_"), True
                while k in out or k in value:
                    k += "_"
            out[k] = v
        return out if changed else None
    if isinstance(value, list):
        items = [_clean_keys(v) for v in value]
        if any(i is not None for i in items):
            return [v if i is None else i for v, i in zip(value, items, strict=True)]
    return None


_SUSPECT = (b'"":', b'".', b'.":', b"..", b'" ', b' ":')
_SUSPECT_ANY = re.compile(b"|".join(re.escape(p) for p in _SUSPECT))


def _may_have_bad_keys(value: dict[str, Any]) -> bool:
    """A cheap screen before the walk: every refused key shows one of these byte patterns in
    the JSON text (values can too: those only cost the walk)."""
    return _SUSPECT_ANY.search(payload_text(value)) is not None


def clean_payload_keys(doc: dict[str, Any]) -> list[str]:
    """Rename field names OpenSearch would reject inside the payloads; returns the payloads."""
    renamed = []
    for name in _PAYLOADS:
        value = doc.get(name)
        if isinstance(value, dict) and value and _may_have_bad_keys(value):
            cleaned = _clean_keys(value)
            if cleaned is not None:
                doc[name] = cleaned
                renamed.append(f"{name}:keys")
    return renamed
