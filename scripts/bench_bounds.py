"""Bounded resources: peak memory of one huge object, and the ledger at fleet scale.

    python scripts/bench_bounds.py                      # both, ~10 min on 2 cores
    python scripts/bench_bounds.py memory [--mb 200]    # one 200 MB-JSON object vs a 2 MB one
    python scripts/bench_bounds.py ledger [--objects 10000000] [--engine-objects 200000]

memory: a backfill (``ct-ingest backfill DIR``, default workers, into the bulk-acknowledging
``NullCluster``) of a directory holding one log file of ``--mb`` MB of JSON, then of one of
2 MB, each in its own process; the peak RSS of the whole process tree (the CLI, the forkserver
and the decoding workers, summed, sampled every 20 ms) of each, and their ratio.

ledger: ``--objects`` synthetic objects (288 a day per account and region, like CloudTrail's
5-minute files) settled through the ledger as a backfill does, a listing page at a time
(settled? -> pending -> done), with the ledger's own compaction; the settle rate, and the file's
size per object after the last compaction. Then the engine's own pattern (one object at a time:
settled? -> in flight -> done, each its own transaction) on ``--engine-objects``. Then checks
that resuming, a changed ETag and tail's resume point still answer right.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

from ingest.checkpoint import Ledger, ObjectCounts, Status
from ingest.source import ObjectRef
from ingest.testing import synth
from ingest.testing.faultproxy import NullCluster

MB = 1_000_000
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _tree(root: int) -> set[int]:
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                parent[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    tree, grew = {root}, True
    while grew:
        more = {p for p, pp in parent.items() if pp in tree} - tree
        tree |= more
        grew = bool(more)
    return tree


def _rss(pids: set[int]) -> int:
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE
        except (OSError, ValueError, IndexError):
            continue
    return total


def _one_file(root: Path, json_mb: float, seed: int) -> tuple[int, int, int]:
    """One log file of about ``json_mb`` MB of JSON; (records, JSON bytes, gzip bytes)."""
    records = max(1, int(json_mb * MB / 1150))  # synthetic records average ~1.15 KB of JSON
    f = next(
        synth.generate(
            records, seed=seed, accounts=("111122223333",), regions=("us-east-1",), days=1,
            per_file=records,
        )
    )  # fmt: skip
    path = root / f.key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(f.body)
    return f.records, len(gzip.decompress(f.body)), len(f.body)


def _backfill_peak(root: Path, url: str, state: Path) -> tuple[int, float, int]:
    """Backfill ``root`` as a process; (peak RSS of its tree in bytes, seconds, exit code)."""
    cmd = [
        sys.executable, "-m", "ingest.cli", "backfill", str(root), "--opensearch", url,
        "--state", str(state / "l.sqlite"), "--log-format", "json", "--no-backfill-mode",
    ]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak, pids, looked = 0, {proc.pid}, 0.0
    while proc.poll() is None:
        if time.monotonic() - looked > 0.5:
            pids, looked = _tree(proc.pid), time.monotonic()
        peak = max(peak, _rss(pids))
        time.sleep(0.02)
    return peak, time.monotonic() - started, proc.returncode


def memory(big_mb: float) -> None:
    null = NullCluster().start()
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for label, mb in (("small", 2.0), ("large", big_mb)):
                root, state = Path(tmp) / label, Path(tmp) / f"{label}-state"
                state.mkdir()
                records, raw, packed = _one_file(root, mb, seed=11)
                peak, took, code = _backfill_peak(root, null.url, state)
                if code != 0:
                    raise SystemExit(f"backfill of the {label} object exited {code}")
                rows.append((records, raw, packed, peak, took))
    finally:
        null.stop()
    print("| object | records | JSON | gzip | peak RSS, process tree | time |")
    print("|---|---|---|---|---|---|")
    for r, j, g, p, t in rows:
        size = f"{j / MB:.1f} MB | {g / MB:.1f} MB"
        print(f"| one file | {r:,} | {size} | {p / MB:.0f} MB | {t:.1f} s |")
    p1, p2 = rows[0][3], rows[1][3]
    ratio = p2 / p1
    verdict = "met" if ratio < 2 else "missed"
    print(f"\npeak RSS {p2 / MB:.0f} MB vs {p1 / MB:.0f} MB: {ratio:.2f}x (target < 2x: {verdict})")


def _keys(n: int, per_day: int) -> Iterator[ObjectRef]:
    """``n`` objects in CloudTrail's layout, ``per_day`` a day per account and region (100
    accounts, 4 regions), a folder after another (as listing hands them over)."""
    accounts = [f"{100000000000 + a:012d}" for a in range(100)]
    regions = ["eu-west-1", "us-east-1", "us-west-2", "ap-south-1"]
    rng = random.Random(5)
    made, slot, day0 = 0, 0, date(2023, 1, 1)
    while made < n:
        acct, region = accounts[slot % 100], regions[(slot // 100) % 4]
        day = day0 + timedelta(days=slot // 400)
        folder = f"AWSLogs/o-abcdefghij/{acct}/CloudTrail/{region}/{day:%Y/%m/%d}/"
        for i in range(min(per_day, n - made)):
            stamp = f"{day:%Y%m%d}T{i * 5 // 60:02d}{i * 5 % 60:02d}Z"
            key = f"{folder}{acct}_CloudTrail_{region}_{stamp}_{rng.getrandbits(64):016x}.json.gz"
            yield ObjectRef(key, f"{rng.getrandbits(128):032x}", 4000 + i)
            made += 1
        slot += 1


def _region(key: str) -> str:
    return key[: key.index("/", key.index("/CloudTrail/") + 12) + 1]


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def ledger(n: int, engine_n: int, per_day: int = 288, page: int = 1000) -> None:
    src = "s3://org-trail-bucket"
    counts = ObjectCounts(records=120, indexed=118, deadlettered=1, skipped=1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ledger.sqlite"
        keys = _keys(n, per_day)
        sample: list[ObjectRef] = []
        newest: dict[str, str] = {}  # account/region folder -> its last key
        started = time.monotonic()
        with Ledger(path) as led:
            while chunk := list(itertools.islice(keys, page)):
                if led.settled_status(src, chunk):
                    raise SystemExit("fresh objects found settled")
                led.mark(src, chunk, Status.PENDING)
                led.record_many(src, [(r, Status.DONE, counts) for r in chunk])
                sample.extend(chunk[len(sample) % 500 :: 500])
                for r in chunk:
                    newest[_region(r.key)] = r.key
            led.compact()
            took = time.monotonic() - started
            led._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            size = _size(path)
            rows = led._db.execute("SELECT COUNT(*) FROM objects").fetchone()[0]
            days = led._db.execute("SELECT COUNT(*) FROM days").fetchone()[0]
            # What must still hold: every object settled, a changed ETag redone, tail's resume.
            t0 = time.monotonic()
            resumed = sum(len(led.settled_status(src, [r])) for r in sample)
            lookup = (time.monotonic() - t0) / len(sample)
            changed = [ObjectRef(r.key, "changed", r.size) for r in sample[:1000]]
            redone = len(changed) - len(led.settled_status(src, changed))
            resume_ok = all(led.newest_settled(src, f) == k for f, k in newest.items())
            totals = led.totals()
        rate = n / took
        print("| measurement | value | target |")
        print("|---|---|---|")
        print(
            f"| settle {n:,} objects, pages of {page:,} (settled? -> pending -> done),"
            f" compaction included | {took:.0f} s, {rate:,.0f} objects/s |"
            f" >= 5,000/s: {'met' if rate >= 5000 else 'missed'} |"
        )
        print(
            f"| ledger file after compaction | {size / 1e6:,.0f} MB, {size / n:.1f} bytes/object"
            f" ({days:,} day rows, {rows:,} object rows) |"
            f" < 100 bytes/object: {'met' if size / n < 100 else 'missed'} |"
        )
        print(
            f"| after compaction: resumed / changed ETag redone / tail resume point |"
            f" {resumed:,}/{len(sample):,} settled ({lookup * 1e6:.0f} us each),"
            f" {redone:,}/{len(changed):,} redone, {'right' if resume_ok else 'WRONG'} | |"
        )
        if totals["done"] != n:
            raise SystemExit(f"totals say {totals['done']:,} done, not {n:,}")
        # The engine's own pattern: pending in pages of 256, then per object in flight and done.
        path2 = Path(tmp) / "engine.sqlite"
        refs = list(_keys(engine_n, per_day))
        started = time.monotonic()
        with Ledger(path2) as led:
            for i in range(0, engine_n, 256):
                led.mark(src, refs[i : i + 256], Status.PENDING)
                for r in refs[i : i + 256]:
                    led.settled_status(src, [r])
                    led.mark(src, [r], Status.IN_FLIGHT)
                    led.record(src, r, Status.DONE, counts)
        took = time.monotonic() - started
        rate = engine_n / took
        print(
            f"| engine pattern, {engine_n:,} objects one at a time (settled? -> in flight ->"
            f" done, a transaction each) | {took:.0f} s, {rate:,.0f} objects/s |"
            f" >= 5,000/s: {'met' if rate >= 5000 else 'missed'} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("part", nargs="?", choices=("memory", "ledger", "both"), default="both")
    ap.add_argument("--mb", type=float, default=200.0, help="JSON of the large object, MB")
    ap.add_argument("--objects", type=int, default=10_000_000)
    ap.add_argument("--engine-objects", type=int, default=100_000)
    args = ap.parse_args()
    if args.part in ("memory", "both"):
        memory(args.mb)
    if args.part in ("ledger", "both"):
        ledger(args.objects, args.engine_objects)


if __name__ == "__main__":
    main()
