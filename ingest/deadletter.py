"""The dead-letter: JSON lines of everything that was not indexed, and why; and what you do
with it afterwards (``ct-ingest deadletter summary`` and ``replay``).

Each line holds the stage that gave up (``fetch``, ``decode``, ``index``), the object key, the
record's position in the object, the target index and id, the error type and reason, and the
raw record (for ``index``, the document as it was sent), so it can be inspected, fixed by hand
and re-sent. Lines are flushed at once and fsynced by :meth:`DeadLetter.sync` before the
checkpoint settles the object they belong to. A lock file beside the dead-letter keeps writers
and a replay's rewrite from losing each other's lines.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from ingest.errors import CheckpointError
from ingest.private import open_private

__all__ = [
    "DeadLetter",
    "Entry",
    "ReplayReport",
    "read_entries",
    "replay",
    "rewrite",
    "summarize",
]

Entry = dict[str, Any]


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    lock = path.with_name(path.name + ".lock")
    try:
        with open_private(lock) as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    except OSError as exc:
        raise CheckpointError(f"dead-letter {path}: {exc}") from exc


class DeadLetter:
    """An append-only JSON-lines file, opened lazily on the first entry."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._fh: IO[bytes] | None = None
        self._dirty = False

    def _open(self) -> IO[bytes]:
        # (Re)open when a replay has replaced the file since we opened it.
        if self._fh is not None:
            try:
                if os.fstat(self._fh.fileno()).st_ino == os.stat(self.path).st_ino:
                    return self._fh
            except FileNotFoundError:
                pass
            self._fh.close()
        self._fh = open_private(self.path)
        return self._fh

    def add(
        self,
        *,
        stage: str,
        source: str,
        key: str,
        error_type: str,
        reason: str,
        record_index: int | None = None,
        index: str | None = None,
        doc_id: str | None = None,
        record: Any = None,
    ) -> None:
        entry: Entry = {
            "entry_id": uuid.uuid4().hex,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "stage": stage,
            "source": source,
            "key": key,
            "record_index": record_index,
            "index": index,
            "id": doc_id,
            "error_type": error_type,
            "reason": reason,
            "record": record,
        }
        line = orjson.dumps(entry) + b"\n"
        with _locked(self.path):
            try:
                fh = self._open()
                fh.write(line)
                fh.flush()
            except OSError as exc:
                raise CheckpointError(f"dead-letter {self.path}: {exc}") from exc
        self.count += 1
        self._dirty = True

    def sync(self) -> None:
        """Make every entry written so far durable."""
        if self._fh is not None and self._dirty:
            try:
                os.fsync(self._fh.fileno())
            except OSError as exc:
                raise CheckpointError(f"dead-letter {self.path}: {exc}") from exc
            self._dirty = False

    def close(self) -> None:
        if self._fh is not None:
            self.sync()
            self._fh.close()
            self._fh = None


def _entry_id(entry: Entry, line: bytes) -> str:
    return str(
        entry.get("entry_id") or uuid.uuid5(uuid.NAMESPACE_OID, line.decode("utf-8", "replace")).hex
    )


def read_entries(path: Path) -> list[Entry]:
    """Every entry of a dead-letter file, each with an ``entry_id``."""
    if not path.exists():
        return []
    out = []
    for line in path.read_bytes().splitlines():
        if line.strip():
            entry = orjson.loads(line)
            entry["entry_id"] = _entry_id(entry, line)
            out.append(entry)
    return out


def rewrite(path: Path, drop: set[str], update: dict[str, Entry]) -> int:
    """Atomically remove the entries ``drop`` names and replace those ``update`` names, keeping
    any entry written meanwhile; returns how many entries remain."""
    with _locked(path):
        kept = [
            update.get(e["entry_id"], e) for e in read_entries(path) if e["entry_id"] not in drop
        ]
        tmp = path.with_name(path.name + ".tmp")
        with open_private(tmp, truncate=True) as fh:
            fh.write(b"".join(orjson.dumps(e) + b"\n" for e in kept))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    return len(kept)


@dataclass
class Group:
    stage: str
    error_type: str
    count: int = 0
    objects: set[str] = field(default_factory=set)
    replayable: int = 0
    example: str = ""


def summarize(entries: list[Entry]) -> list[Group]:
    """Entries grouped by stage and error type, largest group first."""
    groups: dict[tuple[str, str], Group] = {}
    for e in entries:
        g = groups.setdefault((e["stage"], e["error_type"]), Group(e["stage"], e["error_type"]))
        g.count += 1
        g.objects.add(e["key"])
        g.replayable += e.get("record") is not None
        g.example = g.example or str(e.get("reason", ""))[:160]
    return sorted(groups.values(), key=lambda g: (-g.count, g.stage, g.error_type))


@dataclass
class ReplayReport:
    entries: int = 0
    indexed: int = 0
    already_there: int = 0
    still_rejected: int = 0
    not_replayable: int = 0  # whole objects: rerun the backfill with --retry-failed
    remaining: int = 0
    reasons: dict[str, int] = field(default_factory=lambda: defaultdict(int))


async def replay(path: Path, sink_config: Any, client: Any) -> ReplayReport:
    """Re-send every entry that has a record; remove what lands, keep (with the new reason)
    what is still refused. ``client`` is a :class:`~ingest.sink.BulkClient`."""
    from ingest.decode import Rejected, document_for, to_document
    from ingest.sink import BulkSink, Outcome

    entries = read_entries(path)
    report = ReplayReport(entries=len(entries))
    landed: set[str] = set()
    update: dict[str, Entry] = {}
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def keep(entry: Entry, error_type: str, reason: str) -> None:
        report.still_rejected += 1
        report.reasons[error_type] += 1
        update[entry["entry_id"]] = {
            **entry,
            "error_type": error_type,
            "reason": reason,
            "time": now,
            "replays": int(entry.get("replays", 0)) + 1,
        }

    class _Owner:
        def __init__(self, entry: Entry) -> None:
            self.entry = entry

        def settle(self, doc: Any, outcome: Outcome) -> None:
            if outcome.indexed:
                landed.add(self.entry["entry_id"])
                report.indexed += 1
                report.already_there += outcome.existed
            else:
                keep(self.entry, outcome.error_type or "Rejected", outcome.reason or "")

    async with asyncio.TaskGroup() as tg:
        sink = BulkSink(client, sink_config, tg)
        for e in entries:
            record = e.get("record")
            if record is None:
                report.not_replayable += 1
                continue
            if e["stage"] == "index" and e.get("index") and e.get("id"):
                doc = document_for(e["id"], e["index"], e.get("record_index") or 0, record)
            else:
                made = to_document(record, sink_config.index_prefix, e.get("record_index") or 0)
                if isinstance(made, Rejected):
                    keep(e, made.error_type, made.reason)
                    continue
                doc = made[0]
            await sink.put(doc, _Owner(e))
        await sink.drain()
    report.remaining = rewrite(path, landed, update)
    return report
