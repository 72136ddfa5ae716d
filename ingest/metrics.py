"""``--metrics-port``: Prometheus metrics (prometheus-client) and ``/healthz`` over HTTP.

The metrics are read from the run's counters at scrape time (a custom collector), so the
pipeline carries no instrumentation calls: events indexed / dead-lettered / skipped, objects by
outcome, bulk requests and their latency histogram, and two lags: now minus the newest indexed
eventTime, and now minus the LastModified of the oldest object not yet settled.
``/healthz`` answers 503 when S3 or OpenSearch have not answered for longer than the threshold.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from ingest.sink import LATENCY_BUCKETS

__all__ = ["MetricsServer", "RunCollector"]


def _age(iso: str | None, now: float) -> float:
    if not iso:
        return 0.0
    try:
        return max(0.0, now - datetime.fromisoformat(iso).timestamp())
    except ValueError:
        return 0.0


class RunCollector(Collector):
    """Prometheus families from a :class:`~ingest.engine.RunStats` and the objects in flight."""

    def __init__(self, stats: Any, oldest_pending: Callable[[], datetime | None]) -> None:
        self.stats = stats
        self.oldest_pending = oldest_pending

    def collect(self) -> Iterator[Any]:
        s = self.stats
        now = time.time()
        events = CounterMetricFamily("ct_ingest_events", "Records by outcome", labels=["outcome"])
        events.add_metric(["indexed"], s.indexed)
        events.add_metric(["deadlettered"], s.deadlettered)
        events.add_metric(["skipped"], s.skipped)
        yield events
        yield CounterMetricFamily(  # a fleet: what this worker redid (a redelivery, a rerun)
            "ct_ingest_events_already_indexed",
            "Indexed records the index already held (answered 409): counted in indexed too",
            value=s.already_indexed,
        )
        objects = CounterMetricFamily("ct_ingest_objects", "Objects by outcome", labels=["outcome"])
        objects.add_metric(["done"], s.objects_done)
        objects.add_metric(["failed"], s.objects_failed)
        objects.add_metric(["already_done"], s.objects_already_done)
        yield objects
        yield CounterMetricFamily(
            "ct_ingest_bytes_fetched", "Bytes read from the source", value=s.bytes_fetched
        )
        sink = s.sink
        if sink is not None:
            counts = sink.latency_buckets
            buckets = [(str(b), counts[i]) for i, b in enumerate(LATENCY_BUCKETS)]
            buckets.append(("+Inf", sink.requests_timed))
            yield HistogramMetricFamily(
                "ct_ingest_bulk_latency_seconds",
                "Bulk request duration",
                buckets=buckets,
                sum_value=sink.latency_sum,
            )
            yield CounterMetricFamily(
                "ct_ingest_bulk_pushbacks", "429/5xx/timeouts from OpenSearch", value=sink.pushbacks
            )
        yield GaugeMetricFamily(
            "ct_ingest_lag_seconds",
            "Now minus the newest indexed eventTime",
            value=_age(s.newest_event, now),
        )
        oldest = self.oldest_pending()
        yield GaugeMetricFamily(
            "ct_ingest_oldest_unprocessed_seconds",
            "Now minus the LastModified of the oldest object not yet settled",
            value=max(0.0, now - oldest.timestamp()) if oldest else 0.0,
        )


class MetricsServer:
    """``/metrics`` and ``/healthz`` on 127.0.0.1 or all interfaces."""

    def __init__(
        self,
        collector: Collector,
        problems: Callable[[], list[str]],
        port: int,
        host: str = "0.0.0.0",  # noqa: S104 (scraped from elsewhere)  # nosec B104
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(collector)
        self._problems = problems
        self._port, self._host = port, host
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.registry),
            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
        )

    async def _healthz(self, request: web.Request) -> web.Response:
        problems = self._problems()
        if problems:
            return web.json_response({"ok": False, "problems": problems}, status=503)
        return web.json_response({"ok": True, "checked_at": datetime.now(UTC).isoformat()})
