"""SQS: S3 event notifications (direct, SNS-wrapped, EventBridge, or CloudTrail's own SNS
delivery notice) name the objects; a message is deleted only once every object it names is
settled."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any
from urllib.parse import unquote_plus

import orjson
import structlog

from ingest.config import S3Location, Settings
from ingest.errors import ConfigError, IngestError, SourceError
from ingest.layout import parse_log_key
from ingest.listing import Emit
from ingest.retry import RetryPolicy, call_with_retry
from ingest.source import ObjectRef, sqs_errors
from ingest.tail.config import Health, TailConfig, announce

__all__ = ["parse_notification", "sqs_consumer"]

_log = structlog.get_logger("ingest.tail")


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


class _Queue:
    """One SQS queue through an aiobotocore client: every call goes through the SQS boundary
    (:func:`~ingest.source.sqs_errors`) and is retried under the source's policy."""

    def __init__(self, client: Any, url: str, retry: RetryPolicy) -> None:
        self._client = client
        self.url = url
        self._retry = retry

    async def _call(self, what: str, fn: Callable[..., Awaitable[Any]], **kwargs: Any) -> Any:
        async def once() -> Any:
            with sqs_errors(f"{what} {self.url}"):
                return await fn(QueueUrl=self.url, **kwargs)

        return await call_with_retry(self._retry, once)

    async def receive(self, wait_seconds: int, visibility: int) -> list[dict[str, Any]]:
        resp = await self._call(
            "receive_message",
            self._client.receive_message,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=wait_seconds,
            VisibilityTimeout=visibility,
        )
        return list(resp.get("Messages", ()))

    async def extend(self, receipt: str, visibility: int) -> None:
        await self._call(
            "change_message_visibility",
            self._client.change_message_visibility,
            ReceiptHandle=receipt,
            VisibilityTimeout=visibility,
        )

    async def delete(self, receipt: str) -> None:
        await self._call("delete_message", self._client.delete_message, ReceiptHandle=receipt)


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
    loc, url = settings.source.location, config.sqs_queue_url
    if not isinstance(loc, S3Location) or not url:
        raise ConfigError("SQS mode needs an s3:// source and --sqs-queue-url")
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
        """The object's listing entry; ``None`` when S3 did not answer within the deadline (the
        store retries its own calls)."""
        try:
            ref: ObjectRef = await store.head(key)
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
        announce(
            f"reading the objects that notifications on {url} name (those already queued "
            "too); objects written before: run backfill",
            mode="sqs",
            queue=url,
        )
        async with AsyncExitStack() as stack:
            with sqs_errors(f"open an SQS client for {url}"):
                client = await stack.enter_async_context(
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
            queue = _Queue(client, url, policy)

            async def extend(message: _Message) -> None:
                while True:
                    await asyncio.sleep(config.sqs_visibility / 2)
                    try:
                        await queue.extend(message.receipt, config.sqs_visibility)
                    except IngestError as exc:  # the message may come back: the ledger dedups
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
                        await queue.delete(message.receipt)
                    except IngestError as exc:  # it comes back after its visibility timeout,
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
                    messages = await queue.receive(config.sqs_wait_seconds, config.sqs_visibility)
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
                return messages

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
