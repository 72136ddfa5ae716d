"""Searchable copies of the variable-shape payloads, for ``flat_object`` fields.

``requestParameters`` and friends differ per API and even per call, so they are not mapped
field by field (the mapping would grow without bound and conflict). Each is copied whole into
``ct.flat.*``, mapped as one ``flat_object`` field each and kept out of ``_source`` (the
original stays there), with strings cut below Lucene's term-length limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

__all__ = ["MAX_STRING", "PAYLOADS", "flat", "forget_texts", "payload_text", "sanitize"]

MAX_STRING = 4096  # characters; Lucene refuses terms over 32,766 bytes
PAYLOADS = {
    "requestParameters": "request",
    "responseElements": "response",
    "additionalEventData": "additional",
    "serviceEventDetails": "service_event",
    "insightDetails": "insight",
}


def sanitize(value: Any, depth: int = 0) -> Any:
    """A copy safe to index as a flat_object: bounded strings, no empty keys, bounded depth."""
    if isinstance(value, str):
        return value[:MAX_STRING]
    if isinstance(value, dict):
        if depth >= 16:
            return str(value)[:MAX_STRING]
        return {(str(k) or "_"): sanitize(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [sanitize(v, depth + 1) for v in value]
    return value


# The JSON text of the payloads of the record being shaped, by identity, with the payload
# itself (so its id stays its own): both byte screens, the flat copy's here and the field
# names' in ingest.decode, read one serialisation. Cleared when a record starts.
_TEXTS: dict[int, tuple[Any, bytes]] = {}


def forget_texts() -> None:
    """Drop the remembered payload texts (a record's shaping starts)."""
    _TEXTS.clear()


def payload_text(value: dict[str, Any]) -> bytes:
    """``orjson.dumps(value)``, serialised once per payload of the record being shaped."""
    hit = _TEXTS.get(id(value))
    if hit is not None and hit[0] is value:
        return hit[1]
    text = orjson.dumps(value)
    if len(_TEXTS) >= 16:  # called outside a record's shaping: stay small
        _TEXTS.clear()
    _TEXTS[id(value)] = (value, text)
    return text


def _needs_copy(value: dict[str, Any]) -> bool:
    # The walk is the cost; skip it when no string can be too long and no key is empty.
    text = payload_text(value)
    return len(text) > MAX_STRING or b'"":' in text


def flat(record: Mapping[str, Any], ct: Mapping[str, Any]) -> dict[str, Any]:
    _TEXTS.clear()
    copies = {}
    for field, name in PAYLOADS.items():
        value = record.get(field)
        if isinstance(value, dict) and value:
            copies[name] = sanitize(value) if _needs_copy(value) else value
    return {"flat": copies} if copies else {}
