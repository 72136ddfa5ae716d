"""The dead-letter: JSON lines of everything that was not indexed, and why.

Each line holds the stage that gave up (``fetch``, ``decode``, ``index``), the object key, the
record's position in the object, the target index, the error type and reason, and the raw
record (or document) where there is one, so it can be inspected and re-sent. Lines are flushed
and fsynced by :meth:`DeadLetter.sync` before the checkpoint settles the object they belong to.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import IO, Any

import orjson

from ingest.errors import CheckpointError

__all__ = ["DeadLetter", "Entry", "read_entries"]

Entry = dict[str, Any]


class DeadLetter:
    """An append-only JSON-lines file, opened lazily on the first entry."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._fh: IO[bytes] | None = None
        self._dirty = False

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
        line = orjson.dumps(entry, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"
        try:
            if self._fh is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = self.path.open("ab")
            self._fh.write(line)
        except OSError as exc:
            raise CheckpointError(f"dead-letter {self.path}: {exc}") from exc
        self.count += 1
        self._dirty = True

    def sync(self) -> None:
        """Make every entry written so far durable."""
        if self._fh is not None and self._dirty:
            try:
                self._fh.flush()
                os.fsync(self._fh.fileno())
            except OSError as exc:
                raise CheckpointError(f"dead-letter {self.path}: {exc}") from exc
            self._dirty = False

    def close(self) -> None:
        if self._fh is not None:
            self.sync()
            self._fh.close()
            self._fh = None


def read_entries(path: Path) -> list[Entry]:
    """Every entry of a dead-letter file (for tests and the ``deadletter`` commands)."""
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
