"""A fault-injecting HTTP proxy for OpenSearch, for tests and benchmarks (never for production).

It sits on loopback between ct-ingest and a real server (osmem-server) and, for ``_bulk``
requests, answers the way a managed cluster under stress does: 429 for the whole request or for
some items inside a 200, 502/503 before applying, 504 *after* applying, a dropped connection
before or after applying, 413 above a byte limit, a stall longer than the client's timeout
after applying, or extra latency per MiB. Every other request passes through untouched. It runs
its own event loop in a thread, so synchronous tests can use it around an in-process run.

With an :class:`Emulation` (``EMULATIONS``: OpenSearch before 2.7, OpenSearch in compatibility
mode, Elasticsearch 7.10, Serverless SEARCH and TIMESERIES collections) it also answers the way
that kind of cluster does by its documentation: its own ``GET /`` (or 404), and a refusal for
what it does not have (``flat_object``, ``_plugins/*``, settings changes, custom ``_id``);
each refusal cites the documented behaviour it stands for. ``ALERTING_2X`` (not among
``EMULATIONS``) is OpenSearch 2.11 with the Alerting and Notifications plugins
(:mod:`ingest.testing.alerting`; the proxy's ``plugins`` holds their state).
"""

from __future__ import annotations

import asyncio
import gzip
import random
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from ingest.testing.alerting import PluginsEmulation

__all__ = ["ALERTING_2X", "EMULATIONS", "Emulation", "FaultProxy", "Faults", "Seen"]


@dataclass
class Faults:
    """Probabilities (0..1) per bulk request, unless said otherwise."""

    seed: int = 0
    whole_429: float = 0.0
    before_5xx: float = 0.0  # 502 or 503, nothing applied
    after_504: float = 0.0  # applied, then 504
    reset_before: float = 0.0  # connection dropped, nothing applied
    reset_after: float = 0.0  # applied, then connection dropped
    item_429: float = 0.0  # share of the items answered 429 (those are not applied)
    max_body: int | None = None  # 413 above this many bytes
    stall: float = 0.0  # applied, then no answer for stall_seconds
    stall_seconds: float = 0.0
    seconds_per_mib: float = 0.0  # added latency, in proportion to the body size
    down: bool = False  # every request, bulk or not, answered 503: the cluster is unreachable


@dataclass(frozen=True)
class Emulation:
    """What a kind of cluster answers that osmem-server (OpenSearch 3.8) does not."""

    name: str
    root: dict[str, Any] | None  # the answer to GET /; None: 404 (Serverless)
    flat_object: bool = True
    plugins: bool = True  # the _plugins/* APIs (ISM, Alerting, Notifications)
    index_settings: bool = True  # shards, replicas and refresh may be set and changed
    custom_ids: bool = True  # bulk items, GET and mget by _id
    cluster_apis: bool = True  # _cluster/*, _nodes/*, _cat/* beyond _cat/indices
    alerting: bool = False  # _cat/plugins lists Alerting and Notifications, which answer


def _opensearch_root(number: str) -> dict[str, Any]:
    # OpenSearch 1.x and 2.x: "distribution": "opensearch" in the version object.
    return {
        "name": "node-1",
        "cluster_name": "123456789012:audit",
        "version": {"distribution": "opensearch", "number": number, "lucene_version": "9.4.2"},
        "tagline": "The OpenSearch Project: https://opensearch.org/",
    }


EMULATIONS = {
    e.name: e
    for e in (
        # flat_object arrived in OpenSearch 2.7 (its documentation's "flat object" page).
        Emulation("opensearch-2.5", _opensearch_root("2.5.0"), flat_object=False),
        # Amazon OpenSearch Service's compatibility mode (override_main_response_version):
        # GET / answers 7.10.2, without "distribution", with OpenSearch's tagline.
        Emulation(
            "opensearch-1.3-compat",
            {
                "name": "node-1",
                "cluster_name": "123456789012:legacy",
                "version": {"number": "7.10.2", "build_type": "tar", "lucene_version": "8.10.1"},
                "tagline": "The OpenSearch Project: https://opensearch.org/",
            },
            flat_object=False,
        ),
        # Elasticsearch 7.10 (the service's legacy engine) runs the open-source distribution:
        # build_flavor "oss", Elasticsearch's tagline, neither flat_object nor flattened (an
        # X-Pack type), and no _plugins/* (its ISM and Alerting live under _opendistro).
        Emulation(
            "elasticsearch-7.10",
            {
                "name": "node-1",
                "cluster_name": "123456789012:legacy-es",
                "version": {
                    "number": "7.10.2",
                    "build_flavor": "oss",
                    "build_type": "tar",
                    "lucene_version": "8.7.0",
                },
                "tagline": "You Know, for Search",
            },
            flat_object=False,
            plugins=False,
        ),
        # OpenSearch Serverless (its "supported operations" list): no GET /, no ISM (retention
        # is the collection's data lifecycle policy) nor any _plugins API used here, no
        # _cluster/_nodes/_cat APIs but _cat/indices, index settings cannot be set or changed.
        Emulation(
            "serverless-search",
            None,
            plugins=False,
            index_settings=False,
            cluster_apis=False,
        ),
        # ... and a TIMESERIES collection takes no custom document IDs (_create/<id> and
        # _doc/<id> are for SEARCH collections only).
        Emulation(
            "serverless-timeseries",
            None,
            plugins=False,
            index_settings=False,
            cluster_apis=False,
            custom_ids=False,
        ),
    )
}
# OpenSearch 2.11 with the Alerting and Notifications plugins (Alerting before 3.2: no
# monitors index until the first monitor).
ALERTING_2X = Emulation("opensearch-2.11-alerting", _opensearch_root("2.11.0"), alerting=True)
_SETTINGS_KEYS = (b'"number_of_replicas"', b'"refresh_interval"', b'"number_of_shards"')
_BY_ID = re.compile(r"^/[^_/][^/]*/(_doc|_create|_update)/[^/]+$|(^|/)_mget$")
_NO_IDS = {
    "type": "illegal_argument_exception",
    "reason": "Document ID is not supported in create/index operation request",
}


_MANAGED = "shards, replicas and refresh_interval are managed by the service"
_NO_FLAT_OBJECT = "No handler for type [flat_object] declared on field [request]"


def _refusal(status: int, etype: str, reason: str) -> web.Response:
    error = {"root_cause": [{"type": etype, "reason": reason}], "type": etype, "reason": reason}
    body = {"error": error, "status": status}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def emulate(e: Emulation, method: str, path: str, body: bytes) -> web.Response | None:
    """The emulated cluster's own answer to a request other than ``_bulk``, or None to pass it
    to the server behind."""
    if path in ("", "/") and method in ("GET", "HEAD"):
        if e.root is None:  # Serverless does not serve GET / (404)
            return _refusal(404, "not_found", "GET / is not supported")
        return web.Response(body=orjson.dumps(e.root), content_type="application/json")
    if not e.plugins and path.startswith("/_plugins/"):
        if e.root is None:  # Serverless: not an API of the service
            return _refusal(404, "not_found", f"{path} is not supported")
        # Elasticsearch's answer to a path it has no handler for
        reason = f"no handler found for uri [{path}] and method [{method}]"
        return web.Response(
            status=400, body=orjson.dumps({"error": reason}), content_type="application/json"
        )
    cat = path.startswith("/_cat/") and not path.startswith("/_cat/indices")
    if not e.cluster_apis and (cat or path.startswith(("/_cluster/", "/_nodes"))):
        return _refusal(404, "not_found", f"{path} is not supported")
    writes = method in ("PUT", "POST")
    if not e.index_settings and writes:
        if path.endswith("/_settings"):  # Serverless: index settings cannot be changed
            return _refusal(400, "illegal_argument_exception", "index settings are not supported")
        if any(k in body for k in _SETTINGS_KEYS):
            return _refusal(400, "illegal_argument_exception", _MANAGED)
    if not e.flat_object and writes and b'"flat_object"' in body:
        # Elasticsearch and OpenSearch before 2.7 validate a template's mapping on PUT.
        return _refusal(400, "mapper_parsing_exception", _NO_FLAT_OBJECT)
    if not e.custom_ids and _BY_ID.search(path):  # TIMESERIES: no document IDs
        return _refusal(400, "illegal_argument_exception", _NO_IDS["reason"])
    return None


@dataclass
class Seen:
    """One bulk request as the proxy saw it."""

    bytes: int
    items: int
    fault: str
    status: int
    seconds: float
    headers: dict[str, str] = field(default_factory=dict)
    gzip: bool = False


class FaultProxy:
    def __init__(
        self, upstream: str, faults: Faults | None = None, emulation: Emulation | None = None
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.faults = faults or Faults()
        self.emulation = emulation
        self.plugins = PluginsEmulation() if emulation and emulation.alerting else None
        self.seen: list[Seen] = []
        self.url = ""
        self._rng = random.Random(self.faults.seed)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> FaultProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_faults(self, faults: Faults) -> None:
        self.faults = faults
        self._rng = random.Random(faults.seed)

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession()
        app = web.Application(client_max_size=200 * 2**20)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def _stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()
        if self._session:
            await self._session.close()

    # -- forwarding --------------------------------------------------------------------------
    async def _forward(self, request: web.Request, body: bytes) -> tuple[int, bytes, str]:
        assert self._session is not None
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() not in ("host", "content-length", "content-encoding", "accept-encoding")
        }
        async with self._session.request(
            request.method, f"{self.upstream}{request.rel_url}", data=body or None, headers=headers
        ) as resp:
            return (
                resp.status,
                await resp.read(),
                resp.headers.get("Content-Type", "application/json"),
            )

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if self.faults.down:
            return web.Response(
                status=503,
                body=b'{"error":"down (fault proxy)","status":503}',
                content_type="application/json",
            )
        compressed = request.headers.get("Content-Encoding") == "gzip"
        if compressed and body[:2] == b"\x1f\x8b":  # aiohttp usually inflates it already
            body = gzip.decompress(body)
        if self.plugins is not None:
            reply = self.plugins.answer(request.method, request.path, body)
            if reply is not None:
                status, out = reply
                return web.Response(
                    status=status, body=orjson.dumps(out), content_type="application/json"
                )
        if self.emulation is not None and not request.path.endswith("/_bulk"):
            own = emulate(self.emulation, request.method, request.path, body)
            if own is not None:
                return own
        if not request.path.endswith("/_bulk"):
            status, data, ctype = await self._forward(request, body)
            return web.Response(status=status, body=data, content_type=ctype.split(";")[0])
        started = time.monotonic()
        fault, status, answer = await self._bulk(request, body)
        self.seen.append(
            Seen(
                len(body),
                body.count(b"\n") // 2,
                fault,
                status,
                time.monotonic() - started,
                dict(request.headers),
                compressed,
            )
        )
        if answer is None:  # drop the connection
            if request.transport is not None:
                request.transport.abort()
            raise ConnectionResetError("fault proxy: connection dropped on purpose")
        return web.Response(status=status, body=answer, content_type="application/json")

    async def _bulk(self, request: web.Request, body: bytes) -> tuple[str, int, bytes | None]:
        f, rng = self.faults, self._rng
        if f.seconds_per_mib:
            await asyncio.sleep(f.seconds_per_mib * len(body) / 2**20)
        if f.max_body is not None and len(body) > f.max_body:
            return "413", 413, b'{"error":"Request Entity Too Large","status":413}'
        if rng.random() < f.whole_429:
            return "429", 429, b'{"error":{"type":"es_rejected_execution_exception"},"status":429}'
        if rng.random() < f.before_5xx:
            code = rng.choice((502, 503))
            return str(code), code, orjson.dumps({"error": "upstream unavailable", "status": code})
        if rng.random() < f.reset_before:
            return "reset-before", 0, None
        lines = body.splitlines()
        pairs = list(zip(lines[::2], lines[1::2], strict=True))
        failed = {i for i in range(len(pairs)) if rng.random() < f.item_429}
        refused = set()
        if self.emulation is not None and not self.emulation.custom_ids:
            # TIMESERIES: an item carrying an _id is refused, the others are indexed
            refused = {i for i, (a, _) in enumerate(pairs) if b'"_id"' in a} - failed
        kept = b"".join(
            a + b"\n" + s + b"\n"
            for i, (a, s) in enumerate(pairs)
            if i not in failed and i not in refused
        )
        items: list[Any] = []
        status = 200
        if kept:
            status, data, _ = await self._forward(request, kept)
            if status != 200:
                return "upstream", status, data
            items = orjson.loads(data).get("items", [])
        merged = iter(items)
        out: list[dict[str, Any]] = [
            {
                "create": {
                    "status": 429,
                    "error": {
                        "type": "es_rejected_execution_exception",
                        "reason": "rejected execution (fault proxy)",
                    },
                }
            }
            if i in failed
            else {"create": {"status": 400, "error": _NO_IDS}}
            if i in refused
            else next(merged)
            for i in range(len(pairs))
        ]
        answer = orjson.dumps(
            {
                "errors": bool(failed or refused)
                or any(int(next(iter(it.values())).get("status", 200)) >= 300 for it in out),
                "items": out,
            }
        )
        if rng.random() < f.after_504:
            return "504-after", 504, b'{"message":"Gateway Timeout"}'
        if rng.random() < f.reset_after:
            return "reset-after", 0, None
        if rng.random() < f.stall:
            await asyncio.sleep(f.stall_seconds)
            return "stall", status, answer
        return ("item-429" if failed else "ok"), status, answer


class NullCluster:
    """An OpenSearch stand-in on loopback that parses and acknowledges ``_bulk`` bodies without
    indexing anything, and says yes to template and settings calls: for measuring ct-ingest's
    own throughput (osmem-server indexes only ~1k docs/s and would hide it). Benchmarks only."""

    def __init__(self) -> None:
        self.url = ""
        self.docs = 0
        self.bytes = 0
        self.requests: list[tuple[int, int]] = []  # each _bulk's (body, bytes on the wire)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    def start(self, port: int = 0) -> NullCluster:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(port), self._loop).result(10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)

    async def _start(self, port: int) -> None:
        app = web.Application(client_max_size=200 * 2**20)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]

    async def _handle(self, request: web.Request) -> web.Response:
        path = request.path
        if request.method == "HEAD":
            return web.Response(status=200 if "_template" in path else 404)
        body = await request.read()
        if path.endswith("/_bulk"):
            lines = body.splitlines()
            ids = [next(iter(orjson.loads(a).values())).get("_id") for a in lines[::2]]
            self.docs += len(ids)
            self.bytes += len(body)
            self.requests.append((len(body), request.content_length or len(body)))
            items = [{"create": {"_id": i, "status": 201}} for i in ids]
            return web.Response(
                body=orjson.dumps({"errors": False, "items": items}),
                content_type="application/json",
            )
        if path in ("/", ""):
            return web.json_response({"version": {"number": "2.17.1", "distribution": "null"}})
        if "_simulate_index" in path:
            return web.json_response(
                {
                    "template": {
                        "settings": {"index": {"refresh_interval": "5s", "number_of_replicas": "1"}}
                    }
                }
            )
        return web.json_response({"acknowledged": True})
