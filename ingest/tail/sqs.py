"""SQS: S3 event notifications (direct, SNS-wrapped, EventBridge, or CloudTrail's own SNS
delivery notice) name the objects; a message is deleted only once every object it names is
settled, in batches of ten.

``ct-ingest enqueue`` writes the same S3 event shape (:func:`notification_bodies`, many keys a
message), marked with its own ``configurationId`` and carrying each object's size and ETag, so
a worker takes them as listed and sends no HEAD. When the run ends (a stop signal, or
``--exit-when-idle``), the consumer deletes what is settled and hands what it still holds back
to the queue at once (visibility 0), for another worker; after a ``kill -9`` its messages come
back after their visibility timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import quote_plus, unquote_plus

import orjson
import structlog

from ingest.config import S3Location, Settings
from ingest.errors import ConfigError, IngestError, SourceError
from ingest.layout import parse_log_key
from ingest.listing import Emit
from ingest.queue import BATCH_BYTES, BATCH_ENTRIES, SqsQueue
from ingest.source import ObjectRef
from ingest.tail.config import Health, TailConfig, announce

__all__ = ["ENQUEUED", "SqsConsumer", "notification_bodies", "parse_notification"]

_log = structlog.get_logger("ingest.tail")

ENQUEUED = "ct-ingest-enqueue"  # the configurationId of the messages `enqueue` writes
# A message's body stays under a tenth of the batch limit, so ten always fit one batch call.
MESSAGE_BYTES = BATCH_BYTES // BATCH_ENTRIES - 1024


def _records(body: str, bucket: str) -> tuple[list[str], dict[str, ObjectRef]] | None:
    """The keys of ``bucket`` a body names, and the listing entries of those `enqueue` wrote;
    ``None`` when the body cannot be understood."""
    try:
        msg = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(msg, dict):
        return None
    if msg.get("Type") == "Notification" and isinstance(msg.get("Message"), str):
        return _records(msg["Message"], bucket)  # SNS envelope
    if msg.get("Event") == "s3:TestEvent":
        return [], {}
    if isinstance(msg.get("Records"), list):  # S3 event notification
        keys, known = [], {}
        for rec in msg["Records"]:
            s3 = rec.get("s3") if isinstance(rec, dict) else None
            if not isinstance(s3, dict):
                return None
            if s3.get("bucket", {}).get("name") == bucket and str(
                rec.get("eventName", "")
            ).startswith("ObjectCreated"):
                obj = s3.get("object", {})
                key = unquote_plus(obj.get("key", ""))
                keys.append(key)
                if s3.get("configurationId") == ENQUEUED and isinstance(obj.get("size"), int):
                    known[key] = ObjectRef(key, str(obj.get("eTag", "")), obj["size"])
        return keys, known
    if msg.get("detail-type") == "Object Created" and isinstance(msg.get("detail"), dict):
        detail = msg["detail"]
        if detail.get("bucket", {}).get("name") != bucket:
            return [], {}
        return [str(detail.get("object", {}).get("key", ""))], {}
    if "s3ObjectKey" in msg and "s3Bucket" in msg:  # CloudTrail's own SNS notification
        if msg["s3Bucket"] != bucket:
            return [], {}
        keys = msg["s3ObjectKey"]
        return ([str(k) for k in keys], {}) if isinstance(keys, list) else None
    return None


def parse_notification(body: str, bucket: str) -> list[str] | None:
    """The object keys of ``bucket`` an SQS message body names: S3 event notifications (direct or
    SNS-wrapped), EventBridge "Object Created" events, and CloudTrail's SNS delivery notices.
    ``[]`` for test events and other buckets; ``None`` when the message cannot be understood."""
    found = _records(body, bucket)
    return None if found is None else found[0]


def _record(bucket: str, ref: ObjectRef) -> bytes:
    return orjson.dumps(
        {
            "eventSource": "aws:s3",
            "eventName": "ObjectCreated:Put",
            "s3": {
                "configurationId": ENQUEUED,
                "bucket": {"name": bucket},
                "object": {
                    "key": quote_plus(ref.key, safe="/"),
                    "size": ref.size,
                    "eTag": ref.etag,
                },
            },
        }
    )


def notification_bodies(
    bucket: str, refs: Iterable[ObjectRef], *, per_message: int = 100
) -> Iterator[tuple[bytes, list[ObjectRef]]]:
    """S3 event notification bodies naming ``refs`` (at most ``per_message`` a body, and under
    :data:`MESSAGE_BYTES`, so ten fit in one ``send_message_batch``), each with its objects."""
    records: list[bytes] = []
    names: list[ObjectRef] = []
    size = 0
    for ref in refs:
        rec = _record(bucket, ref)
        if records and (len(records) >= per_message or size + len(rec) + 16 > MESSAGE_BYTES):
            yield b'{"Records":[' + b",".join(records) + b"]}", names
            records, names, size = [], [], 0
        records.append(rec)
        names.append(ref)
        size += len(rec) + 1
    if records:
        yield b'{"Records":[' + b",".join(records) + b"]}", names


class _Message:
    def __init__(self, receipt: str, message_id: str, keys: set[str]) -> None:
        self.receipt = receipt
        self.message_id = message_id
        self.keys = tuple(sorted(keys))
        self.waiting = keys
        self.settled = False  # every object it names is settled: delete it
        self.extender: asyncio.Task[None] | None = None


class SqsConsumer:
    """The SQS producer of a run (:meth:`produce`), the hook that deletes a message once its
    objects are settled (:meth:`on_settled`), and the end of the run (:meth:`aclose`): delete
    what is settled, hand back what is not."""

    def __init__(
        self,
        settings: Settings,
        store: Any,
        config: TailConfig,
        health: Health,
        queue: SqsQueue,
    ) -> None:
        loc = settings.source.location
        if not isinstance(loc, S3Location) or not config.sqs_queue_url:
            raise ConfigError("SQS mode needs an s3:// source and --sqs-queue-url")
        self._bucket = loc.bucket
        self._store, self._config, self._health, self._queue = store, config, health, queue
        self._by_key: dict[str, list[_Message]] = {}
        self._held: dict[str, _Message] = {}  # by receipt: received, not yet deleted
        self._done_q: asyncio.Queue[_Message] = asyncio.Queue()
        self._deleter: asyncio.Task[None] | None = None
        self.deleted = self.released = 0

    # -- settling -------------------------------------------------------------------------------
    def on_settled(self, ref: ObjectRef) -> None:
        for message in self._by_key.pop(ref.key, []):
            message.waiting.discard(ref.key)
            if not message.waiting:
                self._done(message)

    def _done(self, message: _Message) -> None:
        if message.extender:
            message.extender.cancel()
        message.settled = True
        self._done_q.put_nowait(message)

    async def _delete_some(self) -> None:
        """Delete the next up to ten settled messages in one call."""
        batch = [await self._done_q.get()]
        while len(batch) < BATCH_ENTRIES and not self._done_q.empty():
            batch.append(self._done_q.get_nowait())
        await self._delete(batch)

    async def _delete(self, batch: list[_Message]) -> None:
        try:
            failed = set(await self._queue.delete([m.receipt for m in batch]))
        except IngestError as exc:  # they come back after their visibility timeout, find
            failed = {m.receipt for m in batch}  # their objects settled and are deleted then
            _log.warning("sqs_delete_failed", messages=len(batch), error=str(exc)[:300])
        else:
            if failed:  # the same: they come back
                _log.warning("sqs_delete_refused", messages=len(failed))
        for m in batch:
            self._held.pop(m.receipt, None)
        self.deleted += len(batch) - len(failed)

    async def _delete_forever(self) -> None:
        while True:
            await self._delete_some()

    def _leave(self, message: _Message, reason: str) -> None:
        """Give up on a message without deleting it: it comes back after its visibility
        timeout (or goes to the queue's dead-letter queue through its redrive policy)."""
        if message.extender:
            message.extender.cancel()
        self._held.pop(message.receipt, None)
        for key in message.waiting:
            waiting = self._by_key.get(key, [])
            if message in waiting:
                waiting.remove(message)
            if not waiting:
                self._by_key.pop(key, None)
        _log.error(
            "sqs_message_left",
            message_id=message.message_id,
            reason=reason[:300],
            hint="left on the queue: it comes back after its visibility timeout",
        )

    async def aclose(self) -> None:
        """The run is over: delete the settled messages, release the others (visibility 0) so
        another worker takes them now rather than after their visibility timeout."""
        if self._deleter is not None:  # a batch it was deleting is still held: done below
            self._deleter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._deleter
        for m in self._held.values():
            if m.extender:
                m.extender.cancel()
        settled = [m for m in self._held.values() if m.settled]
        for start in range(0, len(settled), BATCH_ENTRIES):
            await self._delete(settled[start : start + BATCH_ENTRIES])
        held = list(self._held.values())
        if held:
            try:
                refused = await self._queue.release([m.receipt for m in held])
                self.released = len(held) - len(refused)
            except IngestError as exc:
                _log.warning("sqs_release_failed", messages=len(held), error=str(exc)[:300])
        _log.info("sqs_closed", deleted=self.deleted, released=self.released)

    # -- receiving ------------------------------------------------------------------------------
    async def _extend(self, message: _Message) -> None:
        while True:
            await asyncio.sleep(self._config.sqs_visibility / 2)
            try:
                await self._queue.extend(message.receipt, self._config.sqs_visibility)
            except IngestError as exc:  # the message may come back: the ledger dedups
                _log.warning(
                    "sqs_visibility_failed", message_id=message.message_id, error=str(exc)[:300]
                )

    def _accept(self, raw: dict[str, Any]) -> tuple[_Message, dict[str, ObjectRef]] | None:
        """The message, visibility extended, registered for its keys, with the listing entries
        it carries; ``None`` when there is nothing to fetch for it."""
        message_id = str(raw.get("MessageId", "?"))
        found = _records(raw.get("Body", ""), self._bucket)
        if found is None:
            _log.error(
                "sqs_poison_message",
                message_id=message_id,
                hint="left on the queue for its redrive policy (dead-letter queue)",
            )
            return None
        keys, known = found
        wanted = {k for k in keys if parse_log_key(k) is not None}
        message = _Message(raw["ReceiptHandle"], message_id, wanted)
        self._held[message.receipt] = message
        if not wanted:
            self._done(message)  # test events, digests, other buckets
            return None
        message.extender = asyncio.create_task(self._extend(message))
        for key in message.keys:
            self._by_key.setdefault(key, []).append(message)
        return message, known

    async def _head(self, message: _Message, key: str) -> ObjectRef | None:
        """The object's listing entry; ``None`` when S3 did not answer within the deadline (the
        store retries its own calls)."""
        try:
            ref: ObjectRef = await self._store.head(key)
        except SourceError as exc:  # gone (404) or unreadable (403): terminal
            _log.error(
                "sqs_object_unreadable",
                object=f"s3://{self._bucket}/{key}",
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
            self._leave(message, str(exc))
            return None
        return ref

    async def _receive(self) -> list[dict[str, Any]]:
        config = self._config
        try:
            messages = await self._queue.receive(config.sqs_wait_seconds, config.sqs_visibility)
        except IngestError as exc:
            if not exc.transient:
                raise  # no such queue, access denied: the tail cannot work
            _log.error(
                "sqs_receive_failed",
                error=str(exc)[:300],
                hint="still failing after the retry deadline; trying again",
            )
            return []
        self._health.ok("s3")
        return messages

    async def _idle(self, since: float | None) -> float | None:
        """When the queue was first seen empty in this idle spell (nothing held here, nothing
        waiting or in flight anywhere), or ``None``."""
        if self._held:
            return None
        try:
            depth = await self._queue.depth()
        except IngestError:
            return None
        if not depth.empty:
            return None
        return since if since is not None else time.monotonic()

    async def produce(self, emit: Emit) -> None:
        """Receive until stopped, or until the queue has stayed empty ``exit_when_idle``
        seconds."""
        config = self._config
        announce(
            f"reading the objects that notifications on {config.sqs_queue_url} name (those "
            "already queued too); objects written before: run backfill",
            mode="sqs",
            queue=config.sqs_queue_url,
            exit_when_idle=config.exit_when_idle,
        )
        if self._deleter is None:
            self._deleter = asyncio.create_task(self._delete_forever())
        idle_since: float | None = None
        while True:
            # Every message of the batch is registered (and its visibility extended) before
            # the first HEAD, so none times out while the others are handled.
            received = await self._receive()
            batch = [m for raw in received if (m := self._accept(raw)) is not None]
            for message, known in batch:
                for key in message.keys:
                    ref = known.get(key) or await self._head(message, key)
                    if ref is None:
                        break  # left on the queue
                    await emit(ref)
            if config.exit_when_idle is None or received:
                idle_since = None
                continue
            idle_since = await self._idle(idle_since)
            if idle_since is not None and time.monotonic() - idle_since >= config.exit_when_idle:
                _log.info("sqs_idle_exit", idle_seconds=config.exit_when_idle)
                return
