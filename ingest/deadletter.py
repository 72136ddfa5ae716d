"""The dead-letter: JSON lines of everything that was not indexed, and why.

Each line holds the stage that gave up (``fetch``, ``decode``, ``index``), the object key, the
record's position in the object, the target index and id, the error type and reason, and the
raw record (for ``index``, the document as it was sent), so it can be inspected, fixed by hand
and re-sent. Lines are flushed at once and fsynced by :meth:`DeadLetter.sync` before the
checkpoint settles the object they belong to. A lock file beside the dead-letter keeps writers
and a replay's rewrite from losing each other's lines. What people do with it afterwards
(``ct-ingest deadletter summary`` and ``replay``) is in :mod:`ingest.ops.replay`.
"""

from __future__ import annotations

import fcntl
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import orjson

from ingest.errors import CheckpointError
from ingest.private import open_private

__all__ = ["DeadLetter", "Entry", "read_entries", "rewrite"]

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
