"""The engine's acknowledge-then-settle core on the in-memory edges: a MemoryStore, a
MemoryCluster, and a real ledger and dead-letter in a temporary directory."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import pytest

from ingest.checkpoint import Ledger, ObjectCounts, Status
from ingest.config import Filters, S3Location, Settings, SinkConfig, SourceConfig
from ingest.deadletter import DeadLetter, Entry, read_entries
from ingest.engine import RunStats, run_pipeline
from ingest.errors import CheckpointError
from ingest.retry import RetryPolicy
from ingest.source import ObjectRef
from ingest.testing.memory import MemoryCluster, MemoryStore

FAST = RetryPolicy(attempts=5, initial=0.001, maximum=0.01, deadline=2)
DAY = "AWSLogs/111122223333/CloudTrail/us-east-1/2024/03/05/"
KEY_A = DAY + "111122223333_CloudTrail_us-east-1_20240305T1410Z_a.json.gz"
KEY_B = DAY + "111122223333_CloudTrail_us-east-1_20240305T1415Z_b.json.gz"
KEY_C = (
    "AWSLogs/111122223333/CloudTrail/eu-west-1/2024/03/06/"
    "111122223333_CloudTrail_eu-west-1_20240306T0900Z_c.json.gz"
)


def _record(event_id: str, **over: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "eventID": event_id,
        "eventTime": "2024-03-05T14:07:12Z",
        "eventSource": "s3.amazonaws.com",
        "eventName": "GetObject",
    }
    rec.update(over)
    return rec


def _file(*records: object) -> bytes:
    return gzip.compress(orjson.dumps({"Records": list(records)}), mtime=0)


def _archive() -> dict[str, bytes]:
    """Three log files, six records, one of them excluded by rule."""
    return {
        KEY_A: _file(_record("a1"), _record("a2")),
        KEY_B: _file(
            _record("b1"),
            _record("b2", eventSource="kms.amazonaws.com", eventName="Decrypt"),
        ),
        KEY_C: _file(_record("c1", eventTime="2024-03-06T09:01:00Z"), _record("c2")),
    }


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        source=SourceConfig(location=S3Location("memory", ""), concurrency=2, retry=FAST),
        sink=SinkConfig(url="http://127.0.0.1:9200", retry=FAST),
        filters=Filters(exclude=("kms.amazonaws.com:Decrypt",)),
        state_path=tmp_path / "state.db",
        deadletter_path=tmp_path / "deadletter.jsonl",
        workers=0,
    )


def _run(settings: Settings, store: MemoryStore, cluster: MemoryCluster) -> RunStats:
    """One run on fresh handles of the ledger and dead-letter files (as a new process would)."""
    deadletter = DeadLetter(settings.deadletter_path)
    with Ledger(settings.state_path) as ledger:
        try:
            return asyncio.run(run_pipeline(settings, store, cluster, ledger, deadletter))
        finally:
            deadletter.close()


def _totals(settings: Settings) -> dict[str, int]:
    with Ledger(settings.state_path) as ledger:
        return ledger.totals()


def _where(entries: Iterable[Entry]) -> set[tuple[str, str, int | None, str]]:
    return {(e["stage"], e["key"], e["record_index"], e["error_type"]) for e in entries}


class _PowerLossDeadLetter(DeadLetter):
    """The real dead-letter, which also knows how much of its file is fsynced: what a power
    loss would leave of it. (Reading the file back is not enough: each entry is flushed as it
    is added, so the lines are there whether or not they were synced before the ledger.)"""

    durable = 0

    def sync(self) -> None:
        super().sync()
        if self.path.exists():
            self.durable = self.path.stat().st_size


class _CrashingLedger(Ledger):
    """The real ledger, whose machine loses power the moment it is asked to settle an object:
    it copies what survives of the dead-letter to ``survivor`` and raises."""

    def __init__(self, path: Path, deadletter: _PowerLossDeadLetter, survivor: Path) -> None:
        super().__init__(path)
        self._deadletter = deadletter
        self._survivor = survivor

    def record_many(
        self, source: str, rows: Iterable[tuple[ObjectRef, Status, ObjectCounts]]
    ) -> None:
        data = self._deadletter.path.read_bytes() if self._deadletter.path.exists() else b""
        self._survivor.write_bytes(data[: self._deadletter.durable])
        raise CheckpointError(f"checkpoint {self.path}: power lost while settling")


def _crash_at_settle(
    settings: Settings, store: MemoryStore, cluster: MemoryCluster, survivor: Path
) -> None:
    deadletter = _PowerLossDeadLetter(settings.deadletter_path)
    with _CrashingLedger(settings.state_path, deadletter, survivor) as ledger:
        try:
            with pytest.raises(ExceptionGroup) as info:
                asyncio.run(run_pipeline(settings, store, cluster, ledger, deadletter))
        finally:
            deadletter.close()
    assert info.group_contains(CheckpointError)


class TestRunPipeline:
    def test_clean_run_indexes_every_record_once(self, tmp_path: Path) -> None:
        """Every record not excluded is indexed once, every object is done, the books balance."""
        settings = _settings(tmp_path)
        cluster = MemoryCluster()
        stats = _run(settings, MemoryStore(_archive()), cluster)
        assert {"a1", "a2", "b1", "c1", "c2"} == set(cluster.docs)
        assert (3, 0, 6, 5, 0, 1) == (
            stats.objects_done,
            stats.objects_failed,
            stats.records_seen,
            stats.indexed,
            stats.deadlettered,
            stats.skipped,
        )
        assert stats.records_seen == stats.indexed + stats.deadlettered + stats.skipped
        assert stats.balanced
        totals = _totals(settings)
        assert (3, 3, 0, 6, 5, 0, 1) == (
            totals["objects"],
            totals["done"],
            totals["failed"],
            totals["records"],
            totals["indexed"],
            totals["deadlettered"],
            totals["skipped"],
        )
        assert [] == read_entries(settings.deadletter_path)

    def test_documents_carry_their_object(self, tmp_path: Path) -> None:
        """Each document names the log file it came from (what verify relies on)."""
        cluster = MemoryCluster()
        _run(_settings(tmp_path), MemoryStore(_archive()), cluster)
        assert KEY_C == cluster.docs["c1"]["ct"]["object"]

    def test_second_run_fetches_and_indexes_nothing(self, tmp_path: Path) -> None:
        """A rerun finds every object done in the ledger: no object fetched, nothing sent."""
        settings = _settings(tmp_path)
        cluster = MemoryCluster()
        _run(settings, MemoryStore(_archive()), cluster)
        sent = list(cluster.bodies)
        again = MemoryStore(_archive())
        stats = _run(settings, again, cluster)
        assert [] == again.gets
        assert sent == cluster.bodies
        assert (3, 0, 0, 0) == (
            stats.objects_already_done,
            stats.objects_done,
            stats.records_seen,
            stats.indexed,
        )
        assert 3 == _totals(settings)["done"]

    def test_bad_and_refused_records_are_deadlettered(self, tmp_path: Path) -> None:
        """A record without eventTime and one the cluster refuses go to the dead-letter; the
        object is still done, and records seen = indexed + dead-lettered + skipped."""
        settings = _settings(tmp_path)
        no_time = _record("a2")
        del no_time["eventTime"]
        archive = _archive() | {KEY_A: _file(_record("a1"), no_time, _record("a3"))}
        cluster = MemoryCluster(reject={"a3"})
        stats = _run(settings, MemoryStore(archive), cluster)
        assert {
            ("decode", KEY_A, 1, "MissingEventTime"),
            ("index", KEY_A, 2, "mapper_parsing_exception"),
        } == _where(read_entries(settings.deadletter_path))
        assert {"a1", "b1", "c1", "c2"} == set(cluster.docs)
        assert (3, 7, 4, 2, 1) == (
            stats.objects_done,
            stats.records_seen,
            stats.indexed,
            stats.deadlettered,
            stats.skipped,
        )
        assert stats.records_seen == stats.indexed + stats.deadlettered + stats.skipped
        totals = _totals(settings)
        assert (3, 4, 2) == (totals["done"], totals["indexed"], totals["deadlettered"])

    def test_transient_source_errors_are_retried(self, tmp_path: Path) -> None:
        """An object that answers 503 twice is fetched on the third try and indexed."""
        settings = _settings(tmp_path)
        cluster = MemoryCluster()
        stats = _run(settings, MemoryStore(_archive(), unavailable={KEY_A: 2}), cluster)
        assert {"a1", "a2"} <= set(cluster.docs)
        assert (3, 0, 5) == (stats.objects_done, stats.objects_failed, stats.indexed)
        assert [] == read_entries(settings.deadletter_path)
        assert 3 == _totals(settings)["done"]

    def test_missing_object_is_deadlettered_and_failed(self, tmp_path: Path) -> None:
        """An object listed but gone (404) is dead-lettered as a whole and settled failed; the
        others are indexed; a rerun names it as failed earlier and does not fetch it."""
        settings = _settings(tmp_path)
        cluster = MemoryCluster()
        stats = _run(settings, MemoryStore(_archive(), missing=[KEY_B]), cluster)
        assert {("fetch", KEY_B, None, "SourceError")} == _where(
            read_entries(settings.deadletter_path)
        )
        assert {"a1", "a2", "c1", "c2"} == set(cluster.docs)
        assert (2, 1, 4) == (stats.objects_done, stats.objects_failed, stats.indexed)
        assert stats.balanced
        totals = _totals(settings)
        assert (2, 1) == (totals["done"], totals["failed"])

        again = MemoryStore(_archive(), missing=[KEY_B])
        rerun = _run(settings, again, cluster)
        assert [] == again.gets
        assert (2, 1, 0) == (
            rerun.objects_already_done,
            rerun.objects_failed_earlier,
            rerun.objects_failed,
        )
        assert 1 == len(read_entries(settings.deadletter_path))


class TestCrashAtSettle:
    @pytest.mark.parametrize(
        ("body", "reject", "expected"),
        [
            pytest.param(
                _file(_record("a1"), {"eventID": "a2"}, _record("a3")),
                {"a3"},
                {
                    ("decode", KEY_A, 1, "MissingEventTime"),
                    ("index", KEY_A, 2, "mapper_parsing_exception"),
                },
                id="refused-records",
            ),
            pytest.param(
                _file(_record("a1"))[:20],
                set(),
                {("decode", KEY_A, None, "BadGzip")},
                id="bad-gzip",
            ),
        ],
    )
    def test_deadletter_is_durable_before_the_ledger_settles(
        self, tmp_path: Path, body: bytes, reject: set[str], expected: set[Any]
    ) -> None:
        """When the machine dies the moment the ledger settles an object, the fsynced part of
        the dead-letter already holds that object's entries."""
        settings = _settings(tmp_path)
        survivor = tmp_path / "deadletter-after-power-loss.jsonl"
        _crash_at_settle(
            settings, MemoryStore({KEY_A: body}), MemoryCluster(reject=reject), survivor
        )
        assert expected == _where(read_entries(survivor))
        assert 0 == _totals(settings)["done"] + _totals(settings)["failed"]

    def test_crash_between_acknowledgement_and_settle_is_redone(self, tmp_path: Path) -> None:
        """The cluster acknowledged every document but the ledger never settled the object: a
        rerun does it again, finds the documents there (409), and settles it done."""
        settings = _settings(tmp_path)
        archive = {KEY_A: _file(_record("a1"), _record("a2"), _record("a3"))}
        cluster = MemoryCluster()
        _crash_at_settle(settings, MemoryStore(archive), cluster, tmp_path / "survivor.jsonl")
        assert {"a1", "a2", "a3"} == set(cluster.docs)
        assert (1, 0) == (_totals(settings)["in_flight"], _totals(settings)["done"])

        stats = _run(settings, MemoryStore(archive), cluster)
        assert {"a1", "a2", "a3"} == set(cluster.docs)
        assert stats.sink is not None
        assert (0, 3) == (stats.sink.created, stats.sink.existed)
        assert (1, 3, 3, 3) == (
            stats.objects_done,
            stats.records_seen,
            stats.indexed,
            stats.already_indexed,
        )
        assert stats.balanced
        totals = _totals(settings)
        assert (1, 1, 3, 3) == (
            totals["objects"],
            totals["done"],
            totals["records"],
            totals["indexed"],
        )
        assert [] == read_entries(settings.deadletter_path)


def _linger(tmp_path: Path, seconds: float, **over: Any) -> Settings:
    """The settings of :func:`_settings` with a bulk linger of ``seconds`` (and ``over``)."""
    base = _settings(tmp_path)
    sink = SinkConfig(url="http://127.0.0.1:9200", retry=FAST, linger_seconds=seconds)
    return Settings(
        source=base.source,
        sink=sink,
        filters=base.filters,
        state_path=base.state_path,
        deadletter_path=base.deadletter_path,
        workers=0,
        **over,
    )


class TestPartialBodies:
    def test_a_lone_object_goes_out_after_the_linger(self, tmp_path: Path) -> None:
        """A producer that hands over one object and keeps running (a tail between polls)
        sees it settled, its documents indexed in one request, before it stops producing."""
        settings = _linger(tmp_path, 0.05)
        cluster, store = MemoryCluster(), MemoryStore({KEY_A: _archive()[KEY_A]})
        settled = asyncio.Event()
        seen_before_end: list[str] = []

        async def produce(emit: Any) -> None:
            await emit(store.ref(KEY_A))
            await asyncio.wait_for(settled.wait(), timeout=20)  # fails if only a drain sends
            seen_before_end.extend(cluster.docs)

        deadletter = DeadLetter(settings.deadletter_path)
        with Ledger(settings.state_path) as ledger:
            stats = asyncio.run(
                run_pipeline(
                    settings,
                    store,
                    cluster,
                    ledger,
                    deadletter,
                    produce=produce,
                    on_settled=lambda ref: settled.set(),
                )
            )
        deadletter.close()
        assert ["a1", "a2"] == sorted(seen_before_end)
        assert (1, 2, 1) == (stats.objects_done, stats.indexed, len(cluster.bodies))

    def test_a_stop_sends_the_partial_body(self, tmp_path: Path) -> None:
        """Objects fetched when a stop comes (SIGTERM's drain) are indexed and settled at
        once, in one body, without waiting out a long linger."""
        settings = _linger(tmp_path, 50)
        cluster, store = MemoryCluster(), MemoryStore(_archive())
        stop = asyncio.Event()

        async def produce(emit: Any) -> None:
            for key in sorted(store.objects):
                await emit(store.ref(key))
            while len(store.gets) < 3:  # noqa: ASYNC110 (the store's GETs are a plain list)
                await asyncio.sleep(0.01)
            stop.set()
            await asyncio.Event().wait()  # a tail that would poll on: the stop ends it

        deadletter = DeadLetter(settings.deadletter_path)
        with Ledger(settings.state_path) as ledger:
            stats = asyncio.run(
                run_pipeline(
                    settings, store, cluster, ledger, deadletter, stop=stop, produce=produce
                )
            )
        deadletter.close()
        assert stats.stopped
        assert stats.elapsed < 30  # the drain sent it, not the linger
        assert (3, 5, 1) == (stats.objects_done, stats.indexed, len(cluster.bodies))
        assert 3 == _totals(settings)["done"]

    def test_a_spent_byte_budget_still_moves(self, tmp_path: Path) -> None:
        """With a byte budget that holds one object at a time, the object whose documents wait
        in a partial body is sent after the linger, freeing the budget for the next: the run
        ends with every object done, one body each."""
        settings = _linger(tmp_path, 0.05, inflight_bytes=1)
        cluster = MemoryCluster()
        stats = _run(settings, MemoryStore(_archive()), cluster)
        assert (3, 5, 3) == (stats.objects_done, stats.indexed, len(cluster.bodies))
