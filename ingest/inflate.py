"""One object's bytes to its JSON in bounded memory: inflation with a limit, a spill file for
large documents, and the record splitter that cuts a large document into batches of records.

Small objects (the common case, up to ``spill_above`` bytes of JSON) come back as bytes and are
parsed whole. A larger one is inflated chunk by chunk into a file in ``spill_dir`` and read back
as :class:`Span`\\ s, runs of whole records of about ``batch_bytes`` each, so that no step holds
more than one batch, whatever the object's size. Nothing inflates past ``limit``: a gzip bomb
costs ``limit`` bytes of work and is refused as ``TooLarge``.

The splitter proposes a cut after a record (``}`` then ``,`` then ``{"eventVersion"``, the key
CloudTrail writes first; failing that any ``},{``; failing that an exact scan of strings and
brackets) and keeps the cut only when orjson parses the run before it: JSON values are
prefix-free, so a run that parses ends exactly at a record's end, whatever braces or escaped
quotes its strings hold. Every span is parsed once here, so a large object with invalid JSON is
refused as a whole before any of its documents is sent, as a small one is.
"""

from __future__ import annotations

import os
import re
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import orjson

__all__ = ["Span", "Spill", "Unreadable", "inflate", "read_span", "spans"]

MiB = 1024 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 * MiB  # inflated bytes per step
_EDGE = 64 * 1024  # bytes read to find the document's head and tail
_HEAD = re.compile(rb'\s*\{\s*"Records"\s*:\s*\[\s*')
_TAIL = re.compile(rb"\]\s*\}\s*\Z")
_CUTS = (
    re.compile(rb'\}\s*,\s*(?=\{\s*"eventVersion")'),  # CloudTrail's own layout
    re.compile(rb"\}\s*,\s*(?=\{)"),
)
_TRIES = 4  # proposed cuts tried per pattern before the exact scan
_MAX_RECORD = 64 * MiB  # no cut within this many bytes: invalid JSON (or an absurd record)
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[{}\[\],]', re.S)
_COMMA = re.compile(rb"\s*,\s*")


class Unreadable(Exception):
    """The object cannot be read as a CloudTrail log file (``error_type`` names why)."""

    def __init__(self, error_type: str, reason: str) -> None:
        super().__init__(reason)
        self.error_type = error_type
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Spill:
    """A large object's JSON, inflated into a file (removed by whoever reads it last)."""

    path: str
    json_bytes: int


@dataclass(frozen=True, slots=True)
class Span:
    """``count`` whole records, the first being record ``first`` of the object, at bytes
    ``[start, end)`` of a spill file."""

    start: int
    end: int
    first: int
    count: int


def _too_large(limit: int) -> Unreadable:
    return Unreadable(
        "TooLarge", f"object inflates to more than {limit / MiB:g} MiB (--max-object-mib)"
    )


def _gunzip(data: bytes) -> Iterator[bytes]:
    """Inflated chunks of every gzip member of ``data``, at most ``_CHUNK`` bytes each."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    pending = data
    try:
        while True:
            out = inflater.decompress(pending, _CHUNK)
            pending = inflater.unconsumed_tail
            if out:
                yield out
            if inflater.eof:
                rest = inflater.unused_data.lstrip(b"\x00")
                if not rest:
                    return
                if rest[:2] != _GZIP_MAGIC:
                    raise Unreadable("BadGzip", "gzip stream is followed by data that is not gzip")
                inflater, pending = zlib.decompressobj(16 + zlib.MAX_WBITS), rest
            elif not out and not pending:
                raise Unreadable("BadGzip", "gzip stream is corrupt or truncated: it ends early")
    except zlib.error as exc:
        raise Unreadable("BadGzip", f"gzip stream is corrupt or truncated: {exc}") from None


def inflate(
    data: bytes, *, limit: int, spill_above: int, spill_dir: str | None, name: str = "object"
) -> bytes | Spill:
    """The JSON of an object (gzip, or JSON already): as bytes up to ``spill_above``, else in a
    spill file named after ``name``. Raises :class:`Unreadable` (``EmptyObject``, ``NotGzip``,
    ``BadGzip``, ``TooLarge`` past ``limit`` inflated bytes, without inflating further)."""
    if not data:
        raise Unreadable("EmptyObject", "object is empty (0 bytes)")
    if data[:2] == _GZIP_MAGIC:
        chunks: Iterator[bytes] = _gunzip(data)
    elif data.lstrip()[:1] == b"{":
        chunks = iter((data,))  # already uncompressed (an archive synced and gunzipped on disk)
    else:
        raise Unreadable("NotGzip", f"object is neither gzip nor JSON (starts with {data[:8]!r})")
    held: list[bytes] = []
    total = 0
    spill: IO[bytes] | None = None
    path = ""
    try:
        for chunk in chunks:
            total += len(chunk)
            if total > limit:
                raise _too_large(limit)
            if spill is None and total > spill_above:
                fd, path = tempfile.mkstemp(prefix="ct-", suffix="-" + _safe(name), dir=spill_dir)
                spill = os.fdopen(fd, "wb")
                spill.writelines(held)
                held = []
            if spill is None:
                held.append(chunk)
            else:
                spill.write(chunk)
    except BaseException:
        if spill is not None:
            spill.close()
            os.unlink(path)
        raise
    if spill is None:
        return b"".join(held)
    spill.close()
    return Spill(path, total)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name.rsplit("/", 1)[-1])[-80:]


def _parse(run: bytes) -> list[Any] | None:
    try:
        records = orjson.loads(b"[" + run + b"]")
    except orjson.JSONDecodeError:
        return None
    return records if isinstance(records, list) else None


def _scan_cut(buf: bytes, want: int) -> int | None:
    """The offset of the first comma between records at or after ``want`` in ``buf`` (which
    starts at a record), by an exact scan of its strings and brackets; None if not in ``buf``."""
    depth = 0
    for m in _TOKEN.finditer(buf):
        c = buf[m.start()]
        if c == 0x22:  # a whole string
            continue
        if c in b"{[":
            depth += 1
        elif c in b"}]":
            depth -= 1
        elif depth == 0 and m.start() >= want:
            return m.start()
    return None


def _cut(buf: bytes, want: int) -> tuple[int, int, list[Any]] | None:
    """Where to cut ``buf`` (starting at a record) after at least ``want`` bytes: (end of the
    last record, start of the next, the records); None if no cut in ``buf`` parses."""
    for pattern in _CUTS:
        for tries, m in enumerate(pattern.finditer(buf, want)):
            if tries == _TRIES:
                break
            records = _parse(buf[: m.start() + 1])
            if records is not None:
                return m.start() + 1, m.end(), records
    at = _scan_cut(buf, want)
    if at is not None:
        records = _parse(buf[:at])
        if records is not None:
            comma = _COMMA.match(buf, at)
            return at, comma.end() if comma else at + 1, records
    return None


def spans(spill: Spill, batch_bytes: int) -> list[Span]:
    """Cut a spilled document ``{"Records": [...]}`` into runs of whole records of about
    ``batch_bytes``, checking that each parses. Raises :class:`Unreadable` (``NoRecords`` when
    the document does not begin with its Records array, ``BadJson``)."""
    size = spill.json_bytes
    with open(spill.path, "rb") as f:
        head = _HEAD.match(f.read(_EDGE))
        if head is None:
            raise Unreadable(
                "NoRecords",
                f"object of {size / MiB:.0f} MiB of JSON does not begin with"
                ' {"Records": [, so it cannot be read in batches',
            )
        f.seek(max(head.end(), size - _EDGE))
        tail_at = f.tell()
        tail = _TAIL.search(f.read().rstrip())
        if tail is None:
            raise Unreadable("BadJson", "invalid JSON: the document does not end with ]}")
        pos, end = head.end(), tail_at + tail.start()
        out: list[Span] = []
        index = 0
        while pos < end:
            window = batch_bytes * 2
            while True:
                f.seek(pos)
                buf = f.read(min(window, end - pos))
                found = _cut(buf, batch_bytes) if pos + len(buf) < end else None
                if found is not None:
                    stop, resume, records = found
                    break
                if pos + len(buf) >= end:  # the rest is the last run
                    if not buf.strip():
                        return out
                    last = _parse(buf.rstrip())
                    if last is None:
                        raise Unreadable("BadJson", f"invalid JSON in records from byte {pos}")
                    stop, resume, records = len(buf.rstrip()), len(buf), last
                    break
                if window >= max(_MAX_RECORD, 4 * batch_bytes):
                    raise Unreadable(
                        "BadJson",
                        f"invalid JSON: no end of a record within {window / MiB:.0f} MiB"
                        f" from byte {pos}",
                    )
                window *= 2  # one record larger than the window: read more of it
            out.append(Span(pos, pos + stop, index, len(records)))
            index += len(records)
            pos += resume
            del records, buf
    return out


def read_span(path: str, span: Span) -> list[Any]:
    """The records of one span of a spill file."""
    with open(path, "rb") as f:
        f.seek(span.start)
        records = _parse(f.read(span.end - span.start))
    if records is None or len(records) != span.count:
        raise Unreadable("BadJson", f"records at bytes {span.start}-{span.end} changed on disk")
    return records
