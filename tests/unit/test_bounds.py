"""Bounded costs on the engine, on the in-memory edges: a large object decoded in batches and
settled once all of them are acknowledged, a gzip bomb, and a decoding process killed mid-object
(as the OOM killer would) costing that object alone."""

from __future__ import annotations

import asyncio
import gzip
import os
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import orjson

from ingest.checkpoint import Ledger
from ingest.config import S3Location, Settings, SinkConfig, SourceConfig
from ingest.deadletter import DeadLetter, read_entries
from ingest.engine import RunStats, run_pipeline
from ingest.retry import RetryPolicy
from ingest.testing.memory import MemoryCluster, MemoryStore

FAST = RetryPolicy(attempts=5, initial=0.001, maximum=0.01, deadline=2)
DAY = "AWSLogs/111122223333/CloudTrail/us-east-1/2024/03/05/111122223333_CloudTrail_us-east-1_"
KEY_A = DAY + "20240305T1410Z_a.json.gz"
KEY_B = DAY + "20240305T1415Z_b.json.gz"
KEY_BIG = DAY + "20240305T1420Z_big.json.gz"
KiB, MiB = 1024, 1024 * 1024


def _record(event_id: str, pad: int = 0) -> dict[str, Any]:
    return {
        "eventVersion": "1.08",
        "eventID": event_id,
        "eventTime": "2024-03-05T14:07:12Z",
        "eventSource": "s3.amazonaws.com",
        "eventName": "GetObject",
        "requestParameters": {"bucketName": "b", "key": "k"},
        "pad": "p" * pad,
    }


def _file(records: list[dict[str, Any]]) -> bytes:
    return gzip.compress(orjson.dumps({"Records": records}), compresslevel=1, mtime=0)


def _archive(big: bytes) -> dict[str, bytes]:
    return {
        KEY_A: _file([_record("a1"), _record("a2")]),
        KEY_B: _file([_record("b1")]),
        KEY_BIG: big,
    }


def _big(n: int, pad: int) -> bytes:
    return _file([_record(f"big-{i}", pad) for i in range(n)])


def _settings(tmp_path: Path, **over: Any) -> Settings:
    base: dict[str, Any] = {
        "source": SourceConfig(location=S3Location("memory", ""), concurrency=2, retry=FAST),
        "sink": SinkConfig(url="http://127.0.0.1:9200", retry=FAST),
        "state_path": tmp_path / "state.db",
        "deadletter_path": tmp_path / "deadletter.jsonl",
        "workers": 0,
        "stream_above": 64 * KiB,
        "batch_bytes": 16 * KiB,
    }
    return Settings(**(base | over))


def _run(settings: Settings, store: MemoryStore, cluster: MemoryCluster) -> RunStats:
    deadletter = DeadLetter(settings.deadletter_path)
    with Ledger(settings.state_path) as ledger:
        try:
            return asyncio.run(run_pipeline(settings, store, cluster, ledger, deadletter))
        finally:
            deadletter.close()


def _dead(settings: Settings) -> list[tuple[str, str, int | None, str]]:
    return [
        (e["stage"], e["key"], e["record_index"], e["error_type"])
        for e in read_entries(settings.deadletter_path)
    ]


def _statuses(settings: Settings) -> dict[str, tuple[str, int, int]]:
    with Ledger(settings.state_path) as ledger:
        rows = ledger._db.execute("SELECT key, status, records, indexed FROM objects")
        return {k: (st, r, i) for k, st, r, i in rows}


# Run as a process of its own (no GIL shared with the engine): SIGKILLs the process descended
# from PARENT that holds a file whose path contains MARKER open for writing (the spill file of
# the object it inflates), writing the count of kills to OUT. With POISON=1 it then goes on
# killing every process PARENT's tree starts afterwards: whatever runs the object again dies.
_KILLER = r"""
import os, signal, sys, time
parent, marker, poison, out = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "1", sys.argv[4]

def descendants():
    up = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    up[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    ours, grew = {parent}, True
    while grew:
        more = {p for p, pp in up.items() if pp in ours} - ours
        ours |= more
        grew = bool(more)
    return ours - {parent, os.getpid()}

def holds(pid):
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if marker in os.readlink(f"/proc/{pid}/fd/{fd}"):
                with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                    flags = int(f.read().split("flags:")[1].split()[0], 8)
                if flags & 3:  # open for writing: the object's first call, inflating
                    return True
        except (OSError, IndexError, ValueError):
            pass
    return False

def note(kills):
    with open(out + ".tmp", "w") as f:
        f.write(str(kills))
    os.replace(out + ".tmp", out)

note(0)  # ready
kills, pids, looked = 0, set(), 0.0
while not kills:
    if time.monotonic() - looked > 0.02:
        pids, looked = descendants(), time.monotonic()
    for pid in pids:
        if holds(pid):
            old = set(pids)  # before the kill: the processes that replace it are not in it
            os.kill(pid, signal.SIGKILL)
            kills += 1
            note(kills)
            break
    time.sleep(0.0005)
while poison:
    for pid in descendants() - old:
        os.kill(pid, signal.SIGKILL)
        kills += 1
        note(kills)
    time.sleep(0.002)
"""


class TestLargeObjects:
    def test_a_large_object_is_indexed_in_batches_and_settled_once(self, tmp_path: Path) -> None:
        """A large object goes through in batches: every document indexed, one refused one
        dead-lettered, the object settled done once with the counts of all its batches, and no
        spill file left behind."""
        settings = _settings(tmp_path)
        cluster = MemoryCluster(reject={"big-777"})
        stats = _run(settings, MemoryStore(_archive(_big(800, 200))), cluster)
        assert {f"big-{i}" for i in range(800)} - {"big-777"} <= set(cluster.docs)
        assert (3, 0, 803, 802, 1) == (
            stats.objects_done,
            stats.objects_failed,
            stats.records_seen,
            stats.indexed,
            stats.deadlettered,
        )
        assert stats.balanced
        assert ("done", 800, 799) == _statuses(settings)[KEY_BIG]
        assert [("index", KEY_BIG, 777, "mapper_parsing_exception")] == _dead(settings)
        assert [] == [p for p in tmp_path.rglob("*") if "spill" in str(p) or "big" in p.name]

    def test_a_gzip_bomb_costs_one_dead_letter_entry(self, tmp_path: Path) -> None:
        """A gzip bomb (64 MiB of zeros in 64 KiB) past --max-object-mib is dead-lettered as
        TooLarge and settled failed; every other object is indexed and the books balance."""
        settings = _settings(tmp_path, max_object_bytes=1 * MiB)
        bomb = zlib.compressobj(9, zlib.DEFLATED, 31)
        data = bomb.compress(bytes(64 * MiB)) + bomb.flush()
        cluster = MemoryCluster()
        stats = _run(settings, MemoryStore(_archive(data)), cluster)
        assert [("decode", KEY_BIG, None, "TooLarge")] == _dead(settings)
        assert {"a1", "a2", "b1"} == set(cluster.docs)
        assert (2, 1, 3, 3) == (
            stats.objects_done,
            stats.objects_failed,
            stats.records_seen,
            stats.indexed,
        )
        assert stats.balanced
        assert "failed" == _statuses(settings)[KEY_BIG][0]


class TestKilledWorker:
    def _kill_while_decoding(self, tmp_path: Path, poison: bool) -> tuple[Settings, Any, Any, int]:
        settings = _settings(tmp_path, workers=1, stream_above=1 * MiB, batch_bytes=1 * MiB)
        cluster = MemoryCluster()
        out = tmp_path / "kills"
        args = [str(os.getpid()), "_big.json.gz", str(int(poison)), str(out)]
        killer = subprocess.Popen([sys.executable, "-c", _KILLER, *args])
        while not out.exists() and killer.poll() is None:
            time.sleep(0.01)
        try:
            stats = _run(settings, MemoryStore(_archive(_big(3000, 16000))), cluster)
        finally:
            killer.kill()
            killer.wait()
        return settings, cluster, stats, int(out.read_text()) if out.exists() else 0

    def test_a_poison_object_costs_one_dead_letter_entry(self, tmp_path: Path) -> None:
        """A worker killed mid-object, and killed again when the object is retried alone, ends
        in one dead-letter entry (PoisonObject) and a failed object; the pool is restarted and
        every other object is indexed."""
        settings, cluster, stats, kills = self._kill_while_decoding(tmp_path, poison=True)
        assert kills >= 2
        assert [("decode", KEY_BIG, None, "PoisonObject")] == _dead(settings)
        assert {"a1", "a2", "b1"} == {k for k in cluster.docs if not k.startswith("big-")}
        assert (2, 1) == (stats.objects_done, stats.objects_failed)
        assert stats.balanced
        assert "failed" == _statuses(settings)[KEY_BIG][0]

    def test_a_worker_killed_once_costs_nothing(self, tmp_path: Path) -> None:
        """A worker killed once mid-object: the object is retried alone and indexed whole, and
        nothing goes to the dead-letter."""
        settings, cluster, stats, kills = self._kill_while_decoding(tmp_path, poison=False)
        assert 1 == kills
        assert [] == _dead(settings)
        assert {f"big-{i}" for i in range(3000)} | {"a1", "a2", "b1"} == set(cluster.docs)
        assert (3, 0, 3003) == (stats.objects_done, stats.objects_failed, stats.indexed)
