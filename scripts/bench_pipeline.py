#!/usr/bin/env python3
"""End-to-end performance of ct-ingest, every figure against a baseline measured in the same run.

    python scripts/bench_pipeline.py [--gb 1.0] [--rss-small 0.2] [--rss-large 2.0] [--keys 50000]
    python scripts/bench_pipeline.py --only listing,s3   # the S3 parts alone (~4 min)
    python scripts/bench_pipeline.py --quick      # small sizes, to check the script itself

1. ``transform``: throughput on one core vs the floor (gunzip + orjson.loads + orjson.dumps);
2. ``local``: backfill of a generated archive from a local directory into a loopback bulk
   endpoint that parses and acknowledges _bulk without indexing (NullCluster);
3. ``osmem``: a small backfill into osmem-server;
4. ``rss``: peak RSS of the ct-ingest process at two archive sizes;
5. ``s3``: end to end from the S3 latency model (``ingest.testing.s3model``, 30 ms per request)
   into NullCluster, an archive of small files as CloudTrail writes them: ct-ingest at
   ``--concurrency`` 8/32/128 vs a naive loader (boto3 sequential GETs + json +
   opensearchpy.helpers.bulk);
6. ``listing``: >= 50k keys over >= 300 day prefixes from the latency model at 50 ms per LIST:
   the parallel walk vs one paginator over the whole prefix.
Prints one Markdown table (and, with ``s3``, the concurrency table).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import boto3
import orjson

from ingest.config import DEFAULT_CONCURRENCY, Filters
from ingest.decode import decode_object
from ingest.listing import list_log_objects
from ingest.source import ObjectRef
from ingest.testing import synth
from ingest.testing.faultproxy import NullCluster
from ingest.testing.s3model import Latency, S3ModelProcess, open_store
from ingest.testing.servers import start_osmem

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


def _write(root: Path, files: Iterator[synth.SynthFile]) -> tuple[int, int, int, int]:
    """Write log files below ``root``; (files, records, JSON bytes, gzip bytes)."""
    n = records = raw = size = 0
    for f in files:
        path = root / f.key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f.body)
        n, records, size = n + 1, records + f.records, size + len(f.body)
        raw += len(gzip.decompress(f.body))
    return n, records, raw, size


def archive(root: Path, gb: float, seed: int) -> tuple[int, int, int]:
    """Write about ``gb`` GB of JSON as CloudTrail files; returns (files, records, json bytes)."""
    events = int(gb * 1e9 / 1150)  # synthetic records average ~1.15 KB of JSON
    return _write(root, synth.generate(events, seed=seed, days=6, per_file=400))[:3]


def ct_ingest(
    source: str, url: str, state: Path, env: dict[str, str], *extra: str
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
        *extra,
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


def transform(n_records: int, rounds: int = 5) -> tuple[float, float, float]:
    """(floor MB/s, ours MB/s, ours records/s) on one core, the same records for both: the best
    of ``rounds`` interleaved rounds of this process's CPU time (other processes on a shared
    machine do not count), with the collector set as in the decoding workers. Prints both in
    records/s/core and the ratio."""
    files = list(synth.generate(n_records, seed=2, days=1))
    raw = sum(len(gzip.decompress(f.body)) for f in files)
    records = sum(f.records for f in files)

    def floor() -> None:
        for f in files:
            for rec in orjson.loads(gzip.decompress(f.body))["Records"]:
                orjson.dumps(rec)

    def ours() -> None:
        for f in files:
            decode_object(f.key, f.body)

    best: dict[str, float] = {}
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)  # as ingest.pool's workers
    try:
        for _ in range(rounds):
            for fn in (floor, ours):
                t = time.process_time()
                fn()
                best[fn.__name__] = min(best.get(fn.__name__, 1e9), time.process_time() - t)
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
    print(
        f"transform: ct-ingest {records / best['ours']:,.0f} records/s/core, floor "
        f"{records / best['floor']:,.0f} records/s/core: {best['floor'] / best['ours']:.1%}"
        " of the floor",
        file=sys.stderr,
    )
    return raw / best["floor"] / 1e6, raw / best["ours"] / 1e6, records / best["ours"]


def small_archive(root: Path, objects: int) -> tuple[int, int, int, int]:
    """Log files as CloudTrail writes them for a quiet-to-busy organisation: a third each of
    ~40, ~180 and ~400 records (~28 KB gzip on average). (files, records, JSON, gzip bytes)."""
    totals = [0, 0, 0, 0]
    for n, (account, per_file) in enumerate(zip(synth.ACCOUNTS, (40, 180, 400), strict=True)):
        batch = synth.generate(
            per_file * (objects // 3), seed=20 + n, accounts=(account,), days=2, per_file=per_file
        )
        totals = [a + b for a, b in zip(totals, _write(root, batch), strict=True)]
    return totals[0], totals[1], totals[2], totals[3]


async def gets_alone(url: str, concurrency: int) -> tuple[int, float]:
    """GET every log file of bucket ``bench``, ``concurrency`` at a time, and nothing else:
    what the fetch stage alone could feed. (objects, seconds)."""
    store = await open_store(url, "bench", concurrency=concurrency)
    refs: list[ObjectRef] = []
    gate = asyncio.Semaphore(concurrency)

    async def emit(ref: ObjectRef) -> None:
        refs.append(ref)

    async def get(ref: ObjectRef) -> None:
        async with gate:
            await store.get(ref)

    try:
        await list_log_objects(store, "", Filters(), emit, concurrency=concurrency)
        t = time.monotonic()
        await asyncio.gather(*(get(r) for r in refs))
        return len(refs), time.monotonic() - t
    finally:
        await store.aclose()


@dataclass
class FromS3:
    """The s3 part's measurements: small_archive's totals, the naive loader's seconds and
    documents, and per concurrency ct-ingest's seconds and the GETs' alone."""

    archive: tuple[int, int, int, int]
    naive: tuple[float, int]
    took: dict[int, float]
    gets: dict[int, float]


def from_s3(
    work: Path, objects: int, null_url: str, env: dict[str, str], concurrencies: list[int]
) -> FromS3:
    """ct-ingest at each concurrency and the naive loader, from the latency model at 30 ms per
    request."""
    archive = small_archive(work / "small", objects)
    model = S3ModelProcess.start(work / "small", bucket="bench", latency=Latency(30, 30))
    env = {**env, "AWS_ENDPOINT_URL_S3": model.url}
    took: dict[int, float] = {}
    gets: dict[int, float] = {}
    try:
        for c in concurrencies:
            took[c], done, _ = ct_ingest(
                "s3://bench", null_url, work / f"c{c}", env, "--concurrency", str(c)
            )
            assert done["indexed"] == archive[1], (done, archive)
            n, gets[c] = asyncio.run(gets_alone(model.url, c))
            assert n == archive[0], (n, archive)
        t = time.monotonic()
        naive = subprocess.run(
            [sys.executable, "-c", NAIVE, "bench", null_url],
            env=env,
            capture_output=True,
            check=True,
        )
        naive_s = time.monotonic() - t
    finally:
        model.stop()
    return FromS3(archive, (naive_s, json.loads(naive.stdout)["indexed"]), took, gets)


def listing(
    work: Path, n_keys: int, days: int, concurrency: int, repeat: int
) -> tuple[int, int, float, float]:
    """Empty log files over ``days`` day prefixes, served by the latency model at 50 ms per
    LIST; time the parallel walk and one paginator over the same keys, best of ``repeat``.
    (keys, day prefixes, parallel s, paginator s)."""
    root, bucket = work / "listing", "bench-listing"
    accounts, regions = ("111122223333", "444455556666", "777788889999"), ("us-east-1", "eu-west-1")
    slots = [(a, r, d) for a in accounts for r in regions for d in range(days // 6 + 1)][:days]
    per = n_keys // len(slots) + 1
    for a, r, d in slots:
        day = datetime.fromordinal(datetime(2024, 1, 1).toordinal() + d).replace(tzinfo=UTC)
        folder = root / f"AWSLogs/{a}/CloudTrail/{r}/{day:%Y/%m/%d}"
        folder.mkdir(parents=True)
        for i in range(per):
            name = (
                f"{a}_CloudTrail_{r}_{day:%Y%m%d}T{i // 60 % 24:02d}{i % 60:02d}Z_k{i:05d}.json.gz"
            )
            (folder / name).touch()
    model = S3ModelProcess.start(root, bucket=bucket, latency=Latency(50, 50))

    async def parallel() -> int:
        store = await open_store(model.url, bucket, concurrency=concurrency)
        found = 0

        async def emit(ref: object) -> None:
            nonlocal found
            found += 1

        try:
            await list_log_objects(store, "", Filters(), emit, concurrency=concurrency)
        finally:
            await store.aclose()
        return found

    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=model.url,
            region_name="us-east-1",
        )
        s3.list_objects_v2(Bucket=bucket, MaxKeys=1)  # connection and client warmed up
        par = one = float("inf")
        for _ in range(repeat):  # best of ``repeat``: the machine is shared and noisy
            t = time.monotonic()
            found = asyncio.run(parallel())
            par = min(par, time.monotonic() - t)
            t = time.monotonic()
            serial = sum(
                len(p.get("Contents", []))
                for p in s3.get_paginator("list_objects_v2").paginate(
                    Bucket=bucket, Prefix="AWSLogs/"
                )
            )
            one = min(one, time.monotonic() - t)
    finally:
        model.stop()
    assert found == serial == per * len(slots), (found, serial, per * len(slots))
    return found, len(slots), par, one


PARTS = ("transform", "local", "osmem", "rss", "s3", "listing")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--only", default=",".join(PARTS), help="comma-separated parts to run")
    ap.add_argument("--gb", type=float, default=1.0, help="end-to-end archive, GB of JSON")
    ap.add_argument("--rss-small", type=float, default=0.2)
    ap.add_argument("--rss-large", type=float, default=2.0)
    ap.add_argument("--keys", type=int, default=50_000)
    ap.add_argument("--days", type=int, default=300)
    ap.add_argument("--osmem-events", type=int, default=20_000)
    ap.add_argument("--s3-objects", type=int, default=600, help="small files for the s3 part")
    ap.add_argument("--repeat", type=int, default=3, help="listing: best of this many runs")
    ap.add_argument("--concurrency", default="8,32,128", help="the s3 part's --concurrency runs")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, to check the script")
    args = ap.parse_args()
    only = set(args.only.split(","))
    if only - set(PARTS):
        ap.error(f"--only takes {','.join(PARTS)}")
    if args.quick:
        args.gb, args.rss_small, args.rss_large, args.keys, args.days, args.osmem_events = (
            0.02,
            0.01,
            0.03,
            3000,
            30,
            2000,
        )
        args.s3_objects = 150
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    work = Path(tempfile.mkdtemp(prefix="ct-bench-"))
    rows: list[tuple[str, str, str]] = []
    extra: list[str] = []
    null = NullCluster().start()
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    os.environ.update(
        {k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    )
    try:
        if "transform" in only:
            floor, ours, rps = transform(20_000 if not args.quick else 2000)
            rows.append(
                (
                    "transform, 1 core (gunzip, parse, enrich, NDJSON)",
                    f"{ours:.1f} MB/s, {rps:,.0f} records/s",
                    f"floor {floor:.1f} MB/s (gunzip+loads+dumps): {ours / floor:.0%}",
                )
            )

        if "local" in only:
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
            shutil.rmtree(work / "big")

        if "osmem" in only:
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

        if "rss" in only:
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

        if "s3" in only:
            rows_s3, extra = s3_rows(work, args.s3_objects, null.url, env, concurrencies)
            rows += rows_s3

        if "listing" in only:
            n, days, par, one = listing(
                work, args.keys, args.days, DEFAULT_CONCURRENCY, args.repeat
            )
            rows.append(
                (
                    f"listing {n:,} keys over {days} day prefixes, 50 ms per LIST (S3 model)",
                    f"parallel walk {par:.2f} s ({DEFAULT_CONCURRENCY} at a time)",
                    f"one paginator {one:.2f} s: {one / par:.1f}x (best of {args.repeat} each)",
                )
            )
    finally:
        null.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{os.cpu_count()} cores; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n")
    print("| measurement | ct-ingest | baseline, same run |")
    print("|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    for line in extra:
        print(line)


def s3_rows(
    work: Path, objects: int, null_url: str, env: dict[str, str], concurrencies: list[int]
) -> tuple[list[tuple[str, str, str]], list[str]]:
    """The s3 part: the headline row (the default concurrency) and the concurrency table."""
    run = from_s3(work, objects, null_url, env, concurrencies)
    (files, records, raw, size), (naive_s, naive_n), took = run.archive, run.naive, run.took
    assert naive_n == records, (naive_n, records)

    def rates(seconds: float) -> str:
        return f"{files / seconds:,.0f} objects/s, {records / seconds:,.0f} records/s"

    best = DEFAULT_CONCURRENCY if DEFAULT_CONCURRENCY in took else min(took, key=took.__getitem__)
    row = (
        f"backfill from the S3 model, 30 ms per GET: {files:,} files of {records // files} "
        f"records on average ({size / files / 1e3:.0f} KB gzip, {raw / 1e6:.0f} MB JSON)",
        f"{took[best]:.1f} s, {rates(took[best])} (--concurrency {best})",
        f"naive loader {naive_s:.1f} s, {rates(naive_s)}: {naive_s / took[best]:.1f}x",
    )
    table = [
        "",
        "| --concurrency | backfill s | objects/s | records/s | vs naive loader | GETs alone |",
        "|---|---|---|---|---|---|",
    ]
    for c, t in took.items():
        table.append(
            f"| {c} | {t:.1f} | {files / t:,.0f} | {records / t:,.0f} | {naive_s / t:.1f}x "
            f"| {files / run.gets[c]:,.0f} objects/s |"
        )
    table.append(
        f"| naive loader | {naive_s:.1f} | {files / naive_s:,.0f} | {records / naive_s:,.0f} "
        "| 1x | |"
    )
    return [row], table


if __name__ == "__main__":
    main()
