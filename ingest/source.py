"""Where objects come from: S3 through aiobotocore, or a local directory laid out like a bucket.

Both stores have one tiny async interface (:class:`ObjectStore`): one page of a listing, one
object's bytes, and ``aclose``. Errors of botocore, aiohttp and the OS are translated at one
boundary, :func:`s3_errors` (:func:`sqs_errors` for the queue of ``tail``, with SQS's own
throttling codes), into :class:`~ingest.errors.SourceUnavailable` (transient: throttling, 5xx,
connection trouble) or :class:`~ingest.errors.SourceError` (terminal: missing, access denied,
and anything the boundary does not know). Each store retries its own calls under the source's
policy (``ingest.retry``): what a call raises is terminal, or transient past the deadline.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import unquote_plus
from xml.etree import ElementTree  # nosec B405

import aiohttp
import botocore.handlers
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    ReadTimeoutError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.utils import parse_timestamp

from ingest.config import LocalLocation, S3Location, SourceConfig
from ingest.errors import ConfigError, IngestError, SourceError, SourceUnavailable, boundary
from ingest.retry import RetryPolicy, call_with_retry

__all__ = [
    "LocalStore",
    "ObjectRef",
    "ObjectStore",
    "Page",
    "S3Store",
    "open_store",
    "s3_errors",
    "sqs_errors",
]

T = TypeVar("T")

_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "InternalError",
        "ServiceUnavailable",
        "503",
        "500",
        "ExpiredToken",  # refreshed by the credential chain on the next call
    }
)


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """One object as a listing shows it."""

    key: str
    etag: str
    size: int
    last_modified: datetime | None = None


@dataclass(slots=True)
class Page:
    """One page of a listing: sub-prefixes (with a delimiter) and objects."""

    prefixes: list[str] = field(default_factory=list)
    objects: list[ObjectRef] = field(default_factory=list)
    next_token: str | None = None


class ObjectStore(Protocol):
    """What the listing and fetching stages need from a store. Every call retries its
    transient failures itself (under the source's policy) and raises only the error tree."""

    @property
    def name(self) -> str:
        """A stable name for the ledger: ``s3://bucket`` or the directory's absolute path."""
        ...

    async def list_page(
        self,
        prefix: str,
        *,
        delimiter: str | None,
        token: str | None = None,
        start_after: str | None = None,
    ) -> Page: ...

    async def get(self, ref: ObjectRef) -> bytes: ...

    async def aclose(self) -> None: ...


# SQS's own throttling codes (some answered 403, so the status alone would call them terminal).
_SQS_TRANSIENT = frozenset({"RequestThrottled", "KmsThrottled", "ThrottlingException"})


def _translate_aws(exc: Exception, what: str) -> IngestError | None:
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        message = f"{what}: {code or status} {err.get('Message', '')}".strip()
        if code in _TRANSIENT_CODES or status in (429, 500, 502, 503, 504):
            return SourceUnavailable(message)
        return SourceError(message)
    if isinstance(exc, NoCredentialsError):
        return ConfigError(f"{what}: no AWS credentials found (env, --profile, or instance role)")
    if isinstance(
        exc,
        BotoConnectionError
        | HTTPClientError
        | ReadTimeoutError
        | aiohttp.ClientError
        | asyncio.TimeoutError
        | OSError,
    ):
        return SourceUnavailable(f"{what}: {type(exc).__name__}: {exc}")
    if isinstance(exc, BotoCoreError):
        return SourceError(f"{what}: {type(exc).__name__}: {exc}")
    return None


def _translate_sqs(exc: Exception, what: str) -> IngestError | None:
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", "")).rsplit(".", 1)[-1]
        if code in _SQS_TRANSIENT:
            return SourceUnavailable(f"{what}: {code} {exc.response['Error'].get('Message', '')}")
    return _translate_aws(exc, what)


def s3_errors(what: str) -> AbstractContextManager[None]:
    """The boundary of every S3 call: botocore, aiohttp and OS errors as ours (``what`` names
    the call); throttling, 5xx and connection trouble transient, the rest terminal."""
    return boundary(what, _translate_aws, SourceError)


def sqs_errors(what: str) -> AbstractContextManager[None]:
    """The boundary of every SQS call: as :func:`s3_errors`, and SQS's own throttling codes
    (some answered 403) transient."""
    return boundary(what, _translate_sqs, SourceError)


def _translate_read(exc: Exception, what: str) -> IngestError | None:
    if isinstance(exc, FileNotFoundError):
        return SourceError(f"{what}: file vanished")
    if isinstance(exc, PermissionError):
        return SourceError(f"{what}: permission denied")
    return _translate_list(exc, what)


def _translate_list(exc: Exception, what: str) -> IngestError | None:
    return SourceUnavailable(f"{what}: {exc}") if isinstance(exc, OSError) else None


def _timestamp(value: str) -> datetime:
    """botocore's timestamps without dateutil, whose parser took two thirds of the client's CPU
    for a listing page of 1,000 keys: S3 writes ISO 8601 in listings and HTTP dates in headers;
    anything else goes to botocore's own parser."""
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        try:
            parsed = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return parse_timestamp(value)  # type: ignore[no-any-return]
    return parsed if parsed.tzinfo is not None else parse_timestamp(value)


_PAGE = "ct_ingest_page"  # where the listing handler leaves its Page in the parsed response


def _listing_page(body: bytes) -> Page | None:
    """A ListObjectsV2 result as a Page, in one pass over the XML (None: not a listing)."""
    # What botocore would parse, with the same parser (expat expands no external entities).
    root = ElementTree.fromstring(body)  # noqa: S314  # nosec B314
    ns = root.tag[: root.tag.find("}") + 1]
    if root.tag[len(ns) :] != "ListBucketResult":
        return None
    decode = unquote_plus if root.findtext(f"{ns}EncodingType") == "url" else str
    page = Page(
        prefixes=[
            decode(p.findtext(f"{ns}Prefix", "")) for p in root.iterfind(f"{ns}CommonPrefixes")
        ]
    )
    for c in root.iterfind(f"{ns}Contents"):
        modified = c.findtext(f"{ns}LastModified")
        page.objects.append(
            ObjectRef(
                decode(c.findtext(f"{ns}Key", "")),
                c.findtext(f"{ns}ETag", "").strip('"'),
                int(c.findtext(f"{ns}Size", "0")),
                _timestamp(modified) if modified else None,
            )
        )
    if root.findtext(f"{ns}IsTruncated") == "true":
        page.next_token = root.findtext(f"{ns}NextContinuationToken")
    return page


def _read_listing(
    operation_model: Any,
    response_dict: dict[str, Any],
    customized_response_dict: dict[str, Any],
    **_: Any,
) -> None:
    """``before-parse`` of ListObjectsV2, first: read a successful page ourselves and hand
    botocore an empty body. Its generic parser, shape by shape, cost ~40 us of CPU per key, and
    its check for an error inside a 200 another ~10 us, which bound the parallel walk (one event
    loop) more than S3's latency did. What is not a listing (a truncated body, an ``<Error>``)
    is left to botocore as it was."""
    if operation_model.name != "ListObjectsV2" or response_dict["status_code"] != 200:
        return
    try:
        page = _listing_page(response_dict["body"])
    except ElementTree.ParseError:
        return
    if page is not None:
        customized_response_dict[_PAGE] = page
        response_dict["body"] = b""


class S3Store:
    """A bucket, through one pooled aiobotocore client."""

    def __init__(
        self,
        location: S3Location,
        client: Any,
        stack: AsyncExitStack,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._bucket = location.bucket
        self._client = client
        self._stack = stack
        self._retry = retry or RetryPolicy()

    @classmethod
    async def open(cls, location: S3Location, config: SourceConfig) -> S3Store:
        session = AioSession(profile=config.profile)
        session.get_component("response_parser_factory").set_parser_defaults(
            timestamp_parser=_timestamp
        )
        aio_config = AioConfig(
            max_pool_connections=config.concurrency,
            retries={"total_max_attempts": 1},  # ct-ingest's own policy retries, once, on top
            connect_timeout=10,
            read_timeout=60,
            tcp_keepalive=True,
        )
        key_id, secret = config.credentials or (None, None)  # None: the AWS credential chain
        stack = AsyncExitStack()
        try:
            client = await stack.enter_async_context(
                session.create_client(
                    "s3",
                    endpoint_url=config.endpoint_url,
                    region_name=config.region,
                    config=aio_config,
                    aws_access_key_id=key_id,
                    aws_secret_access_key=secret,
                )
            )
        except BotoCoreError as exc:
            await stack.aclose()
            raise ConfigError(f"cannot create an S3 client: {exc}") from exc
        # Ahead of botocore's check for an error inside a 200 (which parses the body once more):
        # a page read here leaves it an empty body; anything else it sees as before.
        events, check = client.meta.events, getattr(botocore.handlers, "_handle_200_error", None)
        if check is not None:
            events.unregister("before-parse.s3.*", check)
        events.register_first("before-parse.s3.*", _read_listing)
        if check is not None:
            events.register_first("before-parse.s3.*", check)
        return cls(location, client, stack, config.retry)

    @property
    def name(self) -> str:
        return f"s3://{self._bucket}"

    async def _call(self, what: str, fn: Callable[[], Awaitable[T]]) -> T:
        """One S3 call through the boundary, retried under the source's policy."""

        async def once() -> T:
            with s3_errors(what):
                return await fn()

        return await call_with_retry(self._retry, once)

    async def list_page(
        self,
        prefix: str,
        *,
        delimiter: str | None,
        token: str | None = None,
        start_after: str | None = None,
    ) -> Page:
        kwargs: dict[str, Any] = {"Bucket": self._bucket, "Prefix": prefix, "MaxKeys": 1000}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        if token:
            kwargs["ContinuationToken"] = token
        if start_after:
            kwargs["StartAfter"] = start_after
        resp = await self._call(
            f"list s3://{self._bucket}/{prefix}", lambda: self._client.list_objects_v2(**kwargs)
        )
        if _PAGE in resp:
            page: Page = resp[_PAGE]
            return page
        page = Page(  # parsed by botocore (a client without the handler)
            prefixes=[p["Prefix"] for p in resp.get("CommonPrefixes", ())],
            objects=[
                ObjectRef(
                    o["Key"], o.get("ETag", "").strip('"'), o.get("Size", 0), o.get("LastModified")
                )
                for o in resp.get("Contents", ())
            ],
        )
        if resp.get("IsTruncated"):
            page.next_token = resp.get("NextContinuationToken")
        return page

    async def head(self, key: str) -> ObjectRef:
        """The listing entry of one key (for notifications that carry no ETag)."""
        resp = await self._call(
            f"head s3://{self._bucket}/{key}",
            lambda: self._client.head_object(Bucket=self._bucket, Key=key),
        )
        return ObjectRef(
            key,
            resp.get("ETag", "").strip('"'),
            resp.get("ContentLength", 0),
            resp.get("LastModified"),
        )

    async def get(self, ref: ObjectRef) -> bytes:
        what = f"get s3://{self._bucket}/{ref.key}"

        async def read() -> bytes:
            resp = await self._client.get_object(Bucket=self._bucket, Key=ref.key)
            async with resp["Body"] as body:
                data: bytes = await body.read()
            if ref.size and len(data) != ref.size:
                raise SourceUnavailable(f"{what}: read {len(data)} of {ref.size} bytes")
            return data

        return await self._call(what, read)

    async def aclose(self) -> None:
        await self._stack.aclose()


class LocalStore:
    """A directory laid out like the bucket; keys are paths relative to it, with ``/``."""

    def __init__(self, location: LocalLocation, retry: RetryPolicy | None = None) -> None:
        self._root = location.root
        self._retry = retry or RetryPolicy()

    async def _call(
        self,
        what: str,
        fn: Callable[[], T],
        translate: Callable[[Exception, str], IngestError | None],
    ) -> T:
        """``fn`` in a thread, its OS errors as ours, retried under the source's policy."""

        async def once() -> T:
            with boundary(what, translate, SourceError):
                return await asyncio.to_thread(fn)

        return await call_with_retry(self._retry, once)

    @property
    def name(self) -> str:
        return str(self._root)

    def _list(self, prefix: str, delimiter: str | None, start_after: str | None) -> Page:
        # Mirror S3 semantics: ``prefix`` is a key prefix; with "/" as delimiter, children.
        directory = self._root / prefix
        if prefix and not prefix.endswith("/"):
            directory = directory.parent
        page = Page()
        if not directory.is_dir():
            return page
        if delimiter:
            with os.scandir(directory) as it:
                for entry in sorted(it, key=lambda e: e.name):
                    rel = self._rel(Path(entry.path))
                    if not rel.startswith(prefix):
                        continue
                    if entry.is_dir():
                        page.prefixes.append(rel + "/")
                    elif entry.is_file():
                        page.objects.append(self._ref(Path(entry.path), rel))
            return page
        for dirpath, dirnames, filenames in os.walk(directory):
            dirnames.sort()
            for name in sorted(filenames):
                path = Path(dirpath) / name
                rel = self._rel(path)
                if rel.startswith(prefix) and (start_after is None or rel > start_after):
                    page.objects.append(self._ref(path, rel))
        page.objects.sort(key=lambda r: r.key)
        return page

    def _rel(self, path: Path) -> str:
        return path.relative_to(self._root).as_posix()

    @staticmethod
    def _ref(path: Path, rel: str) -> ObjectRef:
        st = path.stat()
        modified = datetime.fromtimestamp(st.st_mtime, UTC)
        return ObjectRef(rel, f"{st.st_size:x}-{st.st_mtime_ns:x}", st.st_size, modified)

    async def list_page(
        self,
        prefix: str,
        *,
        delimiter: str | None,
        token: str | None = None,
        start_after: str | None = None,
    ) -> Page:
        return await self._call(
            f"list {self._root / prefix}",
            lambda: self._list(prefix, delimiter, start_after),
            _translate_list,
        )

    async def get(self, ref: ObjectRef) -> bytes:
        path = self._root / ref.key
        return await self._call(f"read {path}", path.read_bytes, _translate_read)

    async def aclose(self) -> None:
        return None


async def open_store(config: SourceConfig) -> ObjectStore:
    """The store for ``config.location``."""
    if isinstance(config.location, S3Location):
        with boundary("cannot create an S3 client", _translate_none, ConfigError):
            return await S3Store.open(config.location, config)
    return LocalStore(config.location, config.retry)


def _translate_none(exc: Exception, what: str) -> None:
    return None
