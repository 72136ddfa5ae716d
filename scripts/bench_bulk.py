#!/usr/bin/env python3
"""Bulk sink benchmarks, each ratio against a baseline measured in the same run.

    python scripts/bench_bulk.py                 # both parts, ~4 min on 2 cores
    python scripts/bench_bulk.py fill [--records 60000] [--repeat 3]
    python scripts/bench_bulk.py adaptive [--docs 12000] [--target 1] [--slowness 1]

fill: a backfill (``ct-ingest backfill DIR`` as a process, into the bulk-acknowledging
``NullCluster``) of an archive of small files (20, 50, 100 and 200 records, a quarter of the
records each, like real CloudTrail files), three times: ``--bulk-linger-ms 0`` (a partial body
sent whenever the indexer has nothing to add: about the behaviour before the linger), the
default linger, and the default linger with ``--gzip`` (bodies gzipped at
``DEFAULT_GZIP_LEVEL`` in a worker thread). For each: the bulk requests and their size
distribution against the controller's size when each body left, bytes sent per record against
the record's own JSON (and where the rest goes, from the documents of a sample), bytes on the
wire, CPU seconds of the process tree and of the main process (sampled from /proc); each run
``--repeat`` times in turn, the fastest try and the least CPU of any try reported. Then gzip
of the archive's own bulk bodies at levels 1-9 in this process: share of the bytes left and
speed, from which the level is chosen.

adaptive: latency distribution and throughput of the adaptive bulk sink against osmem-server,
with and without injected slowness, against a fixed-size baseline (what most shippers do:
constant bodies, constant concurrency). --slowness is extra server time per MiB of body,
injected by the fault proxy, standing in for a cluster under load. The table shows whether
requests stay near the target duration.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from ingest.adaptive import BulkController, ControllerConfig
from ingest.cluster import install_template, open_client
from ingest.config import DEFAULT_BULK_BYTES, DEFAULT_GZIP_LEVEL, MiB, SinkConfig
from ingest.decode import Document, Rejected, to_document
from ingest.retry import RetryPolicy
from ingest.sink import BulkSink, OpenSearchBulkClient, Outcome
from ingest.telemetry import configure_logging
from ingest.testing import synth
from ingest.testing.faultproxy import FaultProxy, Faults, NullCluster
from ingest.testing.servers import start_osmem

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_bounds import _tree  # the process tree, as that benchmark reads it

MB = 1_000_000


class Fixed(BulkController):
    """The baseline: never adapts."""

    def on_success(self, body_bytes: int, seconds: float) -> None:
        return None

    def on_pushback(self, reason: str) -> None:
        return None


class Count:
    def __init__(self) -> None:
        self.ok = 0

    def settle(self, doc: Document, outcome: Outcome) -> None:
        self.ok += outcome.indexed


def documents(n: int, prefix: str) -> list[Document]:
    out = []
    for f in synth.generate(n, seed=3, days=1):
        for i, rec in enumerate(orjson.loads(gzip.decompress(f.body))["Records"]):
            made = to_document(rec, prefix, i)
            if not isinstance(made, Rejected):
                out.append(made[0])
    return out


async def run(url: str, docs: list[Document], config: SinkConfig, fixed: bool) -> dict[str, Any]:
    client = open_client(config)
    await install_template(client, config)
    ctl_cfg = ControllerConfig(
        start_bytes=config.bulk_bytes,
        max_bytes=config.max_bulk_bytes,
        max_in_flight=config.max_in_flight,
        start_in_flight=2,
        target_seconds=config.target_seconds,
        step_bytes=max(64 * 1024, config.bulk_bytes // 4),
    )
    controller = Fixed(ctl_cfg) if fixed else BulkController(ctl_cfg)
    owner = Count()
    started = time.monotonic()
    async with asyncio.TaskGroup() as tg:
        sink = BulkSink(OpenSearchBulkClient(client), config, tg, controller=controller)
        for d in docs:
            await sink.put(d, owner)
        await sink.drain()
    elapsed = time.monotonic() - started
    await client.close()
    lat = sorted(sink.stats.latencies)
    q = statistics.quantiles(lat, n=100) if len(lat) > 1 else lat * 99
    return {
        "docs": owner.ok,
        "seconds": elapsed,
        "requests": sink.stats.requests,
        "p50": q[49],
        "p90": q[89],
        "max": lat[-1],
        "bytes": controller.bytes,
        "in_flight": controller.in_flight,
        "within": sum(x <= config.target_seconds * 1.5 for x in lat) / len(lat),
    }


def adaptive(args: argparse.Namespace) -> None:
    osmem = start_osmem()
    rows = []
    try:
        docs = documents(args.docs, "bench-")
        for label, slowness, fixed in (
            ("no slowness, adaptive", 0.0, False),
            (f"{args.slowness} s/MiB, fixed 5 MiB x2 (baseline)", args.slowness, True),
            (f"{args.slowness} s/MiB, adaptive", args.slowness, False),
        ):
            with FaultProxy(osmem.url, Faults(seconds_per_mib=slowness)) as proxy:
                cfg = SinkConfig(
                    url=proxy.url,
                    index_prefix=f"bench{len(rows)}-",
                    alias=f"bench{len(rows)}",
                    bulk_bytes=5 * MiB,
                    max_bulk_bytes=9 * MiB,
                    max_in_flight=4,
                    target_seconds=args.target,
                    timeout=max(50.0, args.target * 5),
                    retry=RetryPolicy(deadline=120),
                )
                rows.append((label, asyncio.run(run(proxy.url, docs, cfg, fixed))))
    finally:
        osmem.stop()
    print(f"\n{len(docs):,} documents, target request duration {args.target} s\n")
    head = (
        "run",
        "docs/s",
        "requests",
        "p50 s",
        "p90 s",
        "max s",
        "<= 1.5x target",
        "final body",
        "in flight",
    )
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for label, r in rows:
        cells = (
            label,
            f"{r['docs'] / r['seconds']:,.0f}",
            str(r["requests"]),
            f"{r['p50']:.2f}",
            f"{r['p90']:.2f}",
            f"{r['max']:.2f}",
            f"{r['within']:.0%}",
            f"{r['bytes'] / MiB:.2f} MiB",
            str(r["in_flight"]),
        )
        print("| " + " | ".join(cells) + " |")
    base, adaptive = rows[1][1], rows[2][1]
    print(
        f"\nunder slowness, p50 latency / target: fixed {base['p50'] / args.target:.1f}x, "
        f"adaptive {adaptive['p50'] / args.target:.1f}x"
    )


# -- fill: bodies, bytes per record, gzip ----------------------------------------------------------
_TICKS = os.sysconf("SC_CLK_TCK")


def _archive(root: Path, records: int) -> tuple[int, int, int]:
    """Small files below ``root``, a quarter of ``records`` each of 20, 50, 100 and 200 records
    a file; (files, records, bytes of the records' own JSON, each serialised alone)."""
    files = json_bytes = 0
    for n, per_file in enumerate((20, 50, 100, 200)):
        for f in synth.generate(records // 4, seed=40 + n, days=2, per_file=per_file):
            path = root / f.key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(f.body)
            recs = orjson.loads(gzip.decompress(f.body))["Records"]
            json_bytes += sum(len(orjson.dumps(r)) for r in recs)
            files += 1
    return files, records // 4 * 4, json_bytes


def _cpu(pids: set[int], seen: dict[int, float]) -> None:
    """Record each process's CPU seconds so far (user + system) into ``seen``."""
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            seen[pid] = max(seen.get(pid, 0.0), (int(fields[11]) + int(fields[12])) / _TICKS)
        except (OSError, ValueError, IndexError):
            continue


def _backfill(root: Path, state: Path, url: str, *extra: str) -> dict[str, Any]:
    """``ct-ingest backfill`` as a process with debug logs; wall and CPU seconds, its bodies."""
    cmd = [
        sys.executable, "-m", "ingest.cli", "backfill", str(root), "--opensearch", url,
        "--state", str(state / "l.sqlite"), "--log-format", "json", "--verbose",
        "--no-backfill-mode", *extra,
    ]  # fmt: skip
    log = state / "stderr.jsonl"
    started, cpu = time.monotonic(), {}
    with log.open("wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        pids, looked = {proc.pid}, 0.0
        while proc.poll() is None:
            if time.monotonic() - looked > 0.5:
                pids, looked = _tree(proc.pid), time.monotonic()
            _cpu(pids, cpu)
            time.sleep(0.05)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"backfill {' '.join(extra)} exited {proc.returncode}: see {log}")
    events = [orjson.loads(x) for x in log.read_bytes().splitlines() if x.startswith(b"{")]
    bodies = [(e["bytes"], e["target"], e["why"]) for e in events if e["event"] == "bulk_body"]
    done = next(e for e in events if e["event"] == "run_done")
    main = cpu.get(proc.pid, 0.0)
    return {"wall": wall, "cpu": sum(cpu.values()), "main": main, "bodies": bodies, "done": done}


def _documents_of(root: Path) -> Iterator[tuple[dict[str, Any], bytes]]:
    """Each record of the archive below ``root`` with its document's NDJSON, as the backfill
    makes them."""
    for path in sorted(root.rglob("*.json.gz")):
        for i, rec in enumerate(orjson.loads(gzip.decompress(path.read_bytes()))["Records"]):
            made = to_document(rec, "cloudtrail-", i, str(path.relative_to(root)))
            if not isinstance(made, Rejected):
                yield rec, made[0].ndjson


def _where_bytes(root: Path, sample: int = 3000) -> tuple[float, dict[str, float]]:
    """Of the first ``sample`` records' documents: the record's own JSON bytes, and the bytes
    per record the bulk body adds, by part (the action line, each ct.* field, each ECS field)."""
    parts: Counter[str] = Counter()
    own = seen = 0
    for rec, ndjson in _documents_of(root):
        action, source, _ = ndjson.split(b"\n")
        own += len(orjson.dumps(rec))
        parts["action line"] += len(action) + 1
        for key, value in orjson.loads(source).items():
            if key == "ct":
                for sub, v in value.items():
                    parts[f"ct.{sub}"] += len(orjson.dumps({sub: v}))
            elif rec.get(key) != value:
                parts[key] += len(orjson.dumps({key: value}))
        seen += 1
        if seen == sample:
            break
    return own / max(1, seen), {k: v / max(1, seen) for k, v in parts.most_common()}


def _levels(root: Path, bodies: int = 4) -> list[tuple[int, float, float]]:
    """The archive's first ``bodies`` bulk bodies of the default size (5 MiB), gzipped at each
    level as ``--gzip`` does: (level, bytes on the wire / body, MB of body per CPU second)."""
    made: list[bytes] = []
    body = bytearray()
    for _, ndjson in _documents_of(root):
        if len(body) + len(ndjson) > DEFAULT_BULK_BYTES:
            made.append(bytes(body))
            body.clear()
            if len(made) == bodies:
                break
        body += ndjson
    made = made or [bytes(body)]
    size, out = sum(map(len, made)), []
    for level in (1, 2, 3, 4, 6, 9):
        cpu = time.process_time()
        wire = sum(len(zlib.compress(b, level, 16 + zlib.MAX_WBITS)) for b in made)
        out.append((level, wire / size, size / MB / (time.process_time() - cpu)))
    return out


def _quantiles(xs: list[float]) -> tuple[float, float, float, float]:
    xs = sorted(xs)
    return xs[0], statistics.median(xs), xs[min(len(xs) - 1, int(len(xs) * 0.9))], xs[-1]


def _verdict(ok: bool) -> str:
    return "met" if ok else "missed"


def fill(args: argparse.Namespace) -> None:
    runs = (
        ("--bulk-linger-ms 0 (baseline: about the behaviour before)", "--bulk-linger-ms", "0"),
        ("default linger (200 ms)",),
        (f"default linger, --gzip (level {DEFAULT_GZIP_LEVEL}, in a worker thread)", "--gzip"),
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "logs"
        files, records, json_bytes = _archive(root, args.records)
        tries: list[list[dict[str, Any]]] = [[] for _ in runs]
        for k in range(args.repeat):  # the runs in turn, so that the machine's noise is shared
            for n, (label, *extra) in enumerate(runs):
                null = NullCluster().start()
                try:
                    state = Path(tmp) / f"state{n}-{k}"
                    state.mkdir()
                    run = _backfill(root, state, null.url, "--workers", str(args.workers), *extra)
                    run["requests"] = list(null.requests)
                finally:
                    null.stop()
                if run["done"]["indexed"] != records:
                    raise SystemExit(f"{label}: indexed {run['done']['indexed']} of {records}")
                tries[n].append(run)
        for (label, *_), runs_of in zip(runs, tries, strict=True):
            best = min(runs_of, key=lambda r: r["wall"])  # and the least CPU of any try:
            best["cpu"], best["main"] = (min(r[k] for r in runs_of) for k in ("cpu", "main"))
            rows.append((label, best))
        own, parts = _where_bytes(root)
        levels = _levels(root)
    each = json_bytes / records
    print(f"\n{files:,} files, {records:,} records, {json_bytes / MB:.1f} MB of record JSON "
          f"({each:,.0f} bytes a record), NullCluster, --workers {args.workers}, "
          f"best of {args.repeat} each:\n")  # fmt: skip
    print("| run | requests | body min / median / p90 / max | median body / controller size "
          "| bodies left full / linger / drain | records/s | CPU s, tree (main process) "
          "| bulk bytes / record JSON | wire bytes / record JSON |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for label, r in rows:
        sizes, wire = [b for b, _ in r["requests"]], sum(w for _, w in r["requests"])
        ratio = statistics.median(b / t for b, t, _ in r["bodies"])
        why = Counter(w for _, _, w in r["bodies"])
        q = " / ".join(f"{x / MiB:.2f}" for x in _quantiles(sizes))
        print(
            f"| {label} | {len(sizes):,} | {q} MiB | {ratio:.0%} "
            f"| {why['full']} / {why['linger']} / {why['drain']} "
            f"| {records / r['wall']:,.0f} | {r['cpu']:.1f} ({r['main']:.1f}) "
            f"| {sum(sizes) / json_bytes:.2f}x | {wire / json_bytes:.2f}x |"
        )
    base, lingered, gz = (r for _, r in rows)
    median = statistics.median(b / t for b, t, _ in lingered["bodies"])
    per_record = sum(b for b, _ in lingered["requests"]) / json_bytes
    print(
        f"\nrequests: {len(lingered['requests'])} vs {len(base['requests'])} with linger 0 "
        f"({len(base['requests']) / len(lingered['requests']):.1f}x fewer) for {files:,} objects; "
        f"records/s {base['wall'] / lingered['wall']:.2f}x"
    )
    print(f"median body >= 80 % of the controller's size: {_verdict(median >= 0.8)} ({median:.0%})")
    print(
        f"bulk bytes <= 1.3x the records' JSON: {_verdict(per_record <= 1.3)} ({per_record:.2f}x)"
    )
    wire = sum(w for _, w in gz["requests"]) / sum(b for b, _ in gz["requests"])
    on_wire = sum(w for _, w in gz["requests"]) / json_bytes
    print(
        f"--gzip: wire {wire:.1%} of the body; CPU {gz['cpu'] / lingered['cpu']:.2f}x the tree's, "
        f"{gz['main'] / max(lingered['main'], 0.01):.2f}x the main process's; "
        f"records/s {lingered['wall'] / gz['wall']:.2f}x"
    )
    print(
        f"bytes on the wire <= 1.3x the records' JSON with --gzip: {_verdict(on_wire <= 1.3)} "
        f"({on_wire:.2f}x)"
    )
    print(f"\ngzip of 4 bodies of {DEFAULT_BULK_BYTES / MiB:.0f} MiB from the "
          f"archive, one core (--gzip uses level {DEFAULT_GZIP_LEVEL}):")  # fmt: skip
    print("| level | wire / body | MB of body per CPU second | CPU ms per 5 MiB body |")
    print("|---|---|---|---|")
    for level, share, speed in levels:
        per_body = DEFAULT_BULK_BYTES / MB / speed * 1000
        print(f"| {level} | {share:.1%} | {speed:,.0f} | {per_body:,.0f} |")
    print(f"\nwhere a document's bytes go, per record (first 3,000 records; own JSON {own:,.0f}):")
    print("| part | bytes per record | of the record's JSON |")
    print("|---|---|---|")
    for part, size in parts.items():
        print(f"| {part} | {size:,.0f} | {size / own:.1%} |")
    print(f"| all added | {sum(parts.values()):,.0f} | {sum(parts.values()) / own:.1%} |")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("part", nargs="?", choices=("fill", "adaptive", "all"), default="all")
    ap.add_argument("--records", type=int, default=60_000, help="fill: records in the archive")
    ap.add_argument("--workers", type=int, default=2, help="fill: decoding processes")
    ap.add_argument("--repeat", type=int, default=3, help="fill: runs of each, best taken")
    ap.add_argument("--docs", type=int, default=12000, help="adaptive: documents")
    ap.add_argument("--target", type=float, default=1.0, help="adaptive: target request seconds")
    ap.add_argument("--slowness", type=float, default=1.0, help="adaptive: seconds per MiB")
    args = ap.parse_args()
    configure_logging("console")  # warnings only
    if args.part in ("fill", "all"):
        fill(args)
    if args.part in ("adaptive", "all"):
        adaptive(args)


if __name__ == "__main__":
    main()
