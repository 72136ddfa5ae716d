"""Reruns and verify tell the truth: failed objects are never counted as done, verify's books
balance (documents vs objects, duplicate deliveries), and ``verify --repair`` brings back what
the index lost."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest
from opensearchpy import OpenSearch

from ingest.testing import synth

from .helpers import backfill, cli, count

pytestmark = pytest.mark.integration

BAD = {  # three objects that cannot be read, at keys the listing takes
    "20240304T0005Z_badgzip001": b"\x1f\x8b\x08\x00garbage",
    "20240304T0010Z_notjson0002": gzip.compress(b"this is not json"),
    "20240304T0015Z_norecords03": gzip.compress(b'{"NoRecords": []}'),
}
PREFIX = "AWSLogs/111122223333/CloudTrail/us-east-1/2024/03/04/111122223333_CloudTrail_us-east-1_"


def _archive(root: Path) -> tuple[int, str]:
    """600 good records in several files, one of them delivered a second time inside another
    file (as organization and account trails do), and three unreadable objects. Returns the
    number of distinct event ids and the duplicated one."""
    files = list(
        synth.generate(600, days=1, accounts=("111122223333",), regions=("us-east-1",), per_file=60)
    )
    synth.write_tree(root, iter(files))
    first, second = files[0], files[1]
    records = orjson.loads(gzip.decompress(second.body))["Records"]
    twin = orjson.loads(gzip.decompress(first.body))["Records"][0]
    (root / second.key).write_bytes(gzip.compress(orjson.dumps({"Records": [*records, twin]})))
    for name, body in BAD.items():
        path = root / f"{PREFIX}{name}.json.gz"
        path.write_bytes(body)
    return sum(f.records for f in files), str(twin["eventID"])


def _verify(url: str, root: Path, *extra: str) -> tuple[int, dict[str, object], str]:
    run = cli("verify", str(root), "--opensearch", url, "--json", "--log-format", "json", *extra)
    return run.code, orjson.loads(run.stdout), run.stderr


class TestReruns:
    def test_a_rerun_reports_earlier_failures_and_exits_1_until_they_are_retried(
        self, opensearch_url: str, tmp_path: Path
    ) -> None:
        """The second run of an archive with three unreadable objects does not say "done": it
        names the three objects failed earlier, points at the dead-letter and --retry-failed,
        and exits 1; status shows them; once fixed, --retry-failed indexes them and exits 0."""
        root = tmp_path / "logs"
        _archive(root)
        state = tmp_path / "state"
        first = backfill(str(root), opensearch_url, state)
        assert 1 == first.code
        assert 3 == first.done["objects_failed"]

        again = backfill(str(root), opensearch_url, state)
        assert 1 == again.code
        assert "done:" not in again.stdout
        assert "3 failed in earlier runs (not retried)" in again.stdout
        assert (
            "3 objects failed in earlier runs and were not retried: see `ct-ingest deadletter "
            "summary`; rerun with `--retry-failed`"
        ) in again.stderr
        assert 3 == again.done["objects_failed_earlier"]
        assert 0 == again.done["objects_failed"]

        status = cli("status", "--state", str(state / "ledger.sqlite"), "--json")
        assert 3 == orjson.loads(status.stdout)["objects"]["failed"]
        text = cli("status", "--state", str(state / "ledger.sqlite"))
        assert "3 objects failed" in text.stdout
        assert sorted(f"  failed: {PREFIX}{name}.json.gz" for name in BAD) == sorted(
            line for line in text.stdout.splitlines() if line.startswith("  failed: ")
        )

        for name in BAD:  # the producer fixes the files: now they hold one record each
            record = {
                "eventVersion": "1.08",
                "eventID": f"fixed-{name}",
                "eventTime": "2024-03-04T00:01:00Z",
                "eventSource": "s3.amazonaws.com",
                "eventName": "ListBuckets",
                "awsRegion": "us-east-1",
                "recipientAccountId": "111122223333",
            }
            (root / f"{PREFIX}{name}.json.gz").write_bytes(
                gzip.compress(orjson.dumps({"Records": [record]}))
            )
        fixed = backfill(str(root), opensearch_url, state, "--retry-failed")
        assert 0 == fixed.code, fixed.stderr[-2000:]
        assert 3 == fixed.done["objects_done"]
        assert "ct-ingest done:" in fixed.stdout


class TestVerify:
    def test_books_balance_with_unreadable_objects_and_a_duplicate_delivery(
        self, opensearch_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """After a clean backfill with the default state, verify (no --state, no --deadletter)
        finds the dead-lettered objects through the default state, counts the duplicate
        delivery as such, and every document is found: objects and documents are never mixed."""
        monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
        root = tmp_path / "logs"
        distinct, _ = _archive(root)
        run = cli(
            "backfill", str(root), "--opensearch", opensearch_url, "--workers", "0",
            "--log-format", "json",
        )  # fmt: skip
        assert 1 == run.code
        assert distinct == count(opensearch_url)

        code, report, _ = _verify(opensearch_url, root)
        assert 0 == code, report
        objects = distinct // 60 + 3
        assert (objects, objects - 3, 3, 0) == (
            report["objects"],
            report["objects_read"],
            report["deadlettered_objects"],
            report["unreadable_objects"],
        )
        assert (distinct + 1, distinct, 1, 0, 0) == (
            report["records"],
            report["documents"],
            report["duplicates"],
            report["deadlettered_records"],
            report["skipped"],
        )
        assert (distinct, 0, 0) == (report["found"], report["missing"], report["unexpected"])
        line = cli("verify", str(root), "--opensearch", opensearch_url).stdout.splitlines()[-1]
        assert (
            f"ct-ingest verify: match: {objects} objects = {objects - 3} read + 3 dead-lettered as"
            f" unreadable + 0 unreadable and not dead-lettered; {distinct + 1} records ="
            f" {distinct} documents + 1 duplicate deliveries + 0 dead-lettered + 0 skipped by"
            f" rule; documents: {distinct} found, 0 missing, 0 unexpected"
        ) == line

    def test_unreadable_objects_outside_the_dead_letter_are_objects_not_documents(
        self, opensearch_url: str, tmp_path: Path
    ) -> None:
        """Without the state that dead-lettered them, the three unreadable objects are reported
        as three unreadable objects, and no document is called missing."""
        root = tmp_path / "logs"
        distinct, _ = _archive(root)
        assert 1 == backfill(str(root), opensearch_url, tmp_path / "state").code
        code, report, _ = _verify(
            opensearch_url, root, "--state", str(tmp_path / "other" / "ledger.sqlite")
        )
        assert 1 == code
        assert (3, 0, distinct) == (
            report["unreadable_objects"],
            report["missing"],
            report["found"],
        )

    def test_repair_brings_back_deleted_documents(
        self, opensearch_url: str, tmp_path: Path
    ) -> None:
        """Two documents deleted from the index (one of them the duplicated event): a rerun of
        the backfill does not bring them back (their objects are settled); verify reports two
        missing documents; verify --repair re-sends them, verifies again and matches; the index
        holds every event once."""
        root = tmp_path / "logs"
        distinct, twin = _archive(root)
        state = tmp_path / "state"
        assert 1 == backfill(str(root), opensearch_url, state).code
        client = OpenSearch(hosts=[opensearch_url])
        hits = client.search(
            index="cloudtrail", body={"size": 1, "query": {"bool": {"must_not": {"ids": {
                "values": [twin]}}}}},
        )["hits"]["hits"]  # fmt: skip
        victims = [twin, hits[0]["_id"]]
        client.delete_by_query(
            index="cloudtrail", body={"query": {"ids": {"values": victims}}}, refresh=True
        )
        assert distinct - 2 == count(opensearch_url)
        backfill(str(root), opensearch_url, state)
        assert distinct - 2 == count(opensearch_url)

        args = ("--state", str(state / "ledger.sqlite"))
        code, report, _ = _verify(opensearch_url, root, *args)
        assert (1, 2) == (code, report["missing"])
        assert sorted(victims) == sorted(i for p in report["problems"] for i in p["missing"])

        code, report, _ = _verify(opensearch_url, root, *args, "--repair")
        assert 0 == code, report
        assert (2, 0, distinct) == (report["repaired"], report["missing"], report["found"])
        assert distinct == count(opensearch_url)
        found = client.mget(index="cloudtrail", body={"ids": victims})["docs"]
        assert [True, True] == [d["found"] for d in found]
        client.close()
