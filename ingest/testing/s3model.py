"""An S3 latency model for benchmarks (never for production): a small S3-compatible endpoint on
loopback that serves a local directory with the latency of the real service.

moto answers a prefixed listing by scanning the whole bucket and serves a few hundred GETs a
second; real S3 answers a LIST or a GET of a small object in tens of milliseconds whatever the
bucket's size, many at once. This endpoint does what S3 does at that cost: every request waits a
first-byte latency drawn from a log-normal distribution fitted to a median and a 99th
percentile (:class:`Latency`; 20 ms and 100 ms by default), then sends its body no faster than a
per-connection bandwidth. Requests wait side by side on one event loop, so concurrent requests
never serialise.

It speaks the part of the S3 REST API that reading an archive needs, as S3 writes it:
ListObjectsV2 (``prefix``, ``delimiter`` -> ``CommonPrefixes``, ``start-after``,
``continuation-token``, ``max-keys``, ``encoding-type=url``; ``KeyCount``, ``IsTruncated``,
``NextContinuationToken``), GetObject (with ``Range``), HeadObject, and the ``NoSuchKey`` /
``NoSuchBucket`` errors. ETags are the MD5 of the body, as for a single-part upload. The tree is
indexed once at start (keys sorted, so a prefixed listing costs what it returns); files written
later are not seen. Requests are not authenticated.

With ``bucket=None`` every top-level folder of ``root`` is a bucket; with a bucket name, ``root``
itself is that bucket's contents. ``tests/integration/test_s3model.py`` checks its answers against
moto's. Run it in a thread (:meth:`S3Model.start`), or as its own process::

    python -m ingest.testing.s3model --root DIR [--bucket NAME] --port 9000 \\
        --latency-ms 20 --p99-ms 100 --bandwidth-mbps 100
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import bisect
import contextlib
import hashlib
import html
import math
import os
import random
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import quote

from aiohttp import web

from ingest.config import DEFAULT_CONCURRENCY, S3Location, SourceConfig
from ingest.source import S3Store
from ingest.testing.servers import free_port, stop_process

__all__ = ["Latency", "S3Model", "S3ModelProcess", "open_store"]

_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
_Z99 = 2.3263478740408408  # the standard normal's 99th percentile
_CHUNK = 64 * 1024
_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


@dataclass(frozen=True, slots=True)
class Latency:
    """Per request: first-byte latency, log-normal with this median and 99th percentile (equal:
    a fixed latency; 0: none), then the body at ``bandwidth`` bytes/s per connection (0: as fast
    as the socket goes)."""

    median_ms: float = 20.0
    p99_ms: float = 100.0
    bandwidth: float = 100e6
    seed: int = 0

    def __post_init__(self) -> None:
        if self.median_ms < 0 or self.p99_ms < self.median_ms or self.bandwidth < 0:
            raise ValueError(f"need 0 <= median <= p99 and bandwidth >= 0: {self}")

    def sampler(self) -> random.Random:
        return random.Random(self.seed)

    def first_byte(self, rng: random.Random) -> float:
        """One first-byte latency, in seconds."""
        if self.median_ms == 0:
            return 0.0
        sigma = math.log(self.p99_ms / self.median_ms) / _Z99
        return rng.lognormvariate(math.log(self.median_ms), sigma) / 1000


@dataclass(frozen=True, slots=True)
class _Object:
    key: str
    path: Path
    size: int
    etag: str  # quoted, as S3 sends it
    modified: datetime  # whole seconds (S3's Last-Modified header has no fraction)


class _Bucket:
    """One bucket's keys, sorted, with what a listing shows of each."""

    def __init__(self, name: str, root: Path) -> None:
        self.name = name
        objects: dict[str, _Object] = {}
        for dirpath, _, filenames in os.walk(root):
            for fn in filenames:
                path = Path(dirpath) / fn
                key = path.relative_to(root).as_posix()
                st = path.stat()
                etag = '"' + hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest() + '"'
                modified = datetime.fromtimestamp(int(st.st_mtime), UTC)
                objects[key] = _Object(key, path, st.st_size, etag, modified)
        self.objects = objects
        self.keys = sorted(objects)


def _after(prefix: str) -> str:
    """The smallest string greater than every string that starts with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _encode_token(key: str, is_prefix: bool) -> str:
    return base64.urlsafe_b64encode(f"{'p' if is_prefix else 'k'}{key}".encode()).decode()


def _decode_token(token: str) -> tuple[str, bool] | None:
    try:
        raw = base64.urlsafe_b64decode(token.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return (raw[1:], raw[0] == "p") if raw[:1] in ("k", "p") else None


def list_v2(
    bucket: _Bucket,
    prefix: str,
    delimiter: str,
    start_after: str,
    token: str | None,
    max_keys: int,
) -> tuple[list[_Object], list[str], str | None]:
    """One page of ListObjectsV2: (objects, common prefixes, next token or None)."""
    keys = bucket.keys
    if token is not None and (marker := _decode_token(token)) is not None:
        last, is_prefix = marker
        i = bisect.bisect_left(keys, _after(last)) if is_prefix else bisect.bisect_right(keys, last)
    else:
        i = bisect.bisect_right(keys, start_after) if start_after else 0
    i = max(i, bisect.bisect_left(keys, prefix))
    objects: list[_Object] = []
    prefixes: list[str] = []
    last = ""
    while i < len(keys) and keys[i].startswith(prefix):
        if len(objects) + len(prefixes) >= max_keys:
            return (
                objects,
                prefixes,
                (_encode_token(last, bool(prefixes) and last == prefixes[-1]) if last else None),
            )
        key = keys[i]
        cut = key.find(delimiter, len(prefix)) if delimiter else -1
        if cut >= 0:
            common = key[: cut + len(delimiter)]
            i = bisect.bisect_left(keys, _after(common), i)
            if token is None and common <= start_after:
                continue  # rolled up at or before StartAfter: S3 (and moto) leave it out
            last = common
            prefixes.append(common)
        else:
            last = key
            objects.append(bucket.objects[key])
            i += 1
    return objects, prefixes, None


def _tag(name: str, value: object) -> str:
    return f"<{name}>{html.escape(str(value), quote=False)}</{name}>"


def _http_date(when: datetime) -> str:
    return format_datetime(when, usegmt=True)


def _error(status: int, code: str, message: str, **extra: str) -> web.Response:
    fields = "".join(_tag(k, v) for k, v in extra.items())
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error>{_tag('Code', code)}{_tag('Message', message)}{fields}"
        f"{_tag('RequestId', uuid.uuid4().hex[:16].upper())}</Error>"
    )
    return web.Response(status=status, body=body.encode(), content_type="application/xml")


class S3Model:
    """The endpoint, on its own event loop in a thread (:meth:`start` / :meth:`stop`), or inside
    a running loop (:meth:`serve`)."""

    def __init__(self, root: Path, *, bucket: str | None = None, latency: Latency | None = None):
        root = Path(root)
        if bucket is not None:
            self.buckets = {bucket: _Bucket(bucket, root)}
        else:
            self.buckets = {
                d.name: _Bucket(d.name, d) for d in sorted(root.iterdir()) if d.is_dir()
            }
        self.latency = latency or Latency()
        self._rng = self.latency.sampler()
        self.requests = 0
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    async def serve(self, port: int = 0, host: str = "127.0.0.1") -> None:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, backlog=1024)
        await site.start()
        bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://{host}:{bound}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def start(self, port: int = 0) -> S3Model:
        """Serve from a thread of this process (tests); ``url`` is set on return."""
        loop = self._loop = asyncio.new_event_loop()
        threading.Thread(target=loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self.serve(port), loop).result(30)
        return self

    def stop(self) -> None:
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self.close(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop = None

    # -- requests -----------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        delay = self.latency.first_byte(self._rng)
        if delay:
            await asyncio.sleep(delay)
        name, _, key = request.match_info["path"].partition("/")
        bucket = self.buckets.get(name)
        if bucket is None:
            if request.method == "HEAD":
                return web.Response(status=404)
            return _error(
                404, "NoSuchBucket", "The specified bucket does not exist", BucketName=name
            )
        if request.method not in ("GET", "HEAD"):
            return _error(405, "MethodNotAllowed", "This endpoint only reads.")
        if not key:
            if request.method == "HEAD":
                return web.Response(status=200)
            if request.query.get("list-type") != "2":
                return _error(501, "NotImplemented", "Only ListObjectsV2 is implemented.")
            return self._list(bucket, request)
        obj = bucket.objects.get(key)
        if obj is None:
            if request.method == "HEAD":
                return web.Response(status=404)
            return _error(404, "NoSuchKey", "The specified key does not exist.", Key=key)
        return await self._object(obj, request)

    def _list(self, bucket: _Bucket, request: web.Request) -> web.Response:
        q = request.query
        prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
        start_after, token = q.get("start-after", ""), q.get("continuation-token")
        try:
            max_keys = min(1000, int(q.get("max-keys", "1000")))
        except ValueError:
            return _error(
                400, "InvalidArgument", "Provided max-keys not an integer or within range"
            )
        if token is not None and _decode_token(token) is None:
            return _error(400, "InvalidArgument", "The continuation token provided is incorrect")
        objects, prefixes, nxt = list_v2(bucket, prefix, delimiter, start_after, token, max_keys)
        url = q.get("encoding-type") == "url"

        def enc(s: str) -> str:
            return quote(s, safe="/") if url else s

        parts = [
            '<?xml version="1.0" encoding="UTF-8"?>\n',
            f'<ListBucketResult xmlns="{_NS}">',
            _tag("Name", bucket.name),
            _tag("Prefix", enc(prefix)),
        ]
        if delimiter:
            parts.append(_tag("Delimiter", enc(delimiter)))
        parts += [
            _tag("MaxKeys", max_keys),
            _tag("KeyCount", len(objects) + len(prefixes)),
            _tag("IsTruncated", "true" if nxt else "false"),
        ]
        if url:
            parts.append(_tag("EncodingType", "url"))
        if token is not None:
            parts.append(_tag("ContinuationToken", token))
        if nxt:
            parts.append(_tag("NextContinuationToken", nxt))
        if start_after:
            parts.append(_tag("StartAfter", enc(start_after)))
        for o in objects:
            parts.append(
                f"<Contents>{_tag('Key', enc(o.key))}"
                f"{_tag('LastModified', o.modified.strftime('%Y-%m-%dT%H:%M:%S.000Z'))}"
                f"{_tag('ETag', o.etag)}{_tag('Size', o.size)}"
                f"{_tag('StorageClass', 'STANDARD')}</Contents>"
            )
        for p in prefixes:
            parts.append(f"<CommonPrefixes>{_tag('Prefix', enc(p))}</CommonPrefixes>")
        parts.append("</ListBucketResult>")
        return web.Response(body="".join(parts).encode(), content_type="application/xml")

    async def _object(self, obj: _Object, request: web.Request) -> web.StreamResponse:
        headers = {
            "ETag": obj.etag,
            "Last-Modified": _http_date(obj.modified),
            "Accept-Ranges": "bytes",
            "Content-Type": "binary/octet-stream",
        }
        start, end, status = 0, obj.size - 1, 200
        if (spec := request.headers.get("Range")) is not None:
            m = _RANGE.match(spec.strip())
            if m and (m[1] or m[2]):
                if m[1]:
                    start, end = int(m[1]), min(int(m[2]) if m[2] else end, end)
                else:
                    start = max(0, obj.size - int(m[2]))
                if start > end:
                    return _error(
                        416,
                        "InvalidRange",
                        "The requested range is not satisfiable",
                        RangeRequested=spec,
                        ActualObjectSize=str(obj.size),
                    )
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end}/{obj.size}"
        length = max(0, end - start + 1)
        headers["Content-Length"] = str(length)
        if request.method == "HEAD":
            headers["Content-Length"] = str(obj.size)
            return web.Response(status=200, headers=headers)
        data = await asyncio.to_thread(obj.path.read_bytes) if length else b""
        data = data[start : end + 1]
        response = web.StreamResponse(status=status, headers=headers)
        await response.prepare(request)
        rate = self.latency.bandwidth
        for at in range(0, len(data), _CHUNK):
            chunk = data[at : at + _CHUNK]
            await response.write(chunk)
            if rate:
                await asyncio.sleep(len(chunk) / rate)
        await response.write_eof()
        return response


async def open_store(url: str, bucket: str, *, concurrency: int = DEFAULT_CONCURRENCY) -> S3Store:
    """ct-ingest's own store for ``bucket`` at ``url`` (this model, or moto), with fake keys."""
    location = S3Location(bucket, "")
    config = SourceConfig(
        location=location,
        endpoint_url=url,
        region="us-east-1",
        concurrency=concurrency,
        credentials=("testing", "testing"),
    )
    return await S3Store.open(location, config)


@dataclass
class S3ModelProcess:
    """The endpoint in its own process (benchmarks: its work then shares no interpreter with
    the client's)."""

    process: subprocess.Popen[bytes]
    url: str

    @classmethod
    def start(
        cls, root: Path, *, bucket: str | None = None, latency: Latency | None = None
    ) -> S3ModelProcess:
        lat = latency or Latency()
        port = free_port()
        argv = [sys.executable, "-m", "ingest.testing.s3model", "--root", str(root)]
        argv += ["--port", str(port), "--latency-ms", str(lat.median_ms)]
        argv += ["--p99-ms", str(lat.p99_ms), "--bandwidth-mbps", str(lat.bandwidth / 1e6)]
        argv += ["--seed", str(lat.seed), *(["--bucket", bucket] if bucket else [])]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300  # indexing a large tree takes a while
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"s3model exited with status {proc.returncode}")
            try:
                with urllib.request.urlopen(f"{url}/", timeout=5):  # noqa: S310 (loopback)  # nosec B310
                    pass
            except urllib.error.HTTPError:
                return cls(proc, url)  # a 404 NoSuchBucket: it answers
            except OSError:
                time.sleep(0.1)
        proc.kill()
        raise RuntimeError(f"s3model did not answer on {url}")

    def stop(self) -> None:
        stop_process(self.process)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m ingest.testing.s3model", description=__doc__)
    ap.add_argument("--root", type=Path, required=True, help="the directory to serve")
    ap.add_argument("--bucket", help="serve ROOT as this bucket (default: a bucket a folder)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--latency-ms", type=float, default=20.0, help="median first-byte latency")
    ap.add_argument("--p99-ms", type=float, help="99th percentile (default: 5x the median)")
    ap.add_argument("--bandwidth-mbps", type=float, default=100.0, help="MB/s per connection")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    p99 = args.p99_ms if args.p99_ms is not None else 5 * args.latency_ms
    model = S3Model(
        args.root,
        bucket=args.bucket,
        latency=Latency(args.latency_ms, p99, args.bandwidth_mbps * 1e6, args.seed),
    )

    async def run() -> None:
        await model.serve(args.port, args.host)
        print(model.url, flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await model.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    main()
