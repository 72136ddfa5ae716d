"""The durable checkpoint: an embedded SQLite ledger of the objects already dealt with.

An object is written here as ``done`` only after OpenSearch acknowledged every one of its
documents or they were dead-lettered (see ``ingest.pipeline``), and as ``failed`` when the
object as a whole could not be read or decoded (it is in the dead-letter). A later run skips
settled objects whose ETag is unchanged, so it downloads nothing twice. Each write is one
transaction in WAL mode: a crash leaves either the old row or the new one.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from ingest.errors import CheckpointError
from ingest.source import ObjectRef

__all__ = ["Ledger", "ObjectCounts", "Status"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    source       TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    etag         TEXT    NOT NULL,
    size         INTEGER NOT NULL,
    status       TEXT    NOT NULL,
    records      INTEGER NOT NULL DEFAULT 0,
    indexed      INTEGER NOT NULL DEFAULT 0,
    deadlettered INTEGER NOT NULL DEFAULT 0,
    skipped      INTEGER NOT NULL DEFAULT 0,
    updated_at   REAL    NOT NULL,
    PRIMARY KEY (source, key)
) WITHOUT ROWID;
"""


_TOTALS = (
    "SELECT COUNT(*), COALESCE(SUM(status='done'),0), COALESCE(SUM(status='failed'),0),"
    " COALESCE(SUM(records),0), COALESCE(SUM(indexed),0), COALESCE(SUM(deadlettered),0),"
    " COALESCE(SUM(skipped),0) FROM objects"
)


class Status(StrEnum):
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ObjectCounts:
    records: int = 0
    indexed: int = 0
    deadlettered: int = 0
    skipped: int = 0


class Ledger:
    """One SQLite file; use as a context manager or call :meth:`close`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=10000")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise CheckpointError(f"checkpoint {path}: {exc}") from exc

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def settled(
        self, source: str, refs: Sequence[ObjectRef], *, retry_failed: bool = False
    ) -> set[str]:
        """The keys among ``refs`` that are done (or failed, unless retried) with the same ETag."""
        if not refs:
            return set()
        statuses = (
            (Status.DONE.value,) if retry_failed else (Status.DONE.value, Status.FAILED.value)
        )
        found: set[str] = set()
        wanted = {r.key: r.etag for r in refs}
        keys = list(wanted)
        try:
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT key, etag, status FROM objects WHERE source = ? AND key IN ({marks})",  # noqa: S608 (placeholders only)
                    (source, *chunk),
                )
                found.update(k for k, etag, st in rows if etag == wanted[k] and st in statuses)
        except sqlite3.Error as exc:
            raise CheckpointError(f"checkpoint {self.path}: {exc}") from exc
        return found

    def record(self, source: str, ref: ObjectRef, status: Status, counts: ObjectCounts) -> None:
        """Settle one object (replacing any earlier row for the same key)."""
        self.record_many(source, [(ref, status, counts)])

    def record_many(
        self, source: str, rows: Iterable[tuple[ObjectRef, Status, ObjectCounts]]
    ) -> None:
        """Settle several objects in one transaction."""
        now = time.time()
        values = [
            (
                source,
                ref.key,
                ref.etag,
                ref.size,
                st.value,
                c.records,
                c.indexed,
                c.deadlettered,
                c.skipped,
                now,
            )
            for ref, st, c in rows
        ]
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(
                    "INSERT OR REPLACE INTO objects VALUES (?,?,?,?,?,?,?,?,?,?)", values
                )
        except sqlite3.Error as exc:
            raise CheckpointError(f"checkpoint {self.path}: {exc}") from exc

    def totals(self, source: str | None = None) -> dict[str, int]:
        """Objects and records by status (for summaries and tests)."""
        sql = _TOTALS + (" WHERE source = ?" if source else "")
        row = self._db.execute(sql, (source,) if source else ()).fetchone()
        names = ("objects", "done", "failed", "records", "indexed", "deadlettered", "skipped")
        return dict(zip(names, (int(v) for v in row), strict=True))
