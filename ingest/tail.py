"""``ct-ingest tail``: keep the index minutes behind CloudTrail.

Two producers for the same pipeline as the backfill (``ingest.pipeline``):

- **polling**: per account/region prefix, resume from the newest settled key in the ledger (so
  a tail started after a backfill with the same state picks up where it ended), rewind a window
  (CloudTrail files arrive out of key order and up to ~15 minutes late), and list each day from
  there to today with ``StartAfter``; the ledger makes the overlap free. Accounts and regions
  are discovered again every ``rediscover_seconds``.
  A prefix with nothing settled yet starts at ``TailConfig.since`` (``--since``; by default a
  day before start-up), never earlier; where the ledger has a watermark, the watermark wins.
- **SQS**: S3 event notifications (direct, SNS-wrapped, EventBridge, or CloudTrail's own SNS
  delivery notice) name the objects; a message is deleted only once every object it names is
  settled, its visibility is extended while they are processed, and a message that cannot be
  understood is left for the queue's redrive policy. Several processes can share one queue.
  Every SQS call and every HEAD goes through the source's retry policy. A notified object that
  is gone or unreadable (a terminal error on HEAD) goes to the fetch stage like any other, which
  dead-letters it and settles it as failed, so its message is deleted; an object S3 does not
  answer for within the retry deadline leaves its message on the queue, to come back later.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import unquote_plus

import orjson
import structlog
from botocore.exceptions import ClientError

from ingest.config import S3Location, Settings
from ingest.errors import ConfigError, IngestError, SourceError, SourceUnavailable
from ingest.layout import parse_log_key
from ingest.listing import Emit, RegionPrefix, list_day, list_region_prefixes
from ingest.retry import call_with_retry
from ingest.source import ObjectRef, ObjectStore
from ingest.source import _translate as translate_source_error

__all__ = [
    "Health",
    "TailConfig",
    "parse_notification",
    "parse_since",
    "poller",
    "sqs_consumer",
]

_log = structlog.get_logger("ingest.tail")


@dataclass(frozen=True, kw_only=True)
class TailConfig:
    poll_interval: float = 60.0
    rewind: timedelta = timedelta(minutes=20)
    rediscover_seconds: float = 600.0
    sqs_queue_url: str | None = None
    sqs_endpoint_url: str | None = None
    sqs_wait_seconds: int = 20
    sqs_visibility: int = 300
    metrics_port: int | None = None
    unhealthy_after: float = 120.0
    since: datetime | None = None  # where prefixes with nothing settled start; None: a day ago


_DEFAULT_SINCE = timedelta(days=1)
_RELATIVE = re.compile(r"^(\d+)([dh])$")


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """``--since`` of ``tail``: ``YYYY-MM-DD`` (midnight UTC), an ISO timestamp (UTC unless it
    says otherwise), or ``Nd`` / ``Nh`` (N days / hours before now). Never in the future."""
    now = now or datetime.now(UTC)
    text = text.strip()
    m = _RELATIVE.match(text)
    if m:
        n = int(m[1])
        since = now - (timedelta(days=n) if m[2] == "d" else timedelta(hours=n))
    else:
        try:
            since = datetime.fromisoformat(text)
        except ValueError:
            raise ConfigError(
                f"--since {text!r}: expected YYYY-MM-DD, an ISO timestamp "
                "(e.g. 2026-11-27T10:40Z) or Nd / Nh (e.g. 30d, 6h)"
            ) from None
        since = since.replace(tzinfo=UTC) if since.tzinfo is None else since.astimezone(UTC)
    if since > now:
        raise ConfigError(f"--since {text!r}: {_stamp(since)} is in the future")
    return since


def _stamp(when: datetime) -> str:
    return f"{when.astimezone(UTC):%Y-%m-%dT%H:%MZ}"


def _announce(line: str, **fields: Any) -> None:
    """A start-up line for the person at the terminal, and the same as a structured event."""
    print(f"ct-ingest tail: {line}", file=sys.stderr, flush=True)
    _log.info("tail_start", **fields)


@dataclass
class Health:
    """When S3 and OpenSearch last answered; /healthz fails when either is too long ago."""

    threshold: float
    last_ok: dict[str, float] = field(default_factory=dict)
    clock: Callable[[], float] = time.monotonic

    def ok(self, what: str) -> None:
        self.last_ok[what] = self.clock()

    def problems(self) -> list[str]:
        now = self.clock()
        return [
            f"{what} unreachable for {now - self.last_ok.get(what, float('-inf')):.0f} s"
            for what in ("s3", "opensearch")
            if now - self.last_ok.get(what, now) > self.threshold
        ]


def _stamp_key(day_prefix: str, name_prefix: str, when: datetime) -> str:
    return f"{day_prefix}{name_prefix}{when:%Y%m%dT%H%MZ}"


def _days(since: datetime, until: datetime) -> list[datetime]:
    day = datetime(since.year, since.month, since.day, tzinfo=UTC)
    out = []
    while day.date() <= until.date():
        out.append(day)
        day += timedelta(days=1)
    return out


async def poll_region(
    store: ObjectStore,
    region: RegionPrefix,
    newest: str | None,
    config: TailConfig,
    emit: Emit,
    settings: Settings,
    now: datetime,
    fresh_since: datetime | None = None,
) -> None:
    """List one account/region from the rewound watermark to today; with nothing settled under
    the prefix yet, from ``fresh_since`` (default: a day before ``now``)."""
    kind = "CloudTrail-Insight" if "/CloudTrail-Insight/" in region.prefix else "CloudTrail"
    name_prefix = f"{region.account}_{kind}_{region.region}_"
    parsed = parse_log_key(newest) if newest else None
    if parsed is not None:
        stamp = parsed.key.rsplit("_", 2)[-2]
        try:
            mark = datetime.strptime(stamp, "%Y%m%dT%H%MZ").replace(tzinfo=UTC)
        except ValueError:
            mark = datetime(parsed.day.year, parsed.day.month, parsed.day.day, tzinfo=UTC)
        since = mark - config.rewind  # the ledger's watermark wins over --since
    else:
        since = fresh_since if fresh_since is not None else now - _DEFAULT_SINCE
    for day in _days(since, now):
        day_prefix = f"{region.prefix}{day:%Y/%m/%d}/"
        start_after = (
            _stamp_key(day_prefix, name_prefix, since) if day.date() == since.date() else None
        )
        await list_day(
            store, day_prefix, emit, start_after=start_after, retry=settings.source.retry
        )


async def _poll_all(
    store: ObjectStore,
    regions: list[RegionPrefix],
    ledger: Any,
    config: TailConfig,
    emit: Emit,
    settings: Settings,
    now: datetime,
    since: datetime,
    listed: dict[str, datetime],
) -> None:
    """Poll every region; ``listed`` remembers, per prefix, when it was last listed in full, so
    that a prefix with nothing settled (nothing written since ``since``) is not listed from
    ``since`` again on every poll."""
    gate = asyncio.Semaphore(settings.source.concurrency)

    async def one(r: RegionPrefix) -> None:
        async with gate:
            newest = ledger.newest_settled(store.name, r.prefix)
            fresh_since = since
            if r.prefix in listed:
                fresh_since = max(since, listed[r.prefix] - config.rewind)
            await poll_region(store, r, newest, config, emit, settings, now, fresh_since)
            listed[r.prefix] = now

    async with asyncio.TaskGroup() as tg:
        for r in regions:
            tg.create_task(one(r))


def poller(
    settings: Settings,
    store: ObjectStore,
    ledger: Any,
    config: TailConfig,
    health: Health,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Callable[[Emit], Any]:
    """The polling producer: runs until cancelled (a stop request cancels it)."""

    async def produce(emit: Emit) -> None:
        loc = settings.source.location
        prefix = loc.prefix if isinstance(loc, S3Location) else ""
        since = config.since if config.since is not None else clock() - _DEFAULT_SINCE
        resumes = ledger.newest_settled(store.name, prefix) is not None
        rewind = f"{config.rewind.total_seconds() / 60:g} min"
        _announce(
            f"reading objects from {_stamp(since)}"
            + (
                f" (where the ledger has settled files: from {rewind} before the newest)"
                if resumes
                else ""
            )
            + "; older ones: run backfill or pass --since",
            mode="poll",
            since=since.isoformat(),
            rewind_minutes=config.rewind.total_seconds() / 60,
            resumes_from_ledger=resumes,
        )
        regions: list[RegionPrefix] = []
        listed: dict[str, datetime] = {}
        discovered = float("-inf")
        while True:
            started = time.monotonic()
            try:
                if started - discovered > config.rediscover_seconds:
                    regions = await list_region_prefixes(
                        store,
                        prefix,
                        settings.filters,
                        concurrency=settings.source.concurrency,
                        retry=settings.source.retry,
                    )
                    discovered = started
                    _log.info("tail_discovered", regions=len(regions))
                await _poll_all(
                    store, regions, ledger, config, emit, settings, clock(), since, listed
                )
                health.ok("s3")
            except* Exception as group:  # a failed poll is logged and retried next interval
                _log.error("tail_poll_failed", error=str(group.exceptions[0])[:300])
            await asyncio.sleep(max(0.0, config.poll_interval - (time.monotonic() - started)))

    return produce


# -- SQS ------------------------------------------------------------------------------------


def parse_notification(body: str, bucket: str) -> list[str] | None:
    """The object keys of ``bucket`` an SQS message body names: S3 event notifications (direct or
    SNS-wrapped), EventBridge "Object Created" events, and CloudTrail's SNS delivery notices.
    ``[]`` for test events and other buckets; ``None`` when the message cannot be understood."""
    try:
        msg = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(msg, dict):
        return None
    if msg.get("Type") == "Notification" and isinstance(msg.get("Message"), str):
        return parse_notification(msg["Message"], bucket)  # SNS envelope
    if msg.get("Event") == "s3:TestEvent":
        return []
    if isinstance(msg.get("Records"), list):  # S3 event notification
        keys = []
        for rec in msg["Records"]:
            s3 = rec.get("s3") if isinstance(rec, dict) else None
            if not isinstance(s3, dict):
                return None
            if s3.get("bucket", {}).get("name") == bucket and str(
                rec.get("eventName", "")
            ).startswith("ObjectCreated"):
                keys.append(unquote_plus(s3.get("object", {}).get("key", "")))
        return keys
    if msg.get("detail-type") == "Object Created" and isinstance(msg.get("detail"), dict):
        detail = msg["detail"]
        if detail.get("bucket", {}).get("name") != bucket:
            return []
        return [str(detail.get("object", {}).get("key", ""))]
    if "s3ObjectKey" in msg and "s3Bucket" in msg:  # CloudTrail's own SNS notification
        if msg["s3Bucket"] != bucket:
            return []
        keys = msg["s3ObjectKey"]
        return [str(k) for k in keys] if isinstance(keys, list) else None
    return None


# SQS's own throttling codes (some answered 403, so the status alone would call them terminal).
_SQS_TRANSIENT = frozenset({"RequestThrottled", "KmsThrottled", "ThrottlingException"})


def _translate_sqs(exc: Exception, what: str) -> Exception:
    """botocore/aiohttp errors of an SQS call in the error tree, like S3's."""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", "")).rsplit(".", 1)[-1]
        if code in _SQS_TRANSIENT:
            return SourceUnavailable(f"{what}: {code} {exc.response['Error'].get('Message', '')}")
    return translate_source_error(exc, what)


class _Message:
    def __init__(self, receipt: str, message_id: str, keys: set[str]) -> None:
        self.receipt = receipt
        self.message_id = message_id
        self.keys = tuple(sorted(keys))
        self.waiting = keys
        self.extender: asyncio.Task[None] | None = None


def sqs_consumer(
    settings: Settings,
    store: Any,
    config: TailConfig,
    health: Health,
) -> tuple[Callable[[Emit], Any], Callable[[ObjectRef], None]]:
    """The SQS producer and the hook that deletes a message once its objects are settled."""
    loc = settings.source.location
    if not isinstance(loc, S3Location):
        raise ValueError("SQS mode needs an s3:// source")
    bucket = loc.bucket
    policy = settings.source.retry
    by_key: dict[str, list[_Message]] = {}
    done_q: asyncio.Queue[_Message] = asyncio.Queue()

    def on_settled(ref: ObjectRef) -> None:
        for message in by_key.pop(ref.key, []):
            message.waiting.discard(ref.key)
            if not message.waiting:
                done_q.put_nowait(message)

    def leave(message: _Message, reason: str) -> None:
        """Give up on a message without deleting it: it comes back after its visibility
        timeout (or goes to the queue's dead-letter queue through its redrive policy)."""
        if message.extender:
            message.extender.cancel()
        for key in message.waiting:
            waiting = by_key.get(key, [])
            if message in waiting:
                waiting.remove(message)
            if not waiting:
                by_key.pop(key, None)
        _log.error(
            "sqs_message_left",
            message_id=message.message_id,
            reason=reason[:300],
            hint="left on the queue: it comes back after its visibility timeout",
        )

    async def head(message: _Message, key: str) -> ObjectRef | None:
        """The object's listing entry; ``None`` when S3 did not answer within the deadline."""
        try:
            ref: ObjectRef = await call_with_retry(policy, partial(store.head, key))
        except SourceError as exc:  # gone (404) or unreadable (403): terminal
            _log.error(
                "sqs_object_unreadable",
                object=f"s3://{bucket}/{key}",
                message_id=message.message_id,
                error=str(exc)[:300],
                hint="dead-lettered by the fetch stage; the message is deleted once it is settled",
            )
            # The fetch stage reads it, gets the same answer, dead-letters it (stage fetch,
            # SourceError) and settles it as failed, as it does for an object that vanishes
            # between HEAD and GET; and if it is back by then, it is indexed.
            return ObjectRef(key, "", 0)
        except IngestError as exc:
            if not exc.transient:
                raise
            leave(message, str(exc))
            return None
        return ref

    async def produce(emit: Emit) -> None:
        from aiobotocore.config import AioConfig
        from aiobotocore.session import AioSession

        session = AioSession(profile=settings.source.profile)
        url = config.sqs_queue_url
        _announce(
            f"reading the objects that notifications on {url} name (those already queued "
            "too); objects written before: run backfill",
            mode="sqs",
            queue=url,
        )
        async with AsyncExitStack() as stack:
            sqs = await stack.enter_async_context(
                session.create_client(
                    "sqs",
                    endpoint_url=config.sqs_endpoint_url,
                    region_name=settings.source.region,
                    config=AioConfig(
                        retries={"total_max_attempts": 1},  # the source's policy retries
                        connect_timeout=10,
                        read_timeout=config.sqs_wait_seconds + 30,
                    ),
                )
            )

            async def call(what: str, fn: Callable[..., Awaitable[Any]], **kwargs: Any) -> Any:
                async def once() -> Any:
                    try:
                        return await fn(QueueUrl=url, **kwargs)
                    except Exception as exc:
                        err = _translate_sqs(exc, f"{what} {url}")
                        if err is exc:
                            raise
                        raise err from exc

                return await call_with_retry(policy, once)

            async def extend(message: _Message) -> None:
                while True:
                    await asyncio.sleep(config.sqs_visibility / 2)
                    try:
                        await call(
                            "change_message_visibility",
                            sqs.change_message_visibility,
                            ReceiptHandle=message.receipt,
                            VisibilityTimeout=config.sqs_visibility,
                        )
                    except Exception as exc:  # the message may come back: the ledger dedups
                        _log.warning(
                            "sqs_visibility_failed",
                            message_id=message.message_id,
                            error=str(exc)[:300],
                        )

            async def deleter() -> None:
                while True:
                    message = await done_q.get()
                    if message.extender:
                        message.extender.cancel()
                    try:
                        await call(
                            "delete_message", sqs.delete_message, ReceiptHandle=message.receipt
                        )
                    except Exception as exc:  # it comes back after its visibility timeout,
                        _log.warning(  # finds its objects settled and is deleted then
                            "sqs_delete_failed", message_id=message.message_id, error=str(exc)[:300]
                        )

            def accept(raw: dict[str, Any]) -> _Message | None:
                """The message, visibility extended, registered for its keys; ``None`` when
                there is nothing to fetch for it."""
                message_id = str(raw.get("MessageId", "?"))
                keys = parse_notification(raw.get("Body", ""), bucket)
                if keys is None:
                    _log.error(
                        "sqs_poison_message",
                        message_id=message_id,
                        hint="left on the queue for its redrive policy (dead-letter queue)",
                    )
                    return None
                wanted = {k for k in keys if parse_log_key(k) is not None}
                message = _Message(raw["ReceiptHandle"], message_id, wanted)
                if not wanted:
                    done_q.put_nowait(message)  # test events, digests, other buckets
                    return None
                message.extender = asyncio.create_task(extend(message))
                extenders.add(message.extender)
                message.extender.add_done_callback(extenders.discard)
                for key in message.keys:
                    by_key.setdefault(key, []).append(message)
                return message

            async def receive() -> list[dict[str, Any]]:
                try:
                    resp = await call(
                        "receive_message",
                        sqs.receive_message,
                        MaxNumberOfMessages=10,
                        WaitTimeSeconds=config.sqs_wait_seconds,
                        VisibilityTimeout=config.sqs_visibility,
                    )
                except IngestError as exc:
                    if not exc.transient:
                        raise  # no such queue, access denied: the tail cannot work
                    _log.error(
                        "sqs_receive_failed",
                        error=str(exc)[:300],
                        hint="still failing after the retry deadline; trying again",
                    )
                    return []
                health.ok("s3")
                return list(resp.get("Messages", ()))

            extenders: set[asyncio.Task[None]] = set()
            delete_task = asyncio.create_task(deleter())
            try:
                while True:
                    # Every message of the batch is registered (and its visibility extended)
                    # before the first HEAD, so none times out while the others are handled.
                    batch = [m for raw in await receive() if (m := accept(raw)) is not None]
                    for message in batch:
                        for key in message.keys:
                            ref = await head(message, key)
                            if ref is None:
                                break  # left on the queue
                            await emit(ref)
            finally:
                delete_task.cancel()
                for task in list(extenders):
                    task.cancel()

    return produce, on_settled
