"""The bulk sink: documents in, bulk ``create`` requests out, every document settled exactly once.

Documents are grouped into bodies of the controller's size (starting at ``bulk_bytes``, never
above ``max_bulk_bytes``), across as many objects as it takes, and sent with up to
``max_in_flight`` requests at a time. A body that is not full goes once no document has come
for ``linger_seconds`` (the upstream is idle: a lone object in a tail is indexed after the
linger), once its first document has waited ten lingers (a trickle), or at
:meth:`BulkSink.drain`; while every request slot is busy it keeps filling. Each document's fate
goes back to its :class:`Owner` (the object it came from):

- created (201), or already there (409 on ``create``: a replay never overwrites) → indexed;
- 429 or 5xx for the item → sent again, alone with the other failed items, after a back-off
  during which the request slot is free for other batches; still answered so at the deadline →
  dead-lettered ("RetriesExhausted");
- any other item error (mapping conflicts and the like) → dead-lettered with its reason;
- a document larger than the cap → dead-lettered at once, never into a 413 loop; a 413 for a
  whole body splits it in two.

Whole-request failures (connection errors, timeouts, 429, 502/503/504) are retried; when the
deadline passes, :class:`~ingest.errors.SinkUnavailable` propagates and the run aborts with
nothing acknowledged that was not indexed.

On a target that takes no custom ``_id`` (a Serverless TIMESERIES collection, known from
the start or from its refusal of the first ``_id``: :class:`OpenSearchBulkClient`), the same
documents are sent without ``_id``: exactly once then rests on the checkpoint alone, and a
request applied but unanswered (:func:`unanswered`: a timeout, a dropped connection, a 504)
that is sent again can duplicate its documents; they are counted (``resent_unanswered``).

Sizes are the bodies' own bytes, before any ``--gzip``: the controller sizes bodies, and a 413
splits them, by what the cluster indexes. With ``--gzip`` the client's connection gzips each body
off the event loop (:mod:`ingest.cluster`) and the request-size cap of the service (Amazon
OpenSearch Service: 10 or 100 MiB by instance type) meets only the bytes on the wire, about an
eighth; a body sent again goes with the bytes gzipped for its first attempt.

All of a batch's waiting (its request retries, its item retries, both halves of every 413
split) is under one :class:`~ingest.retry.Deadline`, created when the batch is sent, and every
retry goes through the one policy (``ingest.retry``): ``--retry-deadline`` bounds the sink. A
document is settled exactly once: an item is sent again only if its last answer was 429/5xx.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import orjson
import structlog

from ingest.adaptive import BulkController, ControllerConfig
from ingest.config import SinkConfig
from ingest.decode import Document
from ingest.errors import SinkError, SinkUnavailable
from ingest.retry import Deadline, call_with_retry, retrying
from ingest.targets import Collection, Kind, Target, refuses_ids

__all__ = [
    "BulkClient",
    "BulkSink",
    "OpenSearchBulkClient",
    "Outcome",
    "Owner",
    "SinkStats",
    "TooLarge",
    "unanswered",
]

_log = structlog.get_logger("ingest.sink")
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)  # seconds
_RETRY_ITEM = frozenset({429, 500, 502, 503, 504})
_MAX_LINGERS = 10  # a body still filling goes once its first document has waited this many


class TooLarge(SinkError):
    """The server refused the body as too large (413)."""


class _PushedBack(SinkUnavailable):
    """Items of a batch were answered 429/5xx: the batch's controller sends them again. Never
    leaves the sink."""

    def __init__(self, count: int) -> None:
        super().__init__(f"{count} items answered 429/5xx")


def _pushed_back(exc: BaseException) -> bool:
    return isinstance(exc, _PushedBack)


class BulkClient(Protocol):
    """The one I/O call the sink needs: send an NDJSON body, get the parsed ``_bulk`` answer.

    Raises :class:`SinkUnavailable` for transient failures, :class:`TooLarge` for 413 and
    :class:`SinkError` for any other refusal of the request as a whole.
    """

    async def bulk(self, body: bytes) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...


class Outcome(NamedTuple):
    """What happened to one document."""

    indexed: bool
    existed: bool = False
    error_type: str | None = None
    reason: str | None = None


_CREATED = Outcome(True)


class Owner(Protocol):
    """Whoever wants to know each document's fate (the object it came from)."""

    def settle(self, doc: Document, outcome: Outcome) -> None: ...


class _Run(NamedTuple):
    """Documents of one owner, in order, side by side in a body: one entry per object put (or
    per part of it in each body), one per document only on the paths that settle items apart
    (a mixed answer, its retries, a 413's halves)."""

    owner: Owner
    docs: Sequence[Document]


def _singles(batch: Sequence[_Run]) -> list[_Run]:
    return [_Run(run.owner, (doc,)) for run in batch for doc in run.docs]


def _count(batch: Sequence[_Run]) -> int:
    return sum(len(run.docs) for run in batch)


@dataclass(slots=True)
class SinkStats:
    requests: int = 0
    bytes_sent: int = 0
    created: int = 0
    existed: int = 0
    rejected: int = 0
    item_retries: int = 0
    splits: int = 0
    pushbacks: int = 0
    resent_unanswered: int = 0  # documents sent again after an unanswered request
    bodies: Counter[str] = field(default_factory=Counter)  # why each left: full, linger, drain
    latency_max: float = 0.0
    latency_sum: float = 0.0
    requests_timed: int = 0
    latency_buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))
    controller: BulkController | None = None


class BulkSink:
    """Batches documents by bytes and sends them inside ``tg``, as many at a time as the
    :class:`~ingest.adaptive.BulkController` allows."""

    def __init__(
        self,
        client: BulkClient,
        config: SinkConfig,
        tg: asyncio.TaskGroup,
        controller: BulkController | None = None,
    ) -> None:
        self._client = client
        self._config = config
        self._tg = tg
        self.controller = controller or BulkController(
            ControllerConfig(
                start_bytes=config.bulk_bytes,
                max_bytes=config.max_bulk_bytes,
                max_in_flight=config.max_in_flight,
                target_seconds=config.target_seconds,
                step_bytes=max(64 * 1024, config.bulk_bytes // 4),
            )
        )
        self._buffer: list[_Run] = []
        self._buffered = 0
        self._linger: asyncio.Task[None] | None = None  # sends a partial body when it is due
        self._last_put = 0.0
        self._in_flight = 0  # request slots held
        self._active = 0  # batches not yet settled (sending, or waiting to retry items)
        self._freed = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self.stats = SinkStats(controller=self.controller)

    async def put(self, doc: Document, owner: Owner) -> None:
        """Queue one document; may wait while the allowed number of requests are under way."""
        await self.put_many((doc,), owner)

    async def put_many(self, docs: Sequence[Document], owner: Owner) -> None:
        """Queue an object's documents (or a batch of them), in order, all owned by ``owner``:
        :meth:`put` for each, in one call that waits only when a body is full."""
        cap = self._config.max_bulk_bytes
        start = 0  # docs[start:i] are counted in the body filling, not yet in its buffer
        for i, doc in enumerate(docs):
            size = len(doc.ndjson)
            if size > cap:
                self._add(owner, docs[start:i])
                start = i + 1
                self._reject(
                    owner,
                    doc,
                    "TooLarge",
                    f"document of {size} bytes exceeds the bulk cap of {cap} bytes",
                )
                continue
            if (self._buffer or i > start) and self._buffered + size > self.controller.bytes:
                self._add(owner, docs[start:i])
                start = i
                await self.flush("full")
            self._buffered += size
        self._add(owner, docs[start:])
        self._last_put = time.monotonic()
        if self._linger is None and self._buffer:
            self._linger = self._tg.create_task(self._send_when_due(), name="bulk-linger")

    def _add(self, owner: Owner, docs: Sequence[Document]) -> None:
        if docs:
            self._buffer.append(_Run(owner, docs))

    async def _send_when_due(self) -> None:
        """The linger of the body filling: cancelled when the body is sent another way."""
        linger = self._config.linger_seconds
        latest = time.monotonic() + _MAX_LINGERS * linger
        while True:  # each document put meanwhile moves the deadline, up to the latest
            due = min(self._last_put + linger, latest)
            if (wait := due - time.monotonic()) <= 0:
                break
            await asyncio.sleep(wait)
            if time.monotonic() - due > linger / 2:  # the loop was held up (a slow put, say),
                self._last_put = time.monotonic()  # not the upstream idle: look again
        await self.flush("linger")

    async def flush(self, why: str = "drain") -> None:
        """Send what is buffered, once a request slot is free (documents put while it waits for
        one go with it)."""
        if not self._buffer or not await self._acquire(self._buffer):
            return  # nothing to send, or sent by another flush while this one waited
        _log.debug("bulk_body", why=why, bytes=self._buffered, target=self.controller.bytes)
        batch, self._buffer, self._buffered = self._buffer, [], 0
        self.stats.bodies[why] += 1
        if self._linger is not None and self._linger is not asyncio.current_task():
            self._linger.cancel()  # its documents are in this batch
        self._linger = None
        self._active += 1
        self._idle.clear()
        self._tg.create_task(self._run(batch))

    async def drain(self) -> None:
        """Flush and wait until every document sent so far is settled."""
        await self.flush()
        await self._idle.wait()

    async def _acquire(self, buffer: list[_Run] | None = None) -> bool:
        """Take a request slot; for ``buffer``, only while it is still the one filling."""
        while self._in_flight >= self.controller.in_flight:
            self._freed.clear()
            await self._freed.wait()
            if buffer is not None and buffer is not self._buffer:
                return False
        self._in_flight += 1
        return True

    def _release(self) -> None:
        self._in_flight -= 1
        self._freed.set()

    async def _run(self, batch: list[_Run]) -> None:
        """Send ``batch`` under one deadline; items answered 429/5xx go again after a back-off,
        during which the request slot is free for other batches."""
        holding = True  # flush() acquired our slot
        policy = self._config.retry
        deadline = policy.start()
        started = asyncio.get_running_loop().time()
        pending: list[_Run] = batch
        rounds = 0

        async def back_off(seconds: float) -> None:  # logged by the controller ("retrying")
            nonlocal holding
            self.stats.item_retries += _count(pending)
            self._release()
            holding = False
            await asyncio.sleep(seconds)
            await self._acquire()
            holding = True

        try:
            async for attempt in retrying(
                policy, deadline=deadline, sleep=back_off, retry_on=_pushed_back
            ):
                with attempt:
                    rounds += 1
                    pending = await self._send(pending, deadline)
                    if pending:
                        raise _PushedBack(_count(pending))
        except _PushedBack:
            waited = asyncio.get_running_loop().time() - started
            for item in _singles(pending):
                self._reject(
                    item.owner,
                    item.docs[0],
                    "RetriesExhausted",
                    f"still answered 429/5xx after {rounds} attempts in {waited:.0f} s",
                )
        finally:  # no awaits here: this also runs while the task group cancels us
            if holding:
                self._release()
            self._active -= 1
            if self._active == 0:
                self._idle.set()

    async def _send(self, batch: Sequence[_Run], deadline: Deadline) -> list[_Run]:
        """Send ``batch`` as one body (both halves of it after a 413), its request retried
        until ``deadline``; settle what is final and return the items answered 429/5xx."""
        body = b"".join(doc.ndjson for run in batch for doc in run.docs)
        count = _count(batch)
        resend_risk = False  # an earlier attempt may have been applied, unanswered

        async def attempt() -> dict[str, Any]:
            nonlocal resend_risk
            if resend_risk:  # each time: every resend of an applied request is one more copy
                self.stats.resent_unanswered += count
            try:
                return await self._attempt(body)
            except SinkUnavailable as exc:
                resend_risk = resend_risk or unanswered(exc)
                raise

        try:
            answer = await call_with_retry(self._config.retry, attempt, deadline=deadline)
        except TooLarge:
            if count == 1:
                self._reject(
                    batch[0].owner,
                    batch[0].docs[0],
                    "TooLarge",
                    f"server answered 413 for a {len(body)}-byte body",
                )
                return []
            self.stats.splits += 1
            batch = _singles(batch)
            half = len(batch) // 2
            first = await self._send(batch[:half], deadline)
            return first + await self._send(batch[half:], deadline)
        _log.debug("bulk_sent", docs=count, bytes=len(body))
        retry = self._settle(batch, answer)
        if retry:
            self.controller.on_pushback(f"{len(retry)} items answered 429/5xx")
        return retry

    async def _attempt(self, body: bytes) -> dict[str, Any]:
        """One request, timed and reported to the controller."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            answer = await self._client.bulk(body)
        except SinkUnavailable as exc:
            self.stats.pushbacks += 1
            self.controller.on_pushback(str(exc))
            raise
        except TooLarge:
            self.controller.on_too_large(len(body))
            raise
        finally:
            elapsed = loop.time() - started
            self.stats.latency_max = max(self.stats.latency_max, elapsed)
            self.stats.latencies.append(elapsed)
            self.stats.latency_sum += elapsed
            self.stats.requests_timed += 1
            for i, bound in enumerate(LATENCY_BUCKETS):
                if elapsed <= bound:
                    self.stats.latency_buckets[i] += 1
        self.stats.requests += 1
        self.stats.bytes_sent += len(body)
        self.controller.on_success(len(body), elapsed)
        return answer

    def _settle(self, batch: Sequence[_Run], answer: dict[str, Any]) -> list[_Run]:
        items = answer.get("items")
        count = _count(batch)
        if not isinstance(items, list) or len(items) != count:
            got = len(items) if isinstance(items, list) else "no"
            raise SinkError(f"bulk answer has {got} items for {count} documents")
        if answer.get("errors") is False:  # every item created (a 409 counts as an error)
            self.stats.created += count
            for owner, docs in batch:
                settle = owner.settle
                for doc in docs:
                    settle(doc, _CREATED)
            return []
        retry: list[_Run] = []
        for item, result in zip(_singles(batch), items, strict=True):
            info = next(iter(result.values())) if isinstance(result, dict) and result else {}
            status = int(info.get("status", 0))
            if status in (200, 201):
                self.stats.created += 1
                item.owner.settle(item.docs[0], Outcome(True))
            elif status == 409:
                self.stats.existed += 1
                item.owner.settle(item.docs[0], Outcome(True, existed=True))
            elif status in _RETRY_ITEM:
                retry.append(item)
            else:
                error = info.get("error") or {}
                if isinstance(error, dict):
                    etype, reason = (
                        str(error.get("type", f"http_{status}")),
                        str(error.get("reason", "")),
                    )
                    cause = error.get("caused_by")
                    if isinstance(cause, dict) and cause.get("reason"):
                        reason = f"{reason}: {cause.get('type')}: {cause['reason']}"
                else:
                    etype, reason = f"http_{status}", str(error)
                self._reject(item.owner, item.docs[0], etype, reason)
        return retry

    def _reject(self, owner: Owner, doc: Document, error_type: str, reason: str) -> None:
        self.stats.rejected += 1
        owner.settle(doc, Outcome(False, error_type=error_type, reason=reason))


class OpenSearchBulkClient:
    """:class:`BulkClient` over opensearch-py's async client, writing the way ``target`` takes
    documents: with ``_id`` (``create``, idempotent), or without on a TIMESERIES collection.
    Where a write's ``_id`` is refused as a TIMESERIES collection refuses it, the target is
    marked so (logged once) and the refused items are sent again at once without ``_id``."""

    def __init__(self, client: Any, target: Target | None = None) -> None:
        self._client = client
        self.target = target or Target()

    async def bulk(self, body: bytes) -> dict[str, Any]:
        """One ``_bulk`` request (two when the first tells the collection takes no ``_id``)."""
        ids = self.target.custom_ids
        answer = await self._request(body if ids else _without_ids(body))
        items = answer.get("items")
        if not ids or not isinstance(items, list):
            return answer
        no_errors = answer.get("errors") is False  # then no item was refused: skip the walk
        refused = (
            [] if no_errors else [i for i, it in enumerate(items) if refuses_ids(_item_error(it))]
        )
        if not refused:
            unknown = self.target.kind is Kind.SERVERLESS and self.target.collection is None
            if unknown and any(_item_status(item) in (200, 201, 409) for item in items):
                self.target.collection = Collection.SEARCH  # it took an _id
            return answer
        self.target.kind, self.target.collection = Kind.SERVERLESS, Collection.TIMESERIES
        _log.warning("target_takes_no_ids", target=self.target.describe(), items=len(refused))
        lines = body.splitlines(keepends=True)
        again = b"".join(lines[2 * i] + lines[2 * i + 1] for i in refused)
        second = (await self._request(_without_ids(again))).get("items") or []
        if len(second) != len(refused):
            raise SinkError(f"bulk answer has {len(second)} items for {len(refused)} documents")
        for i, item in zip(refused, second, strict=True):
            items[i] = item
        return answer

    async def _request(self, body: bytes) -> dict[str, Any]:
        """Through the OpenSearch boundary; 413 is :class:`TooLarge`."""
        from opensearchpy.exceptions import TransportError

        from ingest.cluster import opensearch_errors

        with opensearch_errors("bulk"):
            try:
                answer: dict[str, Any] = await self._client.bulk(
                    body=body, params={"filter_path": "errors,items.*.status,items.*.error"}
                )
            except TransportError as exc:
                if exc.status_code == 413:
                    raise TooLarge(f"bulk: HTTP 413 for {len(body)} bytes") from exc
                raise  # translated by the boundary
        return answer

    async def aclose(self) -> None:
        await self._client.close()


def unanswered(exc: SinkUnavailable) -> bool:
    """Whether the request that failed with ``exc`` may have been applied without an answer
    saying so (a timeout, a dropped connection, a 504), by the error it was translated from:
    sending it again is safe with ``_id``, a possible duplicate without."""
    from opensearchpy.exceptions import ConnectionError as OSConnectionError
    from opensearchpy.exceptions import TransportError

    cause = exc.__cause__
    if isinstance(cause, TimeoutError | OSConnectionError):
        return True
    return isinstance(cause, TransportError) and cause.status_code == 504


def _item_status(item: Any) -> int:
    info = next(iter(item.values())) if isinstance(item, dict) and item else {}
    return int(info.get("status", 0)) if isinstance(info, dict) else 0


def _item_error(item: Any) -> Any:
    info = next(iter(item.values())) if isinstance(item, dict) and item else {}
    return info.get("error") if isinstance(info, dict) else None


def _without_ids(body: bytes) -> bytes:
    """The bulk body with each action's ``_id`` left out (its source lines untouched)."""
    lines = body.splitlines(keepends=True)
    for i in range(0, len(lines), 2):
        action = orjson.loads(lines[i])
        for meta in action.values():
            meta.pop("_id", None)
        lines[i] = orjson.dumps(action) + b"\n"
    return b"".join(lines)
