"""What people do with the dead-letter: summarize it, fix, replay; nothing lands twice."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest

from ingest.deadletter import read_entries
from ingest.testing import synth
from ingest.testing.faultproxy import FaultProxy, Faults

from .helpers import all_docs, backfill, cli, count

pytestmark = pytest.mark.integration


def _tree(root: Path, records: list[dict[str, object]], tag: str) -> None:
    key = (
        "AWSLogs/111122223333/CloudTrail/us-east-1/2024/03/05/"
        f"111122223333_CloudTrail_us-east-1_20240305T1200Z_{tag}.json.gz"
    )
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(orjson.dumps({"Records": records})))


class TestReplay:
    def test_throttled_documents_are_replayed_once_the_cluster_recovers(
        self, opensearch_url: str, tmp_path: Path
    ) -> None:
        """Documents still answered 429 at the retry deadline are dead-lettered; the summary
        groups them; a replay after recovery indexes them all and empties the file."""
        files = list(
            synth.generate(300, days=1, accounts=("111122223333",), regions=("us-east-1",))
        )
        synth.write_tree(tmp_path / "logs", iter(files))
        dl = tmp_path / "state" / "deadletter.jsonl"
        with FaultProxy(opensearch_url, Faults(item_429=1.0)) as proxy:
            run = backfill(
                str(tmp_path / "logs"),
                proxy.url,
                tmp_path / "state",
                "--retry-deadline",
                "2",
                "--bulk-target-seconds",
                "1",
            )
            assert 1 == run.code
            assert (300, 0, 300) == (
                run.done["records_seen"],
                run.done["indexed"],
                run.done["deadlettered"],
            )
            summary = cli("deadletter", "summary", "--file", str(dl), "--json")
            groups = orjson.loads(summary.stdout)["groups"]
            assert [("index", "RetriesExhausted", 300, 300)] == [
                (g["stage"], g["error_type"], g["count"], g["replayable"]) for g in groups
            ]
            proxy.set_faults(Faults())
            replayed = cli(
                "deadletter",
                "replay",
                "--file",
                str(dl),
                "--opensearch",
                proxy.url,
                "--log-format",
                "json",
            )
        assert 0 == replayed.code, replayed.stderr[-2000:]
        assert "300 indexed" in replayed.stdout
        assert [] == read_entries(dl)
        assert {e for f in files for e in f.event_ids} == set(all_docs(opensearch_url))

    def test_fixed_records_land_and_the_rest_stay_with_their_reason(
        self, opensearch_url: str, tmp_path: Path
    ) -> None:
        """A record without eventTime, fixed by hand in the dead-letter, lands on replay; one
        left unfixed stays, counted as replayed once; a replay never duplicates."""
        good = {
            "eventID": "good-1",
            "eventTime": "2024-03-05T12:00:00Z",
            "eventName": "ListBuckets",
        }
        _tree(
            tmp_path / "logs",
            [good, {"eventID": "fixme", "eventName": "A"}, {"eventID": "broken", "eventName": "B"}],
            "Fix",
        )
        run = backfill(str(tmp_path / "logs"), opensearch_url, tmp_path / "state")
        assert (1, 1, 2) == (run.code, run.done["indexed"], run.done["deadlettered"])
        dl = tmp_path / "state" / "deadletter.jsonl"
        lines = [orjson.loads(x) for x in dl.read_bytes().splitlines()]
        for entry in lines:
            if entry["record"]["eventID"] == "fixme":
                entry["record"]["eventTime"] = "2024-03-05T12:00:01Z"
        dl.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in lines))

        first = cli("deadletter", "replay", "--file", str(dl), "--opensearch", opensearch_url)
        assert 1 == first.code
        assert "1 indexed" in first.stdout
        assert "1 still refused" in first.stdout
        [left] = read_entries(dl)
        assert ("broken", "MissingEventTime", 1) == (
            left["record"]["eventID"],
            left["error_type"],
            left["replays"],
        )
        assert {"good-1", "fixme"} == set(all_docs(opensearch_url))
        second = cli("deadletter", "replay", "--file", str(dl), "--opensearch", opensearch_url)
        assert 1 == second.code
        assert 2 == count(opensearch_url)
        assert 2 == read_entries(dl)[0]["replays"]

    def test_object_level_entries_are_kept(self, opensearch_url: str, tmp_path: Path) -> None:
        """An unreadable object has no record to re-send: replay keeps it and says what to do."""
        bad = (
            tmp_path / "logs" / "AWSLogs/111122223333/CloudTrail/us-east-1/2024/03/05/"
            "111122223333_CloudTrail_us-east-1_20240305T1200Z_Bad.json.gz"
        )
        bad.parent.mkdir(parents=True)
        bad.write_bytes(b"not gzip")
        assert 1 == backfill(str(tmp_path / "logs"), opensearch_url, tmp_path / "state").code
        dl = tmp_path / "state" / "deadletter.jsonl"
        out = cli("deadletter", "replay", "--file", str(dl), "--opensearch", opensearch_url)
        assert 0 == out.code
        assert "1 whole objects (rerun backfill with --retry-failed)" in out.stdout
        assert 1 == len(read_entries(dl))
