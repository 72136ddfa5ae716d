"""Decoding and shaping: one CloudTrail object's bytes in, ready bulk NDJSON out.

Pure and synchronous, so it runs in worker processes (see ``ingest.engine``) and is
unit-tested with literal records. Nothing here raises for bad input: an object that cannot be
read becomes a :class:`Decoded` with ``failed`` set, and a record that cannot become a document
becomes a :class:`Rejected` entry, both destined for the dead-letter.
"""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import re
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple

import orjson

from ingest.enrich import enrich

__all__ = [
    "Decoded",
    "Document",
    "Expected",
    "Rejected",
    "decode_object",
    "document_for",
    "document_id",
    "exclusion_matcher",
    "expected_documents",
    "index_name",
    "shape_record",
    "to_document",
]

_GZIP_MAGIC = b"\x1f\x8b"
_MAX_ID_BYTES = 512  # OpenSearch's limit for _id


class Document(NamedTuple):
    """One bulk ``create`` action and its source, ready to send."""

    doc_id: str
    index_name: str
    record_index: int
    ndjson: bytes  # the action line and the source line, each ending in a newline


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record (or a whole object, ``record_index`` None) that will not be indexed, and why."""

    record_index: int | None
    error_type: str
    reason: str
    record: Any = None


@dataclass(slots=True)
class Decoded:
    """The outcome of decoding one object."""

    key: str
    documents: list[Document] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    records: int = 0
    skipped: int = 0
    enrich_failed: int = 0  # documents indexed with ct.enrich_errors
    newest_event: str = ""  # the newest eventTime among the documents
    json_bytes: int = 0
    failed: bool = False


class _BadRecord(Exception):
    def __init__(self, error_type: str, reason: str) -> None:
        super().__init__(reason)
        self.error_type = error_type
        self.reason = reason


def document_id(record: dict[str, Any]) -> str:
    """The record's ``eventID``, or a stable id derived from its content when it has none."""
    event_id = record.get("eventID")
    if isinstance(event_id, str) and event_id and len(event_id.encode()) <= _MAX_ID_BYTES:
        return event_id
    digest = hashlib.sha256(orjson.dumps(record, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"sha256-{digest[:40]}"


def _event_time(record: dict[str, Any]) -> tuple[str, datetime]:
    value = record.get("eventTime")
    if value is None:
        raise _BadRecord("MissingEventTime", "record has no eventTime")
    if not isinstance(value, str):
        raise _BadRecord("BadEventTime", f"eventTime is a {type(value).__name__}, not a string")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise _BadRecord("BadEventTime", f"eventTime {value[:64]!r} is not ISO-8601") from None
    if when.tzinfo is None:
        raise _BadRecord("BadEventTime", f"eventTime {value[:64]!r} has no time zone")
    return value, when


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


def _fix(value: Any, want: str) -> tuple[bool, Any]:
    if want == "scalar" and isinstance(value, dict | list):
        return True, orjson.dumps(value).decode()
    if want == "object" and value is not None and not isinstance(value, dict):
        return True, {"value": value}
    return False, value


def guard_shapes(doc: dict[str, Any]) -> list[str]:
    """Coerce the explicitly mapped payload fields of ``doc`` to their mapped shape, copying the
    nested objects it changes; returns the coerced paths."""
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


def _may_have_bad_keys(value: dict[str, Any]) -> bool:
    """A cheap screen before the walk: every refused key shows one of these byte patterns in
    the JSON text (values can too: those only cost the walk)."""
    text = orjson.dumps(value)
    return any(p in text for p in _SUSPECT)


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


def index_name(record: dict[str, Any], index_prefix: str) -> str:
    """The monthly index of a record (raises ``_BadRecord`` without a usable eventTime)."""
    _, when = _event_time(record)
    return f"{index_prefix}{when.year:04d}.{when.month:02d}"


def shape_record(
    record: dict[str, Any], index_prefix: str, object_key: str | None = None
) -> tuple[str, dict[str, Any], bool]:
    """The index name, the enriched document, and whether enrichment had a failure (raises
    ``_BadRecord`` when the record cannot be indexed at all)."""
    stamp, when = _event_time(record)
    doc = dict(record)
    doc["@timestamp"] = stamp
    extra = enrich(record)
    if extra.errors:
        extra.ct["enrich_errors"] = extra.errors
    coerced = guard_shapes(doc) + clean_payload_keys(doc)
    if coerced:
        extra.ct["coerced"] = coerced
    if object_key is not None:
        extra.ct["object"] = object_key
    doc["ct"] = extra.ct
    doc.update(extra.ecs)
    return f"{index_prefix}{when.year:04d}.{when.month:02d}", doc, bool(extra.errors)


@lru_cache(maxsize=16)
def exclusion_matcher(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    """One regex for ``eventSource:eventName`` glob patterns (``kms.amazonaws.com:Decrypt``,
    ``*:Describe*``); a pattern without a colon matches the event name in any service."""
    if not patterns:
        return None
    globs = [p if ":" in p else f"*:{p}" for p in patterns]
    return re.compile("|".join(f"(?:{fnmatch.translate(g)})" for g in globs))


def _load_json(key: str, data: bytes) -> tuple[Any, int]:
    if not data:
        raise _BadRecord("EmptyObject", "object is empty (0 bytes)")
    if data[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as exc:
            raise _BadRecord("BadGzip", f"gzip stream is corrupt or truncated: {exc}") from None
    elif data.lstrip()[:1] == b"{":
        raw = data  # already uncompressed (an archive synced and gunzipped on disk)
    else:
        raise _BadRecord("NotGzip", f"object is neither gzip nor JSON (starts with {data[:8]!r})")
    try:
        return orjson.loads(raw), len(raw)
    except orjson.JSONDecodeError as exc:
        raise _BadRecord("BadJson", f"invalid JSON: {exc}") from None


def decode_object(
    key: str, data: bytes, *, index_prefix: str = "cloudtrail-", exclude: tuple[str, ...] = ()
) -> Decoded:
    """Gunzip, parse and shape every record of one CloudTrail log file.

    Records matching an ``exclude`` pattern are counted as skipped by rule, not indexed.
    """
    out = Decoded(key=key)
    try:
        body, out.json_bytes = _load_json(key, data)
        if not isinstance(body, dict) or "Records" not in body:
            raise _BadRecord("NoRecords", "JSON has no top-level Records array")
        records = body["Records"]
        if not isinstance(records, list):
            raise _BadRecord("NoRecords", f"Records is a {type(records).__name__}, not an array")
    except _BadRecord as bad:
        out.failed = True
        out.rejected.append(Rejected(None, bad.error_type, bad.reason))
        return out

    out.records = len(records)
    excluded = exclusion_matcher(exclude)
    for i, record in enumerate(records):
        if (
            excluded
            and isinstance(record, dict)
            and excluded.match(f"{record.get('eventSource')}:{record.get('eventName')}")
        ):
            out.skipped += 1
            continue
        made = to_document(record, index_prefix, i, key)
        if isinstance(made, Rejected):
            out.rejected.append(made)
            continue
        doc, enrich_failed = made
        out.enrich_failed += enrich_failed
        out.documents.append(doc)
        stamp = record["eventTime"]
        if stamp > out.newest_event:
            out.newest_event = stamp
    return out


def to_document(
    record: Any, index_prefix: str, record_index: int, object_key: str | None = None
) -> tuple[Document, bool] | Rejected:
    """One record as a ready bulk action (and whether enrichment failed), or why it cannot be."""
    if not isinstance(record, dict):
        reason = f"record is a {type(record).__name__}, not an object"
        return Rejected(record_index, "NotAnObject", reason, record)
    try:
        index, doc, enrich_failed = shape_record(record, index_prefix, object_key)
    except _BadRecord as bad:
        return Rejected(record_index, bad.error_type, bad.reason, record)
    return document_for(document_id(record), index, record_index, doc), enrich_failed


def document_for(doc_id: str, index: str, record_index: int, source: dict[str, Any]) -> Document:
    """A ``create`` action for ``source`` as a Document."""
    action = orjson.dumps({"create": {"_index": index, "_id": doc_id}})
    return Document(doc_id, index, record_index, action + b"\n" + orjson.dumps(source) + b"\n")


@dataclass(slots=True)
class Expected:
    """What indexing an object should have produced, without building the documents."""

    key: str
    ids: list[tuple[str, str, int]] = field(default_factory=list)  # (index, _id, record index)
    rejected: list[int] = field(default_factory=list)  # record indices that cannot be indexed
    skipped: int = 0
    failed: str | None = None  # why the object as a whole cannot be read


def expected_documents(
    key: str, data: bytes, *, index_prefix: str = "cloudtrail-", exclude: tuple[str, ...] = ()
) -> Expected:
    """The (index, _id) every record of an object maps to, by the same rules as
    :func:`decode_object` but without enrichment: the ground truth ``ct-ingest verify`` uses."""
    out = Expected(key)
    try:
        body, _ = _load_json(key, data)
        records = body.get("Records") if isinstance(body, dict) else None
        if not isinstance(records, list):
            raise _BadRecord("NoRecords", "no Records array")
    except _BadRecord as bad:
        out.failed = f"{bad.error_type}: {bad.reason}"
        return out
    excluded = exclusion_matcher(exclude)
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            out.rejected.append(i)
            continue
        if excluded and excluded.match(f"{record.get('eventSource')}:{record.get('eventName')}"):
            out.skipped += 1
            continue
        try:
            out.ids.append((index_name(record, index_prefix), document_id(record), i))
        except _BadRecord:
            out.rejected.append(i)
    return out
