#!/usr/bin/env python3
"""Bulk sink benchmark: latency distribution and throughput of ct-ingest's adaptive bulk sink
against osmem-server, with and without injected slowness, against a fixed-size baseline (what
most shippers do: constant bodies, constant concurrency) measured in the same run.

    python scripts/bench_bulk.py [--docs 12000] [--target 1] [--slowness 1]

--slowness is extra server time per MiB of body, injected by the fault proxy, standing in for a
cluster under load. The table shows whether requests stay near the target duration.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import statistics
import time
from typing import Any

import orjson

from ingest.adaptive import BulkController, ControllerConfig
from ingest.cluster import install_template, open_client
from ingest.config import MiB, SinkConfig
from ingest.decode import Document, Rejected, to_document
from ingest.retry import RetryPolicy
from ingest.sink import BulkSink, OpenSearchBulkClient, Outcome
from ingest.telemetry import configure_logging
from ingest.testing import synth
from ingest.testing.faultproxy import FaultProxy, Faults
from ingest.testing.servers import start_osmem


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


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--docs", type=int, default=12000)
    ap.add_argument("--target", type=float, default=1.0, help="target request seconds")
    ap.add_argument("--slowness", type=float, default=1.0, help="injected seconds per MiB")
    args = ap.parse_args()
    configure_logging("console")  # warnings only
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


if __name__ == "__main__":
    main()
