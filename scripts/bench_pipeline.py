#!/usr/bin/env python3
"""End-to-end performance of ct-ingest, every figure against a baseline measured in the same run.

    python scripts/bench_pipeline.py [--gb 1.0] [--rss-small 0.2] [--rss-large 2.0] [--keys 50000]
    python scripts/bench_pipeline.py --quick      # small sizes, to check the script itself

1. transform throughput on one core vs the floor (gunzip + orjson.loads + orjson.dumps);
2. backfill of a generated archive from a local directory and from moto into a loopback bulk
   endpoint that parses and acknowledges _bulk without indexing, vs a naive loader (boto3
   sequential GETs + json + opensearchpy.helpers.bulk), plus a small run into osmem-server;
3. peak RSS of the ct-ingest process at two archive sizes;
4. listing >= 50k keys over >= 300 day prefixes: parallel walk vs one paginator.
Prints one Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import boto3
import orjson
from botocore.config import Config

from ingest.config import Filters, S3Location, SourceConfig
from ingest.decode import decode_object
from ingest.listing import list_log_objects
from ingest.source import S3Store
from ingest.testing import synth
from ingest.testing.faultproxy import NullCluster
from ingest.testing.servers import MotoServer, start_osmem

# Runs a command and prints the peak RSS (KiB) of its largest process: this run's alone.
_MEASURE = (
    "import resource, subprocess, sys\n"
    "code = subprocess.call(sys.argv[1:])\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "sys.exit(code)\n"
)

NAIVE = r"""
import gzip, json, sys, boto3
from opensearchpy import OpenSearch, helpers
bucket, url = sys.argv[1], sys.argv[2]
s3 = boto3.client("s3")
client = OpenSearch(hosts=[url], timeout=120)
def actions():
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="AWSLogs/"):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            for rec in json.loads(gzip.decompress(body))["Records"]:
                t = rec["eventTime"]
                yield {"_op_type": "create", "_index": "naive-" + t[:4] + "." + t[5:7],
                       "_id": rec["eventID"], "_source": rec}
ok, errors = helpers.bulk(client, actions(), raise_on_error=False)
print(json.dumps({"indexed": ok}))
"""


def archive(root: Path, gb: float, seed: int) -> tuple[int, int, int]:
    """Write about ``gb`` GB of JSON as CloudTrail files; returns (files, records, json bytes)."""
    events = int(gb * 1e9 / 1150)  # synthetic records average ~1.15 KB of JSON
    files = records = raw = 0
    for f in synth.generate(events, seed=seed, days=6, per_file=400):
        path = root / f.key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f.body)
        files += 1
        records += f.records
        raw += len(gzip.decompress(f.body))
    return files, records, raw


def ct_ingest(
    source: str, url: str, state: Path, env: dict[str, str]
) -> tuple[float, dict[str, object], int]:
    """Run a backfill as a process; (seconds, run_done, peak RSS KiB of the largest process)."""
    started = time.monotonic()
    cmd = [
        sys.executable,
        "-m",
        "ingest.cli",
        "backfill",
        source,
        "--opensearch",
        url,
        "--state",
        str(state / "l.sqlite"),
        "--log-format",
        "json",
        "--no-backfill-mode",
    ]
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, *cmd], env=env, capture_output=True, check=False
    )
    took = time.monotonic() - started
    done = [json.loads(x) for x in proc.stderr.splitlines() if b'"run_done"' in x]
    if proc.returncode != 0 or not done:
        raise SystemExit(f"ct-ingest failed ({proc.returncode}): {proc.stderr[-2000:].decode()}")
    rss = int(proc.stdout.decode().strip().splitlines()[-1])
    return took, done[-1], rss


def upload(s3_url: str, root: Path, bucket: str) -> None:
    s3 = boto3.client(
        "s3", endpoint_url=s3_url, region_name="us-east-1", config=Config(max_pool_connections=32)
    )
    s3.create_bucket(Bucket=bucket)
    paths = list(root.rglob("*.json.gz"))
    with ThreadPoolExecutor(32) as pool:
        list(
            pool.map(
                lambda p: s3.put_object(
                    Bucket=bucket, Key=p.relative_to(root).as_posix(), Body=p.read_bytes()
                ),
                paths,
            )
        )


def transform(n_records: int) -> tuple[float, float, float]:
    """(floor MB/s, ours MB/s, ours records/s) on one core, the same records for both."""
    files = list(synth.generate(n_records, seed=2, days=1))
    raw = sum(len(gzip.decompress(f.body)) for f in files)

    def floor() -> None:
        for f in files:
            for rec in orjson.loads(gzip.decompress(f.body))["Records"]:
                orjson.dumps(rec)

    def ours() -> None:
        for f in files:
            decode_object(f.key, f.body)

    best = {}
    for fn in (floor, ours, floor, ours, floor, ours):
        t = time.perf_counter()
        fn()
        best[fn.__name__] = min(best.get(fn.__name__, 1e9), time.perf_counter() - t)
    return raw / best["floor"] / 1e6, raw / best["ours"] / 1e6, n_records / best["ours"]


def listing(s3_url: str, n_keys: int, days: int) -> tuple[int, int, float, float]:
    """Upload empty log files over ``days`` day prefixes; time the parallel walk and one
    paginator over the same keys. (keys, day prefixes, parallel s, paginator s)."""
    bucket = "bench-listing"
    s3 = boto3.client(
        "s3", endpoint_url=s3_url, region_name="us-east-1", config=Config(max_pool_connections=32)
    )
    s3.create_bucket(Bucket=bucket)
    accounts, regions = ("111122223333", "444455556666", "777788889999"), ("us-east-1", "eu-west-1")
    slots = [(a, r, d) for a in accounts for r in regions for d in range(days // 6 + 1)][:days]
    per = n_keys // len(slots) + 1

    def keys() -> Iterator[str]:
        for a, r, d in slots:
            day = datetime.fromordinal(datetime(2024, 1, 1).toordinal() + d).replace(tzinfo=UTC)
            for i in range(per):
                yield (
                    f"AWSLogs/{a}/CloudTrail/{r}/{day:%Y/%m/%d}/"
                    f"{a}_CloudTrail_{r}_{day:%Y%m%d}T{i // 60 % 24:02d}{i % 60:02d}Z"
                    f"_k{i:05d}.json.gz"
                )

    all_keys = list(keys())
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=b""), all_keys))

    async def parallel() -> int:
        store = await S3Store.open(
            S3Location(bucket, ""),
            SourceConfig(
                location=S3Location(bucket, ""),
                endpoint_url=s3_url,
                region="us-east-1",
                concurrency=32,
            ),
        )
        found = 0

        async def emit(ref: object) -> None:
            nonlocal found
            found += 1

        await list_log_objects(store, "", Filters(), emit, concurrency=32)
        await store.aclose()
        return found

    t = time.monotonic()
    found = asyncio.run(parallel())
    par = time.monotonic() - t
    t = time.monotonic()
    serial = sum(
        len(p.get("Contents", []))
        for p in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="AWSLogs/")
    )
    one = time.monotonic() - t
    assert found == serial == len(all_keys), (found, serial, len(all_keys))
    return found, len(slots), par, one


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--gb", type=float, default=1.0, help="end-to-end archive, GB of JSON")
    ap.add_argument("--rss-small", type=float, default=0.2)
    ap.add_argument("--rss-large", type=float, default=2.0)
    ap.add_argument("--keys", type=int, default=50_000)
    ap.add_argument("--days", type=int, default=300)
    ap.add_argument("--osmem-events", type=int, default=20_000)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, to check the script")
    args = ap.parse_args()
    if args.quick:
        args.gb, args.rss_small, args.rss_large, args.keys, args.days, args.osmem_events = (
            0.02,
            0.01,
            0.03,
            3000,
            30,
            2000,
        )
    work = Path(tempfile.mkdtemp(prefix="ct-bench-"))
    rows: list[tuple[str, str, str]] = []
    moto, null = MotoServer.start(), NullCluster().start()
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": moto.url,
    }
    os.environ.update(
        {k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    )
    try:
        floor, ours, rps = transform(20_000 if not args.quick else 2000)
        rows.append(
            (
                "transform, 1 core (gunzip, parse, enrich, NDJSON)",
                f"{ours:.1f} MB/s, {rps:,.0f} records/s",
                f"floor {floor:.1f} MB/s (gunzip+loads+dumps): {ours / floor:.0%}",
            )
        )

        files, records, raw = archive(work / "big", args.gb, 1)
        took, done, _ = ct_ingest(str(work / "big"), null.url, work / "s1", env)
        rows.append(
            (
                f"backfill {raw / 1e9:.2f} GB JSON ({records:,} records, {files:,} files), "
                "local dir",
                f"{took:.1f} s, {raw / took / 1e6:.1f} MB/s, {records / took:,.0f} records/s",
                f"indexed {done['indexed']:,}",
            )
        )
        upload(moto.url, work / "big", "bench")
        took_s3, done, _ = ct_ingest("s3://bench", null.url, work / "s2", env)
        t = time.monotonic()
        naive = subprocess.run(
            [sys.executable, "-c", NAIVE, "bench", null.url],
            env=env,
            capture_output=True,
            check=True,
        )
        took_naive = time.monotonic() - t
        naive_n = json.loads(naive.stdout)["indexed"]
        rows.append(
            (
                "backfill, same archive from moto S3",
                f"{took_s3:.1f} s, {raw / took_s3 / 1e6:.1f} MB/s",
                f"naive loader {took_naive:.1f} s ({raw / took_naive / 1e6:.1f} MB/s, "
                f"{naive_n:,} docs): "
                f"{took_naive / took_s3:.1f}x faster",
            )
        )

        osmem = start_osmem()
        try:
            small = work / "osmem"
            synth.write_tree(small, synth.generate(args.osmem_events, seed=3, days=1))
            took_os, done, _ = ct_ingest(str(small), osmem.url, work / "s3", env)
            rows.append(
                (
                    f"backfill {args.osmem_events:,} records into osmem-server",
                    f"{took_os:.1f} s, {done['indexed'] / took_os:,.0f} records/s",
                    "the server is the limit (~1k docs/s)",
                )
            )
        finally:
            osmem.stop()

        rss_rows = []
        for gb in (args.rss_small, args.rss_large):
            root = work / f"rss{gb}"
            _, n, raw_n = archive(root, gb, 5)
            _, _, peak = ct_ingest(str(root), null.url, work / f"r{gb}", env)
            rss_rows.append((gb, raw_n, peak))
            shutil.rmtree(root)
        (_, r1, p1), (_, r2, p2) = rss_rows
        rows.append(
            (
                f"peak RSS, {r1 / 1e9:.2f} GB vs {r2 / 1e9:.2f} GB of JSON",
                f"{p1 / 1024:.0f} MB vs {p2 / 1024:.0f} MB",
                f"growth {p2 / p1 - 1:+.0%}",
            )
        )

        n, days, par, one = listing(moto.url, args.keys, args.days)
        rows.append(
            (
                f"listing {n:,} keys over {days} day prefixes (moto)",
                f"parallel walk {par:.1f} s",
                f"one paginator {one:.1f} s: {one / par:.1f}x",
            )
        )
    finally:
        null.stop()
        moto.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{os.cpu_count()} cores; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n")
    print("| measurement | ct-ingest | baseline, same run |")
    print("|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
