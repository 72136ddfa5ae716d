"""End to end: a generated archive in moto's S3 → ct-ingest backfill → documents in OpenSearch."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest

from ingest.deadletter import read_entries
from ingest.demo import upload
from ingest.testing import synth

from .helpers import all_docs, backfill, count

pytestmark = pytest.mark.integration
BUCKET = "trail-bucket"


def _archive(events: int = 1500, **kw: object) -> list[synth.SynthFile]:
    return list(synth.generate(events, days=2, **kw))  # type: ignore[arg-type]


def _identity(done: dict[str, object]) -> None:
    assert done["records_seen"] == done["indexed"] + done["deadlettered"] + done["skipped"]


class TestBackfillFromS3:
    def test_every_record_becomes_one_document(
        self, s3_url: str, opensearch_url: str, tmp_path: Path
    ) -> None:
        """Document count equals records written; ids are eventIDs; nothing dead-lettered."""
        files = _archive()
        upload(s3_url, files, bucket=BUCKET)
        run = backfill(f"s3://{BUCKET}", opensearch_url, tmp_path)
        assert run.code == 0, run.stderr[-2000:]
        written = {eid for f in files for eid in f.event_ids}
        docs = all_docs(opensearch_url)
        assert written == set(docs)
        assert (len(written), 0, 0) == (
            run.done["indexed"],
            run.done["deadlettered"],
            run.done["skipped"],
        )
        _identity(run.done)
        assert "records seen 1,500 = indexed 1,500 + dead-lettered 0 + skipped 0" in run.stdout
        sample = next(iter(docs.values()))
        assert sample["@timestamp"] == sample["eventTime"]
        assert len(files) == len(run.events("object_done"))

    def test_monthly_indices_behind_the_alias(
        self, s3_url: str, opensearch_url: str, tmp_path: Path
    ) -> None:
        """Documents go to cloudtrail-YYYY.MM by eventTime and are searchable through the alias."""
        from datetime import UTC, datetime

        files = list(synth.generate(400, days=3, start=datetime(2024, 2, 28, tzinfo=UTC)))
        upload(s3_url, files, bucket=BUCKET)
        assert backfill(f"s3://{BUCKET}", opensearch_url, tmp_path).code == 0
        from .helpers import search

        client = search(opensearch_url)
        indices = client.indices.get_alias(name="cloudtrail")
        client.close()
        assert {"cloudtrail-2024.02", "cloudtrail-2024.03"} == set(indices)
        assert (
            count(opensearch_url, "cloudtrail-2024.02")
            + count(opensearch_url, "cloudtrail-2024.03")
            == 400
        )

    def test_second_run_fetches_nothing_and_duplicates_nothing(
        self, s3_url: str, opensearch_url: str, tmp_path: Path
    ) -> None:
        """Rerunning with the same state downloads no done object and indexes nothing new."""
        files = _archive(800)
        upload(s3_url, files, bucket=BUCKET)
        first = backfill(f"s3://{BUCKET}", opensearch_url, tmp_path)
        second = backfill(f"s3://{BUCKET}", opensearch_url, tmp_path)
        assert (first.code, second.code) == (0, 0)
        assert (0, 0, len(files)) == (
            second.done["records_seen"],
            second.done["objects_done"],
            second.done["objects_already_done"],
        )
        assert second.done["bytes_fetched"] == 0
        assert count(opensearch_url) == 800

    def test_replay_without_state_creates_no_duplicates(
        self, s3_url: str, opensearch_url: str, tmp_path: Path
    ) -> None:
        """With the ledger lost, a replay re-sends all, but create + eventID keeps one copy."""
        files = _archive(600)
        upload(s3_url, files, bucket=BUCKET)
        assert backfill(f"s3://{BUCKET}", opensearch_url, tmp_path / "a").code == 0
        again = backfill(f"s3://{BUCKET}", opensearch_url, tmp_path / "b")
        assert again.code == 0
        assert (again.done["indexed"], again.done["already_indexed"]) == (600, 600)
        assert count(opensearch_url) == 600

    def test_filters_prune_the_listing(
        self, s3_url: str, opensearch_url: str, tmp_path: Path
    ) -> None:
        """--account/--region/--since/--until keep only matching files, listing fewer prefixes."""
        files = _archive(1200)
        upload(s3_url, files, bucket=BUCKET)
        run = backfill(
            f"s3://{BUCKET}",
            opensearch_url,
            tmp_path,
            "--account",
            "111122223333",
            "--region",
            "eu-west-1",
            "--since",
            "2024-03-05",
            "--until",
            "2024-03-05",
        )
        assert run.code == 0, run.stderr[-2000:]
        kept = [f for f in files if "/111122223333/CloudTrail/eu-west-1/2024/03/05/" in f.key]
        assert kept
        assert sum(f.records for f in kept) == count(opensearch_url) == run.done["indexed"]
        listing = run.events("listing_done")[0]
        assert listing["day_prefixes"] == 1
        assert (
            listing["list_calls"] <= 8
        )  # AWSLogs, org, 2 accounts' kinds, region, year, month, day

    def test_bucket_prefix_and_environment_options(
        self, s3_url: str, opensearch_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A trail under a key prefix is found; options come from CT_INGEST_* variables too."""
        files = _archive(300)
        for f in files:
            object.__setattr__(f, "key", f"trails/{f.key}")
        upload(s3_url, files, bucket=BUCKET)
        monkeypatch.setenv("CT_INGEST_OPENSEARCH", opensearch_url)
        monkeypatch.setenv("CT_INGEST_REGION", "us-east-1")
        from .helpers import cli

        run = cli(
            "backfill",
            f"s3://{BUCKET}/trails",
            "--state",
            str(tmp_path / "l.sqlite"),
            "--log-format",
            "json",
            "--workers",
            "0",
        )
        assert run.code == 0, run.stderr[-2000:]
        assert sum(f.records for f in files if "/us-east-1/" in f.key) == count(opensearch_url)


class TestBadInput:
    def test_each_bad_input_is_dead_lettered_and_the_run_goes_on(
        self, s3_url: str, opensearch_url: str, tmp_path: Path
    ) -> None:
        """Truncated gzip, non-gzip, invalid JSON, no Records, non-object and time-less records
        each land in the dead-letter with a clear reason; good records are indexed; exit 1."""
        good = _archive(200, accounts=("111122223333",), regions=("us-east-1",))
        day = "AWSLogs/111122223333/CloudTrail/us-east-1/2024/03/04/"

        def name(tag: str) -> str:
            return f"{day}111122223333_CloudTrail_us-east-1_20240304T0000Z_{tag}.json.gz"

        whole = gzip.compress(
            orjson.dumps({"Records": [{"eventTime": "2024-03-04T00:00:00Z"}] * 40})
        )
        rec = {"eventID": "ok-1", "eventTime": "2024-03-04T00:01:00Z", "eventName": "X"}
        no_time = {"eventID": "nt-1", "eventName": "Y"}
        bad = {
            name("Truncated"): (whole[:40], "BadGzip"),
            name("NotGzip"): (b"this is not gzip at all", "NotGzip"),
            name("BadJson"): (gzip.compress(b'{"Records": [ {"eventTime": '), "BadJson"),
            name("NoRecords"): (gzip.compress(b'{"digestStartTime": "x"}'), "NoRecords"),
            name("Mixed"): (gzip.compress(orjson.dumps({"Records": [rec, 42, no_time]})), None),
        }
        upload(
            s3_url,
            good + [synth.SynthFile(k, body, 0, ()) for k, (body, _) in bad.items()],
            bucket=BUCKET,
        )

        run = backfill(f"s3://{BUCKET}", opensearch_url, tmp_path)
        assert run.code == 1
        entries = read_entries(tmp_path / "deadletter.jsonl")
        by_key = {}
        for e in entries:
            by_key.setdefault(e["key"], []).append(e)
        for key, (_, error_type) in bad.items():
            if error_type:
                assert [(None, error_type, "decode")] == [
                    (e["record_index"], e["error_type"], e["stage"]) for e in by_key[key]
                ]
        mixed = by_key[name("Mixed")]
        assert [(1, "NotAnObject", 42), (2, "MissingEventTime", no_time)] == [
            (e["record_index"], e["error_type"], e["record"]) for e in mixed
        ]
        assert (
            run.done["records_seen"],
            run.done["indexed"],
            run.done["deadlettered"],
            run.done["objects_failed"],
        ) == (203, 201, 2, 4)
        _identity(run.done)
        assert count(opensearch_url) == 201
        errors = [ln for ln in run.stderr.splitlines() if '"dead_lettered"' in ln]
        assert len(errors) == len(entries)
        assert all(f"s3://{BUCKET}/" in ln for ln in errors)
        assert "dead-lettered 2" in run.stdout

    def test_rejected_documents_are_dead_lettered(
        self, s3_url: str, opensearch_url: str, tmp_path: Path
    ) -> None:
        """A document OpenSearch refuses (a field of the wrong type) is dead-lettered with the
        raw document and the server's reason; the rest is indexed."""
        recs = [
            {"eventID": "good", "eventTime": "2024-03-04T00:00:00Z", "readOnly": True},
            {
                "eventID": "bad",
                "eventTime": "2024-03-04T00:00:01Z",
                "readOnly": {"not": "a boolean"},
            },
        ]
        key = (
            "AWSLogs/111122223333/CloudTrail/us-east-1/2024/03/04/"
            "111122223333_CloudTrail_us-east-1_20240304T0000Z_Map.json.gz"
        )
        upload(
            s3_url,
            [synth.SynthFile(key, gzip.compress(orjson.dumps({"Records": recs})), 2, ())],
            bucket=BUCKET,
        )
        run = backfill(f"s3://{BUCKET}", opensearch_url, tmp_path)
        assert run.code == 1
        [entry] = read_entries(tmp_path / "deadletter.jsonl")
        assert (
            entry["stage"],
            entry["id"],
            entry["record_index"],
            entry["index"],
        ) == ("index", "bad", 1, "cloudtrail-2024.03")
        assert entry["record"]["readOnly"] == {"not": "a boolean"}
        assert entry["reason"]
        assert list(all_docs(opensearch_url)) == ["good"]
        _identity(run.done)


class TestLocalDirectory:
    def test_local_tree_gives_the_same_documents_as_s3(
        self, s3_url: str, opensearch_backend: object, tmp_path: Path
    ) -> None:
        """The same archive from a local directory and from S3 yields identical documents."""
        files = _archive(500)
        upload(s3_url, files, bucket=BUCKET)
        synth.write_tree(tmp_path / "logs", iter(files))
        url_s3 = opensearch_backend.fresh()  # type: ignore[attr-defined]
        url_dir = opensearch_backend.fresh()  # type: ignore[attr-defined]
        try:
            assert backfill(f"s3://{BUCKET}", url_s3, tmp_path / "s3").code == 0
            run = backfill(str(tmp_path / "logs"), url_dir, tmp_path / "dir")
            assert run.code == 0, run.stderr[-2000:]
            from_s3, from_dir = all_docs(url_s3), all_docs(url_dir)
            assert len(from_s3) == 500
            assert from_s3 == from_dir
        finally:
            opensearch_backend.release()  # type: ignore[attr-defined]
