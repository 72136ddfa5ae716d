"""Decoding and shaping: one CloudTrail object's bytes in, ready bulk NDJSON out.

Pure and synchronous, so it runs in worker processes (see ``ingest.engine``) and is
unit-tested with literal records. Nothing here raises for bad input: an object that cannot be
read becomes a :class:`Decoded` with ``failed`` set, and a record that cannot become a document
becomes a :class:`Rejected` entry, both destined for the dead-letter.

A record's fate (skipped by rule, rejected, or which index and ``_id``) is decided once, by
:func:`plan_record`; :func:`decode_object` (the backfill) and :func:`expected_documents`
(``ct-ingest verify``) both ask it, so the two cannot disagree.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from ingest.config import (
    DEFAULT_BATCH_BYTES,
    DEFAULT_INDEX_PREFIX,
    DEFAULT_MAX_OBJECT_BYTES,
    DEFAULT_STREAM_ABOVE,
)
from ingest.enrich import enrich
from ingest.enrich.flat import forget_texts
from ingest.enrich.geo import use as use_geoip
from ingest.enrich.guard import clean_payload_keys, guard_shapes
from ingest.inflate import Span, Spill, Unreadable, inflate, read_span, spans

__all__ = [
    "Decoded",
    "Document",
    "Expected",
    "Planned",
    "Rejected",
    "Skip",
    "Stream",
    "decode_object",
    "decode_span",
    "document_for",
    "document_id",
    "exclusion_matcher",
    "expected_documents",
    "index_name",
    "plan_record",
    "shape_record",
    "to_document",
]

_MAX_ID_BYTES = 512  # OpenSearch's limit for _id
_LINE = orjson.OPT_APPEND_NEWLINE


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


@dataclass(frozen=True, slots=True)
class Stream:
    """A large object's records, still to be decoded a span at a time (see
    :func:`decode_span`) from its spill file, which the caller removes when done."""

    path: str
    spans: tuple[Span, ...]


@dataclass(slots=True)
class Decoded:
    """The outcome of decoding one object, or one batch of a large object's records."""

    key: str
    documents: list[Document] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    records: int = 0
    skipped: int = 0
    enrich_failed: int = 0  # documents indexed with ct.enrich_errors
    newest_event: str = ""  # the newest eventTime among the documents
    json_bytes: int = 0
    failed: bool = False
    stream: Stream | None = None  # a large object: its records come in batches, decode_span


@dataclass(slots=True)  # one per record: neither frozen nor a NamedTuple, both slower to build
class Planned:
    """Where a record goes: its monthly index and ``_id``, and its ``eventTime`` (the
    document's ``@timestamp``)."""

    index_name: str
    doc_id: str
    event_time: str


class Skip(Enum):
    """A record an ``exclude`` rule matches: counted as skipped, neither indexed nor rejected."""

    BY_RULE = "skipped by rule"


class _BadRecord(Exception):
    def __init__(self, error_type: str, reason: str) -> None:
        super().__init__(reason)
        self.error_type = error_type
        self.reason = reason


def document_id(record: dict[str, Any]) -> str:
    """The record's ``eventID``, or a stable id derived from its content when it has none."""
    event_id = record.get("eventID")
    if (
        isinstance(event_id, str)
        and event_id
        # at most 4 bytes a character: most ids need no encoding to be measured
        and (len(event_id) <= _MAX_ID_BYTES // 4 or len(event_id.encode()) <= _MAX_ID_BYTES)
    ):
        return event_id
    digest = hashlib.sha256(orjson.dumps(record, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"sha256-{digest[:40]}"


def _place(record: Any, index_prefix: str, record_index: int) -> Planned | Rejected:
    """Where a record not skipped by rule goes (the monthly index of its ``eventTime``, its
    ``_id``), or why it cannot go anywhere: every rule of a record's fate but exclusion."""
    if not isinstance(record, dict):
        reason = f"record is a {type(record).__name__}, not an object"
        return Rejected(record_index, "NotAnObject", reason, record)
    stamp = record.get("eventTime")
    if stamp is None:
        return Rejected(record_index, "MissingEventTime", "record has no eventTime", record)
    if not isinstance(stamp, str):
        reason = f"eventTime is a {type(stamp).__name__}, not a string"
        return Rejected(record_index, "BadEventTime", reason, record)
    try:
        when = datetime.fromisoformat(stamp)
    except ValueError:
        reason = f"eventTime {stamp[:64]!r} is not ISO-8601"
        return Rejected(record_index, "BadEventTime", reason, record)
    if when.tzinfo is None:
        reason = f"eventTime {stamp[:64]!r} has no time zone"
        return Rejected(record_index, "BadEventTime", reason, record)
    return Planned(_monthly(index_prefix, when.year, when.month), document_id(record), stamp)


@lru_cache(maxsize=1024)
def _monthly(index_prefix: str, year: int, month: int) -> str:
    return f"{index_prefix}{year:04d}.{month:02d}"


def plan_record(
    record: Any,
    index_prefix: str,
    excluded: re.Pattern[str] | None = None,
    record_index: int = 0,
) -> Planned | Rejected | Skip:
    """A record's fate, decided without building its document: skipped by the ``excluded``
    rule (see :func:`exclusion_matcher`), rejected and why, or the index and ``_id`` it goes
    to. :func:`decode_object` and :func:`expected_documents` both decide by this alone."""
    if (
        excluded is not None
        and isinstance(record, dict)
        and excluded.match(f"{record.get('eventSource')}:{record.get('eventName')}")
    ):
        return Skip.BY_RULE
    return _place(record, index_prefix, record_index)


def _placed(record: dict[str, Any], index_prefix: str) -> Planned:
    plan = _place(record, index_prefix, 0)
    if isinstance(plan, Rejected):
        raise _BadRecord(plan.error_type, plan.reason)
    return plan


def index_name(record: dict[str, Any], index_prefix: str) -> str:
    """The monthly index of a record (raises ``_BadRecord`` without a usable eventTime)."""
    return _placed(record, index_prefix).index_name


def shape_record(
    record: dict[str, Any], index_prefix: str, object_key: str | None = None
) -> tuple[str, dict[str, Any], bool]:
    """The index name, the enriched document, and whether enrichment had a failure (raises
    ``_BadRecord`` when the record cannot be indexed at all)."""
    plan = _placed(record, index_prefix)
    doc, enrich_failed = _shape(record, plan.event_time, object_key)
    return plan.index_name, doc, enrich_failed


def _shape(
    record: dict[str, Any], stamp: str, object_key: str | None
) -> tuple[dict[str, Any], bool]:
    """The enriched document of a record that has a place, and whether enrichment failed."""
    doc = dict(record)
    doc["@timestamp"] = stamp
    forget_texts()
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
    return doc, bool(extra.errors)


@lru_cache(maxsize=16)
def exclusion_matcher(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    """One regex for ``eventSource:eventName`` glob patterns (``kms.amazonaws.com:Decrypt``,
    ``*:Describe*``); a pattern without a colon matches the event name in any service."""
    if not patterns:
        return None
    globs = [p if ":" in p else f"*:{p}" for p in patterns]
    return re.compile("|".join(f"(?:{fnmatch.translate(g)})" for g in globs))


def _load_json(data: bytes, limit: int = DEFAULT_MAX_OBJECT_BYTES) -> tuple[Any, int]:
    try:
        raw = inflate(data, limit=limit, spill_above=limit, spill_dir=None)
    except Unreadable as bad:
        raise _BadRecord(bad.error_type, bad.reason) from None
    assert isinstance(raw, bytes)  # nosec B101 (spill_above=limit: never spilled)
    try:
        return orjson.loads(raw), len(raw)
    except orjson.JSONDecodeError as exc:
        raise _BadRecord("BadJson", f"invalid JSON: {exc}") from None


def _records_of(body: Any) -> list[Any]:
    """The ``Records`` array of a parsed log file (raises ``_BadRecord`` when there is none)."""
    if not isinstance(body, dict) or "Records" not in body:
        raise _BadRecord("NoRecords", "JSON has no top-level Records array")
    records = body["Records"]
    if not isinstance(records, list):
        raise _BadRecord("NoRecords", f"Records is a {type(records).__name__}, not an array")
    return records


def decode_object(
    key: str,
    data: bytes,
    *,
    index_prefix: str = DEFAULT_INDEX_PREFIX,
    exclude: tuple[str, ...] = (),
    max_object_bytes: int = DEFAULT_MAX_OBJECT_BYTES,
    stream_above: int = DEFAULT_STREAM_ABOVE,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
    spill_dir: str | None = None,
    geoip: tuple[Path | None, Path | None] = (None, None),
) -> Decoded:
    """Gunzip, parse and shape every record of one CloudTrail log file.

    Records matching an ``exclude`` pattern are counted as skipped by rule, not indexed. An
    object of more than ``stream_above`` bytes of JSON is inflated into a file in
    ``spill_dir`` instead and checked, and comes back with no documents and a :class:`Stream`
    of spans of about ``batch_bytes`` for :func:`decode_span`; one of more than
    ``max_object_bytes`` is refused (``TooLarge``) without inflating the rest. ``geoip``
    names the databases for ``source.geo``/``source.as`` (none: no lookup).
    """
    use_geoip(*geoip)
    out = Decoded(key=key)
    try:
        try:
            raw = inflate(
                data,
                limit=max_object_bytes,
                spill_above=stream_above,
                spill_dir=spill_dir,
                name=key,
            )
        except Unreadable as bad:
            raise _BadRecord(bad.error_type, bad.reason) from None
        if isinstance(raw, Spill):
            return _streamed(out, raw, batch_bytes)
        out.json_bytes = len(raw)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise _BadRecord("BadJson", f"invalid JSON: {exc}") from None
        del raw
        records = _records_of(body)
    except _BadRecord as bad:
        out.failed = True
        out.rejected.append(Rejected(None, bad.error_type, bad.reason))
        return out
    _decode_records(out, records, 0, index_prefix, exclude)
    return out


def _streamed(out: Decoded, spill: Spill, batch_bytes: int) -> Decoded:
    out.json_bytes = spill.json_bytes
    try:
        out.stream = Stream(spill.path, tuple(spans(spill, batch_bytes)))
    except Unreadable as bad:
        os.unlink(spill.path)
        out.failed = True
        out.rejected.append(Rejected(None, bad.error_type, bad.reason))
    return out


def decode_span(
    key: str,
    path: str,
    span: Span,
    *,
    index_prefix: str = DEFAULT_INDEX_PREFIX,
    exclude: tuple[str, ...] = (),
    geoip: tuple[Path | None, Path | None] = (None, None),
) -> Decoded:
    """One batch of a large object: the records of ``span`` of its spill file, shaped as
    :func:`decode_object` shapes a small object's (with their indices in the object)."""
    use_geoip(*geoip)
    out = Decoded(key=key)
    try:
        records = read_span(path, span)
    except (OSError, Unreadable) as exc:
        out.failed = True
        out.rejected.append(Rejected(None, "SpillLost", f"spill file {path}: {exc}"))
        return out
    _decode_records(out, records, span.first, index_prefix, exclude)
    return out


def _decode_records(
    out: Decoded, records: list[Any], first: int, index_prefix: str, exclude: tuple[str, ...]
) -> None:
    out.records += len(records)
    excluded = exclusion_matcher(exclude)
    key = out.key
    for i, record in enumerate(records, first):
        plan = plan_record(record, index_prefix, excluded, i)
        if isinstance(plan, Planned):
            doc, enrich_failed = _shape(record, plan.event_time, key)
            out.enrich_failed += enrich_failed
            out.documents.append(document_for(plan.doc_id, plan.index_name, i, doc))
            if plan.event_time > out.newest_event:
                out.newest_event = plan.event_time
        elif isinstance(plan, Rejected):
            out.rejected.append(plan)
        else:
            out.skipped += 1


def to_document(
    record: Any, index_prefix: str, record_index: int, object_key: str | None = None
) -> tuple[Document, bool] | Rejected:
    """One record as a ready bulk action (and whether enrichment failed), or why it cannot be.
    No exclusion rule applies (a record handed in explicitly, e.g. by ``deadletter replay``)."""
    plan = _place(record, index_prefix, record_index)
    if isinstance(plan, Rejected):
        return plan
    doc, enrich_failed = _shape(record, plan.event_time, object_key)
    return document_for(plan.doc_id, plan.index_name, record_index, doc), enrich_failed


def document_for(doc_id: str, index: str, record_index: int, source: dict[str, Any]) -> Document:
    """A ``create`` action for ``source`` as a Document."""
    action = orjson.dumps({"create": {"_index": index, "_id": doc_id}}, option=_LINE)
    return Document(doc_id, index, record_index, action + orjson.dumps(source, option=_LINE))


@dataclass(slots=True)
class Expected:
    """What indexing an object should have produced, without building the documents."""

    key: str
    ids: list[tuple[str, str, int]] = field(default_factory=list)  # (index, _id, record index)
    rejected: list[int] = field(default_factory=list)  # record indices that cannot be indexed
    skipped: int = 0
    failed: str | None = None  # why the object as a whole cannot be read


def expected_documents(
    key: str,
    data: bytes,
    *,
    index_prefix: str = DEFAULT_INDEX_PREFIX,
    exclude: tuple[str, ...] = (),
) -> Expected:
    """The (index, _id) every record of an object maps to, by :func:`plan_record` like
    :func:`decode_object` but without enrichment: the ground truth ``ct-ingest verify`` uses."""
    out = Expected(key)
    try:
        records = _records_of(_load_json(data)[0])
    except _BadRecord as bad:
        out.failed = f"{bad.error_type}: {bad.reason}"
        return out
    excluded = exclusion_matcher(exclude)
    for i, record in enumerate(records):
        plan = plan_record(record, index_prefix, excluded, i)
        if isinstance(plan, Planned):
            out.ids.append((plan.index_name, plan.doc_id, i))
        elif isinstance(plan, Rejected):
            out.rejected.append(i)
        else:
            out.skipped += 1
    return out
