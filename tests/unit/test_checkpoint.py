from __future__ import annotations

from pathlib import Path

from ingest.checkpoint import Ledger, ObjectCounts, Status
from ingest.source import ObjectRef

SRC = "s3://bucket"


class TestLedger:
    def test_done_objects_are_settled_across_reopen(self, tmp_path: Path) -> None:
        """An object recorded as done is settled for the same ETag, also after reopening."""
        ref = ObjectRef("a.json.gz", "etag1", 10)
        with Ledger(tmp_path / "l.sqlite") as ledger:
            assert set() == ledger.settled(SRC, [ref])
            ledger.record(SRC, ref, Status.DONE, ObjectCounts(records=3, indexed=3))
        with Ledger(tmp_path / "l.sqlite") as ledger:
            assert {"a.json.gz"} == ledger.settled(SRC, [ref, ObjectRef("b", "e", 1)])
            assert {
                "objects": 1,
                "done": 1,
                "failed": 0,
                "in_flight": 0,
                "pending": 0,
                "records": 3,
                "indexed": 3,
                "deadlettered": 0,
                "skipped": 0,
                "bytes_done": 10,
            } == ledger.totals()

    def test_changed_etag_is_redone(self, tmp_path: Path) -> None:
        """An object whose ETag changed is not settled."""
        with Ledger(tmp_path / "l.sqlite") as ledger:
            ledger.record(SRC, ObjectRef("a", "old", 1), Status.DONE, ObjectCounts())
            assert set() == ledger.settled(SRC, [ObjectRef("a", "new", 1)])

    def test_sources_are_separate(self, tmp_path: Path) -> None:
        """The same key in another source is not settled."""
        with Ledger(tmp_path / "l.sqlite") as ledger:
            ledger.record(SRC, ObjectRef("a", "e", 1), Status.DONE, ObjectCounts())
            assert set() == ledger.settled("/data/logs", [ObjectRef("a", "e", 1)])

    def test_failed_objects_are_settled_unless_retried(self, tmp_path: Path) -> None:
        """Failed objects stay settled by default and come back with retry_failed."""
        ref = ObjectRef("bad", "e", 1)
        with Ledger(tmp_path / "l.sqlite") as ledger:
            ledger.record(SRC, ref, Status.FAILED, ObjectCounts())
            assert {"bad"} == ledger.settled(SRC, [ref])
            assert set() == ledger.settled(SRC, [ref], retry_failed=True)

    def test_many_keys_in_one_query_batch(self, tmp_path: Path) -> None:
        """Lookups of more keys than one SQL statement takes still answer for all of them."""
        refs = [ObjectRef(f"k{i}", "e", 1) for i in range(1200)]
        with Ledger(tmp_path / "l.sqlite") as ledger:
            ledger.record_many(SRC, [(r, Status.DONE, ObjectCounts()) for r in refs[::2]])
            assert {r.key for r in refs[::2]} == ledger.settled(SRC, refs)


class TestStatuses:
    def test_pending_never_hides_progress(self, tmp_path: Path) -> None:
        """A pending mark does not overwrite an in-flight or done row; in-flight replaces."""
        a, b = ObjectRef("a", "e", 1), ObjectRef("b", "e", 2)
        with Ledger(tmp_path / "l.sqlite") as ledger:
            ledger.mark(SRC, [a], Status.IN_FLIGHT)
            ledger.record(SRC, b, Status.DONE, ObjectCounts(records=1, indexed=1))
            ledger.mark(SRC, [a, b, ObjectRef("c", "e", 3)], Status.PENDING)
            totals = ledger.totals(SRC)
            assert (1, 1, 1) == (totals["in_flight"], totals["done"], totals["pending"])
            assert set() == ledger.settled(SRC, [a])  # in flight at a crash: redone

    def test_runs_are_recorded(self, tmp_path: Path) -> None:
        """A run row starts as running and ends with its status and counters."""
        with Ledger(tmp_path / "l.sqlite") as ledger:
            run = ledger.start_run(SRC)
            ledger.update_run(run, status="stopped", finished=True, indexed=5, listed=3)
            last = ledger.last_run()
            assert last is not None
            assert ("stopped", 5, 3) == (last.status, last.indexed, last.listed)
            assert last.finished_at is not None


DAY1 = "AWSLogs/111122223333/CloudTrail/us-east-1/2024/03/05/"
DAY2 = "AWSLogs/111122223333/CloudTrail/us-east-1/2024/03/06/"
REGION = "AWSLogs/111122223333/CloudTrail/us-east-1/"


def _refs(day: str, n: int, etag: str = "e") -> list[ObjectRef]:
    return [ObjectRef(f"{day}f{i:03d}.json.gz", f"{etag}{i}", 100 + i) for i in range(n)]


class TestCompaction:
    def _ledger(self, tmp_path: Path) -> Ledger:
        """Two days of done objects, one failed object, and a third day still in flight."""
        ledger = Ledger(tmp_path / "l.sqlite", compact_every=0)
        for ref in _refs(DAY1, 50) + _refs(DAY2, 30):
            ledger.record(SRC, ref, Status.DONE, ObjectCounts(records=4, indexed=3, skipped=1))
        ledger.record(SRC, ObjectRef(DAY2 + "bad.json.gz", "x", 5), Status.FAILED, ObjectCounts())
        day3 = "AWSLogs/111122223333/CloudTrail/us-east-1/2024/03/07/"
        ledger.record(SRC, _refs(day3, 2)[0], Status.DONE, ObjectCounts(records=1, indexed=1))
        ledger.mark(SRC, _refs(day3, 2)[1:], Status.IN_FLIGHT)
        return ledger

    def test_a_compacted_ledger_answers_as_before(self, tmp_path: Path) -> None:
        """After compaction (and a reopen) the same objects are settled with the same status,
        the totals and tail's resume point are unchanged, failed objects are still listed, and
        a day with an object in flight keeps its rows."""
        refs = [*_refs(DAY1, 50), *_refs(DAY2, 31)]
        refs[-1] = ObjectRef(DAY2 + "bad.json.gz", "x", 5)
        with self._ledger(tmp_path) as ledger:
            before = (
                ledger.settled_status(SRC, refs),
                ledger.settled_status(SRC, refs, retry_failed=True),
                ledger.totals(),
                ledger.newest_settled(SRC, REGION),
            )
            assert 80 == ledger.compact()
        with Ledger(tmp_path / "l.sqlite") as ledger:
            after = (
                ledger.settled_status(SRC, refs),
                ledger.settled_status(SRC, refs, retry_failed=True),
                ledger.totals(),
                ledger.newest_settled(SRC, REGION),
            )
            assert before == after
            assert 81 == len(after[0])
            assert [DAY2 + "bad.json.gz"] == ledger.keys(SRC, Status.FAILED)
            assert 3 == ledger._db.execute("SELECT COUNT(*) FROM objects").fetchone()[0]
            assert 2 == ledger._db.execute("SELECT COUNT(*) FROM days").fetchone()[0]

    def test_a_changed_etag_is_redone_after_compaction(self, tmp_path: Path) -> None:
        """An object whose ETag changed after its day was compacted is not settled; once redone
        it is settled under its new ETag only, and compacting again counts it once."""
        with self._ledger(tmp_path) as ledger:
            ledger.compact()
            changed = ObjectRef(DAY1 + "f007.json.gz", "new", 999)
            assert {} == ledger.settled_status(SRC, [changed])
            ledger.record(SRC, changed, Status.DONE, ObjectCounts(records=9, indexed=9))
            assert {changed.key: Status.DONE} == ledger.settled_status(SRC, [changed])
            assert 1 == ledger.compact()
            assert {changed.key: Status.DONE} == ledger.settled_status(SRC, [changed])
            assert {} == ledger.settled_status(SRC, [_refs(DAY1, 50)[7]])
            totals = ledger.totals()
            counted = (totals["objects"], totals["done"], totals["records"])
            assert (83, 81, 4 * 79 + 9 + 1) == counted

    def test_the_ledger_compacts_by_itself(self, tmp_path: Path) -> None:
        """Every compact_every settled objects the ledger folds the finished days."""
        with Ledger(tmp_path / "l.sqlite", compact_every=25) as ledger:
            ledger.record_many(SRC, [(r, Status.DONE, ObjectCounts()) for r in _refs(DAY1, 30)])
            assert 0 == ledger._db.execute("SELECT COUNT(*) FROM objects").fetchone()[0]
            assert 30 == len(ledger.settled(SRC, _refs(DAY1, 30)))
