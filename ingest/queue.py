"""SQS: one queue through one aiobotocore client, for the fleet's producer (``enqueue``), its
workers (``tail --sqs-queue-url``) and ``status``.

Every call goes through the SQS boundary (:func:`~ingest.source.sqs_errors`) and is retried
under the source's policy (``ingest.retry``), so what a method raises is terminal, or transient
past the deadline. Batch calls (``send_message_batch``, ``delete_message_batch``) retry the
call as a whole; the entries SQS refuses inside a successful answer are returned, not raised.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession

from ingest.retry import RetryPolicy, call_with_retry
from ingest.source import sqs_errors

__all__ = ["BATCH_BYTES", "BATCH_ENTRIES", "QueueDepth", "SqsQueue", "open_queue"]

BATCH_ENTRIES = 10  # SQS: at most 10 entries per batch call
BATCH_BYTES = 256 * 1024  # SQS: 256 KiB per message and per batch of messages


@dataclass(frozen=True, slots=True)
class QueueDepth:
    """A queue's approximate counts (SQS updates them within about a minute)."""

    waiting: int  # ApproximateNumberOfMessages
    in_flight: int  # ApproximateNumberOfMessagesNotVisible: received, not yet deleted
    delayed: int  # ApproximateNumberOfMessagesDelayed

    @property
    def empty(self) -> bool:
        return not (self.waiting or self.in_flight or self.delayed)


class SqsQueue:
    """One SQS queue: receive, extend or release visibility, delete and send in batches, read
    its depth and its redrive policy's dead-letter queue."""

    def __init__(self, client: Any, url: str, retry: RetryPolicy) -> None:
        self._client = client
        self.url = url
        self._retry = retry

    async def _call(
        self, what: str, fn: Callable[..., Awaitable[Any]], where: str = "", **kwargs: Any
    ) -> Any:
        """``fn(**kwargs)`` through the boundary, retried; on this queue unless ``where``
        names what the call is about (and ``kwargs`` say it)."""
        if not where:
            kwargs["QueueUrl"] = where = self.url

        async def once() -> Any:
            with sqs_errors(f"{what} {where}"):
                return await fn(**kwargs)

        return await call_with_retry(self._retry, once)

    async def receive(self, wait_seconds: int, visibility: int) -> list[dict[str, Any]]:
        resp = await self._call(
            "receive_message",
            self._client.receive_message,
            MaxNumberOfMessages=BATCH_ENTRIES,
            WaitTimeSeconds=wait_seconds,
            VisibilityTimeout=visibility,
        )
        return list(resp.get("Messages", ()))

    async def extend(self, receipt: str, visibility: int) -> None:
        """Keep a message hidden ``visibility`` more seconds; 0 hands it back at once."""
        await self._call(
            "change_message_visibility",
            self._client.change_message_visibility,
            ReceiptHandle=receipt,
            VisibilityTimeout=visibility,
        )

    async def release(self, receipts: Sequence[str]) -> list[str]:
        """Hand messages back to the queue at once (visibility 0), in batches of ten; the
        receipts SQS refused."""
        failed: list[str] = []
        for start in range(0, len(receipts), BATCH_ENTRIES):
            chunk = receipts[start : start + BATCH_ENTRIES]
            resp = await self._call(
                "change_message_visibility_batch",
                self._client.change_message_visibility_batch,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": r, "VisibilityTimeout": 0}
                    for i, r in enumerate(chunk)
                ],
            )
            failed += [chunk[int(f["Id"])] for f in resp.get("Failed", ())]
        return failed

    async def delete(self, receipts: Sequence[str]) -> list[str]:
        """Delete up to ten messages in one call; the receipts SQS refused."""
        resp = await self._call(
            "delete_message_batch",
            self._client.delete_message_batch,
            Entries=[{"Id": str(i), "ReceiptHandle": r} for i, r in enumerate(receipts)],
        )
        return [receipts[int(f["Id"])] for f in resp.get("Failed", ())]

    async def send(self, bodies: Sequence[bytes]) -> list[int]:
        """Send up to ten bodies (at most :data:`BATCH_BYTES` together) in one call; the
        indices of the bodies SQS refused."""
        resp = await self._call(
            "send_message_batch",
            self._client.send_message_batch,
            Entries=[{"Id": str(i), "MessageBody": b.decode()} for i, b in enumerate(bodies)],
        )
        return [int(f["Id"]) for f in resp.get("Failed", ())]

    async def depth(self) -> QueueDepth:
        attrs = await self._attributes(self.url)
        return QueueDepth(
            waiting=int(attrs.get("ApproximateNumberOfMessages", 0)),
            in_flight=int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
            delayed=int(attrs.get("ApproximateNumberOfMessagesDelayed", 0)),
        )

    async def dead_letter(self) -> SqsQueue | None:
        """The queue the redrive policy moves messages to after ``maxReceiveCount`` receives;
        ``None`` without a redrive policy."""
        policy = (await self._attributes(self.url)).get("RedrivePolicy")
        if not policy:
            return None
        arn = str(orjson.loads(policy).get("deadLetterTargetArn", ""))
        parts = arn.split(":")  # arn:aws:sqs:REGION:ACCOUNT:NAME
        if len(parts) != 6:
            return None
        resp = await self._call(
            "get_queue_url",
            self._client.get_queue_url,
            arn,
            QueueName=parts[5],
            QueueOwnerAWSAccountId=parts[4],
        )
        return SqsQueue(self._client, str(resp["QueueUrl"]), self._retry)

    async def _attributes(self, url: str) -> dict[str, str]:
        resp = await self._call(
            "get_queue_attributes",
            self._client.get_queue_attributes,
            url,
            QueueUrl=url,
            AttributeNames=["All"],
        )
        return dict(resp.get("Attributes", {}))


@asynccontextmanager
async def open_queue(
    url: str,
    *,
    retry: RetryPolicy,
    endpoint_url: str | None = None,
    region: str | None = None,
    profile: str | None = None,
    read_timeout: float = 60,
) -> AsyncIterator[SqsQueue]:
    """A client for the queue at ``url``, closed on exit (``read_timeout`` above the longest
    long-poll wait)."""
    session = AioSession(profile=profile)
    with sqs_errors(f"open an SQS client for {url}"):
        creating = session.create_client(
            "sqs",
            endpoint_url=endpoint_url,
            region_name=region,
            config=AioConfig(
                retries={"total_max_attempts": 1},  # the source's policy retries
                connect_timeout=10,
                read_timeout=read_timeout,
                max_pool_connections=32,
            ),
        )
        client = await creating.__aenter__()
    try:
        yield SqsQueue(client, url, retry)
    finally:
        await creating.__aexit__(None, None, None)
