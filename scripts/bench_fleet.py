"""Benchmark of the fleet path, end to end on loopback: ``enqueue`` an archive into moto's SQS,
then one ``tail --sqs-queue-url --exit-when-idle`` worker drains it into the null bulk endpoint
(``ingest.testing.faultproxy.NullCluster``), against a ``backfill`` of the same bucket.

    python scripts/bench_fleet.py                  # ~3 min: 2,000 objects of 50 records
    python scripts/bench_fleet.py --objects 500    # quicker

Prints a Markdown table for docs/benchmarks.md. moto answers S3 and SQS from one Python process
on this machine, so its latency is loopback's and its throughput moto's own: the figures are
ct-ingest's cost per object on these cores, not S3's or SQS's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import boto3

from ingest.demo import upload
from ingest.testing import synth
from ingest.testing.faultproxy import NullCluster
from ingest.testing.servers import MotoServer

IDLE = 2.0  # --exit-when-idle: subtracted from the worker's wall time


def _run(args: list[str], env: dict[str, str]) -> tuple[float, list[dict[str, object]]]:
    """Seconds and the JSON log events of ``ct-ingest ARGS``."""
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "ingest.cli", *args, "--log-format", "json"],
        env=env,
        capture_output=True,
        check=False,
    )
    took = time.monotonic() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(proc.stderr.decode()[-3000:])
    events = [json.loads(x) for x in proc.stderr.splitlines() if x.startswith(b"{")]
    return took, events


def _event(events: list[dict[str, object]], name: str) -> dict[str, object]:
    return [e for e in events if e.get("event") == name][-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--objects", type=int, default=2000)
    ap.add_argument("--per-file", type=int, default=50, help="records per object")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ct-fleet-"))
    moto, null = MotoServer.start(), NullCluster().start()
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": moto.url,
        "AWS_ENDPOINT_URL_SQS": moto.url,
        "XDG_STATE_HOME": str(work / "state"),
    }
    os.environ.update({k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")})
    rows: list[tuple[str, str, str]] = []
    try:
        files = list(
            synth.generate(args.objects * args.per_file, seed=11, days=3, per_file=args.per_file)
        )
        upload(moto.url, files, bucket="bench")
        records = sum(f.records for f in files)
        sqs = boto3.client("sqs", endpoint_url=moto.url, region_name="us-east-1")
        url = sqs.create_queue(QueueName="bench", Attributes={"VisibilityTimeout": "300"})[
            "QueueUrl"
        ]
        took, events = _run(["enqueue", "s3://bench", "--sqs-queue-url", url], env)
        done = _event(events, "enqueue_done")
        rows.append(
            (
                f"enqueue {len(files):,} keys (listing + send_message_batch)",
                f"{took:.1f} s, {len(files) / took:,.0f} keys/s",
                f"{done['messages']} messages, {done['batches']} send_message_batch calls",
            )
        )
        common = ["--opensearch", null.url, "--workers", str(args.workers)]
        took, events = _run(
            [
                "tail",
                "s3://bench",
                "--sqs-queue-url",
                url,
                "--sqs-wait-seconds",
                "1",
                "--exit-when-idle",
                str(IDLE),
                "--state",
                str(work / "w" / "ledger.sqlite"),
                *common,
            ],
            env,
        )
        run = _event(events, "run_done")
        busy = took - IDLE
        rows.append(
            (
                f"one worker drains it ({args.workers} decoding processes)",
                f"{busy:.1f} s, {int(run['objects_done']) / busy:,.0f} objects/s, "  # type: ignore[call-overload]
                f"{records / busy:,.0f} records/s",
                f"{run['objects_done']} objects, {run['indexed']} documents",
            )
        )
        took, events = _run(
            ["backfill", "s3://bench", "--state", str(work / "b" / "ledger.sqlite"), *common], env
        )
        run = _event(events, "run_done")
        rows.append(
            (
                "backfill of the same bucket (baseline)",
                f"{took:.1f} s, {int(run['objects_done']) / took:,.0f} objects/s, "  # type: ignore[call-overload]
                f"{records / took:,.0f} records/s",
                "listing + GET, no queue",
            )
        )
    finally:
        null.stop()
        moto.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{os.cpu_count()} cores; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n")
    print("| measurement | result | notes |")
    print("|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
