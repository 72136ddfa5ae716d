"""ct-ingest tail against moto (S3 + SQS) and osmem: new, late and notified files appear in the
index, an outage delays but loses nothing, two SQS consumers share a queue, freshness is
measured, tail says where it starts reading, and in SQS mode a vanished object, an unreachable
queue or an unreachable bucket neither stops the tail nor loses or duplicates anything."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import orjson
import pytest
from opensearchpy import OpenSearch

from ingest.deadletter import read_entries
from ingest.testing.faultproxy import FaultProxy, Faults
from ingest.testing.servers import free_port

pytestmark = pytest.mark.integration
BUCKET = "tail-bucket"
ACCOUNT, REGION = "111122223333", "us-east-1"


def _key(at: datetime, tag: str) -> str:
    return (
        f"AWSLogs/{ACCOUNT}/CloudTrail/{REGION}/{at:%Y/%m/%d}/"
        f"{ACCOUNT}_CloudTrail_{REGION}_{at:%Y%m%dT%H%MZ}_{tag}.json.gz"
    )


def _body(at: datetime, tag: str, n: int = 5) -> tuple[bytes, set[str]]:
    ids = {f"{tag}-{i}" for i in range(n)}
    recs = [
        {
            "eventID": i,
            "eventTime": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "eventName": "ListBuckets",
            "eventSource": "s3.amazonaws.com",
            "recipientAccountId": ACCOUNT,
            "awsRegion": REGION,
        }
        for i in sorted(ids)
    ]
    return gzip.compress(orjson.dumps({"Records": recs})), ids


@pytest.fixture
def s3(s3_url: str) -> object:
    client = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    return client


def _put(s3: object, at: datetime, tag: str, n: int = 5) -> set[str]:
    body, ids = _body(at, tag, n)
    s3.put_object(Bucket=BUCKET, Key=_key(at, tag), Body=body)  # type: ignore[attr-defined]
    return ids


def _ids(url: str, *, refresh: bool = False) -> set[str]:
    client = OpenSearch(hosts=[url])
    try:
        if refresh:
            client.indices.refresh(index="cloudtrail*")
        res = client.search(
            index="cloudtrail*",
            body={"size": 10_000, "_source": False},
            params={"ignore_unavailable": "true"},
        )
        return {h["_id"] for h in res["hits"]["hits"]}
    except Exception:
        return set()
    finally:
        client.close()


def _wait(cond: Callable[[], bool], timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if cond():
            return time.monotonic() - start
        time.sleep(0.2)
    raise AssertionError(f"condition not met within {timeout} s")


@pytest.fixture
def tail_proc(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(opensearch: str, *extra: str, state: str = "state") -> subprocess.Popen[bytes]:
        p = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ingest.cli",
                "tail",
                f"s3://{BUCKET}",
                "--opensearch",
                opensearch,
                "--state",
                str(tmp_path / state / "ledger.sqlite"),
                "--log-format",
                "json",
                "--workers",
                "1",
                *extra,
            ],
            env=dict(os.environ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def _events(stderr: bytes, name: str) -> list[dict[str, object]]:
    return [
        ev
        for line in stderr.splitlines()
        if line.startswith(b"{") and (ev := orjson.loads(line)).get("event") == name
    ]


def _done_keys(stderr: bytes) -> list[str]:
    return [str(ev["key"]) for ev in _events(stderr, "object_done")]


def _start_line(stderr: bytes) -> str:
    (line,) = [x for x in stderr.decode().splitlines() if x.startswith("ct-ingest tail:")]
    return line


def _stop(proc: subprocess.Popen[bytes]) -> bytes:
    """SIGTERM, which must end a tail with status 0; its stderr."""
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert 0 == proc.returncode, err.decode()[-3000:]
    return err


def _http(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 (loopback)
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class TestPolling:
    def test_new_and_late_files_appear_and_metrics_tell(
        self,
        s3: object,
        opensearch_url: str,
        tail_proc: Callable[..., subprocess.Popen[bytes]],
    ) -> None:
        """A file written while tailing is searchable within poll interval + 10 s; a late file
        whose key sorts before the newest one (inside the rewind window) is not missed;
        /metrics and /healthz answer; SIGTERM ends the tail cleanly."""
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        expected = _put(s3, now - timedelta(minutes=30), "first")
        port = free_port()
        proc = tail_proc(opensearch_url, "--poll-interval", "1", "--metrics-port", str(port))
        _wait(lambda: expected <= _ids(opensearch_url), 60)

        expected |= _put(s3, now, "fresh")
        took = _wait(lambda: expected <= _ids(opensearch_url), 1 + 10)
        print(f"\npolling freshness: {took:.1f} s")

        expected |= _put(s3, now - timedelta(minutes=12), "late")  # sorts before "fresh"
        _wait(lambda: expected <= _ids(opensearch_url), 1 + 10)

        status, body = _http(f"http://127.0.0.1:{port}/metrics")
        assert 200 == status
        assert (
            f'ct_ingest_events_total{{outcome="indexed"}} {float(len(expected))}'.encode() in body
        )
        assert b"ct_ingest_events_already_indexed_total 0.0" in body  # nothing redone
        assert b"ct_ingest_bulk_latency_seconds_bucket" in body
        assert b"ct_ingest_lag_seconds" in body
        assert 200 == _http(f"http://127.0.0.1:{port}/healthz")[0]
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert 0 == proc.returncode, err.decode()[-2000:]
        assert expected == _ids(opensearch_url, refresh=True)

    def test_unreachable_opensearch_delays_but_loses_nothing(
        self,
        s3: object,
        opensearch_url: str,
        tail_proc: Callable[..., subprocess.Popen[bytes]],
    ) -> None:
        """While OpenSearch answers 503 to everything, /healthz fails and new files wait; when it
        is back they are indexed, once."""
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        expected = _put(s3, now - timedelta(minutes=40), "before")
        port = free_port()
        with FaultProxy(opensearch_url) as proxy:
            proc = tail_proc(
                proxy.url,
                "--poll-interval",
                "1",
                "--metrics-port",
                str(port),
                "--unhealthy-after",
                "2",
            )
            _wait(lambda: expected <= _ids(opensearch_url), 60)
            proxy.set_faults(Faults(down=True))
            during = _put(s3, now - timedelta(minutes=5), "during")
            _wait(lambda: _http(f"http://127.0.0.1:{port}/healthz")[0] == 503, 20)
            assert not during & _ids(opensearch_url, refresh=True)
            proxy.set_faults(Faults())
            _wait(lambda: (expected | during) <= _ids(opensearch_url), 60)
            _wait(lambda: _http(f"http://127.0.0.1:{port}/healthz")[0] == 200, 30)
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=30)
        assert expected | during == _ids(opensearch_url, refresh=True)


class TestSince:
    def test_since_is_where_a_fresh_state_starts_and_the_first_line_says_so(
        self,
        s3: object,
        opensearch_url: str,
        tail_proc: Callable[..., subprocess.Popen[bytes]],
    ) -> None:
        """With --since two days back, files from 30 hours ago are read and files from three
        days ago are not; stderr's first line names the start, and a tail_start event too."""
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        old = _put(s3, now - timedelta(days=3), "old")
        wanted = _put(s3, now - timedelta(hours=30), "mid") | _put(s3, now, "recent")
        since = f"{now - timedelta(days=2):%Y-%m-%dT%H:%MZ}"
        proc = tail_proc(opensearch_url, "--poll-interval", "1", "--since", since)
        _wait(lambda: wanted <= _ids(opensearch_url), 60)
        time.sleep(2)  # two more polls
        err = _stop(proc)
        assert wanted == _ids(opensearch_url, refresh=True)
        assert not old & _ids(opensearch_url)
        assert (
            f"ct-ingest tail: reading objects from {since}; older ones: run backfill or pass "
            "--since"
        ) == _start_line(err)
        (start,) = _events(err, "tail_start")
        assert ("poll", False) == (start["mode"], start["resumes_from_ledger"])
        assert str(start["since"]).startswith(f"{now - timedelta(days=2):%Y-%m-%dT%H:%M}")

    def test_by_default_a_fresh_state_starts_a_day_back(
        self,
        s3: object,
        opensearch_url: str,
        tail_proc: Callable[..., subprocess.Popen[bytes]],
    ) -> None:
        """Without --since a fresh state reads the last 24 hours (what tail always did), and
        the first line says from when."""
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        old = _put(s3, now - timedelta(hours=30), "old")
        wanted = _put(s3, now - timedelta(hours=20), "day") | _put(s3, now, "recent")
        started = datetime.now(UTC)
        proc = tail_proc(opensearch_url, "--poll-interval", "1")
        _wait(lambda: wanted <= _ids(opensearch_url), 60)
        time.sleep(2)
        err = _stop(proc)
        assert wanted == _ids(opensearch_url, refresh=True)
        assert not old & _ids(opensearch_url)
        prefix, rest = _start_line(err).split(" from ", 1)
        assert "ct-ingest tail: reading objects" == prefix
        stamp, tail = rest.split(";", 1)
        start = datetime.strptime(stamp, "%Y-%m-%dT%H:%MZ").replace(tzinfo=UTC)
        assert abs(start - (started - timedelta(days=1))) < timedelta(minutes=2)
        assert " older ones: run backfill or pass --since" == tail

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (("--since", "last week"), "--since 'last week': expected YYYY-MM-DD, an ISO"),
            (("--since", "2999-01-01"), "--since '2999-01-01': 2999-01-01T00:00Z is in the"),
            (
                ("--since", "2d", "--sqs-queue-url", "http://127.0.0.1:9/q"),
                "--since '2d' applies to polling; with --sqs-queue-url the queue's",
            ),
        ],
    )
    def test_bad_since_is_a_clear_error(
        self, args: tuple[str, ...], message: str, tmp_path: Path
    ) -> None:
        """A --since that cannot be read, is in the future, or comes with SQS: exit 2, a line
        naming the value."""
        from .helpers import cli

        run = cli(
            "tail",
            f"s3://{BUCKET}",
            "--opensearch",
            "http://127.0.0.1:9",
            "--state",
            str(tmp_path / "ledger.sqlite"),
            *args,
        )
        assert 2 == run.code
        assert message in run.stderr
        assert 1 == len(run.stderr.strip().splitlines())


class TestSqs:
    def _queue(self, s3_url: str) -> tuple[object, str]:
        sqs = boto3.client("sqs", endpoint_url=s3_url, region_name="us-east-1")
        url = sqs.create_queue(QueueName="ct-notify", Attributes={"VisibilityTimeout": "5"})[
            "QueueUrl"
        ]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        boto3.client(
            "s3", endpoint_url=s3_url, region_name="us-east-1"
        ).put_bucket_notification_configuration(
            Bucket=BUCKET,
            NotificationConfiguration={
                "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]
            },
        )
        return sqs, url

    def test_two_consumers_index_each_object_once(
        self,
        s3: object,
        s3_url: str,
        opensearch_url: str,
        tail_proc: Callable[..., subprocess.Popen[bytes]],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Two tail processes on one queue index every notified object exactly once, within 10 s;
        digests are ignored, a poison message is left for the redrive policy, handled messages
        are deleted."""
        monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", s3_url)
        sqs, url = self._queue(s3_url)
        args = ("--sqs-queue-url", url, "--sqs-wait-seconds", "1", "--sqs-visibility", "6")
        procs = [tail_proc(opensearch_url, *args, state=f"c{i}") for i in range(2)]
        time.sleep(3)  # both consumers up
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        expected: set[str] = set()
        started = time.monotonic()
        for i in range(12):
            expected |= _put(s3, now - timedelta(minutes=i), f"n{i}")
        s3.put_object(
            Bucket=BUCKET,
            Body=b"{}",
            Key=(  # type: ignore[attr-defined]
                f"AWSLogs/{ACCOUNT}/CloudTrail-Digest/{REGION}/{now:%Y/%m/%d}/digest.json.gz"
            ),
        )
        sqs.send_message(QueueUrl=url, MessageBody="this is not an S3 event")  # type: ignore[attr-defined]
        _wait(lambda: expected <= _ids(opensearch_url), 10 + 5)
        took = time.monotonic() - started
        print(f"\nsqs freshness for 12 objects: {took:.1f} s")
        time.sleep(2)
        logs = b""
        for p in procs:
            p.send_signal(signal.SIGTERM)
            _, err = p.communicate(timeout=30)
            assert 0 == p.returncode, err.decode()[-2000:]
            logs += err
        done = [orjson.loads(x)["key"] for x in logs.splitlines() if b'"object_done"' in x]
        assert sorted(done) == sorted(set(done))
        assert 12 == len(done)
        assert b"sqs_poison_message" in logs
        assert expected == _ids(opensearch_url, refresh=True)
        time.sleep(7)  # the poison message was last received by a consumer: wait out its visibility
        left = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,  # type: ignore[attr-defined]
            VisibilityTimeout=0,
        )
        bodies = [m["Body"] for m in left.get("Messages", [])]
        assert ["this is not an S3 event"] == bodies


class TestAfterBackfill:
    def test_tail_picks_up_where_the_backfill_ended(
        self,
        s3: object,
        opensearch_url: str,
        tail_proc: Callable[..., subprocess.Popen[bytes]],
        tmp_path: Path,
    ) -> None:
        """With the backfill's state, tail fetches none of the files the backfill settled and
        indexes the ones written after it."""
        from .helpers import cli

        now = datetime.now(UTC).replace(second=0, microsecond=0)
        before = _put(s3, now - timedelta(minutes=50), "bf1") | _put(
            s3, now - timedelta(minutes=45), "bf2"
        )
        run = cli(
            "backfill",
            f"s3://{BUCKET}",
            "--opensearch",
            opensearch_url,
            "--state",
            str(tmp_path / "state" / "ledger.sqlite"),
            "--log-format",
            "json",
            "--workers",
            "0",
        )
        assert (0, len(before)) == (run.code, run.done["indexed"])
        proc = tail_proc(opensearch_url, "--poll-interval", "1")
        after = _put(s3, now - timedelta(minutes=1), "new")
        _wait(lambda: (before | after) <= _ids(opensearch_url, refresh=True), 30)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        done = [orjson.loads(x)["key"] for x in err.splitlines() if b'"object_done"' in x]
        assert [_key(now - timedelta(minutes=1), "new")] == done


def _queue_empty(sqs: object, url: str) -> bool:
    attrs = sqs.get_queue_attributes(  # type: ignore[attr-defined]
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return {"0"} == set(attrs.values())


class TestSqsFaults:
    """The SQS consumer keeps going through a vanished object and through outages of the queue
    and of the bucket (fault proxy on loopback in front of moto, answering 503 to everything)."""

    ARGS = ("--sqs-wait-seconds", "1", "--sqs-visibility", "6")

    def test_an_object_gone_before_it_is_processed_is_dead_lettered(
        self,
        s3: object,
        s3_url: str,
        opensearch_url: str,
        tail_proc: Callable[..., subprocess.Popen[bytes]],
        monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path,
    ) -> None:
        """An object deleted between its notification and its processing: one error line names
        it and the message, one dead-letter entry (fetch, SourceError), its message is deleted,
        the tail keeps running, and every other notified object is indexed exactly once."""
        monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", s3_url)
        sqs, url = TestSqs()._queue(s3_url)
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        expected = _put(s3, now - timedelta(minutes=3), "a")
        _put(s3, now - timedelta(minutes=2), "gone")
        gone = _key(now - timedelta(minutes=2), "gone")
        s3.delete_object(Bucket=BUCKET, Key=gone)  # type: ignore[attr-defined]
        expected |= _put(s3, now - timedelta(minutes=1), "b")
        dl = tmp_path / "deadletter.jsonl"
        proc = tail_proc(
            opensearch_url, "--sqs-queue-url", url, *self.ARGS, "--deadletter", str(dl)
        )
        _wait(lambda: expected <= _ids(opensearch_url), 30)
        expected |= _put(s3, now, "c")  # after the failure: still tailing
        _wait(lambda: expected <= _ids(opensearch_url), 15)
        _wait(lambda: _queue_empty(sqs, url), 15)  # the gone object's message too
        assert proc.poll() is None
        err = _stop(proc)
        assert expected == _ids(opensearch_url, refresh=True)
        done = _done_keys(err)
        assert sorted(done) == sorted(set(done))
        assert gone not in done
        assert 3 == len(done)
        (line,) = _events(err, "sqs_object_unreadable")
        assert f"s3://{BUCKET}/{gone}" == line["object"]
        assert line["message_id"]
        (entry,) = read_entries(dl)
        assert (gone, "fetch", "SourceError") == (
            entry["key"],
            entry["stage"],
            entry["error_type"],
        )
        assert "NoSuchKey" in entry["reason"]
        (summary,) = _events(err, "run_done")
        assert (1, 3) == (summary["objects_failed"], summary["objects_done"])

    def test_a_queue_that_does_not_exist_ends_the_tail_with_one_line(
        self,
        s3: object,
        s3_url: str,
        opensearch_url: str,
        tail_proc: Callable[..., subprocess.Popen[bytes]],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A terminal SQS error is not retried for a day: exit 3 and a line naming the queue."""
        monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", s3_url)
        url = f"{s3_url}/123456789012/no-such-queue"
        proc = tail_proc(opensearch_url, "--sqs-queue-url", url, *self.ARGS)
        _, err = proc.communicate(timeout=30)
        assert 3 == proc.returncode
        (line,) = [x for x in err.decode().splitlines() if x.startswith("ct-ingest aborted:")]
        assert f"SourceError: receive_message {url}: " in line
        assert "NonExistentQueue The specified queue does not exist." in line

    def test_sqs_answering_503_for_ten_seconds_delays_but_loses_nothing(
        self,
        s3: object,
        s3_url: str,
        opensearch_url: str,
        tail_proc: Callable[..., subprocess.Popen[bytes]],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """The queue answers 503 to every call for 10 s, longer than --retry-deadline: receive
        gives up, says so, and tries again; objects notified before, during and after the outage
        are each indexed once, and every message is deleted in the end."""
        sqs, url = TestSqs()._queue(s3_url)
        with FaultProxy(s3_url) as proxy:
            monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", proxy.url)
            proc = tail_proc(
                opensearch_url, "--sqs-queue-url", url, *self.ARGS, "--retry-deadline", "4"
            )
            now = datetime.now(UTC).replace(second=0, microsecond=0)
            before = _put(s3, now - timedelta(minutes=9), "b1") | _put(
                s3, now - timedelta(minutes=8), "b2"
            )
            _wait(lambda: before <= _ids(opensearch_url), 30)
            proxy.set_faults(Faults(down=True))
            time.sleep(2)  # a receive already forwarded to moto ends (--sqs-wait-seconds 1)
            during = _put(s3, now - timedelta(minutes=5), "d1") | _put(
                s3, now - timedelta(minutes=4), "d2"
            )
            time.sleep(10)
            assert proc.poll() is None
            assert not during & _ids(opensearch_url, refresh=True)
            proxy.set_faults(Faults())
            after = _put(s3, now - timedelta(minutes=1), "a1")
            _wait(lambda: (before | during | after) <= _ids(opensearch_url), 30)
            _wait(lambda: _queue_empty(sqs, url), 20)
            err = _stop(proc)
        assert before | during | after == _ids(opensearch_url, refresh=True)
        done = _done_keys(err)
        assert sorted(done) == sorted(set(done))
        assert 5 == len(done)
        assert _events(err, "sqs_receive_failed")
        assert any("503" in str(ev["reason"]) for ev in _events(err, "retrying"))

    def test_s3_answering_503_leaves_messages_for_later(
        self,
        s3: object,
        s3_url: str,
        opensearch_url: str,
        tail_proc: Callable[..., subprocess.Popen[bytes]],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """The bucket answers 503 for 10 s while notifications arrive: HEAD is retried, a
        message whose object S3 does not answer for within --retry-deadline is left on the
        queue (and logged), comes back, and its objects are indexed once."""
        monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", s3_url)
        sqs, url = TestSqs()._queue(s3_url)
        with FaultProxy(s3_url) as proxy:
            monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)
            proc = tail_proc(
                opensearch_url, "--sqs-queue-url", url, *self.ARGS, "--retry-deadline", "4"
            )
            now = datetime.now(UTC).replace(second=0, microsecond=0)
            before = _put(s3, now - timedelta(minutes=9), "b1")
            _wait(lambda: before <= _ids(opensearch_url), 30)
            proxy.set_faults(Faults(down=True))
            during = _put(s3, now - timedelta(minutes=5), "d1") | _put(
                s3, now - timedelta(minutes=4), "d2"
            )
            time.sleep(10)
            assert proc.poll() is None
            assert not during & _ids(opensearch_url, refresh=True)
            proxy.set_faults(Faults())
            after = _put(s3, now - timedelta(minutes=1), "a1")
            _wait(lambda: (before | during | after) <= _ids(opensearch_url), 30)
            _wait(lambda: _queue_empty(sqs, url), 20)
            err = _stop(proc)
        assert before | during | after == _ids(opensearch_url, refresh=True)
        done = _done_keys(err)
        assert sorted(done) == sorted(set(done))
        assert 4 == len(done)
        assert _events(err, "sqs_message_left")
