"""The edge to the OpenSearch cluster for everything but bulk writes: client, templates, ISM,
and the backfill-mode index settings; and the one boundary of every OpenSearch call.

Every call to OpenSearch in the package, sync or async, bulk writes included, runs inside
:func:`opensearch_errors`: unreachable, timeouts, 429 and 502/503/504 become
:class:`~ingest.errors.SinkUnavailable` (transient), any other refusal and anything the boundary
does not know :class:`~ingest.errors.SinkError` (terminal). The operations here retry their own
calls under the sink's policy, one deadline per operation; :func:`call` does the same for the
calls of the operations above (``verify``).

A gzipping async client's connection (:class:`_GzipConnection`) gzips request bodies itself,
at a fast level in a worker thread, instead of opensearch-py's level 9 on the event loop. The run
gzips its bulk bodies unless told not to (``--no-gzip``) or writing to Serverless
(:meth:`SinkConfig.gzips <ingest.config.SinkConfig.gzips>`, decided by ``ingest.runner``).
"""

from __future__ import annotations

import asyncio
import copy
import zlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Mapping
from contextlib import AbstractContextManager
from functools import partial
from importlib import resources
from typing import Any, ClassVar, TypeVar

import orjson
import structlog
from opensearchpy import (
    AsyncHttpConnection,
    AsyncOpenSearch,
    AWSV4SignerAsyncAuth,
    OpenSearch,
    Urllib3AWSV4SignerAuth,
)
from opensearchpy.exceptions import ConnectionError as OSConnectionError
from opensearchpy.exceptions import NotFoundError, TransportError
from opensearchpy.serializer import JSONSerializer

from ingest.config import GZIP_MIN_BYTES, IndexConfig, SinkConfig
from ingest.errors import ConfigError, IngestError, SinkError, SinkUnavailable, boundary
from ingest.retry import Deadline, RetryPolicy, call_with_retry

__all__ = [
    "BackfillMode",
    "call",
    "component_names",
    "ensure_template",
    "install_ism_policy",
    "install_template",
    "open_client",
    "open_sync_client",
    "opensearch_errors",
    "ping",
    "render_components",
    "render_ism_policy",
    "render_template",
    "root_info",
    "template_name",
]

T = TypeVar("T")

_log = structlog.get_logger("ingest.cluster")
_COMPONENTS = ("settings", "cloudtrail", "enrichment")


def _auth(config: SinkConfig, *, sync: bool = False) -> Any:
    if config.aws_auth:
        import botocore.session

        session = botocore.session.Session(profile=config.aws_profile)
        credentials = session.get_credentials()
        if credentials is None:
            raise ConfigError("--aws-auth: no AWS credentials found (env, --profile, or a role)")
        signer = Urllib3AWSV4SignerAuth if sync else AWSV4SignerAsyncAuth
        return signer(credentials, config.aws_region or "", config.aws_auth)
    if config.username:
        return (config.username, config.password or "")
    return None


def _common(config: SinkConfig, *, sync: bool) -> dict[str, Any]:
    """What both clients take from the configuration: URL, auth, TLS, compression (the sync
    client's: opensearch-py's own; the async one gzips with :class:`_GzipConnection`), timeout."""
    return {
        "hosts": [config.url],
        "http_auth": _auth(config, sync=sync),
        "http_compress": config.compress is True,
        "timeout": config.timeout,
        "verify_certs": config.verify_certs,
        "ca_certs": config.ca_certs,
        "ssl_show_warn": config.verify_certs,
    }


def open_sync_client(config: SinkConfig) -> OpenSearch:
    """A blocking client with the same auth and TLS settings (for reports and setup steps); it
    compresses only with ``--gzip`` given (its bodies are small)."""
    with _client_errors():
        return OpenSearch(**_common(config, sync=True), max_retries=2, retry_on_timeout=True)


def open_client(config: SinkConfig, *, gzip: bool | None = None) -> AsyncOpenSearch:
    """An async client for ``config.url``; it never retries by itself (our policy does). With
    ``gzip`` (by default: ``--gzip`` given), its connection gzips bodies off the event loop
    (:class:`_GzipConnection`)."""
    connection: dict[str, Any] = {"connection_class": AsyncHttpConnection}
    if (config.compress is True) if gzip is None else gzip:
        connection = {"connection_class": _GzipConnection, "gzip_level": config.gzip_level}
    with _client_errors():
        return AsyncOpenSearch(
            **{**_common(config, sync=False), "http_compress": False},
            **connection,
            max_retries=0,
            retry_on_timeout=False,
            maxsize=max(config.max_in_flight * 2, 4),
            serializer=_OrjsonAnswers(),
        )


class _OrjsonAnswers(JSONSerializer):
    """opensearch-py's serializer with answers parsed by orjson: a bulk answer has an item per
    document, parsed on the event loop. What orjson refuses (an integer beyond 64 bits, say)
    goes to the standard parser as before."""

    def loads(self, s: str) -> Any:
        try:
            return orjson.loads(s)
        except orjson.JSONDecodeError:
            return super().loads(s)


class _GzipConnection(AsyncHttpConnection):
    """opensearch-py's async connection with the request body gzipped at ``gzip_level`` in a
    worker thread (zlib lets go of the GIL, so the event loop keeps filling and sending the
    other bodies meanwhile) and ``Content-Encoding: gzip``; gzipped answers are asked for
    (aiohttp inflates them). The body is compressed after opensearch-py has shaped it (a bulk
    body must end with a newline) and before it is signed (SigV4 signs the bytes sent).

    Bodies under ``GZIP_MIN_BYTES`` (settings, templates) go as they are. A body whose request
    failed transiently (what the sink retries) keeps its gzip for the retry of the same bytes
    (the last few, by identity; the sink holds those bodies meanwhile anyway): a retry sends
    exactly what the first attempt sent. ``compressed``: bodies gzipped so far."""

    _KEEP_FAILED = 8  # bodies a retry may come back for (requests in flight, and backing off)

    def __init__(self, *, gzip_level: int, **kwargs: Any) -> None:
        super().__init__(**{**kwargs, "http_compress": False})
        self.headers["accept-encoding"] = "gzip,deflate"
        self._level = gzip_level
        self._failed: OrderedDict[int, tuple[bytes, bytes]] = OrderedDict()
        self.compressed = 0

    async def perform_request(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None = None,
        body: bytes | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (opensearch-py's signature)
        ignore: Collection[int] = (),
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        if body is None or len(body) < GZIP_MIN_BYTES:
            return await super().perform_request(
                method, url, params, body, timeout, ignore, headers
            )
        kept = self._failed.pop(id(body), None)
        if kept is not None and kept[0] is body:
            gzipped = kept[1]
        else:
            gzipped = await asyncio.to_thread(zlib.compress, body, self._level, 16 + zlib.MAX_WBITS)
            self.compressed += 1
        try:
            return await super().perform_request(
                method,
                url,
                params,
                gzipped,
                timeout,
                ignore,
                {**(headers or {}), "content-encoding": "gzip"},
            )
        except Exception as exc:
            if isinstance(_translate(exc, "bulk"), SinkUnavailable):  # the sink will retry it
                self._failed[id(body)] = (body, gzipped)
                while len(self._failed) > self._KEEP_FAILED:
                    self._failed.popitem(last=False)
            raise


def _client_errors() -> AbstractContextManager[None]:
    """Whatever fails while a client is made (a missing AWS profile, bad TLS files) is a
    configuration error."""
    return boundary("cannot create an OpenSearch client", lambda exc, what: None, ConfigError)


def _load(name: str) -> dict[str, Any]:
    raw = resources.files("ingest.mappings").joinpath(name).read_bytes()
    body: dict[str, Any] = orjson.loads(raw)
    return copy.deepcopy(body)


def template_name(config: SinkConfig) -> str:
    return f"ct-ingest-{config.alias}"


def component_names(config: SinkConfig) -> dict[str, str]:
    return {part: f"ct-ingest-{config.alias}-{part}" for part in _COMPONENTS}


def render_components(
    config: SinkConfig,
    index: IndexConfig,
    *,
    flat_object: bool = True,
    index_settings: bool = True,
) -> dict[str, dict[str, Any]]:
    """The component templates from ``mappings/``, by their names on the cluster. Without
    ``flat_object`` (OpenSearch before 2.7, Elasticsearch) the payload copies ``ct.flat.*`` are
    mapped as objects that are not indexed (the payloads stay in ``_source``); without
    ``index_settings`` (Serverless, which manages them) the settings component is empty."""
    out = {}
    for part, name in component_names(config).items():
        body = _load(f"component-{part}.json")
        if part == "settings" and not index_settings:
            body["template"] = {}
        elif part == "enrichment" and not flat_object:
            flat = body["template"]["mappings"]["properties"]["ct"]["properties"]["flat"]
            for spec in flat["properties"].values():
                if spec.get("type") == "flat_object":
                    spec.clear()
                    spec.update(type="object", enabled=False)
        elif part == "settings":
            settings = body["template"]["settings"]["index"]
            settings.update(
                number_of_shards=index.shards,
                number_of_replicas=index.replicas,
                refresh_interval=index.refresh_interval,
            )
            if index.codec != "default":
                settings["codec"] = index.codec
        out[name] = body
    return out


def render_template(config: SinkConfig) -> dict[str, Any]:
    """The composable index template, bound to the configured prefix, alias and components."""
    body = _load("index-template.json")
    names = component_names(config)
    body["index_patterns"] = [f"{config.index_prefix}*"]
    body["composed_of"] = [names[part] for part in body["composed_of"]]
    body["template"].setdefault("aliases", {})[config.alias] = {}
    return body


def render_ism_policy(
    config: SinkConfig, index: IndexConfig, *, opendistro: bool = False
) -> dict[str, Any]:
    """The retention policy. ``opendistro``: in the shape Open Distro's ISM (Elasticsearch
    7.10 domains) reads, one ``ism_template`` object; OpenSearch's takes a list (or one)."""
    text = resources.files("ingest.mappings").joinpath("ism-policy.json").read_text()
    text = text.replace("{retention}", f"{index.retention_days}d")
    text = text.replace("{pattern}", f"{config.index_prefix}*")
    body: dict[str, Any] = orjson.loads(text)
    if opendistro:
        (body["policy"]["ism_template"],) = body["policy"]["ism_template"]
    return body


def _translate(exc: Exception, what: str) -> IngestError | None:
    """opensearch-py's errors as ours: unreachable, timeouts, 429 and 502/503/504 are
    transient, any other refusal terminal."""
    if isinstance(exc, OSConnectionError):
        return SinkUnavailable(f"{what}: cannot reach OpenSearch: {exc.info or exc.error}")
    if isinstance(exc, TransportError):
        status = exc.status_code if isinstance(exc.status_code, int) else 0
        if status in (429, 502, 503, 504):
            return SinkUnavailable(f"{what}: HTTP {status}")
        return SinkError(f"{what}: HTTP {status}: {str(exc.info or exc.error)[:300]}")
    if isinstance(exc, TimeoutError):
        return SinkUnavailable(f"{what}: timed out")
    return None


def opensearch_errors(what: str) -> AbstractContextManager[None]:
    """The boundary of every OpenSearch call (``what`` names it), around an ``await`` or a
    blocking call alike: errors of the tree pass through, opensearch-py's are translated, any
    other exception becomes a terminal :class:`~ingest.errors.SinkError`."""
    return boundary(what, _translate, SinkError)


async def call(
    what: str,
    fn: Callable[[], Awaitable[T]],
    retry: RetryPolicy | None = None,
    *,
    deadline: Deadline | None = None,
) -> T:
    """Await ``fn()`` (one OpenSearch call, or a few that belong together) inside the boundary,
    retried under ``retry`` until ``deadline`` (default: the policy's from now); one attempt
    without a policy."""

    async def once() -> T:
        with opensearch_errors(what):
            return await fn()

    if retry is None:
        return await once()
    return await call_with_retry(retry, once, deadline=deadline)


async def root_info(client: AsyncOpenSearch, retry: RetryPolicy | None = None) -> dict[str, Any]:
    """The answer to ``GET /``, retried under ``retry`` (one attempt without); ``{}`` when the
    cluster answers 404, as OpenSearch Serverless does (it does not serve ``GET /``). Raises
    SinkUnavailable when it cannot be reached."""

    async def get() -> dict[str, Any]:
        try:
            info: dict[str, Any] = await client.info()
        except NotFoundError:
            return {}
        return info

    return await call("GET /", get, retry)


async def ping(client: AsyncOpenSearch, retry: RetryPolicy | None = None) -> str:
    """The cluster's version string (``serverless`` where ``GET /`` answers 404), retried under
    ``retry`` (one attempt without); raises SinkUnavailable when it cannot be reached."""
    info = await root_info(client, retry)
    if not info:
        return "serverless"
    return str(info.get("version", {}).get("number", "?"))


async def install_template(
    client: AsyncOpenSearch,
    config: SinkConfig,
    index: IndexConfig | None = None,
    **shape: bool,
) -> str:
    """Create or replace the component templates and the index template (retried under the
    sink's policy, one deadline for all); returns its name. ``shape``: the knobs of
    :func:`render_components`."""
    return await _install_template(
        client, config, index or IndexConfig(), config.retry.start(), **shape
    )


async def _install_template(
    client: AsyncOpenSearch,
    config: SinkConfig,
    index: IndexConfig,
    deadline: Deadline,
    **shape: bool,
) -> str:
    for component, body in render_components(config, index, **shape).items():
        await call(
            f"PUT _component_template/{component}",
            partial(client.cluster.put_component_template, name=component, body=body),
            config.retry,
            deadline=deadline,
        )
    name = template_name(config)
    await call(
        f"PUT _index_template/{name}",
        lambda: client.indices.put_index_template(name=name, body=render_template(config)),
        config.retry,
        deadline=deadline,
    )
    _log.info(
        "template_installed", name=name, patterns=f"{config.index_prefix}*", alias=config.alias
    )
    return name


async def install_ism_policy(
    client: AsyncOpenSearch, config: SinkConfig, index: IndexConfig, api: str = "/_plugins/_ism"
) -> str:
    """Install the retention policy through the ISM API at ``api`` (``/_opendistro/_ism`` on
    Elasticsearch domains), retried under the sink's policy; returns a one-line account of
    what happened."""
    if index.retention_days == 0:
        return "retention: none (indices are kept until you delete them)"
    name = f"ct-ingest-{config.alias}-retention"
    path = f"{api}/policies/{name}"
    body = render_ism_policy(config, index, opendistro=api.startswith("/_opendistro"))

    async def install() -> str | None:
        """``None`` once installed; the account when the cluster has no ISM plugin."""
        try:
            try:
                current = await client.transport.perform_request("GET", path)
            except TransportError as exc:
                if exc.status_code != 404:
                    raise
                current = None
            params = {}
            if isinstance(current, dict) and "_seq_no" in current:
                params = {
                    "if_seq_no": current["_seq_no"],
                    "if_primary_term": current["_primary_term"],
                }
            await client.transport.perform_request("PUT", path, body=body, params=params)
        except TransportError as exc:
            if exc.status_code in (400, 404, 405):
                return (
                    f"retention: this cluster has no ISM plugin (HTTP {exc.status_code}); "
                    "no retention policy installed"
                )
            raise  # translated by the boundary
        return None

    missing = await call(f"PUT {path}", install, config.retry)
    return missing or (
        f"retention: ISM policy {name} deletes indices {index.retention_days} days after creation"
    )


async def ensure_template(client: AsyncOpenSearch, config: SinkConfig, **shape: bool) -> bool:
    """Install the templates unless the index template exists (retried under the sink's
    policy, one deadline for all); True when installed now. ``shape``: the knobs of
    :func:`render_components`."""
    name = template_name(config)
    deadline = config.retry.start()
    exists = await call(
        f"HEAD _index_template/{name}",
        partial(client.indices.exists_index_template, name=name),
        config.retry,
        deadline=deadline,
    )
    if exists:
        return False
    await _install_template(client, config, IndexConfig(), deadline, **shape)
    return True


class BackfillMode:
    """Refresh off and no replicas on the indices a backfill writes, restored when it ends.

    :meth:`prepare` is called before the first document for an index is sent; :meth:`restore`
    puts back the values the index template gives (refresh interval and replicas), also after
    an interruption or a failure. Both retry under ``retry`` (the sink's policy).
    """

    FAST: ClassVar[dict[str, Any]] = {"index": {"refresh_interval": "-1", "number_of_replicas": 0}}

    def __init__(self, client: AsyncOpenSearch, retry: RetryPolicy | None = None) -> None:
        self._client = client
        self._retry = retry
        self.touched: list[str] = []
        self._seen: set[str] = set()

    async def prepare(self, index: str) -> None:
        if index in self._seen:
            return
        self._seen.add(index)
        await call(f"backfill settings for {index}", partial(self._fast, index), self._retry)
        self.touched.append(index)
        _log.debug("backfill_mode_on", index=index)

    async def _fast(self, index: str) -> None:
        try:
            if await self._client.indices.exists(index=index):
                await self._client.indices.put_settings(index=index, body=self.FAST)
            else:
                await self._client.indices.create(index=index, body={"settings": self.FAST})
        except TransportError as exc:
            if "resource_already_exists_exception" not in str(exc.error):
                raise  # translated by the boundary
            await self._client.indices.put_settings(index=index, body=self.FAST)

    async def _template_values(self, index: str) -> dict[str, Any]:
        resolved = await self._client.transport.perform_request(
            "POST", f"/_index_template/_simulate_index/{index}"
        )
        settings = resolved.get("template", {}).get("settings", {}).get("index", {})
        return {
            "refresh_interval": settings.get("refresh_interval", "1s"),
            "number_of_replicas": int(settings.get("number_of_replicas", 1)),
        }

    async def _restore_one(self, index: str) -> dict[str, Any]:
        values = await self._template_values(index)
        await self._client.indices.put_settings(index=index, body={"index": values})
        return values

    async def restore(self) -> list[str]:
        """Put the template's values back on every index touched (one deadline for all);
        returns them."""
        deadline = self._retry.start() if self._retry is not None else None
        for index in self.touched:
            values = await call(
                f"restoring settings of {index}",
                partial(self._restore_one, index),
                self._retry,
                deadline=deadline,
            )
            _log.info("backfill_mode_off", index=index, **values)
        return list(self.touched)
