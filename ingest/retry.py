"""The one retry policy: exponential backoff with full jitter, on transient errors only, until a
deadline shared by the whole operation.

Where retries happen, and why there:

- **The connections retry their own calls.** Every call of an :class:`~ingest.source.ObjectStore`
  (``list_page``, ``get``, S3's ``head``) and of the SQS queue of ``tail`` retries under the
  source's policy; every OpenSearch call of :mod:`ingest.cluster` (``ping``, the templates, the
  ISM policy, the backfill-mode settings, and :func:`ingest.cluster.call` for the operations)
  under the sink's. The stages above (listing, fetching, verify, tail) never retry: what a
  connection raises is either terminal or a transient error that outlived the deadline, and the
  stage decides what that means for its unit of work (dead-letter the object, leave the SQS
  message, abort the run).
- **The bulk sink retries a batch as a whole** (:class:`ingest.sink.BulkSink`): its requests
  (connection errors, timeouts, 429 and 502/503/504 for the whole request), its items answered
  429/5xx (sent again alone, with the request slot given back while backing off) and both
  halves of a 413 split share **one** :class:`Deadline`, created when the batch is sent, so
  ``--retry-deadline`` bounds every wait of the sink.

Each retried operation takes one :class:`Deadline` (by default ``policy.deadline`` from the first
call); a controller stops once it has passed, and never sleeps past it, so an operation ends
within its deadline plus the duration of one last attempt. The first attempt is always made,
even under a deadline already passed. Blocking clients (reports and alerts through
:func:`ingest.cluster.open_sync_client`) are one-shot commands and keep opensearch-py's own two
retries; nothing else retries by itself (botocore and the async OpenSearch client are told not to).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)
from tenacity.stop import stop_base

from ingest.errors import IngestError

__all__ = ["Deadline", "RetryPolicy", "call_with_retry", "is_transient", "retrying"]

T = TypeVar("T")
_log = structlog.get_logger("ingest.retry")


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How hard to try a transient failure again before giving up."""

    attempts: int = 100  # the deadline is the bound that matters; this only caps pathologies
    initial: float = 0.2
    maximum: float = 20.0
    deadline: float = 300.0

    @classmethod
    def within(cls, deadline: float) -> RetryPolicy:
        """Keep trying for ``deadline`` seconds, never sleeping more than a quarter of it."""
        return cls(deadline=deadline, maximum=min(20.0, deadline / 4))

    def start(self) -> Deadline:
        """The deadline of an operation that starts now."""
        return Deadline.after(self.deadline)


@dataclass(frozen=True, slots=True)
class Deadline:
    """The moment (on the monotonic clock) after which an operation stops retrying; created
    once per operation and handed to every call in it."""

    at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.at - time.monotonic())

    @property
    def passed(self) -> bool:
        return time.monotonic() >= self.at


class _StopAt(stop_base):
    def __init__(self, deadline: Deadline) -> None:
        self._deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self._deadline.passed


def is_transient(exc: BaseException) -> bool:
    """True for errors that our tree marks as worth another try."""
    return isinstance(exc, IngestError) and exc.transient


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    _log.warning(
        "retrying",
        attempt=state.attempt_number,
        error=type(exc).__name__ if exc else None,
        reason=str(exc) if exc else None,
        sleep_s=round(state.next_action.sleep, 2) if state.next_action else None,
    )


def retrying(
    policy: RetryPolicy,
    *,
    deadline: Deadline | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    retry_on: Callable[[BaseException], bool] = is_transient,
) -> AsyncRetrying:
    """An async tenacity controller for ``policy`` that stops at ``deadline`` (default: the
    policy's deadline from now) and never sleeps past it; re-raises the last error when it
    gives up. ``sleep`` replaces ``asyncio.sleep`` (to give something back while waiting);
    ``retry_on`` narrows which errors are retried (never wider than the transient ones)."""
    deadline = deadline if deadline is not None else policy.start()
    backoff = wait_random_exponential(multiplier=policy.initial, max=policy.maximum)

    def wait(state: RetryCallState) -> float:
        return min(backoff(state), deadline.remaining())

    return AsyncRetrying(
        sleep=sleep if sleep is not None else asyncio.sleep,
        retry=retry_if_exception(lambda exc: is_transient(exc) and retry_on(exc)),
        wait=wait,
        stop=stop_after_attempt(policy.attempts) | _StopAt(deadline),
        before_sleep=_log_retry,
        reraise=True,
    )


async def call_with_retry(
    policy: RetryPolicy, fn: Callable[[], Awaitable[T]], *, deadline: Deadline | None = None
) -> T:
    """Await ``fn()`` under ``policy``, until ``deadline`` (default: the policy's from now)."""
    async for attempt in retrying(policy, deadline=deadline):
        with attempt:
            return await fn()
    raise AssertionError("unreachable: tenacity re-raises when it stops")  # pragma: no cover
