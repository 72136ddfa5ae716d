"""Where objects come from: S3 through aiobotocore, or a local directory laid out like a bucket.

Both stores have one tiny async interface (:class:`ObjectStore`): one page of a listing, one
object's bytes, and ``aclose``. Errors of botocore, aiohttp and the OS are translated here into
:class:`~ingest.errors.SourceUnavailable` (transient: throttling, 5xx, connection trouble) or
:class:`~ingest.errors.SourceError` (terminal: missing, access denied). Retrying is the caller's
business, with the one policy in ``ingest.retry``.
"""

from __future__ import annotations

import asyncio
import os
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import aiohttp
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

from ingest.config import LocalLocation, S3Location, SourceConfig
from ingest.errors import ConfigError, SourceError, SourceUnavailable

__all__ = ["LocalStore", "ObjectRef", "ObjectStore", "Page", "S3Store", "open_store"]

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
    """What the listing and fetching stages need from a store."""

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


def _translate(exc: BaseException, what: str) -> Exception:
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
    return exc if isinstance(exc, Exception) else RuntimeError(str(exc))


class S3Store:
    """A bucket, through one pooled aiobotocore client."""

    def __init__(self, location: S3Location, client: Any, stack: AsyncExitStack) -> None:
        self._bucket = location.bucket
        self._client = client
        self._stack = stack

    @classmethod
    async def open(cls, location: S3Location, config: SourceConfig) -> S3Store:
        session = AioSession(profile=config.profile)
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
        return cls(location, client, stack)

    @property
    def name(self) -> str:
        return f"s3://{self._bucket}"

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
        try:
            resp = await self._client.list_objects_v2(**kwargs)
        except Exception as exc:
            raise _translate(exc, f"list s3://{self._bucket}/{prefix}") from exc
        page = Page(
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
        try:
            resp = await self._client.head_object(Bucket=self._bucket, Key=key)
        except Exception as exc:
            raise _translate(exc, f"head s3://{self._bucket}/{key}") from exc
        return ObjectRef(
            key,
            resp.get("ETag", "").strip('"'),
            resp.get("ContentLength", 0),
            resp.get("LastModified"),
        )

    async def get(self, ref: ObjectRef) -> bytes:
        what = f"get s3://{self._bucket}/{ref.key}"
        try:
            resp = await self._client.get_object(Bucket=self._bucket, Key=ref.key)
            async with resp["Body"] as body:
                data: bytes = await body.read()
        except Exception as exc:
            raise _translate(exc, what) from exc
        if ref.size and len(data) != ref.size:
            raise SourceUnavailable(f"{what}: read {len(data)} of {ref.size} bytes")
        return data

    async def aclose(self) -> None:
        await self._stack.aclose()


class LocalStore:
    """A directory laid out like the bucket; keys are paths relative to it, with ``/``."""

    def __init__(self, location: LocalLocation) -> None:
        self._root = location.root

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
        try:
            return await asyncio.to_thread(self._list, prefix, delimiter, start_after)
        except OSError as exc:
            raise SourceUnavailable(f"list {self._root / prefix}: {exc}") from exc

    async def get(self, ref: ObjectRef) -> bytes:
        path = self._root / ref.key
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError as exc:
            raise SourceError(f"read {path}: file vanished") from exc
        except PermissionError as exc:
            raise SourceError(f"read {path}: permission denied") from exc
        except OSError as exc:
            raise SourceUnavailable(f"read {path}: {exc}") from exc

    async def aclose(self) -> None:
        return None


async def open_store(config: SourceConfig) -> ObjectStore:
    """The store for ``config.location``."""
    if isinstance(config.location, S3Location):
        return await S3Store.open(config.location, config)
    return LocalStore(config.location)
