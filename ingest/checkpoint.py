"""The durable checkpoint: an embedded SQLite ledger (WAL mode) of objects and runs.

Per object: key, ETag, size, status and counts. ``pending`` when listed, ``in-flight`` when its
fetch starts, ``done`` only after OpenSearch acknowledged every one of its documents or they were
dead-lettered (see ``ingest.engine``), ``failed`` when the object as a whole could not be read
or decoded (it is in the dead-letter). A later run skips settled objects (done, or failed unless
``--retry-failed``) whose ETag is unchanged; pending and in-flight ones, left by a crash, are
simply done again (idempotent ``_id``s make that safe). Every write is one transaction, so a
``kill -9`` at any instruction leaves either the old row or the new one.

Per run: when it started and ended, how, and its counters, for ``ct-ingest status``.

At fleet scale (tens of millions of objects) a row per object would make the file gigabytes:
:meth:`Ledger.compact` folds the done objects of every day folder with nothing pending or in
flight into one row per day, holding the day's sums, its newest key (where ``tail`` resumes)
and, per object, a hash of its key and of its ETag with its counts (40 bytes), so that
:meth:`Ledger.settled` still answers per object and a changed ETag is still done again. Failed
objects keep their rows (``status`` and ``--retry-failed`` list them). The ledger compacts by
itself every ``compact_every`` objects it settles.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sqlite3
import struct
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from ingest.errors import CheckpointError
from ingest.private import touch_private
from ingest.source import ObjectRef

__all__ = ["Ledger", "ObjectCounts", "RunRow", "Status"]

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
CREATE INDEX IF NOT EXISTS objects_status ON objects (source, status);
CREATE TABLE IF NOT EXISTS days (
    source       TEXT    NOT NULL,
    prefix       TEXT    NOT NULL,
    newest       TEXT    NOT NULL,
    objects      INTEGER NOT NULL,
    records      INTEGER NOT NULL,
    indexed      INTEGER NOT NULL,
    deadlettered INTEGER NOT NULL,
    skipped      INTEGER NOT NULL,
    bytes        INTEGER NOT NULL,
    entries      BLOB    NOT NULL,
    UNIQUE (source, prefix)
);
CREATE TABLE IF NOT EXISTS runs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    source       TEXT    NOT NULL,
    host         TEXT    NOT NULL,
    pid          INTEGER NOT NULL,
    started_at   REAL    NOT NULL,
    updated_at   REAL    NOT NULL,
    finished_at  REAL,
    status       TEXT    NOT NULL,
    listed       INTEGER NOT NULL DEFAULT 0,
    objects_done INTEGER NOT NULL DEFAULT 0,
    records      INTEGER NOT NULL DEFAULT 0,
    indexed      INTEGER NOT NULL DEFAULT 0,
    deadlettered INTEGER NOT NULL DEFAULT 0,
    skipped      INTEGER NOT NULL DEFAULT 0,
    bytes        INTEGER NOT NULL DEFAULT 0,
    listing_done INTEGER NOT NULL DEFAULT 0
);
"""

_TOTALS = (
    "SELECT COUNT(*), COALESCE(SUM(status='done'),0), COALESCE(SUM(status='failed'),0),"
    " COALESCE(SUM(status='in-flight'),0), COALESCE(SUM(status='pending'),0),"
    " COALESCE(SUM(records),0), COALESCE(SUM(indexed),0), COALESCE(SUM(deadlettered),0),"
    " COALESCE(SUM(skipped),0), COALESCE(SUM(CASE WHEN status='done' THEN size ELSE 0 END),0)"
    " FROM objects"
)


_DAY_TOTALS = (
    "SELECT COALESCE(SUM(objects),0), COALESCE(SUM(records),0), COALESCE(SUM(indexed),0),"
    " COALESCE(SUM(deadlettered),0), COALESCE(SUM(skipped),0), COALESCE(SUM(bytes),0) FROM days"
)
# One compacted object: key hash, ETag hash, records, indexed, dead-lettered, skipped, size.
_ENTRY = struct.Struct("<QQIIIIQ")
_U32 = 0xFFFFFFFF


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _day(key: str) -> str:
    """The folder of a key (a day, in CloudTrail's layout)."""
    return key[: key.rfind("/") + 1]


class Status(StrEnum):
    PENDING = "pending"
    IN_FLIGHT = "in-flight"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ObjectCounts:
    records: int = 0
    indexed: int = 0
    deadlettered: int = 0
    skipped: int = 0


@dataclass(frozen=True, slots=True)
class RunRow:
    id: int
    source: str
    host: str
    pid: int
    started_at: float
    updated_at: float
    finished_at: float | None
    status: str
    listed: int
    objects_done: int
    records: int
    indexed: int
    deadlettered: int
    skipped: int
    bytes: int
    listing_done: int


class Ledger:
    """One SQLite file; use as a context manager or call :meth:`close`."""

    def __init__(self, path: Path, *, compact_every: int = 100_000) -> None:
        self.path = path
        self.compact_every = compact_every
        self._settled_since_compaction = 0
        # (source, day) -> {key hash: ETag hash} of compacted days recently asked about
        self._day_cache: OrderedDict[tuple[str, str], dict[int, int]] = OrderedDict()
        try:
            touch_private(path)  # SQLite gives the -wal and -shm files the database's mode
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

    def _write(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise CheckpointError(f"checkpoint {self.path}: {exc}") from exc

    # -- objects -----------------------------------------------------------------------------
    def settled(
        self, source: str, refs: Sequence[ObjectRef], *, retry_failed: bool = False
    ) -> set[str]:
        """The keys among ``refs`` that are done (or failed, unless retried) with the same ETag."""
        return set(self.settled_status(source, refs, retry_failed=retry_failed))

    def settled_status(
        self, source: str, refs: Sequence[ObjectRef], *, retry_failed: bool = False
    ) -> dict[str, Status]:
        """Like :meth:`settled`, with each key's status: ``done``, or ``failed`` in an earlier
        run (and so not fetched again unless ``retry_failed``)."""
        if not refs:
            return {}
        statuses = (Status.DONE,) if retry_failed else (Status.DONE, Status.FAILED)
        found: dict[str, Status] = {}
        wanted = {r.key: r.etag for r in refs}
        keys = list(wanted)
        rowed: set[str] = set()  # keys with a row: the row decides, not a compacted day
        try:
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT key, etag, status FROM objects WHERE source = ? AND key IN ({marks})",  # noqa: S608 (placeholders only)  # nosec B608
                    (source, *chunk),
                )
                for k, etag, st in rows:
                    rowed.add(k)
                    if etag == wanted[k] and st in statuses:
                        found[k] = Status(st)
            for k in keys:
                if k not in rowed:
                    entries = self._compacted(source, _day(k))
                    if entries and entries.get(_hash(k)) == _hash(wanted[k]):
                        found[k] = Status.DONE
        except sqlite3.Error as exc:
            raise CheckpointError(f"checkpoint {self.path}: {exc}") from exc
        return found

    def _compacted(self, source: str, day: str) -> dict[int, int]:
        """Key hash -> ETag hash of a compacted day (empty if none); the last 64 are cached."""
        entries = self._day_cache.get((source, day))
        if entries is None:
            row = self._db.execute(
                "SELECT entries FROM days WHERE source = ? AND prefix = ?", (source, day)
            ).fetchone()
            blob = row[0] if row else b""
            entries = {e[0]: e[1] for e in _ENTRY.iter_unpack(blob)}
            self._day_cache[(source, day)] = entries
            if len(self._day_cache) > 64:
                self._day_cache.popitem(last=False)
        else:
            self._day_cache.move_to_end((source, day))
        return entries

    def mark(self, source: str, refs: Iterable[ObjectRef], status: Status) -> None:
        """Note objects as in flight (replacing an earlier attempt's row), or as pending (only
        where there is no row yet: a pending mark never hides progress)."""
        verb = "INSERT OR IGNORE" if status is Status.PENDING else "INSERT OR REPLACE"
        now = time.time()
        self._write(
            f"{verb} INTO objects (source, key, etag, size, status, updated_at)"
            " VALUES (?,?,?,?,?,?)",
            [(source, r.key, r.etag, r.size, status.value, now) for r in refs],
        )

    def record(self, source: str, ref: ObjectRef, status: Status, counts: ObjectCounts) -> None:
        """Settle one object (replacing any earlier row for the same key)."""
        self.record_many(source, [(ref, status, counts)])

    def record_many(
        self, source: str, rows: Iterable[tuple[ObjectRef, Status, ObjectCounts]]
    ) -> None:
        """Settle several objects in one transaction (and compact every ``compact_every``)."""
        now = time.time()
        values = [
            (source, ref.key, ref.etag, ref.size, st.value, *_counts(c), now) for ref, st, c in rows
        ]
        self._write("INSERT OR REPLACE INTO objects VALUES (?,?,?,?,?,?,?,?,?,?)", values)
        self._settled_since_compaction += len(values)
        if self.compact_every and self._settled_since_compaction >= self.compact_every:
            self.compact()

    def compact(self, batch: int = 50_000) -> int:
        """Fold the done objects of each day folder that has nothing pending or in flight into
        the day's one row; returns how many objects were folded. Each batch is a transaction."""
        self._settled_since_compaction = 0
        folded = 0
        try:
            busy = {
                (src, _day(key))
                for src, key in self._db.execute(
                    "SELECT source, key FROM objects WHERE status IN ('pending', 'in-flight')"
                )
            }
            after = ("", "")
            while True:
                rows = self._db.execute(
                    "SELECT source, key, etag, size, records, indexed, deadlettered, skipped"
                    " FROM objects WHERE status = 'done' AND (source, key) > (?, ?)"
                    " ORDER BY source, key LIMIT ?",
                    (*after, batch),
                ).fetchall()
                if not rows:
                    break
                after = (rows[-1][0], rows[-1][1])
                groups: dict[tuple[str, str], list[Any]] = {}
                for row in rows:
                    where = (row[0], _day(row[1]))
                    if where not in busy:
                        groups.setdefault(where, []).append(row)
                with self._db:
                    self._db.execute("BEGIN IMMEDIATE")
                    for (src, day), members in groups.items():
                        self._fold(src, day, members)
                        folded += len(members)
        except sqlite3.Error as exc:
            raise CheckpointError(f"checkpoint {self.path}: {exc}") from exc
        finally:
            self._day_cache.clear()
        return folded

    def _fold(self, source: str, day: str, rows: list[Any]) -> None:
        old = self._db.execute(
            "SELECT newest, entries FROM days WHERE source = ? AND prefix = ?", (source, day)
        ).fetchone()
        newest, blob = old if old else ("", b"")
        entries = {e[0]: e for e in _ENTRY.iter_unpack(blob)}
        for _src, key, etag, size, *counts in rows:  # a redone object replaces its old entry
            h = _hash(key)
            entries[h] = (h, _hash(etag), *(c if c <= _U32 else _U32 for c in counts), size)
        newest = max(newest, rows[-1][1])  # rows come in key order
        packed = b"".join(_ENTRY.pack(*entries[h]) for h in sorted(entries))
        sums = [sum(e[i] for e in entries.values()) for i in (2, 3, 4, 5, 6)]
        self._db.execute(
            "INSERT OR REPLACE INTO days VALUES (?,?,?,?,?,?,?,?,?,?)",
            (source, day, newest, len(entries), *sums, packed),
        )
        # Every done row of the day from the first to the last key read is among ``rows``.
        self._db.execute(
            "DELETE FROM objects WHERE source = ? AND key >= ? AND key <= ? AND status = 'done'"
            " AND instr(substr(key, ?), '/') = 0",
            (source, rows[0][1], rows[-1][1], len(day) + 1),
        )

    def totals(self, source: str | None = None) -> dict[str, int]:
        """Objects by status and record counts (for status, summaries and tests), compacted
        days included (an object redone since its day was compacted counts twice until the
        next compaction)."""
        where, args = (" WHERE source = ?", (source,)) if source else ("", ())
        row = list(self._db.execute(_TOTALS + where, args).fetchone())
        objects, records, indexed, dead, skipped, size = self._db.execute(
            _DAY_TOTALS + where, args
        ).fetchone()
        for i, extra in ((0, objects), (1, objects), (5, records), (6, indexed), (7, dead)):
            row[i] += extra
        row[8] += skipped
        row[9] += size
        names = (
            "objects",
            "done",
            "failed",
            "in_flight",
            "pending",
            "records",
            "indexed",
            "deadlettered",
            "skipped",
            "bytes_done",
        )
        return dict(zip(names, (int(v) for v in row), strict=True))

    def newest_settled(self, source: str, prefix: str) -> str | None:
        """The last (in key order, so in time) settled key under ``prefix``: where tail resumes
        (compacted days count by their newest key)."""
        args = (source, prefix, prefix + "\uffff")
        row = self._db.execute(
            "SELECT MAX(key) FROM objects WHERE source = ? AND key >= ? AND key < ?"
            " AND status IN ('done', 'failed')",
            args,
        ).fetchone()
        day = self._db.execute(
            "SELECT MAX(newest) FROM days WHERE source = ? AND newest >= ? AND newest < ?", args
        ).fetchone()
        newest = max((r[0] for r in (row, day) if r and r[0]), default=None)
        return str(newest) if newest else None

    def keys(self, source: str, status: Status) -> list[str]:
        """The keys with ``status`` (done objects of compacted days are not listed)."""
        rows = self._db.execute(
            "SELECT key FROM objects WHERE source = ? AND status = ? ORDER BY key",
            (source, status.value),
        )
        return [k for (k,) in rows]

    # -- runs --------------------------------------------------------------------------------
    def start_run(self, source: str) -> int:
        now = time.time()
        try:
            with self._db:
                cur = self._db.execute(
                    "INSERT INTO runs (source, host, pid, started_at, updated_at, status)"
                    " VALUES (?,?,?,?,?, 'running')",
                    (source, socket.gethostname(), os.getpid(), now, now),
                )
        except sqlite3.Error as exc:
            raise CheckpointError(f"checkpoint {self.path}: {exc}") from exc
        return int(cur.lastrowid or 0)

    def update_run(
        self, run_id: int, *, status: str | None = None, finished: bool = False, **counters: int
    ) -> None:
        sets = ["updated_at = ?"]
        args: list[Any] = [time.time()]
        if status:
            sets.append("status = ?")
            args.append(status)
        if finished:
            sets.append("finished_at = ?")
            args.append(time.time())
        for name, value in counters.items():
            if name not in RunRow.__dataclass_fields__:
                raise ValueError(f"no run counter {name}")
            sets.append(f"{name} = ?")
            args.append(value)
        self._write(f"UPDATE runs SET {', '.join(sets)} WHERE id = ?", [(*args, run_id)])  # noqa: S608 (column names checked)  # nosec B608

    def last_run(self) -> RunRow | None:
        row = self._db.execute("SELECT * FROM runs ORDER BY id DESC LIMIT 1").fetchone()
        return RunRow(*row) if row else None


def _counts(c: ObjectCounts) -> tuple[int, int, int, int]:
    return c.records, c.indexed, c.deadlettered, c.skipped
