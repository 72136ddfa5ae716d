"""Past one machine: ``enqueue`` fills an SQS queue (moto) from an archive, ``tail
--sqs-queue-url`` workers (subprocesses) drain it into osmem; a worker killed with SIGKILL loses
nothing (its messages come back after their visibility timeout), one stopped with SIGTERM hands
back what it holds, enqueueing twice duplicates nothing, and a rerun of enqueue resumes."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import boto3
import orjson
import pytest

from ingest.config import build_settings
from ingest.deadletter import read_entries
from ingest.demo import upload
from ingest.enqueue import EnqueueStats, run_enqueue
from ingest.testing import synth

from .helpers import all_docs, cli, count

pytestmark = pytest.mark.integration
BUCKET = "fleet-bucket"
BAD_DAY = "AWSLogs/111122223333/CloudTrail/us-east-1/2024/03/04/"
BAD = {  # objects no worker can read: each must end in exactly one place, the dead-letter
    f"{BAD_DAY}111122223333_CloudTrail_us-east-1_20240304T2355Z_notgzip.json.gz": b"not gzip",
    f"{BAD_DAY}111122223333_CloudTrail_us-east-1_20240304T2356Z_cut.json.gz": gzip.compress(
        b'{"Records": [{"eventID": "x"' * 50
    )[:40],
}


def _archive(
    s3_url: str, events: int, per_file: int = 10
) -> tuple[list[synth.SynthFile], set[str]]:
    files = list(
        synth.generate(
            events,
            seed=5,
            days=2,
            accounts=("111122223333", "444455556666"),
            regions=("us-east-1", "eu-west-1"),
            per_file=per_file,
        )
    )
    upload(s3_url, files, bucket=BUCKET)
    s3 = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1")
    for key, body in BAD.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    return files, {e for f in files for e in f.event_ids}


@pytest.fixture
def queue(s3_url: str, monkeypatch: pytest.MonkeyPatch) -> tuple[object, str, str]:
    """A queue with a 4 s visibility timeout and a redrive policy to a dead-letter queue."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", s3_url)
    sqs = boto3.client("sqs", endpoint_url=s3_url, region_name="us-east-1")
    dlq = sqs.create_queue(QueueName="fleet-dlq")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    url = sqs.create_queue(
        QueueName="fleet",
        Attributes={
            "VisibilityTimeout": "4",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "5"}),
        },
    )["QueueUrl"]
    return sqs, url, dlq


@pytest.fixture
def worker(tmp_path: Path, opensearch_url: str) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(url: str, name: str, *extra: str) -> subprocess.Popen[bytes]:
        state = tmp_path / name
        p = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ingest.cli",
                "tail",
                f"s3://{BUCKET}",
                "--opensearch",
                opensearch_url,
                "--sqs-queue-url",
                url,
                "--sqs-wait-seconds",
                "1",
                "--sqs-visibility",
                "4",
                "--state",
                str(state / "ledger.sqlite"),
                "--deadletter",
                str(state / "deadletter.jsonl"),
                "--log-format",
                "json",
                "--workers",
                "1",
                "--concurrency",
                "8",
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


def _enqueue(url: str, tmp_path: Path, *extra: str) -> dict[str, object]:
    run = cli(
        "enqueue",
        f"s3://{BUCKET}",
        "--sqs-queue-url",
        url,
        "--state",
        str(tmp_path / "enqueue.sqlite"),
        "--keys-per-message",
        "5",
        "--log-format",
        "json",
        *extra,
    )
    assert 0 == run.code, run.stderr[-2000:]
    assert run.stdout.startswith("ct-ingest enqueue: keys ")
    (done,) = run.events("enqueue_done")
    return done


def _events(stderr: bytes, name: str) -> list[dict[str, object]]:
    return [
        ev
        for line in stderr.splitlines()
        if line.startswith(b"{") and (ev := orjson.loads(line)).get("event") == name
    ]


def _finish(proc: subprocess.Popen[bytes], timeout: float = 120) -> bytes:
    """Its stderr, once it exited 0, or 1 (finished, with something in its dead-letter: the
    worker that met an unreadable object)."""
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode in (0, 1), err.decode()[-3000:]
    return err


def _wait(cond: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError(f"condition not met within {timeout} s")


def _indexed(url: str) -> int:
    try:
        return count(url)
    except Exception:  # the alias does not exist before the first document
        return 0


def _queue_status(url: str, opensearch: str) -> dict[str, object]:
    run = cli("status", "--sqs-queue-url", url, "--opensearch", opensearch, "--json")
    assert 0 == run.code, run.stderr
    return dict(orjson.loads(run.stdout))


def _verify(opensearch: str, tmp_path: Path, deadletters: list[Path]) -> dict[str, object]:
    """verify against the workers' dead-letters put together (each worker writes its own)."""
    merged = tmp_path / "all-deadletters.jsonl"
    merged.write_bytes(b"".join(p.read_bytes() for p in deadletters if p.exists()))
    run = cli(
        "verify",
        f"s3://{BUCKET}",
        "--opensearch",
        opensearch,
        "--state",
        str(tmp_path / "no-ledger.sqlite"),
        "--deadletter",
        str(merged),
        "--json",
        "--log-format",
        "json",
    )
    assert 0 == run.code, run.stdout[-3000:] + run.stderr[-2000:]
    return dict(orjson.loads(run.stdout))


class TestFleet:
    def test_three_workers_one_killed_one_stopped_lose_and_duplicate_nothing(
        self,
        s3_url: str,
        opensearch_url: str,
        queue: tuple[object, str, str],
        worker: Callable[..., subprocess.Popen[bytes]],
        tmp_path: Path,
    ) -> None:
        """An archive of ~300 objects (two unreadable) is enqueued and drained by three workers;
        one is SIGKILLed mid-way, another stopped with SIGTERM: every eventID is indexed once,
        verify passes, the queue and its dead-letter queue are empty, and the workers'
        dead-letters hold exactly the two unreadable objects."""
        _, url, _ = queue
        files, ids = _archive(s3_url, 1500, per_file=5)
        done = _enqueue(url, tmp_path)
        assert len(files) + len(BAD) == done["keys"]
        assert -(-len(files) // 5) <= done["messages"] <= len(files) // 5 + 2  # 5 keys a message
        assert 300 <= len(files)
        procs = [worker(url, f"w{i}", "--exit-when-idle", "3") for i in range(3)]
        _wait(lambda: _indexed(opensearch_url) >= 300, 90)  # a fifth of the way
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait()
        procs[1].send_signal(signal.SIGTERM)
        stopped = _finish(procs[1], 60)
        assert 0 == procs[1].returncode  # a stopped tail exits 0
        (closed,) = _events(stopped, "sqs_closed")  # deleted what it settled, released the rest
        assert int(closed["deleted"]) > 0  # type: ignore[call-overload]
        last = _finish(procs[2])
        assert _events(last, "sqs_idle_exit")
        docs = all_docs(opensearch_url)
        assert ids == set(docs)
        assert len(ids) == count(opensearch_url)
        report = _verify(
            opensearch_url, tmp_path, [tmp_path / f"w{i}/deadletter.jsonl" for i in range(3)]
        )
        assert (len(ids), 0, 0) == (report["found"], report["missing"], report["unexpected"])
        dead = {
            e["key"]
            for i in range(3)
            for e in read_entries(tmp_path / f"w{i}" / "deadletter.jsonl")
        }
        assert set(BAD) == dead
        status = _queue_status(url, opensearch_url)
        assert (0, 0, 0, len(ids)) == (
            status["waiting"],
            status["in_flight"],
            status["dead_letter"],
            status["documents"],
        )

    def test_enqueued_twice_is_still_indexed_once_and_a_rerun_resumes(
        self,
        s3_url: str,
        opensearch_url: str,
        queue: tuple[object, str, str],
        worker: Callable[..., subprocess.Popen[bytes]],
        tmp_path: Path,
    ) -> None:
        """A rerun of enqueue skips the days it already sent; with --fresh it sends every key
        again, and two workers still index each eventID once."""
        _, url, _ = queue
        files, ids = _archive(s3_url, 600)
        first = _enqueue(url, tmp_path)
        again = _enqueue(url, tmp_path)
        assert (len(files) + len(BAD), 0) == (first["keys"], first["days_skipped"])
        assert (0, 0, first["days_sent"]) == (
            again["keys"],
            again["messages"],
            again["days_skipped"],
        )
        fresh = _enqueue(url, tmp_path, "--fresh")
        assert first["keys"] == fresh["keys"]
        procs = [worker(url, f"w{i}", "--exit-when-idle", "3") for i in range(2)]
        logs = [_finish(p) for p in procs]
        assert len(ids) == count(opensearch_url)
        assert ids == set(all_docs(opensearch_url))
        done = [ev["key"] for err in logs for ev in _events(err, "object_done")]
        assert set(done) == {f.key for f in files}
        _verify(opensearch_url, tmp_path, [tmp_path / f"w{i}/deadletter.jsonl" for i in range(2)])
        table = cli("status", "--sqs-queue-url", url, "--opensearch", opensearch_url)
        assert 0 == table.code, table.stderr
        rows = {
            cells[0]: cells[1]
            for line in table.stdout.splitlines()
            if len(cells := [c.strip() for c in line.strip("│ ").split("│")]) == 2
        }
        assert "0 / 0 / 0" == rows["messages waiting / in flight / delayed"]
        assert ("0", f"{len(ids):,}") == (
            rows["messages on the dead-letter queue"],
            rows["documents in cloudtrail"],
        )


class TestEnqueueProgress:
    def test_days_cloudtrail_still_writes_into_are_sent_again(
        self, s3_url: str, queue: tuple[object, str, str], tmp_path: Path
    ) -> None:
        """A day is recorded as sent only once it is older than SETTLE_DAYS: enqueued 'on' the
        archive's last day, a rerun sends both of its days again; two days later, nothing."""
        _, url, _ = queue
        files, _ = _archive(s3_url, 200)  # 2024-03-04 and 2024-03-05
        env = dict(os.environ)
        settings = build_settings(
            {"source": f"s3://{BUCKET}", "opensearch": "http://127.0.0.1:9", "workers": 0}, env
        )

        def run(today: date) -> EnqueueStats:
            return asyncio.run(
                run_enqueue(
                    settings,
                    queue_url=url,
                    endpoint_url=env["AWS_ENDPOINT_URL_SQS"],
                    progress_path=tmp_path / "progress.sqlite",
                    today=today,
                )
            )

        keys = len(files) + len(BAD)
        assert [keys, keys] == [run(date(2024, 3, 5)).keys for _ in range(2)]
        assert keys == run(date(2024, 3, 7)).keys  # old enough now: recorded
        again = run(date(2024, 3, 7))
        assert (0, again.listing.day_prefixes) == (again.keys, 0)
        assert 0 < again.days_skipped
